//! DaemonJob (seed: job-deploy-operator): one Job per eligible node (SPEC §4).

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::JobSpec;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{GlobalParams, RunStatus, StepPhase};
use crate::kueue::Queueing;
use crate::lifecycle::JobsCleanup;
use crate::retry_policy::RetryPolicy;

/// Runs one Job on every eligible node, like a DaemonSet runs one pod.
///
/// The JobSpec is inline in `spec` as in the seed (`spec.template`, `spec.backoffLimit`, ...):
/// in Rust it is the flattened field [`DaemonJobSpec::job`]. `spec.suspend` is the run control
/// (suspends the run), not the JobSpec field: the per-node Jobs are never created suspended. When
/// `spec.template` is absent (a `templateRef` is used) `job.template` is the empty default.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "jobsmith.dev",
    version = "v1alpha1",
    kind = "DaemonJob",
    namespaced,
    status = "DaemonJobStatus",
    shortname = "dj",
    category = "jobsmith",
    derive = "PartialEq",
    doc = "Runs one batch/v1 Job on every eligible node.",
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Phase of the run","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"PROGRESS","type":"string","description":"Finished nodes / eligible nodes","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"description":"Current state or problem","jsonPath":".status.message"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.template) || has(self.templateRef)").message("a DaemonJob needs a template or a templateRef")
)]
pub struct DaemonJobSpec {
    /// The batch/v1 JobSpec fields, inline in `spec` (`template`, `backoffLimit`, ...). Nested
    /// objects are validated by the API server when each Job is created.
    #[serde(flatten)]
    #[schemars(schema_with = "crate::crd::schema::flattened_job_spec")]
    pub job: JobSpec,
    /// Name of a JobTemplate in the same namespace, instead of an inline `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub template_ref: Option<String>,
    /// env, labels and annotations merged into every Job (the Job's own values win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_params: Option<GlobalParams>,
    /// Nodes that get no Job, as a comma-separated string (`node1, node2`), as in the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub exclude_node_list: Option<String>,
    /// Nodes that get no Job, as a list (combined with `excludeNodeList`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(max = 253)))]
    pub exclude_nodes: Option<Vec<String>>,
    /// While true no new Job is started; running Jobs finish. Resuming continues where it stopped.
    #[serde(default)]
    pub suspend: bool,
    /// At most this many Jobs of the run are active at once (unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<i32>,
    /// Retries and pod-failure rules of every node's Job (`backoffLimit`, `podFailurePolicy`).
    /// The JobSpec's own `backoffLimit`/`podFailurePolicy` (inline or in the template) win
    /// (docs/lifecycle.md "Retry policies").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Kueue admission of the run's Jobs: `queueName` and `priorityClassName`
    /// (docs/integrations.md "Kueue").
    #[serde(flatten)]
    pub queue: Queueing,
    /// What happens to the child Jobs (and their pods) once the run finished: `onSuccess` and
    /// `onFailure`, each `Keep` (default) or `Delete`. The run object and its status stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_cleanup: Option<JobsCleanup>,
}

impl DaemonJobSpec {
    /// Every excluded node name: `excludeNodeList` split on commas and trimmed, plus
    /// `excludeNodes`; empty names are ignored.
    pub fn excluded_nodes(&self) -> BTreeSet<String> {
        let from_list = self
            .exclude_node_list
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim);
        let from_vec = self.exclude_nodes.iter().flatten().map(|name| name.trim());
        from_list
            .chain(from_vec)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether an inline pod template was given (otherwise `templateRef` supplies it).
    pub fn has_inline_template(&self) -> bool {
        self.job.template.spec.is_some() || self.job.template.metadata.is_some()
    }
}

/// Observed state of a DaemonJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonJobStatus {
    /// Phase, conditions, progress, times and message.
    #[serde(flatten)]
    pub run: RunStatus,
    /// Nodes that get (or got) a Job.
    #[serde(default)]
    pub desired: u32,
    /// Node Jobs that succeeded.
    #[serde(default)]
    pub succeeded: u32,
    /// Node Jobs that failed.
    #[serde(default)]
    pub failed: u32,
    /// Node Jobs running.
    #[serde(default)]
    pub running: u32,
    /// Nodes that disappeared before their Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_lost: Option<u32>,
    /// Per-node state, at most `MAX_STEP_ENTRIES` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEntry>,
    /// Nodes not listed in `nodes` because of the size cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_nodes: Option<u32>,
}

/// State of the Job of one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeEntry {
    /// Node name.
    pub node: String,
    /// Name of the node's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Phase of the node's Job (NodeLost when the node disappeared before it finished).
    pub phase: StepPhase,
    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Why the node is in its phase, when not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node's attempt after a retry in place; omitted for attempt 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The exit code that failed the node's Job, when the Job names it; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
