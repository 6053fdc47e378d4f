//! Kueue admission with the real Kueue controller (docs/integrations.md "Kueue"): Kueue v0.17.0
//! from the tools cache runs as a host process (`jobsmith_e2e::kueue`), a ClusterQueue of 1 CPU
//! admits a 5-job fan-out whose Jobs each ask for 600m, so at most one runs at a time.
//!
//! Nothing is skipped: without the Kueue build the test fails and names the command that
//! builds it (`make kueue-tool`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{ManagedJob, Phase, StepPhase};
use jobsmith_e2e::kueue::{KueueProcess, install_kueue_crds, kueue_tool};
use jobsmith_e2e::{apply_yaml, dynamic_api, plugin_binary, run_tool, workspace_root};
use jobsmith_engine::{ObservedJob, StepOutcome, observe::job_outcome};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::core::GroupVersionKind;
use support::World;

/// Jobs in the fan-out.
const STEPS: usize = 5;
/// The whole run (5 admissions one after the other, ~2-3 s each) with a wide margin.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// ResourceFlavor and ClusterQueue (cluster-scoped: named after the test namespace) of 1 CPU for
/// that namespace only, and the LocalQueue `user-queue` in it (docs/integrations.md).
fn queues(ns: &str) -> String {
    format!(
        r#"apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {{name: {ns}-flavor}}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {{name: {ns}-cq}}
spec:
  namespaceSelector:
    matchLabels: {{kubernetes.io/metadata.name: {ns}}}
  resourceGroups:
  - coveredResources: [cpu]
    flavors:
    - name: {ns}-flavor
      resources:
      - {{name: cpu, nominalQuota: "1"}}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {{name: user-queue, namespace: {ns}}}
spec: {{clusterQueue: {ns}-cq}}
"#
    )
}

/// The sample `samples/managedjob/kueue.yaml`: five parallel jobs, each asking for 600m CPU,
/// queued in `user-queue` (ManagedJob `kueue-fan-out`).
fn fan_out() -> Result<String> {
    let path = workspace_root().join("samples/managedjob/kueue.yaml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

const RUN: &str = "kueue-fan-out";
const QUEUE: &str = "user-queue";

/// What the poll loop saw.
#[derive(Default)]
struct Seen {
    /// Most Jobs admitted and unfinished at one moment.
    max_running: usize,
    /// Step keys seen `Pending` with reason `Queued`.
    queued_steps: BTreeSet<String>,
    /// A queued step's message in `status.message`.
    queue_message: Option<String>,
    /// The plugin's tree while a step was queued.
    tree: Option<String>,
}

#[tokio::test]
async fn a_kueue_cluster_queue_of_one_cpu_runs_a_fan_out_one_job_at_a_time() -> Result<()> {
    let started = Instant::now();
    let tool = kueue_tool()?;
    let w = World::new("kueue").await?;
    install_kueue_crds(&w.client, &tool).await?;
    let ns = w.name().to_owned();
    let kueue = KueueProcess::start(&tool, &ns).await?;
    let result = run_fan_out(&w, &ns).await;
    let cleanup = delete_cluster_queues(&w, &ns).await;
    if result.is_err() {
        eprintln!("Kueue log (last lines):\n{}", kueue.log_tail(60));
    }
    let seen = result?;
    cleanup?;
    println!(
        "kueue_fan_out_ms: {} (max admitted at once: {}, steps seen queued: {})",
        started.elapsed().as_millis(),
        seen.max_running,
        seen.queued_steps.len()
    );
    drop(kueue);
    Ok(())
}

async fn run_fan_out(w: &World, ns: &str) -> Result<Seen> {
    apply_yaml(&w.client, Some(ns), &queues(ns)).await?;
    w.apply(&fan_out()?).await?;
    let runs: Api<ManagedJob> = w.api();
    let jobs: Api<Job> = w.api();
    let mut seen = Seen::default();
    let deadline = Instant::now() + RUN_LIMIT;
    let run = loop {
        let mj = runs.get(RUN).await?;
        let owned = owned_jobs(&jobs, &mj).await?;
        let running = owned
            .values()
            .filter(|j| job_outcome(&ObservedJob::from((*j).clone())) == StepOutcome::Running)
            .count();
        seen.max_running = seen.max_running.max(running);
        ensure!(
            running <= 1,
            "{running} Jobs admitted at once with a 1-CPU ClusterQueue and 600m each: {:?}",
            owned.keys()
        );
        for job in owned.values() {
            check_queued_job(job)?;
        }
        let status = mj.status.clone().unwrap_or_default();
        for entry in &status.jobs {
            if entry.phase == StepPhase::Pending && entry.reason.as_deref() == Some("Queued") {
                seen.queued_steps.insert(entry.key.clone());
                if seen.tree.is_none() {
                    seen.tree = Some(plugin_tree(ns).await?);
                }
            }
        }
        if let Some(m) = status
            .run
            .message
            .as_deref()
            .filter(|m| m.contains("LocalQueue"))
        {
            seen.queue_message.get_or_insert_with(|| m.to_owned());
        }
        match status.run.phase {
            Some(Phase::Succeeded) => break status,
            Some(Phase::Failed) => bail!("the run failed: {:?}", status.run),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "the run did not finish within {RUN_LIMIT:?}: {:?}",
                status.run
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(run.run.progress.as_deref() == Some("5/5"), "{:?}", run.run);
    ensure!(
        seen.max_running == 1,
        "no Job was ever seen admitted and running"
    );
    // Kueue admits one at a time, so the others wait: every step but the first admitted one
    // must have been seen queued (at least three of the four, allowing for a missed poll).
    ensure!(
        seen.queued_steps.len() >= STEPS - 2,
        "steps seen Queued: {:?}",
        seen.queued_steps
    );
    let message = seen.queue_message.clone().unwrap_or_default();
    ensure!(
        message.contains(&format!("queued in Kueue LocalQueue \"{QUEUE}\"")),
        "status.message while queued: {message:?}"
    );
    let tree = seen.tree.clone().unwrap_or_default();
    ensure!(
        tree.contains("[queued]"),
        "plugin tree while queued:\n{tree}"
    );
    check_workloads_finished(w, ns).await?;
    let creates = jobsmith_e2e::job_creates(ns)?;
    ensure!(
        creates.len() == STEPS && creates.values().all(|n| *n == 1),
        "every Job created exactly once: {creates:?}"
    );
    Ok(seen)
}

async fn owned_jobs(jobs: &Api<Job>, mj: &ManagedJob) -> Result<BTreeMap<String, Job>> {
    let uid = mj.uid().unwrap_or_default();
    Ok(jobs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
        .map(|j| (j.name_any(), j))
        .collect())
}

/// Every Job Jobsmith created carries the queue label (on the Job, not on its pods).
fn check_queued_job(job: &Job) -> Result<()> {
    let labels = job.labels();
    ensure!(
        labels.get("kueue.x-k8s.io/queue-name").map(String::as_str) == Some(QUEUE),
        "Job {} has no queue label: {labels:?}",
        job.name_any()
    );
    let pod_labels = job
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    ensure!(
        !pod_labels.is_some_and(|l| l.contains_key("kueue.x-k8s.io/queue-name")),
        "the queue label is on the pods of {}",
        job.name_any()
    );
    Ok(())
}

async fn plugin_tree(ns: &str) -> Result<String> {
    let out = run_tool(
        &plugin_binary(),
        &["tree", &format!("mj/{RUN}"), "-n", ns, "--no-color"],
        &[],
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        out.success,
        "kubectl-jobsmith tree: {}{}",
        out.stderr,
        out.stdout
    );
    Ok(out.stdout)
}

/// One Workload per Job, each `Finished=True`.
async fn check_workloads_finished(w: &World, ns: &str) -> Result<()> {
    let gvk = GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", "Workload");
    let (api, _) = dynamic_api(&w.client, Some(ns), &gvk).await?;
    jobsmith_e2e::eventually(
        "every Workload Finished",
        Duration::from_secs(30),
        || async {
            let list = api.list(&ListParams::default()).await?;
            let finished = list
                .items
                .iter()
                .filter(|wl| {
                    wl.data["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Finished" && c["status"] == "True")
                        })
                })
                .count();
            Ok((list.items.len() == STEPS && finished == STEPS).then_some(()))
        },
    )
    .await
    .context("Kueue's Workloads")
}

/// The cluster-scoped objects go with the test (the namespace takes the LocalQueue).
async fn delete_cluster_queues(w: &World, ns: &str) -> Result<()> {
    for (kind, name) in [
        ("ClusterQueue", format!("{ns}-cq")),
        ("ResourceFlavor", format!("{ns}-flavor")),
    ] {
        let gvk = GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", kind);
        let (api, _) = dynamic_api(&w.client, None, &gvk).await?;
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {kind} {name}")),
        }
    }
    Ok(())
}
