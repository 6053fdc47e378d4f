//! The five reconcilers, one module each (`managedjob.rs`, `jobflow.rs`, `daemonjob.rs`,
//! `jobtemplate.rs`, `jobrun.rs`), each implementing [`crate::controller::Reconciler`].
//!
//! A run kind implements [`crate::run::RunKind`] on its API type; its controller is the generic
//! [`crate::run::RunController`] (see `jobflow.rs`, the smallest complete example).

pub mod daemonjob;
pub mod jobflow;
pub mod jobrun;
pub mod jobtemplate;
pub mod managedjob;

use crate::{cli::ControllerKind, context::Shared, controller, shutdown::Shutdown};

/// Runs the controller of `kind` until shutdown.
pub async fn run(kind: ControllerKind, shared: Shared, shutdown: Shutdown) {
    match kind {
        ControllerKind::Managedjob => {
            controller::run::<managedjob::ManagedJobController>(shared, shutdown).await;
        }
        ControllerKind::Jobflow => {
            controller::run::<jobflow::JobFlowController>(shared, shutdown).await;
        }
        ControllerKind::Daemonjob => {
            controller::run::<daemonjob::DaemonJobController>(shared, shutdown).await;
        }
        ControllerKind::Jobtemplate => {
            controller::run::<jobtemplate::JobTemplateController>(shared, shutdown).await;
        }
        ControllerKind::Jobrun => {
            controller::run::<jobrun::JobRunController>(shared, shutdown).await;
        }
    }
}
