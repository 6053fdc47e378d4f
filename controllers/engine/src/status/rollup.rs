//! Status roll-up of the run kinds (SPEC §1 "Status contract"), pure: the scheduler's
//! [`Decision`], the observed Jobs per step, the per-step blockers and the previous status go
//! in; the new [`RunStatus`] and the bounded per-step entries come out. The current time is a
//! parameter (it is only used for a condition that flips and for a completion without any Job).
//!
//! Decisions taken here:
//! - Conditions are the kstatus set of [`crate::status::conditions::run_conditions`] for the phase. When a
//!   step is blocked ([`Blocker`]), `Ready` is `False` with the blocker's reason (`NameConflict`,
//!   `TemplateNotFound`, ...) and so are the reasons of `Stalled`/`Failed` when the run failed:
//!   the table's reasons win over the generic `Pending`/`Progressing`/`Failed`.
//!   Past the run's deadline ([`Decision::deadline_exceeded`]) every condition carries the reason
//!   `DeadlineExceeded` (it wins over a blocker's).
//! - `startTime` is the earliest `creationTimestamp` of the run's Jobs (or the previous value
//!   when earlier: Jobs may be deleted by their TTL); `completionTime` is set once the run is
//!   terminal, to the latest final signal of its Jobs (kept as is while the run stays terminal),
//!   or `now` when no Job reports one (every step aborted or conflicting).
//! - At most [`MAX_STEP_ENTRIES`] step entries are kept. Beyond that, the entries that say most
//!   are kept (failed or blocked, then running, aborted, pending, succeeded), shown in step
//!   order, and the rest is counted in `omitted`.

use crate::observe::observed_job::ObservedJob;
use jobsmith_api::{
    GroupStatus, MAX_STEP_ENTRIES, Phase, RunStatus, StepCounts, StepEntry,
    StepPhase as ApiStepPhase, condition_types as types, reasons as api_reasons,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::observe;
use crate::schedule::dag::{Dag, StepId};
use crate::schedule::{Decision, RunPhase, StepPhase};
use crate::status::conditions::{self, ConditionStatus, DesiredCondition};

/// Why a step cannot get (or keep) its Job, found by the run mechanism while observing and
/// creating. The first two (template problems) leave the step waiting; the others fail it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// The referenced JobTemplate does not exist (yet): the step waits.
    TemplateNotFound {
        /// The JobTemplate's name.
        template: String,
    },
    /// The referenced JobTemplate exists but cannot be used: the step waits for a fix.
    TemplateInvalid {
        /// The JobTemplate's name.
        template: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A Job with the step's name exists with another (or no) controller owner. It is never
    /// adopted; the step fails.
    NameConflict,
    /// A JobRun overrides a field its JobTemplate does not allow; the step fails.
    OverrideNotAllowed {
        /// The overridden field.
        field: String,
    },
    /// The step's Job cannot be built from the spec; the step fails.
    Invalid {
        /// The precise problem.
        message: String,
    },
    /// The step's Job went away before its outcome was recorded (deleted while running, or
    /// while the manager was down). The step is terminal and failed; it is never run again.
    Lost,
    /// The API server refused to create the step's Job for a reason that may pass (quota,
    /// admission webhook, RBAC, conflict, server error): the step waits, holds no
    /// `maxParallel` slot, and the create is retried with backoff.
    CreateRefused {
        /// The API server's message (bounded).
        message: String,
    },
    /// The step's Job exists and is suspended: the step waits (`Pending`), holds no
    /// `maxParallel` slot, and runs when the Job is resumed.
    Suspended,
    /// The step's Job waits for Kueue's admission (suspended, with the queue label): the step
    /// waits (`Pending`) and runs when Kueue admits the Job ([`crate::build::kueue`]).
    Queued {
        /// The Kueue LocalQueue named by the Job.
        queue: String,
    },
    /// DaemonJob: the step's node disappeared before its Job finished. The step is terminal,
    /// does not count as success, and its phase is `NodeLost`.
    NodeLost {
        /// The node's name.
        node: String,
    },
    /// The step reads an output its producer did not provide: the step fails without a Job
    /// (docs/integrations.md "Step outputs").
    OutputMissing {
        /// Which variable, which output, and why it is missing.
        message: String,
    },
    /// The step's producer succeeded but its outputs could not be read yet (the pod list was
    /// refused or failed): the step waits and the read is tried again with backoff.
    OutputUnread {
        /// The producer's key.
        step: String,
    },
}

impl Blocker {
    /// The condition and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TemplateNotFound { .. } => api_reasons::TEMPLATE_NOT_FOUND,
            Self::TemplateInvalid { .. } => api_reasons::TEMPLATE_INVALID,
            Self::NameConflict => api_reasons::NAME_CONFLICT,
            Self::OverrideNotAllowed { .. } => api_reasons::OVERRIDE_NOT_ALLOWED,
            Self::Invalid { .. } => api_reasons::INVALID_SPEC,
            Self::NodeLost { .. } => api_reasons::NODE_LOST,
            Self::Lost => api_reasons::LOST,
            Self::CreateRefused { .. } => api_reasons::CREATE_REFUSED,
            Self::Suspended => api_reasons::STEP_SUSPENDED,
            Self::Queued { .. } => api_reasons::QUEUED,
            Self::OutputMissing { .. } => api_reasons::OUTPUT_MISSING,
            Self::OutputUnread { .. } => api_reasons::OUTPUT_PENDING,
        }
    }

    /// Whether the step counts as failed (otherwise it waits for the blocker to go away).
    pub fn fails_step(&self) -> bool {
        matches!(
            self,
            Self::NameConflict
                | Self::OverrideNotAllowed { .. }
                | Self::Invalid { .. }
                | Self::NodeLost { .. }
                | Self::Lost
                | Self::OutputMissing { .. }
        )
    }

    /// A message naming the step, its Job and the problem (status message and Event note).
    pub fn describe(&self, key: &str, job_name: &str) -> String {
        match self {
            Self::TemplateNotFound { template } => {
                format!("step {key}: JobTemplate \"{template}\" not found")
            }
            Self::TemplateInvalid { template, message } => {
                format!("step {key}: JobTemplate \"{template}\" cannot be used: {message}")
            }
            Self::NameConflict => format!(
                "step {key}: Job \"{job_name}\" exists and is not controlled by this object; it is not adopted"
            ),
            Self::OverrideNotAllowed { field } => {
                format!("step {key}: overriding \"{field}\" is not allowed by the JobTemplate")
            }
            Self::Invalid { message } => format!("step {key}: {message}"),
            Self::NodeLost { node } => format!(
                "step {key}: node \"{node}\" disappeared before Job \"{job_name}\" finished"
            ),
            Self::Lost => format!(
                "step {key}: Job \"{job_name}\" went away before its outcome was recorded; it is not run again"
            ),
            Self::CreateRefused { message } => {
                format!("step {key}: creating Job \"{job_name}\" was refused: {message}")
            }
            Self::Suspended => {
                format!("step {key}: Job \"{job_name}\" is suspended; it runs when resumed")
            }
            Self::Queued { queue } => format!(
                "step {key}: Job \"{job_name}\" is queued in Kueue LocalQueue \"{queue}\"; it runs when admitted"
            ),
            Self::OutputMissing { message } => format!("step {key}: {message}"),
            Self::OutputUnread { step } => {
                format!("step {key}: waiting for the outputs of step \"{step}\" to be read")
            }
        }
    }
}

/// Whether a step entry's `reason` is a [`Blocker`]'s (the step waits or failed for a reason of
/// Jobsmith's own) rather than the failure reason of the step's Job (`BackoffLimitExceeded`,
/// `PodFailurePolicy`, ...: the step ran). The run mechanism's memory tells the two apart when
/// it is rebuilt from a status after a restart.
pub fn is_blocker_reason(reason: &str) -> bool {
    [
        api_reasons::TEMPLATE_NOT_FOUND,
        api_reasons::TEMPLATE_INVALID,
        api_reasons::NAME_CONFLICT,
        api_reasons::OVERRIDE_NOT_ALLOWED,
        api_reasons::INVALID_SPEC,
        api_reasons::NODE_LOST,
        api_reasons::LOST,
        api_reasons::CREATE_REFUSED,
        api_reasons::STEP_SUSPENDED,
        api_reasons::QUEUED,
        api_reasons::OUTPUT_MISSING,
        api_reasons::OUTPUT_PENDING,
    ]
    .contains(&reason)
}

/// What is known of one step (indexed by [`StepId`]).
#[derive(Clone, Copy, Debug)]
pub struct StepView<'a> {
    /// The step's status key (`group/job`, flow name, ...).
    pub key: &'a str,
    /// The step's deterministic Job name (of its current attempt).
    pub job_name: &'a str,
    /// The step's current attempt (1 until a retry in place gives it a new one).
    pub attempt: u32,
    /// The step's Job when it exists and is controlled by the parent.
    pub job: Option<&'a ObservedJob>,
    /// Why the step is blocked, if it is.
    pub blocker: Option<&'a Blocker>,
    /// The step's entry in the previous status: its times stand when its Job is gone.
    pub previous: Option<&'a StepEntry>,
    /// An exit step (`spec.onExit`): its entry says `onExit: true`.
    pub exit: bool,
}

/// Everything the roll-up reads.
#[derive(Clone, Copy, Debug)]
pub struct RunInput<'a> {
    /// The scheduler's decision for the observed outcomes (blocked-and-failed steps fed as
    /// `Failed`).
    pub decision: &'a Decision,
    /// One view per step, indexed by [`StepId`].
    pub steps: &'a [StepView<'a>],
    /// The status as last written (conditions keep their `lastTransitionTime` from it).
    pub previous: Option<&'a RunStatus>,
    /// `metadata.generation` of the parent.
    pub generation: Option<i64>,
    /// The current time.
    pub now: &'a Time,
}

/// The roll-up of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollup {
    /// Phase, conditions, progress, times, message.
    pub run: RunStatus,
    /// At most [`MAX_STEP_ENTRIES`] step entries, in step order.
    pub entries: Vec<StepEntry>,
    /// Steps not listed in `entries`.
    pub omitted: u32,
    /// The phase of every step, indexed by [`StepId`].
    pub step_phases: Vec<ApiStepPhase>,
    /// The reason on `Ready`.
    pub reason: String,
}

/// The API phase of a run phase.
pub fn api_phase(phase: RunPhase) -> Phase {
    match phase {
        RunPhase::Pending => Phase::Pending,
        RunPhase::Running => Phase::Running,
        RunPhase::Succeeded => Phase::Succeeded,
        RunPhase::Failed => Phase::Failed,
        RunPhase::Suspended => Phase::Suspended,
    }
}

/// The API phase of a step phase.
pub fn api_step_phase(phase: StepPhase) -> ApiStepPhase {
    match phase {
        StepPhase::Pending => ApiStepPhase::Pending,
        StepPhase::Running => ApiStepPhase::Running,
        StepPhase::Succeeded => ApiStepPhase::Succeeded,
        StepPhase::Failed => ApiStepPhase::Failed,
        StepPhase::Aborted => ApiStepPhase::Aborted,
        StepPhase::Skipped => ApiStepPhase::Skipped,
    }
}

/// The status of a run from its decision (see the module doc for the rules).
pub fn rollup(input: &RunInput<'_>) -> Rollup {
    let decision = input.decision;
    let phase = decision.phase;
    let step_phases: Vec<ApiStepPhase> = (0..input.steps.len())
        .map(|i| match input.steps[i].blocker {
            // The scheduler saw a failed step; the status says why.
            Some(Blocker::NodeLost { .. }) => ApiStepPhase::NodeLost,
            _ => api_step_phase(decision.steps.get(i).copied().unwrap_or_default()),
        })
        .collect();

    let Explained {
        message,
        reason,
        conditions: desired,
    } = explain(input, &step_phases);
    let previous = input.previous;
    let conditions = conditions::set_conditions(
        previous.map_or(&[][..], |p| p.conditions.as_slice()),
        &desired,
        input.now,
        input.generation,
    );
    let (start_time, completion_time) = run_times(input);

    let run = RunStatus {
        phase: Some(api_phase(phase)),
        conditions,
        observed_generation: input.generation,
        progress: Some(decision.progress.to_string()),
        start_time,
        completion_time,
        message: Some(message),
        // Written by the run mechanism, which knows what was created, recorded and retried.
        record: None,
        retries: Vec::new(),
        retry_count: None,
        outputs: Vec::new(),
    };
    let (entries, omitted) = entries(input.steps, &step_phases);
    Rollup {
        run,
        entries,
        omitted,
        step_phases,
        reason,
    }
}

/// What the status says about a run: its message, the reason of its conditions, and the
/// conditions before their transition times are set.
struct Explained {
    message: String,
    reason: String,
    conditions: Vec<DesiredCondition>,
}

/// The decision's message and conditions, with the first blocked step (in step order; the
/// others are counted) and a passed deadline explaining the run.
fn explain(input: &RunInput<'_>, step_phases: &[ApiStepPhase]) -> Explained {
    let decision = input.decision;
    let phase = decision.phase;
    let mut blocked = input
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.blocker.map(|b| (i, b)))
        .filter(|(i, _)| step_phases[*i] != ApiStepPhase::Aborted);
    let first = blocked.next();
    let more = blocked.count();

    let mut message = decision.message.clone();
    let mut reason = default_reason(phase).to_owned();
    let mut desired = conditions::run_conditions(phase, &message);
    if let Some((i, blocker)) = first
        && phase != RunPhase::Succeeded
    {
        let step = &input.steps[i];
        if phase == RunPhase::Pending {
            // The scheduler counts the blocked steps as being started; they are not.
            message = format!("waiting, {} done", decision.progress);
        }
        let mut what = blocker.describe(step.key, step.job_name);
        if more > 0 {
            what.push_str(&format!(" (and {more} more blocked steps)"));
        }
        message = format!("{what}; {message}");
        reason = blocker.reason().to_owned();
        for condition in &mut desired {
            condition.message.clone_from(&message);
            match condition.type_.as_str() {
                types::READY => {
                    condition.status = ConditionStatus::False;
                    condition.reason.clone_from(&reason);
                }
                types::STALLED | types::FAILED => condition.reason.clone_from(&reason),
                _ => {}
            }
        }
    }
    if decision.deadline_exceeded {
        // The deadline explains the run whatever else happened to its steps.
        reason = api_reasons::DEADLINE_EXCEEDED.to_owned();
        for condition in &mut desired {
            condition.reason.clone_from(&reason);
        }
    }
    Explained {
        message,
        reason,
        conditions: desired,
    }
}

/// The run's start time (its earliest Job, or as recorded) and, once it is final, its
/// completion time (as recorded, else its last Job's finish, else now).
fn run_times(input: &RunInput<'_>) -> (Option<Time>, Option<Time>) {
    let previous = input.previous;
    // Compared by reference, cloned once: a 10,000-step run has 10,000 candidates.
    let start_time = input
        .steps
        .iter()
        .filter_map(|s| s.job?.metadata.creation_timestamp.as_ref())
        .chain(previous.and_then(|p| p.start_time.as_ref()))
        .min()
        .cloned();
    if !input.decision.phase.is_terminal() {
        return (start_time, None);
    }
    let kept = previous
        .filter(|p| p.phase.is_some_and(Phase::is_terminal))
        .and_then(|p| p.completion_time.clone());
    let completion_time = kept
        .or_else(|| {
            input
                .steps
                .iter()
                .filter_map(|s| s.job.and_then(observe::finished_at))
                .max()
                .cloned()
        })
        .or_else(|| Some(input.now.clone()));
    (start_time, completion_time)
}

fn default_reason(phase: RunPhase) -> &'static str {
    match phase {
        RunPhase::Pending => api_reasons::PENDING,
        RunPhase::Running => api_reasons::PROGRESSING,
        RunPhase::Suspended => api_reasons::SUSPENDED,
        RunPhase::Succeeded => api_reasons::SUCCEEDED,
        RunPhase::Failed => api_reasons::FAILED,
    }
}

/// One step's entry.
fn entry(step: &StepView<'_>, phase: ApiStepPhase) -> StepEntry {
    // The previous entry's times are those of the same attempt only (a retried step starts
    // without times until its new Job exists).
    let attempt = step.attempt.max(1);
    let previous = step
        .previous
        .filter(|e| e.attempt.unwrap_or(1).max(1) == attempt);
    let failure = failure_of(step, phase, previous);
    StepEntry {
        key: step.key.to_owned(),
        job_name: Some(step.job_name.to_owned()),
        phase,
        // A finished Job deleted afterwards (its TTL, a manual delete) keeps its times.
        start_time: step
            .job
            .and_then(observe::created_at)
            .or_else(|| previous.and_then(|e| e.start_time.as_ref()))
            .cloned(),
        completion_time: step
            .job
            .and_then(observe::finished_at)
            .or_else(|| previous.and_then(|e| e.completion_time.as_ref()))
            .cloned(),
        reason: step
            .blocker
            .map(|b| b.reason().to_owned())
            .or_else(|| failure.reason.clone()),
        attempt: (attempt > 1).then_some(attempt),
        exit_code: failure.exit_code,
        on_exit: step.exit,
    }
}

/// Why a failed step's Job failed (its condition's reason, the exit code its message names),
/// kept from the previous entry of the same attempt when the Job is gone; nothing for a step
/// that did not fail or is blocked (the blocker's reason says it), so the entries of succeeded
/// and running steps stay as small as before.
fn failure_of(
    step: &StepView<'_>,
    phase: ApiStepPhase,
    previous: Option<&StepEntry>,
) -> observe::FailureDetail {
    if phase != ApiStepPhase::Failed || step.blocker.is_some() {
        return observe::FailureDetail::default();
    }
    match step.job {
        Some(job) => observe::failure_detail(job).unwrap_or_default(),
        None => observe::FailureDetail {
            reason: previous.and_then(|e| e.reason.clone()),
            exit_code: previous.and_then(|e| e.exit_code),
        },
    }
}

/// The largest value [`priority`] gives.
const LOWEST_PRIORITY: u8 = 4;

/// Lower is shown first when the entries must be cut.
fn priority(step: &StepView<'_>, phase: ApiStepPhase) -> u8 {
    if step.blocker.is_some() {
        return 0;
    }
    match phase {
        ApiStepPhase::Failed | ApiStepPhase::NodeLost => 0,
        ApiStepPhase::Running => 1,
        ApiStepPhase::Aborted | ApiStepPhase::Skipped => 2,
        ApiStepPhase::Pending => 3,
        ApiStepPhase::Succeeded => 4,
    }
}

fn entries(steps: &[StepView<'_>], phases: &[ApiStepPhase]) -> (Vec<StepEntry>, u32) {
    if steps.len() <= MAX_STEP_ENTRIES {
        let all = steps
            .iter()
            .zip(phases)
            .map(|(s, p)| entry(s, *p))
            .collect();
        return (all, 0);
    }
    let priorities: Vec<u8> = steps
        .iter()
        .zip(phases)
        .map(|(s, p)| priority(s, *p))
        .collect();
    let shown = first_by_priority(&priorities, MAX_STEP_ENTRIES);
    let list = shown
        .iter()
        .map(|i| entry(&steps[*i], phases[*i]))
        .collect();
    let omitted = u32::try_from(steps.len() - MAX_STEP_ENTRIES).unwrap_or(u32::MAX);
    (list, omitted)
}

/// The positions of the first `limit` items by priority (lower first, equal priorities in
/// position order), in position order: what a stable sort by priority would keep, in one pass
/// per priority level (five) instead of a sort of every step.
fn first_by_priority(priorities: &[u8], limit: usize) -> Vec<usize> {
    let mut shown: Vec<usize> = Vec::with_capacity(limit.min(priorities.len()));
    for level in 0..=LOWEST_PRIORITY {
        let room = limit - shown.len();
        if room == 0 {
            break;
        }
        shown.extend(
            (0..priorities.len())
                .filter(|i| priorities[*i] == level)
                .take(room),
        );
    }
    shown.sort_unstable();
    shown
}

/// The status of a run whose spec cannot run: phase `Failed`, `Stalled=True` and `Ready=False`
/// with reason `InvalidSpec` and the precise `message`, nothing started. Times and progress of
/// the previous status are kept (a spec edited into an invalid one does not erase history).
pub fn invalid_spec(
    previous: Option<&RunStatus>,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> RunStatus {
    let conditions = conditions::set_conditions(
        previous.map_or(&[][..], |p| p.conditions.as_slice()),
        &conditions::invalid_spec_conditions(message),
        now,
        generation,
    );
    RunStatus {
        phase: Some(Phase::Failed),
        conditions,
        observed_generation: generation,
        progress: previous.and_then(|p| p.progress.clone()),
        start_time: previous.and_then(|p| p.start_time.clone()),
        completion_time: None,
        message: Some(message.to_owned()),
        record: previous.and_then(|p| p.record.clone()),
        retries: previous.map(|p| p.retries.clone()).unwrap_or_default(),
        retry_count: previous.and_then(|p| p.retry_count),
        outputs: previous.map(|p| p.outputs.clone()).unwrap_or_default(),
    }
}

/// Whether `status` is the invalid-spec status for `message` (so its Event was already sent).
pub fn is_invalid_spec(status: &RunStatus, message: &str) -> bool {
    status.phase == Some(Phase::Failed)
        && status.message.as_deref() == Some(message)
        && status.conditions.iter().any(|c| {
            c.type_ == types::STALLED && c.status == "True" && c.reason == api_reasons::INVALID_SPEC
        })
}

/// Per-group state (ManagedJob `status.groups`), in group order.
pub fn group_statuses(dag: &Dag, decision: &Decision) -> Vec<GroupStatus> {
    dag.groups()
        .map(|g| {
            let mut counts = StepCounts::default();
            for s in dag.group_members(g) {
                counts.total += 1;
                match decision.steps.get(s.index()).copied().unwrap_or_default() {
                    StepPhase::Pending => counts.pending += 1,
                    StepPhase::Running => counts.running += 1,
                    StepPhase::Succeeded => counts.succeeded += 1,
                    StepPhase::Failed => counts.failed += 1,
                    StepPhase::Aborted => counts.aborted += 1,
                    StepPhase::Skipped => counts.skipped += 1,
                }
            }
            GroupStatus {
                name: dag.group_key(g).to_owned(),
                phase: api_step_phase(decision.groups.get(g.index()).copied().unwrap_or_default()),
                counts,
            }
        })
        .collect()
}

/// Step ids in order, for callers that zip views with ids.
pub fn step_ids(len: usize) -> impl Iterator<Item = StepId> {
    (0..len).map(|i| StepId(u32::try_from(i).unwrap_or(u32::MAX)))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::observe::StepOutcome;
    use crate::schedule::dag::{DepSpec, GroupSpec, Required, StepSpec};
    use crate::schedule::{Policies, evaluate};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn chain(keys: &[&str]) -> Dag {
        let steps: Vec<StepSpec> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| StepSpec {
                key: (*k).to_owned(),
                group: None,
                deps: if i == 0 {
                    vec![]
                } else {
                    vec![DepSpec {
                        target: keys[i - 1].to_owned(),
                        required: Required::Succeeded,
                    }]
                },
            })
            .collect();
        Dag::build(&steps, &[]).unwrap()
    }

    fn job(created: i64, started: Option<i64>, done: Option<(&str, i64)>) -> ObservedJob {
        ObservedJob {
            metadata: ObjectMeta {
                creation_timestamp: Some(at(created)),
                ..Default::default()
            },
            spec: None,
            status: Some(JobStatus {
                start_time: started.map(at),
                conditions: done.map(|(t, s)| {
                    vec![JobCondition {
                        type_: t.to_owned(),
                        status: "True".into(),
                        last_transition_time: Some(at(s)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn views<'a>(
        keys: &'a [&'a str],
        jobs: &'a [Option<ObservedJob>],
        blockers: &'a [Option<Blocker>],
    ) -> Vec<StepView<'a>> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| StepView {
                key: k,
                job_name: k,
                attempt: 1,
                job: jobs.get(i).and_then(Option::as_ref),
                blocker: blockers.get(i).and_then(Option::as_ref),
                previous: None,
                exit: false,
            })
            .collect()
    }

    fn cond<'a>(
        run: &'a RunStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        run.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    fn outcomes(jobs: &[Option<ObservedJob>]) -> Vec<StepOutcome> {
        jobs.iter()
            .map(|j| observe::step_outcome(j.as_ref()))
            .collect()
    }

    #[test]
    fn first_reconcile_is_reconciling_and_ready_unknown() {
        let keys = ["a", "b"];
        let dag = chain(&keys);
        let jobs = [None, None];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &[]);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        assert_eq!(r.run.phase, Some(Phase::Pending));
        assert_eq!(cond(&r.run, "Reconciling").status, "True");
        assert_eq!(cond(&r.run, "Ready").status, "Unknown");
        assert_eq!(r.run.progress.as_deref(), Some("0/2"));
        assert_eq!(r.run.observed_generation, Some(1));
        assert_eq!(r.run.start_time, None);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].job_name.as_deref(), Some("a"));
        assert_eq!(r.omitted, 0);
    }

    #[test]
    fn success_sets_ready_complete_and_times_from_the_jobs() {
        let keys = ["a", "b"];
        let dag = chain(&keys);
        let jobs = [
            Some(job(5, Some(6), Some(("Complete", 8)))),
            Some(job(9, Some(9), Some(("SuccessCriteriaMet", 12)))),
        ];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &[]);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(2),
            now: &at(100),
        });
        assert_eq!(r.run.phase, Some(Phase::Succeeded));
        assert_eq!(cond(&r.run, "Ready").status, "True");
        assert_eq!(cond(&r.run, "Complete").status, "True");
        assert_eq!(cond(&r.run, "Reconciling").status, "False");
        assert_eq!(r.run.start_time, Some(at(5)));
        assert_eq!(r.run.completion_time, Some(at(12)));
        assert_eq!(r.run.progress.as_deref(), Some("2/2"));
        assert_eq!(r.entries[1].start_time, Some(at(9)));
        assert_eq!(r.entries[1].completion_time, Some(at(12)));
        assert_eq!(r.reason, "Succeeded");
    }

    #[test]
    fn failure_stalls_and_aborts_dependents() {
        let keys = ["a", "b"];
        let dag = chain(&keys);
        let jobs = [Some(job(5, Some(6), Some(("FailureTarget", 7)))), None];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &[]);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(100),
        });
        assert_eq!(r.run.phase, Some(Phase::Failed));
        assert_eq!(cond(&r.run, "Ready").status, "False");
        assert_eq!(cond(&r.run, "Stalled").status, "True");
        assert_eq!(cond(&r.run, "Failed").status, "True");
        assert_eq!(
            r.step_phases,
            vec![ApiStepPhase::Failed, ApiStepPhase::Aborted]
        );
        assert_eq!(r.run.completion_time, Some(at(7)));
    }

    #[test]
    fn a_failed_step_shows_its_jobs_reason_and_exit_code_and_keeps_them_when_the_job_is_gone() {
        let keys = ["a", "b"];
        let dag = Dag::build(
            &keys
                .iter()
                .map(|k| StepSpec {
                    key: (*k).to_owned(),
                    group: None,
                    deps: vec![],
                })
                .collect::<Vec<_>>(),
            &[],
        )
        .unwrap();
        let mut failed = job(5, Some(6), Some(("FailureTarget", 7)));
        let conditions = failed.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conditions[0].reason = Some("PodFailurePolicy".into());
        conditions[0].message = Some(
            "Container main for pod ns/a-x failed with exit code 3 matching FailJob rule at index 0"
                .into(),
        );
        let jobs = [Some(failed), Some(job(5, Some(6), Some(("Complete", 8))))];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &[]);
        let input = RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(100),
        };
        let r = rollup(&input);
        assert_eq!(r.entries[0].reason.as_deref(), Some("PodFailurePolicy"));
        assert_eq!(r.entries[0].exit_code, Some(3));
        // Nothing for a step that succeeded.
        assert_eq!(
            (r.entries[1].reason.as_ref(), r.entries[1].exit_code),
            (None, None)
        );
        // The Job is gone (its TTL): the recorded failure keeps what the entry said.
        let gone = [None, None];
        let mut steps = views(&keys, &gone, &[]);
        steps[0].previous = Some(&r.entries[0]);
        let outcomes = [StepOutcome::Failed, StepOutcome::Succeeded];
        let decision = evaluate(&dag, &outcomes, &Policies::default());
        let again = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            ..input
        });
        assert_eq!(again.entries[0].reason.as_deref(), Some("PodFailurePolicy"));
        assert_eq!(again.entries[0].exit_code, Some(3));
        // A later attempt starts without the earlier attempt's failure.
        steps[0].attempt = 2;
        let retried = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            ..input
        });
        assert_eq!(
            (
                retried.entries[0].reason.as_ref(),
                retried.entries[0].exit_code
            ),
            (None, None)
        );
    }

    #[test]
    fn every_blockers_reason_is_told_apart_from_a_jobs_failure_reason() {
        let blockers = [
            Blocker::TemplateNotFound {
                template: "t".into(),
            },
            Blocker::TemplateInvalid {
                template: "t".into(),
                message: "m".into(),
            },
            Blocker::NameConflict,
            Blocker::OverrideNotAllowed { field: "f".into() },
            Blocker::Invalid {
                message: "m".into(),
            },
            Blocker::Lost,
            Blocker::CreateRefused {
                message: "m".into(),
            },
            Blocker::Suspended,
            Blocker::NodeLost { node: "n".into() },
            Blocker::Queued { queue: "q".into() },
            Blocker::OutputMissing {
                message: "m".into(),
            },
            Blocker::OutputUnread { step: "s".into() },
        ];
        for blocker in &blockers {
            assert!(is_blocker_reason(blocker.reason()), "{blocker:?}");
        }
        for job_reason in [
            "BackoffLimitExceeded",
            "PodFailurePolicy",
            "DeadlineExceeded",
        ] {
            assert!(!is_blocker_reason(job_reason), "{job_reason}");
        }
    }

    #[test]
    fn unchanged_status_is_a_fixed_point() {
        let keys = ["a", "b"];
        let dag = chain(&keys);
        let jobs = [Some(job(5, Some(6), None)), None];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &[]);
        let first = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        let second = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: Some(&first.run),
            generation: Some(1),
            now: &at(50),
        });
        assert_eq!(first, second);
        assert_eq!(
            cond(&second.run, "Reconciling").last_transition_time,
            at(10)
        );
    }

    #[test]
    fn template_not_found_keeps_the_step_waiting_with_the_reason() {
        let keys = ["a"];
        let dag = chain(&keys);
        let jobs = [None];
        let blockers = [Some(Blocker::TemplateNotFound {
            template: "tpl".into(),
        })];
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps = views(&keys, &jobs, &blockers);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        assert_eq!(r.run.phase, Some(Phase::Pending));
        let ready = cond(&r.run, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "TemplateNotFound");
        assert_eq!(
            ready.message,
            "step a: JobTemplate \"tpl\" not found; waiting, 0/1 done"
        );
        assert_eq!(cond(&r.run, "Reconciling").status, "True");
        assert_eq!(r.entries[0].reason.as_deref(), Some("TemplateNotFound"));
        assert_eq!(r.entries[0].phase, ApiStepPhase::Pending);
    }

    #[test]
    fn name_conflict_fails_the_run_with_its_reason() {
        let keys = ["a"];
        let dag = chain(&keys);
        let blockers = [Some(Blocker::NameConflict)];
        let decision = evaluate(&dag, &[StepOutcome::Failed], &Policies::default());
        let jobs = [None];
        let steps = views(&keys, &jobs, &blockers);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        assert_eq!(r.run.phase, Some(Phase::Failed));
        assert_eq!(cond(&r.run, "Stalled").reason, "NameConflict");
        assert_eq!(cond(&r.run, "Ready").reason, "NameConflict");
        // No Job reports a completion: the run completes now.
        assert_eq!(r.run.completion_time, Some(at(10)));
        assert_eq!(r.entries[0].reason.as_deref(), Some("NameConflict"));
    }

    #[test]
    fn suspended_has_its_own_condition_set() {
        let keys = ["a", "b"];
        let dag = chain(&keys);
        let jobs = [Some(job(1, Some(1), Some(("Complete", 2)))), None];
        let policies = Policies {
            suspend: true,
            ..Policies::default()
        };
        let decision = evaluate(&dag, &outcomes(&jobs), &policies);
        let steps = views(&keys, &jobs, &[]);
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        assert_eq!(r.run.phase, Some(Phase::Suspended));
        assert_eq!(cond(&r.run, "Ready").reason, "Suspended");
        assert_eq!(r.run.completion_time, None);
    }

    #[test]
    fn invalid_spec_status_and_its_detection() {
        let s = invalid_spec(None, "dependency cycle: a -> b -> a", Some(3), &at(1));
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(cond(&s, "Stalled").reason, "InvalidSpec");
        assert_eq!(cond(&s, "Stalled").message, "dependency cycle: a -> b -> a");
        assert_eq!(cond(&s, "Ready").status, "False");
        assert!(is_invalid_spec(&s, "dependency cycle: a -> b -> a"));
        assert!(!is_invalid_spec(&s, "other"));
        let again = invalid_spec(Some(&s), "dependency cycle: a -> b -> a", Some(3), &at(9));
        assert_eq!(s, again);
    }

    #[test]
    fn entries_are_bounded_and_keep_the_interesting_ones() {
        let n = MAX_STEP_ENTRIES + 20;
        let keys: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let specs: Vec<StepSpec> = keys
            .iter()
            .map(|k| StepSpec {
                key: k.clone(),
                group: None,
                deps: vec![],
            })
            .collect();
        let dag = Dag::build(&specs, &[]).unwrap();
        let mut jobs: Vec<Option<ObservedJob>> = (0..n)
            .map(|_| Some(job(1, Some(1), Some(("Complete", 2)))))
            .collect();
        jobs[n - 1] = Some(job(1, Some(1), Some(("Failed", 3))));
        let decision = evaluate(&dag, &outcomes(&jobs), &Policies::default());
        let steps: Vec<StepView<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| StepView {
                key: k,
                job_name: k,
                attempt: 1,
                job: jobs[i].as_ref(),
                blocker: None,
                previous: None,
                exit: false,
            })
            .collect();
        let r = rollup(&RunInput {
            decision: &decision,
            steps: &steps,
            previous: None,
            generation: Some(1),
            now: &at(10),
        });
        assert_eq!(r.entries.len(), MAX_STEP_ENTRIES);
        assert_eq!(r.omitted, 20);
        assert_eq!(r.step_phases.len(), n);
        // The failed step is shown, and entries stay in step order.
        assert_eq!(
            r.entries.last().map(|e| e.key.as_str()),
            Some(keys[n - 1].as_str())
        );
        assert_eq!(r.entries[0].key, "s0");
        let size = serde_json::to_vec(&r.entries).unwrap().len();
        assert!(size < 200 * 1024, "{size}");
    }

    #[test]
    fn groups_are_counted() {
        let steps = vec![
            StepSpec {
                key: "g/a".into(),
                group: Some("g".into()),
                deps: vec![],
            },
            StepSpec {
                key: "g/b".into(),
                group: Some("g".into()),
                deps: vec![],
            },
        ];
        let groups = vec![GroupSpec {
            key: "g".into(),
            deps: vec![],
        }];
        let dag = Dag::build(&steps, &groups).unwrap();
        let decision = evaluate(
            &dag,
            &[StepOutcome::Succeeded, StepOutcome::Running],
            &Policies::default(),
        );
        let g = group_statuses(&dag, &decision);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "g");
        assert_eq!(g[0].phase, ApiStepPhase::Running);
        assert_eq!(g[0].counts.total, 2);
        assert_eq!(g[0].counts.succeeded, 1);
        assert_eq!(g[0].counts.running, 1);
    }

    proptest::proptest! {
        /// The cut keeps exactly what a stable sort by priority would keep.
        #[test]
        fn the_cut_keeps_what_a_stable_sort_by_priority_keeps(
            priorities in proptest::collection::vec(0..=LOWEST_PRIORITY, 0..300),
            limit in 0usize..320,
        ) {
            let mut order: Vec<usize> = (0..priorities.len()).collect();
            order.sort_by_key(|i| priorities[*i]);
            let mut expected: Vec<usize> = order.into_iter().take(limit).collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(first_by_priority(&priorities, limit), expected);
        }
    }
}
