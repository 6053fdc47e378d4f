//! The end-to-end benchmark (`make bench-e2e`): 100 concurrent ManagedJobs of 10 sequential
//! steps on the local plane, pods completing at once. It prints figures as `name: value unit` and
//! never fails on time; it fails only when the run itself goes wrong.
//!
//! - `edge_latency_p50_ms` / `edge_latency_p99_ms`: from a step's Job reaching its final condition
//!   to the next step's Job being created, both as seen by this one Job watcher;
//! - `api_writes_per_job`: the manager's `jobsmith_api_writes_total` over the Jobs of the run;
//! - `manager_peak_rss_mib`: the manager's peak resident set (`VmHWM`).
//! - `manager_cpu_ms_per_job`: the manager's CPU time (user + system) from its caches' sync to
//!   the end, over the Jobs.
//!
//! A second run measures fan-outs: `BENCH_FANOUT_WORKFLOWS` (5) ManagedJobs of one group of
//! `BENCH_FANOUT_WIDTH` (100) parallel jobs, `fanout_wall_s` and `fanout_api_writes_per_job`
//! (with and without Events), its own namespace and manager.
//!
//! Sizes can be lowered for a quick look: `BENCH_WORKFLOWS`, `BENCH_STEPS`, and the two above.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{ManagedJob, Phase};
use jobsmith_e2e::{
    TestNamespace, apply_yaml, client, install_crds, proc_status_kib, process_cpu_ms,
};
use kube::api::Api;
use support::step_watch::{edges, percentile, watch_steps};
use support::{family_sum, scrape, start_manager_with};

const WRITES: &str = "jobsmith_api_writes_total";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn workflow(index: usize, steps: usize) -> String {
    let jobs: String = (0..steps)
        .map(|k| {
            format!(
                "    - {{name: s{k}, image: example.invalid/fake:1, params: {{annotations: {{jobsmith.dev/e2e-duration: \"0\"}}}}}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: {}}}\nspec:\n  retries: 0\n  groups:\n  - name: g\n    jobs:\n{jobs}",
        workflow_name(index)
    )
}

/// A ManagedJob of one group of `width` parallel jobs.
fn fan_out(index: usize, width: usize) -> String {
    let jobs: String = (0..width)
        .map(|k| {
            format!(
                "    - {{name: j{k}, parallel: true, image: example.invalid/fake:1, params: {{annotations: {{jobsmith.dev/e2e-duration: \"0\"}}}}}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: fan-{index:03}}}\nspec:\n  retries: 0\n  groups:\n  - name: g\n    jobs:\n{jobs}"
    )
}

/// `(workflow index, job)` of a Job named `fan-NNN-g-jK`.
fn parse_fan_out_job(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("fan-")?;
    let (index, job) = rest.split_once("-g-j")?;
    Some((index.parse().ok()?, job.parse().ok()?))
}

fn workflow_name(index: usize) -> String {
    format!("bench-{index:03}")
}

/// `(workflow index, step)` of a Job named `bench-NNN-g-sK`.
fn parse_job_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("bench-")?;
    let (index, step) = rest.split_once("-g-s")?;
    Some((index.parse().ok()?, step.parse().ok()?))
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench-e2e`"]
async fn bench_sequential_workflows() -> Result<()> {
    let workflows = env_usize("BENCH_WORKFLOWS", 100);
    let steps = env_usize("BENCH_STEPS", 10);
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "bench").await?;
    let mut started = start_manager_with(ns.name(), "bench", &[])?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;
    let cpu_before = process_cpu_ms(started.manager.pid())?;

    // One watcher of the namespace's Jobs, started before anything is created.
    let total = workflows * steps;
    let watch = watch_steps(&client, ns.name(), parse_job_name, total);

    let start = Instant::now();
    for index in 0..workflows {
        apply_yaml(&client, Some(ns.name()), &workflow(index, steps)).await?;
    }
    let seen = tokio::time::timeout(Duration::from_secs(900), watch)
        .await
        .context("the workflows did not finish within 15 minutes")???;
    let wall = start.elapsed();

    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    let names: Vec<String> = (0..workflows).map(workflow_name).collect();
    all_succeeded(&mjs, &names).await?;

    let edges = edges(&seen, workflows, steps);
    ensure!(
        edges.len() == workflows * (steps - 1),
        "measured {} edges of {}",
        edges.len(),
        workflows * (steps - 1)
    );

    let metrics = scrape(started.metrics_port).await?;
    let writes = family_sum(&metrics, WRITES);
    ensure!(writes > 0.0, "no {WRITES} in /metrics:\n{metrics}");
    let cpu = process_cpu_ms(started.manager.pid())? - cpu_before;
    let rss = proc_status_kib(started.manager.pid(), "VmHWM:")? / 1024.0;

    println!("bench_workflows: {workflows} count");
    println!("bench_steps_per_workflow: {steps} count");
    println!("bench_wall_s: {:.1} s", wall.as_secs_f64());
    println!("edge_latency_p50_ms: {:.1} ms", percentile(&edges, 50.0));
    println!("edge_latency_p99_ms: {:.1} ms", percentile(&edges, 99.0));
    println!("edge_latency_max_ms: {:.1} ms", percentile(&edges, 100.0));
    let events = family_sum(
        &metrics,
        &format!("{WRITES}{{verb=\"publish\",resource=\"events\"}}"),
    );
    println!("api_writes_per_job: {:.2} writes", writes / total as f64);
    println!(
        "api_writes_per_job_without_events: {:.2} writes",
        (writes - events) / total as f64
    );
    println!("manager_peak_rss_mib: {rss:.1} MiB");
    println!("manager_cpu_ms_per_job: {:.2} ms", cpu / total as f64);
    println!(
        "events_dropped: {} count",
        family_sum(&metrics, "jobsmith_events_dropped_total")
    );
    for line in metrics.lines().filter(|l| l.starts_with(WRITES)) {
        println!("# {line}");
    }
    started.manager.stop()?;
    Ok(())
}

/// Waits until every named ManagedJob is `Succeeded` (the status follows the last Job closely).
async fn all_succeeded(mjs: &Api<ManagedJob>, names: &[String]) -> Result<()> {
    let mut not_succeeded = Vec::new();
    for name in names {
        let phase = jobsmith_e2e::eventually(
            &format!("{name} Succeeded"),
            Duration::from_secs(60),
            || async {
                let mj = mjs.get(name).await?;
                let phase = mj.status.as_ref().and_then(|s| s.run.phase);
                Ok((phase == Some(Phase::Succeeded)).then_some(phase))
            },
        )
        .await;
        if phase.is_err() {
            not_succeeded.push(name.clone());
        }
    }
    ensure!(not_succeeded.is_empty(), "not Succeeded: {not_succeeded:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench-e2e`"]
async fn bench_fan_out_workflows() -> Result<()> {
    let workflows = env_usize("BENCH_FANOUT_WORKFLOWS", 5);
    let width = env_usize("BENCH_FANOUT_WIDTH", 100);
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "bench-fan").await?;
    let mut started = start_manager_with(ns.name(), "bench-fan", &[])?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;
    let total = workflows * width;
    let watch = watch_steps(&client, ns.name(), parse_fan_out_job, total);
    let start = Instant::now();
    for index in 0..workflows {
        apply_yaml(&client, Some(ns.name()), &fan_out(index, width)).await?;
    }
    tokio::time::timeout(Duration::from_secs(900), watch)
        .await
        .context("the fan-outs did not finish within 15 minutes")???;
    let wall = start.elapsed();
    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    let names: Vec<String> = (0..workflows).map(|i| format!("fan-{i:03}")).collect();
    all_succeeded(&mjs, &names).await?;

    let metrics = scrape(started.metrics_port).await?;
    let writes = family_sum(&metrics, WRITES);
    ensure!(writes > 0.0, "no {WRITES} in /metrics:\n{metrics}");
    let events = family_sum(
        &metrics,
        &format!("{WRITES}{{verb=\"publish\",resource=\"events\"}}"),
    );
    println!("fanout_workflows: {workflows} count");
    println!("fanout_width: {width} count");
    println!("fanout_wall_s: {:.1} s", wall.as_secs_f64());
    println!(
        "fanout_api_writes_per_job: {:.2} writes",
        writes / total as f64
    );
    println!(
        "fanout_api_writes_per_job_without_events: {:.2} writes",
        (writes - events) / total as f64
    );
    for line in metrics.lines().filter(|l| l.starts_with(WRITES)) {
        println!("# fanout {line}");
    }
    started.manager.stop()?;
    Ok(())
}

#[test]
fn job_names_parse_back_to_workflow_and_step() {
    assert_eq!(parse_fan_out_job("fan-004-g-j99"), Some((4, 99)));
    assert_eq!(parse_fan_out_job("bench-004-g-s9"), None);
    assert_eq!(parse_job_name("bench-007-g-s3"), Some((7, 3)));
    assert_eq!(parse_job_name("other-g-s3"), None);
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
}
