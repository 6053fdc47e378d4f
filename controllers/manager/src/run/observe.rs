//! Observe: each step's Job read by name from the shared cache, with what the memory and the
//! durable record say for a Job that is gone; then the scheduler's decision.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jobsmith_api::StepPhase as ApiStepPhase;
use jobsmith_engine::ObservedJob;
use jobsmith_engine::{
    Decision, StepOutcome,
    compile::{Plan, PlannedStep},
    evaluate_at,
    lifecycle::{self, Deadline},
    observe,
    status::rollup::Blocker,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, runtime::reflector::ObjectRef};

use super::{RunKind, create::CONFLICT_RECHECK};
use crate::{
    cache::jobs,
    context::Context,
    memory::{Refusal, RunMemo, StepMemo, finished_before, step_at, step_at_mut},
};

/// The steps as observed, and the decision taken on them (updated while Jobs are created).
pub(super) struct Observed {
    pub(super) outcomes: Vec<StepOutcome>,
    pub(super) jobs: Vec<Option<Arc<ObservedJob>>>,
    pub(super) blockers: Vec<Option<Blocker>>,
    /// Ready steps that cannot be created now (a standing refusal); they hold no slot.
    pub(super) unavailable: Vec<bool>,
    /// Per step: its current attempt (1 until a retry in place).
    pub(super) attempts: Vec<u32>,
    /// The run's deadline at this reconcile (engine `lifecycle`).
    pub(super) deadline: Deadline,
    pub(super) decision: Decision,
}

/// Reads each step's Job by name from the shared cache; what the memory and the record say
/// stands in for a Job that is gone. The run's deadline is judged at `now` from the spec, the
/// status as read and the retries acted on so far.
pub(super) fn observe_steps<K: RunKind>(
    obj: &K,
    ctx: &Context,
    plan: &Plan,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
    now: &Time,
) -> Observed {
    let n = plan.steps.len();
    let mut observed = Observed {
        outcomes: Vec::with_capacity(n),
        jobs: Vec::with_capacity(n),
        blockers: Vec::with_capacity(n),
        unavailable: Vec::with_capacity(n),
        attempts: Vec::with_capacity(n),
        deadline: lifecycle::deadline(
            obj.lifecycle().active_deadline_seconds,
            obj.run_status(),
            &memo.retries,
            now.0,
        ),
        decision: Decision {
            create: Vec::new(),
            steps: Vec::new(),
            groups: Vec::new(),
            phase: Default::default(),
            progress: Default::default(),
            message: String::new(),
            deadline_exceeded: false,
            stop: Vec::new(),
        },
    };
    // Every step has its memory, in plan order (`RunMemo::align`): found by position.
    memo.align(plan);
    let (steps, fresh_jobs) = (&mut memo.steps, &mut memo.fresh_jobs);
    // One key for every lookup, its name replaced per step: building a fresh `ObjectRef` (two
    // strings) for each of 10,000 steps was a visible part of a big run's reconcile.
    let mut lookup = ObjectRef::<ObservedJob>::new("").within(namespace);
    for (i, step) in plan.steps.iter().enumerate() {
        let Some(known) = step_at_mut(steps, i, &step.key) else {
            continue;
        };
        lookup.name.clear();
        lookup.name.push_str(&known.job_name(step));
        let mut seen = observe_step(obj, ctx, step, &lookup, uid, known);
        if known.created && !known.seen && seen.job.is_none() {
            // Created here, not in the cache yet: the create's answer stands in for it.
            if let Some(job) = fresh_jobs.get(&step.key) {
                seen.outcome = match observe::job_outcome(job) {
                    StepOutcome::Queued => StepOutcome::Queued,
                    _ => StepOutcome::Running,
                };
                seen.blocker = waiting_blocker(seen.outcome, Some(job));
                seen.job = Some(job.clone());
            }
        }
        observed.outcomes.push(seen.outcome);
        observed.jobs.push(seen.job);
        observed.blockers.push(seen.blocker);
        observed.unavailable.push(seen.unavailable);
        observed.attempts.push(known.attempt());
    }
    if !fresh_jobs.is_empty() {
        // The cache shows them now (or their deletion): the answers are no longer needed.
        fresh_jobs.retain(|key, _| steps.get(key).is_some_and(|k| k.created && !k.seen));
    }
    observed.decision = decide(plan, &observed);
    observed
}

/// What was observed of one step.
struct StepSeen {
    outcome: StepOutcome,
    job: Option<Arc<ObservedJob>>,
    blocker: Option<Blocker>,
    unavailable: bool,
}

/// One step: its Job by name (`lookup`) from the cache (ours, someone else's, or none), a
/// standing refusal, a kind-specific loss (DaemonJob node gone), a suspended Job.
fn observe_step<K: RunKind>(
    obj: &K,
    ctx: &Context,
    step: &PlannedStep,
    lookup: &ObjectRef<ObservedJob>,
    uid: &str,
    known: &mut StepMemo,
) -> StepSeen {
    let namespace = lookup.namespace.as_deref().unwrap_or_default();
    let cached = ctx.jobs.get(lookup);
    let mut seen = StepSeen {
        outcome: StepOutcome::NotCreated,
        job: None,
        blocker: None,
        unavailable: false,
    };
    match cached {
        Some(job) if jobs::controller_owner_uid(&job) == Some(uid) => {
            known.seen = true;
            known.started = true;
            known.refused = None;
            seen.outcome = observe::job_outcome(&job);
            seen.job = Some(job);
        }
        Some(_) => {
            seen.outcome = StepOutcome::Failed;
            seen.blocker = Some(Blocker::NameConflict);
        }
        None => {
            if known.created && !known.seen && ctx.jobs.deleted_lately(lookup, uid) {
                // The watch delivered the Job and its deletion before any reconcile found it
                // in the cache: it is gone, not on its way.
                known.seen = true;
            }
            (seen.outcome, seen.blocker) = outcome_without_job(known);
        }
    }
    if seen.outcome == StepOutcome::NotCreated
        && let Some(refusal) = standing_refusal(ctx, known, obj.meta().generation, step, namespace)
    {
        if refusal.blocker.fails_step() {
            seen.outcome = StepOutcome::Failed;
        } else {
            seen.unavailable = true;
        }
        seen.blocker = Some(refusal.blocker.clone());
    }
    let was_lost = known.phase == ApiStepPhase::NodeLost;
    if seen.blocker.is_none()
        && (was_lost || (seen.outcome != StepOutcome::Succeeded && !finished_before(known)))
        && let Some(lost) = obj.lost_step(ctx, step, was_lost)
    {
        seen.outcome = StepOutcome::Failed;
        seen.blocker = Some(lost);
    }
    if seen.blocker.is_none() {
        seen.blocker = waiting_blocker(seen.outcome, seen.job.as_deref());
    }
    seen
}

/// Why a step whose Job exists waits: suspended, or queued in a Kueue LocalQueue.
fn waiting_blocker(outcome: StepOutcome, job: Option<&ObservedJob>) -> Option<Blocker> {
    match outcome {
        StepOutcome::Suspended => Some(Blocker::Suspended),
        StepOutcome::Queued => Some(Blocker::Queued {
            queue: job
                .and_then(|job| jobsmith_engine::build::kueue::queue_name(&job.metadata))
                .unwrap_or_default()
                .to_owned(),
        }),
        _ => None,
    }
}

pub(super) fn decide(plan: &Plan, observed: &Observed) -> Decision {
    let exceeded = observed.deadline.is_exceeded();
    evaluate_at(
        &plan.dag,
        &observed.outcomes,
        &plan.policies,
        exceeded,
        |s| {
            observed
                .unavailable
                .get(s.index())
                .copied()
                .unwrap_or(false)
        },
    )
}

/// The outcome of a step whose Job is not in the cache, and why when it is not plain.
pub(super) fn outcome_without_job(known: &StepMemo) -> (StepOutcome, Option<Blocker>) {
    if known.creating || (known.created && !known.seen) {
        // Its create is in flight, or it was created by us a moment ago and the watch has not
        // delivered it yet.
        return (StepOutcome::Running, None);
    }
    if finished_before(known) {
        // Finished and recorded, then the Job went away (its TTL, a manual delete).
        let outcome = if known.phase == ApiStepPhase::Succeeded {
            StepOutcome::Succeeded
        } else {
            StepOutcome::Failed
        };
        return (outcome, None);
    }
    if known.started || known.reason.as_deref() == Some(jobsmith_api::reasons::LOST) {
        // It had a Job whose outcome was never recorded: unknowable, so never run again.
        return (StepOutcome::Failed, Some(Blocker::Lost));
    }
    (StepOutcome::NotCreated, None)
}

/// The refusal that still holds for a step, if any (a changed spec or template ends it; a
/// retryable one ends when its backoff has passed).
pub(super) fn standing_refusal<'a>(
    ctx: &Context,
    known: &'a mut StepMemo,
    generation: Option<i64>,
    step: &PlannedStep,
    namespace: &str,
) -> Option<&'a Refusal> {
    let template_version = template_version(ctx, step, namespace);
    let holds = known.refused.as_ref().is_some_and(|r| {
        r.generation == generation
            && r.template_version == template_version
            && r.retry_at.is_none_or(|at| Instant::now() < at)
    });
    if !holds {
        // Keep the attempt count for the backoff while the inputs are the same.
        if let Some(r) = &mut known.refused
            && (r.generation != generation || r.template_version != template_version)
        {
            known.refused = None;
        }
        return None;
    }
    known.refused.as_ref()
}

pub(super) fn template_version(
    ctx: &Context,
    step: &PlannedStep,
    namespace: &str,
) -> Option<String> {
    let name = step.template_ref.as_deref()?;
    let template = ctx.templates.get(&ObjectRef::new(name).within(namespace))?;
    template.meta().resource_version.clone()
}

impl Observed {
    /// The step cannot be created: failed when the blocker says so, else waiting without holding
    /// a maxParallel slot.
    pub(super) fn block(&mut self, i: usize, blocker: Blocker) {
        if blocker.fails_step() {
            self.outcomes[i] = StepOutcome::Failed;
        } else {
            self.unavailable[i] = true;
        }
        self.blockers[i] = Some(blocker);
    }

    /// How long until the earliest standing refusal (a waiting step, or a failed one such as a
    /// name conflict) may be tried again.
    pub(super) fn next_retry(&self, plan: &Plan, memo: &RunMemo) -> Option<Duration> {
        // A Job of another owner that carries our labels is in the Job cache, but its deletion
        // triggers nobody (it has no owner): look again soon, from the cache (no request).
        let conflict = self
            .blockers
            .contains(&Some(Blocker::NameConflict))
            .then_some(CONFLICT_RECHECK);
        plan.steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| {
                let at = step_at(&memo.steps, i, &step.key)?
                    .refused
                    .as_ref()?
                    .retry_at?;
                Some(at.saturating_duration_since(Instant::now()))
            })
            .chain(conflict)
            .min()
    }
}
