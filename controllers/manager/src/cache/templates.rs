//! The one JobTemplate watch shared by every controller that resolves `templateRef`s (SPEC §1
//! "Templates", §7). Objects are wrapped in `DeserializeGuard`: a JobTemplate that does not
//! deserialize stays in the cache as an error (its users report `TemplateInvalid`) instead of
//! breaking the watch.

use jobsmith_api::JobTemplate;
use kube::{Resource, core::DeserializeGuard, runtime::watcher};

use crate::{
    cache::crd::wait_crd_established,
    cache::{SharedCache, WatchScope},
    shutdown::Shutdown,
};

/// A cached JobTemplate (or the error it failed to deserialize with).
pub type CachedTemplate = DeserializeGuard<JobTemplate>;

/// Starts the shared JobTemplate cache once the JobTemplate CRD is Established.
pub fn spawn_cache(
    client: &kube::Client,
    scope: &WatchScope,
    shutdown: Shutdown,
) -> SharedCache<CachedTemplate> {
    let crd_client = client.clone();
    let crd_shutdown = shutdown.clone();
    SharedCache::spawn_after(
        "jobtemplates",
        scope.apis::<CachedTemplate>(client),
        watcher::Config::default().any_semantic(),
        prune,
        shutdown,
        async move { wait_crd_established::<JobTemplate>(&crd_client, &crd_shutdown).await },
    )
}

/// Drops what no reconciler reads: `managedFields` and the last-applied annotation.
pub fn prune(template: &mut CachedTemplate) {
    let meta = template.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}
