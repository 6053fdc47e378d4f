//! A shared, pruned cache of one resource type, fed by one watch per watched namespace (or one
//! cluster-wide watch), fanned out to every controller that subscribes.
//!
//! Why not kube's `store_shared` + `ReflectHandle` alone: a kube `Writer` replaces its whole content
//! on each watcher re-list, so several namespace watches cannot share one `Writer`; and the shared
//! dispatcher forwards only applied objects (not deletions) and applies backpressure to the root
//! watch when a subscriber is slow. Here each namespace has its own kube store, lookups go to the
//! right one, deletions are forwarded too, and a lagging subscriber re-receives the whole cache
//! instead of blocking the watch (each object triggers a reconcile of its owner, which is
//! idempotent, so a resync is always safe).

pub mod crd;
pub mod guard;
pub mod jobs;
pub mod nodes;
pub mod selector;
pub mod templates;
pub mod tombstones;

use std::{
    fmt::Debug,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use crate::shutdown::Shutdown;
use tombstones::Tombstones;

/// Capacity of the fan-out channel; a subscriber further behind gets a full resync.
const FANOUT_CAPACITY: usize = 4096;

/// The namespaces the manager watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    All,
    Namespaces(Vec<String>),
}

impl WatchScope {
    pub fn from_flags(namespaces: &[String]) -> Self {
        let mut list: Vec<String> = namespaces
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        list.sort();
        list.dedup();
        if list.is_empty() {
            WatchScope::All
        } else {
            WatchScope::Namespaces(list)
        }
    }

    /// One entry per watch: `None` is the cluster-wide watch.
    pub fn watches(&self) -> Vec<Option<String>> {
        match self {
            WatchScope::All => vec![None],
            WatchScope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
        }
    }

    pub fn contains(&self, namespace: Option<&str>) -> bool {
        match self {
            WatchScope::All => true,
            WatchScope::Namespaces(list) => {
                namespace.is_some_and(|ns| list.iter().any(|n| n == ns))
            }
        }
    }

    /// `Api` handles of a namespaced kind for each watch of this scope.
    pub fn apis<K>(&self, client: &kube::Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        self.watches()
            .into_iter()
            .map(|ns| {
                let api = match &ns {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => Api::all(client.clone()),
                };
                (ns, api)
            })
            .collect()
    }
}

/// Read side of the cache; cheap to clone.
pub struct SharedCache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    stores: Arc<Vec<(Option<String>, Store<K>)>>,
    tx: broadcast::Sender<Arc<K>>,
    /// True once every watch has listed once. Not kube's `Store::wait_until_ready`: it wakes only
    /// the last task that polled it (one oneshot receiver shared by every clone), so a second
    /// waiter could sleep until something else woke it.
    ready: watch::Receiver<bool>,
    /// False while a watch is failing (API server unreachable), true again at its next event.
    watching: watch::Receiver<bool>,
    /// The objects seen deleted lately (`tombstones.rs`).
    tombstones: Arc<Mutex<Tombstones>>,
}

/// How watches come back after an error: 0.5 s doubling to 1 s, plus a random jitter of up to
/// as much again (so at most 2 s between tries; kube's default climbs to 30 s, which kept watches
/// down for up to half a minute after the API server returned). A restarted API server answers a
/// resumed watch with `410 Expired` only once its watch cache is ready, and the watch lists again:
/// measured 4.5 s from the API server's `/readyz` to the next Job. One manager retrying every
/// 1-2 s is no load for an API server.
pub fn watch_backoff() -> kube::runtime::watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// Drops the metadata no reconciler reads before an object is cached: `managedFields` and the
/// last-applied annotation of `kubectl apply`. For a big run object each is as large as its
/// spec (the field set of every step, the whole manifest again): a 10,000-step ManagedJob
/// carried them three times over.
pub fn drop_unread_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The owner reference that marks an object's controller (`controller: true`), if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// An object's identity as one number: a hash of its namespace and name. The Job trigger filter
/// and the tombstones key on it, so a Job event allocates no key.
pub fn object_id(namespace: Option<&str>, name: Option<&str>) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one((namespace, name))
}

/// The annotation in which `kubectl apply` (client-side) keeps the whole manifest it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What one watch of a cache does with its events: says whether it is watching, fans them out
/// to the subscribers, keeps the tombstones of deleted objects, and marks the cache ready once
/// every watch listed.
struct EventSink<K: Resource<DynamicType = ()> + 'static> {
    name: &'static str,
    namespace: Option<String>,
    /// This watch's position in `listed`.
    index: usize,
    reader: reflector::Store<K>,
    tx: broadcast::Sender<Arc<K>>,
    gone: Arc<Mutex<Tombstones>>,
    listed: Arc<Vec<AtomicBool>>,
    ready_tx: Arc<watch::Sender<bool>>,
    /// Whether the watch currently delivers events (false after an error, until the next).
    watching_tx: Arc<watch::Sender<bool>>,
}

impl<K> EventSink<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn take(&self, event: Result<watcher::Event<K>, watcher::Error>) {
        self.watching_tx.send_if_modified(|up| {
            let now = event.is_ok();
            std::mem::replace(up, now) != now
        });
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                let meta = obj.meta();
                lock(&self.gone).revive(object_id(meta.namespace.as_deref(), meta.name.as_deref()));
                let obj = self
                    .reader
                    .get(&ObjectRef::from_obj(&obj))
                    .unwrap_or_else(|| Arc::new(obj));
                let _ = self.tx.send(obj);
            }
            Ok(watcher::Event::Delete(obj)) => {
                let meta = obj.meta();
                let id = object_id(meta.namespace.as_deref(), meta.name.as_deref());
                let owner = controller_ref(meta).map(|o| o.uid.as_str());
                lock(&self.gone).record(id, owner, Instant::now());
                let _ = self.tx.send(Arc::new(obj));
            }
            // After a (re-)list the store holds the new truth: everyone hears all of it.
            Ok(watcher::Event::InitDone) => {
                for obj in self.reader.state() {
                    let _ = self.tx.send(obj);
                }
                if let Some(flag) = self.listed.get(self.index) {
                    flag.store(true, Ordering::Release);
                }
                if self.listed.iter().all(|flag| flag.load(Ordering::Acquire)) {
                    self.ready_tx.send_replace(true);
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(error) => {
                tracing::warn!(cache = self.name, namespace = ?self.namespace, %error, "watch error; retrying with backoff");
            }
        }
    }
}

impl<K> Clone for SharedCache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Self {
            stores: self.stores.clone(),
            tx: self.tx.clone(),
            ready: self.ready.clone(),
            watching: self.watching.clone(),
            tombstones: self.tombstones.clone(),
        }
    }
}

impl<K> SharedCache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts one watch per `apis` entry (each reflected into its own store, objects passed through
    /// `prune` before caching) on a background task that ends on `shutdown`.
    pub fn spawn(
        name: &'static str,
        apis: Vec<(Option<String>, Api<K>)>,
        config: watcher::Config,
        prune: fn(&mut K),
        shutdown: Shutdown,
    ) -> Self {
        Self::spawn_after(
            name,
            apis,
            config,
            prune,
            shutdown,
            std::future::ready(true),
        )
    }

    /// [`Self::spawn`], but the watches start only once `start` resolves to `true` (never if it
    /// resolves to `false`). Used for our own CRDs: a watch started before its CRD exists fails
    /// and backs off for up to half a minute, delaying readiness long after the CRD is there.
    pub fn spawn_after(
        name: &'static str,
        apis: Vec<(Option<String>, Api<K>)>,
        config: watcher::Config,
        prune: fn(&mut K),
        shutdown: Shutdown,
        start: impl Future<Output = bool> + Send + 'static,
    ) -> Self {
        let (tx, _) = broadcast::channel(FANOUT_CAPACITY);
        let (ready_tx, ready) = watch::channel(false);
        let ready_tx = Arc::new(ready_tx);
        let (watching_tx, watching) = watch::channel(true);
        let watching_tx = Arc::new(watching_tx);
        let listed: Arc<Vec<AtomicBool>> =
            Arc::new(apis.iter().map(|_| AtomicBool::new(false)).collect());
        let tombstones = Arc::new(Mutex::new(Tombstones::default()));
        let mut stores = Vec::new();
        let mut streams = Vec::new();
        for (index, (namespace, api)) in apis.into_iter().enumerate() {
            let (reader, writer) = reflector::store();
            stores.push((namespace.clone(), reader.clone()));
            let sink = EventSink {
                name,
                namespace,
                index,
                reader,
                tx: tx.clone(),
                gone: tombstones.clone(),
                listed: listed.clone(),
                ready_tx: ready_tx.clone(),
                watching_tx: watching_tx.clone(),
            };
            let stream = watcher(api, config.clone())
                .backoff(watch_backoff())
                .modify(prune)
                .reflect(writer)
                .map(move |event| sink.take(event))
                .boxed();
            streams.push(stream);
        }
        let all = futures::stream::select_all(streams);
        tokio::spawn(async move {
            if !start.await {
                return;
            }
            let drive = all.for_each(|()| async {});
            tokio::select! {
                () = drive => tracing::warn!(cache = name, "watch streams ended"),
                () = shutdown.wait() => tracing::debug!(cache = name, "cache stopped"),
            }
        });
        Self {
            stores: Arc::new(stores),
            tx,
            ready,
            watching,
            tombstones,
        }
    }

    /// Whether the watch delivered the deletion of `reference`, controlled by `owner_uid`,
    /// lately (`tombstones.rs`: within ten minutes, and no object of that name since).
    pub fn deleted_lately(&self, reference: &ObjectRef<K>, owner_uid: &str) -> bool {
        let id = object_id(reference.namespace.as_deref(), Some(&reference.name));
        lock(&self.tombstones).deleted(id, owner_uid, Instant::now())
    }

    /// Changes whenever the watches go down (`false`) or come back (`true`).
    pub fn watching(&self) -> watch::Receiver<bool> {
        self.watching.clone()
    }

    fn store_for(&self, namespace: Option<&str>) -> Option<&Store<K>> {
        self.stores.iter().find_map(|(ns, store)| match ns {
            None => Some(store),
            Some(ns) if Some(ns.as_str()) == namespace => Some(store),
            Some(_) => None,
        })
    }

    /// The cached object, if any.
    pub fn get(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        self.store_for(reference.namespace.as_deref())?
            .get(reference)
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        state_of(&self.stores)
    }

    /// Cached objects of one namespace matching `predicate`.
    pub fn in_namespace(&self, namespace: &str, predicate: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.store_for(Some(namespace))
            .map_or_else(Vec::new, |store| {
                store.state_filter(|obj| {
                    obj.meta().namespace.as_deref() == Some(namespace) && predicate(obj)
                })
            })
    }

    /// Resolves when every watch has listed once. `false` if a watch task died first.
    pub async fn wait_until_ready(&self) -> bool {
        // Err: every sender is gone, i.e. the watch task ended before listing.
        self.ready.clone().wait_for(|ready| *ready).await.is_ok()
    }

    /// Every applied or deleted object from now on (and the whole cache after each re-list, or when
    /// this subscriber lagged behind).
    pub fn subscribe(&self) -> BoxStream<'static, Arc<K>> {
        let rx = self.tx.subscribe();
        // Only the stores, not a clone of the cache: a held `Sender` would keep the channel open
        // and the stream would never end once the cache is gone.
        let stores = self.stores.clone();
        futures::stream::unfold((rx, stores), |(mut rx, stores)| async move {
            match rx.recv().await {
                Ok(obj) => Some((vec![obj], (rx, stores))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "cache subscriber lagged; resyncing from the cache");
                    let state = state_of(&stores);
                    Some((state, (rx, stores)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }
}

/// The tombstones, also after a panic elsewhere while they were held (plain data, always whole).
fn lock(tombstones: &Mutex<Tombstones>) -> std::sync::MutexGuard<'_, Tombstones> {
    tombstones
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn state_of<K>(stores: &[(Option<String>, Store<K>)]) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    stores.iter().flat_map(|(_, store)| store.state()).collect()
}

/// Waits for `cache` to be ready or for shutdown; logs while waiting. `true` when ready.
pub async fn wait_ready_or_shutdown<K>(
    name: &str,
    cache: &SharedCache<K>,
    shutdown: &Shutdown,
) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let ready = cache.wait_until_ready();
    tokio::pin!(ready);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            ok = &mut ready => return ok,
            () = &mut stop => return false,
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                tracing::info!(cache = name, "still waiting for the initial list");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};

    #[test]
    fn scope_from_flags() {
        assert_eq!(WatchScope::from_flags(&[]), WatchScope::All);
        assert_eq!(WatchScope::from_flags(&[" ".into()]), WatchScope::All);
        let scope = WatchScope::from_flags(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(scope, WatchScope::Namespaces(vec!["a".into(), "b".into()]));
        assert_eq!(
            scope.watches(),
            [Some("a".to_string()), Some("b".to_string())]
        );
        assert!(scope.contains(Some("a")));
        assert!(!scope.contains(Some("c")));
        assert!(!scope.contains(None));
        assert!(WatchScope::All.contains(Some("anything")));
        assert_eq!(WatchScope::All.watches(), [None]);
    }

    fn cm(namespace: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A cache over two namespace stores, filled by hand instead of by a watch.
    fn two_namespace_cache(
        capacity: usize,
    ) -> (SharedCache<ConfigMap>, broadcast::Sender<Arc<ConfigMap>>) {
        let (cache, tx, _ready) = two_namespace_cache_with_readiness(capacity);
        (cache, tx)
    }

    fn two_namespace_cache_with_readiness(
        capacity: usize,
    ) -> (
        SharedCache<ConfigMap>,
        broadcast::Sender<Arc<ConfigMap>>,
        watch::Sender<bool>,
    ) {
        let (reader_a, mut writer_a) = reflector::store::<ConfigMap>();
        let (reader_b, mut writer_b) = reflector::store::<ConfigMap>();
        writer_a.apply_watcher_event(&watcher::Event::Apply(cm("a", "x")));
        writer_b.apply_watcher_event(&watcher::Event::Apply(cm("b", "y")));
        // Keep the writers alive for the test's duration (a dropped writer fails readiness).
        std::mem::forget(writer_a);
        std::mem::forget(writer_b);
        let (tx, _) = broadcast::channel(capacity);
        let stores = vec![
            (Some("a".to_string()), reader_a),
            (Some("b".to_string()), reader_b),
        ];
        let (ready_tx, ready) = watch::channel(false);
        let (_, watching) = watch::channel(true);
        (
            SharedCache {
                stores: Arc::new(stores),
                tx: tx.clone(),
                ready,
                watching,
                tombstones: Arc::default(),
            },
            tx,
            ready_tx,
        )
    }

    #[test]
    fn lookups_go_to_the_store_of_the_namespace() {
        let (cache, _tx) = two_namespace_cache(8);
        assert!(cache.get(&ObjectRef::new("x").within("a")).is_some());
        assert!(cache.get(&ObjectRef::new("x").within("b")).is_none());
        assert!(cache.get(&ObjectRef::new("x").within("c")).is_none());
        assert_eq!(cache.state().len(), 2);
        assert_eq!(cache.in_namespace("b", |_| true).len(), 1);
        assert!(
            cache
                .in_namespace("b", |c| c.metadata.name.as_deref() == Some("x"))
                .is_empty()
        );
    }

    #[tokio::test]
    async fn subscribers_receive_changes_and_resync_after_lagging() {
        let (cache, tx) = two_namespace_cache(2);
        let mut sub = cache.subscribe();
        tx.send(Arc::new(cm("a", "new"))).unwrap();
        assert_eq!(
            sub.next().await.unwrap().metadata.name.as_deref(),
            Some("new")
        );

        // Five sends into a channel of two: the subscriber lags, gets the whole cache, then the rest.
        for i in 0..5 {
            tx.send(Arc::new(cm("a", &format!("n{i}")))).unwrap();
        }
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(sub.next().await.unwrap().metadata.name.clone().unwrap());
        }
        names[..2].sort();
        assert_eq!(names, ["x", "y", "n3", "n4"]);
        drop(tx);
        drop(cache);
        assert!(sub.next().await.is_none(), "the stream ends with the cache");
    }

    #[tokio::test]
    async fn every_waiter_wakes_when_the_cache_becomes_ready() {
        let (cache, _tx, ready_tx) = two_namespace_cache_with_readiness(8);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.wait_until_ready().await })
            })
            .collect();
        tokio::task::yield_now().await;
        ready_tx.send_replace(true);
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert!(matches!(woke, Ok(Ok(true))), "{woke:?}");
        }
        drop(ready_tx);
        assert!(cache.wait_until_ready().await, "ready stays ready");
    }

    #[tokio::test]
    async fn waiting_fails_when_the_watch_task_is_gone() {
        let (cache, _tx, ready_tx) = two_namespace_cache_with_readiness(8);
        drop(ready_tx);
        assert!(!cache.wait_until_ready().await);
    }
}
