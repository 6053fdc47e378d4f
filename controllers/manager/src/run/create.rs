//! Create: the Jobs the scheduler asks for, built from the plan and the JobTemplate cache; a
//! refused create is remembered on the step and retried with a capped backoff.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use jobsmith_engine::{
    StepId, StepOutcome,
    compile::{self, BuildError, Plan, PlannedStep},
    conditions::bounded,
    exit, observe,
    rollup::Blocker,
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
    memory::{Refusal, RunMemo, StepMemo},
    telemetry::metrics,
};

/// Jobs created at once in one reconcile (the write limiter still applies to each).
const CREATE_CONCURRENCY: usize = 8;

/// Jobs one reconcile creates at most; the rest follow in the next reconcile, requeued at once.
/// A wave of hundreds of ready steps would otherwise hold one reconcile (and its object's status)
/// for as long as all its creates take behind the write limiter; each batch is recorded in the
/// status like any create, so exactly-once is unchanged. Within it, a reconcile sends only as
/// many creates as the write budget has tokens for now (at least one), so it never waits long
/// for the budget: the rest follow in the next reconcile, by which time the budget has refilled.
const CREATE_BATCH: usize = 16;

/// What [`create_ready`] did.
pub(super) struct Created {
    /// The steps whose Job this reconcile created.
    pub steps: Vec<StepId>,
    /// Ready steps were left for the next reconcile ([`CREATE_BATCH`], or the write budget),
    /// which should come this soon: at once while the budget has tokens, else when it has
    /// refilled enough for the next batch.
    pub rest_in: Option<Duration>,
}

/// How often a name held by another owner's Job is read again.
pub(super) const CONFLICT_RECHECK: Duration = Duration::from_secs(2);

/// Refused creates are retried after 1 s, doubling up to this.
const REFUSAL_BACKOFF_MAX: Duration = Duration::from_secs(120);

/// Creates what the scheduler asks for. A step that turns out blocked-and-failed may unblock
/// failure handlers, so decide again until nothing new is attempted or the batch is full.
pub(super) async fn create_ready<K: RunKind>(
    obj: &K,
    ctx: &Arc<Context>,
    plan: &Plan,
    namespace: &str,
    uid: &str,
    memo: &mut RunMemo,
    observed: &mut Observed,
) -> Created {
    let generation = obj.meta().generation;
    let mut attempted = vec![false; plan.steps.len()];
    let mut tried = 0usize;
    let mut created: Vec<StepId> = Vec::new();
    loop {
        let mut todo: Vec<StepId> = observed
            .decision
            .create
            .iter()
            .copied()
            .filter(|s| !attempted.get(s.index()).copied().unwrap_or(true))
            .collect();
        let budget = ctx.limiter.available().max(usize::from(tried == 0));
        let room = CREATE_BATCH.saturating_sub(tried).min(budget);
        let rest = todo.len().saturating_sub(room);
        todo.truncate(room);
        if todo.is_empty() {
            let rest_in = (rest > 0).then(|| ctx.limiter.time_for(rest.min(CREATE_BATCH)));
            return Created {
                steps: created,
                rest_in,
            };
        }
        tried += todo.len();
        // Exit steps get the outcome of the others, all terminal now (engine `exit`).
        let exit_env = todo
            .iter()
            .any(|s| plan.dag.is_exit(*s))
            .then(|| exit::exit_env(plan, &observed.decision, &obj.name_any()));
        let mut builds = Vec::new();
        for step in todo {
            attempted[step.index()] = true;
            let attempt = observed.attempts.get(step.index()).copied().unwrap_or(1);
            let env = exit_env.as_deref().filter(|_| plan.dag.is_exit(step));
            let built =
                build(ctx, obj, plan, (step, attempt), env, namespace).and_then(|mut job| {
                    outputs::set_inputs(&mut job, plan, step, observed, memo)?;
                    Ok(job)
                });
            match built {
                Ok(job) => builds.push((step, job, had_conflict(memo, plan, step))),
                Err(blocker) => {
                    if let (Blocker::OutputUnread { .. }, Some(planned)) =
                        (&blocker, plan.steps.get(step.index()))
                    {
                        // Looked at again after a backoff (the producer's pods are read again
                        // in that reconcile).
                        let known = memo.steps.entry(planned.key.clone()).or_default();
                        refuse(known, generation, None, blocker.clone(), true);
                    }
                    // Waiting (template, outputs) holds no maxParallel slot meanwhile.
                    observed.block(step.index(), blocker);
                }
            }
        }
        let writes: Vec<(StepId, Result<JobWrite, ApplyError>)> =
            futures::stream::iter(builds.into_iter().map(|(step, job, read_first)| {
                let ctx = ctx.clone();
                async move {
                    let write = apply::create_job_if_absent(&ctx, job, uid, read_first).await;
                    (step, write)
                }
            }))
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect()
            .await;
        for (step, write) in writes {
            let Some(planned) = plan.steps.get(step.index()) else {
                continue;
            };
            let inputs = (generation, template_version(ctx, planned, namespace));
            if record_write::<K>(planned, step, write, inputs, memo, observed) {
                created.push(step);
            }
        }
        observed.decision = decide(plan, observed);
    }
}

/// Whether the step's last create found a Job of another owner at its name.
fn had_conflict(memo: &RunMemo, plan: &Plan, step: StepId) -> bool {
    plan.steps
        .get(step.index())
        .and_then(|p| memo.steps.get(&p.key))
        .and_then(|known| known.refused.as_ref())
        .is_some_and(|r| r.blocker == Blocker::NameConflict)
}

/// Records what one create did on the step's observation and memory; `true` when it created the
/// Job. `inputs`: the object's generation and the template's resourceVersion it was built from.
fn record_write<K: RunKind>(
    planned: &PlannedStep,
    step: StepId,
    write: Result<JobWrite, ApplyError>,
    inputs: (Option<i64>, Option<String>),
    memo: &mut RunMemo,
    observed: &mut Observed,
) -> bool {
    let i = step.index();
    let known = memo.steps.entry(planned.key.clone()).or_default();
    let (generation, template_version) = inputs;
    match write {
        Ok(JobWrite::Created(job)) => {
            // Running, or queued when it was created suspended for Kueue (its slot either way).
            observed.outcomes[i] = match observe::job_outcome(&job) {
                StepOutcome::Queued => StepOutcome::Queued,
                _ => StepOutcome::Running,
            };
            // The response stands in for the cache entry the watch has not delivered yet, so
            // the first status already carries the step's start time.
            observed.jobs[i] = Some(Arc::from(job));
            known.created = true;
            known.started = true;
            known.refused = None;
            return true;
        }
        Ok(JobWrite::Exists) => {
            observed.outcomes[i] = StepOutcome::Running;
            known.started = true;
        }
        Ok(JobWrite::Conflict { .. }) => {
            observed.block(i, Blocker::NameConflict);
            // Looked at again after a backoff, not on every reconcile.
            refuse(
                known,
                generation,
                template_version,
                Blocker::NameConflict,
                true,
            );
        }
        Err(error) => {
            let (blocker, retryable) = refusal_of(&error);
            tracing::warn!(job = %known.job_name(planned), step = %planned.key, %error, "creating the Job was refused");
            metrics::create_refused(K::CONTROLLER.as_str(), refusal_code(&error));
            observed.block(i, blocker.clone());
            refuse(known, generation, template_version, blocker, retryable);
        }
    }
    false
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
