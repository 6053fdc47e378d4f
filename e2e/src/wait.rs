//! Waiting, with a timeout, for a resource to reach a condition (through a watch), or for any
//! check to pass (polling; tests may poll, controllers may not).

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a timed-out object looked: its status (or the whole object when it has none).
fn snapshot<K: Serialize>(object: &K) -> String {
    let value = serde_json::to_value(object).unwrap_or_default();
    let shown = value.get("status").unwrap_or(&value);
    serde_json::to_string_pretty(shown).unwrap_or_default()
}

/// Waits until the object `name` of `api` matches `condition`, at most `timeout`, and returns it.
/// On timeout the error shows the object's current status. Conditions: kube's
/// `runtime::wait::conditions`, any `Fn(Option<&K>) -> bool`, or the helpers of this module.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: impl Condition<K>,
) -> Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => bail!("{name} matched the condition by not existing; use wait_deleted"),
        Ok(Err(e)) => Err(anyhow!("watching {name}: {e}")),
        Err(_) => {
            let now = match api.get_opt(name).await {
                Ok(Some(object)) => snapshot(&object),
                Ok(None) => "it does not exist".to_owned(),
                Err(e) => format!("reading it failed: {e}"),
            };
            bail!("{name} did not reach the condition within {timeout:?}; now:\n{now}")
        }
    }
}

/// Waits until `name` no longer exists (any uid), at most `timeout`.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    let gone = |object: Option<&K>| object.is_none();
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, gone)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow!("watching {name}: {e}")),
        Err(_) => {
            let finalizers = api
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .map(|o| o.finalizers().to_vec());
            bail!("{name} still exists after {timeout:?} (finalizers: {finalizers:?})")
        }
    }
}

/// Polls `check` every 200 ms until it returns `Ok(Some(value))`, at most `timeout`. `Ok(None)`
/// and errors mean "not yet"; the last error is part of the timeout error.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("{what}: not true within {timeout:?}")),
                None => anyhow!("{what}: not true within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Job has condition `type_` (`Complete`, `Failed`, `SuccessCriteriaMet`, `FailureTarget`,
/// `Suspended`) with status True.
pub fn job_condition(type_: &str) -> impl Condition<Job> + use<> {
    let type_ = type_.to_owned();
    move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    }
}

/// A Job is finished: `Complete` or `Failed` is True.
pub fn job_finished() -> impl Condition<Job> {
    conditions::is_job_completed().or(job_condition("Failed"))
}

/// A Pod is in `phase` (`Pending`, `Running`, `Succeeded`, `Failed`).
pub fn pod_phase(phase: &str) -> impl Condition<Pod> + use<> {
    let phase = phase.to_owned();
    move |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some(phase.as_str())
    }
}

/// An object of any kind (e.g. a Jobsmith resource) has `status.conditions[type == type_]` with
/// `status == status` (`"True"`, `"False"`, `"Unknown"`).
pub fn status_condition(type_: &str, status: &str) -> impl Condition<DynamicObject> + use<> {
    let (type_, status) = (type_.to_owned(), status.to_owned());
    move |object: Option<&DynamicObject>| {
        object
            .and_then(|o| o.data.pointer("/status/conditions"))
            .and_then(|c| c.as_array())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(|t| t.as_str()) == Some(type_.as_str())
                        && c.get("status").and_then(|s| s.as_str()) == Some(status.as_str())
                })
            })
    }
}

/// An object of any kind has `status.phase == phase`.
pub fn status_phase(phase: &str) -> impl Condition<DynamicObject> + use<> {
    let phase = phase.to_owned();
    move |object: Option<&DynamicObject>| {
        object
            .and_then(|o| o.data.pointer("/status/phase"))
            .and_then(|p| p.as_str())
            == Some(phase.as_str())
    }
}
