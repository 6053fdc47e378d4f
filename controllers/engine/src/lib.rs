//! The Jobsmith engine: the pure library shared by the five reconcilers.
//!
//! No kube client, no async runtime, no clock: every input, the current time included, is a
//! parameter, so everything here is unit- and property-tested. See `docs/architecture.md`.
//!
//! - [`naming`]: deterministic child names and label values.
//! - [`observe`]: a `batch/v1` Job -> [`StepOutcome`].
//! - [`kueue`]: Kueue admission: queued Jobs (created suspended with the queue label).
//! - [`dag`]: the step graph and its validation.
//! - [`schedule`]: observed outcomes + policies -> what to create, phases, progress.
//! - [`conditions`]: kstatus conditions with stable `lastTransitionTime`.
//! - [`rollup`]: decision + observed Jobs + blockers -> the run status (bounded step entries).
//! - [`eligibility`]: DaemonJob node eligibility and node pinning.
//! - [`params`]: ManagedJob params merging, globalParams, JobRun overrides, GitOps stripping.
//! - [`template`]: JobTemplate resolution and the child Job's metadata.
//! - [`record`]: the durable step record (`status.record`), attempts included.
//! - [`outputs`]: step outputs: what a step reads, the values read from a succeeded pod's
//!   termination message, the values set in a dependent's Job.
//! - [`retry`]: retry in place: new requests, the steps they re-run, the bounded history.
//! - [`retry_policy`]: `retryPolicy` levels merged and mapped onto `backoffLimit` and
//!   `podFailurePolicy`.
//! - [`lifecycle`]: the whole run's deadline, the cleanup of its Jobs, the run's own TTL.
//! - [`exit`]: exit steps (`spec.onExit`): reserved names, the run's outcome in their env.
//! - [`compile`]: each kind's spec -> [`compile::Plan`] and the complete child Jobs.

pub mod compile;
pub mod conditions;
pub mod dag;
pub mod eligibility;
pub mod exit;
pub mod kueue;
pub mod lifecycle;
pub mod naming;
pub mod observe;
pub mod observed_job;
pub mod outputs;
pub mod params;
pub mod record;
pub mod retry;
pub mod retry_policy;
pub mod rollup;
pub mod schedule;
pub mod template;

pub use compile::{BuildError, InvalidSpec, Plan, PlannedStep};
pub use dag::{
    Dag, Dep, DepSpec, Dependent, GraphError, GroupId, GroupSpec, Referrer, Required, StepId,
    StepSpec, Target,
};
pub use observe::{StepOutcome, job_outcome};
pub use observed_job::{ObservedJob, ObservedJobSpec};
pub use schedule::{
    Decision, FailurePolicy, Policies, Progress, RunPhase, StepPhase, evaluate, evaluate_at,
    evaluate_with,
};
