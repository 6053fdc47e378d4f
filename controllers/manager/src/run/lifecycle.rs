//! The run's lifecycle writes (docs/lifecycle.md "Deadline of the whole run", "Cleanup"); what to
//! do is decided by the engine's `lifecycle` from spec, status and the time:
//!
//! - past the deadline, the running Jobs the scheduler names ([`Decision::stop`]) get an
//!   `activeDeadlineSeconds` that already passed, so the Job controller fails them (never a
//!   delete);
//! - once the status of a final run is written (every outcome in `status.record`), its Jobs of
//!   every attempt are deleted when `spec.jobsCleanup` says so for its outcome (background
//!   propagation: their pods go too); the record keeps each step's outcome, so nothing is run
//!   again and no step becomes `Lost` (docs/guarantees.md);
//! - `spec.ttlSecondsAfterFinished` after `completionTime` the run object itself is deleted
//!   (background propagation: its Jobs go by garbage collection).
//!
//! [`Decision::stop`]: jobsmith_engine::Decision::stop

use std::time::Duration;

use jobsmith_api::RunStatus;
use jobsmith_engine::lifecycle;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Preconditions, PropagationPolicy},
};

use super::{RunError, RunKind, observe::Observed};
use crate::{
    apply::{self, ApplyError},
    cache::jobs,
    context::Context,
    telemetry::metrics,
};

/// Stops the Jobs of the steps the deadline ends while they run.
pub(super) async fn stop_past_deadline(
    ctx: &Context,
    observed: &Observed,
    now: &Time,
) -> Result<(), RunError> {
    for step in &observed.decision.stop {
        let Some(Some(job)) = observed.jobs.get(step.index()) else {
            continue;
        };
        if let Some(seconds) = lifecycle::stopping_deadline(job, now.0) {
            tracing::info!(job = %job.name_any(), seconds, "run deadline exceeded; stopping the Job");
            apply::stop_job(ctx, job, seconds).await?;
        }
    }
    Ok(())
}

/// What happens after the status of a reconcile is written.
pub(super) enum AfterWrite {
    /// Nothing more now; the run object expires in this long, if it has a TTL.
    Kept { expires_in: Option<Duration> },
    /// The run object was deleted (its TTL passed).
    Deleted,
}

/// The cleanup of a run whose status (`written`, as just written) is final: its Jobs by
/// `spec.jobsCleanup`, then the object itself by `spec.ttlSecondsAfterFinished`.
pub(super) async fn clean_up<K: RunKind>(
    ctx: &Context,
    obj: &K,
    written: &RunStatus,
    namespace: &str,
    uid: &str,
    now: &Time,
) -> Result<AfterWrite, RunError> {
    let controls = obj.lifecycle();
    if lifecycle::deletes_jobs(&controls.jobs_cleanup, written.phase) {
        let owned = jobs::owned_by(&ctx.jobs, namespace, uid);
        let doomed = lifecycle::jobs_to_delete(
            &controls.jobs_cleanup,
            written.phase,
            owned.iter().map(|j| j.as_ref()),
        );
        if !doomed.is_empty() {
            tracing::info!(jobs = doomed.len(), phase = ?written.phase, "run finished; deleting its Jobs (jobsCleanup)");
        }
        for job in doomed {
            apply::delete_finished_job(ctx, job).await?;
        }
    }
    let Some(expires) = lifecycle::run_expires_at(controls.ttl_seconds_after_finished, written)
    else {
        return Ok(AfterWrite::Kept { expires_in: None });
    };
    let wait = lifecycle::wait_until(now.0, expires);
    if !wait.is_zero() {
        return Ok(AfterWrite::Kept {
            expires_in: Some(wait),
        });
    }
    delete_run(ctx, obj, namespace, uid).await?;
    Ok(AfterWrite::Deleted)
}

/// Deletes the run object (its TTL passed), in the background: the garbage collector removes
/// its Jobs and their pods. The uid precondition spares a new object of the same name.
async fn delete_run<K: RunKind>(
    ctx: &Context,
    obj: &K,
    namespace: &str,
    uid: &str,
) -> Result<(), RunError> {
    let name = obj.name_any();
    tracing::info!(%name, "run finished and its ttlSecondsAfterFinished passed; deleting it");
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..Default::default()
    };
    ctx.limiter.acquire().await.map_err(ApplyError::from)?;
    metrics::api_write("delete", K::plural(&()).into_owned());
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(RunError::Expire { name, source }),
    }
}
