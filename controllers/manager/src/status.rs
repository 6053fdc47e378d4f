//! The `/status` writer for every kind (STYLE 3): a JSON merge patch of only what changed, always
//! with `observedGeneration`, and no request at all when nothing changed.
//!
//! Why merge patch rather than server-side apply: the patch needs no `resourceVersion` (so a
//! slightly stale cache never causes a conflict loop), carries only the changed fields (small
//! requests for a 10,000-step status), and removes fields by sending `null`, which the diff below
//! computes from the current status. Server-side apply would need `apiVersion`/`kind` in every body,
//! send the whole status each time, and its field ownership buys nothing when one controller owns
//! the whole `status`. The field manager is still set, so `managedFields` names the controller.
//! Conditions (`lastTransitionTime` stable) are computed by `jobsmith_engine::status::conditions`; this
//! module only writes Values.

use std::fmt::Debug;

use kube::{
    Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{context::Context, telemetry::metrics};

#[derive(Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// Nothing changed: no request was sent.
    Unchanged,
    /// Sent; `resource_version` is the object's version the write produced (from the answer).
    Patched { resource_version: Option<String> },
    /// The object is gone (deleted meanwhile).
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("the object has no name or namespace")]
    MissingIdentity,
    #[error("the desired status is not a JSON object")]
    NotAnObject,
    #[error(transparent)]
    Fenced(#[from] crate::leadership::ratelimit::Fenced),
    #[error("patching status of {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

impl StatusError {
    pub fn category(&self) -> &'static str {
        match self {
            StatusError::MissingIdentity | StatusError::NotAnObject => "status_shape",
            StatusError::Patch { .. } => "status_patch",
            StatusError::Fenced(_) => "fenced",
        }
    }
}

/// The JSON merge patch (RFC 7396) that turns `current` into `desired`, or `None` if equal.
/// Objects are diffed key by key (removed keys become `null`); anything else is replaced whole.
pub fn merge_diff(current: &Value, desired: &Value) -> Option<Value> {
    match (current, desired) {
        (Value::Object(cur), Value::Object(des)) => {
            let mut patch = Map::new();
            for (key, want) in des {
                match cur.get(key) {
                    Some(have) => {
                        if let Some(diff) = merge_diff(have, want) {
                            patch.insert(key.clone(), diff);
                        }
                    }
                    // `null` in a merge patch means "absent": nothing to do when already absent.
                    None if want.is_null() => {}
                    None => {
                        patch.insert(key.clone(), want.clone());
                    }
                }
            }
            for key in cur.keys() {
                if !des.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        // `null` in a merge patch would delete instead of setting: send the object itself.
        (_, Value::Object(des)) => Some(Value::Object(strip_nulls(des))),
        (cur, des) if cur == des => None,
        (_, des) => Some(des.clone()),
    }
}

fn strip_nulls(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::Object(inner) => (k.clone(), Value::Object(strip_nulls(inner))),
            other => (k.clone(), other.clone()),
        })
        .collect()
}

/// The fields of a status whose change is written at once, whatever the pace of writes: what
/// a user, `kubectl wait`, kstatus, Argo CD's health check or a retry request reads. The rest
/// (step entries, counts, progress, the step record, outputs) is step detail.
const WRITTEN_AT_ONCE: &[&str] = &[
    "phase",
    "observedGeneration",
    "startTime",
    "completionTime",
    "retries",
    "retryCount",
];

/// Whether turning `current` into `desired` (at `generation`) changes only step detail, so the
/// write may wait: the fields of `WRITTEN_AT_ONCE` are equal, `observedGeneration` already is
/// `generation`, and every condition has the same type, status and reason (its message may
/// carry counts). A status not written yet is never detail.
pub fn detail_only(current: &Value, desired: &Value, generation: Option<i64>) -> bool {
    let (Value::Object(have), Value::Object(want)) = (current, desired) else {
        return false;
    };
    if generation.is_some() && have.get("observedGeneration").and_then(Value::as_i64) != generation
    {
        return false;
    }
    let same = |key: &str| have.get(key) == want.get(key) || key == "observedGeneration";
    WRITTEN_AT_ONCE.iter().all(|key| same(key))
        && condition_states(have.get("conditions")) == condition_states(want.get("conditions"))
}

/// Each condition's type, status and reason, in order.
fn condition_states(conditions: Option<&Value>) -> Vec<[Option<&str>; 3]> {
    let Some(Value::Array(conditions)) = conditions else {
        return Vec::new();
    };
    conditions
        .iter()
        .map(|c| ["type", "status", "reason"].map(|key| c.get(key).and_then(Value::as_str)))
        .collect()
}

/// The body to send, or `None` when `current` already is `desired` with this generation.
/// `desired` counts as carrying `observedGeneration` = the object's `metadata.generation`; a body
/// always carries it. Both are read in place: a reconcile of a big run calls this with a status
/// of hundreds of step entries, and a deep copy of each side cost more than the diff.
pub fn status_patch(
    current: &Value,
    desired: &Value,
    generation: Option<i64>,
) -> Result<Option<Value>, StatusError> {
    if !desired.is_object() {
        return Err(StatusError::NotAnObject);
    }
    let empty = Value::Object(Map::new());
    let current = if current.is_null() { &empty } else { current };
    let mut diff = match merge_diff(current, desired) {
        Some(Value::Object(diff)) => diff,
        _ => Map::new(),
    };
    if let Some(generation) = generation {
        // Whatever `desired` says of it, the generation written is the object's.
        diff.remove("observedGeneration");
        let generation = Value::from(generation);
        if diff.is_empty() && current.get("observedGeneration") == Some(&generation) {
            return Ok(None);
        }
        diff.insert("observedGeneration".into(), generation);
    }
    if diff.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::json!({ "status": diff })))
}

/// Whether [`status_patch`] would send anything, found without building the patch (a held
/// write asks this on every reconcile, and the patch would copy every changed list whole).
pub fn status_differs(current: &Value, desired: &Value, generation: Option<i64>) -> bool {
    let empty = Map::new();
    let have = match current {
        Value::Null => &empty,
        Value::Object(have) => have,
        _ => return true,
    };
    let Value::Object(want) = desired else {
        return true;
    };
    if let Some(generation) = generation
        && have.get("observedGeneration") != Some(&Value::from(generation))
    {
        return true;
    }
    // With a generation, `observedGeneration` is the object's whatever either side says.
    let skipped = generation.map(|_| "observedGeneration");
    !fields_merge_equal(have, want, skipped)
}

/// Whether [`merge_diff`] finds nothing to send from `current` to `desired`.
fn merge_equal(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(have), Value::Object(want)) => fields_merge_equal(have, want, None),
        (_, Value::Object(_)) => false,
        (have, want) => have == want,
    }
}

/// [`merge_equal`] of two objects' fields, `skipped` (if any) left out on both sides.
fn fields_merge_equal(
    have: &Map<String, Value>,
    want: &Map<String, Value>,
    skipped: Option<&str>,
) -> bool {
    let counted = |key: &str| Some(key) != skipped;
    want.iter()
        .filter(|(key, _)| counted(key))
        .all(|(key, value)| match have.get(key) {
            Some(had) => merge_equal(had, value),
            None => value.is_null(),
        })
        && have
            .keys()
            .filter(|key| counted(key))
            .all(|key| want.contains_key(key))
}

/// Writes `desired` as the status of `obj` when it differs from `current` (the object's status as
/// read, `Value::Null` when it has none).
pub async fn write_status<K>(
    ctx: &Context,
    obj: &K,
    current: &Value,
    desired: &Value,
) -> Result<StatusWrite, StatusError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let (Some(namespace), Some(name)) = (obj.namespace(), obj.meta().name.clone()) else {
        return Err(StatusError::MissingIdentity);
    };
    let Some(body) = status_patch(current, desired, obj.meta().generation)? else {
        return Ok(StatusWrite::Unchanged);
    };
    send_patch::<K>(ctx, &namespace, &name, &body).await
}

/// Sends `body` (from [`status_patch`]) as a merge patch of the status of the object of `K`
/// named `name` in `namespace`.
pub async fn send_patch<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<StatusWrite, StatusError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let failed = |source| StatusError::Patch {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    // A raw request whose answer is not parsed: the answer is the whole object, spec included
    // (a 10,000-step spec is over a megabyte of JSON), and the watch delivers it anyway. Nor does
    // it go through the kind's type: an object that type cannot read (a malformed embedded
    // JobSpec) still gets its status.
    let params = PatchParams {
        field_manager: Some(ctx.field_manager.to_owned()),
        ..Default::default()
    };
    let url = K::url_path(&(), Some(namespace));
    let request = kube::core::Request::new(url)
        .patch_subresource("status", name, &params, &Patch::Merge(body))
        .map_err(|source| failed(kube::Error::BuildRequest(source)))?;
    ctx.limiter.acquire().await?;
    metrics::api_write("patch", format!("{}/status", K::plural(&())));
    match ctx.client.request_text(request).await {
        Ok(answer) => Ok(StatusWrite::Patched {
            resource_version: answered_resource_version(&answer),
        }),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(StatusWrite::Gone),
        Err(source) => Err(failed(source)),
    }
}

/// The `metadata.resourceVersion` of an answer that is a whole object, read without building
/// the rest (serde skips it; the answer of a big run's patch is over a megabyte).
fn answered_resource_version(answer: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        metadata: AnswerMeta,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AnswerMeta {
        resource_version: Option<String>,
    }
    serde_json::from_str::<Answer>(answer)
        .ok()?
        .metadata
        .resource_version
}

/// The current time as status times are written: second precision, like what is read back.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    // Status times have second precision on the wire; keep the value equal to what is read back.
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn step_detail_may_wait_and_what_users_read_may_not() {
        let current = json!({
            "phase": "Running", "observedGeneration": 2, "progress": "1/3",
            "conditions": [{"type": "Ready", "status": "False", "reason": "Running", "message": "1/3"}],
            "record": {"steps": 3}, "workflows": [{"name": "a"}]
        });
        let detail = json!({
            "phase": "Running", "progress": "2/3",
            "conditions": [{"type": "Ready", "status": "False", "reason": "Running", "message": "2/3"}],
            "record": {"steps": 3, "succeeded": "0"}, "workflows": [{"name": "a", "x": 1}]
        });
        assert!(detail_only(&current, &detail, Some(2)));
        // A new generation is acknowledged at once.
        assert!(!detail_only(&current, &detail, Some(3)));
        let mut finished = detail.clone();
        finished["phase"] = json!("Succeeded");
        assert!(!detail_only(&current, &finished, Some(2)));
        let mut reason = detail.clone();
        reason["conditions"][0]["reason"] = json!("StepFailed");
        assert!(!detail_only(&current, &reason, Some(2)));
        let mut more = detail.clone();
        more["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Stalled", "status": "True"}));
        assert!(!detail_only(&current, &more, Some(2)));
        let mut retried = detail.clone();
        retried["retries"] = json!([{"requestedAt": "1"}]);
        assert!(!detail_only(&current, &retried, Some(2)));
        // The first status of an object is never held back.
        assert!(!detail_only(&Value::Null, &detail, Some(2)));
    }

    #[test]
    fn status_differs_says_what_status_patch_would() {
        let statuses = [
            Value::Null,
            json!({}),
            json!({"phase": "Running"}),
            json!({"phase": "Running", "observedGeneration": 3}),
            json!({"phase": "Running", "observedGeneration": 4}),
            json!({"phase": "Running", "observedGeneration": 3, "x": null}),
            json!({"phase": "Running", "observedGeneration": 3, "groups": {"a": {"p": 1}}}),
            json!({"phase": "Running", "observedGeneration": 3, "groups": {"a": {"p": 2}}}),
            json!({"phase": "Running", "observedGeneration": 3, "groups": {"a": {}}}),
            json!({"phase": "Running", "observedGeneration": 3, "groups": 1}),
            json!({"phase": "Running", "observedGeneration": 3, "entries": [1, 2]}),
            json!({"phase": "Running", "observedGeneration": 3, "entries": [1, 3]}),
            json!({"phase": "Succeeded", "observedGeneration": 3, "entries": [1, 3]}),
        ];
        for current in &statuses {
            for desired in statuses.iter().filter(|d| d.is_object()) {
                for generation in [None, Some(3), Some(4)] {
                    assert_eq!(
                        status_differs(current, desired, generation),
                        status_patch(current, desired, generation)
                            .unwrap()
                            .is_some(),
                        "{current} -> {desired} at {generation:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_version_a_patch_produced_is_read_from_its_answer() {
        let answer = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "resourceVersion": "4711"},
            "spec": {"big": [1, 2, 3]}, "status": {}});
        assert_eq!(
            answered_resource_version(&answer.to_string()).as_deref(),
            Some("4711")
        );
        assert_eq!(answered_resource_version("not json"), None);
        assert_eq!(answered_resource_version("{\"metadata\": {}}"), None);
    }

    #[test]
    fn equal_status_sends_nothing() {
        let current =
            json!({"phase": "Running", "observedGeneration": 3, "conditions": [{"type": "Ready"}]});
        let desired = json!({"phase": "Running", "conditions": [{"type": "Ready"}]});
        assert_eq!(status_patch(&current, &desired, Some(3)).unwrap(), None);
    }

    #[test]
    fn only_changes_are_sent_with_observed_generation() {
        let current =
            json!({"phase": "Running", "observedGeneration": 3, "progress": "1/2", "message": "x"});
        let desired = json!({"phase": "Running", "progress": "2/2"});
        let body = status_patch(&current, &desired, Some(3)).unwrap().unwrap();
        assert_eq!(
            body,
            json!({"status": {"progress": "2/2", "message": null, "observedGeneration": 3}})
        );
    }

    #[test]
    fn new_generation_alone_is_a_change() {
        let current = json!({"phase": "Running", "observedGeneration": 3});
        let body = status_patch(&current, &json!({"phase": "Running"}), Some(4))
            .unwrap()
            .unwrap();
        assert_eq!(body, json!({"status": {"observedGeneration": 4}}));
    }

    #[test]
    fn first_write_on_an_object_without_status() {
        let body = status_patch(
            &Value::Null,
            &json!({"phase": "Pending", "x": null}),
            Some(1),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            body,
            json!({"status": {"phase": "Pending", "observedGeneration": 1}})
        );
    }

    #[test]
    fn nested_objects_are_diffed_and_lists_replaced() {
        let current =
            json!({"groups": {"a": {"phase": "Running", "job": "j"}}, "conditions": [1, 2]});
        let desired =
            json!({"groups": {"a": {"phase": "Succeeded", "job": "j"}}, "conditions": [1, 3]});
        assert_eq!(
            merge_diff(&current, &desired).unwrap(),
            json!({"groups": {"a": {"phase": "Succeeded"}}, "conditions": [1, 3]})
        );
        // Replacing a scalar by an object sends the object without nulls.
        assert_eq!(
            merge_diff(&json!(1), &json!({"a": null, "b": 2})).unwrap(),
            json!({"b": 2})
        );
    }

    #[test]
    fn the_patch_applied_gives_the_desired_status() {
        let current = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "g": "gone"});
        let desired = json!({"a": 1, "b": {"c": 5}, "e": [2], "f": {"x": true}});
        let mut patched = current.clone();
        json_patch::merge(&mut patched, &merge_diff(&current, &desired).unwrap());
        assert_eq!(patched, desired);
    }

    #[test]
    fn a_non_object_status_is_rejected() {
        assert!(matches!(
            status_patch(&Value::Null, &json!([1]), Some(1)),
            Err(StatusError::NotAnObject)
        ));
    }
}
