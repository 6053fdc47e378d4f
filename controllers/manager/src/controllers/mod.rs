//! The five reconcilers, one module each (`managedjob.rs`, `jobflow.rs`, `daemonjob.rs`,
//! `jobtemplate.rs`, `jobrun.rs`), each implementing [`crate::controller::Reconciler`].
//!
//! Adding a kind: write its module, then replace its arm below with
//! `crate::controller::run::<managedjob::ManagedJobController>(shared, shutdown).await`.

use crate::{cli::ControllerKind, context::Shared, shutdown::Shutdown};

/// Runs the controller of `kind` until shutdown.
pub async fn run(kind: ControllerKind, shared: Shared, shutdown: Shutdown) {
    let _ = (&shared, &shutdown);
    match kind {
        ControllerKind::Managedjob
        | ControllerKind::Jobflow
        | ControllerKind::Daemonjob
        | ControllerKind::Jobtemplate
        | ControllerKind::Jobrun => {
            tracing::warn!(controller = %kind, "controller not implemented yet; skipped");
        }
    }
}
