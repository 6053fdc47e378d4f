//! [`ObservedJob`]: what Jobsmith reads of a `batch/v1` Job it created, and nothing more.
//!
//! Why not `Job` itself: the manager keeps every Job of its runs in memory, and a `Job` value
//! is 2.7 KB before its first heap allocation, 2.1 KB of it the inline `JobSpec` and pod
//! template, even when the pod template is pruned away: 54 MB for the 20,000 Jobs of two
//! 10,000-step runs. An `ObservedJob` is 0.6 KB. It decodes straight from a Job's JSON, so
//! the pod template and the spec fields no run reads are skipped by the decoder instead of
//! being built and dropped.

use k8s_openapi::{
    NamespaceResourceScope,
    api::batch::v1::{Job, JobStatus},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, Serialize};

/// A Job as Jobsmith observes it: its metadata, the spec fields a run acts on, its status.
/// Field names follow `Job`'s, so code reads `job.metadata`, `job.spec` and `job.status` as it
/// would of a `Job`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ObservedJob {
    #[serde(default)]
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
