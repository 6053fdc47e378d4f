//! Lease-based leader election (SPEC §7) and the write fence that makes it safe.
//!
//! Only the leader runs controllers, and every write (Job create or delete, status patch, Event)
//! first asks the [`Fence`]. The fence is open until `renew started + RENEW_DEADLINE` of the last
//! successful renewal, measured on this process' monotonic clock: a leader that cannot renew
//! (API server unreachable, process paused by SIGSTOP) stops writing on its own clock, before
//! the Lease can expire for a standby (`LEASE_DURATION` after the standby saw the last renewal),
//! whether or not the API server answers. A paused-then-resumed former leader finds its fence
//! closed and writes nothing. On shutdown the fence closes first; the Lease is released only
//! after the controllers stopped, so the next leader never overlaps with our last writes.
//!
//! The algorithm is client-go's `leaderelection` (the `LeaseLock`): the holder renews every
//! `RETRY_PERIOD`; a standby takes over once the record it observed has not changed for
//! `LEASE_DURATION` of its own time, with an optimistic-concurrency update, so two candidates
//! never both succeed. Losing the Lease stops every controller and exits non-zero (the pod
//! restarts as a fresh standby: no state of a past leadership survives).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{PostParams, entry::Entry},
};

use crate::shutdown::Shutdown;

/// Writes not sent because the fence is closed (described with the other metrics in
/// `telemetry::metrics`).
pub const WRITES_FENCED_TOTAL: &str = "jobsmith_writes_fenced_total";

/// Seconds a Lease stays valid after a renewal, for a standby (controller-runtime's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// A leader that could not renew for this long stops writing (client-go's `RenewDeadline`).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews and a standby tries (client-go's `RetryPeriod`).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// One Lease request may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("the leader election was stopped")]
    Stopped,
}

impl LeaderError {
    pub fn category(&self) -> &'static str {
        match self {
            LeaderError::Stopped => "lease_stopped",
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

/// Whether writes may go out now. Without leader election it is always open (until shutdown).
#[derive(Debug)]
pub struct Fence {
    /// `None`: no leader election, open until closed. `Some(t)`: open until `t`.
    open_until: Mutex<Option<Instant>>,
    elected: bool,
    closed: std::sync::atomic::AtomicBool,
}

impl Fence {
    /// A fence for a manager without leader election.
    pub fn open() -> Arc<Self> {
        Arc::new(Self {
            open_until: Mutex::new(None),
            elected: false,
            closed: Default::default(),
        })
    }

    /// A fence that opens only while the Lease is held.
    pub fn elected() -> Arc<Self> {
        Arc::new(Self {
            open_until: Mutex::new(Some(Instant::now())),
            elected: true,
            closed: Default::default(),
        })
    }

    /// Whether a write may be sent now; counts the ones that may not.
    pub fn allows(&self) -> bool {
        let open = !self.closed.load(std::sync::atomic::Ordering::Acquire)
            && (!self.elected
                || self
                    .open_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some_and(|until| Instant::now() < until));
        if !open {
            metrics::counter!(WRITES_FENCED_TOTAL).increment(1);
        }
        open
    }

    /// A renewal that was started at `started` succeeded.
    fn renewed(&self, started: Instant) {
        *self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(started + RENEW_DEADLINE);
    }

    /// No write goes out any more (shutdown, lost Lease). Final.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
    }
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
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

/// What a candidate last saw of the Lease, and when (on its own clock).
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    at: Option<Instant>,
}

/// One candidate for one Lease.
pub struct Leadership {
    api: Api<Lease>,
    name: String,
    identity: String,
    fence: Arc<Fence>,
    observed: Observed,
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Leadership {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            fence: Fence::elected(),
            observed: Observed::default(),
        }
    }

    /// The fence every write asks.
    pub fn fence(&self) -> Arc<Fence> {
        self.fence.clone()
    }

    /// Tries once to acquire or renew the Lease. `Ok(true)`: we hold it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let started = Instant::now();
        let identity = self.identity.clone();
        let observed = &mut self.observed;
        let mut held = false;
        let entry = self.api.entry(&self.name).await?;
        let result = match entry {
            Entry::Vacant(vacant) => {
                let now = now_micro();
                vacant
                    .insert(Lease {
                        metadata: ObjectMeta::default(),
                        spec: Some(LeaseSpec {
                            holder_identity: Some(identity.clone()),
                            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                            acquire_time: Some(now.clone()),
                            renew_time: Some(now),
                            lease_transitions: Some(0),
                            ..Default::default()
                        }),
                    })
                    .commit(&PostParams::default())
                    .await
                    .map(|_| true)
            }
            Entry::Occupied(mut occupied) => {
                let spec = occupied.get().spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
                let record = (holder.clone(), spec.renew_time.clone());
                if observed.record.as_ref() != Some(&record) {
                    observed.record = Some(record);
                    observed.at = Some(started);
                }
                let ours = holder.as_deref() == Some(identity.as_str());
                let expired = observed
                    .at
                    .is_none_or(|at| started.saturating_duration_since(at) >= LEASE_DURATION);
                if !ours && holder.is_some() && !expired {
                    return Ok(false);
                }
                occupied.get_mut().spec = Some(LeaseSpec {
                    holder_identity: Some(identity.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                    acquire_time: if ours {
                        spec.acquire_time
                    } else {
                        Some(now_micro())
                    },
                    renew_time: Some(now_micro()),
                    lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + i32::from(!ours)),
                    ..spec
                });
                // Optimistic concurrency: the update carries the resourceVersion we read.
                occupied.commit(&PostParams::default()).await.map(|_| true)
            }
        };
        match result {
            Ok(_) => {
                held = true;
                self.fence.renewed(started);
            }
            // Another candidate wrote first: not ours this round.
            Err(kube::api::entry::CommitError::Save(kube::Error::Api(status)))
                if status.code == 409 => {}
            Err(kube::api::entry::CommitError::Save(error)) => return Err(error),
            Err(kube::api::entry::CommitError::Validate(error)) => {
                tracing::warn!(%error, "lease update not valid");
            }
        }
        Ok(held)
    }

    /// Waits until this candidate holds the Lease. `false` on shutdown.
    pub async fn acquire(&mut self, shutdown: &Shutdown) -> Result<bool, LeaderError> {
        loop {
            let attempt = tokio::time::timeout(REQUEST_TIMEOUT, self.try_acquire_or_renew());
            tokio::select! {
                result = attempt => match result {
                    Ok(Ok(true)) => return Ok(true),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "reading the lease failed"),
                    Err(_) => tracing::debug!("lease request timed out"),
                },
                () = shutdown.wait() => return Ok(false),
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_PERIOD) => {}
                () = shutdown.wait() => return Ok(false),
            }
        }
    }

    /// Renews while leading. Returns `Lost` when the renew deadline passed without a successful
    /// renewal (the fence is already closed by then) or another holder took the Lease, and
    /// `Released` once `stopped` resolves (after shutdown: the controllers have stopped), after
    /// giving the Lease up so a standby takes over at once.
    pub async fn hold(
        mut self,
        shutdown: Shutdown,
        stopped: impl Future<Output = ()>,
    ) -> LeaderOutcome {
        let mut last_renewed = Instant::now();
        let lost = loop {
            tokio::select! {
                () = tokio::time::sleep(RETRY_PERIOD) => {}
                () = shutdown.wait() => break false,
            }
            let attempt = tokio::time::timeout(REQUEST_TIMEOUT, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => break true,
                Ok(Err(error)) => tracing::warn!(%error, "renewing the lease failed"),
                Err(_) => tracing::warn!("renewing the lease timed out"),
            }
            if last_renewed.elapsed() >= RENEW_DEADLINE {
                break true;
            }
        };
        // Nothing is written from here on; in-flight requests finish or fail on their own.
        self.fence.close();
        if lost {
            tracing::error!("leader election lost; stopping controllers and exiting");
            shutdown.trigger();
            return LeaderOutcome::Lost;
        }
        stopped.await;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.release()).await {
            Ok(Ok(())) => tracing::info!("leader election lease released"),
            Ok(Err(error)) => tracing::warn!(%error, "could not release the lease"),
            Err(_) => tracing::warn!("lease release timed out"),
        }
        LeaderOutcome::Released
    }

    /// Gives the Lease up if we still hold it (an empty holder: a standby takes it at once).
    async fn release(&self) -> Result<(), kube::Error> {
        let Entry::Occupied(mut occupied) = self.api.entry(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = occupied.get_mut().spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        match occupied.commit(&PostParams::default()).await {
            Ok(()) => Ok(()),
            Err(kube::api::entry::CommitError::Save(error)) => Err(error),
            Err(kube::api::entry::CommitError::Validate(_)) => Ok(()),
        }
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

    #[test]
    fn the_fence_closes_on_its_own_at_the_renew_deadline() {
        let fence = Fence::elected();
        assert!(!fence.allows(), "closed before the first renewal");
        fence.renewed(Instant::now());
        assert!(fence.allows());
        fence.renewed(Instant::now() - RENEW_DEADLINE);
        assert!(!fence.allows(), "a renewal older than the deadline");
        fence.renewed(Instant::now());
        fence.close();
        assert!(!fence.allows(), "closing is final");
        let open = Fence::open();
        assert!(open.allows());
        open.close();
        assert!(!open.allows());
    }

    #[test]
    fn a_leader_stops_writing_before_a_standby_may_take_over() {
        const { assert!(RENEW_DEADLINE.as_secs() + RETRY_PERIOD.as_secs() < LEASE_DURATION.as_secs()) };
    }
}
