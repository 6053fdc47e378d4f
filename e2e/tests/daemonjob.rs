//! End-to-end: DaemonJob (SPEC §4) on nodes of its own.
//!
//! Each test creates its own fake Nodes (kwok manages every Node of the local plane and makes them
//! Ready) in a *pool*: the nodes carry the label `jobsmith.dev/e2e-pool=<pool>` and the taint
//! `jobsmith.dev/e2e-pool=<pool>:NoSchedule`, and the DaemonJob selects and tolerates exactly that
//! pool. So the test neither runs Jobs on the shared `kwok-node-*` nodes nor lets other tests'
//! pods land on nodes it cordons or deletes. The nodes are deleted when the test ends (also on
//! panic).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{DaemonJob, Phase, RunStatus, StepPhase};
use jobsmith_e2e::{eventually, kubectl_ok, list_pods_selected};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use support::{World, condition, sample, wait_run};

const POOL_LABEL: &str = "jobsmith.dev/e2e-pool";

fn dj_status(d: &DaemonJob) -> Option<&RunStatus> {
    d.status.as_ref().map(|s| &s.run)
}

/// Extra fake Nodes of one test, deleted on drop.
struct Pool {
    name: String,
    nodes: Vec<String>,
}

impl Pool {
    /// A pool named after the test namespace (unique).
    fn new(world: &World) -> Self {
        Self {
            name: world.name().to_owned(),
            nodes: Vec::new(),
        }
    }

    /// The node `<pool>-<suffix>`.
    fn node(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// Creates node `<pool>-<suffix>` in the pool; `extra_taint` adds a NoSchedule taint the
    /// DaemonJob does not tolerate; `cordoned` makes it unschedulable.
    async fn add(
        &mut self,
        client: &Client,
        suffix: &str,
        extra_taint: bool,
        cordoned: bool,
    ) -> Result<String> {
        let name = self.node(suffix);
        let mut taints = vec![
            serde_json::json!({"key": POOL_LABEL, "value": self.name, "effect": "NoSchedule"}),
        ];
        if extra_taint {
            taints.push(serde_json::json!({"key": "jobsmith.dev/e2e-other", "value": "x", "effect": "NoSchedule"}));
        }
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                POOL_LABEL: self.name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "type": "kwok",
            }},
            "spec": {"taints": taints, "unschedulable": cordoned},
        }))?;
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))?;
        self.nodes.push(name.clone());
        Ok(name)
    }

    /// Waits until every node of the pool is Ready (kwok's node stage) and the node lifecycle
    /// controller has removed its `node.kubernetes.io/not-ready` (or `unreachable`) taint, which
    /// it does a moment after Ready: until then the node is (rightly) not eligible. (A cordoned
    /// node keeps its `unschedulable` taint.)
    async fn wait_ready(&self, client: &Client) -> Result<()> {
        let api = Api::<Node>::all(client.clone());
        for name in &self.nodes {
            eventually(
                &format!("node {name} Ready and without the not-ready taint"),
                Duration::from_secs(60),
                || async {
                    let node = api.get(name).await?;
                    let system_taint = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|ts| {
                            ts.iter().any(|t| {
                                matches!(
                                    t.key.as_str(),
                                    "node.kubernetes.io/not-ready"
                                        | "node.kubernetes.io/unreachable"
                                )
                            })
                        });
                    let ready = node.status.and_then(|s| s.conditions).is_some_and(|cs| {
                        cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                    });
                    Ok((ready && !system_taint).then_some(()))
                },
            )
            .await?;
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        let done = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let api = Api::<Node>::all(Client::try_default().await?);
                for name in nodes {
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                }
                Ok(())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("deleting the test's nodes failed: {done:?}");
        }
    }
}

/// A DaemonJob selecting and tolerating `pool`, its pods running `duration_ms`.
fn daemonjob_yaml(name: &str, pool: &str, duration_ms: u32, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {{name: {name}}}
spec:
{extra_spec}
  backoffLimit: 0
  globalParams:
    env: [{{name: GLOBAL, value: "yes"}}]
    labels: {{team: e2e}}
  template:
    metadata:
      annotations: {{jobsmith.dev/e2e-duration: "{duration_ms}"}}
    spec:
      nodeSelector: {{{POOL_LABEL}: {pool}}}
      tolerations:
        - {{key: {POOL_LABEL}, operator: Equal, value: {pool}, effect: NoSchedule}}
      containers:
        - {{name: main, image: busybox:1.36, command: [sh, -c, "echo on $NODE"]}}
"#
    )
}

/// The node each pod of a Job is pinned to by `matchFields metadata.name In [node]`.
fn pinned_node(job: &Job) -> Option<String> {
    let terms = &job
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else {
        return None;
    };
    let [field] = term.match_fields.as_deref()? else {
        return None;
    };
    (field.key == "metadata.name" && field.operator == "In")
        .then(|| field.values.as_ref()?.first().cloned())
        .flatten()
}

/// The DaemonJob's Jobs by node label.
async fn jobs_by_node(world: &World, dj: &DaemonJob) -> Result<BTreeMap<String, Job>> {
    let uid = dj.uid().context("uid")?;
    Ok(world
        .owned_jobs(&uid)
        .await?
        .into_values()
        .filter_map(|j| Some((j.labels().get("jobsmith.dev/node")?.clone(), j)))
        .collect())
}

#[tokio::test]
async fn one_pinned_job_per_eligible_node_and_late_nodes_get_theirs() -> Result<()> {
    let world = World::with_flags("dj-eligible", &[support::ALL_STEP_EVENTS]).await?;
    let mut pool = Pool::new(&world);
    let a = pool.add(&world.client, "a", false, false).await?;
    let b = pool.add(&world.client, "b", false, false).await?;
    let tainted = pool.add(&world.client, "tainted", true, false).await?;
    let cordoned = pool.add(&world.client, "cordoned", false, true).await?;
    let listed = pool.add(&world.client, "listed", false, false).await?;
    let excluded = pool.add(&world.client, "excluded", false, false).await?;
    pool.wait_ready(&world.client).await?;

    let extra = format!("  excludeNodeList: \"nope, {listed} ,\"\n  excludeNodes: [{excluded}]");
    world
        .apply(&daemonjob_yaml("dj", &pool.name, 4000, &extra))
        .await?;
    let djs: Api<DaemonJob> = world.api();
    let dj = eventually("Jobs on a and b", Duration::from_secs(60), || async {
        let dj = djs.get("dj").await?;
        let jobs = jobs_by_node(&world, &dj).await?;
        Ok((jobs.len() == 2).then_some(dj))
    })
    .await?;
    let jobs = jobs_by_node(&world, &dj).await?;
    assert_eq!(
        jobs.keys().cloned().collect::<Vec<_>>(),
        vec![a.clone(), b.clone()]
    );

    // A cordoned node that is uncordoned mid-run gets its Job.
    kubectl_ok(&["uncordon", &cordoned]).await?;
    let dj = wait_run(
        &djs,
        "dj",
        "DaemonJob dj Succeeded on 3 nodes",
        |s| s.phase == Some(Phase::Succeeded),
        dj_status,
    )
    .await
    .context("after uncordon")?;
    let status = dj.status.as_ref().context("status")?;
    let jobs = jobs_by_node(&world, &dj).await?;
    assert_eq!(
        jobs.keys().cloned().collect::<Vec<_>>(),
        vec![a.clone(), b.clone(), cordoned.clone()],
        "the tainted ({tainted}) and excluded ({listed}, {excluded}) nodes get no Job"
    );
    assert_eq!(
        (
            status.desired,
            status.succeeded,
            status.failed,
            status.running
        ),
        (3, 3, 0, 0),
        "{status:?}"
    );
    assert_eq!(status.node_lost, None);
    assert_eq!(status.run.progress.as_deref(), Some("3/3"));
    let entries: Vec<(&str, StepPhase)> = status
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.phase))
        .collect();
    assert_eq!(
        entries,
        vec![
            (a.as_str(), StepPhase::Succeeded),
            (b.as_str(), StepPhase::Succeeded),
            (cordoned.as_str(), StepPhase::Succeeded)
        ]
    );

    for (node, job) in &jobs {
        assert_eq!(job.name_any(), format!("dj-{node}"));
        assert_eq!(
            pinned_node(job).as_deref(),
            Some(node.as_str()),
            "{:?}",
            job.spec
        );
        assert_eq!(job.labels().get("team").map(String::as_str), Some("e2e"));
        let env = support::job_env(job);
        assert!(
            env.contains(&("GLOBAL".to_owned(), "yes".to_owned())),
            "{env:?}"
        );
        let pods = list_pods_selected(
            &world.client,
            world.name(),
            &format!("batch.kubernetes.io/job-name={}", job.name_any()),
        )
        .await?;
        ensure!(!pods.is_empty(), "no pod of {}", job.name_any());
        for pod in pods {
            assert_eq!(
                pod.spec.and_then(|s| s.node_name).as_deref(),
                Some(node.as_str())
            );
        }
    }

    let events = world.wait_event("dj", "Succeeded").await?;
    let created = events.iter().filter(|e| e.0 == "JobCreated").count();
    assert_eq!(created, 3, "{events:?}");
    let text = world.metrics().await?;
    let total = sample(&text, "jobsmith_reconcile_total{controller=\"daemonjob\"}");
    ensure!(
        total.is_some_and(|v| v >= 1.0),
        "no daemonjob reconcile in /metrics:\n{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_that_disappears_before_its_job_finished_is_node_lost() -> Result<()> {
    let world = World::new("dj-node-lost").await?;
    let mut pool = Pool::new(&world);
    let stays = pool.add(&world.client, "stays", false, false).await?;
    let goes = pool.add(&world.client, "goes", false, false).await?;
    pool.wait_ready(&world.client).await?;

    world
        .apply(&daemonjob_yaml("lost", &pool.name, 12000, ""))
        .await?;
    let djs: Api<DaemonJob> = world.api();
    // Both Jobs have a running pod.
    eventually("both Jobs active", Duration::from_secs(60), || async {
        let dj = djs.get("lost").await?;
        let jobs = jobs_by_node(&world, &dj).await?;
        let active = jobs
            .values()
            .filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
            .count();
        Ok((active == 2).then_some(()))
    })
    .await?;
    Api::<Node>::all(world.client.clone())
        .delete(&goes, &DeleteParams::background())
        .await?;

    let dj = wait_run(
        &djs,
        "lost",
        "DaemonJob lost Failed",
        |s| s.phase == Some(Phase::Failed),
        dj_status,
    )
    .await?;
    let status = dj.status.as_ref().context("status")?;
    assert_eq!(
        (status.desired, status.succeeded, status.node_lost),
        (2, 1, Some(1)),
        "{status:?}"
    );
    let lost = status
        .nodes
        .iter()
        .find(|n| n.node == goes)
        .context("entry of the lost node")?;
    assert_eq!(lost.phase, StepPhase::NodeLost);
    assert_eq!(lost.reason.as_deref(), Some("NodeLost"));
    let kept = status
        .nodes
        .iter()
        .find(|n| n.node == stays)
        .context("entry of the other node")?;
    assert_eq!(kept.phase, StepPhase::Succeeded);
    let ready = condition(&status.run, "Ready").context("Ready")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NodeLost")
    );

    let events = world.wait_event("lost", "NodeLost").await?;
    let node_lost: Vec<_> = events.iter().filter(|e| e.0 == "NodeLost").collect();
    assert_eq!(node_lost.len(), 1, "{events:?}");
    assert_eq!(node_lost[0].1, "Warning");
    assert!(node_lost[0].2.contains(&goes), "{node_lost:?}");
    Ok(())
}

#[tokio::test]
async fn a_templateref_daemonjob_waits_for_its_template() -> Result<()> {
    let world = World::new("dj-template").await?;
    let mut pool = Pool::new(&world);
    let only = pool.add(&world.client, "only", false, false).await?;
    pool.wait_ready(&world.client).await?;

    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {name: byref}
spec:
  templateRef: node-task
"#,
        )
        .await?;
    let djs: Api<DaemonJob> = world.api();
    let dj = wait_run(
        &djs,
        "byref",
        "DaemonJob byref waits for its template",
        |s| condition(s, "Ready").is_some_and(|c| c.reason == "TemplateNotFound"),
        dj_status,
    )
    .await?;
    assert_eq!(dj_status(&dj).and_then(|s| s.phase), Some(Phase::Pending));
    assert!(
        world
            .owned_jobs(&dj.uid().context("uid")?)
            .await?
            .is_empty()
    );

    // The template's pod spec decides eligibility (its nodeSelector and tolerations).
    let pool_name = &pool.name;
    world
        .apply(&format!(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: node-task}}
spec:
  jobTemplate:
    backoffLimit: 0
    template:
      spec:
        nodeSelector: {{{POOL_LABEL}: {pool_name}}}
        tolerations:
          - {{key: {POOL_LABEL}, operator: Exists}}
        containers:
          - {{name: main, image: busybox:1.36}}
"#
        ))
        .await?;
    let dj = wait_run(
        &djs,
        "byref",
        "DaemonJob byref Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        dj_status,
    )
    .await?;
    let jobs = jobs_by_node(&world, &dj).await?;
    assert_eq!(jobs.keys().cloned().collect::<Vec<_>>(), vec![only.clone()]);
    let job = &jobs[&only];
    assert_eq!(
        job.annotations()
            .get("jobsmith.dev/template")
            .map(String::as_str),
        Some("node-task")
    );
    assert_eq!(pinned_node(job).as_deref(), Some(only.as_str()));
    let status = dj.status.as_ref().context("status")?;
    assert_eq!((status.desired, status.succeeded), (1, 1), "{status:?}");
    Ok(())
}
