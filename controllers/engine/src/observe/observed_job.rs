//! [`ObservedJob`]: what Jobsmith reads of a `batch/v1` Job it created, and nothing more.
//!
//! Why not `Job` itself: the manager keeps every Job of its runs in memory, and a `Job` value
//! is 2.7 KB before its first heap allocation, 2.1 KB of it the inline `JobSpec` and pod
//! template, even when the pod template is pruned away: 54 MB for the 20,000 Jobs of two
//! 10,000-step runs. An `ObservedJob` is 0.6 KB. It decodes straight from a Job's JSON, so
//! the pod template and the spec fields no run reads are skipped by the decoder instead of
//! being built and dropped. Its metadata skips `managedFields` the same way: the field sets of
//! our create (the whole pod template) and of the Job controller's status writes, a tree of
//! maps the manager never reads, decoded and dropped on every watch event of every Job before.

use std::collections::BTreeMap;

use k8s_openapi::{
    NamespaceResourceScope,
    api::batch::v1::{Job, JobStatus},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use serde::{Deserialize, Deserializer, Serialize};

/// A Job as Jobsmith observes it: its metadata, the spec fields a run acts on, its status.
/// Field names follow `Job`'s, so code reads `job.metadata`, `job.spec` and `job.status` as it
/// would of a `Job`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ObservedJob {
    #[serde(default, deserialize_with = "metadata_without_managed_fields")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ObservedJobSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}

/// The spec fields of a Job that a run reads: whether it is suspended (a Kueue admission, a
/// template that creates it suspended) and its own deadline (stopping a Job sets a shorter one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedJobSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

/// `ObjectMeta` as the API server sends it, without `managedFields`: the decoder skips that
/// key's value without building it (serde ignores unknown keys).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MetadataWithoutManagedFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

fn metadata_without_managed_fields<'de, D>(deserializer: D) -> Result<ObjectMeta, D::Error>
where
    D: Deserializer<'de>,
{
    let wire = MetadataWithoutManagedFields::deserialize(deserializer)?;
    Ok(ObjectMeta {
        annotations: wire.annotations,
        creation_timestamp: wire.creation_timestamp,
        deletion_grace_period_seconds: wire.deletion_grace_period_seconds,
        deletion_timestamp: wire.deletion_timestamp,
        finalizers: wire.finalizers,
        generate_name: wire.generate_name,
        generation: wire.generation,
        labels: wire.labels,
        managed_fields: None,
        name: wire.name,
        namespace: wire.namespace,
        owner_references: wire.owner_references,
        resource_version: wire.resource_version,
        self_link: wire.self_link,
        uid: wire.uid,
    })
}

impl From<Job> for ObservedJob {
    fn from(job: Job) -> Self {
        ObservedJob {
            metadata: job.metadata,
            spec: job.spec.map(|spec| ObservedJobSpec {
                suspend: spec.suspend,
                active_deadline_seconds: spec.active_deadline_seconds,
            }),
            status: job.status,
        }
    }
}

impl k8s_openapi::Resource for ObservedJob {
    const API_VERSION: &'static str = <Job as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Job as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Job as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Job as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Job as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for ObservedJob {
    const LIST_KIND: &'static str = <Job as k8s_openapi::ListableResource>::LIST_KIND;
}

impl k8s_openapi::Metadata for ObservedJob {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn job_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "n", "uid": "u", "labels": {"a": "b"},
                "ownerReferences": [{"apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
                    "name": "w", "uid": "o", "controller": true}]},
            "spec": {"suspend": true, "activeDeadlineSeconds": 30, "backoffLimit": 2,
                "template": {"spec": {"containers": [{"name": "m", "image": "busybox"}]}}},
            "status": {"active": 1, "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]}
        })
    }

    #[test]
    fn decodes_from_a_jobs_json_as_the_same_as_converting_the_job() {
        let observed: ObservedJob = serde_json::from_value(job_json()).unwrap();
        let job: Job = serde_json::from_value(job_json()).unwrap();
        assert_eq!(observed, ObservedJob::from(job));
        let spec = observed.spec.as_ref().unwrap();
        assert_eq!(spec.suspend, Some(true));
        assert_eq!(spec.active_deadline_seconds, Some(30));
        assert_eq!(observed.status.as_ref().unwrap().active, Some(1));
        assert_eq!(
            observed.metadata.owner_references.as_ref().unwrap().len(),
            1
        );
    }

    #[test]
    fn decodes_every_metadata_field_but_managed_fields() {
        let mut json = job_json();
        json["metadata"] = serde_json::json!({
            "name": "j", "generateName": "g-", "namespace": "n", "uid": "u",
            "resourceVersion": "7", "generation": 2, "selfLink": "/s",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "deletionTimestamp": "2026-01-02T00:00:00Z", "deletionGracePeriodSeconds": 0,
            "finalizers": ["f"], "labels": {"a": "b"}, "annotations": {"c": "d"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "x"}],
            "managedFields": [{"manager": "m", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:suspend": {}}}}]
        });
        let observed: ObservedJob = serde_json::from_value(json.clone()).unwrap();
        let mut job: Job = serde_json::from_value(json).unwrap();
        assert!(job.metadata.managed_fields.is_some());
        job.metadata.managed_fields = None;
        assert_eq!(observed.metadata, job.metadata);
    }

    #[test]
    fn is_much_smaller_than_a_job() {
        let observed = std::mem::size_of::<ObservedJob>();
        assert!(
            observed * 3 < std::mem::size_of::<Job>(),
            "{observed} bytes"
        );
    }

    #[test]
    fn names_the_jobs_api() {
        use k8s_openapi::Resource;
        assert_eq!(ObservedJob::API_VERSION, "batch/v1");
        assert_eq!(ObservedJob::KIND, "Job");
        assert_eq!(ObservedJob::URL_PATH_SEGMENT, "jobs");
    }
}
