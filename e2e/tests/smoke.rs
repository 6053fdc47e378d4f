//! Smoke tests of the cluster under test: they prove that the control plane is real (Jobs run
//! through the real Job controller, scheduler and garbage collector; kwok plays the kubelet) and
//! that the repository's CRDs, samples and schema validation work on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use jobsmith_e2e::{
    ManagerProcess, TestNamespace, api_error_message, client, crd_files, create_yaml_with,
    eventually, fake_pod, free_local_port, http_get, install_crds, job_condition, kubectl,
    list_pods_selected, pod_phase, wait_deleted, wait_for, workspace_root,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::Condition;
use serde_json::json;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// A `batch/v1` Job with one fake container and no retry; `labels`/`annotations` go on the pod
/// template (that is where the kwok stages look).
fn fake_job(
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    command: &[&str],
) -> Result<Job> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), json!(v)))
        .collect();
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).into(), json!(v)))
        .collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": labels, "annotations": annotations },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "main", "image": fake_pod::IMAGE, "command": command }]
                }
            }
        }
    }))?)
}

fn job_pods_selector(job: &str) -> String {
    format!("batch.kubernetes.io/job-name={job}")
}

fn condition_reason(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")?
        .reason
        .clone()
}

/// The only pod of a Job.
async fn single_pod(ns: &TestNamespace, job: &str) -> Result<Pod> {
    let pods = list_pods_selected(ns.client(), ns.name(), &job_pods_selector(job)).await?;
    match <[Pod; 1]>::try_from(pods) {
        Ok([pod]) => Ok(pod),
        Err(pods) => bail!("expected one pod of Job {job}, found {}", pods.len()),
    }
}

fn terminated(pod: &Pod) -> Result<(i32, String)> {
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .ok_or_else(|| anyhow!("pod has no terminated container: {:?}", pod.status))?;
    Ok((state.exit_code, state.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn a_job_completes_on_a_fake_node() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "smoke-complete").await?;
    let jobs = ns.api::<Job>();
    jobs.create(
        &PostParams::default(),
        &fake_job("ok", &[], &[], &["true"])?,
    )
    .await?;

    let job = wait_for(&jobs, "ok", JOB_TIMEOUT, job_condition("Complete")).await?;
    let status = job.status.context("no status")?;
    assert_eq!(status.succeeded, Some(1), "{status:?}");
    assert!(status.completion_time.is_some(), "{status:?}");

    let pod = single_pod(&ns, "ok").await?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Succeeded"));
    assert_eq!(terminated(&pod)?, (0, "Completed".to_owned()));
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    assert!(
        node.as_deref().is_some_and(|n| n.starts_with("kwok-node-")),
        "the scheduler bound the pod to {node:?}, not to a fake node"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_whose_pod_fails_fails_with_backoff_limit_exceeded() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "smoke-fail").await?;
    let jobs = ns.api::<Job>();
    let job = fake_job(
        "boom",
        &[(fake_pod::OUTCOME_LABEL, fake_pod::OUTCOME_FAIL)],
        &[],
        &["sh", "-c", "exit 1"],
    )?;
    jobs.create(&PostParams::default(), &job).await?;

    let job = wait_for(&jobs, "boom", JOB_TIMEOUT, job_condition("Failed")).await?;
    assert_eq!(
        condition_reason(&job, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert!(
        condition_reason(&job, "Complete").is_none(),
        "a failed Job must not be Complete"
    );
    let pod = single_pod(&ns, "boom").await?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Failed"));
    assert_eq!(terminated(&pod)?, (1, "Error".to_owned()));
    Ok(())
}

#[tokio::test]
async fn a_pod_with_a_duration_annotation_runs_that_long() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "smoke-duration").await?;
    let jobs = ns.api::<Job>();
    let job = fake_job(
        "slow",
        &[],
        &[(fake_pod::DURATION_ANNOTATION, "3000")],
        &["sleep", "3"],
    )?;
    jobs.create(&PostParams::default(), &job).await?;

    // Observe the pod Running (and the Job not yet finished) before it completes.
    let selector = job_pods_selector("slow");
    let pod_name = eventually("a Running pod of Job slow", JOB_TIMEOUT, || async {
        let pods = list_pods_selected(&client, ns.name(), &selector).await?;
        Ok(pods
            .into_iter()
            .find(|p| pod_phase("Running").matches_object(Some(p)))
            .and_then(|p| p.metadata.name))
    })
    .await?;
    let seen_running = Instant::now();
    // The Job controller counts the pod as active in its own status write, which may come a
    // moment after the kubelet (KWOK) reported the pod Running: wait for it, but not past the
    // pod's 3 s run, and the Job must not be Complete meanwhile.
    eventually(
        "Job slow counting its Running pod as active",
        Duration::from_secs(2),
        || async {
            let job_now = jobs.get("slow").await?;
            ensure!(
                condition_reason(&job_now, "Complete").is_none(),
                "the Job was already Complete while its pod was Running"
            );
            Ok((job_now.status.and_then(|s| s.active) == Some(1)).then_some(()))
        },
    )
    .await?;

    wait_for(&jobs, "slow", JOB_TIMEOUT, job_condition("Complete")).await?;
    let waited = seen_running.elapsed();
    assert!(
        waited >= Duration::from_millis(2000),
        "completed {waited:?} after Running was observed; expected about 3s"
    );

    // The pod's own clock: startTime (Running) to the container's finishedAt (1s resolution).
    let pod = ns.api::<Pod>().get(&pod_name).await?;
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .context("no startTime")?;
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.clone())
        .context("no finishedAt")?;
    let ran = finished.0.duration_since(started.0);
    assert!(
        ran.as_secs() >= 2 && ran.as_secs() <= 10,
        "the pod ran {ran:?} (startTime {started:?}, finishedAt {finished:?}); expected about 3s"
    );
    Ok(())
}

#[tokio::test]
async fn foreground_deletion_of_a_job_removes_its_pods() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "smoke-delete").await?;
    let jobs = ns.api::<Job>();
    let job = fake_job(
        "long",
        &[],
        &[(fake_pod::DURATION_ANNOTATION, "600000")],
        &["sleep", "600"],
    )?;
    jobs.create(&PostParams::default(), &job).await?;

    let selector = job_pods_selector("long");
    eventually("a Running pod of Job long", JOB_TIMEOUT, || async {
        let pods = list_pods_selected(&client, ns.name(), &selector).await?;
        Ok(pods
            .iter()
            .any(|p| pod_phase("Running").matches_object(Some(p)))
            .then_some(()))
    })
    .await?;

    jobs.delete("long", &DeleteParams::foreground()).await?;
    wait_deleted(&jobs, "long", Duration::from_secs(60)).await?;
    // Foreground: the Job disappears only after its dependents are gone.
    let left = list_pods_selected(&client, ns.name(), &selector).await?;
    assert!(
        left.is_empty(),
        "pods left after the foreground deletion of their Job: {:?}",
        left.iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

const KINDS: [&str; 5] = [
    "DaemonJob",
    "JobFlow",
    "JobRun",
    "JobTemplate",
    "ManagedJob",
];

#[tokio::test]
async fn the_five_crds_install_and_become_established() -> Result<()> {
    let files = crd_files()?;
    assert_eq!(
        files.len(),
        5,
        "expected one CRD file per kind in crds/, found {files:?}"
    );
    let client = client().await?;
    let names = install_crds(&client).await?;

    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let mut kinds = BTreeSet::new();
    for name in &names {
        let crd = crds.get(name).await?;
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        assert!(established, "{name} is not Established");
        assert_eq!(crd.spec.group, "jobsmith.dev", "{name}");
        assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == "v1alpha1" && v.served && v.storage),
            "{name} does not serve and store v1alpha1"
        );
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert!(
            categories.iter().any(|c| c == "jobsmith"),
            "{name}: categories {categories:?}"
        );
        kinds.insert(crd.spec.names.kind.clone());
    }
    assert_eq!(kinds, KINDS.iter().map(|k| (*k).to_owned()).collect());

    // The category works for users: `kubectl get jobsmith` in an empty namespace.
    let ns = TestNamespace::new(&client, "smoke-crds").await?;
    let out = kubectl(&["get", "jobsmith", "-n", ns.name()]).await?;
    assert!(out.success, "kubectl get jobsmith: {}", out.stderr);
    Ok(())
}

/// The CRDs also install with a plain (client-side) `kubectl apply`, whose last-applied
/// annotation must fit the 256 KiB annotation limit. Proven on copies in a group of this test's
/// own (the real `jobsmith.dev` CRDs are shared by the tests running beside this one).
#[tokio::test]
async fn the_crds_install_with_a_plain_kubectl_apply() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "smoke-plain").await?;
    let group = format!("{}.plain.jobsmith.dev", ns.name());
    let dir = std::env::temp_dir().join(format!("jobsmith-e2e-{}", ns.name()));
    std::fs::create_dir_all(&dir)?;
    let mut args = vec!["apply".to_owned()];
    let mut names = Vec::new();
    for file in crd_files()? {
        let text = std::fs::read_to_string(&file)?;
        let mut crd: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .context("spec.names.kind")?
            .to_owned();
        // Kinds of their own (`JobFlowPlainCopy`, plural `jobflowplaincopies`): a copy that
        // registered `JobFlow` in another group made kubectl's discovery cache resolve `jobflow`
        // to it, and `kubectl get jf` answered NotFound on the next plane at the same address.
        let copy_kind = format!("{kind}PlainCopy");
        let singular = copy_kind.to_ascii_lowercase();
        let plural = format!("{}ies", singular.trim_end_matches('y'));
        crd["spec"]["group"] = group.clone().into();
        // Without the category and short names: a copy in `kubectl get jobsmith` (or behind
        // `mj`) would disturb the tests running beside this one while it comes and goes.
        if let Some(names) = crd["spec"]["names"].as_mapping_mut() {
            names.remove("categories");
            names.remove("shortNames");
            names.insert("kind".into(), copy_kind.clone().into());
            names.insert("listKind".into(), format!("{copy_kind}List").into());
            names.insert("singular".into(), singular.into());
            names.insert("plural".into(), plural.clone().into());
        }
        crd["metadata"]["name"] = format!("{plural}.{group}").into();
        names.push(format!("{plural}.{group}"));
        let copy = dir.join(file.file_name().context("file name")?);
        std::fs::write(&copy, serde_yaml::to_string(&crd)?)?;
        args.push("-f".into());
        args.push(copy.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kubectl(&args).await?;
    // Beside the copies, `jobflow` still means jobsmith.dev's JobFlow to kubectl.
    let get = kubectl(&["get", "jobflow", "-n", ns.name(), "-v=6"]).await?;
    let real_group = format!(
        "/apis/jobsmith.dev/v1alpha1/namespaces/{}/jobflows",
        ns.name()
    );
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let mut annotation_sizes = Vec::new();
    for name in &names {
        if let Ok(crd) = crds.get(name).await {
            let size = crd
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
                .map_or(0, String::len);
            annotation_sizes.push((name.clone(), size));
        }
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(
        out.success,
        "plain kubectl apply of crds/ failed: {}",
        out.stderr
    );
    ensure!(
        annotation_sizes.len() == 5 && annotation_sizes.iter().all(|(_, size)| *size > 0),
        "every CRD carries its last-applied annotation: {annotation_sizes:?}"
    );
    ensure!(
        get.success && get.stderr.contains(&real_group),
        "kubectl get jobflow beside the copies must read {real_group}: {}",
        get.stderr
    );
    Ok(())
}

/// The `*.yaml`/`*.yml` files under `dir`, in its subdirectories too, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::test]
async fn every_sample_passes_a_server_side_dry_run() -> Result<()> {
    let samples = yaml_files(&workspace_root().join("samples"))?;
    assert!(!samples.is_empty(), "samples/ holds no YAML file");
    let readme = workspace_root().join("samples/managedjob/readme-workflow.yaml");
    assert!(
        samples.contains(&readme),
        "the README's sample {} is missing",
        readme.display()
    );
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "smoke-samples").await?;

    let mut failures = Vec::new();
    for sample in &samples {
        let path = sample.to_string_lossy();
        let out = kubectl(&["apply", "--dry-run=server", "-n", ns.name(), "-f", &path]).await?;
        if !out.success {
            failures.push(format!("{path}:\n{}", out.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples rejected:\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_the_schema_messages() -> Result<()> {
    let files = yaml_files(&workspace_root().join("e2e/testdata/invalid"))?;
    assert!(!files.is_empty(), "e2e/testdata/invalid holds no YAML file");
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "smoke-invalid").await?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };

    let mut failures = Vec::new();
    for file in &files {
        let yaml = std::fs::read_to_string(file)?;
        let expected: Vec<&str> = yaml
            .lines()
            .filter_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .collect();
        ensure!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match create_yaml_with(&client, Some(ns.name()), &yaml, &dry_run).await {
            Ok(_) => failures.push(format!("{name}: accepted, expected a rejection")),
            Err(error) => {
                let Some(message) = api_error_message(&error) else {
                    failures.push(format!(
                        "{name}: failed without an API rejection: {error:#}"
                    ));
                    continue;
                };
                for want in &expected {
                    if !message.contains(want) {
                        failures.push(format!("{name}: {want:?} not in the message:\n  {message}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn the_manager_binary_connects_serves_its_probes_and_stops_on_sigterm() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "smoke-manager").await?;
    let addr = format!("127.0.0.1:{}", free_local_port()?);
    // Watching only the test's namespace keeps this manager away from other tests' objects.
    let mut manager = ManagerProcess::start(
        "smoke-manager",
        &[
            "--metrics-bind-address",
            &addr,
            "--health-probe-bind-address",
            &addr,
            "--namespace",
            ns.name(),
        ],
        &[],
    )?;

    // Ready means: connected to the cluster of KUBECONFIG and the controllers' caches synced.
    let readyz = eventually(
        "the manager's /readyz answers 200",
        Duration::from_secs(60),
        || {
            let addr = addr.clone();
            async move {
                Ok(match http_get(&addr, "/readyz").await? {
                    (200, body) => Some(body),
                    _ => None,
                })
            }
        },
    );
    let ready = tokio::select! {
        ready = readyz => ready,
        () = async {
            while manager.is_running() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } => Err(anyhow!("the manager exited early (status {:?})", manager.exit_status())),
    };
    if let Err(e) = ready {
        bail!(
            "{e:#}\nmanager log {}:\n{}",
            manager.log_path().display(),
            manager.logs()
        );
    }
    let (status, _) = http_get(&addr, "/healthz").await?;
    assert_eq!(status, 200, "/healthz");
    let (status, _) = http_get(&addr, "/metrics").await?;
    assert_eq!(status, 200, "/metrics");

    let stopping = Instant::now();
    let exit = manager.stop()?;
    eprintln!("the manager stopped {:?} after SIGTERM", stopping.elapsed());
    assert!(
        exit.success(),
        "the manager did not exit cleanly on SIGTERM ({exit:?}); log:\n{}",
        manager.logs()
    );
    Ok(())
}
