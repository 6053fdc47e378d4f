//! JobRun (seed: job-template-run): exactly one Job from a JobTemplate with overrides (SPEC §6).

use k8s_openapi::api::batch::v1::JobCondition;
use k8s_openapi::api::core::v1::EnvVar;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::RunStatus;
use crate::kueue::Queueing;

/// One Job made from a JobTemplate, with `command`, `args` and `env` overrides.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "jobsmith.dev",
    version = "v1alpha1",
    kind = "JobRun",
    namespaced,
    status = "JobRunStatus",
    shortname = "jr",
    category = "jobsmith",
    derive = "PartialEq",
    doc = "Runs exactly one batch/v1 Job from a JobTemplate, with command, args and env overrides.",
    printcolumn = r#"{"name":"TEMPLATE","type":"string","description":"The JobTemplate used","jsonPath":".spec.templateRef"}"#,
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Phase of the run","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"START","type":"date","description":"When the Job started","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"COMPLETION","type":"date","description":"When the Job finished","jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"description":"Current state or problem","jsonPath":".status.message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct JobRunSpec {
    /// Name of the JobTemplate in the same namespace.
    #[schemars(
        length(min = 1, max = 253),
        pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub template_ref: String,
    /// Name of the container the overrides apply to (default: the first container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub container: Option<String>,
    /// Replaces the container's `command`; an empty list means no override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the container's `args`; an empty list means no override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Merged into the container's `env` by name (the run's values win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Option<Vec<EnvVar>>,
    /// Kueue admission of the run's Job: `queueName` and `priorityClassName`
    /// (docs/integrations.md "Kueue").
    #[serde(flatten)]
    pub queue: Queueing,
}

/// Observed state of a JobRun: ours plus a mirror of the Job's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRunStatus {
    /// Phase, conditions, progress, times (mirrored from the Job) and message.
    #[serde(flatten)]
    pub run: RunStatus,
    /// Name of the Job created for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Pods of the Job running (mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Pods of the Job that succeeded (mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Pods of the Job that failed (mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// The Job's conditions (mirrored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_conditions: Vec<JobCondition>,
}
