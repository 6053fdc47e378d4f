//! When a watcher of the plane first saw each step's Job, and first saw it final: the step-to-step
//! latency of the benchmarks, measured outside the manager.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::job_done;

/// First sightings per `(workflow, step)`.
#[derive(Default)]
pub struct Seen {
    pub created: HashMap<(usize, usize), Instant>,
    pub finished: HashMap<(usize, usize), Instant>,
}

/// Watches the Jobs of `ns` until `total` Jobs that `step_of` names `(workflow, step)` finished.
pub fn watch_steps(
    client: &Client,
    ns: &str,
    step_of: impl Fn(&str) -> Option<(usize, usize)> + Send + 'static,
    total: usize,
) -> tokio::task::JoinHandle<Result<Seen>> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut stream = watcher(jobs, watcher::Config::default())
            .applied_objects()
            .boxed();
        while seen.finished.len() < total {
            let Some(job) = stream.try_next().await? else {
                bail!("the Job watch ended");
            };
            let now = Instant::now();
            let Some(key) = step_of(&job.name_any()) else {
                continue;
            };
            seen.created.entry(key).or_insert(now);
            if job_done(&job) {
                seen.finished.entry(key).or_insert(now);
            }
        }
        Ok(seen)
    })
}

/// Step-to-step latencies (ms, sorted) of `runs` sequential workflows of `steps` steps: from a
/// step's Job seen final to the next step's Job seen created.
pub fn edges(seen: &Seen, runs: usize, steps: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (0..runs)
        .flat_map(|w| (1..steps).map(move |s| (w, s)))
        .filter_map(|(w, s)| {
            let done = seen.finished.get(&(w, s - 1))?;
            let next = seen.created.get(&(w, s))?;
            Some(next.saturating_duration_since(*done).as_secs_f64() * 1000.0)
        })
        .collect();
    edges.sort_by(f64::total_cmp);
    edges
}

/// The p-th percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
