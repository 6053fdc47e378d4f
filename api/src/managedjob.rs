//! ManagedJob (seed: jobs-manager-operator): a workflow of groups of jobs with params merged
//! downwards, list-order sequencing and explicit dependencies (SPEC §2).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Dependency, FailurePolicy, Params, RunStatus, StepCounts, StepEntry, StepPhase, default_retries,
};
use crate::kueue::Queueing;
use crate::lifecycle::JobsCleanup;
use crate::outputs::{MAX_OUTPUTS_PER_STEP, StepOutput};
use crate::retry_policy::RetryPolicy;

/// Most groups in one ManagedJob (bounds the CEL cost of the dependency rules).
pub const MAX_GROUPS: usize = 50;
/// Most jobs in one group. The self-dependency rule on `jobs` is costed by the API server as
/// groups × jobs × dependencies; 500 jobs exceeded the per-rule budget (×1.34), 300 fits with margin.
pub const MAX_JOBS_PER_GROUP: usize = 300;
/// Most explicit dependencies of one job.
pub const MAX_JOB_DEPENDENCIES: usize = 16;
/// Most exit steps (`spec.onExit`) of one ManagedJob.
pub const MAX_EXIT_JOBS: usize = 50;

/// A workflow of Jobs: groups run in list order unless `parallel`, jobs inside a group likewise,
/// plus explicit dependencies; params are merged from workflow to group to job.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "jobsmith.dev",
    version = "v1alpha1",
    kind = "ManagedJob",
    namespaced,
    status = "ManagedJobStatus",
    shortname = "mj",
    category = "jobsmith",
    derive = "PartialEq",
    doc = "A workflow of batch/v1 Jobs organised in groups, with dependencies and params merged downwards.",
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Phase of the workflow","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"PROGRESS","type":"string","description":"Finished jobs / all jobs","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"description":"Current state or problem","jsonPath":".status.message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ManagedJobSpec {
    /// Retries of every Job (its `backoffLimit`), 0 to 100; 0 means no retry. The same as
    /// `retryPolicy.limit`, which wins when set (on any level).
    #[serde(default = "default_retries")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: i32,
    /// Retries and pod-failure rules of every Job (`backoffLimit`, `podFailurePolicy`); groups
    /// and jobs may set their own, the most specific level wins field by field
    /// (docs/lifecycle.md "Retry policies").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Workflow-level params, merged into every group and job (the more specific level wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Params>,
    /// Groups of jobs, in execution order. Names are unique.
    #[schemars(length(min = 1, max = MAX_GROUPS))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(g, !has(g.dependencies) || g.dependencies.all(d, d.name != g.name))").message("a group cannot depend on itself"),
        validation = Rule::new("self.all(g, !has(g.dependencies) || g.dependencies.all(d, self.exists(o, o.name == d.name)))").message("every group dependency must name a group of this ManagedJob")
    )]
    pub groups: Vec<ManagedJobGroup>,
    /// What a failed job does to the rest: `ContinueIndependent` (default; independent work still
    /// runs, dependents are aborted) or `FailFast` (no new job starts after the first failure).
    #[serde(default = "default_failure_policy")]
    pub failure_policy: FailurePolicy,
    /// While true no new Job is started; running Jobs finish. Resuming continues where it stopped.
    #[serde(default)]
    pub suspend: bool,
    /// At most this many Jobs of the workflow are active at once (unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<i32>,
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
    /// Exit steps: jobs that run once every other job is terminal, whatever the outcome, with
    /// `JOBSMITH_RUN_PHASE`, `JOBSMITH_FAILED_STEPS` and `JOBSMITH_RUN_NAME` in their env. They
    /// form the group `onExit` (step keys `onExit/<job>`, Jobs `<managedjob>-onexit-<job>`),
    /// ordered like the jobs of a group; their dependencies name other exit jobs only. A failed
    /// exit job makes the run `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXIT_JOBS))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(j, !has(j.dependencies) || j.dependencies.all(d, d.name != j.name))").message("a job cannot depend on itself")
    )]
    pub on_exit: Vec<GroupJob>,
}

fn default_failure_policy() -> FailurePolicy {
    FailurePolicy::ContinueIndependent
}

/// A group of jobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedJobGroup {
    /// Group name, a DNS-1123 label unique in the workflow; part of the Job names.
    #[schemars(length(min = 1, max = 63), pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// false (default): the group waits for every group listed before it. true: no automatic
    /// dependency (explicit `dependencies` still apply). It does not make the group's jobs parallel.
    #[serde(default)]
    pub parallel: bool,
    /// Group-level params, merged into each job of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Params>,
    /// Groups that must reach a status before this group starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub dependencies: Vec<Dependency>,
    /// Retries and pod-failure rules of the group's Jobs (over the workflow's, field by field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Kueue admission of the group's Jobs, overriding the workflow's field by field.
    #[serde(flatten)]
    pub queue: Queueing,
    /// Jobs of the group, in execution order. Names are unique in the group.
    #[schemars(length(min = 1, max = MAX_JOBS_PER_GROUP))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(j, !has(j.dependencies) || j.dependencies.all(d, d.name != j.name))").message("a job cannot depend on itself")
    )]
    pub jobs: Vec<GroupJob>,
}

/// One job of a group: becomes one batch/v1 Job named `<managedjob>-<group>-<job>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.image) || has(self.templateRef)").message("a job needs an image or a templateRef")
)]
pub struct GroupJob {
    /// Job name, a DNS-1123 label unique in the group; part of the Job name.
    #[schemars(length(min = 1, max = 63), pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Container image. Required unless `templateRef` is set (then it replaces the template's
    /// first container image when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// Container entrypoint (replaces the image's ENTRYPOINT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Container arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// false (default): the job waits for every job listed before it in its group. true: no
    /// automatic dependency.
    #[serde(default)]
    pub parallel: bool,
    /// Job-level params (the most specific level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Params>,
    /// Jobs that must reach a status before this one starts: a job of the same group, `group/job`,
    /// or a full generated Job name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_JOB_DEPENDENCIES))]
    pub dependencies: Vec<Dependency>,
    /// Name of a JobTemplate in the same namespace to start from (params and image/command/args
    /// apply on top).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub template_ref: Option<String>,
    /// Retries and pod-failure rules of this Job (over the group's and the workflow's, field
    /// by field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Kueue admission of this job's Job, overriding the group's field by field.
    #[serde(flatten)]
    pub queue: Queueing,
    /// Small results of this job, read from its container's termination message when its Job
    /// succeeded; dependents take them with `valueFrom.stepOutput` (docs/integrations.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_OUTPUTS_PER_STEP))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub outputs: Vec<StepOutput>,
}

/// Observed state of a ManagedJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedJobStatus {
    /// Phase, conditions, progress, times and message.
    #[serde(flatten)]
    pub run: RunStatus,
    /// Per-group state, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,
    /// Per-job state (key `group/job`), at most `MAX_STEP_ENTRIES` entries; the compiled params
    /// are not stored (they are recomputed from the spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<StepEntry>,
    /// Jobs not listed in `jobs` because of the size cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_jobs: Option<u32>,
}

/// State of one group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Group name.
    pub name: String,
    /// Phase of the group (Pending, Running, Succeeded, Failed, Aborted).
    pub phase: StepPhase,
    /// Jobs of the group by phase.
    #[serde(default)]
    pub counts: StepCounts,
}
