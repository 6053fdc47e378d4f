//! Leader election end to end (SPEC §7): two managers on one Lease, only the leader writes; when
//! it stops, the standby takes over and finishes the work.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{TestNamespace, apply_yaml, client, http_get, install_crds};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use support::pair::Pair;
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

/// A leader paused (SIGSTOP) past its Lease: the standby takes over within the Lease duration
/// plus a retry period, and the resumed former leader writes nothing at all — no Job, no status,
/// no Event — before it exits. The audit log, which names each manager's user, is the witness.
#[tokio::test]
async fn a_paused_leader_writes_nothing_after_its_successor_took_over() -> Result<()> {
    let mut pair = Pair::start("fence").await?;
    // Steps of 2 s, so the leader has work in flight when it is paused.
    apply_yaml(
        &pair.client,
        Some(pair.namespace()),
        &support::chain("long", 12, 2000),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    pair.a.manager.signal("STOP")?;
    let paused = std::time::Instant::now();
    pair.b
        .manager
        .wait_for_log("became the leader", Duration::from_secs(40))
        .await?;
    let takeover = paused.elapsed();
    eprintln!("takeover after the pause: {:.1} s", takeover.as_secs_f64());
    ensure!(
        takeover <= Duration::from_secs(15 + 2 + 2),
        "takeover took {takeover:?}"
    );
    // Let the new leader write, then resume the old one: it must exit without a write.
    tokio::time::sleep(Duration::from_secs(8)).await;
    pair.a.manager.signal("CONT")?;
    pair.finish_and_audit("long", 12).await
}

/// The Lease timing of `controllers/manager/src/leader.rs` (not exported by the binary).
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// A leader SIGKILLed with a Job in flight: the standby takes over once the Lease expired (not
/// before, not much later), finishes the run, every Job is created once, and the audit log shows
/// no write of the dead leader's identity after its successor's first.
#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_duration() -> Result<()> {
    let mut pair = Pair::start("killed").await?;
    // Steps of 2 s: a Job is running when the leader dies.
    apply_yaml(
        &pair.client,
        Some(pair.namespace()),
        &support::chain("killed", 10, 2000),
    )
    .await?;
    pair.wait_steps_done("killed", 1).await?;
    let status = pair.a.manager.kill_9()?;
    let killed = std::time::Instant::now();
    ensure!(
        !status.success(),
        "the SIGKILLed leader exited with {status}"
    );
    pair.b
        .manager
        .wait_for_log("became the leader", Duration::from_secs(40))
        .await?;
    let takeover = killed.elapsed();
    println!("takeover_after_kill_ms: {} ms", takeover.as_millis());
    // The standby takes over at its first attempt once the record it saw has not changed for
    // LEASE_DURATION of its own time. Its attempts are RETRY_PERIOD apart, so that is up to one
    // retry period after the expiry (15 s is not a multiple of 2 s: 8 attempts, 16 s), and it may
    // first see the leader's last renewal up to one retry period after it was written, when the
    // kill came right after that renewal: up to LEASE_DURATION + 2 * RETRY_PERIOD (19 s), not
    // LEASE_DURATION + RETRY_PERIOD. Nothing above that is slack for the machine.
    ensure!(
        takeover <= LEASE_DURATION + 2 * RETRY_PERIOD,
        "takeover took {takeover:?}"
    );
    // Nor earlier than the Lease allows: the last renewal was at most one retry period (plus the
    // renewal's own round trip, well under 1 s here) before the kill.
    ensure!(
        takeover + RETRY_PERIOD + Duration::from_secs(1) >= LEASE_DURATION,
        "the standby took over {takeover:?} after the kill, before the Lease could expire"
    );
    pair.finish_and_audit("killed", 10).await
}

/// Someone edits the Lease to name another holder: the old leader sees it at its next renewal,
/// stops writing and exits; the standby takes over once the edited record expires; never two
/// writers.
#[tokio::test]
async fn a_lease_taken_over_by_an_edit_moves_every_write_to_the_new_holder() -> Result<()> {
    let mut pair = Pair::start("lease-edit").await?;
    apply_yaml(
        &pair.client,
        Some(pair.namespace()),
        &support::chain("edited", 8, 1500),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leases: Api<Lease> = Api::namespaced(pair.client.clone(), pair.namespace());
    let mut lease = leases.get("jobsmith").await?;
    if let Some(spec) = lease.spec.as_mut() {
        // Someone else's: the leader must step down at its next renewal; the standby takes the
        // Lease once this record has not changed for the Lease duration.
        spec.holder_identity = Some("someone-else".into());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
    }
    leases
        .replace("jobsmith", &Default::default(), &lease)
        .await?;
    pair.b
        .manager
        .wait_for_log("became the leader", Duration::from_secs(40))
        .await?;
    pair.finish_and_audit("edited", 8).await
}
