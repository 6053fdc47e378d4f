//! The Jobsmith engine: the pure library shared by the five reconcilers.
//!
//! No kube client, no async runtime, no clock: every input, the current time included, is a
//! parameter, so everything here is unit- and property-tested. See `docs/architecture.md`.
//!
//! Modules by concern, each a folder:
//!
//! - [`build`]: what goes into a child Job (the lowest layer: it uses no other module).
//!   - [`build::naming`]: deterministic child names and label values.
//!   - [`build::params`]: ManagedJob params merging, globalParams, JobRun overrides, GitOps
//!     stripping.
//!   - [`build::template`]: JobTemplate resolution and the child Job's metadata.
//!   - [`build::retry_policy`]: `retryPolicy` levels merged and mapped onto `backoffLimit` and
//!     `podFailurePolicy`.
//!   - [`build::kueue`]: Kueue admission: queued Jobs (created suspended with the queue label).
//!   - [`build::eligibility`]: DaemonJob node eligibility and node pinning.
//! - [`observe`]: a `batch/v1` Job -> [`StepOutcome`].
//!   - [`observe::observed_job`]: the part of a Job the manager keeps in memory.
//! - [`schedule`]: observed outcomes + policies -> what to create, phases, progress.
//!   - [`schedule::dag`]: the step graph and its validation.
//! - [`status`]: what the run object's status says.
//!   - [`status::rollup`]: decision + observed Jobs + blockers -> the run status (bounded step
//!     entries).
//!   - [`status::conditions`]: kstatus conditions with stable `lastTransitionTime`.
//!   - [`status::record`]: the durable step record (`status.record`), attempts included.
//! - [`lifecycle`]: the whole run's deadline, the cleanup of its Jobs, the run's own TTL.
//!   - [`lifecycle::retry`]: retry in place: new requests, the steps they re-run, the bounded
//!     history.
//! - [`compile`]: each kind's spec -> [`compile::Plan`] and the complete child Jobs (the top
//!   layer: it uses all the others).
//!   - [`compile::outputs`]: step outputs: what a step reads, the values read from a
//!     succeeded pod's termination message, the values set in a dependent's Job.
//!   - [`compile::exit`]: exit steps (`spec.onExit`): reserved names, the run's outcome in
//!     their env.
//!
//! The modules are listed bottom-up: each uses only modules listed before it, never one after
//! it (`controllers/manager/tests/module_graph.rs` checks that no two import each other,
//! directly or through others).

pub mod build;
pub mod compile;
pub mod lifecycle;
pub mod observe;
pub mod schedule;
pub mod status;

pub use compile::{BuildError, InvalidSpec, Plan, PlannedStep};
pub use observe::observed_job::{ObservedJob, ObservedJobSpec};
pub use observe::{StepOutcome, job_outcome};
pub use schedule::dag::{
    Dag, Dep, DepSpec, Dependent, GraphError, GroupId, GroupSpec, Referrer, Required, StepId,
    StepSpec, Target,
};
pub use schedule::{
    Decision, FailurePolicy, Policies, Progress, RunPhase, StepPhase, evaluate, evaluate_at,
    evaluate_with,
};
