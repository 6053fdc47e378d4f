//! The generic driver: one implementation of [`Reconciler`] per kind, and [`run`] turns it into a
//! running `kube::runtime::Controller` with everything the five kinds share (STYLE 2, 5, 6, 12):
//! bounded concurrency, the shared Job stream as owned children, extra triggers, the per-object
//! backoff, reconcile metrics, `Guarded`, readiness, CRD establishment and shutdown.

use std::{fmt::Debug, sync::Arc, time::Duration};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    core::error_boundary::InvalidObject,
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::{self, Action},
        reflector::{self, ObjectRef, Store, reflector},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use jobsmith_engine::ObservedJob;

use crate::{
    cache::guard::Guarded,
    cache::{
        crd::wait_crd_established, jobs::JobTriggerFilter, selector::WatchSelector,
        wait_ready_or_shutdown,
    },
    cli::ControllerKind,
    context::{Context, Shared},
    shutdown::Shutdown,
    telemetry::events::EventKind,
    telemetry::health::ReadyHandle,
    telemetry::metrics::{self, ReconcileTimer},
};

/// Every error enum of a reconciler has a short static category, used as the `error` label of
/// `jobsmith_reconcile_errors_total` and in logs.
pub trait ErrorCategory {
    fn category(&self) -> &'static str;
}

/// What a kind module provides. The driver owns everything else.
///
/// ```ignore
/// pub struct JobRunController;
/// impl Reconciler for JobRunController {
///     type Kind = JobRun;
///     type Error = Error; // thiserror enum implementing ErrorCategory
///     const CONTROLLER: ControllerKind = ControllerKind::Jobrun;
///     async fn reconcile(run: Arc<JobRun>, ctx: Arc<Context>) -> Result<Action, Error> { .. }
/// }
/// // main: controller::run::<JobRunController>(shared.clone(), shutdown.clone())
/// ```
pub trait Reconciler: Send + Sync + 'static {
    type Kind: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    type Error: std::error::Error + ErrorCategory + Send + Sync + 'static;

    const CONTROLLER: ControllerKind;

    /// Whether changes of Jobs controlled by a `Kind` trigger its reconcile (all run kinds).
    const OWNS_JOBS: bool = true;

    /// Whether a Job event that changes only its pod counters reconciles the owner
    /// (`cache::jobs::JobTriggerFilter`); true unless the kind says its status does not show them.
    const READS_JOB_COUNTERS: bool = true;

    /// Whether the kind resolves `templateRef`s: reconciling waits for the JobTemplate cache
    /// (a template not listed yet would look missing).
    const USES_TEMPLATES: bool = false;

    /// Whether the kind reads the Node cache (DaemonJob): reconciling waits for it (a node not
    /// listed yet would look gone).
    const USES_NODES: bool = false;

    /// One reconcile of one object: read, check, build, write (STYLE 1).
    fn reconcile(
        obj: Reconciled<Self::Kind>,
        ctx: Arc<Context>,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send + 'static;

    /// Extra triggers: streams of objects to reconcile when something else changes, for example
    /// `map_shared(&templates, move |t| referencing(&own, &t))` to reconcile the objects that use a
    /// JobTemplate. `own` is this controller's store (one per watched namespace).
    fn triggers(
        _ctx: &Arc<Context>,
        _own: &Store<Guarded<Self::Kind>>,
    ) -> Vec<BoxStream<'static, ObjectRef<Self::Kind>>> {
        Vec::new()
    }

    /// The status of an object the kind's type cannot read (`message`: the decode error), written
    /// through a schema-less patch so that kstatus, Flux and Argo CD see a terminal failure
    /// instead of an object without status. `None`: nothing to write.
    fn invalid_object_status(
        _message: &str,
        _generation: Option<i64>,
        _now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> Option<serde_json::Value> {
        None
    }

    /// The object is gone (a trigger found it no longer cached, or the periodic sweep of
    /// [`Reconciler::remembered`] did): drop what is kept per object, such as metric series.
    /// Must be idempotent.
    fn forget(_ctx: &Context, _namespace: Option<&str>, _name: &str) {}

    /// The objects (namespace, name) this controller keeps something for; the sweep forgets the
    /// ones no longer in the cache (deleted without a later trigger, e.g. a run without Jobs).
    fn remembered(_ctx: &Context) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Maps every object of a shared cache to the objects of this kind it concerns.
pub fn map_shared<O, K, I>(
    cache: &crate::cache::SharedCache<O>,
    mapper: impl Fn(Arc<O>) -> I + Send + 'static,
) -> BoxStream<'static, ObjectRef<K>>
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K: Resource<DynamicType = ()> + 'static,
    I: IntoIterator<Item = ObjectRef<K>>,
    I::IntoIter: Send + 'static,
{
    cache
        .subscribe()
        .flat_map(move |obj| futures::stream::iter(mapper(obj)))
        .boxed()
}

/// The object a reconcile is about: the controller cache's own copy, shared and never copied
/// (a deep copy of a big run object, spec and status, on every reconcile cost more than the
/// reconcile's own work). The driver hands over only objects that decoded as their kind.
pub struct Reconciled<K>(Arc<Guarded<K>>);

impl<K> Reconciled<K> {
    /// The object as its kind (`None` only for one that did not decode, which the driver never
    /// passes on).
    pub fn get(&self) -> Option<&K> {
        self.0.0.as_ref().ok()
    }
}

/// The error the driver's reconcile returns to kube-runtime.
#[derive(Debug, thiserror::Error)]
pub enum DriverError<E: std::error::Error + 'static> {
    /// The object does not deserialize into the kind (schema drift, hand-edited status...).
    #[error("invalid object: {0}")]
    InvalidObject(#[source] Box<InvalidObject>),
    /// The status of an object that cannot be read could not be written.
    #[error("writing the status of an invalid object: {0}")]
    InvalidStatus(#[source] Box<crate::status::StatusError>),
    #[error(transparent)]
    Reconcile(E),
}

impl<E: std::error::Error + ErrorCategory + 'static> ErrorCategory for DriverError<E> {
    fn category(&self) -> &'static str {
        match self {
            DriverError::InvalidObject(_) => "invalid_object",
            DriverError::InvalidStatus(e) => e.category(),
            DriverError::Reconcile(e) => e.category(),
        }
    }
}

/// The backoff key of an object.
fn object_key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

#[tracing::instrument(
    skip_all,
    fields(controller = %ctx.controller, namespace = guard.namespace().as_deref().unwrap_or(""), name = %guard.name_any())
)]
async fn reconcile_guarded<R: Reconciler>(
    guard: Arc<Guarded<R::Kind>>,
    ctx: Arc<Context>,
) -> Result<Action, DriverError<R::Error>> {
    let _timer = ReconcileTimer::start(R::CONTROLLER.as_str());
    ctx.metrics.hot_objects.reconciled(
        R::CONTROLLER.as_str(),
        guard.namespace().as_deref().unwrap_or(""),
        &guard.name_any(),
    );
    match &guard.0 {
        Ok(_) => {
            let key = object_key(guard.meta());
            let action = R::reconcile(Reconciled(guard.clone()), ctx.clone())
                .await
                .map_err(DriverError::Reconcile)?;
            ctx.backoff.reset(&key);
            Ok(action)
        }
        Err(invalid) => {
            // The object cannot be read: say so in its status (once per generation and
            // message) and in one Event, then wait until it changes.
            let generation = guard.meta().generation;
            if ctx
                .invalid_objects
                .first_report(guard.meta(), &invalid.error)
            {
                let detail =
                    decode_error_with_path::<R::Kind>(&ctx.client, guard.meta(), &invalid.error)
                        .await;
                let message = jobsmith_engine::status::conditions::bounded(&format!(
                    "invalid spec: {detail}"
                ));
                if let Some(status) =
                    R::invalid_object_status(&message, generation, &crate::status::now())
                    && let Err(error) = crate::status::write_status(
                        ctx.as_ref(),
                        guard.as_ref(),
                        &Value::Null,
                        &status,
                    )
                    .await
                {
                    ctx.invalid_objects.forget(guard.meta());
                    return Err(DriverError::InvalidStatus(Box::new(error)));
                }
                ctx.events
                    .publish(guard.as_ref(), EventKind::Invalid, "InvalidSpec", message)
                    .await;
            }
            metrics::reconcile_error(R::CONTROLLER.as_str(), "invalid_object");
            tracing::warn!(controller = %R::CONTROLLER, object = %object_key(guard.meta()), error = %invalid.error, "invalid object; waiting for a change");
            Ok(Action::await_change())
        }
    }
}

fn error_policy<R: Reconciler>(
    guard: Arc<Guarded<R::Kind>>,
    error: &DriverError<R::Error>,
    ctx: Arc<Context>,
) -> Action {
    let category = error.category();
    metrics::reconcile_error(R::CONTROLLER.as_str(), category);
    if let DriverError::InvalidObject(_) = error {
        tracing::warn!(controller = %R::CONTROLLER, object = %object_key(guard.meta()), %error, "invalid object; waiting for a change");
        return Action::await_change();
    }
    let delay = ctx.backoff.next_delay(&object_key(guard.meta()));
    tracing::warn!(
        controller = %R::CONTROLLER,
        object = %object_key(guard.meta()),
        error = %error,
        category,
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The decode error of an object with the path of the field that failed
/// (`spec.flows[0].jobTemplate.template.spec.containers[0].command: invalid type: ...`): the
/// object is read once more, schema-less, and decoded with a path tracker. Falls back to the
/// watch's own message (no path) when the object cannot be read.
async fn decode_error_with_path<K>(
    client: &kube::Client,
    meta: &kube::api::ObjectMeta,
    fallback: &str,
) -> String
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return fallback.to_owned();
    };
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        namespace,
        &kube::api::ApiResource::erase::<K>(&()),
    );
    let Ok(Some(object)) = api.get_opt(name).await else {
        return fallback.to_owned();
    };
    let Ok(value) = serde_json::to_value(object) else {
        return fallback.to_owned();
    };
    match serde_path_to_error::deserialize::<_, K>(value.clone()) {
        // DaemonJob and JobTemplate flatten a JobSpec into `spec`, where the path tracker cannot
        // follow: decode that JobSpec on its own for the rest of the path.
        Err(error) if error.path().to_string() == "spec" => {
            match value.get("spec").map(|spec| {
                serde_path_to_error::deserialize::<_, k8s_openapi::api::batch::v1::JobSpec>(
                    spec.clone(),
                )
            }) {
                Some(Err(inner)) => format!("spec.{}: {}", inner.path(), inner.inner()),
                _ => format!("{}: {}", error.path(), error.inner()),
            }
        }
        Err(error) if error.path().to_string() != "." => {
            format!("{}: {}", error.path(), error.inner())
        }
        _ => fallback.to_owned(),
    }
}

/// Runs the controller of `R` until shutdown: one `Controller` per watched namespace (or one
/// cluster-wide), all with the same [`Context`].
pub async fn run<R: Reconciler>(shared: Shared, shutdown: Shutdown) {
    let kind = R::CONTROLLER;
    let ctx = Arc::new(Context::new(&shared, kind));
    let scopes = shared.scope.watches();
    let ready: Vec<_> = scopes
        .iter()
        .map(|ns| {
            shared
                .readiness
                .register(format!("{kind}/{}", ns.as_deref().unwrap_or("*")))
        })
        .collect();
    if !inputs_ready::<R>(&shared, &shutdown).await {
        return;
    }

    let mut runs = Vec::new();
    let mut stores = Vec::new();
    for (namespace, ready) in scopes.into_iter().zip(ready) {
        let (store, run) = run_in_scope::<R>(&shared, &ctx, namespace, ready, &shutdown);
        stores.push(store);
        runs.push(run);
    }
    tracing::info!(controller = %kind, "controller started");
    let sweep = sweep_forgotten::<R>(ctx.clone(), stores, shutdown.clone());
    tokio::join!(futures::future::join_all(runs), sweep);
    // Writes sent off by the last reconciles are fenced from the shutdown on; wait for those
    // already on the wire.
    ctx.writes.close();
    ctx.writes.wait().await;
    tracing::info!(controller = %kind, "controller stopped");
}

/// Waits until `R` may reconcile: its CRD is established and the caches it reads are synced.
/// False on shutdown, or when a cache it needs was not started.
async fn inputs_ready<R: Reconciler>(shared: &Shared, shutdown: &Shutdown) -> bool {
    if !wait_crd_established::<R::Kind>(&shared.client, shutdown).await {
        return false;
    }
    // Reconciling before the Job cache is synced would take existing Jobs for missing ones.
    if R::OWNS_JOBS && !wait_ready_or_shutdown("jobs", &shared.jobs, shutdown).await {
        return false;
    }
    if R::USES_TEMPLATES
        && !wait_ready_or_shutdown("jobtemplates", &shared.templates, shutdown).await
    {
        return false;
    }
    if R::USES_NODES {
        let Some(nodes) = &shared.nodes else {
            tracing::error!(controller = %R::CONTROLLER, "the Node cache was not started; controller not run");
            return false;
        };
        if !wait_ready_or_shutdown("nodes", nodes, shutdown).await {
            return false;
        }
    }
    true
}

/// The controller of `R` for one watch scope (a namespace, or `None`: cluster-wide): its store
/// of the kind's objects, and the future that runs it until shutdown (marking `ready` once its
/// store is synced).
fn run_in_scope<R: Reconciler>(
    shared: &Shared,
    ctx: &Arc<Context>,
    namespace: Option<String>,
    ready: ReadyHandle,
    shutdown: &Shutdown,
) -> (Store<Guarded<R::Kind>>, impl Future<Output = ()> + use<R>) {
    let kind = R::CONTROLLER;
    let api: Api<Guarded<R::Kind>> = match &namespace {
        Some(ns) => Api::namespaced(shared.client.clone(), ns),
        None => Api::all(shared.client.clone()),
    };
    let (own, writer) = reflector::store();
    let objects = watcher(api, object_watch(shared.shard.as_ref()))
        .modify(|object| crate::cache::drop_unread_metadata(object.meta_mut()));
    let changes = reflector(writer, objects)
        .applied_objects()
        .predicate_filter(own_change, PredicateConfig::default());
    let mut controller = Controller::for_stream(changes, own.clone())
        .with_config(controller::Config::default().concurrency(shared.concurrency))
        .trigger_backoff(crate::cache::watch_backoff());
    if R::OWNS_JOBS {
        controller = controller.owns_shared_stream(job_events::<R>(shared, namespace.clone()));
    }
    let triggers = R::triggers(ctx, &own);
    if !triggers.is_empty() {
        controller = controller.reconcile_on(scoped_refs(triggers, namespace.clone()));
    }

    let stop = shutdown.clone();
    let store = own.clone();
    let mark_ready = async move {
        tokio::select! {
            result = own.wait_until_ready() => if result.is_ok() {
                ready.set_synced();
                tracing::info!(controller = %kind, namespace = ?namespace, "cache synced; controller ready");
            },
            () = stop.wait() => {}
        }
    };
    let stream = controller
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile_guarded::<R>, error_policy::<R>, ctx.clone())
        .for_each({
            let ctx = ctx.clone();
            move |result| {
                log_result::<R>(result, &ctx);
                std::future::ready(())
            }
        });
    (store, async move {
        tokio::join!(mark_ready, stream);
    })
}

/// The shared Job cache's events for `R`'s controller in one scope: the Jobs of that
/// namespace, without the changes of Job counters `R` does not read.
fn job_events<R: Reconciler>(
    shared: &Shared,
    namespace: Option<String>,
) -> impl futures::Stream<Item = Arc<ObservedJob>> + Send + use<R> {
    let cache = shared.jobs.clone();
    let mut unread_counters = (!R::READS_JOB_COUNTERS).then(JobTriggerFilter::default);
    shared.jobs.subscribe().filter(move |job| {
        let in_scope = namespace.is_none() || job.namespace() == namespace;
        let passes = in_scope
            && unread_counters.as_mut().is_none_or(|filter| {
                filter.passes(job, cache.get(&ObjectRef::from_obj(job.as_ref())).is_some())
            });
        std::future::ready(passes)
    })
}

/// A kind's extra triggers, limited to one scope and addressed to the guarded objects the
/// controller watches.
fn scoped_refs<K: Resource<DynamicType = ()> + 'static>(
    triggers: Vec<BoxStream<'static, ObjectRef<K>>>,
    namespace: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<Guarded<K>>> + Send + use<K>
where
    Guarded<K>: Resource<DynamicType = ()>,
{
    futures::stream::select_all(triggers).filter_map(move |r: ObjectRef<K>| {
        let in_scope = namespace.is_none() || r.namespace == namespace;
        let mut guarded = ObjectRef::<Guarded<K>>::new(&r.name);
        if let Some(ns) = &r.namespace {
            guarded = guarded.within(ns);
        }
        std::future::ready(in_scope.then_some(guarded))
    })
}

/// What of a change to an object of the controller's own kind wakes its reconcile: its spec
/// (`generation`), labels, annotations (a retry request is one), finalizers and deletion; not a
/// change of its status alone. Our own status writes come back that way, and each woke one more
/// reconcile with nothing to do (about one per Job on 10-step chains). Decision: a status
/// written by anyone else is seen at the next Job event or resync, as with the
/// generation-changed predicate of Go controllers. A new object, and each object after a
/// restart, passes (never seen).
fn own_change<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{BuildHasher, Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = foldhash::fast::FixedState::default().build_hasher();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// The watch of a controller's own objects: all of them, or those of the shard
/// (`--watch-label-selector`, docs/scaling.md).
fn object_watch(shard: Option<&WatchSelector>) -> watcher::Config {
    let config = watcher::Config::default().any_semantic();
    match shard {
        Some(shard) => config.labels(&shard.to_string()),
        None => config,
    }
}

/// Drops what is kept for a deleted object.
fn forget<R: Reconciler>(ctx: &Context, namespace: &str, name: &str) {
    R::forget(ctx, Some(namespace), name);
    ctx.metrics
        .hot_objects
        .forget(R::CONTROLLER.as_str(), namespace, name);
}

/// How often the objects kept in memory are compared with the caches.
const SWEEP_PERIOD: Duration = Duration::from_secs(10);

/// Forgets, every [`SWEEP_PERIOD`], the remembered objects that no store holds any more: a
/// deleted object is not reconciled, and without Jobs no trigger tells that it is gone.
async fn sweep_forgotten<R: Reconciler>(
    ctx: Arc<Context>,
    stores: Vec<Store<Guarded<R::Kind>>>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_PERIOD) => {}
            () = shutdown.wait() => return,
        }
        for (namespace, name) in R::remembered(&ctx) {
            let object = ObjectRef::<Guarded<R::Kind>>::new(&name).within(&namespace);
            if stores.iter().all(|s| s.get(&object).is_none()) {
                tracing::debug!(controller = %R::CONTROLLER, %namespace, %name, "forgetting a deleted object");
                forget::<R>(&ctx, &namespace, &name);
            }
        }
    }
}

type RunResult<K, E> =
    Result<(ObjectRef<Guarded<K>>, Action), controller::Error<DriverError<E>, watcher::Error>>;

fn log_result<R: Reconciler>(result: RunResult<R::Kind, R::Error>, ctx: &Context) {
    match result {
        Ok((object, action)) => {
            tracing::debug!(controller = %R::CONTROLLER, %object, ?action, "reconciled")
        }
        // Already counted and logged by the error policy.
        Err(controller::Error::ReconcilerFailed(..)) => {}
        // A trigger for an object that is not (or no longer) in the cache: deleted meanwhile.
        Err(controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(controller = %R::CONTROLLER, %object, "object gone before reconcile");
            forget::<R>(ctx, object.namespace.as_deref().unwrap_or(""), &object.name);
        }
        Err(error) => {
            tracing::warn!(controller = %R::CONTROLLER, %error, "controller stream error")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn only_a_change_beyond_status_wakes_the_own_object() {
        let mut mj: jobsmith_api::ManagedJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
            "metadata": {"name": "wf", "namespace": "ns", "generation": 1, "resourceVersion": "5"},
            "spec": {"groups": [{"name": "g", "jobs": [{"name": "a", "image": "busybox"}]}]}
        }))
        .unwrap();
        let first = own_change(&mj);
        // Our own status write comes back as a new version with a new status: no wake.
        mj.metadata.resource_version = Some("6".into());
        mj.status = Some(Default::default());
        assert_eq!(own_change(&mj), first);
        // A retry request (annotation), a spec edit, a label, a deletion: each wakes it.
        let mut changed = Vec::new();
        let mut annotated = mj.clone();
        annotated
            .annotations_mut()
            .insert("jobsmith.dev/retry".into(), "1".into());
        changed.push(annotated);
        let mut edited = mj.clone();
        edited.metadata.generation = Some(2);
        changed.push(edited);
        let mut labelled = mj.clone();
        labelled.labels_mut().insert("team".into(), "a".into());
        changed.push(labelled);
        let mut deleted = mj.clone();
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        changed.push(deleted);
        for obj in &changed {
            assert_ne!(own_change(obj), first, "{:?}", obj.metadata);
        }
    }

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("boom")]
        Boom,
    }

    impl ErrorCategory for TestError {
        fn category(&self) -> &'static str {
            "boom"
        }
    }

    /// A kind module in miniature: proves the trait is implementable with a plain `async fn` and
    /// that `run` accepts it (the five kinds plug in the same way).
    struct ConfigMapController;

    impl Reconciler for ConfigMapController {
        type Kind = ConfigMap;
        type Error = TestError;
        const CONTROLLER: ControllerKind = ControllerKind::Jobrun;

        async fn reconcile(
            obj: Reconciled<ConfigMap>,
            _ctx: Arc<Context>,
        ) -> Result<Action, TestError> {
            if obj.get().and_then(|o| o.data.as_ref()).is_none() {
                Err(TestError::Boom)
            } else {
                Ok(Action::await_change())
            }
        }
    }

    #[allow(dead_code)]
    fn run_is_generic_and_send(shared: Shared, shutdown: Shutdown) {
        fn assert_send<T: Send>(_: &T) {}
        let fut = run::<ConfigMapController>(shared, shutdown);
        assert_send(&fut);
    }

    #[test]
    fn invalid_objects_and_reconcile_errors_have_categories() {
        let invalid = DriverError::<TestError>::InvalidObject(Box::new(InvalidObject {
            error: "bad".into(),
            metadata: Default::default(),
        }));
        assert_eq!(invalid.category(), "invalid_object");
        assert_eq!(DriverError::Reconcile(TestError::Boom).category(), "boom");
    }

    #[test]
    fn the_object_watch_follows_the_shard() {
        assert_eq!(object_watch(None).label_selector, None);
        let shard = crate::cache::selector::parse("!sharding.jobsmith.dev/key")
            .unwrap()
            .unwrap();
        assert_eq!(
            object_watch(Some(&shard)).label_selector.as_deref(),
            Some("!sharding.jobsmith.dev/key")
        );
    }

    #[test]
    fn a_malformed_object_still_yields_its_metadata() {
        let guard: Guarded<ConfigMap> = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "ns"},
            "data": "not-a-map"
        }))
        .unwrap();
        assert!(guard.0.is_err());
        assert_eq!(object_key(guard.meta()), "ns/x");
    }
}
