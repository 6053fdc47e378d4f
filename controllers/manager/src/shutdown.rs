//! One shared shutdown signal for every controller, cache and server (STYLE 12).

use std::sync::Arc;

use tokio::sync::watch;

/// Cheap to clone; `trigger` once, and every `wait` future resolves.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Self { tx: Arc::new(tx) }
    }

    /// Starts the shutdown; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once `trigger` was called (at once if it already was). `Send + Sync + 'static`, as
    /// `Controller::graceful_shutdown_on` requires.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // An error means the sender is gone, which cannot happen while `self` lives; either
            // way there is nothing left to wait for.
            let _ = rx.wait_for(|triggered| *triggered).await;
        }
    }

    /// Triggers on SIGTERM or SIGINT. A second signal exits at once (code 130), for an operator
    /// who does not want to wait for running reconciles.
    pub fn spawn_signal_handler(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
                _ = this.wait() => {}
            }
            this.trigger();
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting without waiting for running reconciles");
            std::process::exit(130);
        });
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiter_resolves_after_trigger() {
        let shutdown = Shutdown::new();
        let early = shutdown.wait();
        assert!(!shutdown.is_triggered());
        let pending = tokio::time::timeout(Duration::from_millis(20), shutdown.wait()).await;
        assert!(pending.is_err(), "must not resolve before trigger");
        shutdown.clone().trigger();
        tokio::time::timeout(Duration::from_secs(1), early)
            .await
            .unwrap();
        // Waiters created after the trigger resolve at once.
        tokio::time::timeout(Duration::from_secs(1), shutdown.wait())
            .await
            .unwrap();
        assert!(shutdown.is_triggered());
    }
}
