//! `deploy/rbac.yaml` is enough: a manager that impersonates the `jobsmith` ServiceAccount (via
//! the kubeconfig's `as:`) runs a ManagedJob, a JobRun from a JobTemplate and a DaemonJob to
//! completion, passes a step output (the pod list it needs), publishes Events and holds its
//! Lease, with no request refused; and a ManagedJob with the lifecycle controls
//! (docs/lifecycle.md) is stopped at its deadline (a Job patch), its Jobs cleaned up (Job
//! deletes) and the run itself deleted by its TTL.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{DaemonJob, JobRun, ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{
    TestNamespace, apply_yaml, client, impersonating_kubeconfig, install_crds, kubectl,
    list_events, workspace_root,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::{
    StartedManager, family_sum, mj_status, scrape, start_manager_process, two_job_workflow,
    wait_run,
};

const SERVICE_ACCOUNT: &str = "system:serviceaccount:jobsmith-system:jobsmith";

async fn can_i(verb: &str, resource: &str, namespace: &str) -> Result<bool> {
    let out = kubectl(&[
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        "--as",
        SERVICE_ACCOUNT,
    ])
    .await?;
    Ok(out.stdout.trim() == "yes")
}

#[tokio::test]
async fn the_manager_runs_every_kind_with_only_the_deploy_rbac() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let rbac = std::fs::read_to_string(workspace_root().join("deploy/rbac.yaml"))?;
    apply_yaml(&client, None, &rbac).await?;
    let ns = TestNamespace::new(&client, "rbac").await?;

    // The identity is really restricted: it may create Jobs (and delete finished ones whose
    // outcome it recorded) but not update them, delete pods or read Secrets.
    ensure!(
        can_i("create", "jobs.batch", ns.name()).await?,
        "cannot create Jobs"
    );
    ensure!(
        !can_i("update", "jobs.batch", ns.name()).await?,
        "may update Jobs"
    );
    // Patch: only to stop a running Job at its run's deadline; delete of a run: its TTL.
    ensure!(
        can_i("patch", "jobs.batch", ns.name()).await?,
        "cannot patch Jobs"
    );
    ensure!(
        can_i("delete", "managedjobs.jobsmith.dev", ns.name()).await?,
        "cannot delete ManagedJobs"
    );
    ensure!(
        !can_i("update", "managedjobs.jobsmith.dev", ns.name()).await?,
        "may update ManagedJobs"
    );
    ensure!(
        !can_i("delete", "pods", ns.name()).await?,
        "may delete Pods"
    );
    ensure!(
        !can_i("get", "secrets", ns.name()).await?,
        "may read Secrets"
    );
    // Step outputs list the pods of a succeeded Job; pods are never watched.
    ensure!(can_i("list", "pods", ns.name()).await?, "cannot list Pods");
    ensure!(!can_i("watch", "pods", ns.name()).await?, "may watch Pods");

    let dir = std::env::temp_dir().join(format!("jobsmith-e2e-{}", ns.name()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig-as-jobsmith");
    let source = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
    impersonating_kubeconfig(
        std::path::Path::new(&source),
        SERVICE_ACCOUNT,
        &[],
        &kubeconfig,
    )?;
    // The manager's client library honours the kubeconfig's `as:` (checked with the same
    // library: as the ServiceAccount, listing Secrets is refused).
    let options = kube::config::KubeConfigOptions::default();
    let as_jobsmith = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &options,
    )
    .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(kube::Client::try_from(as_jobsmith)?, ns.name());
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => anyhow::bail!("listing Secrets as {SERVICE_ACCOUNT}: {other:?}"),
    }

    let lease_name = format!("jobsmith-{}", ns.name());
    let kubeconfig_path = kubeconfig.to_string_lossy().into_owned();
    let StartedManager {
        mut manager,
        metrics_port,
        ..
    } = start_manager_process(
        "rbac",
        &[
            "--namespace",
            ns.name(),
            "--leader-elect",
            "--leader-election-namespace",
            "jobsmith-system",
            "--leader-election-id",
            &lease_name,
        ],
        &[("KUBECONFIG", &kubeconfig_path)],
    )?;
    manager
        .wait_for_log("became the leader", Duration::from_secs(60))
        .await?;
    manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;

    apply_yaml(&client, Some(ns.name()), &two_job_workflow("wf")).await?;
    apply_yaml(
        &client,
        Some(ns.name()),
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: echo}
spec:
  template:
    spec:
      containers:
      - {name: main, image: example.invalid/fake:1, command: [echo, hi]}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: run}
spec:
  templateRef: echo
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: outputs}
spec:
  retries: 0
  groups:
  - name: g
    jobs:
    - name: build
      image: example.invalid/fake:1
      params: {annotations: {jobsmith.dev/e2e-message: '{"version":"7.0.1"}'}}
      outputs: [{name: version, from: terminationMessage, jsonKey: version}]
    - name: test
      image: example.invalid/fake:1
      params:
        env: [{name: VERSION, valueFrom: {stepOutput: {step: build, name: version}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {name: per-node}
spec:
  template:
    spec:
      nodeSelector: {kubernetes.io/hostname: kwok-node-0}
      containers:
      - {name: main, image: example.invalid/fake:1}
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: lifecycle}
spec:
  retries: 0
  activeDeadlineSeconds: 2
  ttlSecondsAfterFinished: 1
  jobsCleanup: {onFailure: Delete}
  groups:
  - name: g
    jobs:
    - name: slow
      image: example.invalid/fake:1
      params:
        annotations: {jobsmith.dev/e2e-duration: "60000"}
"#,
    )
    .await?;

    let succeeded = |r: &RunStatus| r.phase == Some(Phase::Succeeded);
    let mjs: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    wait_run(&mjs, "wf", "ManagedJob wf Succeeded", succeeded, mj_status).await?;
    let with_outputs = wait_run(
        &mjs,
        "outputs",
        "ManagedJob outputs Succeeded",
        succeeded,
        mj_status,
    )
    .await?;
    let recorded = with_outputs
        .status
        .as_ref()
        .and_then(|s| s.run.outputs.first())
        .and_then(|o| o.values.get("version").cloned());
    ensure!(
        recorded.as_deref() == Some("7.0.1"),
        "status.outputs: {:?}",
        with_outputs.status.map(|s| s.run.outputs)
    );
    let runs: Api<JobRun> = Api::namespaced(client.clone(), ns.name());
    wait_run(&runs, "run", "JobRun run Succeeded", succeeded, |r| {
        r.status.as_ref().map(|s| &s.run)
    })
    .await?;
    let djs: Api<DaemonJob> = Api::namespaced(client.clone(), ns.name());
    let dj = wait_run(
        &djs,
        "per-node",
        "DaemonJob per-node Succeeded",
        succeeded,
        |d| d.status.as_ref().map(|s| &s.run),
    )
    .await?;
    ensure!(
        dj.status.as_ref().map(|s| (s.desired, s.succeeded)) == Some((1, 1)),
        "DaemonJob status: {:?}",
        dj.status
    );

    // The lifecycle run: stopped at its deadline (Job patch), its Job deleted (jobsCleanup) and
    // the run itself deleted by its TTL, all as the ServiceAccount.
    jobsmith_e2e::wait_deleted(&mjs, "lifecycle", Duration::from_secs(60)).await?;

    // Events were published (events.k8s.io create).
    let events = jobsmith_e2e::eventually(
        "a Succeeded Event about wf",
        Duration::from_secs(30),
        || async {
            let events = list_events(&client, ns.name()).await?;
            Ok(events
                .iter()
                .any(|e| {
                    e.involved_object.name.as_deref() == Some("wf")
                        && e.reason.as_deref() == Some("Succeeded")
                })
                .then_some(events.len()))
        },
    )
    .await?;
    ensure!(events >= 3, "only {events} Events");

    // The Lease is held in jobsmith-system.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "jobsmith-system");
    let lease = leases.get(&lease_name).await?;
    ensure!(
        lease.spec.and_then(|s| s.holder_identity).is_some(),
        "the Lease {lease_name} has no holder"
    );

    // Nothing was refused, and nothing failed to reconcile.
    let text = scrape(metrics_port).await?;
    ensure!(
        family_sum(&text, "jobsmith_reconcile_errors_total") == 0.0,
        "reconcile errors:\n{text}"
    );
    let logs = manager.logs().to_lowercase();
    ensure!(
        !logs.contains("forbidden"),
        "the manager was refused something; log {}",
        manager.log_path().display()
    );
    manager.stop()?;
    let _ = leases.delete(&lease_name, &Default::default()).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
