//! Tell: the Events of a reconcile, derived from step transitions (so a restart does not repeat
//! them), published in the background.

use std::{borrow::Cow, sync::Arc};

use jobsmith_api::{Phase, StepPhase as ApiStepPhase};
use jobsmith_engine::{
    StepId,
    compile::{Plan, PlannedStep},
    status::rollup::{Blocker, Rollup},
};

use super::{RunKind, observe::Observed};
use kube::runtime::events::EventType;

use crate::{
    cli::StepEvents,
    context::Context,
    memory::{RunMemo, StepMemo, step_at_mut},
    telemetry::events::{EventKind, Regarding},
};

/// One Event to publish after the status write.
pub(super) struct Note {
    pub(super) kind: EventKind,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

/// One Warning for every step that became `Aborted` in this reconcile (one Event per step
/// would drown the run's own Events in the Event budget).
pub(super) fn aborted_note(keys: &[&str]) -> Option<Note> {
    const NAMED: usize = 5;
    let (first, rest) = keys.split_at(keys.len().min(NAMED));
    if first.is_empty() {
        return None;
    }
    let mut list = first.join(", ");
    if !rest.is_empty() {
        list.push_str(&format!(" and {} more", rest.len()));
    }
    let count = keys.len();
    let noun = if count == 1 { "step" } else { "steps" };
    Some(Note {
        kind: EventKind::Failed,
        reason: "StepAborted",
        message: format!(
            "{count} {noun} will not run (a dependency that needed success failed, or the run stopped): {list}"
        ),
    })
}

/// The Events (and finish hooks) of one step's transition. `all`: `--step-events=all`, which
/// adds the per-step Normal Events (`JobSucceeded`, `StepSuspended`, `Queued`) to the Warnings.
pub(super) fn step_notes(
    step: &PlannedStep,
    known: &StepMemo,
    phase: ApiStepPhase,
    blocker: Option<&Blocker>,
    all: bool,
    notes: &mut Vec<Note>,
    finished: impl FnOnce(bool),
) {
    let reason = blocker.map(Blocker::reason);
    if let Some(blocker) = blocker
        && known.reason.as_deref() != reason
    {
        let kind = match blocker {
            Blocker::NameConflict => EventKind::Conflict,
            // Normal Events, only with `--step-events=all`: waiting is not a problem.
            Blocker::Suspended | Blocker::Queued { .. } => EventKind::Suspended,
            Blocker::Invalid { .. } => EventKind::Invalid,
            _ => EventKind::Failed,
        };
        if all || kind.event_type() == EventType::Warning {
            notes.push(Note {
                kind,
                reason: blocker.reason(),
                message: blocker.describe(&step.key, &known.job_name(step)),
            });
        }
    }
    if known.phase == phase || blocker.is_some() {
        return;
    }
    match phase {
        ApiStepPhase::Succeeded => {
            finished(true);
            if all {
                notes.push(Note {
                    kind: EventKind::Succeeded,
                    reason: "JobSucceeded",
                    message: format!(
                        "Job {} of step {} succeeded",
                        known.job_name(step),
                        step.key
                    ),
                });
            }
        }
        ApiStepPhase::Failed => {
            finished(false);
            notes.push(Note {
                kind: EventKind::Failed,
                reason: "JobFailed",
                message: format!("Job {} of step {} failed", known.job_name(step), step.key),
            });
        }
        // Aborted steps are summarised once per reconcile (`aborted_note`); skipped ones are
        // neutral and say nothing.
        ApiStepPhase::Aborted
        | ApiStepPhase::Skipped
        | ApiStepPhase::Pending
        | ApiStepPhase::Running
        | ApiStepPhase::NodeLost => {}
    }
}

pub(super) fn announce_created<K: RunKind>(
    ctx: &Arc<Context>,
    obj: &K,
    plan: &Plan,
    memo: &RunMemo,
    created: &[StepId],
) {
    if created.is_empty() {
        return;
    }
    let all = ctx.step_events == StepEvents::All;
    let mut notes = Vec::new();
    for step in created {
        let Some(planned) = plan.steps.get(step.index()) else {
            continue;
        };
        K::on_job_created(ctx, obj, planned);
        let job_name = memo
            .steps
            .get(&planned.key)
            .map_or(Cow::Borrowed(planned.job_name.as_str()), |known| {
                known.job_name(planned)
            });
        tracing::info!(job = %job_name, step = %planned.key, "created Job");
        if !all {
            continue;
        }
        notes.push(Note {
            kind: EventKind::Created,
            reason: "JobCreated",
            message: format!("created Job {job_name} for step {}", planned.key),
        });
    }
    publish(ctx, obj, notes);
}

/// Publishes Events in the background: a reconcile never waits for them (they are best effort
/// and rate limited), which keeps the per-event cost of a reconcile low.
pub(super) fn publish<K: RunKind>(ctx: &Arc<Context>, obj: &K, notes: Vec<Note>) {
    if notes.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    let regarding = Regarding::of(obj);
    tokio::spawn(async move {
        for note in notes {
            ctx.events
                .publish_about(&regarding, note.kind, note.reason, note.message)
                .await;
        }
    });
}

/// What a reconcile tells after its status write.
pub(super) struct Told {
    pub notes: Vec<Note>,
    /// Steps with a running Job (the kind's `on_reconciled` hook).
    pub active: u64,
}

/// Compares each step's new phase with the one remembered, collects the Events and finish hooks
/// of the transitions, and moves the memory to the new phases.
pub(super) fn transitions<K: RunKind>(
    ctx: &Arc<Context>,
    obj: &K,
    plan: &Plan,
    observed: &Observed,
    rolled: &Rollup,
    memo: &mut RunMemo,
) -> Told {
    let all = ctx.step_events == StepEvents::All;
    let mut notes = Vec::new();
    let mut active = 0u64;
    let mut aborted = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let phase = rolled.step_phases[i];
        let blocker = observed.blockers[i].as_ref();
        if phase == ApiStepPhase::Running {
            active += 1;
        }
        // Every step has its entry (`observe_steps`), in plan order.
        let Some(known) = step_at_mut(&mut memo.steps, i, &step.key) else {
            continue;
        };
        if observed.jobs[i].is_some() {
            known.started = true;
        }
        if known.baseline {
            known.baseline = false;
        } else {
            if phase == ApiStepPhase::Aborted && known.phase != ApiStepPhase::Aborted {
                aborted.push(step.key.as_str());
            }
            step_notes(step, known, phase, blocker, all, &mut notes, |succeeded| {
                K::on_job_finished(ctx, obj, step, succeeded)
            });
        }
        known.phase = phase;
        known.reason = blocker.map(|b| b.reason().to_owned());
    }
    if rolled.run.phase != memo.phase {
        notes.extend(run_note(rolled, memo.phase.is_none(), plan.steps.len()));
    }
    notes.extend(aborted_note(&aborted));
    memo.phase = rolled.run.phase;
    memo.forget_removed_steps(plan);
    Told { notes, active }
}

/// The Event of the run's own transition: `Started` when a run without a phase (a new object;
/// after a restart the phase comes from the status) gets its first one, then the final and
/// suspended phases.
fn run_note(rolled: &Rollup, first: bool, steps: usize) -> Option<Note> {
    let (kind, reason) = match rolled.run.phase? {
        Phase::Succeeded => (EventKind::Succeeded, "Succeeded"),
        Phase::Failed if rolled.reason == jobsmith_api::reasons::DEADLINE_EXCEEDED => {
            (EventKind::Failed, jobsmith_api::reasons::DEADLINE_EXCEEDED)
        }
        Phase::Failed => (EventKind::Failed, "Failed"),
        Phase::Suspended => (EventKind::Suspended, "Suspended"),
        Phase::Pending | Phase::Running if first => {
            return Some(Note {
                kind: EventKind::Created,
                reason: "Started",
                message: format!("run started with {steps} steps"),
            });
        }
        _ => return None,
    };
    Some(Note {
        kind,
        reason,
        message: rolled.run.message.clone().unwrap_or_default(),
    })
}
