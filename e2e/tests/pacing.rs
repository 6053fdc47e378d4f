//! Status pacing on the real plane (docs/manager.md, "The run mechanism", step 5): a change of
//! step detail only is written at most once per `--status-interval-ms` (1 s) per run object, and
//! a large object's at most once per second per 256 KiB it stores; what users and tools act on
//! (phase, conditions, times) is never held. Watched as any client sees it: every stored status
//! version of two fan-outs whose Jobs finish spread over several seconds.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures::TryStreamExt;
use jobsmith_api::{ManagedJob, Phase};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use support::{RUN_TIMEOUT, World};

/// The manager's default `--status-interval-ms`.
const INTERVAL: Duration = Duration::from_secs(1);

/// The stored bytes per second at which the manager spaces a large object's detail writes.
const BYTES_PER_SECOND: f64 = 256.0 * 1024.0;

/// A watch delivers each version a little after it was stored; two deliveries may come closer
/// together than the writes were by that jitter.
const JITTER_TOLERANCE: f64 = 0.9;

/// A ManagedJob of one group of `jobs` parallel jobs whose pods run `k * step_ms` ms (so the
/// Jobs finish spread over time), each Job carrying `ballast` bytes of annotation, and the
/// object itself `object_ballast` bytes of annotation: what makes an object large is its spec.
fn fan_out(
    name: &str,
    jobs: usize,
    step_ms: usize,
    ballast: usize,
    object_ballast: usize,
) -> String {
    let job_ballast = "j".repeat(ballast);
    let lines: String = (0..jobs)
        .map(|k| {
            format!(
                "    - {{name: j{k}, parallel: true, image: example.invalid/fake:1, params: {{annotations: {{jobsmith.dev/e2e-duration: \"{}\", e2e.jobsmith.dev/ballast: \"{job_ballast}\"}}}}}}\n",
                k * step_ms
            )
        })
        .collect();
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata:\n  name: {name}\n  annotations: {{e2e.jobsmith.dev/ballast: \"{}\"}}\nspec:\n  retries: 0\n  groups:\n  - name: g\n    jobs:\n{lines}",
        "o".repeat(object_ballast)
    )
}

/// The part of a status written at once: two versions equal here differ in step detail only.
fn at_once_part(mj: &ManagedJob) -> String {
    let Some(status) = mj.status.as_ref() else {
        return String::new();
    };
    let run = &status.run;
    let conditions: Vec<_> = run
        .conditions
        .iter()
        .map(|c| (&c.type_, &c.status, &c.reason))
        .collect();
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        run.phase, run.observed_generation, run.start_time, run.completion_time, conditions
    )
}

/// Every status version of `name` until it is final, with the moment the watch delivered it.
async fn status_versions(api: Api<ManagedJob>, name: String) -> Result<Vec<(Instant, ManagedJob)>> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = Box::pin(watcher(api, config).applied_objects());
    let mut seen: Vec<(Instant, ManagedJob)> = Vec::new();
    let until = Instant::now() + RUN_TIMEOUT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, stream.try_next())
            .await
            .with_context(|| format!("{name} did not finish within {RUN_TIMEOUT:?}"))??
            .with_context(|| format!("the watch of {name} ended"))?;
        let changed = seen.last().is_none_or(|(_, last)| {
            serde_json::to_value(&last.status).ok() != serde_json::to_value(&next.status).ok()
        });
        let finished = next
            .status
            .as_ref()
            .and_then(|s| s.run.phase)
            .is_some_and(|p| matches!(p, Phase::Succeeded | Phase::Failed));
        if changed {
            seen.push((Instant::now(), next));
        }
        if finished {
            return Ok(seen);
        }
    }
}

/// The gaps between consecutive status versions that changed step detail only.
fn detail_only_gaps(versions: &[(Instant, ManagedJob)]) -> Vec<Duration> {
    versions
        .windows(2)
        .filter(|pair| at_once_part(&pair[0].1) == at_once_part(&pair[1].1))
        .map(|pair| pair[1].0.duration_since(pair[0].0))
        .collect()
}

fn check_spacing(name: &str, versions: &[(Instant, ManagedJob)], least: Duration) -> Result<()> {
    let gaps = detail_only_gaps(versions);
    // A fan-out whose Jobs finish over seconds is reported in several detail-only writes: with
    // fewer, this test would prove nothing.
    ensure!(
        gaps.len() >= 2,
        "{name}: {} detail-only status versions in {} versions; the Jobs should finish spread over seconds",
        gaps.len(),
        versions.len()
    );
    let floor = least.mul_f64(JITTER_TOLERANCE);
    let closest = gaps.iter().min().copied().unwrap_or_default();
    ensure!(
        closest >= floor,
        "{name}: two detail-only status writes {closest:?} apart, expected at least {least:?} (gaps: {gaps:?})"
    );
    let last = &versions.last().context("no version")?.1;
    let progress = last.status.as_ref().and_then(|s| s.run.progress.clone());
    ensure!(
        last.status.as_ref().and_then(|s| s.run.phase) == Some(Phase::Succeeded),
        "{name} ended {:?} ({progress:?})",
        last.status.as_ref().and_then(|s| s.run.phase)
    );
    println!(
        "{name}: {} status versions, {} detail-only, closest {closest:?} (at least {least:?})",
        versions.len(),
        gaps.len()
    );
    Ok(())
}

#[tokio::test]
async fn step_detail_is_written_once_per_interval_and_a_large_object_less_often() -> Result<()> {
    let w = World::new("pacing").await?;
    let api = w.api::<ManagedJob>();
    // Small: 20 Jobs finishing over 6 s. Large: 60 Jobs finishing over 12 s, an object of
    // about half a megabyte (200 KB of its own annotation, 5 KB per job in its spec).
    let small = tokio::spawn(status_versions(api.clone(), "small".into()));
    let large = tokio::spawn(status_versions(api.clone(), "large".into()));
    w.apply(&fan_out("small", 20, 300, 0, 0)).await?;
    w.apply(&fan_out("large", 60, 200, 5_000, 200_000)).await?;

    let bytes = serde_json::to_vec(&api.get("large").await?)?.len();
    let by_size = Duration::from_secs_f64(bytes as f64 / BYTES_PER_SECOND);
    ensure!(
        by_size >= INTERVAL.mul_f64(1.5),
        "the large object is {bytes} bytes: too small to be paced by its size"
    );

    let small = small.await??;
    let large = large.await??;
    check_spacing("small", &small, INTERVAL)?;
    check_spacing("large", &large, by_size)?;
    Ok(())
}
