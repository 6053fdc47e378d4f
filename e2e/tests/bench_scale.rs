//! The scale benchmark (`make bench-scale`): large runs and many concurrent runs on a private
//! local plane (its own fake nodes with a raised pod capacity, the control plane's own rate
//! limits lifted, pods completing at once). It prints figures as `name: value unit` and never
//! fails on time; it fails only when a run itself goes wrong.
//!
//! Sizes: `BENCH_SCALE=full` is the size of the scale issue (a 10,000-step ManagedJob of 50
//! sequential groups x 200 parallel jobs, 1,000 concurrent 5-step workflows); the default is the
//! CI size (500 steps, 100 runs). The JobFlow is 100 chains of 100 flows at full size (10,000
//! flows, `MAX_FLOWS`) and 10 chains of 20 at CI size; its flows name one JobTemplate
//! (`jobTemplateRef`), the way docs/scaling.md tells a user to write a 10,000-step run. At both
//! sizes `largest_jobflow_flows` first stores (and deletes) a JobFlow of `MAX_FLOWS` flows: the
//! schema and etcd's request limit accept the largest JobFlow the schema allows.
//!
//! Figures:
//! - `big_run_wall_s`, `big_flow_wall_s`: from apply to `Succeeded`, seen through a watch of the
//!   object (reading a megabyte-sized object four times a second loaded the API server the runs
//!   share);
//! - `big_run_baseline_wall_s` and `big_run_overhead_ratio`: the same Jobs created by this bench
//!   directly, wave by wave (each wave after the previous one's completions), through the same
//!   client rate limit as the manager's (100 writes/s, burst 200, 8 at once), on a fresh plane
//!   of its own (as the big ManagedJob had), after the runs; the ratio is Jobsmith's own
//!   overhead;
//! - `big_run_status_max_kib`: the largest serialized status a watcher saw during both big runs;
//! - `big_run_manager_cpu_ms_per_job`, `big_run_manager_peak_rss_mib`: the manager's CPU time
//!   (`/proc/<pid>/stat`) over both big runs per Job, and its peak resident set;
//! - `big_run_reconcile_p99_ms`: the upper bound of the histogram bucket holding the 99th
//!   percentile of the manager's reconcile durations (`jobsmith_reconcile_duration_seconds`);
//!   `big_run_reconciles`: how many reconciles that histogram counted, per controller;
//! - `big_run_small_edge_latency_p99_ms`: step-to-step latency of small workflows run while the
//!   big ManagedJob runs (a big wave must not starve them);
//! - `many_runs_wall_s`, `many_runs_edge_latency_p99_ms`, `many_runs_manager_peak_rss_mib`,
//!   `api_writes_per_job` (the manager's writes, Events included, over the Jobs of those runs).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use jobsmith_api::{JobFlow, ManagedJob, Phase};
use jobsmith_e2e::{
    PrivatePlane, apply_yaml, install_crds_on, proc_status_kib, process_cpu_ms, wait_for,
};
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use support::step_watch::{edges, percentile, watch_steps};
use support::{StartedManager, family_sum, job_done, scrape, start_manager_process};

const IMAGE: &str = "example.invalid/fake:1";
const WRITES: &str = "jobsmith_api_writes_total";

/// The sizes of one bench run.
struct Sizes {
    groups: usize,
    jobs_per_group: usize,
    chains: usize,
    chain_length: usize,
    many_runs: usize,
    small_runs_during_big: usize,
}

impl Sizes {
    /// `BENCH_SCALE` picks the size; `BENCH_GROUPS`, `BENCH_JOBS_PER_GROUP`, `BENCH_CHAINS`,
    /// `BENCH_CHAIN_LENGTH`, `BENCH_MANY_RUNS` and `BENCH_SMALL_RUNS` override one dimension each
    /// (a medium size for a profile: the full size takes most of an hour).
    fn from_env() -> Self {
        let mut sizes = Self::preset();
        for (var, field) in [
            ("BENCH_GROUPS", &mut sizes.groups),
            ("BENCH_JOBS_PER_GROUP", &mut sizes.jobs_per_group),
            ("BENCH_CHAINS", &mut sizes.chains),
            ("BENCH_CHAIN_LENGTH", &mut sizes.chain_length),
            ("BENCH_MANY_RUNS", &mut sizes.many_runs),
            ("BENCH_SMALL_RUNS", &mut sizes.small_runs_during_big),
        ] {
            if let Some(value) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
                *field = value;
            }
        }
        sizes
    }

    fn preset() -> Self {
        if std::env::var("BENCH_SCALE").as_deref() == Ok("full") {
            Self {
                groups: 50,
                jobs_per_group: 200,
                chains: 100,
                chain_length: 100,
                many_runs: 1000,
                small_runs_during_big: 20,
            }
        } else {
            Self {
                groups: 10,
                jobs_per_group: 50,
                chains: 10,
                chain_length: 20,
                many_runs: 100,
                small_runs_during_big: 10,
            }
        }
    }
}

/// A ManagedJob of sequential groups of parallel jobs; params at the workflow level, so 10,000
/// jobs stay far below the API server's request size limit.
fn big_managedjob(name: &str, groups: usize, jobs: usize) -> String {
    let mut yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: {name}}}\nspec:\n  params: {{annotations: {{jobsmith.dev/e2e-duration: \"0\"}}}}\n  groups:\n"
    );
    for g in 0..groups {
        yaml.push_str(&format!("  - name: g{g}\n    jobs:\n"));
        for j in 0..jobs {
            yaml.push_str(&format!(
                "    - {{name: j{j}, image: {IMAGE}, parallel: true}}\n"
            ));
        }
    }
    yaml
}

/// The JobTemplate every flow of the big JobFlow names (pods complete at once).
const FLOW_TEMPLATE: &str = "apiVersion: jobsmith.dev/v1alpha1\nkind: JobTemplate\nmetadata: {name: t}\nspec: {template: {metadata: {annotations: {jobsmith.dev/e2e-duration: \"0\"}}, spec: {containers: [{name: m, image: example.invalid/fake:1}]}}}\n";

/// A JobFlow of `chains` independent chains of `length` flows (wide and deep), every flow a
/// reference to [`FLOW_TEMPLATE`] (about 50 bytes a flow, so 10,000 flows fit).
fn big_jobflow(name: &str, chains: usize, length: usize) -> String {
    let mut yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n  failurePolicy: ContinueIndependent\n  flows:\n"
    );
    for c in 0..chains {
        for l in 0..length {
            let deps = if l == 0 {
                String::new()
            } else {
                format!(", dependencies: [c{c}-{}]", l - 1)
            };
            yaml.push_str(&format!(
                "  - {{name: c{c}-{l}{deps}, jobTemplateRef: t}}\n"
            ));
        }
    }
    yaml
}

/// A 5-step sequential ManagedJob (the many-runs workload and the small runs beside the big one).
fn small_workflow(name: &str) -> String {
    let jobs: String = (0..5)
        .map(|k| format!("    - {{name: s{k}, image: {IMAGE}}}\n"))
        .collect();
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: {name}}}\nspec:\n  params: {{annotations: {{jobsmith.dev/e2e-duration: \"0\"}}}}\n  groups:\n  - name: g\n    jobs:\n{jobs}"
    )
}

/// `(workflow, step)` of a small workflow's Job `<prefix>NNN-g-sK`.
fn small_step(prefix: &str, job: &str) -> Option<(usize, usize)> {
    let rest = job.strip_prefix(prefix)?;
    let (index, step) = rest.split_once("-g-s")?;
    Some((index.parse().ok()?, step.parse().ok()?))
}

/// The upper bound (ms) of the histogram bucket holding the p-th percentile of a controller's
/// reconcile durations.
fn reconcile_percentile_ms(metrics: &str, controller: &str, p: f64) -> f64 {
    let prefix = "jobsmith_reconcile_duration_seconds_bucket{";
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            if !rest.contains(&format!("controller=\"{controller}\"")) {
                return None;
            }
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(total) = buckets.last().map(|b| b.1) else {
        return f64::NAN;
    };
    buckets
        .iter()
        .find(|(_, count)| *count >= total * p / 100.0)
        .map_or(f64::NAN, |(le, _)| le * 1000.0)
}

/// How many reconciles of `controller` the manager's histogram counted.
fn reconcile_count(metrics: &str, controller: &str) -> f64 {
    let name = format!("jobsmith_reconcile_duration_seconds_count{{controller=\"{controller}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// A run kind as the bench watches it (ManagedJob, JobFlow).
trait RunObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + 'static
{
}

impl RunObject for ManagedJob {}
impl RunObject for JobFlow {}

/// Watches a kind's objects in `ns` and keeps the largest serialized status seen.
fn watch_status_size<K: RunObject>(client: &Client, ns: &str, largest: Arc<Mutex<usize>>) {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(obj)) = stream.try_next().await {
            let size = serde_json::to_value(&obj)
                .ok()
                .and_then(|v| v.get("status").map(|s| s.to_string().len()))
                .unwrap_or(0);
            let mut max = largest.lock().unwrap_or_else(|e| e.into_inner());
            *max = (*max).max(size);
        }
    });
}

/// Waits (through a watch of the one object, as a user's tooling would, not by reading a
/// megabyte-sized object several times a second) until the run finishes; fails unless it
/// succeeded.
async fn wait_succeeded<K: RunObject>(
    api: &Api<K>,
    name: &str,
    phase_of: fn(&K) -> Option<Phase>,
) -> Result<()> {
    let finished = move |obj: Option<&K>| {
        obj.and_then(phase_of)
            .is_some_and(|p| matches!(p, Phase::Succeeded | Phase::Failed))
    };
    let obj = wait_for(api, name, Duration::from_secs(3600), finished).await?;
    ensure!(
        phase_of(&obj) == Some(Phase::Succeeded),
        "{name} did not succeed: {:?}",
        phase_of(&obj)
    );
    Ok(())
}

/// Waits until the namespace's `runs` ManagedJobs have all succeeded (their steps are done by
/// now; the last status write may still be on its way); fails if one failed.
async fn all_succeeded(mjs: &Api<ManagedJob>, runs: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = mjs.list(&kube::api::ListParams::default()).await?;
        let phases: Vec<_> = list
            .items
            .iter()
            .map(|m| m.status.as_ref().and_then(|s| s.run.phase))
            .collect();
        ensure!(
            !phases.contains(&Some(Phase::Failed)),
            "a ManagedJob failed"
        );
        let succeeded = phases.iter().filter(|p| **p == Some(Phase::Succeeded));
        if succeeded.count() == runs {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the ManagedJobs did not all succeed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A token bucket like the manager's write limiter (rate per second, burst).
struct Bucket {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            tokens: burst,
            burst,
            last: Instant::now(),
        }
    }

    /// How long to wait before the next write.
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

fn baseline_job(name: &str, wave: &str) -> Result<Job> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"bench.jobsmith.dev/wave": wave}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"jobsmith.dev/e2e-duration": "0"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE}]}}}
    }))?)
}

/// The same Jobs as the big ManagedJob, created by the bench itself wave by wave.
async fn baseline(client: &Client, ns: &str, sizes: &Sizes) -> Result<Duration> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let bucket = Arc::new(tokio::sync::Mutex::new(Bucket::new(100.0, 200.0)));
    let start = Instant::now();
    for g in 0..sizes.groups {
        let names: Vec<String> = (0..sizes.jobs_per_group)
            .map(|j| format!("baseline-g{g}-j{j}"))
            .collect();
        let creates = futures::stream::iter(names.iter().cloned().map(|name| {
            let jobs = jobs.clone();
            let bucket = bucket.clone();
            let wave = format!("g{g}");
            async move {
                let wait = bucket.lock().await.take();
                tokio::time::sleep(wait).await;
                jobs.create(&PostParams::default(), &baseline_job(&name, &wave)?)
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>();
        creates.await?;
        // The next wave starts when every Job of this one finished (seen by polling the list).
        loop {
            let list = jobs
                .list(
                    &kube::api::ListParams::default()
                        .labels(&format!("bench.jobsmith.dev/wave=g{g}")),
                )
                .await?;
            let done = list.items.iter().filter(|j| job_done(j)).count();
            if done == names.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(start.elapsed())
}

async fn start_manager(plane: &PrivatePlane, ns: &str, name: &str) -> Result<StartedManager> {
    let kubeconfig = plane.kubeconfig().to_string_lossy().into_owned();
    let mut started = start_manager_process(
        name,
        &["--namespace", ns, "--leader-election-namespace", ns],
        &[("KUBECONFIG", &kubeconfig), ("RUST_LOG", "info")],
    )?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(120))
        .await?;
    Ok(started)
}

async fn namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    api.create(&PostParams::default(), &ns).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench-scale`"]
async fn bench_scale() -> Result<()> {
    let sizes = Sizes::from_env();
    let plane = PrivatePlane::start_with("scale", 3, PLANE_SETTINGS)?;
    let client = plane.client().await?;
    install_crds_on(&client).await?;
    largest_spec(&client).await?;
    let big_run_wall = big_runs(&plane, &client, &sizes).await?;
    many_runs(&plane, &client, &sizes).await?;
    drop(plane);

    // The baseline on a fresh plane of its own, as the big ManagedJob had one: on the plane of
    // the runs above it competed with the clean-up of their 20,000 Jobs and pods (pod garbage
    // collection, kwok), and measured 1237 s where a fresh plane takes about 350 s.
    let plane = PrivatePlane::start_with("scale-baseline", 3, PLANE_SETTINGS)?;
    let client = plane.client().await?;
    let baseline_ns = "baseline";
    namespace(&client, baseline_ns).await?;
    let baseline_wall = baseline(&client, baseline_ns, &sizes).await?;
    println!(
        "big_run_baseline_wall_s: {:.1} s",
        baseline_wall.as_secs_f64()
    );
    println!(
        "big_run_overhead_ratio: {:.2} ratio",
        big_run_wall.as_secs_f64() / baseline_wall.as_secs_f64()
    );
    Ok(())
}

/// The private planes of the bench: fake nodes with room for a whole wave, the control plane's
/// own rate limits lifted, pods completing at once.
const PLANE_SETTINGS: &[(&str, &str)] = &[
    ("E2E_NODE_PODS", "2000"),
    ("E2E_DISABLE_QPS_LIMITS", "1"),
    ("E2E_POD_DURATION_MS", "0"),
];

/// The big ManagedJob (with small workflows beside it) and the big JobFlow; returns the big
/// ManagedJob's wall time (the baseline it is compared with runs on a plane of its own).
async fn big_runs(plane: &PrivatePlane, client: &Client, sizes: &Sizes) -> Result<Duration> {
    ensure!(
        sizes.chains * sizes.chain_length <= jobsmith_api::jobflow::MAX_FLOWS,
        "the JobFlow is larger than the schema allows"
    );
    let ns = "big";
    namespace(client, ns).await?;
    let mut started = start_manager(plane, ns, "scale-big").await?;
    let pid = started.manager.pid();
    let largest = Arc::new(Mutex::new(0usize));
    watch_status_size::<ManagedJob>(client, ns, largest.clone());
    watch_status_size::<JobFlow>(client, ns, largest.clone());
    let small = sizes.small_runs_during_big;
    let small_watch = watch_steps(client, ns, |j| small_step("small-", j), small * 5);
    let cpu_before = process_cpu_ms(pid)?;

    let start = Instant::now();
    apply_yaml(
        client,
        Some(ns),
        &big_managedjob("big-run", sizes.groups, sizes.jobs_per_group),
    )
    .await?;
    // The small workflows start once the big run is under way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..small {
        apply_yaml(client, Some(ns), &small_workflow(&format!("small-{i:03}"))).await?;
    }
    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), ns);
    wait_succeeded(&mjs, "big-run", |m| m.status.as_ref()?.run.phase).await?;
    let big_run_wall = start.elapsed();
    let small_seen = tokio::time::timeout(Duration::from_secs(600), small_watch)
        .await
        .context("the small workflows did not finish")???;

    apply_yaml(client, Some(ns), FLOW_TEMPLATE).await?;
    let start = Instant::now();
    apply_yaml(
        client,
        Some(ns),
        &big_jobflow("big-flow", sizes.chains, sizes.chain_length),
    )
    .await?;
    let flows: Api<JobFlow> = Api::namespaced(client.clone(), ns);
    wait_succeeded(&flows, "big-flow", |f| f.status.as_ref()?.run.phase).await?;
    let big_flow_wall = start.elapsed();
    let cpu = process_cpu_ms(pid)? - cpu_before;
    let metrics = scrape(started.metrics_port).await?;
    let rss = proc_status_kib(pid, "VmHWM:")? / 1024.0;
    let jobs = sizes.groups * sizes.jobs_per_group + sizes.chains * sizes.chain_length;
    started.manager.stop()?;

    let status_kib = *largest.lock().unwrap_or_else(|e| e.into_inner()) as f64 / 1024.0;
    let small_edges = edges(&small_seen, small, 5);
    println!(
        "big_run_steps: {} count",
        sizes.groups * sizes.jobs_per_group
    );
    println!("big_run_wall_s: {:.1} s", big_run_wall.as_secs_f64());
    println!(
        "big_flow_steps: {} count",
        sizes.chains * sizes.chain_length
    );
    println!("big_flow_wall_s: {:.1} s", big_flow_wall.as_secs_f64());
    println!("big_run_status_max_kib: {status_kib:.1} KiB");
    println!(
        "big_run_manager_cpu_ms_per_job: {:.2} ms",
        cpu / jobs as f64
    );
    println!("big_run_manager_peak_rss_mib: {rss:.1} MiB");
    for controller in ["managedjob", "jobflow"] {
        println!(
            "big_run_reconcile_p99_ms{{controller=\"{controller}\"}}: {:.0} ms",
            reconcile_percentile_ms(&metrics, controller, 99.0)
        );
        println!(
            "big_run_reconciles{{controller=\"{controller}\"}}: {:.0} count",
            reconcile_count(&metrics, controller)
        );
    }
    println!(
        "big_run_small_edge_latency_p99_ms: {:.1} ms",
        percentile(&small_edges, 99.0)
    );
    Ok(big_run_wall)
}

/// A suspended ManagedJob of `jobs` jobs (in groups of the schema's largest size), each with
/// about 100 bytes of its own params.
fn verbose_managedjob(name: &str, jobs: usize) -> String {
    let per_group = jobsmith_api::managedjob::MAX_JOBS_PER_GROUP;
    let mut yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: {name}}}\nspec:\n  suspend: true\n  groups:\n"
    );
    for j in 0..jobs {
        if j % per_group == 0 {
            yaml.push_str(&format!("  - name: g{}\n    jobs:\n", j / per_group));
        }
        yaml.push_str(&format!(
            "    - {{name: j{j}, image: {IMAGE}, parallel: true, params: {{env: [{{name: STEP_SETTING, value: \"{j:0>40}\"}}]}}}}\n"
        ));
    }
    yaml
}

/// The largest ManagedJob the API server stores, written the verbose way (params on every job):
/// found by doubling, then bisecting, the number of jobs. Printed as its size and job count.
async fn largest_spec(client: &Client) -> Result<()> {
    let ns = "spec-size";
    namespace(client, ns).await?;
    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), ns);
    let mut attempt = 0usize;
    let mut fits = |jobs: usize| {
        attempt += 1;
        let name = format!("size-{attempt}");
        let yaml = verbose_managedjob(&name, jobs);
        let mjs = mjs.clone();
        async move {
            let ok = apply_yaml(client, Some(ns), &yaml).await.is_ok();
            if ok {
                let _ = mjs.delete(&name, &Default::default()).await;
            }
            (ok, yaml.len())
        }
    };
    let (mut good, mut good_bytes) = (0usize, 0usize);
    let mut bad = None;
    let mut jobs = 1000usize;
    // The schema's own bound: groups x jobs per group.
    let cap = jobsmith_api::managedjob::MAX_GROUPS * jobsmith_api::managedjob::MAX_JOBS_PER_GROUP;
    while jobs <= cap {
        let jobs_now = jobs;
        let (ok, bytes) = fits(jobs_now).await;
        if !ok {
            bad = Some(jobs_now);
            break;
        }
        (good, good_bytes) = (jobs_now, bytes);
        jobs = if jobs_now == cap {
            cap + 1
        } else {
            (jobs_now * 2).min(cap)
        };
    }
    if let Some(mut bad) = bad {
        while bad - good > (good / 50).max(1) {
            let mid = (good + bad) / 2;
            let (ok, bytes) = fits(mid).await;
            if ok {
                (good, good_bytes) = (mid, bytes);
            } else {
                bad = mid;
            }
        }
    }
    if bad.is_none() {
        eprintln!("the schema's bound ({cap} jobs) is reached before the size limit");
    }
    println!("largest_spec_jobs_with_params: {good} count");
    println!(
        "largest_spec_manifest_kib: {:.0} KiB",
        good_bytes as f64 / 1024.0
    );
    largest_jobflow(client, ns).await
}

/// Stores the largest JobFlow the schema allows (`MAX_FLOWS` flows in 100 chains, written as
/// docs/scaling.md says) and deletes it: no manager runs in this namespace, so no Job is made.
async fn largest_jobflow(client: &Client, ns: &str) -> Result<()> {
    let flows = jobsmith_api::jobflow::MAX_FLOWS;
    let yaml = big_jobflow("largest-flow", 100, flows / 100);
    apply_yaml(client, Some(ns), &yaml)
        .await
        .context("the API server refused the largest JobFlow the schema allows")?;
    let api: Api<JobFlow> = Api::namespaced(client.clone(), ns);
    let stored = api.get("largest-flow").await?;
    ensure!(
        stored.spec.flows.len() == flows,
        "the stored JobFlow lost flows"
    );
    let stored_bytes = serde_json::to_vec(&stored)?.len();
    api.delete("largest-flow", &Default::default()).await?;
    println!("largest_jobflow_flows: {flows} count");
    println!(
        "largest_jobflow_manifest_kib: {:.0} KiB",
        yaml.len() as f64 / 1024.0
    );
    println!(
        "largest_jobflow_stored_kib: {:.0} KiB",
        stored_bytes as f64 / 1024.0
    );
    Ok(())
}

/// Many concurrent 5-step workflows.
async fn many_runs(plane: &PrivatePlane, client: &Client, sizes: &Sizes) -> Result<()> {
    let ns = "many";
    namespace(client, ns).await?;
    let mut started = start_manager(plane, ns, "scale-many").await?;
    let pid = started.manager.pid();
    let runs = sizes.many_runs;
    let watch = watch_steps(client, ns, |j| small_step("many-", j), runs * 5);
    let start = Instant::now();
    for i in 0..runs {
        apply_yaml(client, Some(ns), &small_workflow(&format!("many-{i:04}"))).await?;
    }
    let seen = tokio::time::timeout(Duration::from_secs(3600), watch)
        .await
        .context("the workflows did not finish within an hour")???;
    all_succeeded(&Api::namespaced(client.clone(), ns), runs).await?;
    let wall = start.elapsed();
    let metrics = scrape(started.metrics_port).await?;
    let writes = family_sum(&metrics, WRITES);
    let rss = proc_status_kib(pid, "VmHWM:")? / 1024.0;
    started.manager.stop()?;
    let many_edges = edges(&seen, runs, 5);
    ensure!(
        many_edges.len() == runs * 4,
        "measured {} edges of {}",
        many_edges.len(),
        runs * 4
    );
    println!("many_runs: {runs} count");
    println!("many_runs_wall_s: {:.1} s", wall.as_secs_f64());
    println!(
        "many_runs_edge_latency_p99_ms: {:.1} ms",
        percentile(&many_edges, 99.0)
    );
    println!("many_runs_manager_peak_rss_mib: {rss:.1} MiB");
    println!(
        "api_writes_per_job: {:.2} writes",
        writes / (runs * 5) as f64
    );
    Ok(())
}

#[test]
fn small_job_names_parse_back_and_specs_have_their_size() {
    assert_eq!(small_step("many-", "many-0042-g-s3"), Some((42, 3)));
    assert_eq!(small_step("many-", "big-run-g0-j1"), None);
    let yaml = big_managedjob("x", 2, 3);
    assert_eq!(yaml.matches("parallel: true").count(), 6);
    let yaml = big_jobflow("x", 2, 3);
    assert_eq!(yaml.matches("- {name: c").count(), 6);
    assert!(yaml.contains("dependencies: [c1-1]"));
}

#[test]
fn the_reconcile_percentile_comes_from_the_bucket_that_holds_it() {
    let metrics = "\
jobsmith_reconcile_duration_seconds_bucket{controller=\"managedjob\",le=\"0.005\"} 90
jobsmith_reconcile_duration_seconds_bucket{controller=\"managedjob\",le=\"0.05\"} 99
jobsmith_reconcile_duration_seconds_bucket{controller=\"managedjob\",le=\"0.5\"} 100
jobsmith_reconcile_duration_seconds_bucket{controller=\"managedjob\",le=\"+Inf\"} 100
jobsmith_reconcile_duration_seconds_bucket{controller=\"jobflow\",le=\"+Inf\"} 7
";
    assert_eq!(reconcile_percentile_ms(metrics, "managedjob", 99.0), 50.0);
    assert_eq!(reconcile_percentile_ms(metrics, "managedjob", 50.0), 5.0);
}
