//! The one JobTemplate watch shared by every controller that resolves `templateRef`s (SPEC §1
//! "Templates", §7). Objects are wrapped in `Guarded` (`cache::guard`): a JobTemplate that does not
//! deserialize stays in the cache as an error (its users report `TemplateInvalid`) instead of
//! breaking the watch.

use jobsmith_api::JobTemplate;
use kube::{Resource, runtime::watcher};

use crate::{
    cache::crd::wait_crd_established,
    cache::guard::Guarded,
    cache::{SharedCache, WatchScope},
    shutdown::Shutdown,
};

/// A cached JobTemplate (or the error it failed to deserialize with).
pub type CachedTemplate = Guarded<JobTemplate>;

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
    crate::cache::drop_unread_metadata(template.meta_mut());
}
