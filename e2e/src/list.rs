//! Listing what a test needs to look at in its namespace.

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// The Jobs of `namespace`, sorted by name.
pub async fn list_jobs(client: &Client, namespace: &str) -> Result<Vec<Job>> {
    let mut jobs = Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing Jobs in {namespace}"))?
        .items;
    jobs.sort_by_key(ResourceExt::name_any);
    Ok(jobs)
}

/// The Pods of `namespace`, sorted by name.
pub async fn list_pods(client: &Client, namespace: &str) -> Result<Vec<Pod>> {
    list_pods_selected(client, namespace, "").await
}

/// The Pods of `namespace` matching a label selector (e.g. `batch.kubernetes.io/job-name=x`).
pub async fn list_pods_selected(
    client: &Client,
    namespace: &str,
    label_selector: &str,
) -> Result<Vec<Pod>> {
    let mut pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(label_selector))
        .await
        .with_context(|| format!("listing Pods in {namespace} ({label_selector})"))?
        .items;
    pods.sort_by_key(ResourceExt::name_any);
    Ok(pods)
}

/// The core/v1 Events of `namespace`, oldest first.
pub async fn list_events(client: &Client, namespace: &str) -> Result<Vec<Event>> {
    let mut events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing Events in {namespace}"))?
        .items;
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    Ok(events)
}
