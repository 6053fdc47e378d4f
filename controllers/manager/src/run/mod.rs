//! The one run mechanism of the run kinds (ManagedJob, JobFlow, and next DaemonJob and JobRun):
//! a kind supplies its compile functions and its status type ([`RunKind`]); everything else is
//! here, written once (STYLE 1, 2):
//!
//! 1. **Read**: compile the spec into a [`Plan`] (an invalid spec stops here: phase `Failed`,
//!    `Stalled=True` reason `InvalidSpec`, one Warning Event, no Job); look up each step's Job
//!    *by name* in the shared Job cache (no list). A Job with the step's name and another (or
//!    no) controller owner is never adopted: the step fails with `NameConflict`.
//! 2. **Decide**: the engine's scheduler ([`jobsmith_engine::evaluate`]) on the observed outcomes.
//! 3. **Write Jobs**: build the Jobs to create (resolving `templateRef` from the shared
//!    JobTemplate cache; a missing template leaves the step waiting with `TemplateNotFound`),
//!    send the creates (idempotent: `AlreadyExists` with our owner is fine).
//! 4. **Write status**: the engine's roll-up, sent only when it changed (`status.rs`).
//! 5. **Tell**: Events per docs/architecture.md, derived by comparing the previous step phases
//!    with the new ones, so a restart does not repeat them; kind hooks (ManagedJob metrics).
//!
//! The previous step phases come from a small in-memory record per object ([`crate::memory::RunMemo`]),
//! seeded after a restart from the durable `status.record` (every step, never capped: engine
//! `record`); it also remembers which Jobs this process created but has not seen in the cache
//! yet (the watch lags the create response), so such a step counts as running without another
//! request.
//!
//! Exactly once (docs/guarantees.md): a step's Job is created only when neither the cache, the
//! memory nor the record knows of one. A step whose Job went away after its outcome was
//! recorded keeps that outcome; one whose Job went away before (deleted while running, or while
//! the manager was down) is `Lost`: failed, never created again. A Job's own
//! `ttlSecondsAfterFinished` is held back (engine `compile::defer_ttl`) and applied here, once
//! the outcome is in the status.
//!
//! A refused create is remembered per step ([`crate::memory::Refusal`]): a rejection of the Job itself
//! (400/422) fails the step until the spec or its template changes; any other refusal (quota,
//! webhook, RBAC, conflict, server error) leaves it waiting with reason `CreateRefused` and is
//! retried with a capped backoff, never on every reconcile (a status write that triggers the
//! next reconcile must not re-send the same request).
//!
//! Writes in flight: a reconcile never waits for the API server to answer a create or a status
//! patch (under load a patch of a large run takes seconds, and a reconcile held that long
//! delays every other event of the object). It builds what to send, marks it in the memory and
//! hands it to a task (`create::send_ready`, `report::write`); the task puts what came of it in
//! the object's [`Landing`](crate::memory::Landing) and wakes the object (always after a batch
//! of creates; after a status patch when a reconcile waits for it). The next reconcile reads
//! the landing first. Creates are sent as the write budget has tokens; one status patch per
//! object is in flight at a time. A step whose create is in flight counts as running (never
//! sent twice); it is recorded as created only once the create landed (the record's rule above
//! is unchanged). The status write waits for the creates in flight (so it carries their Jobs,
//! one write instead of two), at most one status interval in a row; the first status is stored
//! before the first create is sent; cleanup and Job TTLs run only when the status written is
//! the one wanted and nothing is in flight. A failed patch fails the next reconcile (its
//! backoff paces the retry). At shutdown the controller waits for the writes already sent
//! (they are fenced like every write).
//!
//! Decisions where SPEC is silent (docs/managedjob.md, docs/jobflow.md):
//! - A Job that exists for a step that is no longer in the spec is left alone.
//! - Requeue: on change (the object, its Jobs, its JobTemplates) plus a periodic resync.

mod create;
mod kind;
mod lifecycle;
mod notes;
mod observe;
mod outputs;
pub mod report;
mod retry;
#[cfg(test)]
mod tests;

use std::{
    marker::PhantomData,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::BoxStream};
use jobsmith_api::{JobTemplate, Phase, RunStatus};
use jobsmith_engine::{
    compile::{InvalidSpec, Plan},
    status::rollup,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::Value;

pub use kind::{KindStatus, RunKind, StatusParts, StatusView};

use crate::{
    apply::ApplyError,
    cache::guard::Guarded,
    cli::ControllerKind,
    context::Context,
    controller::{ErrorCategory, Reconciled, Reconciler, map_shared},
    memory::RunMemo,
    status::{self, StatusError},
    telemetry::events::EventKind,
};
use observe::observe_steps;
use report::Pace;

/// Resync of every run object even when nothing changed (a missed watch event cannot wedge it).
pub const RESYNC: Duration = Duration::from_secs(300);

/// The controller of every run kind: reconcile with [`reconcile`], trigger on the kind's Jobs,
/// on the JobTemplates it references and on [`RunKind::extra_triggers`].
pub struct RunController<K>(PhantomData<fn() -> K>);

impl<K: RunKind> Reconciler for RunController<K> {
    type Kind = K;
    type Error = RunError;
    const CONTROLLER: ControllerKind = K::CONTROLLER;
    const USES_TEMPLATES: bool = true;
    const USES_NODES: bool = K::USES_NODES;
    const READS_JOB_COUNTERS: bool = K::READS_JOB_COUNTERS;

    async fn reconcile(obj: Reconciled<K>, ctx: Arc<Context>) -> Result<Action, RunError> {
        let Some(obj) = obj.get() else {
            return Err(RunError::Undecodable);
        };
        let _guard = obj.reconcile_guard();
        reconcile(obj, ctx).await
    }

    fn triggers(
        ctx: &Arc<Context>,
        own: &Store<Guarded<K>>,
    ) -> Vec<BoxStream<'static, ObjectRef<K>>> {
        let mut triggers = vec![template_trigger(ctx, own), wake_trigger(ctx)];
        triggers.extend(K::extra_triggers(ctx, own));
        triggers
    }

    fn invalid_object_status(message: &str, generation: Option<i64>, now: &Time) -> Option<Value> {
        let run = rollup::invalid_spec(None, message, generation, now);
        serde_json::to_value(run).ok()
    }

    fn remembered(ctx: &Context) -> Vec<(String, String)> {
        ctx.runs.keys()
    }

    fn forget(ctx: &Context, namespace: Option<&str>, name: &str) {
        let namespace = namespace.unwrap_or_default();
        ctx.runs.forget(namespace, name);
        K::on_forget(ctx, namespace, name);
    }
}

/// Errors of one run reconcile.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the object has no uid or namespace")]
    MissingIdentity,
    #[error("the object does not decode as its kind")]
    Undecodable,
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("deleting {name} after its ttlSecondsAfterFinished: {source}")]
    Expire { name: String, source: kube::Error },
    /// A status patch sent by an earlier reconcile failed.
    #[error("{message}")]
    StatusLanded {
        category: &'static str,
        message: String,
    },
}

impl ErrorCategory for RunError {
    fn category(&self) -> &'static str {
        match self {
            RunError::MissingIdentity | RunError::Undecodable => "identity",
            RunError::Apply(e) => e.category(),
            RunError::Status(e) => e.category(),
            RunError::Expire { .. } => "run_delete",
            RunError::StatusLanded { category, .. } => category,
        }
    }
}

/// Reconciles one run object. See the module doc.
pub async fn reconcile<K: RunKind>(obj: &K, ctx: Arc<Context>) -> Result<Action, RunError> {
    let (Some(namespace), Some(uid)) = (obj.namespace(), obj.meta().uid.clone()) else {
        return Err(RunError::MissingIdentity);
    };
    let name = obj.name_any();
    if obj.meta().deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the Jobs; nothing new starts.
        return Ok(Action::await_change());
    }
    let mut memo = ctx
        .runs
        .take(&namespace, &name)
        .filter(|m| m.uid == uid)
        .unwrap_or_else(|| RunMemo::from_status(&uid, obj.run_status(), &obj.recorded_steps()));
    if let Some(wait) = evaluation_gap(memo.last_evaluation, Instant::now()) {
        // Evaluated a moment ago: the events since then are taken together a little later.
        ctx.runs.put(&namespace, &name, memo);
        return Ok(Action::requeue(wait));
    }
    // The memory is kept whatever the outcome: it knows the writes in flight.
    let result = reconcile_with(obj, &ctx, &namespace, &uid, &mut memo).await;
    ctx.runs.put(&namespace, &name, memo);
    result
}

/// How soon a reconcile that left a write in flight comes back if the wake of its landing was
/// lost (a reader that fell behind): normally the landing wakes it first.
const LANDING_FALLBACK: Duration = Duration::from_secs(5);

async fn reconcile_with<K: RunKind>(
    obj: &K,
    ctx: &Arc<Context>,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
) -> Result<Action, RunError> {
    // The reconcile's own work (everything but the rare requests it awaits: outputs, stopping
    // Jobs past the deadline, cleanup) spaces the next evaluation (`evaluation_gap`).
    let mut busy = Stopwatch::start();
    // What the writes sent off by earlier reconciles did ("Writes in flight").
    let (creates, status_landed) = memo.landing.take();
    let created = create::land(memo, creates);
    let failed_write = report::land(memo, status_landed);
    // Transitions (a condition's lastTransitionTime, the run's completion time) are computed
    // against the newest status known: our last write while the cache does not show it yet.
    // Against the older cached copy, a condition our last write already changed would get a
    // new lastTransitionTime, and that difference one more patch.
    let written = report::written_status(obj, memo);
    let newest = written.as_ref().or(obj.status());
    let previous = newest.map(KindStatus::run);
    let now = status::now();
    let plan = match plan_for(obj, ctx, memo) {
        Ok(plan) => plan,
        Err(invalid) => {
            if let Some(failed) = failed_write {
                return Err(failed);
            }
            report_invalid(obj, ctx, memo, &invalid.to_string(), &now)?;
            return Ok(Action::await_change());
        }
    };
    let created: Vec<_> = created.iter().filter_map(|key| plan.step_id(key)).collect();
    notes::announce_created(ctx, obj, &plan, memo, &created);
    memo.invalid = None;
    memo.apply_record(&plan);

    let mut observed = observe_steps(obj, ctx, &plan, namespace, uid, memo, &now);
    let retry_note = match retry::honour_request(obj, &plan, &observed, memo, &now) {
        Some((note, retried)) => {
            if retried || obj.lifecycle().active_deadline_seconds.is_some() {
                // The retried steps are at their next attempt now, and a retry restarts the
                // run's deadline: look them up again.
                observed = observe_steps(obj, ctx, &plan, namespace, uid, memo, &now);
            }
            Some(note)
        }
        None => None,
    };
    // An object without status reads as ready to kstatus (a Flux `wait` would pass before
    // anything ran): the first status is stored before the first Job is sent (one write per
    // run).
    let status_stored =
        obj.status().is_some() || (memo.written.is_some() && !memo.landing.in_flight().1);
    if !status_stored
        && memo.written.is_none()
        && failed_write.is_none()
        && !observed.decision.create.is_empty()
    {
        let rolled = report::roll_up(obj, &plan, &observed, None, &now);
        let first = report::desired_status(obj, &plan, &observed, rolled, memo, newest);
        report::write::<K>(ctx, obj, first, memo, Pace::AtOnce, true)?;
    }
    // Outputs of steps that just succeeded, before their dependents' Jobs are built.
    busy.pause();
    outputs::read_new(ctx, &plan, namespace, &observed, memo).await;
    busy.resume();
    if status_stored {
        create::send_ready(obj, ctx, &plan, namespace, uid, memo, &mut observed);
    }
    // Past the run's deadline: its running Jobs are stopped (never deleted).
    busy.pause();
    lifecycle::stop_past_deadline(ctx, &observed, &now).await?;
    busy.resume();
    let retry_in = observed.next_retry(&plan, memo);

    let rolled = report::roll_up(obj, &plan, &observed, previous, &now);
    let told = notes::transitions(ctx, obj, &plan, &observed, &rolled, memo);
    let desired = report::desired_status(obj, &plan, &observed, rolled, memo, newest);
    let finished = finished_part(desired.run());
    K::on_reconciled(ctx, obj, told.active);
    notes::publish(ctx, obj, retry_note.into_iter().chain(told.notes).collect());
    if let Some(failed) = failed_write {
        // The last patch failed: the error's backoff paces the next one.
        return Err(failed);
    }
    let pace = if K::PACED { Pace::Paced } else { Pace::AtOnce };
    let wake = waits_for_record(&finished, &observed);
    let written = report::write::<K>(ctx, obj, desired, memo, pace, wake)?;
    memo.last_evaluation = Some((Instant::now(), busy.pause()));
    // The deadline is hit on time without any event: the reconcile comes back when it passes.
    let mut due = vec![retry_in, observed.deadline.due_in()];
    match written {
        report::Written::Held(wait) => due.push(Some(wait)),
        report::Written::InFlight => due.push(Some(LANDING_FALLBACK)),
        report::Written::Settled => {
            // Only now is every finished step's outcome in the status: a Job that asked for a
            // TTL may go (once its outputs are read), and so may the Jobs of a finished run
            // (jobsCleanup) and the run itself (its TTL).
            let expirable = outputs::expirable(&plan, &observed.jobs, memo);
            due.push(report::expire_recorded_jobs(ctx, &expirable).await?);
            match lifecycle::clean_up(ctx, obj, &finished, namespace, uid, &now).await? {
                lifecycle::AfterWrite::Kept { expires_in } => due.push(expires_in),
                lifecycle::AfterWrite::Deleted => return Ok(Action::await_change()),
            }
        }
    }
    Ok(wake_after(due))
}

/// Whether something waits for the status being written to record the outcomes: the run is
/// final (cleanup, its TTL), or a finished Job asked for a TTL.
fn waits_for_record(finished: &RunStatus, observed: &observe::Observed) -> bool {
    finished.phase.is_some_and(Phase::is_terminal)
        || observed
            .jobs
            .iter()
            .flatten()
            .any(|job| report::deferred_expiry(job).is_some())
}

/// Reconciling one run object (observe, decide, roll up, the status and its diff: linear in its
/// steps) takes at most this share of the time: after a reconcile whose own work cost `c`, the
/// next one waits `(SHARE - 1) x c`; the Job events meanwhile are taken together then. A
/// 10,000-step run reconciled in about 5 ms is then reconciled at most about twice a second
/// however many Job events its waves bring, and each of those reconciles sends a batch of
/// creates as large as the write budget allows, while a run reconciled in under a
/// millisecond (a small one) is never held back. Decision: a hundredth of a core per run
/// object. The waves of a big run bring Job events faster than any reconcile rate, so this
/// share is what a big run costs: with a tenth (and reconciles that no longer wait for the
/// API server) the manager spent 5.6 ms of CPU per Job at full size, with a fiftieth 2.1 ms
/// (docs/scaling.md).
const EVALUATION_SHARE: u32 = 100;

/// The longest wait between two reconciles of an object: a reconcile that cost far more than
/// usual (the plan compiled for a new generation, a thread preempted under load) must not hold
/// the next one back for seconds.
const EVALUATION_GAP_MAX: Duration = Duration::from_secs(1);

/// Measures the time a reconcile works, leaving out the requests it awaits.
struct Stopwatch {
    total: Duration,
    since: Option<Instant>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            total: Duration::ZERO,
            since: Some(Instant::now()),
        }
    }

    /// Stops counting; the time counted so far.
    fn pause(&mut self) -> Duration {
        if let Some(since) = self.since.take() {
            self.total += since.elapsed();
        }
        self.total
    }

    fn resume(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }
}

/// How long the next evaluation of an object waits after the last one (`(end, cost)`), `None`
/// when it may run now (or the last one cost under a millisecond); waits under a millisecond
/// are not worth a requeue.
pub(crate) fn evaluation_gap(last: Option<(Instant, Duration)>, now: Instant) -> Option<Duration> {
    let (ended, cost) = last.filter(|(_, cost)| *cost >= Duration::from_millis(1))?;
    let gap = cost
        .saturating_mul(EVALUATION_SHARE - 1)
        .min(EVALUATION_GAP_MAX);
    let since = now.saturating_duration_since(ended);
    let wait = gap.saturating_sub(since);
    (wait >= Duration::from_millis(1)).then_some(wait)
}

/// Requeue at the earliest of the given moments, at the latest after [`RESYNC`].
fn wake_after(due: impl IntoIterator<Item = Option<Duration>>) -> Action {
    let next = due
        .into_iter()
        .flatten()
        .min()
        .map_or(RESYNC, |d| d.min(RESYNC));
    Action::requeue(next.max(Duration::from_millis(100)))
}

/// The parts of a status the cleanup reads (phase and completion time).
fn finished_part(run: &RunStatus) -> RunStatus {
    RunStatus {
        phase: run.phase,
        completion_time: run.completion_time.clone(),
        ..RunStatus::default()
    }
}

/// The plan of the object's spec: compiled once per generation for [`RunKind::PLAN_FROM_SPEC`]
/// kinds, every time for the others.
fn plan_for<K: RunKind>(
    obj: &K,
    ctx: &Context,
    memo: &mut RunMemo,
) -> Result<Arc<Plan>, InvalidSpec> {
    let generation = obj.meta().generation;
    let cached = memo
        .plan
        .as_ref()
        .filter(|(g, _)| K::PLAN_FROM_SPEC && *g == generation)
        .map(|(_, plan)| plan.clone());
    if let Some(plan) = cached {
        return Ok(plan);
    }
    match obj.plan_in(ctx).map(Arc::new) {
        Ok(plan) => {
            memo.plan = K::PLAN_FROM_SPEC.then(|| (generation, plan.clone()));
            Ok(plan)
        }
        Err(invalid) => {
            memo.plan = None;
            Err(invalid)
        }
    }
}

/// An invalid spec: phase `Failed`, `Stalled=True` reason `InvalidSpec`, one Warning Event per
/// new message, no Job.
fn report_invalid<K: RunKind>(
    obj: &K,
    ctx: &Arc<Context>,
    memo: &mut RunMemo,
    message: &str,
    now: &Time,
) -> Result<(), RunError> {
    tracing::info!(%message, "invalid spec; no Job is created");
    let run = rollup::invalid_spec(obj.run_status(), message, obj.meta().generation, now);
    let mut desired = K::make_status(StatusParts {
        run,
        entries: Vec::new(),
        omitted: 0,
        plan: None,
        decision: None,
    });
    obj.refine_status(
        &mut desired,
        obj.status(),
        &StatusView {
            plan: None,
            jobs: &[],
            step_phases: &[],
        },
    );
    report::write::<K>(ctx, obj, desired, memo, Pace::AtOnce, false)?;
    if memo.invalid.as_deref() != Some(message) {
        notes::publish(
            ctx,
            obj,
            vec![notes::Note {
                kind: EventKind::Invalid,
                reason: "InvalidSpec",
                message: message.to_owned(),
            }],
        );
    }
    memo.invalid = Some(message.to_owned());
    memo.phase = Some(Phase::Failed);
    Ok(())
}

/// The trigger that reconciles an object when a write sent off for it landed and it asked to be
/// woken ("Writes in flight").
fn wake_trigger<K: RunKind>(ctx: &Arc<Context>) -> BoxStream<'static, ObjectRef<K>> {
    ctx.wakes
        .subscribe()
        .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
        .boxed()
}

/// The trigger that reconciles the objects of `K` referencing a JobTemplate when it changes
/// (appears, is edited, disappears).
pub fn template_trigger<K: RunKind>(
    ctx: &Arc<Context>,
    own: &Store<Guarded<K>>,
) -> BoxStream<'static, ObjectRef<K>> {
    let own = own.clone();
    map_shared(
        &ctx.templates,
        move |template: Arc<Guarded<JobTemplate>>| {
            let namespace = template.namespace();
            let name = template.name_any();
            own.state()
                .into_iter()
                .filter_map(|guard| {
                    let obj = guard.0.as_ref().ok()?;
                    (obj.namespace() == namespace && obj.references_template(&name))
                        .then(|| ObjectRef::from_obj(obj))
                })
                .collect::<Vec<_>>()
        },
    )
}
