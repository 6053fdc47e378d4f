//! The schema of `retryPolicy` (docs/lifecycle.md "Retry policies"): what the API server refuses
//! by itself, on every level that has one.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{DaemonJob, JobFlow, ManagedJob, RetryPolicy};
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn spec_schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("json")["properties"]["spec"].clone()
}

fn at<'a>(node: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(node, |node, step| {
        let next = if *step == "[]" {
            &node["items"]
        } else {
            &node["properties"][*step]
        };
        assert!(!next.is_null(), "no schema at {path:?} ({step})");
        next
    })
}

/// A number of the schema (bounds are written as floats, `1.0`).
fn number(node: &Value) -> f64 {
    node.as_f64()
        .unwrap_or_else(|| panic!("not a number: {node}"))
}

fn assert_retry_policy(node: &Value) {
    assert_eq!(number(&at(node, &["limit"])["minimum"]), 0.0);
    assert_eq!(number(&at(node, &["limit"])["maximum"]), 100.0);
    for list in ["onExitCodes", "ignoreExitCodes"] {
        let codes = at(node, &[list]);
        assert_eq!(codes["x-kubernetes-list-type"], "set", "{list}: {codes}");
        assert_eq!(number(&codes["maxItems"]), 255.0, "{list}");
        assert_eq!(
            number(&codes["items"]["minimum"]),
            1.0,
            "{list}: 0 is success"
        );
        assert_eq!(number(&codes["items"]["maximum"]), 255.0, "{list}");
    }
    let conditions = at(node, &["onPodConditions"]);
    assert_eq!(number(&conditions["maxItems"]), 20.0);
    let rule = at(conditions, &["[]"]);
    assert_eq!(rule["required"], json!(["type"]));
    assert_eq!(
        at(rule, &["action"])["enum"],
        json!(["Ignore", "Count", "FailJob"])
    );
    assert_eq!(
        at(rule, &["status"])["enum"],
        json!(["True", "False", "Unknown"])
    );
    assert!(at(rule, &["type"])["pattern"].is_string());
}

#[test]
fn every_level_has_the_same_bounded_retry_policy() {
    let mj = spec_schema::<ManagedJob>();
    assert_retry_policy(at(&mj, &["retryPolicy"]));
    assert_retry_policy(at(&mj, &["groups", "[]", "retryPolicy"]));
    assert_retry_policy(at(&mj, &["groups", "[]", "jobs", "[]", "retryPolicy"]));
    let jf = spec_schema::<JobFlow>();
    assert_retry_policy(at(&jf, &["retryPolicy"]));
    assert_retry_policy(at(&jf, &["flows", "[]", "retryPolicy"]));
    assert_retry_policy(at(&spec_schema::<DaemonJob>(), &["retryPolicy"]));
}

#[test]
fn defaults_are_omitted_and_the_written_shape_round_trips() {
    let written = json!({
        "limit": 2,
        "onExitCodes": [1],
        "ignoreExitCodes": [42],
        "onPodConditions": [{"type": "DisruptionTarget"}, {"type": "x.io/Stuck", "status": "False", "action": "FailJob"}],
    });
    let policy: RetryPolicy = serde_json::from_value(written.clone()).unwrap();
    assert!(policy.has_rules() && policy.sets_rules());
    assert_eq!(serde_json::to_value(&policy).unwrap(), written);
    let empty: RetryPolicy = serde_json::from_value(json!({"onExitCodes": []})).unwrap();
    assert!(empty.sets_rules() && !empty.has_rules());
}
