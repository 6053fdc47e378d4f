//! The `Context` every reconciler receives, and the manager-wide parts it is built from.

use std::{sync::Arc, time::Duration};

use jobsmith_api::JobTemplate;
use jobsmith_engine::ObservedJob;
use k8s_openapi::api::core::v1::Node;
use kube::Client;

use crate::{
    cache::guard::Guarded,
    cache::{SharedCache, WatchScope, selector::WatchSelector},
    cli::{ControllerKind, StepEvents},
    leadership::backoff::Backoffs,
    leadership::ratelimit::WriteLimiter,
    memory::RunMemory,
    telemetry::events::EventPublisher,
    telemetry::health::Readiness,
    telemetry::metrics::Metrics,
};

/// Built once by `main` and shared by all controllers.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    /// The one label-selected Job watch (see `jobs.rs`).
    pub jobs: SharedCache<ObservedJob>,
    /// The one JobTemplate watch (see `templates.rs`); malformed templates stay in it as errors.
    pub templates: SharedCache<Guarded<JobTemplate>>,
    /// The pruned Node watch (see `nodes.rs`); only when the DaemonJob controller is enabled.
    pub nodes: Option<SharedCache<Node>>,
    /// Object writes (Job creates, status patches): callers wait for a token.
    pub limiter: Arc<WriteLimiter>,
    /// Events: a separate budget; an Event without a token is dropped, never waits.
    pub event_limiter: Arc<WriteLimiter>,
    pub metrics: Metrics,
    pub scope: Arc<WatchScope>,
    /// `--watch-label-selector`: the run objects of this shard (none: all).
    pub shard: Option<WatchSelector>,
    pub readiness: Readiness,
    /// Reconciles at once per controller (and per watched namespace).
    pub concurrency: u16,
    /// Which per-step Events are published (`--step-events`).
    pub step_events: StepEvents,
    /// `--status-interval-ms`: how long a detail-only status change of one object may wait.
    pub status_interval: Duration,
    /// This process (hostname-pid-random), the `reportingInstance` of Events.
    pub instance: String,
}

/// What one controller's reconcile gets (one per controller, shared by its namespaces).
pub struct Context {
    pub client: Client,
    pub controller: ControllerKind,
    /// Field manager of every write of this controller (`jobsmith-<kind>`).
    pub field_manager: &'static str,
    pub jobs: SharedCache<ObservedJob>,
    pub templates: SharedCache<Guarded<JobTemplate>>,
    /// The pruned Node cache (DaemonJob), when started.
    pub nodes: Option<SharedCache<Node>>,
    /// What the run mechanism last saw of each run object (`memory.rs`, used by `run/`).
    pub runs: RunMemory,
    /// Objects that cannot be read, and the message last reported for each.
    pub invalid_objects: InvalidObjects,
    /// Per-object backoff of failed reconciles; the driver uses it, reconcilers need not.
    pub backoff: Backoffs,
    /// Every write goes through it (`apply.rs`, `status.rs`, `events.rs` do so already).
    pub limiter: Arc<WriteLimiter>,
    pub events: EventPublisher,
    /// Which per-step Events are published (`--step-events`).
    pub step_events: StepEvents,
    /// How long a detail-only status change of one object may wait (`run/report.rs`).
    pub status_interval: Duration,
    pub metrics: Metrics,
    pub scope: Arc<WatchScope>,
    /// Objects to reconcile again because a write sent off for them landed (`run/`).
    pub wakes: Wakes,
    /// The writes sent off without waiting (`run/`): the controller stops only once they are
    /// done, so the Lease is never released under a write of ours.
    pub writes: tokio_util::task::TaskTracker,
}

impl Context {
    pub fn new(shared: &Shared, controller: ControllerKind) -> Self {
        let field_manager = controller.field_manager();
        Self {
            client: shared.client.clone(),
            controller,
            field_manager,
            jobs: shared.jobs.clone(),
            templates: shared.templates.clone(),
            nodes: shared.nodes.clone(),
            runs: RunMemory::default(),
            invalid_objects: InvalidObjects::default(),
            backoff: Backoffs::default(),
            limiter: shared.limiter.clone(),
            events: EventPublisher::new(
                shared.client.clone(),
                field_manager,
                &shared.instance,
                shared.event_limiter.clone(),
            ),
            step_events: shared.step_events,
            status_interval: shared.status_interval,
            metrics: shared.metrics.clone(),
            scope: shared.scope.clone(),
            wakes: Wakes::default(),
            writes: tokio_util::task::TaskTracker::new(),
        }
    }
}

/// Objects of one controller to reconcile again, as (namespace, name): every namespaced
/// controller of the kind reads them as a trigger. A wake lost to a reader that fell behind is
/// made up by the requeue the reconcile asked for anyway.
#[derive(Clone)]
pub struct Wakes {
    sender: tokio::sync::broadcast::Sender<(String, String)>,
}

impl Default for Wakes {
    fn default() -> Self {
        Self {
            sender: tokio::sync::broadcast::Sender::new(4096),
        }
    }
}

impl Wakes {
    pub fn wake(&self, namespace: &str, name: &str) {
        // No reader (the controller has not started or has stopped): nobody to wake.
        let _ = self.sender.send((namespace.to_owned(), name.to_owned()));
    }

    /// The objects woken from now on.
    pub fn subscribe(&self) -> futures::stream::BoxStream<'static, (String, String)> {
        use tokio::sync::broadcast::error::RecvError;
        let receiver = self.sender.subscribe();
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(woken) => return Some((woken, receiver)),
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

/// The objects of one controller that cannot be read, with the generation and message last
/// reported, so a status and an Event are written once per change (each write of a status
/// triggers the next reconcile).
#[derive(Default)]
pub struct InvalidObjects {
    reported: std::sync::Mutex<std::collections::HashMap<String, (Option<i64>, String)>>,
}

impl InvalidObjects {
    fn key(meta: &kube::api::ObjectMeta) -> String {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    }

    /// Forgets what was reported for the object (its report could not be written).
    pub fn forget(&self, meta: &kube::api::ObjectMeta) {
        self.reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&Self::key(meta));
    }

    /// Whether `message` is new for this object at its generation (and records it).
    pub fn first_report(&self, meta: &kube::api::ObjectMeta, message: &str) -> bool {
        let key = Self::key(meta);
        let now = (meta.generation, message.to_owned());
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.len() > 10_000 {
            reported.clear();
        }
        reported.insert(key, now.clone()) != Some(now)
    }
}
