//! Sharding across managers (docs/scaling.md): three managers on one plane and one namespace,
//! two shards (`sharding.jobsmith.dev/key in (shard1)`, `... in (shard2)`) and the unsharded rest
//! (`!sharding.jobsmith.dev/key`), each on a Lease of its own and impersonating a user of its
//! own. 30 small workflows (ManagedJobs and JobFlows) spread over the three classes all succeed,
//! and each is reconciled by exactly one manager, the one of its class: every Job create and
//! status patch of a workflow comes from that manager's user (the API server's audit log), its
//! Jobs carry its sharding label, and only that manager's `/metrics` name it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{JobFlow, ManagedJob, Phase};
use jobsmith_e2e::{
    TestNamespace, apply_yaml, audit_events, client, impersonating_kubeconfig, install_crds,
    list_jobs,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::{
    StartedManager, chain, family_sum, scrape, start_manager_process, two_job_workflow, wait_run,
};

const SHARD_KEY: &str = "sharding.jobsmith.dev/key";
const WORKFLOWS: usize = 30;
const HOT: &str = "jobsmith_object_reconciles_per_minute";
const CREATED: &str = "managedjob_jobs_created_total";

/// One manager class: its selector, its Lease, the label value of its workflows.
struct Class {
    name: &'static str,
    selector: &'static str,
    shard: Option<&'static str>,
}

const CLASSES: [Class; 3] = [
    Class {
        name: "shard1",
        selector: "sharding.jobsmith.dev/key in (shard1)",
        shard: Some("shard1"),
    },
    Class {
        name: "shard2",
        selector: "sharding.jobsmith.dev/key in (shard2)",
        shard: Some("shard2"),
    },
    Class {
        name: "rest",
        selector: "!sharding.jobsmith.dev/key",
        shard: None,
    },
];

/// Workflow `i`: its name, class (index into `CLASSES`) and kind.
struct Workflow {
    name: String,
    class: usize,
    managed_job: bool,
}

fn workflows() -> Vec<Workflow> {
    (0..WORKFLOWS)
        .map(|i| Workflow {
            name: format!("wf-{i:02}"),
            class: i % CLASSES.len(),
            managed_job: (i / CLASSES.len()).is_multiple_of(2),
        })
        .collect()
}

/// The manifest of a workflow, labelled with its shard (when it has one).
fn manifest(wf: &Workflow) -> String {
    let yaml = if wf.managed_job {
        two_job_workflow(&wf.name)
    } else {
        chain(&wf.name, 2, 200)
    };
    let plain = format!("metadata: {{name: {}}}", wf.name);
    ensure_contains(&yaml, &plain);
    match CLASSES[wf.class].shard {
        Some(shard) => yaml.replace(
            &plain,
            &format!(
                "metadata: {{name: {}, labels: {{{SHARD_KEY}: {shard}}}}}",
                wf.name
            ),
        ),
        None => yaml,
    }
}

fn ensure_contains(yaml: &str, part: &str) {
    assert!(yaml.contains(part), "the manifest has no `{part}`:\n{yaml}");
}

/// The values of label `label` of the samples of metric `metric`.
fn label_values(text: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .filter_map(|labels| {
            let at = labels.find(&needle)? + needle.len();
            let rest = &labels[at..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn three_managers_split_thirty_workflows_each_reconciled_by_one() -> Result<()> {
    let started_at = Instant::now();
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "sharding").await?;
    let namespace = ns.name().to_owned();
    let source = PathBuf::from(std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?);
    let dir = std::env::temp_dir().join(format!(
        "jobsmith-e2e-sharding-{namespace}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;

    // Three managers, each with its selector, its Lease id and its own user.
    let users: Vec<String> = CLASSES
        .iter()
        .map(|c| format!("{namespace}-{}", c.name))
        .collect();
    let mut managers: Vec<StartedManager> = Vec::new();
    for (class, user) in CLASSES.iter().zip(&users) {
        let config = dir.join(format!("kubeconfig-as-{user}"));
        impersonating_kubeconfig(&source, user, &["system:masters"], &config)?;
        let lease = format!("jobsmith-{}", class.name);
        let args = [
            "--leader-elect",
            "--leader-election-id",
            &lease,
            "--namespace",
            &namespace,
            "--leader-election-namespace",
            &namespace,
            "--watch-label-selector",
            class.selector,
        ];
        let config = config.to_string_lossy().into_owned();
        let mut manager = start_manager_process(
            &format!("sharding-{}", class.name),
            &args,
            &[("KUBECONFIG", &config)],
        )?;
        manager
            .manager
            .wait_for_log("became the leader", Duration::from_secs(60))
            .await?;
        manager
            .manager
            .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
            .await?;
        managers.push(manager);
    }
    // Each shard holds a Lease of its own: all three lead at once.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let mut holders = BTreeSet::new();
    for class in &CLASSES {
        let holder = leases
            .get(&format!("jobsmith-{}", class.name))
            .await?
            .spec
            .and_then(|s| s.holder_identity)
            .with_context(|| format!("the Lease of {} has no holder", class.name))?;
        holders.insert(holder);
    }
    ensure!(
        holders.len() == 3,
        "three Leases, three holders: {holders:?}"
    );

    // 30 workflows, ten per class, half ManagedJobs and half JobFlows.
    let all = workflows();
    for wf in &all {
        apply_yaml(&client, Some(&namespace), &manifest(wf)).await?;
    }
    let applied = started_at.elapsed();

    // While they run, remember every object each manager's hot-objects gauge names: with ten
    // objects per manager its ten series cover them all.
    let ports: Vec<u16> = managers.iter().map(|m| m.metrics_port).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn({
        let stop = stop.clone();
        let ports = ports.clone();
        async move {
            let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); ports.len()];
            loop {
                for (i, port) in ports.iter().enumerate() {
                    if let Ok(text) = scrape(*port).await {
                        seen[i].extend(label_values(&text, HOT, "name"));
                    }
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), &namespace);
    let jfs: Api<JobFlow> = Api::namespaced(client.clone(), &namespace);
    for wf in &all {
        let what = format!("{} Succeeded", wf.name);
        if wf.managed_job {
            wait_run(
                &mjs,
                &wf.name,
                &what,
                |r| r.phase == Some(Phase::Succeeded),
                |o| o.status.as_ref().map(|s| &s.run),
            )
            .await?;
        } else {
            wait_run(
                &jfs,
                &wf.name,
                &what,
                |r| r.phase == Some(Phase::Succeeded),
                |o| o.status.as_ref().map(|s| &s.run),
            )
            .await?;
        }
    }
    let all_succeeded = started_at.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let hot_seen = poller.await?;

    let class_of: BTreeMap<&str, usize> = all.iter().map(|w| (w.name.as_str(), w.class)).collect();

    // Every Job carries its workflow's sharding label (or none, like its workflow).
    let jobs = list_jobs(&client, &namespace).await?;
    let mut job_owner: BTreeMap<String, String> = BTreeMap::new();
    for job in &jobs {
        let name = job.metadata.name.clone().unwrap_or_default();
        let owner = job
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.name.clone())
            .with_context(|| format!("Job {name} has no controller owner"))?;
        let class = *class_of
            .get(owner.as_str())
            .with_context(|| format!("Job {name} of an unknown owner {owner}"))?;
        let label = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SHARD_KEY))
            .map(String::as_str);
        ensure!(
            label == CLASSES[class].shard,
            "Job {name} of {owner} has the sharding label {label:?}, not {:?}",
            CLASSES[class].shard
        );
        job_owner.insert(name, owner);
    }
    ensure!(
        jobs.len() == 2 * WORKFLOWS,
        "two Jobs per workflow: {} Jobs",
        jobs.len()
    );

    // The audit log: who created each workflow's Jobs and patched its status.
    let events = audit_events(&namespace)?;
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    let mut status_patches: BTreeMap<String, usize> = BTreeMap::new();
    for event in events.iter().filter(|e| e.succeeded()) {
        let Some(user) = event
            .impersonated_user
            .as_ref()
            .and_then(|u| u.username.clone())
        else {
            continue;
        };
        let object = event.name().unwrap_or_default().to_owned();
        let subresource = event
            .object_ref
            .as_ref()
            .and_then(|o| o.subresource.as_deref());
        let workflow = match (event.verb.as_str(), event.resource(), subresource) {
            ("create", Some("jobs"), None) => {
                *creates.entry(object.clone()).or_default() += 1;
                job_owner
                    .get(&object)
                    .cloned()
                    .with_context(|| format!("{user} created Job {object}, which is not listed"))?
            }
            ("patch" | "update", Some("managedjobs" | "jobflows"), Some("status")) => {
                *status_patches.entry(object.clone()).or_default() += 1;
                object
            }
            _ => continue,
        };
        writers.entry(workflow).or_default().insert(user);
    }
    let mut wrong = Vec::new();
    for wf in &all {
        let expected = &users[wf.class];
        match writers.get(&wf.name) {
            Some(by) if by.len() == 1 && by.contains(expected) => {}
            other => wrong.push(format!(
                "{}: written by {other:?}, not only {expected}",
                wf.name
            )),
        }
        if status_patches.get(&wf.name).copied().unwrap_or(0) == 0 {
            wrong.push(format!("{}: no status patch in the audit log", wf.name));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "workflows not written by exactly their shard's manager:\n{}",
            wrong.join("\n")
        );
    }
    ensure!(
        creates.len() == 2 * WORKFLOWS && creates.values().all(|n| *n == 1),
        "each Job created once: {creates:?}"
    );

    // The managers' metrics: each names exactly the workflows of its class.
    for (i, class) in CLASSES.iter().enumerate() {
        let text = scrape(ports[i]).await?;
        let own: BTreeSet<String> = all
            .iter()
            .filter(|w| w.class == i)
            .map(|w| w.name.clone())
            .collect();
        let own_mjs: BTreeSet<String> = all
            .iter()
            .filter(|w| w.class == i && w.managed_job)
            .map(|w| w.name.clone())
            .collect();
        ensure!(
            hot_seen[i] == own,
            "{}'s {HOT} named {:?}, its workflows are {own:?}",
            class.name,
            hot_seen[i]
        );
        let created = label_values(&text, CREATED, "workflow");
        ensure!(
            created == own_mjs,
            "{}'s {CREATED} names {created:?}, its ManagedJobs are {own_mjs:?}",
            class.name
        );
        ensure!(
            family_sum(&text, CREATED) == 2.0 * own_mjs.len() as f64,
            "{} created {} ManagedJob Jobs, expected {}",
            class.name,
            family_sum(&text, CREATED),
            2 * own_mjs.len()
        );
        let reconciles = family_sum(&text, "jobsmith_reconcile_total");
        ensure!(
            reconciles >= own.len() as f64,
            "{} reconciled {reconciles} times for {} workflows",
            class.name,
            own.len()
        );
        eprintln!(
            "{}: {reconciles} reconciles, {} writes",
            class.name,
            family_sum(&text, "jobsmith_api_writes_total")
        );
    }
    eprintln!(
        "sharding: 30 workflows applied in {:.1} s, all Succeeded after {:.1} s, test {:.1} s",
        applied.as_secs_f64(),
        all_succeeded.as_secs_f64(),
        started_at.elapsed().as_secs_f64()
    );
    drop(managers);
    Ok(())
}
