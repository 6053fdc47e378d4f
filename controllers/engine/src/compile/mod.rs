//! Every run kind compiles its spec into the same plain data (docs/architecture.md "The compile
//! interface"): a [`Plan`] (the validated step graph, one [`PlannedStep`] per Job, the run
//! controls) and, per step, the complete `batch/v1` Job ([`BuildError`] when it cannot be built
//! yet or at all). The manager's one run mechanism drives all kinds with it.
//!
//! - [`managedjob`]: groups of jobs, list-order sequencing, explicit dependencies, params.
//! - [`jobflow`]: flows with dependencies, globalParams, shared volumes.
//! - [`daemonjob`]: one step per eligible (or already known) node.
//! - [`jobrun`]: one step from a JobTemplate with overrides.
//! - [`outputs`]: step outputs: what a step reads, the values read from a succeeded pod's
//!   termination message, the values set in a dependent's Job.
//! - [`exit`]: exit steps (`spec.onExit`): reserved names, the run's outcome in their env.

use std::sync::OnceLock;

use jobsmith_api::reasons;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

use crate::build::params::ParamsError;
use crate::build::retry_policy::RetryPolicyError;
use crate::schedule::dag::{Dag, GraphError, StepId};
use crate::schedule::{FailurePolicy, Policies};

pub mod daemonjob;
pub mod exit;
pub mod jobflow;
pub mod jobrun;
pub mod managedjob;
pub mod outputs;

pub use crate::build::BuildError;

/// One step of a plan: becomes exactly one Job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlannedStep {
    /// Status key: `group/job`, the flow name, the node name, the JobRun name.
    pub key: String,
    /// The Job's name (`naming::child_name`), deterministic.
    pub job_name: String,
    /// ManagedJob group (metrics label), else `None`.
    pub group: Option<String>,
    /// JobTemplate to resolve when the Job is created.
    pub template_ref: Option<String>,
    /// The outputs the step declares (read once when its Job succeeded).
    pub outputs: Vec<jobsmith_api::StepOutput>,
    /// The env variables of its Job whose values are other steps' outputs.
    pub inputs: Vec<crate::compile::outputs::OutputInput>,
    /// An exit step (`spec.onExit`): started only once every other step is terminal, whatever
    /// the outcome (also after FailFast stopped new work), and built with the run's outcome in
    /// its env (`crate::compile::exit`). The scheduler reads it through [`Dag::is_exit`].
    pub exit: bool,
}

/// A compiled run: `dag` step `StepId(i)` is `steps[i]`.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The validated step graph.
    pub dag: Dag,
    /// The steps, in the DAG's order.
    pub steps: Vec<PlannedStep>,
    /// From `spec.failurePolicy`, `spec.suspend`, `spec.maxParallel`.
    pub policies: Policies,
    /// The digest of the step keys (`record::digest`), computed at its first use: every status
    /// write carries it, and hashing 10,000 keys on each one was a tenth of a reconcile.
    pub key_digest: OnceLock<String>,
}

impl Plan {
    /// A plan whose graph knows which steps are exit steps (from [`PlannedStep::exit`]).
    pub fn new(mut dag: Dag, steps: Vec<PlannedStep>, policies: Policies) -> Plan {
        let exit: Vec<bool> = steps.iter().map(|s| s.exit).collect();
        dag.mark_exit_steps(&exit);
        Plan {
            dag,
            steps,
            policies,
            key_digest: OnceLock::new(),
        }
    }

    /// The digest of the step keys in plan order (`record::digest`), computed once per plan.
    pub fn key_digest(&self) -> &str {
        self.key_digest.get_or_init(|| {
            crate::status::record::digest(self.steps.iter().map(|s| s.key.as_str()))
        })
    }

    /// The step with this id.
    pub fn step(&self, id: StepId) -> Option<&PlannedStep> {
        self.steps.get(id.index())
    }

    /// The id of the step with this key.
    pub fn step_id(&self, key: &str) -> Option<StepId> {
        self.dag.step_id(key)
    }

    /// The id of the step whose Job has this name.
    pub fn step_by_job_name(&self, job_name: &str) -> Option<StepId> {
        self.steps
            .iter()
            .position(|s| s.job_name == job_name)
            .and_then(|i| u32::try_from(i).ok())
            .map(StepId)
    }

    /// Every JobTemplate name the plan refers to, sorted and deduplicated.
    pub fn template_refs(&self) -> Vec<String> {
        let mut refs: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| s.template_ref.clone())
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// Why a spec cannot run. `Display` is the precise message for `status.message`, the
/// `Stalled` condition and the `InvalidSpec` Warning Event (SPEC §1).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum InvalidSpec {
    /// The step graph is invalid (cycle, self dependency, unknown dependency, ...).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Two groups of a ManagedJob share a name.
    #[error("duplicate group name \"{0}\"")]
    DuplicateGroup(String),
    /// Two jobs of one ManagedJob group share a name.
    #[error("duplicate job name \"{0}\"")]
    DuplicateJob(String),
    /// Two flows of a JobFlow share a name.
    #[error("duplicate flow name \"{0}\"")]
    DuplicateFlow(String),
    /// A group, job or flow depends on itself.
    #[error("self dependency \"{0}\"")]
    SelfDependency(String),
    /// A dependency names nothing of this object.
    #[error("{owner}: unknown dependency \"{name}\"")]
    UnknownDependency {
        /// Who holds it: `group "g"`, `job "g/j"`, `flow "f"`.
        owner: String,
        /// The name as written.
        name: String,
    },
    /// Two steps would get the same Job name.
    #[error("\"{first}\" and \"{second}\" both get the Job name \"{job_name}\"")]
    JobNameCollision {
        /// The first step's key.
        first: String,
        /// The second step's key.
        second: String,
        /// The shared Job name.
        job_name: String,
    },
    /// Bad params (for example an invalid `imagePullPolicy`).
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A step has nothing to run: no image/JobSpec and no template reference.
    #[error("{0}")]
    NoJobSpec(String),
    /// A `retryPolicy` that cannot be used (a code in both lists, rules with `OnFailure`, ...).
    #[error(transparent)]
    RetryPolicy(#[from] RetryPolicyError),
    /// Step outputs declared or read wrongly (unknown step or output, not a dependency, ...).
    #[error("{0}")]
    Outputs(String),
    /// An exit step depends on a step that is not an exit step (exit steps run after all of
    /// them anyway).
    #[error("{owner}: exit steps may depend only on other exit steps, not on \"{name}\"")]
    ExitDependency {
        /// Who holds it: `job "onExit/j"`, `flow "f"`.
        owner: String,
        /// The name as written.
        name: String,
    },
    /// A name reserved for the exit steps is used by something else.
    #[error("{0}")]
    ReservedName(String),
}

impl InvalidSpec {
    /// A short static category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Graph(e) => e.category(),
            Self::DuplicateGroup(_)
            | Self::DuplicateJob(_)
            | Self::DuplicateFlow(_)
            | Self::JobNameCollision { .. } => "duplicate_name",
            Self::SelfDependency(_) => "self_dependency",
            Self::UnknownDependency { .. } | Self::ExitDependency { .. } => "unknown_dependency",
            Self::ReservedName(_) => "duplicate_name",
            Self::Params(_) => "invalid_params",
            Self::NoJobSpec(_) => "no_job_spec",
            Self::RetryPolicy(_) => "invalid_retry_policy",
            Self::Outputs(_) => "invalid_outputs",
        }
    }

    /// The condition reason: always `InvalidSpec`.
    pub fn reason(&self) -> &'static str {
        reasons::INVALID_SPEC
    }
}

/// A spec's run controls as the scheduler reads them (a negative `maxParallel` acts as 0, i.e. 1).
pub(crate) fn policies(
    failure: FailurePolicy,
    suspend: bool,
    max_parallel: Option<i32>,
) -> Policies {
    Policies {
        failure,
        suspend,
        max_parallel: max_parallel.map(|n| u32::try_from(n).unwrap_or(0)),
    }
}

/// The step of `plan` with id `step`, or `BuildError::Invalid`.
pub(crate) fn planned(plan: &Plan, step: StepId) -> Result<&PlannedStep, BuildError> {
    plan.step(step)
        .ok_or_else(|| BuildError::Invalid(format!("step {} is not in the plan", step.0)))
}

/// Moves a built Job's `ttlSecondsAfterFinished` into the [`TTL_AFTER_RECORDED`] annotation: a
/// Job's own TTL could delete it before the manager recorded its outcome (the manager was down,
/// or between the finish and the next reconcile), and a step whose outcome is unknown would be
/// lost. The manager deletes the Job itself that long after the outcome is recorded.
///
/// [`TTL_AFTER_RECORDED`]: jobsmith_api::labels::TTL_AFTER_RECORDED
pub fn defer_ttl(job: &mut Job) {
    let Some(ttl) = job
        .spec
        .as_mut()
        .and_then(|s| s.ttl_seconds_after_finished.take())
    else {
        return;
    };
    job.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            jobsmith_api::labels::TTL_AFTER_RECORDED.to_owned(),
            ttl.max(0).to_string(),
        );
}

/// Makes a built Job (named for attempt 1) the Job of the step's attempt `attempt`: attempt
/// 1 is left as built; from attempt 2 on the name is [`naming::attempt_name`] and the Job and
/// its pod template carry the label [`ATTEMPT`]. Applied by the run mechanism to every kind's
/// Job, so each attempt of a step has a name of its own (docs/lifecycle.md "Retry in place").
///
/// [`naming::attempt_name`]: crate::build::naming::attempt_name
/// [`ATTEMPT`]: jobsmith_api::labels::ATTEMPT
pub fn apply_attempt(job: &mut Job, attempt: u32) {
    if attempt <= 1 {
        return;
    }
    let base = job.metadata.name.clone().unwrap_or_default();
    job.metadata.name = Some(crate::build::naming::attempt_name(&base, attempt));
    let value = attempt.to_string();
    job.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(jobsmith_api::labels::ATTEMPT.to_owned(), value.clone());
    if let Some(spec) = job.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(jobsmith_api::labels::ATTEMPT.to_owned(), value);
    }
}

/// The TTL a Job asked for through [`defer_ttl`], in seconds (from the Job's metadata).
pub fn deferred_ttl(meta: &ObjectMeta) -> Option<u64> {
    meta.annotations
        .as_ref()?
        .get(jobsmith_api::labels::TTL_AFTER_RECORDED)?
        .parse()
        .ok()
}
