//! Job writes: create-if-absent with an owner check (never adopt), and the deletion of a
//! finished Job whose outcome is recorded, which always cascades to its pods
//! (`propagationPolicy: Background`) and names the Job's uid (never a successor of that name).

use jobsmith_engine::ObservedJob;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy},
    runtime::reflector::ObjectRef,
};

use crate::{cache::jobs, context::Context, telemetry::metrics};

/// The outcome of [`create_job_if_absent`].
#[derive(Debug)]
pub enum JobWrite {
    /// We created it now.
    Created(Box<ObservedJob>),
    /// It already exists and is controlled by the same owner: nothing to do (idempotent).
    Exists,
    /// A Job with this name exists but has another controller owner (`Some(uid)`) or none. It is
    /// never adopted; the caller reports the step with reason `NameConflict`.
    Conflict { owner_uid: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the Job has no name or namespace")]
    MissingIdentity,
    #[error("creating Job {namespace}/{name}: {source}")]
    Create {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(transparent)]
    Fenced(#[from] crate::leadership::ratelimit::Fenced),
    #[error("deleting finished Job {namespace}/{name}: {source}")]
    Delete {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("stopping Job {namespace}/{name} at the run's deadline: {source}")]
    Stop {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("reading existing Job {namespace}/{name}: {source}")]
    ReadExisting {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

impl ApplyError {
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::MissingIdentity => "job_identity",
            ApplyError::Create { .. } => "job_create",
            ApplyError::ReadExisting { .. } => "job_read",
            ApplyError::Delete { .. } => "job_delete",
            ApplyError::Stop { .. } => "job_stop",
            ApplyError::Fenced(_) => "fenced",
        }
    }
}

/// Decides from an existing Job whether it is ours.
pub fn classify_existing(existing: &ObservedJob, owner_uid: &str) -> JobWrite {
    match jobs::controller_owner_uid(existing) {
        Some(uid) if uid == owner_uid => JobWrite::Exists,
        other => JobWrite::Conflict {
            owner_uid: other.map(str::to_owned),
        },
    }
}

/// Creates `job` unless a Job of that name exists. The shared cache answers first (no request when
/// it already holds the Job); otherwise one POST, and on `AlreadyExists` one GET to check the owner.
/// `read_first`: a Job of another owner held the name before (outside the label-selected cache):
/// a GET checks whether it is still there before any POST, so a standing conflict costs a read,
/// never a write. `job` must carry its namespace, name and the controller owner reference.
pub async fn create_job_if_absent(
    ctx: &Context,
    job: Job,
    owner_uid: &str,
    read_first: bool,
) -> Result<JobWrite, ApplyError> {
    let (Some(namespace), Some(name)) = (job.namespace(), job.metadata.name.clone()) else {
        return Err(ApplyError::MissingIdentity);
    };
    if let Some(cached) = ctx.jobs.get(&ObjectRef::new(&name).within(&namespace)) {
        return Ok(classify_existing(&cached, owner_uid));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    // Reads of an existing Job decode only what is observed of it (its owner).
    let observed: Api<ObservedJob> = Api::namespaced(ctx.client.clone(), &namespace);
    if read_first {
        match observed.get_opt(&name).await {
            Ok(Some(existing)) => return Ok(classify_existing(&existing, owner_uid)),
            Ok(None) => {}
            Err(source) => {
                return Err(ApplyError::ReadExisting {
                    namespace,
                    name,
                    source,
                });
            }
        }
    }
    let params = PostParams {
        field_manager: Some(ctx.field_manager.to_owned()),
        ..Default::default()
    };
    ctx.limiter.acquire().await?;
    metrics::api_write("create", "jobs".into());
    match api.create(&params, &job).await {
        Ok(created) => Ok(JobWrite::Created(Box::new(created.into()))),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            // Not in the cache: not ours yet, or the cache lags. A read decides.
            match observed.get(&name).await {
                Ok(existing) => Ok(classify_existing(&existing, owner_uid)),
                Err(source) => Err(ApplyError::ReadExisting {
                    namespace,
                    name,
                    source,
                }),
            }
        }
        Err(source) => Err(ApplyError::Create {
            namespace,
            name,
            source,
        }),
    }
}

/// Deletes a finished Job (its outcome is recorded) and, in the background, its pods. Gone
/// already, or replaced by another Job of that name: nothing to do.
pub async fn delete_finished_job(ctx: &Context, job: &ObservedJob) -> Result<(), ApplyError> {
    let (Some(namespace), Some(name)) = (job.namespace(), job.metadata.name.clone()) else {
        return Err(ApplyError::MissingIdentity);
    };
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    ctx.limiter.acquire().await?;
    metrics::api_write("delete", "jobs".into());
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            namespace,
            name,
            source,
        }),
    }
}

/// Stops a running Job at its run's deadline: sets its `activeDeadlineSeconds` to `seconds`
/// (engine `lifecycle::stopping_deadline`: already past), so the Job controller fails it with
/// reason `DeadlineExceeded` and removes its pods. The Job itself is never deleted here. A merge
/// patch of that one field (`spec.activeDeadlineSeconds` is mutable on a Job, and the Job
/// controller re-syncs a Job whose deadline changed); gone already: nothing to do.
pub async fn stop_job(ctx: &Context, job: &ObservedJob, seconds: i64) -> Result<(), ApplyError> {
    let (Some(namespace), Some(name)) = (job.namespace(), job.metadata.name.clone()) else {
        return Err(ApplyError::MissingIdentity);
    };
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({"spec": {"activeDeadlineSeconds": seconds}});
    let params = PatchParams {
        field_manager: Some(ctx.field_manager.to_owned()),
        ..Default::default()
    };
    ctx.limiter.acquire().await?;
    metrics::api_write("patch", "jobs".into());
    match api.patch(&name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(source) => Err(ApplyError::Stop {
            namespace,
            name,
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn owned(uid: Option<&str>, controller: bool) -> ObservedJob {
        ObservedJob {
            metadata: ObjectMeta {
                name: Some("j".into()),
                owner_references: uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "jobsmith.dev/v1alpha1".into(),
                        kind: "JobRun".into(),
                        name: "r".into(),
                        uid: uid.into(),
                        controller: Some(controller),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn same_owner_is_idempotent_anything_else_conflicts() {
        assert!(matches!(
            classify_existing(&owned(Some("u1"), true), "u1"),
            JobWrite::Exists
        ));
        assert!(matches!(
            classify_existing(&owned(Some("u2"), true), "u1"),
            JobWrite::Conflict { owner_uid: Some(uid) } if uid == "u2"
        ));
        assert!(matches!(
            classify_existing(&owned(None, true), "u1"),
            JobWrite::Conflict { owner_uid: None }
        ));
        // An owner reference without `controller: true` does not make the Job ours.
        assert!(matches!(
            classify_existing(&owned(Some("u1"), false), "u1"),
            JobWrite::Conflict { owner_uid: None }
        ));
    }
}
