//! Create: the Jobs the scheduler asks for, built from the plan and the JobTemplate cache and
//! sent without holding the reconcile; what each create did is read back by the next reconcile
//! ([`land`]). A refused create is remembered on the step and retried with a capped backoff.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use jobsmith_engine::{
    StepId, StepOutcome,
    compile::exit,
    compile::{self, BuildError, Plan},
    status::conditions::bounded,
    status::rollup::Blocker,
};
use k8s_openapi::api::{batch::v1::Job, core::v1::EnvVar};
use kube::{ResourceExt, runtime::reflector::ObjectRef};

use super::{
    RunKind,
    observe::{Observed, decide, template_version},
    outputs,
};
use crate::{
    apply::{self, ApplyError, JobWrite},
    context::Context,
    memory::{CreateOutcome, LandedCreate, Landing, Refusal, RunMemo, StepMemo, step_at},
    telemetry::metrics,
};

/// Creates of one batch sent at once (the write limiter still applies to each).
const CREATE_CONCURRENCY: usize = 8;

/// Jobs one reconcile sends at most; the rest follow when the batch has landed (its landing
/// wakes the object). Within it, a reconcile sends only as many creates as the write budget has
/// tokens for now (at least one), so a batch never waits long for the budget. A big run is
/// reconciled a few times a second (`EVALUATION_SHARE`), so a batch must be large enough for
/// the write budget (100 a second by default) to be used.
const CREATE_BATCH: usize = 64;

/// How often a name held by another owner's Job is read again.
pub(super) const CONFLICT_RECHECK: Duration = Duration::from_secs(2);

/// Refused creates are retried after 1 s, doubling up to this.
const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(120);

/// A create built by a reconcile, sent by the batch's task.
struct Outgoing {
    key: String,
    attempt: u32,
    inputs: (Option<i64>, Option<String>),
    job: Job,
    /// The name was held by another owner's Job before: read it before any create.
    read_first: bool,
}

/// Sends the creates the scheduler asks for, without waiting for them: as many as the write
/// budget has tokens for (at least one when none are in flight), so the batches in flight never
/// wait long for the budget; each batch's landing wakes the object. Each step sent counts as
/// running from now on (`StepMemo::creating`) until its create has landed. A step that turns
/// out blocked-and-failed may unblock failure handlers, so decide again until nothing new is
/// attempted or the batch is full.
pub(super) fn send_ready<K: RunKind>(
    obj: &K,
    ctx: &Arc<Context>,
    plan: &Plan,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
    observed: &mut Observed,
) {
    let in_flight = memo.landing.in_flight().0;
    let mut attempted = vec![false; plan.steps.len()];
    let mut tried = 0usize;
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        let mut todo: Vec<StepId> = observed
            .decision
            .create
            .iter()
            .copied()
            .filter(|s| !attempted.get(s.index()).copied().unwrap_or(true))
            .collect();
        let budget = ctx
            .limiter
            .available()
            .max(usize::from(tried == 0 && !in_flight));
        todo.truncate(CREATE_BATCH.saturating_sub(tried).min(budget));
        if todo.is_empty() {
            break;
        }
        tried += todo.len();
        // Exit steps get the outcome of the others, all terminal now (engine `exit`).
        let exit_env = todo
            .iter()
            .any(|s| plan.dag.is_exit(*s))
            .then(|| exit::exit_env(plan, &observed.decision, &obj.name_any()));
        for step in todo {
            attempted[step.index()] = true;
            let env = exit_env.as_deref().filter(|_| plan.dag.is_exit(step));
            batch.extend(prepare(
                obj,
                ctx,
                (plan, namespace),
                (step, env),
                memo,
                observed,
            ));
        }
        observed.decision = decide(plan, observed);
    }
    if batch.is_empty() {
        return;
    }
    memo.landing.send_creates();
    let target = (namespace.to_owned(), obj.name_any());
    ctx.writes.spawn(send_batch::<K>(
        ctx.clone(),
        memo.landing.clone(),
        uid.to_owned(),
        target,
        batch,
    ));
}

/// Builds the Job of one step the scheduler asks for (its recorded attempt, the outputs it
/// reads set) and marks the step as being created; a step that cannot be built now is blocked
/// instead (waiting holds no `maxParallel` slot) and nothing is returned.
fn prepare<K: RunKind>(
    obj: &K,
    ctx: &Arc<Context>,
    (plan, namespace): (&Plan, &str),
    (step, exit_env): (StepId, Option<&[EnvVar]>),
    memo: &mut RunMemo,
    observed: &mut Observed,
) -> Option<Outgoing> {
    let planned = plan.steps.get(step.index())?;
    let generation = obj.meta().generation;
    let attempt = observed.attempts.get(step.index()).copied().unwrap_or(1);
    let built = build(ctx, obj, plan, (step, attempt), exit_env, namespace).and_then(|mut job| {
        outputs::set_inputs(&mut job, plan, step, observed, memo)?;
        Ok(job)
    });
    match built {
        Ok(job) => {
            let read_first = had_conflict(memo, plan, step);
            let known = memo.steps.entry(planned.key.clone()).or_default();
            known.creating = true;
            observed.outcomes[step.index()] = StepOutcome::Running;
            Some(Outgoing {
                key: planned.key.clone(),
                attempt,
                inputs: (generation, template_version(ctx, planned, namespace)),
                job,
                read_first,
            })
        }
        Err(blocker) => {
            if let Blocker::OutputUnread { .. } = &blocker {
                // Looked at again after a backoff (the producer's pods are read again in that
                // reconcile).
                let known = memo.steps.entry(planned.key.clone()).or_default();
                refuse(known, generation, None, blocker.clone(), true);
            }
            observed.block(step.index(), blocker);
            None
        }
    }
}

/// Sends one batch of creates and puts what each did in `landing`; wakes the object after.
async fn send_batch<K: RunKind>(
    ctx: Arc<Context>,
    landing: Arc<Landing>,
    uid: String,
    (namespace, name): (String, String),
    batch: Vec<Outgoing>,
) {
    futures::stream::iter(batch)
        .for_each_concurrent(CREATE_CONCURRENCY, |outgoing| {
            let (ctx, landing, uid) = (&ctx, &landing, &uid);
            async move {
                let job_name = outgoing.job.name_any();
                let write =
                    apply::create_job_if_absent(ctx, outgoing.job, uid, outgoing.read_first).await;
                let outcome = match write {
                    Ok(JobWrite::Created(job)) => CreateOutcome::Created(job),
                    Ok(JobWrite::Exists) => CreateOutcome::Exists,
                    Ok(JobWrite::Conflict { .. }) => CreateOutcome::Conflict,
                    Err(error) => {
                        let (blocker, retryable) = refusal_of(&error);
                        tracing::warn!(job = %job_name, step = %outgoing.key, %error, "creating the Job was refused");
                        metrics::create_refused(K::CONTROLLER.as_str(), refusal_code(&error));
                        CreateOutcome::Refused { blocker, retryable }
                    }
                };
                let (generation, template_version) = outgoing.inputs;
                landing.land_create(LandedCreate {
                    key: outgoing.key,
                    attempt: outgoing.attempt,
                    generation,
                    template_version,
                    outcome,
                });
            }
        })
        .await;
    landing.creates_done();
    ctx.wakes.wake(&namespace, &name);
}

/// Records on the step memory what the creates that landed did; returns the keys of the steps
/// whose Job was created. A created Job's answer stands in for it until the cache shows it.
pub(super) fn land(memo: &mut RunMemo, landed: Vec<LandedCreate>) -> Vec<String> {
    let mut created = Vec::new();
    for create in landed {
        let Some(known) = memo.steps.get_mut(&create.key) else {
            continue;
        };
        known.creating = false;
        if known.attempt() != create.attempt.max(1) {
            // The step moved on meanwhile; the cache says what became of that Job.
            continue;
        }
        let (generation, template_version) = (create.generation, create.template_version);
        match create.outcome {
            CreateOutcome::Created(job) => {
                known.created = true;
                known.started = true;
                known.refused = None;
                memo.fresh_jobs.insert(create.key.clone(), Arc::from(job));
                created.push(create.key);
            }
            CreateOutcome::Exists => known.started = true,
            // Looked at again after a backoff, not on every reconcile.
            CreateOutcome::Conflict => refuse(
                known,
                generation,
                template_version,
                Blocker::NameConflict,
                true,
            ),
            CreateOutcome::Refused { blocker, retryable } => {
                refuse(known, generation, template_version, blocker, retryable);
            }
        }
    }
    created
}

/// Whether the step's last create found a Job of another owner at its name.
fn had_conflict(memo: &RunMemo, plan: &Plan, step: StepId) -> bool {
    plan.steps
        .get(step.index())
        .and_then(|p| step_at(&memo.steps, step.index(), &p.key))
        .and_then(|known| known.refused.as_ref())
        .is_some_and(|r| r.blocker == Blocker::NameConflict)
}

/// Remembers a refused create (see [`Refusal`]).
pub(super) fn refuse(
    known: &mut StepMemo,
    generation: Option<i64>,
    template_version: Option<String>,
    blocker: Blocker,
    retryable: bool,
) {
    let attempts = known.refused.as_ref().map_or(0, |r| r.attempts) + 1;
    let retry_at = retryable.then(|| {
        if blocker == Blocker::NameConflict {
            // Re-checked with a read (no write), so often: the step goes on soon after the
            // other Job is deleted (that Job is outside the label-selected Job watch).
            return Instant::now() + CONFLICT_RECHECK;
        }
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
pub(super) fn refusal_of(error: &ApplyError) -> (Blocker, bool) {
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

/// Builds the Job of one step's attempt, resolving its JobTemplate from the shared cache;
/// `exit_env` is the env of an exit step.
pub(super) fn build<K: RunKind>(
    ctx: &Context,
    obj: &K,
    plan: &Plan,
    (step, attempt): (StepId, u32),
    exit_env: Option<&[EnvVar]>,
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
    compile::apply_attempt(&mut job, attempt);
    if let Some(env) = exit_env {
        exit::add_env(&mut job, env);
    }
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
