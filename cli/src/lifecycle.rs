//! `retry` and `resubmit` (docs/plugin.md, docs/lifecycle.md "Retry in place"), pure: the patch
//! that asks the manager for a retry in place, the check of `--step` names against the run's
//! plan, and the new object a resubmit creates.

use jobsmith_api::labels::{RETRY_REQUESTED_AT, RETRY_STEPS, is_gitops_tracking_key};
use jobsmith_engine::compile::Plan;
use serde_json::{Map, Value, json};

/// The merge patch of a retry request: the annotation with the time `now` (RFC 3339), and the
/// selected steps (removed when none are given, so an earlier selection does not linger).
pub fn retry_patch(now: &str, steps: &[String]) -> Value {
    let selection = if steps.is_empty() {
        Value::Null
    } else {
        Value::String(steps.join(","))
    };
    json!({
        "metadata": {
            "annotations": {
                RETRY_REQUESTED_AT: now,
                RETRY_STEPS: selection,
            }
        }
    })
}

/// The `--step` names that are not steps of the plan (empty: all are).
pub fn unknown_steps<'a>(plan: &Plan, steps: &'a [String]) -> Vec<&'a str> {
    steps
        .iter()
        .map(String::as_str)
        .filter(|s| plan.step_id(s).is_none())
        .collect()
}

/// The object a resubmit creates from a run as read: the same apiVersion, kind, spec, labels
/// and annotations, `generateName: <name>-`, and nothing else (no status, no GitOps tracking
/// metadata, no retry request, no server-set metadata).
pub fn resubmitted(raw: &Value) -> Value {
    let metadata = raw.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kept = |field: &str| -> Map<String, Value> {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, _)| {
                !is_gitops_tracking_key(k)
                    && k.as_str() != RETRY_REQUESTED_AT
                    && k.as_str() != RETRY_STEPS
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut new_metadata = Map::new();
    new_metadata.insert("generateName".into(), Value::String(format!("{name}-")));
    for field in ["labels", "annotations"] {
        let values = kept(field);
        if !values.is_empty() {
            new_metadata.insert(field.into(), Value::Object(values));
        }
    }
    json!({
        "apiVersion": raw.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": raw.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": new_metadata,
        "spec": raw.get("spec").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_sets_the_time_and_replaces_the_selection() {
        let all = retry_patch("2026-12-02T10:00:00Z", &[]);
        assert_eq!(
            all["metadata"]["annotations"][RETRY_REQUESTED_AT],
            "2026-12-02T10:00:00Z"
        );
        assert_eq!(all["metadata"]["annotations"][RETRY_STEPS], Value::Null);
        let some = retry_patch("t", &["g/a".into(), "g/b".into()]);
        assert_eq!(some["metadata"]["annotations"][RETRY_STEPS], "g/a,g/b");
    }

    #[test]
    fn unknown_steps_are_named() {
        let mj: jobsmith_api::ManagedJob = serde_json::from_value(json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
            "metadata": {"name": "wf"},
            "spec": {"groups": [{"name": "g", "jobs": [{"name": "a", "image": "x"}]}]}
        }))
        .unwrap();
        let plan = jobsmith_engine::compile::managedjob::plan(&mj).unwrap();
        let steps = vec!["g/a".to_owned(), "g/nope".to_owned(), "a".to_owned()];
        assert_eq!(unknown_steps(&plan, &steps), vec!["g/nope", "a"]);
    }

    #[test]
    fn a_resubmit_keeps_the_spec_and_user_metadata_only() {
        let raw = json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
            "metadata": {
                "name": "wf", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{}], "finalizers": ["x"],
                "ownerReferences": [{"name": "o"}],
                "labels": {"team": "a", "app.kubernetes.io/instance": "argo"},
                "annotations": {
                    "note": "n",
                    RETRY_REQUESTED_AT: "2026-01-01T00:00:00Z",
                    RETRY_STEPS: "g/a",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "argocd.argoproj.io/tracking-id": "t"
                }
            },
            "spec": {"groups": []},
            "status": {"phase": "Failed"}
        });
        assert_eq!(
            resubmitted(&raw),
            json!({
                "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
                "metadata": {
                    "generateName": "wf-",
                    "labels": {"team": "a"},
                    "annotations": {"note": "n"}
                },
                "spec": {"groups": []}
            })
        );
    }
}
