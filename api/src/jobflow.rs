//! JobFlow (seed: job-deploy-operator): flows with dependencies, each a full JobSpec or a
//! JobTemplate reference, global params and shared volumes (SPEC §3).

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{FailurePolicy, GlobalParams, RunStatus, StepEntry};
use crate::kueue::Queueing;
use crate::lifecycle::JobsCleanup;
use crate::outputs::{MAX_OUTPUTS_PER_STEP, OutputEnvVar, StepOutput};
use crate::retry_policy::RetryPolicy;

/// Most flows in one JobFlow: the scale target (a 10,000-step run). The schema therefore checks
/// only what costs flows × dependencies (no self dependency); that every dependency names a
/// sibling would cost flows × dependencies × flows, past what the API server accepts at this
/// size, so the manager checks it (`unknown dependency`, InvalidSpec) before creating any Job.
pub const MAX_FLOWS: usize = 10_000;
/// Most dependencies of one flow.
pub const MAX_FLOW_DEPENDENCIES: usize = 25;
/// Most exit flows (`spec.onExit`) of one JobFlow.
pub const MAX_EXIT_FLOWS: usize = 50;

/// A DAG of Jobs ("flows"): each flow starts when the flows it depends on succeeded.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "jobsmith.dev",
    version = "v1alpha1",
    kind = "JobFlow",
    namespaced,
    status = "JobFlowStatus",
    shortname = "jf",
    category = "jobsmith",
    derive = "PartialEq",
    doc = "A dependency graph of batch/v1 Jobs with global params and shared volumes.",
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Phase of the flow","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"PROGRESS","type":"string","description":"Finished flows / all flows","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"description":"Current state or problem","jsonPath":".status.message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct JobFlowSpec {
    /// env, labels and annotations merged into every flow's Job (the flow's own values win);
    /// `nodeName` pins every pod to one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_params: Option<GlobalParams>,
    /// The flows (one Job each). Names are unique.
    #[schemars(length(min = 1, max = MAX_FLOWS))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(f, !has(f.dependencies) || f.dependencies.all(d, d != f.name))").message("a flow cannot depend on itself")
    )]
    pub flows: Vec<Flow>,
    /// Volumes added to the pods of every flow that declares `shareVolumeMounts`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::crd::schema::known_volumes"
    )]
    #[schemars(schema_with = "crate::crd::schema::named_object_list")]
    pub share_volumes: Option<Vec<Volume>>,
    /// What a failed flow does to the rest: `FailFast` (default; no new flow starts, running ones
    /// finish) or `ContinueIndependent` (flows that do not depend on it go on).
    #[serde(default = "default_failure_policy")]
    pub failure_policy: FailurePolicy,
    /// While true no new Job is started; running Jobs finish. Resuming continues where it stopped.
    #[serde(default)]
    pub suspend: bool,
    /// At most this many Jobs of the flow are active at once (unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<i32>,
    /// Retries and pod-failure rules of every flow's Job (`backoffLimit`, `podFailurePolicy`).
    /// A flow's own `jobTemplate` (or JobTemplate) values win over it, a flow's `retryPolicy`
    /// wins over both (docs/lifecycle.md "Retry policies").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Kueue admission of the run's Jobs: `queueName` and `priorityClassName`
    /// (docs/integrations.md "Kueue").
    #[serde(flatten)]
    pub queue: Queueing,
    /// Seconds the whole run may take, counted from `status.startTime` (after a retry in place,
    /// from the moment the retry was acted on). Past it no new step starts, running Jobs are
    /// stopped (their own `activeDeadlineSeconds` is shortened; they are never deleted) and the
    /// run is `Failed` with reason `DeadlineExceeded` (docs/lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after the run finished (`status.completionTime`) when the run object itself is
    /// deleted, and with it its Jobs and their pods. 0: as soon as it finished. Unset: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// What happens to the child Jobs (and their pods) once the run finished: `onSuccess` and
    /// `onFailure`, each `Keep` (default) or `Delete`. The run object and its status stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_cleanup: Option<JobsCleanup>,
    /// Exit flows: flows that run once every other flow is terminal, whatever the outcome, with
    /// `JOBSMITH_RUN_PHASE`, `JOBSMITH_FAILED_STEPS` and `JOBSMITH_RUN_NAME` in their env.
    /// Names are unique among all flows; their dependencies name other exit flows only. A failed
    /// exit flow makes the run `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXIT_FLOWS))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(f, !has(f.dependencies) || f.dependencies.all(d, d != f.name))").message("a flow cannot depend on itself")
    )]
    pub on_exit: Vec<Flow>,
}

fn default_failure_policy() -> FailurePolicy {
    FailurePolicy::FailFast
}

/// One flow: becomes one batch/v1 Job named `<jobflow>-<flow>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.jobTemplate) != has(self.jobTemplateRef)").message("a flow sets exactly one of jobTemplate and jobTemplateRef")
)]
pub struct Flow {
    /// Flow name, a DNS-1123 label unique in the JobFlow; part of the Job name.
    #[schemars(length(min = 1, max = 63), pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Names of the flows that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FLOW_DEPENDENCIES), inner(length(min = 1, max = 63)))]
    pub dependencies: Vec<String>,
    /// A full batch/v1 JobSpec (`template.spec.containers`...). Validated by the API server when
    /// the Job is created. Pods get `restartPolicy: Never`; `backoffLimit` defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed: a `JobSpec` is over 2 KiB even when empty, and most flows name a JobTemplate
    // instead; inline, a 10,000-flow JobFlow cost 24 MB per decoded copy (3 MB boxed).
    #[schemars(schema_with = "crate::crd::schema::job_spec_object")]
    pub job_template: Option<Box<JobSpec>>,
    /// Name of a JobTemplate in the same namespace, instead of `jobTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub job_template_ref: Option<String>,
    /// Mounts of `spec.shareVolumes`, added to every container of this flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub share_volume_mounts: Option<Vec<VolumeMount>>,
    /// Retries and pod-failure rules of this flow's Job; wins over the flow's JobSpec and the
    /// run's `retryPolicy`, field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Kueue admission of this flow's Job, overriding the JobFlow's field by field.
    #[serde(flatten)]
    pub queue: Queueing,
    /// Environment variables set in every container (and init container) of this flow,
    /// replacing the containers' own of the same name; `valueFrom.stepOutput` takes the value
    /// of an output of a flow this one depends on (docs/integrations.md "Step outputs").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<OutputEnvVar>,
    /// Small results of this flow, read from its container's termination message when its Job
    /// succeeded; dependents take them with `valueFrom.stepOutput`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_OUTPUTS_PER_STEP))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub outputs: Vec<StepOutput>,
}

/// Observed state of a JobFlow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFlowStatus {
    /// Phase, conditions, progress, times and message.
    #[serde(flatten)]
    pub run: RunStatus,
    /// Per-flow state (key: the flow name), at most `MAX_STEP_ENTRIES` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<StepEntry>,
    /// Flows not listed in `flows` because of the size cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_flows: Option<u32>,
}
