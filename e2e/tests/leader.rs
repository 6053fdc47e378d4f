//! Leader election end to end (SPEC §7): two managers on one Lease, only the leader writes; when
//! it stops, the standby takes over and finishes the work.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{TestNamespace, apply_yaml, client, http_get, install_crds};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::{family_sum, scrape, start_manager_with, two_job_workflow, wait_run};

const WRITES: &str = "jobsmith_api_writes_total";
const RECONCILES: &str = "jobsmith_reconcile_total";

fn run_of(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

async fn lease_holder(leases: &Api<Lease>) -> Result<Option<String>> {
    Ok(leases
        .get_opt("jobsmith")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

#[tokio::test]
async fn only_the_leader_writes_and_the_standby_takes_over() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::new(&client, "leader").await?;
    let flags = ["--leader-elect"];

    let mut first = start_manager_with(ns.name(), "leader-a", &flags)?;
    first
        .manager
        .wait_for_log("became the leader", Duration::from_secs(60))
        .await?;
    let mut second = start_manager_with(ns.name(), "leader-b", &flags)?;
    second
        .manager
        .wait_for_log("waiting to become the leader", Duration::from_secs(60))
        .await?;
    // The standby is alive and ready (so a rolling update can proceed) but says it is a standby.
    let (code, body) = http_get(&format!("127.0.0.1:{}", second.health_port), "/readyz").await?;
    ensure!(
        code == 200 && body.contains("standby"),
        "standby /readyz: {code} {body}"
    );

    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let holder = lease_holder(&leases)
        .await?
        .context("the Lease has a holder")?;

    apply_yaml(&client, Some(ns.name()), &two_job_workflow("first")).await?;
    let api: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    wait_run(
        &api,
        "first",
        "first Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        run_of,
    )
    .await?;

    let leader_metrics = scrape(first.metrics_port).await?;
    let standby_metrics = scrape(second.metrics_port).await?;
    ensure!(
        family_sum(&leader_metrics, WRITES) >= 2.0,
        "the leader wrote (2 Jobs at least):\n{leader_metrics}"
    );
    ensure!(
        family_sum(&standby_metrics, WRITES) == 0.0
            && family_sum(&standby_metrics, RECONCILES) == 0.0,
        "the standby reconciled or wrote:\n{standby_metrics}"
    );
    ensure!(
        !second.manager.logs().contains("created Job"),
        "the standby created a Job:\n{}",
        second.manager.logs()
    );
    ensure!(
        lease_holder(&leases).await?.as_deref() == Some(holder.as_str()),
        "the Lease changed hands while the leader ran"
    );

    // A graceful stop releases the Lease: the standby takes over at once, not after expiry.
    let status = first.manager.stop()?;
    ensure!(status.success(), "the leader exited with {status}");
    second
        .manager
        .wait_for_log("became the leader", Duration::from_secs(20))
        .await?;
    let new_holder = lease_holder(&leases).await?;
    ensure!(
        new_holder.as_deref() != Some(holder.as_str()),
        "the Lease is still held by the stopped leader {holder}"
    );

    apply_yaml(&client, Some(ns.name()), &two_job_workflow("second")).await?;
    wait_run(
        &api,
        "second",
        "second Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        run_of,
    )
    .await?;
    let took_over = scrape(second.metrics_port).await?;
    ensure!(
        family_sum(&took_over, WRITES) >= 2.0,
        "the new leader wrote nothing:\n{took_over}"
    );
    // The new leader resumes from the status: the finished workflow stays Succeeded.
    let first_run = api.get("first").await?;
    ensure!(
        run_of(&first_run).and_then(|r| r.phase) == Some(Phase::Succeeded),
        "first changed after the handover: {:?}",
        first_run.status
    );
    Ok(())
}
