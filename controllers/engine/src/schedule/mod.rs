//! The step scheduler: observed step outcomes + policies -> what to create, and the roll-up
//! (SPEC §1 "Run controls", §2 "Ordering"/"Failure", §3 failure policies).
//!
//! Rules, decided here once for every run kind:
//! - Outcomes that count are those of steps that **ran**. A dependency on a step is *met* when
//!   the step's phase satisfies the required outcome: `succeeded` needs `Succeeded`, `failed`
//!   needs `Failed` (a Job that ran and failed), `completed` either. A `Skipped` step is neutral:
//!   it meets `succeeded` and `completed` (it blocks nothing that follows).
//! - A step that has no Job and a dependency that can no longer be met is `Aborted` when that
//!   dependency needed success (a consequence of a failure) and `Skipped` when it was a handler
//!   that is not needed (its `failed`/`completed` dependency succeeded, or never ran). When
//!   both apply, `Aborted` wins. On a group: `succeeded` = every member succeeded or was
//!   skipped, broken as soon as one failed or was aborted; `failed` = all terminal and one
//!   failed (else not needed); `completed` = all terminal and not all aborted.
//! - A step is *ready* when every dependency (its own and its group's) is met.
//! - `FailFast`: after the first `Failed` step nothing new starts; once nothing runs, every step
//!   not started is `Aborted` and the run is `Failed`. `ContinueIndependent`: all work that can
//!   still run does.
//! - The run is `Failed` when every step is terminal and any step `Failed` (even if a later
//!   step handled that failure); `Succeeded` when every step is terminal and none failed
//!   (skipped handlers and steps aborted by nothing but a skipped chain do not fail the run).
//! - `suspend` creates nothing; the run is `Running` while Jobs still run and `Suspended` once
//!   none does (a terminal run stays terminal). `max_parallel: N` keeps running + newly created
//!   at most `N` (`0` is treated as `1`, so a run can always finish); only steps with a Job
//!   count, so a step that cannot be created now (`unavailable`: a missing template, a refused
//!   create) holds no slot. Ready steps are created in input (list) order.
//! - A **queued** step (its Job waits for Kueue's admission, [`crate::build::kueue`]) has not started:
//!   it is `Pending`, and the run is `Pending` until some step ran. But its Job holds a
//!   `maxParallel` slot: Kueue may admit every queued Job at once and Jobsmith never suspends
//!   a Job again, so with a queue `maxParallel` bounds the Jobs created and not finished,
//!   admitted or not. A Job suspended otherwise (its template, by hand) holds no slot.
//! - `Pending` is the run phase before any step was observed started (the first Jobs are being
//!   created); then `Running`.
//! - **Past the run's deadline** (`deadline_exceeded`, decided by the `lifecycle` module) no new
//!   step starts, except the steps [`runs_past_deadline`] exempts: every other step that has not
//!   started (no Job, or a suspended one) is `Aborted`, the running ones are listed in
//!   [`Decision::stop`] (the manager stops their Jobs), and the run is `Failed` once all steps are
//!   terminal and the deadline cut any of them short (else, every step having finished anyway,
//!   it keeps its own outcome). [`Decision::deadline_exceeded`] then says why.
//! - An observed Job always wins over derived state: a step with a Job is `Running`,
//!   `Succeeded` or `Failed` whatever its dependencies say.
//!
//! - **Exit steps** ([`Dag::is_exit`], `spec.onExit`) start only once every other step is
//!   terminal (after FailFast's aborts), whatever the outcome: FailFast stops new *other* steps,
//!   never exit steps. Among themselves only their own dependencies apply. `suspend` and
//!   `max_parallel` hold them like any step. They count in the phase (a failed exit step
//!   fails the run; the run is `Running` while they run) and in the progress.
//!
//! [`evaluate`] computes a [`Decision`] from scratch in O(steps + edges); the manager calls it
//! once per reconcile (its cost at 10,000 steps is measured by `make bench-engine`).

pub mod dag;

use std::fmt;

use crate::observe::StepOutcome;
use crate::schedule::dag::{Dag, Dep, GroupId, Node, Required, StepId, Target};

/// What happens to independent work after a step failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Work that does not depend on the failure goes on (ManagedJob's default).
    #[default]
    ContinueIndependent,
    /// Nothing new starts after the first failure (JobFlow's default).
    FailFast,
}

/// The run controls of a run kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Policies {
    /// The failure policy.
    pub failure: FailurePolicy,
    /// `spec.suspend`: start nothing new.
    pub suspend: bool,
    /// `spec.maxParallel`: at most this many steps running at once.
    pub max_parallel: Option<u32>,
}

impl Policies {
    fn limit(&self) -> u32 {
        self.max_parallel.map_or(u32::MAX, |n| n.max(1))
    }
}

/// The phase of a step (and, for display, of a group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StepPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// Its Job runs.
    Running,
    /// Its Job succeeded.
    Succeeded,
    /// Its Job failed.
    Failed,
    /// Never started: a dependency that needed success can no longer be met, or FailFast
    /// stopped the run.
    Aborted,
    /// Never started because it is not needed: a `failed`/`completed` handler whose
    /// dependency succeeded or never ran. Neutral for the group and the run.
    Skipped,
}

impl StepPhase {
    /// `Succeeded`, `Failed`, `Aborted` or `Skipped`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Aborted | Self::Skipped
        )
    }

    /// The phase as written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Aborted => "Aborted",
            Self::Skipped => "Skipped",
        }
    }
}

impl fmt::Display for StepPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status form of a step phase (the API's `StepPhase` adds `NodeLost`, which only the
/// DaemonJob reconciler sets, from node observations the scheduler does not see).
impl From<StepPhase> for jobsmith_api::StepPhase {
    fn from(phase: StepPhase) -> Self {
        match phase {
            StepPhase::Pending => Self::Pending,
            StepPhase::Running => Self::Running,
            StepPhase::Succeeded => Self::Succeeded,
            StepPhase::Failed => Self::Failed,
            StepPhase::Aborted => Self::Aborted,
            StepPhase::Skipped => Self::Skipped,
        }
    }
}

/// The status form of a run phase.
impl From<RunPhase> for jobsmith_api::Phase {
    fn from(phase: RunPhase) -> Self {
        match phase {
            RunPhase::Pending => Self::Pending,
            RunPhase::Running => Self::Running,
            RunPhase::Succeeded => Self::Succeeded,
            RunPhase::Failed => Self::Failed,
            RunPhase::Suspended => Self::Suspended,
        }
    }
}

/// `spec.failurePolicy` as the scheduler reads it.
impl From<jobsmith_api::FailurePolicy> for FailurePolicy {
    fn from(policy: jobsmith_api::FailurePolicy) -> Self {
        match policy {
            jobsmith_api::FailurePolicy::ContinueIndependent => Self::ContinueIndependent,
            jobsmith_api::FailurePolicy::FailFast => Self::FailFast,
        }
    }
}

/// The phase of a run (`status.phase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RunPhase {
    /// Nothing observed started yet.
    #[default]
    Pending,
    /// Work remains and Jobs run (or are being created).
    Running,
    /// Every step is terminal and none failed.
    Succeeded,
    /// Every step is terminal and at least one failed.
    Failed,
    /// `suspend` is set and no Job runs.
    Suspended,
}

impl RunPhase {
    /// `Succeeded` or `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The phase as written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `status.progress`: terminal steps (aborted included) out of all steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Steps that are `Succeeded`, `Failed`, `Aborted` or `Skipped`.
    pub done: u32,
    /// All steps.
    pub total: u32,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.done, self.total)
    }
}

/// The scheduler's answer for one state of the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Steps whose Job must be created now, in creation order.
    pub create: Vec<StepId>,
    /// Phase per step, indexed by [`StepId`]; steps in `create` are still `Pending`.
    pub steps: Vec<StepPhase>,
    /// Phase per group, indexed by [`GroupId`]: `Succeeded` when all its steps succeeded or
    /// were skipped (`Skipped` when all were skipped), `Failed` when all are terminal and one
    /// failed (or some succeeded and others were aborted), `Aborted` when none ran and some were
    /// aborted, `Running` once any step started or finished, else `Pending`.
    pub groups: Vec<StepPhase>,
    /// The run phase, counting the steps in `create` as started.
    pub phase: RunPhase,
    /// Terminal steps out of all steps.
    pub progress: Progress,
    /// A short human-readable summary for `status.message`.
    pub message: String,
    /// The run's deadline passed before it finished and decides its outcome: the status carries
    /// the reason `DeadlineExceeded` (false once every step finished anyway and the run
    /// succeeded).
    pub deadline_exceeded: bool,
    /// Running (or suspended) steps past the deadline whose Jobs must be stopped, in step order.
    pub stop: Vec<StepId>,
}

/// Whether a step may still start after the run's deadline passed: the exit steps
/// (`spec.onExit`) do, and their Jobs are not stopped.
pub fn runs_past_deadline(dag: &Dag, step: StepId) -> bool {
    dag.is_exit(step)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepState {
    Waiting,
    Met,
    /// Needed success and a failure upstream makes it impossible: the dependent is `Aborted`.
    Broken,
    /// A handler's condition did not occur: the dependent is `Skipped`.
    NotNeeded,
}

fn step_dep_state(phase: StepPhase, required: Required) -> DepState {
    use {Required as R, StepPhase as P};
    match (phase, required) {
        (P::Pending | P::Running, _) => DepState::Waiting,
        (P::Succeeded | P::Skipped, R::Succeeded | R::Completed) => DepState::Met,
        (P::Succeeded | P::Skipped, R::Failed) => DepState::NotNeeded,
        (P::Failed, R::Failed | R::Completed) => DepState::Met,
        (P::Failed | P::Aborted, R::Succeeded) => DepState::Broken,
        (P::Aborted, R::Failed | R::Completed) => DepState::NotNeeded,
    }
}

/// Step counts of one group (or of the whole run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    running: u32,
    succeeded: u32,
    failed: u32,
    aborted: u32,
    skipped: u32,
}

impl Counts {
    fn terminal(&self) -> u32 {
        self.succeeded + self.failed + self.aborted + self.skipped
    }

    fn slot(&mut self, phase: StepPhase) -> Option<&mut u32> {
        match phase {
            StepPhase::Pending => None,
            StepPhase::Running => Some(&mut self.running),
            StepPhase::Succeeded => Some(&mut self.succeeded),
            StepPhase::Failed => Some(&mut self.failed),
            StepPhase::Aborted => Some(&mut self.aborted),
            StepPhase::Skipped => Some(&mut self.skipped),
        }
    }

    fn add(&mut self, phase: StepPhase) {
        if let Some(n) = self.slot(phase) {
            *n += 1;
        }
    }

    fn dep_state(&self, total: u32, required: Required) -> DepState {
        let all_terminal = self.terminal() >= total;
        match required {
            Required::Succeeded if self.failed + self.aborted > 0 => DepState::Broken,
            Required::Succeeded if all_terminal => DepState::Met,
            Required::Failed if all_terminal && self.failed > 0 => DepState::Met,
            Required::Failed if all_terminal => DepState::NotNeeded,
            Required::Completed if all_terminal && self.aborted >= total && total > 0 => {
                DepState::NotNeeded
            }
            Required::Completed if all_terminal => DepState::Met,
            _ => DepState::Waiting,
        }
    }

    fn group_phase(&self, total: u32) -> StepPhase {
        if self.succeeded + self.skipped >= total {
            if self.skipped >= total && total > 0 {
                StepPhase::Skipped
            } else {
                StepPhase::Succeeded
            }
        } else if self.terminal() >= total {
            if self.failed > 0 || self.succeeded > 0 {
                StepPhase::Failed
            } else {
                StepPhase::Aborted
            }
        } else if self.running + self.terminal() > 0 {
            StepPhase::Running
        } else {
            StepPhase::Pending
        }
    }
}

/// `Broken` wins (an `Aborted` step is a consequence of a failure); a step is `Skipped` only
/// once none of its other dependencies can still break it, so it waits while any waits.
fn combine(states: impl Iterator<Item = DepState>) -> DepState {
    let mut combined = DepState::Met;
    for s in states {
        combined = match (combined, s) {
            (DepState::Broken, _) | (_, DepState::Broken) => return DepState::Broken,
            (DepState::Waiting, _) | (_, DepState::Waiting) => DepState::Waiting,
            (DepState::NotNeeded, _) | (_, DepState::NotNeeded) => DepState::NotNeeded,
            (DepState::Met, DepState::Met) => DepState::Met,
        };
    }
    combined
}

fn phase_of(outcome: StepOutcome) -> StepPhase {
    match outcome {
        // A suspended or queued Job runs nothing (yet): its step waits.
        StepOutcome::NotCreated | StepOutcome::Suspended | StepOutcome::Queued => {
            StepPhase::Pending
        }
        StepOutcome::Running => StepPhase::Running,
        StepOutcome::Succeeded => StepPhase::Succeeded,
        StepOutcome::Failed => StepPhase::Failed,
    }
}

fn member_count(dag: &Dag, g: GroupId) -> u32 {
    dag.group_members(g).len() as u32
}

/// Dependency-driven phases before any policy: one pass in topological node order.
struct Derived {
    phases: Vec<StepPhase>,
    ready: Vec<bool>,
    gates: Vec<DepState>,
    groups: Vec<Counts>,
}

fn dep_state(dag: &Dag, phases: &[StepPhase], groups: &[Counts], dep: &Dep) -> DepState {
    match dep.target {
        Target::Step(t) => step_dep_state(
            phases.get(t.index()).copied().unwrap_or_default(),
            dep.required,
        ),
        Target::Group(g) => groups
            .get(g.index())
            .copied()
            .unwrap_or_default()
            .dep_state(member_count(dag, g), dep.required),
    }
}

fn derive(dag: &Dag, outcomes: &[StepOutcome]) -> Derived {
    let n = dag.len();
    let mut d = Derived {
        phases: vec![StepPhase::Pending; n],
        ready: vec![false; n],
        gates: vec![DepState::Waiting; dag.group_count()],
        groups: vec![Counts::default(); dag.group_count()],
    };
    for node in dag.node_order() {
        match *node {
            Node::Gate(g) => {
                let state = combine(
                    dag.group_deps(g)
                        .iter()
                        .map(|dep| dep_state(dag, &d.phases, &d.groups, dep)),
                );
                d.gates[g.index()] = state;
            }
            Node::Step(s) => {
                let i = s.index();
                let outcome = outcomes.get(i).copied().unwrap_or_default();
                let group = dag.step_group(s);
                let phase = if outcome == StepOutcome::NotCreated {
                    let gate = group.map_or(DepState::Met, |g| d.gates[g.index()]);
                    let own = dag
                        .step_deps(s)
                        .iter()
                        .map(|dep| dep_state(dag, &d.phases, &d.groups, dep));
                    match combine(std::iter::once(gate).chain(own)) {
                        DepState::Broken => StepPhase::Aborted,
                        DepState::NotNeeded => StepPhase::Skipped,
                        DepState::Met => {
                            d.ready[i] = true;
                            StepPhase::Pending
                        }
                        DepState::Waiting => StepPhase::Pending,
                    }
                } else {
                    phase_of(outcome)
                };
                d.phases[i] = phase;
                if let Some(g) = group {
                    d.groups[g.index()].add(phase);
                }
            }
            // Every member precedes its group's completion, so the counts are final here.
            Node::Done(_) => {}
        }
    }
    d
}

/// What is under way besides the counted phases.
struct Activity {
    /// Steps offered for creation now.
    creating: usize,
    /// Some step has (or had) a Job.
    started: bool,
    /// Steps whose Job is suspended (they count as `Pending`).
    suspended: u32,
    /// Steps whose Job waits for Kueue's admission (they count as `Pending`).
    queued: u32,
    /// Steps the deadline aborted before they started.
    cut_short: u32,
}

fn run_phase(totals: &Counts, total: u32, suspend: bool, activity: &Activity) -> RunPhase {
    let Activity {
        creating,
        started,
        suspended,
        queued,
        cut_short,
    } = *activity;
    if totals.running > 0 {
        RunPhase::Running
    } else if totals.terminal() >= total {
        if totals.failed > 0 || cut_short > 0 {
            RunPhase::Failed
        } else {
            RunPhase::Succeeded
        }
    } else if suspend {
        RunPhase::Suspended
    } else if creating > 0 && started {
        RunPhase::Running
    } else if suspended + queued > 0 && totals.terminal() > 0 {
        // Some steps ran; the rest wait for their suspended Jobs (Kueue admission, a resume).
        RunPhase::Running
    } else {
        // Either the first Jobs are being created, or (not reachable with a validated graph)
        // nothing can start.
        RunPhase::Pending
    }
}

fn summary(
    dag: &Dag,
    phase: RunPhase,
    totals: &Counts,
    activity: &Activity,
    first_failed: Option<StepId>,
) -> String {
    let creating = activity.creating;
    let total = dag.len();
    let done = totals.terminal();
    let failure = first_failed.map(|s| {
        let key = dag.step_key(s);
        match totals.failed {
            0 | 1 => format!("step \"{key}\" failed"),
            n => format!("step \"{key}\" failed (and {} more)", n - 1),
        }
    });
    let with_failure = |mut rest: String| {
        if activity.suspended > 0 {
            rest.push_str(&format!(", {} suspended", activity.suspended));
        }
        if activity.queued > 0 {
            rest.push_str(&format!(", {} queued", activity.queued));
        }
        match &failure {
            Some(f) => format!("{f}; {rest}"),
            None => rest,
        }
    };
    match phase {
        RunPhase::Pending if creating > 0 => format!("starting {creating} of {total} steps"),
        RunPhase::Pending => with_failure(format!("waiting, {done}/{total} done")),
        RunPhase::Running => with_failure(format!(
            "{} running, {done}/{total} done",
            totals.running as usize + creating
        )),
        RunPhase::Suspended => with_failure(format!("suspended, {done}/{total} done")),
        RunPhase::Succeeded if totals.succeeded < total as u32 => {
            let mut parts = vec![format!("{}/{total} steps succeeded", totals.succeeded)];
            if totals.skipped > 0 {
                parts.push(format!("{} skipped", totals.skipped));
            }
            if totals.aborted > 0 {
                parts.push(format!("{} not run", totals.aborted));
            }
            parts.join(", ")
        }
        RunPhase::Succeeded => format!("all {total} steps succeeded"),
        RunPhase::Failed => with_failure(format!(
            "{} succeeded, {} aborted",
            totals.succeeded, totals.aborted
        )),
    }
}

/// The full scheduling decision for the observed outcomes (indexed by [`StepId`]; missing
/// entries count as `NotCreated`, extra entries are ignored).
pub fn evaluate(dag: &Dag, outcomes: &[StepOutcome], policies: &Policies) -> Decision {
    evaluate_with(dag, outcomes, policies, |_| false)
}

/// [`evaluate`], where `unavailable` steps are ready but cannot be created now (a missing
/// template, a refused create waiting for its retry): they stay `Pending`, are not offered for
/// creation and hold no `maxParallel` slot, so the next ready steps go first.
pub fn evaluate_with(
    dag: &Dag,
    outcomes: &[StepOutcome],
    policies: &Policies,
    unavailable: impl Fn(StepId) -> bool,
) -> Decision {
    evaluate_at(dag, outcomes, policies, false, unavailable)
}

/// [`evaluate_with`] at a moment when the run's deadline has passed (`deadline_exceeded`) or not.
/// The plan's policies are per spec generation; the deadline changes with the clock, so it is a
/// separate input (see the module doc for its rule).
pub fn evaluate_at(
    dag: &Dag,
    outcomes: &[StepOutcome],
    policies: &Policies,
    deadline_exceeded: bool,
    unavailable: impl Fn(StepId) -> bool,
) -> Decision {
    let Derived {
        mut phases,
        ready,
        gates: _,
        mut groups,
    } = derive(dag, outcomes);
    let mut totals = Counts::default();
    for p in &phases {
        totals.add(*p);
    }
    let failed_before_exit = dag
        .steps()
        .any(|s| !dag.is_exit(s) && phases[s.index()] == StepPhase::Failed);
    let stop = policies.failure == FailurePolicy::FailFast && failed_before_exit;
    if stop && totals.running == 0 {
        abort_unstarted(dag, outcomes, &mut phases, &mut totals, &mut groups);
    }
    let suspended = count_outcomes(dag, outcomes, StepOutcome::Suspended);
    let queued = count_outcomes(dag, outcomes, StepOutcome::Queued);
    let (to_stop, cut_short) = if deadline_exceeded {
        cut_at_deadline(dag, outcomes, &mut phases, &mut totals, &mut groups)
    } else {
        (Vec::new(), 0)
    };
    let create = if policies.suspend {
        Vec::new()
    } else {
        // A queued Job may be admitted at any moment: it holds its slot.
        let room = policies.limit().saturating_sub(totals.running + queued) as usize;
        startable(dag, &ready, &phases, stop, &unavailable)
            .take(room)
            .collect()
    };
    // A suspended or queued Job has not started anything (yet).
    let started = outcomes.iter().take(dag.len()).any(|o| {
        !matches!(
            o,
            StepOutcome::NotCreated | StepOutcome::Suspended | StepOutcome::Queued
        )
    });
    let total = dag.len() as u32;
    let activity = Activity {
        creating: create.len(),
        started,
        suspended,
        queued,
        cut_short,
    };
    let phase = run_phase(&totals, total, policies.suspend, &activity);
    let first_failed = dag.steps().find(|s| phases[s.index()] == StepPhase::Failed);
    let mut message = summary(dag, phase, &totals, &activity, first_failed);
    let deadline_exceeded = deadline_exceeded && phase != RunPhase::Succeeded;
    if deadline_exceeded {
        message = deadline_message(&message, to_stop.len());
    }
    Decision {
        groups: dag
            .groups()
            .map(|g| groups[g.index()].group_phase(member_count(dag, g)))
            .collect(),
        create,
        steps: phases,
        phase,
        progress: Progress {
            done: totals.terminal(),
            total,
        },
        message,
        deadline_exceeded,
        stop: to_stop,
    }
}

/// FailFast with nothing running any more: every other step that has not started (and has no
/// Job) is `Aborted`. Exit steps are kept: they run after FailFast too.
fn abort_unstarted(
    dag: &Dag,
    outcomes: &[StepOutcome],
    phases: &mut [StepPhase],
    totals: &mut Counts,
    groups: &mut [Counts],
) {
    for s in dag.steps() {
        let i = s.index();
        // A step with a (suspended) Job keeps it: an observed Job wins over derived state.
        let has_job = outcomes
            .get(i)
            .is_some_and(|o| *o != StepOutcome::NotCreated);
        if phases[i] == StepPhase::Pending && !has_job && !dag.is_exit(s) {
            phases[i] = StepPhase::Aborted;
            totals.aborted += 1;
            if let Some(g) = dag.step_group(s) {
                groups[g.index()].add(StepPhase::Aborted);
            }
        }
    }
}

/// How many of the run's steps have this outcome.
fn count_outcomes(dag: &Dag, outcomes: &[StepOutcome], outcome: StepOutcome) -> u32 {
    outcomes
        .iter()
        .take(dag.len())
        .filter(|o| **o == outcome)
        .count() as u32
}

/// The steps that may be created now, in plan order: ready, `Pending`, available, and allowed
/// to start. Exit steps wait for every other step to be terminal (the deadline's aborted ones
/// included); FailFast (`stop`) and the deadline stop only the others.
fn startable<'a>(
    dag: &'a Dag,
    ready: &'a [bool],
    phases: &'a [StepPhase],
    stop: bool,
    unavailable: &'a impl Fn(StepId) -> bool,
) -> impl Iterator<Item = StepId> + 'a {
    let exit_gate_open = dag.has_exit_steps()
        && dag
            .steps()
            .all(|s| dag.is_exit(s) || phases[s.index()].is_terminal());
    dag.steps().filter(move |s| {
        let may_start = if dag.is_exit(*s) {
            exit_gate_open
        } else {
            !stop
        };
        ready[s.index()] && phases[s.index()] == StepPhase::Pending && !unavailable(*s) && may_start
    })
}

/// Past the deadline: every step that may not run past it and has not started (no Job, or a
/// suspended one) becomes `Aborted`; the running ones (and the suspended ones) are to be
/// stopped. Returns those and how many steps were aborted.
fn cut_at_deadline(
    dag: &Dag,
    outcomes: &[StepOutcome],
    phases: &mut [StepPhase],
    totals: &mut Counts,
    groups: &mut [Counts],
) -> (Vec<StepId>, u32) {
    let mut to_stop = Vec::new();
    let mut cut_short = 0;
    for s in dag.steps() {
        let i = s.index();
        if runs_past_deadline(dag, s) {
            continue;
        }
        let outcome = outcomes.get(i).copied().unwrap_or_default();
        if matches!(
            outcome,
            StepOutcome::Running | StepOutcome::Suspended | StepOutcome::Queued
        ) {
            to_stop.push(s);
        }
        if phases[i] == StepPhase::Pending {
            phases[i] = StepPhase::Aborted;
            totals.aborted += 1;
            cut_short += 1;
            if let Some(g) = dag.step_group(s) {
                groups[g.index()].add(StepPhase::Aborted);
            }
        }
    }
    (to_stop, cut_short)
}

fn deadline_message(message: &str, stopping: usize) -> String {
    match stopping {
        0 => format!("deadline exceeded (activeDeadlineSeconds); {message}"),
        n => format!(
            "deadline exceeded (activeDeadlineSeconds), stopping {n} running Jobs; {message}"
        ),
    }
}
