//! Lease-based leader election (SPEC §7) with kube-lease-manager.
//!
//! Only the leader runs controllers, hence only the leader writes. A standby waits for the Lease.
//! When a leader loses the Lease (renewal failed, another holder), it stops every controller and
//! the process exits non-zero, so the pod restarts as a fresh standby: no state of a past
//! leadership survives. On a normal shutdown the leader releases the Lease so a standby takes over
//! at once instead of after the Lease expires.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

use crate::shutdown::Shutdown;

/// Seconds a Lease stays valid after a renewal (the default of controller-runtime is 15).
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// The holder renews this many seconds before expiry (also the tolerated clock skew).
pub const LEASE_GRACE_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("setting up the Lease {namespace}/{name}: {source}")]
    Setup {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
    #[error("the leader election task stopped")]
    TaskEnded,
}

impl LeaderError {
    pub fn category(&self) -> &'static str {
        match self {
            LeaderError::Setup { .. } => "lease_setup",
            LeaderError::TaskEnded => "lease_task",
        }
    }
}

/// How a leadership ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaderOutcome {
    /// Shutdown was requested; the Lease was released.
    Released,
    /// The Lease was lost while leading: the process must exit non-zero.
    Lost,
}

/// `hostname-pid-random`: unique per process even when a pod restarts with the same name.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "jobsmith".into());
    format!("{host}-{}-{:08x}", std::process::id(), random_u32())
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; enough to tell two processes apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Creates the Lease if needed and starts competing for it in the background.
    pub async fn start(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_field_manager(format!("jobsmith-leader-{identity}"))
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .build()
            .await
            .map_err(|source| LeaderError::Setup {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            })?;
        let (rx, task) = manager.watch().await;
        Ok(Self { rx, task })
    }

    /// Waits until this process holds the Lease (`Ok(true)`) or shutdown was requested (`Ok(false)`).
    pub async fn acquired(&mut self, shutdown: &Shutdown) -> Result<bool, LeaderError> {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            if *self.rx.borrow_and_update() {
                return Ok(true);
            }
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return Err(LeaderError::TaskEnded);
                    }
                }
                () = &mut stop => return Ok(false),
            }
        }
    }

    /// Holds the leadership until shutdown (then releases the Lease) or until it is lost (then
    /// triggers the shutdown of everything and reports `Lost`).
    pub async fn hold(mut self, shutdown: Shutdown) -> LeaderOutcome {
        let lost = tokio::select! {
            changed = self.rx.changed() => changed.is_err() || !*self.rx.borrow_and_update(),
            () = shutdown.wait() => false,
        };
        if lost {
            tracing::error!("leader election lost; stopping controllers and exiting");
            shutdown.trigger();
            self.task.abort();
            return LeaderOutcome::Lost;
        }
        // Dropping the receiver makes the lease task release the Lease and end.
        drop(self.rx);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("leader election lease released"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "could not release the lease"),
            Ok(Err(error)) => tracing::warn!(%error, "lease task failed"),
            Err(_) => tracing::warn!("lease release timed out"),
        }
        LeaderOutcome::Released
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_per_process_start() {
        let a = identity();
        let b = identity();
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
