//! Leader election end to end (SPEC §7): two managers on one Lease, only the leader writes; when
//! it stops, the standby takes over and finishes the work.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{
    TestNamespace, apply_yaml, client, http_get, impersonating_kubeconfig, install_crds,
};
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

/// Two managers on one Lease in their own namespace, each impersonating a user of its own (so
/// the audit log tells their writes apart); the first is the leader with its caches synced.
struct Pair {
    client: kube::Client,
    ns: TestNamespace,
    users: [String; 2],
    a: support::StartedManager,
    b: support::StartedManager,
}

impl Pair {
    async fn start(prefix: &str) -> Result<Self> {
        let client = client().await?;
        install_crds(&client).await?;
        let ns = TestNamespace::new(&client, prefix).await?;
        let dir = std::env::temp_dir().join(format!("jobsmith-e2e-{}", ns.name()));
        let users = [format!("{}-a", ns.name()), format!("{}-b", ns.name())];
        let configs: Vec<String> = users
            .iter()
            .map(|u| {
                std::fs::create_dir_all(&dir)?;
                let source = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
                let path = dir.join(format!("kubeconfig-as-{u}"));
                impersonating_kubeconfig(
                    std::path::Path::new(&source),
                    u,
                    &["system:masters"],
                    &path,
                )?;
                Ok(path.to_string_lossy().into_owned())
            })
            .collect::<Result<_>>()?;
        let args = [
            "--leader-elect",
            "--namespace",
            ns.name(),
            "--leader-election-namespace",
            ns.name(),
        ];
        let mut a = support::start_manager_process(
            &format!("{prefix}-a"),
            &args,
            &[("KUBECONFIG", &configs[0])],
        )?;
        a.manager
            .wait_for_log("became the leader", Duration::from_secs(60))
            .await?;
        let mut b = support::start_manager_process(
            &format!("{prefix}-b"),
            &args,
            &[("KUBECONFIG", &configs[1])],
        )?;
        b.manager
            .wait_for_log("waiting to become the leader", Duration::from_secs(60))
            .await?;
        a.manager
            .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
            .await?;
        Ok(Self {
            client,
            ns,
            users,
            a,
            b,
        })
    }

    /// Waits for the run to succeed and the old leader (`a`) to exit, then checks the audit log:
    /// no write of `a` after `b`'s first, and each of `steps` Jobs created once.
    async fn finish_and_audit(&mut self, run: &str, steps: usize) -> Result<()> {
        let flows: Api<jobsmith_api::JobFlow> =
            Api::namespaced(self.client.clone(), self.ns.name());
        wait_run(
            &flows,
            run,
            "the run finished under the new leader",
            |s| s.phase == Some(Phase::Succeeded),
            |f| f.status.as_ref().map(|s| &s.run),
        )
        .await?;
        let exited = std::time::Instant::now();
        while self.a.manager.is_running() {
            ensure!(
                exited.elapsed() < Duration::from_secs(30),
                "the old leader did not exit"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events = jobsmith_e2e::audit_events(self.ns.name())?;
        let writes_by = |user: &str| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.succeeded() && e.resource() != Some("leases"))
                .filter(|e| audit_user(e) == Some(user))
                .filter_map(|e| e.request_received_timestamp.clone())
                .collect()
        };
        let first_of_b = writes_by(&self.users[1])
            .into_iter()
            .min()
            .context("the new leader wrote nothing")?;
        let late_a: Vec<String> = writes_by(&self.users[0])
            .into_iter()
            .filter(|t| *t >= first_of_b)
            .collect();
        ensure!(
            late_a.is_empty(),
            "the old leader wrote after its successor's first write ({first_of_b}): {late_a:?}"
        );
        let creates = jobsmith_e2e::job_creates(self.ns.name())?;
        ensure!(
            creates.len() == steps && creates.values().all(|n| *n == 1),
            "{creates:?}"
        );
        Ok(())
    }
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
        Some(pair.ns.name()),
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

/// Someone edits the Lease to name another holder: the old leader sees it at its next renewal,
/// stops writing and exits; the standby takes over once the edited record expires; never two
/// writers.
#[tokio::test]
async fn a_lease_taken_over_by_an_edit_moves_every_write_to_the_new_holder() -> Result<()> {
    let mut pair = Pair::start("lease-edit").await?;
    apply_yaml(
        &pair.client,
        Some(pair.ns.name()),
        &support::chain("edited", 8, 1500),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leases: Api<Lease> = Api::namespaced(pair.client.clone(), pair.ns.name());
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

fn audit_user(event: &jobsmith_e2e::AuditEvent) -> Option<&str> {
    event.impersonated_user.as_ref()?.username.as_deref()
}
