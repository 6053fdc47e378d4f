//! Types shared by several kinds: phases, condition types and reasons, ManagedJob params,
//! JobFlow/DaemonJob global params, dependencies, failure policy and the common run status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, ResourceRequirements, Volume, VolumeMount,
};

use crate::outputs::{OutputEnvVar, StepOutputs};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most per-step entries (jobs, flows, nodes) kept in a status. Entries beyond it are counted
/// in an `omitted…` field; their detail is derivable from the child Jobs (label-selected). With
/// entries of about 250 bytes this keeps a status well under 200 KiB, far from etcd's 1.5 MiB.
pub const MAX_STEP_ENTRIES: usize = 500;

/// Condition types written by the controllers (kstatus-compatible).
pub mod condition_types {
    /// The object reached its goal (run kinds: succeeded; JobTemplate: valid and usable).
    pub const READY: &str = "Ready";
    /// Work remains: the controller is still acting on the object.
    pub const RECONCILING: &str = "Reconciling";
    /// The object cannot make progress without a change by the user (terminal failure).
    pub const STALLED: &str = "Stalled";
    /// The run finished successfully.
    pub const COMPLETE: &str = "Complete";
    /// The run finished with a failure.
    pub const FAILED: &str = "Failed";
}

/// Condition reasons written by the controllers (CamelCase, as `metav1.Condition` requires).
pub mod reasons {
    /// The spec is invalid (cycle, unknown dependency, duplicate name, bad value).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A `templateRef` names a JobTemplate that does not exist (yet).
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// A referenced JobTemplate exists but cannot be used (for example no containers).
    pub const TEMPLATE_INVALID: &str = "TemplateInvalid";
    /// A Job with the step's name exists but is owned by something else; it is never adopted.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// A JobRun overrides a field its JobTemplate does not list in `overridable`.
    pub const OVERRIDE_NOT_ALLOWED: &str = "OverrideNotAllowed";
    /// A DaemonJob node disappeared before its Job finished.
    pub const NODE_LOST: &str = "NodeLost";
    /// A step's Job went away before its outcome was recorded: it is not run again.
    pub const LOST: &str = "Lost";
    /// The API server refused to create a step's Job (quota, admission webhook, RBAC, ...):
    /// the step waits and the create is retried with backoff.
    pub const CREATE_REFUSED: &str = "CreateRefused";
    /// A step reads an output that its producer did not provide (no termination message, not
    /// JSON, no such key, over the size bound, or the producer did not succeed): the step
    /// fails without a Job.
    pub const OUTPUT_MISSING: &str = "OutputMissing";
    /// A step waits for the outputs of its producer to be read (the read was refused or
    /// failed; it is tried again with backoff).
    pub const OUTPUT_PENDING: &str = "OutputPending";
    /// A step's Job exists and is suspended (by its template, or by hand) without Kueue's queue
    /// label: the step waits, holds no `maxParallel` slot, and runs when the Job is resumed.
    pub const STEP_SUSPENDED: &str = "StepSuspended";
    /// A step's Job waits in a Kueue LocalQueue (created suspended with the queue label, not
    /// admitted yet, or evicted): the step waits and runs when Kueue admits the Job.
    pub const QUEUED: &str = "Queued";
    /// Steps are being created or are running.
    pub const PROGRESSING: &str = "Progressing";
    /// Every step succeeded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The run finished with a failure (the reason of `Ready`/`Stalled`/`Failed` on a failed run,
    /// as docs/architecture.md lists).
    pub const FAILED: &str = "Failed";
    /// At least one step failed and nothing more can run.
    pub const STEP_FAILED: &str = "StepFailed";
    /// `spec.suspend` is set and no Job is running.
    pub const SUSPENDED: &str = "Suspended";
    /// The object was observed but not acted on yet.
    pub const PENDING: &str = "Pending";
    /// The run's `spec.activeDeadlineSeconds` passed before it finished: no new step started,
    /// running Jobs were stopped, the run failed.
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// The JobTemplate is valid and usable.
    pub const TEMPLATE_VALID: &str = "TemplateValid";
}

/// Phase of a run kind (`status.phase`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Observed, nothing started yet (or waiting for a template).
    #[default]
    Pending,
    /// At least one Job was created and work remains.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed and nothing more can run, or the spec is invalid.
    Failed,
    /// `spec.suspend` is set and no Job of the run is active.
    Suspended,
}

impl Phase {
    /// Whether the run is over (`Succeeded` or `Failed`).
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Phase of one step (one Job) or of a ManagedJob group.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum StepPhase {
    /// Not created yet (waiting for dependencies, a template, `maxParallel` or `suspend`).
    #[default]
    Pending,
    /// The Job exists and has not finished.
    Running,
    /// The Job succeeded.
    Succeeded,
    /// The Job failed (or its name is taken by a Job of another owner).
    Failed,
    /// Never started: a dependency can no longer reach its required outcome (or fail-fast).
    Aborted,
    /// DaemonJob: the node disappeared before the Job finished; does not count as success.
    NodeLost,
    /// Never started because it is not needed (a `failed`/`completed` handler whose dependency
    /// succeeded or never ran). Neutral: fails nothing, blocks nothing.
    Skipped,
}

impl StepPhase {
    /// Whether the step is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepPhase::Succeeded
                | StepPhase::Failed
                | StepPhase::Aborted
                | StepPhase::NodeLost
                | StepPhase::Skipped
        )
    }
}

/// The outcome a dependency must reach before the dependent may start.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequiredStatus {
    /// The dependency must succeed (default).
    #[default]
    Succeeded,
    /// The dependency must fail.
    Failed,
    /// The dependency must finish, successfully or not.
    Completed,
}

impl RequiredStatus {
    /// Whether this is the default (`succeeded`), which is omitted when serializing.
    fn is_default(&self) -> bool {
        *self == RequiredStatus::Succeeded
    }
}

/// A dependency of a ManagedJob group or job: the name of a sibling and the outcome it must reach.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Dependency {
    /// Name of the dependency. For a group: another group's name. For a job: a job of the same
    /// group, `group/job`, or the full generated Job name.
    #[schemars(length(min = 1, max = 127))]
    pub name: String,
    /// Outcome the dependency must reach: `succeeded` (default), `failed` or `completed`.
    #[serde(default, skip_serializing_if = "RequiredStatus::is_default")]
    pub status: RequiredStatus,
}

/// Name used in the architecture document for [`Dependency`].
pub type DependencySpec = Dependency;

/// What happens to the rest of a run after a step fails.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FailurePolicy {
    /// Work that does not depend on the failed step still runs; dependents are `Aborted`.
    ContinueIndependent,
    /// No new Job starts after the first failure; running Jobs finish.
    FailFast,
}

/// Restart policy of a Job's pods (Jobs allow only these two).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobRestartPolicy {
    /// Restart the container in place on failure (default after merging).
    OnFailure,
    /// Never restart; a failed container fails the pod.
    Never,
}

impl JobRestartPolicy {
    /// The value as written in a pod spec.
    pub fn as_str(self) -> &'static str {
        match self {
            JobRestartPolicy::OnFailure => "OnFailure",
            JobRestartPolicy::Never => "Never",
        }
    }
}

/// `imagePullPolicy` as the seed writes it: a string (`Always`) or a one-element list
/// (`["Always"]`). Serialized back in the shape it was written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum ImagePullPolicyParam {
    /// `imagePullPolicy: Always`
    Single(String),
    /// `imagePullPolicy: ["Always"]` (seed form; only the first element is used).
    List(Vec<String>),
}

impl ImagePullPolicyParam {
    /// The policy written, if any (the first element of the list form).
    pub fn policy(&self) -> Option<&str> {
        match self {
            ImagePullPolicyParam::Single(value) => Some(value.as_str()),
            ImagePullPolicyParam::List(values) => values.first().map(String::as_str),
        }
    }

    /// Whether the value is well formed: one of `Always`, `IfNotPresent`, `Never`, and the list
    /// form has exactly one element. The controller reports `InvalidSpec` otherwise.
    pub fn is_valid(&self) -> bool {
        let single = match self {
            ImagePullPolicyParam::Single(_) => true,
            ImagePullPolicyParam::List(values) => values.len() == 1,
        };
        single && matches!(self.policy(), Some("Always" | "IfNotPresent" | "Never"))
    }
}

impl JsonSchema for ImagePullPolicyParam {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ImagePullPolicyParam".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::crd::schema::string_or_string_list(generator)
    }
}

/// ManagedJob parameters, allowed on the workflow, each group and each job, merged downwards
/// (most specific wins; docs/managedjob.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::schema::volume_mounts_alias)]
#[x_kube(
    validation = Rule::new("!(has(self.volumeMount) && has(self.volumeMounts))").message("set volumeMount or its alias volumeMounts, not both")
)]
pub struct Params {
    /// Whole ConfigMaps/Secrets exposed as environment variables (`envFrom` of the containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub from_env: Option<Vec<EnvFromSource>>,
    /// Environment variables of the containers, merged by name (the job's first, then the
    /// group's, then the workflow's). Besides the `core/v1` sources, `valueFrom.stepOutput`
    /// takes the value of an output of a step this job depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Option<Vec<OutputEnvVar>>,
    /// Pod volumes, merged by name. Each item is a `core/v1` Volume, validated by the API
    /// server when the Job is created.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::crd::schema::known_volumes"
    )]
    #[schemars(schema_with = "crate::crd::schema::named_object_list")]
    pub volumes: Option<Vec<Volume>>,
    /// Volume mounts of every container, merged by (volume name, mountPath): mounts of one volume
    /// at several paths all stay; at one path the most specific level wins. `volumeMounts` is
    /// accepted as an alias.
    #[serde(
        default,
        alias = "volumeMounts",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 64))]
    pub volume_mount: Option<Vec<VolumeMount>>,
    /// Service account the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service_account: Option<String>,
    /// Pod restart policy: `OnFailure` (default after merging) or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<JobRestartPolicy>,
    /// Names of Secrets used to pull images (a list of names, as in the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub image_pull_secrets: Option<Vec<String>>,
    /// Image pull policy of the containers: `Always`, `IfNotPresent` (default after merging) or
    /// `Never`. Written as a string or, as in the seed, a one-element list (`["Always"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicyParam>,
    /// Labels added to the Job and its pods, merged key by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to the Job and its pods, merged key by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Compute resources of the containers, merged per resource name within limits/requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Parameters applied to every Job of a JobFlow or DaemonJob (the Job's own values win).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalParams {
    /// Environment variables added to every container (merged by name; the Job's own win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Option<Vec<EnvVar>>,
    /// Labels added to every Job and its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to every Job and its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Pins every pod to this node (`spec.nodeName`). Ignored by DaemonJob, which pins each
    /// Job to its own node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub node_name: Option<String>,
}

/// Status fields shared by the run kinds (ManagedJob, JobFlow, DaemonJob, JobRun); flattened
/// into each kind's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Phase of the run: Pending, Running, Succeeded, Failed or Suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Conditions (Ready, Reconciling, Stalled, Complete, Failed), keyed by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Finished steps over all steps, as `"<done>/<total>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// When the first Job of the run was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Human-readable summary of the current state (the problem, when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The durable record of every step (never capped): which steps had a Job and how each
    /// finished. It is what keeps a step from running twice after its Job is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<StepRecord>,
    /// The last retry requests the manager acted on (annotation
    /// `jobsmith.dev/retry-requested-at`), oldest first, at most [`MAX_RETRY_ENTRIES`]
    /// (docs/lifecycle.md "Retry in place"). A request whose value is listed here is never
    /// acted on again (a GitOps sync that re-applies the annotation changes nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryEntry>,
    /// How many retry requests were acted on in total (also those no longer listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// The outputs of the steps that declare some, read once when each step's Job succeeded
    /// (docs/integrations.md "Step outputs"); kept whatever the cap on step entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["step".into()]))]
    pub outputs: Vec<StepOutputs>,
}

/// Most entries of `status.retries` kept (the oldest go first; `retryCount` counts them all).
pub const MAX_RETRY_ENTRIES: usize = 10;

/// Most step keys listed in one retry entry (`stepCount` counts them all).
pub const MAX_RETRY_STEPS_LISTED: usize = 20;

/// One retry request the manager acted on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryEntry {
    /// The value of the annotation `jobsmith.dev/retry-requested-at`, exactly as written.
    pub requested_at: String,
    /// When the manager acted on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honoured_at: Option<Time>,
    /// The object's `metadata.generation` at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The steps that got a new attempt (at most 20 keys listed; `stepCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// How many steps got a new attempt (0: nothing had failed).
    #[serde(default)]
    pub step_count: u32,
    /// Why the request was not carried out (an unparsable time, unknown steps, a kind that
    /// cannot be retried); absent when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// The record of every step of a run, as sets of step positions (`"0-9,12,15-20"`) in the
/// order of the plan whose `digest` it carries. Complete at any size and compact: a 10,000-step
/// run that finished in order is a few characters per set (docs/guarantees.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// How many steps the plan has.
    #[serde(default)]
    pub steps: u32,
    /// The first 16 hex characters of a SHA-256 of the plan's step keys, in order.
    #[serde(default)]
    pub digest: String,
    /// Steps whose Job was created (and may still run).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// Steps whose Job succeeded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub succeeded: String,
    /// Steps whose Job failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failed: String,
    /// Steps whose outcome cannot be known (their Job went away before it was recorded, or
    /// their node did): never run again, never counted as a success.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lost: String,
    /// The attempt of every step above attempt 1, as attempt number -> set of positions
    /// (`{"2": "3,7-9"}`); the four sets above describe each step's latest attempt. Absent
    /// steps are at attempt 1 (docs/lifecycle.md "Retry in place").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attempts: BTreeMap<String, String>,
}

/// Counts of steps by phase (ManagedJob groups).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepCounts {
    /// Steps in total.
    #[serde(default)]
    pub total: u32,
    /// Steps not created yet.
    #[serde(default)]
    pub pending: u32,
    /// Steps whose Job is running.
    #[serde(default)]
    pub running: u32,
    /// Steps whose Job succeeded.
    #[serde(default)]
    pub succeeded: u32,
    /// Steps whose Job failed.
    #[serde(default)]
    pub failed: u32,
    /// Steps that will never start.
    #[serde(default)]
    pub aborted: u32,
    /// Handlers that are not needed (never start; neutral).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// State of one step (one Job) in a status: a ManagedJob job or a JobFlow flow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepEntry {
    /// Step key: `group/job` for a ManagedJob, the flow name for a JobFlow.
    pub key: String,
    /// Name of the step's Job (present once it is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Phase of the step.
    pub phase: StepPhase,
    /// When the Job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the Job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Why the step is in its phase, when not obvious (e.g. `NameConflict`, `TemplateNotFound`;
    /// for a failed Job the reason of its `FailureTarget`/`Failed` condition, such as
    /// `BackoffLimitExceeded`, `PodFailurePolicy` or `DeadlineExceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The step's attempt (a retry in place gives a failed step a new attempt with a Job of
    /// its own); omitted for attempt 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The exit code that failed the step's Job, when the Job names it (a `podFailurePolicy`
    /// rule that failed the Job names the container's exit code); omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// true for an exit step (`spec.onExit`); omitted for the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_exit: bool,
}

/// Default value of `spec.retries` (ManagedJob).
pub fn default_retries() -> i32 {
    1
}
