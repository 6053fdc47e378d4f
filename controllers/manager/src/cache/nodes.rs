//! The Node cache of the DaemonJob controller (SPEC §4, §7): one cluster-wide watch of Nodes
//! whose objects keep only what node eligibility reads (`jobsmith_engine::build::eligibility`): the
//! name, labels, `spec.unschedulable`, `spec.taints` and the `Ready` condition's type and
//! status. Images, addresses, capacity, heartbeats and every other condition are dropped before
//! an object enters the cache, so a Node's frequent status updates leave its cached view equal
//! (the DaemonJob trigger then ignores them, see `controllers/daemonjob.rs`).
//!
//! Started once by `main`, and only when the DaemonJob controller is enabled.

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use kube::{Api, api::ObjectMeta, runtime::watcher};

use crate::{cache::SharedCache, shutdown::Shutdown};

/// Starts the shared Node cache (Nodes are cluster-scoped: one watch whatever `--namespace` says).
pub fn spawn_cache(client: &kube::Client, shutdown: Shutdown) -> SharedCache<Node> {
    SharedCache::spawn(
        "nodes",
        vec![(None, Api::all(client.clone()))],
        watcher::Config::default().any_semantic(),
        prune,
        shutdown,
    )
}

/// Keeps only what eligibility reads (see the module doc). The watcher has already taken the
/// `resourceVersion` it resumes from, so dropping it here is safe.
pub fn prune(node: &mut Node) {
    let metadata = std::mem::take(&mut node.metadata);
    node.metadata = ObjectMeta {
        name: metadata.name,
        labels: metadata.labels,
        ..ObjectMeta::default()
    };
    node.spec = node.spec.take().map(|spec| NodeSpec {
        unschedulable: spec.unschedulable,
        taints: spec.taints.map(|taints| {
            taints
                .into_iter()
                .map(|mut t| {
                    t.time_added = None;
                    t
                })
                .collect()
        }),
        ..NodeSpec::default()
    });
    let ready = node
        .status
        .take()
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| NodeCondition {
            type_: c.type_,
            status: c.status,
            ..NodeCondition::default()
        });
    node.status = Some(NodeStatus {
        conditions: ready.map(|c| vec![c]),
        ..NodeStatus::default()
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_only_what_eligibility_reads() {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "n1", "uid": "u", "resourceVersion": "42",
                "labels": {"zone": "a"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "managedFields": [{"manager": "kubelet"}]
            },
            "spec": {
                "unschedulable": true, "podCIDR": "10.0.0.0/24",
                "taints": [{"key": "k", "value": "v", "effect": "NoSchedule", "timeAdded": "2024-01-01T00:00:00Z"}]
            },
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "lastHeartbeatTime": "2024-01-01T00:00:00Z"}
                ],
                "images": [{"names": ["big:1"], "sizeBytes": 1}],
                "capacity": {"cpu": "4"}
            }
        }))
        .unwrap();
        prune(&mut node);
        let value = serde_json::to_value(&node).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"zone": "a"}},
                "spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
        // A heartbeat-only update prunes to the same view.
        let mut again = node.clone();
        prune(&mut again);
        assert_eq!(again, node);
    }
}
