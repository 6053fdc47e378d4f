//! The one label-selected watch of `batch/v1` Jobs shared by every run controller (SPEC §7,
//! STYLE 4), what is kept of a Job in the cache, and owner lookups.

use std::collections::{BTreeMap, HashMap};

use jobsmith_engine::ObservedJob;
use kube::{
    Resource,
    runtime::{reflector::ObjectRef, watcher},
};

use crate::{
    cache::{SharedCache, WatchScope, controller_ref, object_id, selector::WatchSelector},
    shutdown::Shutdown,
};

use jobsmith_api::kueue::QUEUE_NAME_LABEL;
use jobsmith_api::labels::{self, MANAGED_BY, MANAGED_BY_VALUE};
use jobsmith_engine::observe::job_condition;

/// Every Job we create carries `app.kubernetes.io/managed-by=jobsmith`; the watch selects on it.
pub fn selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// The Job watch's selector: ours, and the shard's (`--watch-label-selector`) when set. A child
/// Job carries its run object's sharding label (`jobsmith_engine::build::template::follow_parent_shard`),
/// so a sharded manager caches the Jobs of its own run objects only.
pub fn selector_for(shard: Option<&WatchSelector>) -> String {
    crate::cache::selector::and(&selector(), shard)
}

/// Starts the shared Job cache.
pub fn spawn_cache(
    client: &kube::Client,
    scope: &WatchScope,
    shard: Option<&WatchSelector>,
    shutdown: Shutdown,
) -> SharedCache<ObservedJob> {
    let config = watcher::Config::default().labels(&selector_for(shard));
    SharedCache::spawn(
        "jobs",
        scope.apis::<ObservedJob>(client),
        config,
        prune,
        shutdown,
    )
}

/// The labels of a cached Job that a run reads: a DaemonJob's node, Kueue's queue.
const READ_LABELS: &[&str] = &[labels::NODE, QUEUE_NAME_LABEL];

/// The annotations of a cached Job that a run reads: the TTL it takes once its outcome is
/// recorded.
const READ_ANNOTATIONS: &[&str] = &[labels::TTL_AFTER_RECORDED];

/// Drops what no reconciler reads before a Job enters the cache: `managedFields` (never decoded
/// from a watch or a list, [`ObservedJob`]; a Job converted from a create's answer has them),
/// and every label and annotation but `READ_LABELS` and `READ_ANNOTATIONS` (ours, the
/// user's params, GitOps tools': about a kilobyte of strings and map nodes per Job, 20 MB for
/// the 20,000 Jobs of two 10,000-step runs). The pod template and the spec fields no run reads
/// are never decoded ([`ObservedJob`]). Kept: identity, those keys, owner references,
/// `spec.suspend`, `spec.activeDeadlineSeconds` and the whole `status` (conditions, counts,
/// times). A change of a dropped key wakes nothing (the trigger filter reads the pruned Job).
pub fn prune(job: &mut ObservedJob) {
    let meta = &mut job.metadata;
    meta.managed_fields = None;
    keep_only(&mut meta.labels, READ_LABELS);
    keep_only(&mut meta.annotations, READ_ANNOTATIONS);
}

/// Keeps the entries of `keys` (no map when none is left).
fn keep_only(map: &mut Option<BTreeMap<String, String>>, keys: &[&str]) {
    if let Some(entries) = map.as_mut() {
        entries.retain(|key, _| keys.contains(&key.as_str()));
        if entries.is_empty() {
            *map = None;
        }
    }
}

/// The `ObjectRef` of the Job's controller owner, if that owner is a `K`.
pub fn controller_owner<K>(job: &ObservedJob) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    let owner = controller_ref(&job.metadata)?;
    if owner.kind != K::kind(&()) || owner.api_version != K::api_version(&()) {
        return None;
    }
    let reference = ObjectRef::new(&owner.name);
    Some(match job.metadata.namespace.as_deref() {
        Some(ns) => reference.within(ns),
        None => reference,
    })
}

/// The uid of the Job's controller owner, whatever its kind.
pub fn controller_owner_uid(job: &ObservedJob) -> Option<&str> {
    controller_ref(&job.metadata).map(|o| o.uid.as_str())
}

/// The cached Jobs whose controller owner has `owner_uid`, in `namespace`.
pub fn owned_by(
    cache: &SharedCache<ObservedJob>,
    namespace: &str,
    owner_uid: &str,
) -> Vec<std::sync::Arc<ObservedJob>> {
    cache.in_namespace(namespace, |job| {
        controller_owner_uid(job) == Some(owner_uid)
    })
}

/// What a run object reads of its Jobs, as one number: everything of the (pruned) Job but its
/// pod counters (`active`, `ready`, `succeeded`, `failed`, `terminating`,
/// `uncountedTerminatedPods`), its `status.startTime` and its `resourceVersion`. A Job moves
/// through several of those on its way to one outcome; a kind whose status does not show them
/// (`RunKind::READS_JOB_COUNTERS` false) has nothing to do for such a change. `startTime`: a
/// step's start is its Job's `creationTimestamp`; the start time is read only to stop a Job at
/// the run's deadline, a reconcile that comes at that moment and reads the cache. Nor what a
/// Job's status says after its earliest final signal (see below).
pub fn trigger_fingerprint(job: &ObservedJob) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let meta = &job.metadata;
    let status = job.status.as_ref();
    // Every field of the Job's metadata, spec and status but the counters, `resourceVersion`,
    // `managedFields` and `selfLink`, borrowed (a clone of the Job per event cost more).
    let read = (
        (
            &meta.name,
            &meta.namespace,
            &meta.uid,
            &meta.generation,
            &meta.labels,
            &meta.annotations,
            &meta.owner_references,
            &meta.finalizers,
        ),
        (
            &meta.creation_timestamp,
            &meta.deletion_timestamp,
            &meta.deletion_grace_period_seconds,
            &meta.generate_name,
        ),
        &job.spec,
        status.map(|s| {
            // Once the earliest final signal (`SuccessCriteriaMet`, `FailureTarget`) is true,
            // the step's outcome, finish time and failure detail are fixed (engine `observe`
            // reads that signal first); the `Complete`/`Failed` condition and `completionTime`
            // that follow once the pods are gone restate it.
            let settled = s.conditions.iter().flatten().find(|c| {
                c.status == "True"
                    && (c.type_ == job_condition::SUCCESS_CRITERIA_MET
                        || c.type_ == job_condition::FAILURE_TARGET)
            });
            let (conditions, completion_time) = match settled {
                Some(_) => (None, None),
                None => (s.conditions.as_ref(), s.completion_time.as_ref()),
            };
            (
                settled,
                conditions,
                completion_time,
                &s.completed_indexes,
                &s.failed_indexes,
            )
        }),
    );
    let mut hasher = foldhash::fast::FixedState::default().build_hasher();
    // Serializing plain data with string keys cannot fail; an error hashes as empty.
    hasher.write(&serde_json::to_vec(&read).unwrap_or_default());
    hasher.finish()
}

/// Which Job events reach a run controller whose kind does not read pod counters: the first
/// sight of a Job, any change of its [`trigger_fingerprint`], and its deletion. Per Job it keeps
/// two numbers (its [`object_id`], the fingerprint last passed on). The first sight always passes:
/// a reconcile that finds the Job in the cache is what tells the run's memory that the watch
/// has delivered it, so that its later disappearance reads as a deletion (`Lost`) and not as
/// a watch that lags behind the create.
#[derive(Default)]
pub struct JobTriggerFilter {
    passed: HashMap<u64, u64>,
}

impl JobTriggerFilter {
    /// Whether the event of `job` goes on to the controller; `cached` is whether the Job is
    /// still in the cache (a deleted one is not: the cache is updated before the event is
    /// passed on).
    pub fn passes(&mut self, job: &ObservedJob, cached: bool) -> bool {
        let id = object_id(
            job.metadata.namespace.as_deref(),
            job.metadata.name.as_deref(),
        );
        if !cached {
            self.passed.remove(&id);
            return true;
        }
        let fingerprint = trigger_fingerprint(job);
        self.passed.insert(id, fingerprint) != Some(fingerprint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use k8s_openapi::{
        api::{
            batch::v1::{Job, JobSpec, JobStatus},
            core::v1::{ConfigMap, PodSpec, PodTemplateSpec},
        },
        apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, OwnerReference},
    };

    /// A Job as the API server sends it, decoded as the cache decodes it.
    fn job(owner: Option<OwnerReference>) -> ObservedJob {
        let job = Job {
            metadata: ObjectMeta {
                name: Some("wf-g-a".into()),
                namespace: Some("ns".into()),
                owner_references: owner.map(|o| vec![o]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                annotations: Some(
                    [
                        (
                            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                            "{}".to_string(),
                        ),
                        (
                            "jobsmith.dev/template-generation".to_string(),
                            "3".to_string(),
                        ),
                        (labels::TTL_AFTER_RECORDED.to_string(), "60".to_string()),
                    ]
                    .into(),
                ),
                labels: Some(
                    [
                        (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
                        (labels::NODE.to_string(), "n1".to_string()),
                        ("team".to_string(), "a".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(2),
                template: PodTemplateSpec {
                    spec: Some(PodSpec::default()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: Some(JobStatus {
                succeeded: Some(1),
                ..Default::default()
            }),
        };
        serde_json::from_value(serde_json::to_value(job).unwrap()).unwrap()
    }

    fn owner(kind: &str, api_version: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "parent".into(),
            uid: "uid-1".into(),
            controller: Some(controller),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn prune_keeps_what_reconcilers_read() {
        let mut j = job(None);
        prune(&mut j);
        assert!(j.metadata.managed_fields.is_none());
        let annotations = j.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            [labels::TTL_AFTER_RECORDED]
        );
        let kept = j.metadata.labels.as_ref().unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), [labels::NODE]);
        let mut none_read = job(None);
        none_read.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        none_read.metadata.annotations = None;
        prune(&mut none_read);
        assert_eq!(none_read.metadata.labels, None, "no empty map is kept");
        assert_eq!(
            j.spec,
            Some(Default::default()),
            "no spec field a run reads was set"
        );
        assert_eq!(j.status.as_ref().unwrap().succeeded, Some(1));
    }

    #[test]
    fn owner_lookup_uses_the_controller_reference_of_the_right_kind() {
        let j = job(Some(owner("ConfigMap", "v1", true)));
        let r = controller_owner::<ConfigMap>(&j).unwrap();
        assert_eq!(r.name, "parent");
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(controller_owner_uid(&j), Some("uid-1"));
        // Another kind, or a non-controller reference, is not our owner.
        assert!(controller_owner::<Job>(&j).is_none());
        let j = job(Some(owner("ConfigMap", "v1", false)));
        assert!(controller_owner::<ConfigMap>(&j).is_none());
        assert!(controller_owner_uid(&j).is_none());
        assert!(controller_owner_uid(&job(None)).is_none());
    }

    #[test]
    fn selector_is_the_managed_by_label() {
        assert_eq!(selector(), "app.kubernetes.io/managed-by=jobsmith");
        assert_eq!(selector_for(None), selector());
    }

    #[test]
    fn a_sharded_manager_watches_the_jobs_of_its_shard_only() {
        let shard = crate::cache::selector::parse("sharding.jobsmith.dev/key in (shard1)")
            .unwrap()
            .unwrap();
        let text = selector_for(Some(&shard));
        assert_eq!(
            text,
            "app.kubernetes.io/managed-by=jobsmith,sharding.jobsmith.dev/key in (shard1)"
        );
        // The combined text parses back into both requirements, and selects a Job of the shard.
        let both = crate::cache::selector::parse(&text).unwrap().unwrap();
        let job_labels = |shard: Option<&str>| {
            let mut labels: std::collections::BTreeMap<String, String> =
                [(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())].into();
            if let Some(shard) = shard {
                labels.insert(jobsmith_api::labels::SHARD_KEY.to_owned(), shard.to_owned());
            }
            labels
        };
        assert!(both.matches(&job_labels(Some("shard1"))));
        assert!(!both.matches(&job_labels(Some("shard2"))));
        assert!(!both.matches(&job_labels(None)));
    }

    #[test]
    fn pod_counters_alone_do_not_trigger_a_run_that_does_not_show_them() {
        use k8s_openapi::api::batch::v1::JobCondition;
        let mut filter = JobTriggerFilter::default();
        let mut job = job(Some(owner("ManagedJob", "jobsmith.dev/v1alpha1", true)));
        assert!(filter.passes(&job, true), "first sight");
        assert!(!filter.passes(&job, true), "the same Job again");
        let status = job.status.get_or_insert_with(Default::default);
        status.active = Some(1);
        status.ready = Some(1);
        status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        job.metadata.resource_version = Some("42".into());
        assert!(
            !filter.passes(&job, true),
            "counters, startTime and resourceVersion only"
        );
        let status = job.status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![JobCondition {
            type_: "SuccessCriteriaMet".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert!(filter.passes(&job, true), "a condition is an outcome");
        assert!(!filter.passes(&job, true));
        let status = job.status.get_or_insert_with(Default::default);
        status
            .conditions
            .get_or_insert_default()
            .push(JobCondition {
                type_: "Complete".into(),
                status: "True".into(),
                ..Default::default()
            });
        status.completion_time = status.start_time.clone();
        assert!(
            !filter.passes(&job, true),
            "Complete and completionTime after SuccessCriteriaMet restate the outcome"
        );
        job.spec.get_or_insert_with(Default::default).suspend = Some(true);
        assert!(filter.passes(&job, true), "the spec is read (suspend)");
        assert!(filter.passes(&job, false), "a deletion always passes");
        assert!(
            filter.passes(&job, true),
            "and the Job is new again after it"
        );
        let mut other = job.clone();
        other.metadata.name = Some("wf-g-b".into());
        assert!(
            filter.passes(&other, true),
            "another Job of the same content"
        );
    }
}
