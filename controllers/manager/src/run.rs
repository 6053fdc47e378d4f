//! The one run mechanism of the run kinds (ManagedJob, JobFlow, and next DaemonJob and JobRun):
//! a kind supplies its compile functions and its status type ([`RunKind`]); everything else is
//! here, written once (STYLE 1, 2):
//!
//! 1. **Read**: compile the spec into a [`Plan`] (an invalid spec stops here: phase `Failed`,
//!    `Stalled=True` reason `InvalidSpec`, one Warning Event, no Job); look up each step's Job
//!    *by name* in the shared Job cache (no list). A Job with the step's name and another (or
//!    no) controller owner is never adopted: the step fails with `NameConflict`.
//! 2. **Decide**: the engine's scheduler ([`evaluate`]) on the observed outcomes.
//! 3. **Write Jobs**: build the Jobs to create (resolving `templateRef` from the shared
//!    JobTemplate cache; a missing template leaves the step waiting with `TemplateNotFound`),
//!    create them if absent (idempotent: `AlreadyExists` with our owner is fine).
//! 4. **Write status**: the engine's roll-up, sent only when it changed (`status.rs`).
//! 5. **Tell**: Events per docs/architecture.md, derived by comparing the previous step phases
//!    with the new ones, so a restart does not repeat them; kind hooks (ManagedJob metrics).
//!
//! The previous step phases come from a small in-memory record per object ([`RunMemory`]),
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
//! A refused create is remembered per step ([`Refusal`]): a rejection of the Job itself
//! (400/422) fails the step until the spec or its template changes; any other refusal (quota,
//! webhook, RBAC, conflict, server error) leaves it waiting with reason `CreateRefused` and is
//! retried with a capped backoff, never on every reconcile (a status write that triggers the
//! next reconcile must not re-send the same request).
//!
//! Decisions where SPEC is silent (docs/managedjob.md, docs/jobflow.md):
//! - A Job that exists for a step that is no longer in the spec is left alone.
//! - Requeue: on change (the object, its Jobs, its JobTemplates) plus a periodic resync.

use std::{
    collections::HashMap,
    fmt::Debug,
    marker::PhantomData,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::BoxStream};
use jobsmith_api::{
    JobTemplate, Phase, RunStatus, StepEntry, StepPhase as ApiStepPhase, StepRecord,
};
use jobsmith_engine::{
    Decision, StepId, StepOutcome,
    compile::{self, BuildError, InvalidSpec, Plan, PlannedStep},
    evaluate_with, observe,
    record::{self, Recorded},
    rollup::{self, Blocker, RunInput, StepView},
};
use k8s_openapi::{
    NamespaceResourceScope, api::batch::v1::Job, apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{
    apply::{self, ApplyError, JobWrite},
    cli::ControllerKind,
    context::Context,
    controller::{ErrorCategory, Reconciler, map_shared},
    events::EventKind,
    jobs, metrics,
    status::{self, StatusError, StatusWrite},
};

/// Resync of every run object even when nothing changed (a missed watch event cannot wedge it).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Jobs created at once in one reconcile (the write limiter still applies to each).
const CREATE_CONCURRENCY: usize = 8;

/// The pieces a kind's status is made of.
pub struct StatusParts<'a> {
    /// Phase, conditions, progress, times, message.
    pub run: RunStatus,
    /// Bounded per-step entries, in step order.
    pub entries: Vec<StepEntry>,
    /// Steps not listed in `entries`.
    pub omitted: u32,
    /// The plan (absent for an invalid spec).
    pub plan: Option<&'a Plan>,
    /// The decision (absent for an invalid spec).
    pub decision: Option<&'a Decision>,
}

/// A run kind's status type: serialisable, with the common [`RunStatus`] part.
pub trait KindStatus: Serialize + Send {
    fn run(&self) -> &RunStatus;
}

macro_rules! kind_status {
    ($($status:ty),*) => {$(
        impl KindStatus for $status {
            fn run(&self) -> &RunStatus {
                &self.run
            }
        }
    )*};
}
kind_status!(
    jobsmith_api::ManagedJobStatus,
    jobsmith_api::JobFlowStatus,
    jobsmith_api::DaemonJobStatus,
    jobsmith_api::JobRunStatus
);

/// What a run kind supplies. Implemented on the API type.
pub trait RunKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's status type.
    type Status: KindStatus;

    /// Which controller this kind is (its `--controllers` name and metric label).
    const CONTROLLER: ControllerKind;
    /// Whether the plan reads the Node cache (DaemonJob): reconciling waits for it.
    const USES_NODES: bool = false;

    /// The current status.
    fn status(&self) -> Option<&Self::Status>;
    /// The per-step entries of the current status.
    fn step_entries(&self) -> &[StepEntry];

    /// The common part of the current status.
    fn run_status(&self) -> Option<&RunStatus> {
        self.status().map(KindStatus::run)
    }
    /// The current status as JSON (`Value::Null` when there is none).
    fn status_value(&self) -> Value {
        self.status()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    }

    /// Compiles the spec (engine `compile::<kind>::plan`).
    fn plan(&self) -> Result<Plan, InvalidSpec>;
    /// Builds one step's Job (engine `compile::<kind>::build_job`).
    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError>;
    /// The kind's status from its parts.
    fn make_status(parts: StatusParts<'_>) -> Self::Status;
    /// Whether some step names the JobTemplate `name` (to reconcile on template changes).
    fn references_template(&self, name: &str) -> bool;

    /// A step's Job was created (metrics).
    fn on_job_created(_ctx: &Context, _obj: &Self, _step: &PlannedStep) {}
    /// A step's Job finished (metrics); `succeeded` tells how.
    fn on_job_finished(_ctx: &Context, _obj: &Self, _step: &PlannedStep, _succeeded: bool) {}
    /// End of a reconcile that saw the plan; `active` steps have a running Job.
    fn on_reconciled(_ctx: &Context, _obj: &Self, _active: u64) {}

    /// Whether the plan depends only on the object's name and spec, so it is compiled once per
    /// `metadata.generation` and reused for every Job event (the per-event cost of a large run).
    /// Kinds whose plan reads the shared caches ([`RunKind::plan_in`]) keep the default `false`.
    const PLAN_FROM_SPEC: bool = false;

    /// Compiles the spec with what the shared caches hold (DaemonJob: the nodes, its templateRef
    /// and the nodes that already have a Job). Default: [`RunKind::plan`].
    fn plan_in(&self, _ctx: &Context) -> Result<Plan, InvalidSpec> {
        self.plan()
    }

    /// The per-step record in the current status, which seeds the memory after a restart (so a
    /// finished step whose Job is gone keeps its result). Default: [`RunKind::step_entries`];
    /// kinds whose status has no `StepEntry` list (JobRun, DaemonJob) derive it.
    fn recorded_steps(&self) -> Vec<StepEntry> {
        self.step_entries().to_vec()
    }

    /// Why a step that has not finished can never finish (DaemonJob: its node is gone). Asked
    /// for steps without a successful Job and without an earlier final result, and for steps
    /// recorded `NodeLost` before (`was_lost`: a recorded loss may stay, whatever the Job does
    /// later). `Some` makes the step terminal and failed, with the blocker's reason.
    fn lost_step(&self, _ctx: &Context, _step: &PlannedStep, _was_lost: bool) -> Option<Blocker> {
        None
    }

    /// Adds kind-specific detail to the status `make_status` built (JobRun mirrors its Job,
    /// DaemonJob counts its nodes). `self` is the object as read, with its previous status.
    fn refine_status(&self, _status: &mut Self::Status, _view: &StatusView<'_>) {}

    /// Held for the whole reconcile (ManagedJob: its reconcile-duration timer).
    fn reconcile_guard(&self) -> Option<Box<dyn Send>> {
        None
    }
    /// Triggers besides JobTemplate changes (DaemonJob: Node changes).
    fn extra_triggers(
        _ctx: &Arc<Context>,
        _own: &Store<DeserializeGuard<Self>>,
    ) -> Vec<BoxStream<'static, ObjectRef<Self>>> {
        Vec::new()
    }
    /// The object is gone: drop what the kind keeps besides the run memory (metric series).
    fn on_forget(_ctx: &Context, _namespace: &str, _name: &str) {}
}

/// The controller of every run kind: reconcile with [`reconcile`], trigger on the kind's Jobs,
/// on the JobTemplates it references and on [`RunKind::extra_triggers`].
pub struct RunController<K>(PhantomData<fn() -> K>);

impl<K: RunKind> Reconciler for RunController<K> {
    type Kind = K;
    type Error = RunError;
    const CONTROLLER: ControllerKind = K::CONTROLLER;
    const USES_TEMPLATES: bool = true;
    const USES_NODES: bool = K::USES_NODES;

    async fn reconcile(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, RunError> {
        let _guard = obj.reconcile_guard();
        reconcile(obj, ctx).await
    }

    fn triggers(
        ctx: &Arc<Context>,
        own: &Store<DeserializeGuard<K>>,
    ) -> Vec<BoxStream<'static, ObjectRef<K>>> {
        let mut triggers = vec![template_trigger(ctx, own)];
        triggers.extend(K::extra_triggers(ctx, own));
        triggers
    }

    fn invalid_object_status(message: &str, generation: Option<i64>, now: &Time) -> Option<Value> {
        let run = rollup::invalid_spec(None, message, generation, now);
        serde_json::to_value(run).ok()
    }

    fn forget(ctx: &Context, namespace: Option<&str>, name: &str) {
        let namespace = namespace.unwrap_or_default();
        ctx.runs.forget(namespace, name);
        K::on_forget(ctx, namespace, name);
    }
}

/// What [`RunKind::refine_status`] may read besides the object (all empty for an invalid spec).
pub struct StatusView<'a> {
    /// The plan (absent for an invalid spec).
    pub plan: Option<&'a Plan>,
    /// Per step: its Job as cached, when it exists and is ours.
    pub jobs: &'a [Option<Arc<Job>>],
    /// Per step: its phase (`NodeLost` included), for every step (not capped like the entries).
    pub step_phases: &'a [ApiStepPhase],
}

/// Errors of one run reconcile.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the object has no uid or namespace")]
    MissingIdentity,
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl ErrorCategory for RunError {
    fn category(&self) -> &'static str {
        match self {
            RunError::MissingIdentity => "identity",
            RunError::Apply(e) => e.category(),
            RunError::Status(e) => e.category(),
        }
    }
}

/// What was last seen of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct StepMemo {
    phase: ApiStepPhase,
    reason: Option<String>,
    /// This process created the step's Job.
    created: bool,
    /// The cache has held the step's Job at least once.
    seen: bool,
    /// The step had a Job at some point (created here, seen, or in the durable record): if it
    /// is gone without a recorded outcome, the step is `Lost`, never created again.
    started: bool,
    /// Not in the record a restart started from (beyond the status' entry cap): its first
    /// observation is a baseline, not a transition (no Event, no metric).
    baseline: bool,
    /// The last refused create, while it stands.
    refused: Option<Refusal>,
}

/// A create the API server refused, and when it may be tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refusal {
    /// The object's generation and the template's resourceVersion it was refused for: a change
    /// of either ends the refusal at once.
    generation: Option<i64>,
    template_version: Option<String>,
    /// What the step shows meanwhile.
    blocker: Blocker,
    /// `None`: the Job itself was rejected (400/422); only a change ends it.
    retry_at: Option<Instant>,
    attempts: u32,
}

/// Refused creates are retried after 1 s, doubling up to this.
const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(120);

/// What was last seen of one run object.
#[derive(Clone, Debug, Default)]
struct RunMemo {
    uid: String,
    phase: Option<Phase>,
    /// The message of the invalid-spec status last reported.
    invalid: Option<String>,
    steps: HashMap<String, StepMemo>,
    /// Rebuilt from a status after a restart: steps without a record start as a baseline.
    restored: bool,
    /// The durable record of the status a restart started from, applied once the plan is known.
    pending_record: Option<StepRecord>,
    /// The plan compiled for this generation ([`RunKind::PLAN_FROM_SPEC`] kinds only).
    plan: Option<(Option<i64>, Arc<Plan>)>,
    /// The status this manager last wrote, and the resourceVersion of the object it was written
    /// over. While the cache still shows that version (our own write not yet delivered by the
    /// watch, typically when a Job event arrives first) the status is compared with what we
    /// wrote, not with the stale copy: otherwise the same patch would be sent again.
    written: Option<WrittenStatus>,
}

#[derive(Clone, Debug)]
struct WrittenStatus {
    over_resource_version: Option<String>,
    status: Value,
}

impl RunMemo {
    /// The record after a restart: what the status says (steps without an entry are unknown
    /// until the durable record is applied to the plan).
    fn from_status(uid: &str, status: Option<&RunStatus>, entries: &[StepEntry]) -> Self {
        let invalid = status.and_then(|s| {
            let message = s.message.as_deref()?;
            rollup::is_invalid_spec(s, message).then(|| message.to_owned())
        });
        Self {
            uid: uid.to_owned(),
            phase: status.and_then(|s| s.phase),
            invalid,
            steps: entries
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        StepMemo {
                            phase: e.phase,
                            reason: e.reason.clone(),
                            started: e.phase != ApiStepPhase::Pending
                                && e.phase != ApiStepPhase::Aborted
                                && e.phase != ApiStepPhase::Skipped
                                && e.reason.is_none(),
                            ..StepMemo::default()
                        },
                    )
                })
                .collect(),
            restored: status.is_some(),
            pending_record: status.and_then(|s| s.record.clone()),
            plan: None,
            written: None,
        }
    }

    /// Applies the durable record of a restart to the plan: every step it knows gets its
    /// outcome (or at least the fact that it had a Job) whatever the entry cap left out.
    fn apply_record(&mut self, plan: &Plan) {
        let Some(record) = self.pending_record.take() else {
            return;
        };
        let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
        let Some(states) = record::for_plan(&record, &keys, None) else {
            tracing::warn!(
                "the step record was written for other steps (the spec changed while no manager ran); steps without a Job or entry are taken as not started"
            );
            return;
        };
        for (step, state) in plan.steps.iter().zip(states) {
            let known = self.steps.entry(step.key.clone()).or_default();
            let (phase, reason) = match state {
                Recorded::None => continue,
                Recorded::Created if known.phase == ApiStepPhase::Pending => {
                    (ApiStepPhase::Running, None)
                }
                Recorded::Created => (known.phase, known.reason.clone()),
                Recorded::Succeeded => (ApiStepPhase::Succeeded, None),
                Recorded::Failed => (ApiStepPhase::Failed, None),
                Recorded::Lost => (
                    ApiStepPhase::Failed,
                    Some(jobsmith_api::reasons::LOST.to_owned()),
                ),
            };
            known.started = true;
            known.phase = phase;
            known.reason = reason;
            known.baseline = false;
        }
    }
}

/// Per-object records of one controller; a reconcile of one object is never concurrent with
/// another of the same object, so a record is taken out for the reconcile and put back after.
#[derive(Default)]
pub struct RunMemory {
    runs: Mutex<HashMap<(String, String), RunMemo>>,
}

impl RunMemory {
    fn take(&self, namespace: &str, name: &str) -> Option<RunMemo> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_owned(), name.to_owned()))
    }

    fn put(&self, namespace: &str, name: &str, memo: RunMemo) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_owned(), name.to_owned()), memo);
    }

    /// Forgets an object (it was deleted).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.take(namespace, name);
    }
}

/// One Event to publish after the status write.
struct Note {
    kind: EventKind,
    reason: &'static str,
    message: String,
}

pub(crate) fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    // Status times have second precision on the wire; keep the value equal to what is read back.
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Reconciles one run object. See the module doc.
pub async fn reconcile<K: RunKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, RunError> {
    let (Some(namespace), Some(uid)) = (obj.namespace(), obj.meta().uid.clone()) else {
        return Err(RunError::MissingIdentity);
    };
    let name = obj.name_any();
    if obj.meta().deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the Jobs; nothing new starts.
        return Ok(Action::await_change());
    }
    let memo = ctx
        .runs
        .take(&namespace, &name)
        .filter(|m| m.uid == uid)
        .unwrap_or_else(|| RunMemo::from_status(&uid, obj.run_status(), &obj.recorded_steps()));
    let (action, memo) = reconcile_with(&obj, &ctx, &namespace, &uid, memo).await?;
    ctx.runs.put(&namespace, &name, memo);
    Ok(action)
}

async fn reconcile_with<K: RunKind>(
    obj: &Arc<K>,
    ctx: &Arc<Context>,
    namespace: &str,
    uid: &str,
    mut memo: RunMemo,
) -> Result<(Action, RunMemo), RunError> {
    let generation = obj.meta().generation;
    let previous = obj.run_status();
    let now = now();

    let cached = memo
        .plan
        .as_ref()
        .filter(|(g, _)| K::PLAN_FROM_SPEC && *g == generation)
        .map(|(_, plan)| plan.clone());
    let compiled = match cached {
        Some(plan) => Ok(plan),
        None => obj.plan_in(ctx).map(Arc::new),
    };
    let plan = match compiled {
        Ok(plan) => {
            if K::PLAN_FROM_SPEC {
                memo.plan = Some((generation, plan.clone()));
            }
            plan
        }
        Err(invalid) => {
            memo.plan = None;
            let message = invalid.to_string();
            tracing::info!(%message, "invalid spec; no Job is created");
            let run = rollup::invalid_spec(previous, &message, generation, &now);
            let mut desired = K::make_status(StatusParts {
                run,
                entries: Vec::new(),
                omitted: 0,
                plan: None,
                decision: None,
            });
            obj.refine_status(
                &mut desired,
                &StatusView {
                    plan: None,
                    jobs: &[],
                    step_phases: &[],
                },
            );
            write::<K>(ctx, obj, desired, &mut memo.written).await?;
            if memo.invalid.as_deref() != Some(message.as_str()) {
                publish(
                    ctx,
                    obj,
                    vec![Note {
                        kind: EventKind::Invalid,
                        reason: "InvalidSpec",
                        message: message.clone(),
                    }],
                );
            }
            memo.invalid = Some(message);
            memo.phase = Some(Phase::Failed);
            return Ok((Action::await_change(), memo));
        }
    };
    memo.invalid = None;
    memo.apply_record(&plan);

    let n = plan.steps.len();
    let mut observed = observe_steps(obj.as_ref(), ctx, &plan, namespace, uid, &mut memo);
    if previous.is_none() && memo.written.is_none() && !observed.decision.create.is_empty() {
        write_first_status(obj.as_ref(), ctx, &plan, &observed, &mut memo, &now).await?;
    }
    let created = create_ready(obj, ctx, &plan, namespace, uid, &mut memo, &mut observed).await;
    announce_created(ctx, obj, &plan, &created);
    let Observed {
        outcomes: _,
        jobs,
        blockers,
        unavailable,
        decision,
    } = observed;
    let retry_in = unavailable
        .iter()
        .zip(&plan.steps)
        .filter(|(u, _)| **u)
        .filter_map(|(_, step)| {
            let at = memo.steps.get(&step.key)?.refused.as_ref()?.retry_at?;
            Some(at.saturating_duration_since(Instant::now()))
        })
        .min();

    let previous_entries: HashMap<&str, &StepEntry> = obj
        .step_entries()
        .iter()
        .map(|e| (e.key.as_str(), e))
        .collect();
    let views: Vec<StepView<'_>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepView {
            key: &step.key,
            job_name: &step.job_name,
            job: jobs[i].as_deref(),
            blocker: blockers[i].as_ref(),
            previous: previous_entries.get(step.key.as_str()).copied(),
        })
        .collect();
    let rolled = rollup::rollup(&RunInput {
        decision: &decision,
        steps: &views,
        previous,
        generation,
        now: &now,
    });
    let mut notes = Vec::new();
    let mut active = 0u64;
    let mut aborted = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let phase = rolled.step_phases[i];
        let reason = blockers[i].as_ref().map(|b| b.reason().to_owned());
        if phase == ApiStepPhase::Running {
            active += 1;
        }
        let known = memo.steps.entry(step.key.clone()).or_default();
        if jobs[i].is_some() {
            known.started = true;
        }
        if known.baseline {
            known.baseline = false;
        } else {
            if phase == ApiStepPhase::Aborted && known.phase != ApiStepPhase::Aborted {
                aborted.push(step.key.as_str());
            }
            step_notes(
                step,
                known,
                phase,
                blockers[i].as_ref(),
                &mut notes,
                |succeeded| K::on_job_finished(ctx, obj, step, succeeded),
            );
        }
        known.phase = phase;
        known.reason = reason;
    }
    let phase = rolled.run.phase;
    if phase != memo.phase {
        let message = rolled.run.message.clone().unwrap_or_default();
        match phase {
            Some(Phase::Succeeded) => notes.push(Note {
                kind: EventKind::Succeeded,
                reason: "Succeeded",
                message,
            }),
            Some(Phase::Failed) => notes.push(Note {
                kind: EventKind::Failed,
                reason: "Failed",
                message,
            }),
            Some(Phase::Suspended) => notes.push(Note {
                kind: EventKind::Suspended,
                reason: "Suspended",
                message,
            }),
            _ => {}
        }
    }
    if let Some(note) = aborted_note(&aborted) {
        notes.push(note);
    }
    memo.phase = phase;
    if memo.steps.len() > n {
        // Steps removed from the spec.
        let keys: std::collections::HashSet<&str> =
            plan.steps.iter().map(|s| s.key.as_str()).collect();
        memo.steps.retain(|k, _| keys.contains(k.as_str()));
    }

    let mut run = rolled.run;
    run.record = Some(step_record(&plan, &memo, &jobs, &blockers));
    let mut desired = K::make_status(StatusParts {
        run,
        entries: rolled.entries,
        omitted: rolled.omitted,
        plan: Some(&*plan),
        decision: Some(&decision),
    });
    obj.refine_status(
        &mut desired,
        &StatusView {
            plan: Some(&*plan),
            jobs: &jobs,
            step_phases: &rolled.step_phases,
        },
    );
    write::<K>(ctx, obj, desired, &mut memo.written).await?;
    // Only now is every finished step's outcome in the status: a Job that asked for a TTL may go.
    let ttl_due = expire_recorded_jobs(ctx, &jobs).await?;
    K::on_reconciled(ctx, obj, active);
    publish(ctx, obj, notes);
    let next = [Some(RESYNC), retry_in, ttl_due]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(RESYNC);
    Ok((Action::requeue(next.max(Duration::from_millis(100))), memo))
}

/// Writes the status of a new object before its first Job is created: an object without status
/// reads as ready to kstatus (so a Flux `wait` would pass before anything ran). Costs one write
/// per run.
async fn write_first_status<K: RunKind>(
    obj: &K,
    ctx: &Context,
    plan: &Plan,
    observed: &Observed,
    memo: &mut RunMemo,
    now: &Time,
) -> Result<(), RunError> {
    let views: Vec<StepView<'_>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepView {
            key: &step.key,
            job_name: &step.job_name,
            job: observed.jobs[i].as_deref(),
            blocker: observed.blockers[i].as_ref(),
            previous: None,
        })
        .collect();
    let rolled = rollup::rollup(&RunInput {
        decision: &observed.decision,
        steps: &views,
        previous: None,
        generation: obj.meta().generation,
        now,
    });
    let mut run = rolled.run;
    run.record = Some(step_record(plan, memo, &observed.jobs, &observed.blockers));
    let mut desired = K::make_status(StatusParts {
        run,
        entries: rolled.entries,
        omitted: rolled.omitted,
        plan: Some(plan),
        decision: Some(&observed.decision),
    });
    obj.refine_status(
        &mut desired,
        &StatusView {
            plan: Some(plan),
            jobs: &observed.jobs,
            step_phases: &rolled.step_phases,
        },
    );
    write::<K>(ctx, obj, desired, &mut memo.written).await
}

/// One Warning for every step that became `Aborted` in this reconcile (one Event per step
/// would drown the run's own Events in the Event budget).
fn aborted_note(keys: &[&str]) -> Option<Note> {
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

/// The durable record of every step as this reconcile leaves it.
fn step_record(
    plan: &Plan,
    memo: &RunMemo,
    jobs: &[Option<Arc<Job>>],
    blockers: &[Option<Blocker>],
) -> StepRecord {
    let states: Vec<Recorded> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            if matches!(
                blockers.get(i),
                Some(Some(Blocker::Lost | Blocker::NodeLost { .. }))
            ) {
                return Recorded::Lost;
            }
            if let Some(Some(job)) = jobs.get(i) {
                return match observe::job_outcome(job) {
                    StepOutcome::Succeeded => Recorded::Succeeded,
                    StepOutcome::Failed => Recorded::Failed,
                    StepOutcome::Running | StepOutcome::NotCreated => Recorded::Created,
                };
            }
            let Some(known) = memo.steps.get(&step.key) else {
                return Recorded::None;
            };
            match (finished_before(known), known.phase) {
                (true, ApiStepPhase::Succeeded) => Recorded::Succeeded,
                (true, _) => Recorded::Failed,
                (false, _) if known.started => Recorded::Created,
                _ => Recorded::None,
            }
        })
        .collect();
    record::encode(
        &states,
        record::digest(plan.steps.iter().map(|s| s.key.as_str())),
    )
}

/// Deletes the finished Jobs whose deferred TTL (engine `compile::defer_ttl`) has passed; their
/// outcome is in the status just written. Returns when the next one is due.
async fn expire_recorded_jobs(
    ctx: &Context,
    jobs: &[Option<Arc<Job>>],
) -> Result<Option<Duration>, RunError> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut next: Option<Duration> = None;
    for job in jobs.iter().flatten() {
        let Some(ttl) = compile::deferred_ttl(job) else {
            continue;
        };
        if job.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(finished) = observe::finished_at(job) else {
            continue;
        };
        let due = finished
            .0
            .as_second()
            .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let wait = due.saturating_sub(now.as_second());
        if wait > 0 {
            let wait = Duration::from_secs(u64::try_from(wait).unwrap_or(u64::MAX));
            next = Some(next.map_or(wait, |n| n.min(wait)));
            continue;
        }
        apply::delete_finished_job(ctx, job).await?;
    }
    Ok(next)
}

/// Whether the step reached a result of its own Job earlier (not a blocker's).
fn finished_before(known: &StepMemo) -> bool {
    known.reason.is_none() && matches!(known.phase, ApiStepPhase::Succeeded | ApiStepPhase::Failed)
}

/// The longest message Jobsmith stores from the API server (status, Events).
const MESSAGE_LIMIT: usize = 1024;

/// `message` cut to [`MESSAGE_LIMIT`] bytes (at a character boundary) with a marker.
pub fn bounded(message: &str) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message.to_owned();
    }
    let mut end = MESSAGE_LIMIT - 20;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes cut)", &message[..end], message.len() - end)
}

/// The steps as observed, and the decision taken on them (updated while Jobs are created).
struct Observed {
    outcomes: Vec<StepOutcome>,
    jobs: Vec<Option<Arc<Job>>>,
    blockers: Vec<Option<Blocker>>,
    /// Ready steps that cannot be created now (a standing refusal); they hold no slot.
    unavailable: Vec<bool>,
    decision: Decision,
}

/// Reads each step's Job by name from the shared cache; what the memory and the record say
/// stands in for a Job that is gone.
fn observe_steps<K: RunKind>(
    obj: &K,
    ctx: &Context,
    plan: &Plan,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
) -> Observed {
    let n = plan.steps.len();
    let generation = obj.meta().generation;
    let mut observed = Observed {
        outcomes: Vec::with_capacity(n),
        jobs: Vec::with_capacity(n),
        blockers: vec![None; n],
        unavailable: vec![false; n],
        decision: Decision {
            create: Vec::new(),
            steps: Vec::new(),
            groups: Vec::new(),
            phase: Default::default(),
            progress: Default::default(),
            message: String::new(),
        },
    };
    let restored = memo.restored;
    for (i, step) in plan.steps.iter().enumerate() {
        let cached = ctx
            .jobs
            .get(&ObjectRef::new(&step.job_name).within(namespace));
        let known = memo
            .steps
            .entry(step.key.clone())
            .or_insert_with(|| StepMemo {
                baseline: restored,
                ..StepMemo::default()
            });
        let (mut outcome, job) = match cached {
            Some(job) if jobs::controller_owner_uid(&job) == Some(uid) => {
                known.seen = true;
                known.started = true;
                known.refused = None;
                (observe::job_outcome(&job), Some(job))
            }
            Some(_) => {
                observed.blockers[i] = Some(Blocker::NameConflict);
                (StepOutcome::Failed, None)
            }
            None => {
                let (outcome, blocker) = outcome_without_job(known);
                observed.blockers[i] = blocker;
                (outcome, None)
            }
        };
        if outcome == StepOutcome::NotCreated
            && let Some(refusal) = standing_refusal(ctx, known, generation, step, namespace)
        {
            if refusal.blocker.fails_step() {
                outcome = StepOutcome::Failed;
            } else {
                observed.unavailable[i] = true;
            }
            observed.blockers[i] = Some(refusal.blocker.clone());
        }
        let was_lost = known.phase == ApiStepPhase::NodeLost;
        if observed.blockers[i].is_none()
            && (was_lost || (outcome != StepOutcome::Succeeded && !finished_before(known)))
            && let Some(lost) = obj.lost_step(ctx, step, was_lost)
        {
            outcome = StepOutcome::Failed;
            observed.blockers[i] = Some(lost);
        }
        observed.outcomes.push(outcome);
        observed.jobs.push(job);
    }
    observed.decision = decide(plan, &observed);
    observed
}

fn decide(plan: &Plan, observed: &Observed) -> Decision {
    evaluate_with(&plan.dag, &observed.outcomes, &plan.policies, |s| {
        observed
            .unavailable
            .get(s.index())
            .copied()
            .unwrap_or(false)
    })
}

/// The outcome of a step whose Job is not in the cache, and why when it is not plain.
fn outcome_without_job(known: &StepMemo) -> (StepOutcome, Option<Blocker>) {
    if known.created && !known.seen {
        // Created by us a moment ago; the watch has not delivered it yet.
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
fn standing_refusal<'a>(
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

fn template_version(ctx: &Context, step: &PlannedStep, namespace: &str) -> Option<String> {
    let name = step.template_ref.as_deref()?;
    let template = ctx.templates.get(&ObjectRef::new(name).within(namespace))?;
    template.meta().resource_version.clone()
}

/// Creates what the scheduler asks for. A step that turns out blocked-and-failed may unblock
/// failure handlers, so decide again until nothing new is attempted. Returns the created steps.
async fn create_ready<K: RunKind>(
    obj: &Arc<K>,
    ctx: &Arc<Context>,
    plan: &Plan,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
    observed: &mut Observed,
) -> Vec<StepId> {
    let n = plan.steps.len();
    let generation = obj.meta().generation;
    let mut attempted = vec![false; n];
    let mut created: Vec<StepId> = Vec::new();
    loop {
        let todo: Vec<StepId> = observed
            .decision
            .create
            .iter()
            .copied()
            .filter(|s| !attempted.get(s.index()).copied().unwrap_or(true))
            .collect();
        if todo.is_empty() {
            return created;
        }
        let mut builds = Vec::new();
        for step in todo {
            attempted[step.index()] = true;
            match build(ctx, obj.as_ref(), plan, step, namespace) {
                Ok(job) => builds.push((step, job)),
                Err(blocker) => {
                    if blocker.fails_step() {
                        observed.outcomes[step.index()] = StepOutcome::Failed;
                    } else {
                        // Waiting for its template: it holds no maxParallel slot meanwhile.
                        observed.unavailable[step.index()] = true;
                    }
                    observed.blockers[step.index()] = Some(blocker);
                }
            }
        }
        let writes: Vec<(StepId, Result<JobWrite, ApplyError>)> =
            futures::stream::iter(builds.into_iter().map(|(step, job)| {
                let ctx = ctx.clone();
                async move { (step, apply::create_job_if_absent(&ctx, job, uid).await) }
            }))
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        for (step, write) in writes {
            let i = step.index();
            let Some(planned) = plan.steps.get(i) else {
                continue;
            };
            let known = memo.steps.entry(planned.key.clone()).or_default();
            match write {
                Ok(JobWrite::Created(job)) => {
                    observed.outcomes[i] = StepOutcome::Running;
                    // The response stands in for the cache entry the watch has not delivered
                    // yet, so the first status already carries the step's start time.
                    observed.jobs[i] = Some(Arc::new(*job));
                    known.created = true;
                    known.started = true;
                    known.refused = None;
                    created.push(step);
                }
                Ok(JobWrite::Exists) => {
                    observed.outcomes[i] = StepOutcome::Running;
                    known.started = true;
                }
                Ok(JobWrite::Conflict { .. }) => {
                    observed.outcomes[i] = StepOutcome::Failed;
                    observed.blockers[i] = Some(Blocker::NameConflict);
                    // Looked at again after a backoff, not on every reconcile.
                    refuse(
                        known,
                        generation,
                        template_version(ctx, planned, namespace),
                        Blocker::NameConflict,
                        true,
                    );
                }
                Err(error) => {
                    let (blocker, retryable) = refusal_of(&error);
                    tracing::warn!(job = %planned.job_name, step = %planned.key, %error, "creating the Job was refused");
                    metrics::create_refused(K::CONTROLLER.as_str(), refusal_code(&error));
                    if blocker.fails_step() {
                        observed.outcomes[i] = StepOutcome::Failed;
                    } else {
                        observed.unavailable[i] = true;
                    }
                    observed.blockers[i] = Some(blocker.clone());
                    refuse(
                        known,
                        generation,
                        template_version(ctx, planned, namespace),
                        blocker,
                        retryable,
                    );
                }
            }
        }
        observed.decision = decide(plan, observed);
    }
}

/// Remembers a refused create (see [`Refusal`]).
fn refuse(
    known: &mut StepMemo,
    generation: Option<i64>,
    template_version: Option<String>,
    blocker: Blocker,
    retryable: bool,
) {
    let attempts = known.refused.as_ref().map_or(0, |r| r.attempts) + 1;
    let retry_at = retryable.then(|| {
        let exp = attempts.saturating_sub(1).min(16);
        Instant::now() + Duration::from_secs(1u64 << exp).min(REFUSAL_BACKOFF_MAX)
    });
    known.refused = Some(Refusal {
        generation,
        template_version,
        blocker,
        retry_at,
        attempts,
    });
}

/// What a refused create means for the step, and whether trying again later may help.
fn refusal_of(error: &ApplyError) -> (Blocker, bool) {
    let message = match error {
        ApplyError::Create {
            source: kube::Error::Api(status),
            ..
        } => {
            if status.code == 422 || status.code == 400 {
                // The API server rejects the Job itself (an embedded pod template it validates
                // only now): only a change of the spec or the template can help.
                return (
                    Blocker::Invalid {
                        message: bounded(&format!(
                            "the API server rejected the Job: {}",
                            status.message
                        )),
                    },
                    false,
                );
            }
            format!("{} ({})", status.message, status.code)
        }
        other => other.to_string(),
    };
    (
        Blocker::CreateRefused {
            message: bounded(&message),
        },
        true,
    )
}

fn refusal_code(error: &ApplyError) -> String {
    match error {
        ApplyError::Create {
            source: kube::Error::Api(status),
            ..
        } => status.code.to_string(),
        _ => "none".to_owned(),
    }
}

/// Builds one step's Job, resolving its JobTemplate from the shared cache.
fn build<K: RunKind>(
    ctx: &Context,
    obj: &K,
    plan: &Plan,
    step: StepId,
    namespace: &str,
) -> Result<Job, Blocker> {
    let planned = plan.steps.get(step.index());
    let guard = planned.and_then(|p| p.template_ref.as_deref()).map(|name| {
        (
            name,
            ctx.templates.get(&ObjectRef::new(name).within(namespace)),
        )
    });
    let template = match &guard {
        Some((name, Some(guard))) => match &guard.0 {
            Ok(template) => Some(template),
            Err(invalid) => {
                return Err(Blocker::TemplateInvalid {
                    template: (*name).to_owned(),
                    message: invalid.error.clone(),
                });
            }
        },
        Some((name, None)) => {
            return Err(Blocker::TemplateNotFound {
                template: (*name).to_owned(),
            });
        }
        None => None,
    };
    let mut job = obj.build_job(plan, step, template).map_err(blocker_of)?;
    compile::defer_ttl(&mut job);
    Ok(job)
}

fn blocker_of(error: BuildError) -> Blocker {
    match error {
        BuildError::TemplateNotFound { name } => Blocker::TemplateNotFound { template: name },
        BuildError::TemplateInvalid { name, message } => Blocker::TemplateInvalid {
            template: name,
            message,
        },
        BuildError::OverrideNotAllowed { field } => Blocker::OverrideNotAllowed { field },
        BuildError::Invalid(message) => Blocker::Invalid { message },
    }
}

/// The Events (and finish hooks) of one step's transition.
fn step_notes(
    step: &PlannedStep,
    known: &StepMemo,
    phase: ApiStepPhase,
    blocker: Option<&Blocker>,
    notes: &mut Vec<Note>,
    finished: impl FnOnce(bool),
) {
    let reason = blocker.map(Blocker::reason);
    if let Some(blocker) = blocker
        && known.reason.as_deref() != reason
    {
        let kind = match blocker {
            Blocker::NameConflict => EventKind::Conflict,
            Blocker::Invalid { .. } => EventKind::Invalid,
            _ => EventKind::Failed,
        };
        notes.push(Note {
            kind,
            reason: blocker.reason(),
            message: blocker.describe(&step.key, &step.job_name),
        });
    }
    if known.phase == phase || blocker.is_some() {
        return;
    }
    match phase {
        ApiStepPhase::Succeeded => {
            finished(true);
            notes.push(Note {
                kind: EventKind::Succeeded,
                reason: "JobSucceeded",
                message: format!("Job {} of step {} succeeded", step.job_name, step.key),
            });
        }
        ApiStepPhase::Failed => {
            finished(false);
            notes.push(Note {
                kind: EventKind::Failed,
                reason: "JobFailed",
                message: format!("Job {} of step {} failed", step.job_name, step.key),
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

fn announce_created<K: RunKind>(ctx: &Arc<Context>, obj: &Arc<K>, plan: &Plan, created: &[StepId]) {
    if created.is_empty() {
        return;
    }
    let mut notes = Vec::with_capacity(created.len());
    for step in created {
        let Some(planned) = plan.steps.get(step.index()) else {
            continue;
        };
        K::on_job_created(ctx, obj, planned);
        tracing::info!(job = %planned.job_name, step = %planned.key, "created Job");
        notes.push(Note {
            kind: EventKind::Created,
            reason: "JobCreated",
            message: format!("created Job {} for step {}", planned.job_name, planned.key),
        });
    }
    publish(ctx, obj, notes);
}

/// Publishes Events in the background: a reconcile never waits for them (they are best effort
/// and rate limited), which keeps the per-event cost of a reconcile low.
fn publish<K: RunKind>(ctx: &Arc<Context>, obj: &Arc<K>, notes: Vec<Note>) {
    if notes.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    let obj = obj.clone();
    tokio::spawn(async move {
        for note in notes {
            ctx.events
                .publish(obj.as_ref(), note.kind, note.reason, note.message)
                .await;
        }
    });
}

async fn write<K: RunKind>(
    ctx: &Context,
    obj: &K,
    desired: K::Status,
    written: &mut Option<WrittenStatus>,
) -> Result<(), RunError> {
    let mut desired = serde_json::to_value(&desired).map_err(|_| StatusError::NotAnObject)?;
    let resource_version = obj.meta().resource_version.clone();
    // `Some`: the cache still shows the version our last write went over.
    let ours = written
        .take()
        .filter(|w| {
            w.over_resource_version.is_some() && w.over_resource_version == resource_version
        })
        .map(|w| w.status);
    let cache_is_stale = ours.is_some();
    let current = ours.unwrap_or_else(|| obj.status_value());
    let outcome = match status::write_status(ctx, obj, &current, desired.clone()).await {
        Err(StatusError::Patch {
            source: kube::Error::Api(refused),
            ..
        }) if matches!(refused.code, 413 | 422 | 500) => {
            // The status itself was refused (too large for etcd, or a value the server will
            // not store): fall back to the summary, so the object never stays without one.
            tracing::warn!(code = refused.code, message = %bounded(&refused.message), "status refused; writing the summary only");
            desired = minimal_status(&desired);
            status::write_status(ctx, obj, &current, desired.clone()).await?
        }
        other => other?,
    };
    match outcome {
        StatusWrite::Patched => {
            // What the status is now: `desired` with the observedGeneration the patch carried.
            if let (Value::Object(fields), Some(generation)) = (&mut desired, obj.meta().generation)
            {
                fields.insert("observedGeneration".into(), Value::from(generation));
            }
            *written = Some(WrittenStatus {
                over_resource_version: resource_version,
                status: desired,
            });
        }
        // Still waiting for our last write to show in the cache.
        StatusWrite::Unchanged if cache_is_stale => {
            *written = Some(WrittenStatus {
                over_resource_version: resource_version,
                status: current,
            });
        }
        StatusWrite::Unchanged | StatusWrite::Gone => {}
    }
    Ok(())
}

/// The fields of a run status that are always written (the per-step detail is dropped).
fn minimal_status(status: &Value) -> Value {
    const KEPT: &[&str] = &[
        "phase",
        "conditions",
        "observedGeneration",
        "progress",
        "startTime",
        "completionTime",
        "message",
        "record",
    ];
    match status {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| KEPT.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The trigger that reconciles the objects of `K` referencing a JobTemplate when it changes
/// (appears, is edited, disappears).
pub fn template_trigger<K: RunKind>(
    ctx: &Arc<Context>,
    own: &Store<DeserializeGuard<K>>,
) -> BoxStream<'static, ObjectRef<K>> {
    let own = own.clone();
    map_shared(
        &ctx.templates,
        move |template: Arc<DeserializeGuard<JobTemplate>>| {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn a_step_whose_job_is_gone_is_never_created_again() {
        // Finished and recorded: the result stands.
        let mut m = StepMemo {
            phase: ApiStepPhase::Succeeded,
            started: true,
            ..Default::default()
        };
        assert_eq!(outcome_without_job(&m), (StepOutcome::Succeeded, None));
        m.phase = ApiStepPhase::Failed;
        assert_eq!(outcome_without_job(&m), (StepOutcome::Failed, None));
        // A conflict is re-checked: the other Job may be gone now.
        let m = StepMemo {
            phase: ApiStepPhase::Failed,
            reason: Some("NameConflict".into()),
            ..Default::default()
        };
        assert_eq!(outcome_without_job(&m), (StepOutcome::NotCreated, None));
        // It had a Job that went away before its outcome was recorded: Lost, not re-created.
        let mut m = StepMemo {
            phase: ApiStepPhase::Running,
            started: true,
            ..Default::default()
        };
        assert_eq!(
            outcome_without_job(&m),
            (StepOutcome::Failed, Some(Blocker::Lost))
        );
        // Created by this process a moment ago and not cached yet: running.
        m.created = true;
        assert_eq!(outcome_without_job(&m), (StepOutcome::Running, None));
        m.seen = true;
        assert_eq!(
            outcome_without_job(&m),
            (StepOutcome::Failed, Some(Blocker::Lost))
        );
        // A recorded loss stays a loss.
        let m = StepMemo {
            phase: ApiStepPhase::Failed,
            reason: Some("Lost".into()),
            ..Default::default()
        };
        assert_eq!(
            outcome_without_job(&m),
            (StepOutcome::Failed, Some(Blocker::Lost))
        );
        // Never had a Job: create it.
        assert_eq!(
            outcome_without_job(&StepMemo::default()),
            (StepOutcome::NotCreated, None)
        );
    }

    #[test]
    fn the_record_of_a_restart_covers_steps_beyond_the_entry_cap() {
        use jobsmith_engine::record::{Recorded, digest, encode};
        let keys: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
        let mut states = vec![Recorded::Succeeded; 600];
        states[599] = Recorded::Created;
        let record = encode(&states, digest(keys.iter().map(String::as_str)));
        let status = RunStatus {
            phase: Some(Phase::Running),
            record: Some(record),
            ..Default::default()
        };
        let plan = Plan {
            dag: jobsmith_engine::Dag::build(
                &keys
                    .iter()
                    .map(|k| jobsmith_engine::StepSpec {
                        key: k.clone(),
                        group: None,
                        deps: vec![],
                    })
                    .collect::<Vec<_>>(),
                &[],
            )
            .unwrap(),
            steps: keys
                .iter()
                .map(|k| PlannedStep {
                    key: k.clone(),
                    job_name: format!("run-{k}"),
                    group: None,
                    template_ref: None,
                })
                .collect(),
            policies: Default::default(),
        };
        let mut memo = RunMemo::from_status("u", Some(&status), &[]);
        memo.apply_record(&plan);
        assert_eq!(
            outcome_without_job(&memo.steps["s10"]),
            (StepOutcome::Succeeded, None)
        );
        assert_eq!(
            outcome_without_job(&memo.steps["s599"]),
            (StepOutcome::Failed, Some(Blocker::Lost))
        );
    }

    #[test]
    fn stored_messages_are_bounded() {
        let long = "é".repeat(100_000);
        let cut = bounded(&long);
        assert!(cut.len() <= MESSAGE_LIMIT + 40, "{}", cut.len());
        assert!(cut.ends_with("bytes cut)"));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn events_are_derived_from_transitions_only() {
        let step = PlannedStep {
            key: "g/a".into(),
            job_name: "wf-g-a".into(),
            group: Some("g".into()),
            template_ref: None,
        };
        let mut notes = Vec::new();
        let mut finished = Vec::new();
        let running = StepMemo {
            phase: ApiStepPhase::Running,
            ..Default::default()
        };
        step_notes(
            &step,
            &running,
            ApiStepPhase::Succeeded,
            None,
            &mut notes,
            |ok| finished.push(ok),
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "JobSucceeded");
        assert_eq!(finished, [true]);
        // Unchanged: nothing.
        let done = StepMemo {
            phase: ApiStepPhase::Succeeded,
            ..Default::default()
        };
        notes.clear();
        step_notes(
            &step,
            &done,
            ApiStepPhase::Succeeded,
            None,
            &mut notes,
            |_| panic!("no second finish"),
        );
        assert!(notes.is_empty());
        // A conflict is announced once, as a conflict and not as a failed Job.
        step_notes(
            &step,
            &StepMemo::default(),
            ApiStepPhase::Failed,
            Some(&Blocker::NameConflict),
            &mut notes,
            |_| panic!("a conflict is not a finished Job"),
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "NameConflict");
        let conflicted = StepMemo {
            phase: ApiStepPhase::Failed,
            reason: Some("NameConflict".into()),
            ..Default::default()
        };
        notes.clear();
        step_notes(
            &step,
            &conflicted,
            ApiStepPhase::Failed,
            Some(&Blocker::NameConflict),
            &mut notes,
            |_| {},
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn the_record_after_a_restart_comes_from_the_status() {
        let status = rollup::invalid_spec(None, "dependency cycle: a -> b -> a", Some(1), &now());
        let memo = RunMemo::from_status("u", Some(&status), &[]);
        assert_eq!(
            memo.invalid.as_deref(),
            Some("dependency cycle: a -> b -> a")
        );
        assert_eq!(memo.phase, Some(Phase::Failed));
        // Steps the status does not list start as a baseline (no Event for what happened before).
        assert!(memo.restored);
        let entries = [StepEntry {
            key: "a".into(),
            phase: ApiStepPhase::Succeeded,
            ..Default::default()
        }];
        let memo = RunMemo::from_status("u", None, &entries);
        assert_eq!(memo.steps["a"].phase, ApiStepPhase::Succeeded);
        assert!(memo.invalid.is_none());
        assert!(!memo.restored, "a new object has no history to protect");
    }
}
