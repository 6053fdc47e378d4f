//! The step scheduler: observed step outcomes + policies -> what to create, and the roll-up
//! (SPEC §1 "Run controls", §2 "Ordering"/"Failure", §3 failure policies).
//!
//! Rules, decided here once for every run kind:
//! - A dependency on a step is *met* when the step's phase satisfies the required outcome:
//!   `Succeeded` needs `Succeeded`; `Failed` needs `Failed` or `Aborted` (an aborted step did not
//!   succeed, so "on failure" handlers of a broken chain still run); `Completed` needs any
//!   terminal phase. On a group: `Succeeded` = all its steps succeeded, `Failed` = all terminal
//!   and at least one failed or aborted, `Completed` = all terminal.
//! - A step is *ready* when every dependency (its own and its group's) is met. A step that has
//!   no Job and a dependency that can no longer be met is `Aborted` (never started), which in
//!   turn may abort its dependents.
//! - `FailFast`: after the first `Failed` step nothing new starts; once nothing runs, every step
//!   not started is `Aborted` and the run is `Failed`. `ContinueIndependent`: all work that can
//!   still run does.
//! - The run is `Failed` when every step is terminal and any step `Failed` (even if a later
//!   step handled that failure); `Succeeded` when every step is terminal and none failed
//!   (aborted steps whose condition simply did not occur, such as an unused failure handler,
//!   do not fail the run).
//! - `suspend` creates nothing; the run is `Running` while Jobs still run and `Suspended` once
//!   none does (a terminal run stays terminal). `max_parallel: N` keeps running + newly created
//!   at most `N` (`0` is treated as `1`, so a run can always finish); ready steps are created
//!   in input (list) order.
//! - `Pending` is the run phase before any step was observed started (the first Jobs are being
//!   created); then `Running`.
//! - An observed Job always wins over derived state: a step with a Job is `Running`,
//!   `Succeeded` or `Failed` whatever its dependencies say.
//!
//! [`evaluate`] computes a [`Decision`] from scratch in O(steps + edges). [`Scheduler`] keeps
//! per-step unmet-dependency counters and is fed one observed change at a time; forward changes
//! (no Job -> running -> finished) cost O(affected steps and edges). A backward change (a Job
//! disappeared, a finished Job reports running again, a Job appeared for an aborted step) or a
//! change of failure policy rebuilds the state in O(steps + edges).

use std::collections::BTreeSet;
use std::fmt;

use crate::dag::{Dag, Dep, GroupId, Node, Referrer, Required, StepId, Target};
use crate::observe::StepOutcome;

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
    /// Never started: a dependency can no longer be met, or FailFast stopped the run.
    Aborted,
}

impl StepPhase {
    /// `Succeeded`, `Failed` or `Aborted`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Aborted)
    }

    /// The phase as written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Aborted => "Aborted",
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
    /// Steps that are `Succeeded`, `Failed` or `Aborted`.
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
    /// Phase per group, indexed by [`GroupId`]: `Succeeded` when all its steps succeeded,
    /// `Failed` when all are terminal and one failed or was aborted (`Aborted` when none of
    /// them ever started), `Running` once any step started or finished, else `Pending`.
    pub groups: Vec<StepPhase>,
    /// The run phase, counting the steps in `create` as started.
    pub phase: RunPhase,
    /// Terminal steps out of all steps.
    pub progress: Progress,
    /// A short human-readable summary for `status.message`.
    pub message: String,
}

/// One change worth acting on, produced by [`Scheduler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create the Job of this step.
    Create(StepId),
    /// This step will never start.
    Abort(StepId),
    /// The run phase changed to this value.
    Phase(RunPhase),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DepState {
    Waiting,
    Met,
    Impossible,
}

fn step_dep_state(phase: StepPhase, required: Required) -> DepState {
    match (phase, required) {
        (StepPhase::Pending | StepPhase::Running, _) => DepState::Waiting,
        (StepPhase::Succeeded, Required::Succeeded | Required::Completed) => DepState::Met,
        (StepPhase::Succeeded, Required::Failed) => DepState::Impossible,
        (StepPhase::Failed | StepPhase::Aborted, Required::Failed | Required::Completed) => {
            DepState::Met
        }
        (StepPhase::Failed | StepPhase::Aborted, Required::Succeeded) => DepState::Impossible,
    }
}

/// Step counts of one group (or of the whole run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    running: u32,
    succeeded: u32,
    failed: u32,
    aborted: u32,
}

impl Counts {
    fn terminal(&self) -> u32 {
        self.succeeded + self.failed + self.aborted
    }

    fn failed_like(&self) -> u32 {
        self.failed + self.aborted
    }

    fn slot(&mut self, phase: StepPhase) -> Option<&mut u32> {
        match phase {
            StepPhase::Pending => None,
            StepPhase::Running => Some(&mut self.running),
            StepPhase::Succeeded => Some(&mut self.succeeded),
            StepPhase::Failed => Some(&mut self.failed),
            StepPhase::Aborted => Some(&mut self.aborted),
        }
    }

    fn add(&mut self, phase: StepPhase) {
        if let Some(n) = self.slot(phase) {
            *n += 1;
        }
    }

    fn remove(&mut self, phase: StepPhase) {
        if let Some(n) = self.slot(phase) {
            *n = n.saturating_sub(1);
        }
    }

    fn dep_state(&self, total: u32, required: Required) -> DepState {
        let all_terminal = self.terminal() >= total;
        match required {
            Required::Succeeded if self.failed_like() > 0 => DepState::Impossible,
            Required::Succeeded if all_terminal => DepState::Met,
            Required::Failed if all_terminal && self.failed_like() > 0 => DepState::Met,
            Required::Failed if all_terminal => DepState::Impossible,
            Required::Completed if all_terminal => DepState::Met,
            _ => DepState::Waiting,
        }
    }

    fn group_phase(&self, total: u32) -> StepPhase {
        if self.succeeded >= total {
            StepPhase::Succeeded
        } else if self.terminal() >= total {
            if self.aborted >= total {
                StepPhase::Aborted
            } else {
                StepPhase::Failed
            }
        } else if self.running + self.terminal() > 0 {
            StepPhase::Running
        } else {
            StepPhase::Pending
        }
    }
}

fn combine(states: impl Iterator<Item = DepState>) -> DepState {
    let mut all_met = true;
    for s in states {
        match s {
            DepState::Impossible => return DepState::Impossible,
            DepState::Waiting => all_met = false,
            DepState::Met => {}
        }
    }
    if all_met {
        DepState::Met
    } else {
        DepState::Waiting
    }
}

fn phase_of(outcome: StepOutcome) -> StepPhase {
    match outcome {
        StepOutcome::NotCreated => StepPhase::Pending,
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
                        DepState::Impossible => StepPhase::Aborted,
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

fn run_phase(
    totals: &Counts,
    total: u32,
    suspend: bool,
    creating: usize,
    started: bool,
) -> RunPhase {
    if totals.running > 0 {
        RunPhase::Running
    } else if totals.terminal() >= total {
        if totals.failed > 0 {
            RunPhase::Failed
        } else {
            RunPhase::Succeeded
        }
    } else if suspend {
        RunPhase::Suspended
    } else if creating > 0 && started {
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
    creating: usize,
    first_failed: Option<StepId>,
) -> String {
    let total = dag.len();
    let done = totals.terminal();
    let failure = first_failed.map(|s| {
        let key = dag.step_key(s);
        match totals.failed {
            0 | 1 => format!("step \"{key}\" failed"),
            n => format!("step \"{key}\" failed (and {} more)", n - 1),
        }
    });
    let with_failure = |rest: String| match &failure {
        Some(f) => format!("{f}; {rest}"),
        None => rest,
    };
    match phase {
        RunPhase::Pending if creating > 0 => format!("starting {creating} of {total} steps"),
        RunPhase::Pending => format!("waiting, {done}/{total} done"),
        RunPhase::Running => with_failure(format!(
            "{} running, {done}/{total} done",
            totals.running as usize + creating
        )),
        RunPhase::Suspended => with_failure(format!("suspended, {done}/{total} done")),
        RunPhase::Succeeded if totals.aborted > 0 => format!(
            "{}/{total} steps succeeded, {} not run",
            totals.succeeded, totals.aborted
        ),
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
    let stop = policies.failure == FailurePolicy::FailFast && totals.failed > 0;
    if stop && totals.running == 0 {
        for s in dag.steps() {
            let i = s.index();
            if phases[i] == StepPhase::Pending {
                phases[i] = StepPhase::Aborted;
                totals.aborted += 1;
                if let Some(g) = dag.step_group(s) {
                    groups[g.index()].add(StepPhase::Aborted);
                }
            }
        }
    }
    let mut create = Vec::new();
    if !policies.suspend && !stop {
        let room = policies.limit().saturating_sub(totals.running) as usize;
        create.extend(
            dag.steps()
                .filter(|s| ready[s.index()] && phases[s.index()] == StepPhase::Pending)
                .take(room),
        );
    }
    let started = outcomes
        .iter()
        .take(dag.len())
        .any(|o| *o != StepOutcome::NotCreated);
    let total = dag.len() as u32;
    let phase = run_phase(&totals, total, policies.suspend, create.len(), started);
    let first_failed = dag.steps().find(|s| phases[s.index()] == StepPhase::Failed);
    let message = summary(dag, phase, &totals, create.len(), first_failed);
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
    }
}

/// Events still to propagate inside one [`Scheduler`] update.
#[derive(Clone, Copy, Debug)]
enum Work {
    StepTerminal(StepId),
    GroupFirstFailure(GroupId),
    GroupAllTerminal(GroupId),
}

/// Incremental state: what [`evaluate`] would compute, kept up to date event by event.
#[derive(Clone, Debug)]
struct State {
    /// Observed outcomes, plus `Running` for steps this scheduler asked to create.
    outcomes: Vec<StepOutcome>,
    phases: Vec<StepPhase>,
    /// Unmet dependencies of each pending step (its group's gate counts as one).
    unmet: Vec<u32>,
    gates: Vec<DepState>,
    gate_unmet: Vec<u32>,
    groups: Vec<Counts>,
    totals: Counts,
    ready: BTreeSet<u32>,
    first_failed: Option<StepId>,
    phase: RunPhase,
    work: Vec<Work>,
}

impl State {
    /// Builds counters from scratch for `outcomes` (creates nothing).
    fn init(dag: &Dag, outcomes: Vec<StepOutcome>) -> Self {
        let mut outcomes = outcomes;
        outcomes.resize(dag.len(), StepOutcome::NotCreated);
        let d = derive(dag, &outcomes);
        let not_met = |dep: &Dep| dep_state(dag, &d.phases, &d.groups, dep) != DepState::Met;
        let mut unmet = vec![0; dag.len()];
        let mut ready = BTreeSet::new();
        let mut totals = Counts::default();
        for s in dag.steps() {
            let i = s.index();
            totals.add(d.phases[i]);
            if d.phases[i] != StepPhase::Pending {
                continue;
            }
            let gate = dag
                .step_group(s)
                .is_some_and(|g| d.gates[g.index()] != DepState::Met);
            unmet[i] =
                u32::from(gate) + dag.step_deps(s).iter().filter(|d| not_met(d)).count() as u32;
            if d.ready[i] {
                ready.insert(s.0);
            }
        }
        let gate_unmet = dag
            .groups()
            .map(|g| dag.group_deps(g).iter().filter(|d| not_met(d)).count() as u32)
            .collect();
        let first_failed = dag
            .steps()
            .find(|s| d.phases[s.index()] == StepPhase::Failed);
        Self {
            outcomes,
            phases: d.phases,
            unmet,
            gates: d.gates,
            gate_unmet,
            groups: d.groups,
            totals,
            ready,
            first_failed,
            phase: RunPhase::Pending,
            work: Vec::new(),
        }
    }

    fn started(&self) -> bool {
        self.outcomes.iter().any(|o| *o != StepOutcome::NotCreated)
    }

    /// Moves a step to a new phase, updating every counter and queueing the events it causes.
    fn set_phase(&mut self, dag: &Dag, s: StepId, new: StepPhase) {
        let i = s.index();
        let Some(old) = self.phases.get(i).copied() else {
            return;
        };
        if old == new {
            return;
        }
        self.phases[i] = new;
        if old == StepPhase::Pending {
            self.ready.remove(&s.0);
        }
        self.totals.remove(old);
        self.totals.add(new);
        if let Some(g) = dag.step_group(s) {
            let total = member_count(dag, g);
            let counts = &mut self.groups[g.index()];
            let before = *counts;
            counts.remove(old);
            counts.add(new);
            if before.failed_like() == 0 && counts.failed_like() > 0 {
                self.work.push(Work::GroupFirstFailure(g));
            }
            if before.terminal() < total && counts.terminal() >= total {
                self.work.push(Work::GroupAllTerminal(g));
            }
        }
        if new == StepPhase::Failed && self.first_failed.is_none_or(|f| s < f) {
            self.first_failed = Some(s);
        }
        if !old.is_terminal() && new.is_terminal() {
            self.work.push(Work::StepTerminal(s));
        }
    }

    fn dependency_met(&mut self, dag: &Dag, referrer: Referrer) {
        match referrer {
            Referrer::Step(s) => self.step_dependency_met(s),
            Referrer::Gate(g) => {
                if self.gates[g.index()] != DepState::Waiting {
                    return;
                }
                let left = &mut self.gate_unmet[g.index()];
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.gates[g.index()] = DepState::Met;
                    for m in dag.group_members(g) {
                        self.step_dependency_met(*m);
                    }
                }
            }
        }
    }

    fn step_dependency_met(&mut self, s: StepId) {
        let i = s.index();
        if self.phases[i] != StepPhase::Pending {
            return;
        }
        self.unmet[i] = self.unmet[i].saturating_sub(1);
        if self.unmet[i] == 0 {
            self.ready.insert(s.0);
        }
    }

    fn dependency_impossible(&mut self, dag: &Dag, referrer: Referrer, actions: &mut Vec<Action>) {
        match referrer {
            Referrer::Step(s) => self.abort(dag, s, actions),
            Referrer::Gate(g) => {
                if self.gates[g.index()] != DepState::Waiting {
                    return;
                }
                self.gates[g.index()] = DepState::Impossible;
                for m in dag.group_members(g) {
                    self.abort(dag, *m, actions);
                }
            }
        }
    }

    fn abort(&mut self, dag: &Dag, s: StepId, actions: &mut Vec<Action>) {
        if self.phases[s.index()] == StepPhase::Pending {
            self.set_phase(dag, s, StepPhase::Aborted);
            actions.push(Action::Abort(s));
        }
    }

    /// Propagates queued events; each dependency edge is looked at once per event of its
    /// target, and each target has at most two events, so the cost is O(affected edges).
    fn propagate(&mut self, dag: &Dag, actions: &mut Vec<Action>) {
        while let Some(work) = self.work.pop() {
            match work {
                Work::StepTerminal(t) => {
                    let phase = self.phases[t.index()];
                    for d in dag.step_dependents(t) {
                        match step_dep_state(phase, d.required) {
                            DepState::Met => self.dependency_met(dag, d.referrer),
                            DepState::Impossible => {
                                self.dependency_impossible(dag, d.referrer, actions);
                            }
                            DepState::Waiting => {}
                        }
                    }
                }
                Work::GroupFirstFailure(g) => {
                    for d in dag.group_dependents(g) {
                        if d.required == Required::Succeeded {
                            self.dependency_impossible(dag, d.referrer, actions);
                        }
                    }
                }
                Work::GroupAllTerminal(g) => {
                    let any_failed = self.groups[g.index()].failed_like() > 0;
                    for d in dag.group_dependents(g) {
                        match (d.required, any_failed) {
                            (Required::Completed, _)
                            | (Required::Succeeded, false)
                            | (Required::Failed, true) => self.dependency_met(dag, d.referrer),
                            (Required::Failed, false) => {
                                self.dependency_impossible(dag, d.referrer, actions);
                            }
                            // Already made impossible by the group's first failure.
                            (Required::Succeeded, true) => {}
                        }
                    }
                }
            }
        }
    }

    /// Applies the policies after events: FailFast sweep, creations, run phase.
    fn settle(&mut self, dag: &Dag, policies: &Policies, actions: &mut Vec<Action>) {
        self.propagate(dag, actions);
        let stop = policies.failure == FailurePolicy::FailFast && self.totals.failed > 0;
        let pending = (dag.len() as u32)
            .saturating_sub(self.totals.running)
            .saturating_sub(self.totals.terminal());
        if stop && self.totals.running == 0 && pending > 0 {
            for s in dag.steps() {
                self.abort(dag, s, actions);
            }
            // Everything not started is aborted; nothing is left to unblock.
            self.work.clear();
        }
        if !policies.suspend && !stop {
            let limit = policies.limit();
            while self.totals.running < limit {
                let Some(next) = self.ready.pop_first() else {
                    break;
                };
                let s = StepId(next);
                self.outcomes[s.index()] = StepOutcome::Running;
                self.set_phase(dag, s, StepPhase::Running);
                actions.push(Action::Create(s));
            }
        }
        let phase = run_phase(
            &self.totals,
            dag.len() as u32,
            policies.suspend,
            0,
            self.started(),
        );
        if phase != self.phase {
            self.phase = phase;
            actions.push(Action::Phase(phase));
        }
    }
}

/// The incremental scheduler: feed it observed outcomes one at a time.
///
/// A step it returned in [`Action::Create`] is from then on treated as `Running` (the caller
/// creates its Job), so it is never returned twice; observing `Running` for it is a no-op.
#[derive(Clone, Debug)]
pub struct Scheduler {
    dag: Dag,
    policies: Policies,
    state: State,
}

impl Scheduler {
    /// Starts from observed outcomes. The returned decision equals
    /// `evaluate(&dag, outcomes, &policies)`; its `create` steps are then considered running.
    pub fn new(dag: Dag, outcomes: &[StepOutcome], policies: Policies) -> (Self, Decision) {
        let (state, decision) = Self::start(&dag, outcomes, &policies);
        (
            Self {
                dag,
                policies,
                state,
            },
            decision,
        )
    }

    fn start(dag: &Dag, outcomes: &[StepOutcome], policies: &Policies) -> (State, Decision) {
        let mut decision = evaluate(dag, outcomes, policies);
        let mut assumed = outcomes.to_vec();
        assumed.resize(dag.len(), StepOutcome::NotCreated);
        for s in &decision.create {
            assumed[s.index()] = StepOutcome::Running;
        }
        let mut state = State::init(dag, assumed);
        let mut actions = Vec::new();
        state.settle(dag, policies, &mut actions);
        // `evaluate` already created everything that fits; anything else would be a bug, but
        // never lose a creation.
        decision
            .create
            .extend(actions.iter().filter_map(|a| match a {
                Action::Create(s) => Some(*s),
                _ => None,
            }));
        (state, decision)
    }

    /// Records the observed outcome of one step and returns what to do now.
    /// Unknown step ids are ignored.
    pub fn observe(&mut self, step: StepId, outcome: StepOutcome) -> Vec<Action> {
        let i = step.index();
        let Some(&old) = self.state.outcomes.get(i) else {
            return Vec::new();
        };
        if old == outcome {
            return Vec::new();
        }
        let phase = self.state.phases[i];
        let forward = match (old, outcome) {
            (StepOutcome::NotCreated, _) => phase == StepPhase::Pending,
            (StepOutcome::Running, StepOutcome::Succeeded | StepOutcome::Failed) => true,
            _ => false,
        };
        if !forward {
            let mut outcomes = self.state.outcomes.clone();
            outcomes[i] = outcome;
            return self.restart(&outcomes);
        }
        let mut actions = Vec::new();
        self.state.outcomes[i] = outcome;
        self.state.set_phase(&self.dag, step, phase_of(outcome));
        self.state.settle(&self.dag, &self.policies, &mut actions);
        actions
    }

    /// Changes the run controls. Toggling `suspend` or `max_parallel` is incremental; a change
    /// of failure policy rebuilds the state (FailFast may already have aborted steps).
    pub fn set_policies(&mut self, policies: Policies) -> Vec<Action> {
        if policies == self.policies {
            return Vec::new();
        }
        let failure_changed = policies.failure != self.policies.failure;
        self.policies = policies;
        if failure_changed {
            let outcomes = self.state.outcomes.clone();
            return self.restart(&outcomes);
        }
        let mut actions = Vec::new();
        self.state.settle(&self.dag, &self.policies, &mut actions);
        actions
    }

    /// Rebuilds from scratch and reports the difference as actions.
    fn restart(&mut self, outcomes: &[StepOutcome]) -> Vec<Action> {
        let (state, decision) = Self::start(&self.dag, outcomes, &self.policies);
        let mut actions: Vec<Action> = decision.create.iter().map(|s| Action::Create(*s)).collect();
        for s in self.dag.steps() {
            let i = s.index();
            if state.phases[i] == StepPhase::Aborted && self.state.phases[i] != StepPhase::Aborted {
                actions.push(Action::Abort(s));
            }
        }
        let old_phase = self.state.phase;
        self.state = state;
        if self.state.phase != old_phase {
            actions.push(Action::Phase(self.state.phase));
        }
        actions
    }

    /// The current decision (O(steps)); `create` is empty because creations were returned as
    /// actions. Equals `evaluate(self.dag(), self.outcomes(), self.policies())`.
    pub fn decision(&self) -> Decision {
        let total = self.dag.len() as u32;
        let totals = &self.state.totals;
        Decision {
            create: Vec::new(),
            steps: self.state.phases.clone(),
            groups: self
                .dag
                .groups()
                .map(|g| self.state.groups[g.index()].group_phase(member_count(&self.dag, g)))
                .collect(),
            phase: self.state.phase,
            progress: Progress {
                done: totals.terminal(),
                total,
            },
            message: summary(
                &self.dag,
                self.state.phase,
                totals,
                0,
                self.state.first_failed,
            ),
        }
    }

    /// The graph.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The run controls in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Outcomes as the scheduler sees them (observed, plus `Running` for steps it created).
    pub fn outcomes(&self) -> &[StepOutcome] {
        &self.state.outcomes
    }

    /// The phase of one step (`Pending` for an unknown id).
    pub fn step_phase(&self, step: StepId) -> StepPhase {
        self.state
            .phases
            .get(step.index())
            .copied()
            .unwrap_or_default()
    }

    /// The run phase.
    pub fn phase(&self) -> RunPhase {
        self.state.phase
    }

    /// Terminal steps out of all steps.
    pub fn progress(&self) -> Progress {
        Progress {
            done: self.state.totals.terminal(),
            total: self.dag.len() as u32,
        }
    }
}
