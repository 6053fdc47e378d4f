//! DaemonJob node eligibility (SPEC §4) and pinning a pod to its node.
//!
//! A node gets a Job when it is not excluded, Ready, schedulable, matches the pod's
//! `nodeSelector` and required node affinity, and every `NoSchedule`/`NoExecute` taint on it is
//! tolerated. Matching follows the Kubernetes scheduler's rules (component-helpers
//! `nodeaffinity` and `v1helper.TolerationsTolerateTaint`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    Taint, Toleration,
};
use thiserror::Error;

/// The node type the DaemonJob compile step reads (the manager's Node cache keeps only the
/// fields eligibility needs: name, labels, `spec.unschedulable`, taints, the Ready condition).
pub type NodeView = Node;

/// The only field `matchFields` may name.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// Why a node gets no Job. The message is meant for status and Events.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Ineligible {
    /// Named in `excludeNodeList` or `excludeNodes`.
    #[error("node is excluded")]
    Excluded,
    /// The `Ready` condition is not `True`.
    #[error("node is not Ready")]
    NotReady,
    /// `spec.unschedulable` is set (cordoned).
    #[error("node is unschedulable")]
    Unschedulable,
    /// A `nodeSelector` entry does not match the node's labels.
    #[error("node does not match nodeSelector {key}={value}")]
    NodeSelector {
        /// The selector key.
        key: String,
        /// The required value.
        value: String,
    },
    /// No term of the required node affinity matches.
    #[error("node does not match the required node affinity")]
    NodeAffinity,
    /// A `NoSchedule`/`NoExecute` taint is not tolerated.
    #[error("node taint {key}={value}:{effect} is not tolerated")]
    Taint {
        /// The taint key.
        key: String,
        /// The taint value (may be empty).
        value: String,
        /// `NoSchedule` or `NoExecute`.
        effect: String,
    },
}

impl Ineligible {
    /// A short static category (status reason, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Excluded => "Excluded",
            Self::NotReady => "NodeNotReady",
            Self::Unschedulable => "NodeUnschedulable",
            Self::NodeSelector { .. } => "NodeSelectorMismatch",
            Self::NodeAffinity => "NodeAffinityMismatch",
            Self::Taint { .. } => "TaintNotTolerated",
        }
    }
}

/// Node names excluded by the user: `excludeNodeList` (comma-separated, as in the seed) and
/// `excludeNodes` (a list). Whitespace around names is trimmed; empty entries are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclusions {
    names: BTreeSet<String>,
}

impl Exclusions {
    /// Combines both spellings.
    pub fn new(exclude_node_list: Option<&str>, exclude_nodes: &[String]) -> Self {
        let listed = exclude_node_list.into_iter().flat_map(|s| s.split(','));
        let names = listed
            .chain(exclude_nodes.iter().map(String::as_str))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Self { names }
    }

    /// `true` when the node is excluded.
    pub fn contains(&self, node: &str) -> bool {
        self.names.contains(node)
    }

    /// The excluded names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// Whether a DaemonJob pod with `pod_spec` should get a Job on `node`.
pub fn node_eligibility(
    node: &Node,
    pod_spec: &PodSpec,
    exclusions: &Exclusions,
) -> Result<(), Ineligible> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if exclusions.contains(name) {
        return Err(Ineligible::Excluded);
    }
    if !is_ready(node) {
        return Err(Ineligible::NotReady);
    }
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return Err(Ineligible::Unschedulable);
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    for (key, value) in pod_spec.node_selector.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Err(Ineligible::NodeSelector {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    if let Some(required) = required_node_selector(pod_spec.affinity.as_ref())
        && !node_selector_matches(required, name, labels)
    {
        return Err(Ineligible::NodeAffinity);
    }
    let tolerations = pod_spec.tolerations.as_deref().unwrap_or_default();
    for taint in spec.and_then(|s| s.taints.as_deref()).unwrap_or_default() {
        let blocking = matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute");
        if blocking && !tolerations.iter().any(|t| tolerates(t, taint)) {
            return Err(Ineligible::Taint {
                key: taint.key.clone(),
                value: taint.value.clone().unwrap_or_default(),
                effect: taint.effect.clone(),
            });
        }
    }
    Ok(())
}

/// `true` when the node's `Ready` condition is `True`.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn required_node_selector(affinity: Option<&Affinity>) -> Option<&NodeSelector> {
    affinity?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// Terms are ORed; an empty term list or an empty term matches nothing (as in Kubernetes).
pub fn node_selector_matches(
    selector: &NodeSelector,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node_name, labels))
}

fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == NODE_NAME_FIELD
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(node_name))
        })
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    match req.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            // Exactly one integer value; a label that is not an integer never matches.
            let (Some(bound), [_]) = (values.first().and_then(|v| v.parse::<i64>().ok()), values)
            else {
                return false;
            };
            match value.and_then(|v| v.parse::<i64>().ok()) {
                Some(v) if op == "Gt" => v > bound,
                Some(v) => v < bound,
                None => false,
            }
        }
        _ => false,
    }
}

/// Kubernetes `Toleration.ToleratesTaint`: effect empty matches all effects; an empty key with
/// `Exists` matches every taint; `Exists` ignores the value; `Equal` (the default) compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Pins a pod to one node the way the DaemonSet controller does: a required node affinity
/// `matchFields` requirement `metadata.name In [node]`, ANDed into every existing term (so the
/// user's own affinity still applies), or a single new term when there is none. Idempotent.
pub fn pin_to_node(pod_spec: &mut PodSpec, node: &str) {
    // A `nodeName` in the template would bypass the scheduler and the pin: the per-node pin
    // wins, so the pod runs on its own node (and never on an excluded one).
    pod_spec.node_name = None;
    let pin = NodeSelectorRequirement {
        key: NODE_NAME_FIELD.to_owned(),
        operator: "In".to_owned(),
        values: Some(vec![node.to_owned()]),
    };
    let selector = pod_spec
        .affinity
        .get_or_insert_with(Affinity::default)
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if selector.node_selector_terms.is_empty() {
        selector.node_selector_terms.push(NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![pin]),
        });
        return;
    }
    for term in &mut selector.node_selector_terms {
        let fields = term.match_fields.get_or_insert_with(Vec::new);
        if !fields.contains(&pin) {
            fields.push(pin.clone());
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], ready: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| (*v).to_owned()).collect())
            },
        }
    }

    fn with_affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..NodeAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        }
    }

    fn exprs(reqs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(reqs),
            match_fields: None,
        }
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_owned),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(str::to_owned),
            operator: op.map(str::to_owned),
            value: value.map(str::to_owned),
            effect: effect.map(str::to_owned),
            toleration_seconds: None,
        }
    }

    #[test]
    fn exclusions_parse_both_spellings() {
        let ex = Exclusions::new(Some(" a, b ,,c "), &["d".into(), " ".into()]);
        assert_eq!(ex.names().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let n = node("b", &[], "True");
        assert_eq!(
            node_eligibility(&n, &PodSpec::default(), &ex),
            Err(Ineligible::Excluded)
        );
        assert!(node_eligibility(&node("e", &[], "True"), &PodSpec::default(), &ex).is_ok());
    }

    #[test]
    fn readiness_and_cordon() {
        let none = Exclusions::default();
        let pod = PodSpec::default();
        assert_eq!(
            node_eligibility(&node("n", &[], "False"), &pod, &none),
            Err(Ineligible::NotReady)
        );
        assert_eq!(
            node_eligibility(&Node::default(), &pod, &none),
            Err(Ineligible::NotReady)
        );
        let mut cordoned = node("n", &[], "True");
        cordoned.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..NodeSpec::default()
        });
        let err = node_eligibility(&cordoned, &pod, &none).unwrap_err();
        assert_eq!(err.reason(), "NodeUnschedulable");
    }

    #[test]
    fn node_selector() {
        let pod = PodSpec {
            node_selector: Some([("disk".to_owned(), "ssd".to_owned())].into()),
            ..PodSpec::default()
        };
        let none = Exclusions::default();
        assert!(node_eligibility(&node("n", &[("disk", "ssd")], "True"), &pod, &none).is_ok());
        let err =
            node_eligibility(&node("n", &[("disk", "hdd")], "True"), &pod, &none).unwrap_err();
        assert_eq!(err.to_string(), "node does not match nodeSelector disk=ssd");
    }

    #[test]
    fn affinity_operators() {
        let labels: BTreeMap<String, String> = [("zone", "a"), ("cpus", "8")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let m = |r: NodeSelectorRequirement| {
            node_selector_matches(
                &NodeSelector {
                    node_selector_terms: vec![exprs(vec![r])],
                },
                "n1",
                &labels,
            )
        };
        assert!(m(req("zone", "In", &["a", "b"])));
        assert!(!m(req("zone", "In", &["b"])));
        assert!(m(req("zone", "NotIn", &["b"])));
        assert!(m(req("missing", "NotIn", &["b"])));
        assert!(m(req("zone", "Exists", &[])));
        assert!(!m(req("zone", "DoesNotExist", &[])));
        assert!(m(req("missing", "DoesNotExist", &[])));
        assert!(m(req("cpus", "Gt", &["4"])));
        assert!(!m(req("cpus", "Gt", &["8"])));
        assert!(m(req("cpus", "Lt", &["16"])));
        assert!(!m(req("zone", "Gt", &["1"])));
        assert!(!m(req("cpus", "Gt", &["x"])));
        assert!(!m(req("cpus", "Gt", &["1", "2"])));
        assert!(!m(req("zone", "Bogus", &["a"])));
    }

    #[test]
    fn affinity_terms_are_ored_and_fields_match_the_name() {
        let none = Exclusions::default();
        let n = node("n1", &[("zone", "a")], "True");
        let pod = with_affinity(vec![
            exprs(vec![req("zone", "In", &["b"])]),
            NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
            },
        ]);
        assert!(node_eligibility(&n, &pod, &none).is_ok());
        let pod = with_affinity(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("zone", "In", &["a"])]),
            match_fields: Some(vec![req("metadata.name", "NotIn", &["n1"])]),
        }]);
        assert_eq!(
            node_eligibility(&n, &pod, &none),
            Err(Ineligible::NodeAffinity)
        );
        // Unsupported field keys and empty terms match nothing.
        let pod = with_affinity(vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.uid", "In", &["n1"])]),
        }]);
        assert_eq!(
            node_eligibility(&n, &pod, &none),
            Err(Ineligible::NodeAffinity)
        );
        let pod = with_affinity(vec![NodeSelectorTerm::default()]);
        assert_eq!(
            node_eligibility(&n, &pod, &none),
            Err(Ineligible::NodeAffinity)
        );
    }

    #[test]
    fn taints_and_tolerations() {
        let t = taint("gpu", Some("true"), "NoSchedule");
        assert!(tolerates(&tol(Some("gpu"), None, Some("true"), None), &t));
        assert!(tolerates(
            &tol(Some("gpu"), Some("Equal"), Some("true"), Some("NoSchedule")),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("gpu"), Some("Equal"), Some("false"), None),
            &t
        ));
        assert!(tolerates(&tol(Some("gpu"), Some("Exists"), None, None), &t));
        assert!(!tolerates(
            &tol(Some("gpu"), Some("Exists"), None, Some("NoExecute")),
            &t
        ));
        assert!(tolerates(&tol(None, Some("Exists"), None, None), &t));
        assert!(!tolerates(&tol(None, Some("Equal"), None, None), &t));
        assert!(!tolerates(
            &tol(Some("other"), Some("Exists"), None, None),
            &t
        ));
        assert!(tolerates(
            &tol(Some("k"), None, None, None),
            &taint("k", None, "NoExecute")
        ));

        let none = Exclusions::default();
        let mut n = node("n", &[], "True");
        n.spec = Some(NodeSpec {
            taints: Some(vec![taint("soft", None, "PreferNoSchedule"), t.clone()]),
            ..NodeSpec::default()
        });
        let err = node_eligibility(&n, &PodSpec::default(), &none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node taint gpu=true:NoSchedule is not tolerated"
        );
        let pod = PodSpec {
            tolerations: Some(vec![tol(Some("gpu"), Some("Exists"), None, None)]),
            ..PodSpec::default()
        };
        assert!(node_eligibility(&n, &pod, &none).is_ok());
    }

    #[test]
    fn pin_to_node_wins_over_a_template_node_name() {
        let mut pod = PodSpec {
            node_name: Some("elsewhere".into()),
            ..Default::default()
        };
        pin_to_node(&mut pod, "n1");
        assert_eq!(pod.node_name, None);
    }

    #[test]
    fn pin_to_node_without_affinity_adds_one_term() {
        let mut pod = PodSpec::default();
        pin_to_node(&mut pod, "n1");
        pin_to_node(&mut pod, "n1");
        let sel = required_node_selector(pod.affinity.as_ref()).expect("set");
        assert_eq!(sel.node_selector_terms.len(), 1);
        assert_eq!(
            sel.node_selector_terms[0]
                .match_fields
                .as_ref()
                .map(Vec::len),
            Some(1)
        );
        assert!(node_selector_matches(sel, "n1", &BTreeMap::new()));
        assert!(!node_selector_matches(sel, "n2", &BTreeMap::new()));
    }

    #[test]
    fn pin_to_node_ands_into_every_existing_term() {
        let mut pod = with_affinity(vec![
            exprs(vec![req("zone", "In", &["a"])]),
            exprs(vec![req("zone", "In", &["b"])]),
        ]);
        pod.affinity
            .as_mut()
            .and_then(|a| a.node_affinity.as_mut())
            .expect("node affinity")
            .preferred_during_scheduling_ignored_during_execution = Some(Vec::new());
        pin_to_node(&mut pod, "n1");
        let sel = required_node_selector(pod.affinity.as_ref()).expect("set");
        assert_eq!(sel.node_selector_terms.len(), 2);
        for term in &sel.node_selector_terms {
            assert_eq!(
                term.match_fields,
                Some(vec![req("metadata.name", "In", &["n1"])])
            );
        }
        let zone_b: BTreeMap<String, String> = [("zone".to_owned(), "b".to_owned())].into();
        assert!(node_selector_matches(sel, "n1", &zone_b));
        assert!(!node_selector_matches(sel, "n2", &zone_b));
        assert!(!node_selector_matches(sel, "n1", &BTreeMap::new()));
        // Other affinity parts are untouched.
        assert!(
            pod.affinity
                .and_then(|a| a.node_affinity)
                .and_then(|n| n.preferred_during_scheduling_ignored_during_execution)
                .is_some()
        );
    }
}
