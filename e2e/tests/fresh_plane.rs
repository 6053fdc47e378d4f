//! Tests that need a plane of their own, because what they do would break the tests beside
//! them on the shared plane:
//! - a manager started before its CRDs exist (the order of a fresh install): it waits, becomes
//!   ready promptly once the CRDs are installed, and then runs a workflow;
//! - the API server restarted and etcd paused for 10 s in the middle of a run: the run finishes,
//!   every Job is created once (audit log), `/readyz` is false while the watches are down, and
//!   the first Job of a workflow created right after the API server is back follows within
//!   seconds (the watch backoff is capped at 1 s plus jitter; measured from the API server's own `/readyz`);
//! - the API server killed for 25 s under two managers on one Lease: the leader steps down at
//!   its renew deadline, the standby takes over once the API server is back, and the audit log
//!   shows one writer at a time and every Job created once.
//!
//! The
//! test starts a second local plane (1 node) on free ports with `e2e/scripts/cluster-up.sh`,
//! building the tools first if they are not cached, and stops it at the end.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{ManagedJob, Phase};
use jobsmith_e2e::{PrivatePlane, apply_yaml, http_get, install_crds_on};
use kube::api::Api;
use support::pair::Pair;
use support::{StartedManager, mj_status, start_manager_process, two_job_workflow, wait_run};

/// How long `/readyz` may take after the CRDs are Established. Before the readiness fix it was
/// 26 s (a lost wakeup, woken only by a 30 s log timer); now it is well under a second.
const READY_AFTER_CRDS: Duration = Duration::from_secs(15);

async fn readyz(port: u16) -> (u16, String) {
    http_get(&format!("127.0.0.1:{port}"), "/readyz")
        .await
        .unwrap_or((0, String::new()))
}

#[tokio::test]
async fn a_manager_started_before_its_crds_becomes_ready_when_they_appear() -> Result<()> {
    let plane = PrivatePlane::start("fresh", 1)?;
    let client = plane.client().await?;
    let kubeconfig = plane.kubeconfig().to_string_lossy().into_owned();
    let StartedManager {
        mut manager,
        health_port,
        ..
    } = start_manager_process("fresh-plane", &[], &[("KUBECONFIG", &kubeconfig)])?;
    manager
        .wait_for_log("starting jobsmith", Duration::from_secs(30))
        .await?;
    // No CRDs: alive, not ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, body) = readyz(health_port).await;
    ensure!(code == 503, "/readyz without CRDs: {code} {body}");
    ensure!(manager.is_running(), "the manager exited without its CRDs");

    install_crds_on(&client).await?;
    let established = Instant::now();
    let ready = jobsmith_e2e::eventually("/readyz answers 200", READY_AFTER_CRDS, || async {
        Ok((readyz(health_port).await.0 == 200).then_some(()))
    })
    .await;
    let took = established.elapsed();
    if ready.is_err() {
        let (code, body) = readyz(health_port).await;
        bail!(
            "not ready {took:?} after the CRDs were Established: /readyz {code} {body}; log {}",
            manager.log_path().display()
        );
    }
    println!("ready_after_crds_ms: {} ms", took.as_millis());

    // And it works: a workflow runs to completion.
    let namespace = "default";
    apply_yaml(&client, Some(namespace), &two_job_workflow("after-crds")).await?;
    let api: Api<ManagedJob> = Api::namespaced(client.clone(), namespace);
    wait_run(
        &api,
        "after-crds",
        "ManagedJob after-crds Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        mj_status,
    )
    .await?;
    manager.stop()?;
    drop(plane);
    Ok(())
}

/// The PID a plane component was started with.
fn component_pid(plane: &PrivatePlane, name: &str) -> Result<u32> {
    let path = plane.run_dir().join("pids").join(format!("{name}.pid"));
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .parse()?)
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -{name} {pid}: {status}");
    Ok(())
}

/// Kills the plane's API server (SIGKILL); returns its command line, to start it again.
fn kill_apiserver(plane: &PrivatePlane) -> Result<Vec<String>> {
    let pid = component_pid(plane, "kube-apiserver")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ensure!(!argv.is_empty(), "no command line for kube-apiserver {pid}");
    signal(pid, "KILL")?;
    Ok(argv)
}

/// An API server started again by a test: not in the plane's pid files, so it is killed here
/// when dropped (declare it after the plane, so it goes first).
struct Restarted(std::process::Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the API server again with the command line [`kill_apiserver`] returned.
fn restart_apiserver(plane: &PrivatePlane, argv: &[String]) -> Result<Restarted> {
    let log = std::fs::File::create(plane.run_dir().join("logs/kube-apiserver-restarted.log"))?;
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("restarting kube-apiserver")?;
    Ok(Restarted(child))
}

/// Waits until the API server serves again (a list through etcd answers); returns when.
/// When the restarted API server is ready again: its own `/readyz` answers `ok` (which waits for
/// its storage and its informers, CRDs included), polled through kubectl.
async fn api_back(plane: &PrivatePlane) -> Result<Instant> {
    let kubeconfig = plane.kubeconfig().to_string_lossy().into_owned();
    jobsmith_e2e::eventually("the API server ready", Duration::from_secs(60), || {
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = jobsmith_e2e::kubectl(&[
                "--kubeconfig",
                &kubeconfig,
                "get",
                "--raw",
                "/readyz",
                "--request-timeout=2s",
            ])
            .await?;
            Ok((out.success && out.stdout.trim() == "ok").then(Instant::now))
        }
    })
    .await
}

#[tokio::test]
async fn an_api_server_restart_mid_run_loses_nothing_and_recovers_within_seconds() -> Result<()> {
    let plane = PrivatePlane::start("api-restart", 1)?;
    let client = plane.client().await?;
    install_crds_on(&client).await?;
    let kubeconfig = plane.kubeconfig().to_string_lossy().into_owned();
    let StartedManager {
        mut manager,
        health_port,
        ..
    } = start_manager_process("api-restart", &[], &[("KUBECONFIG", &kubeconfig)])?;
    manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;
    let namespace = "default";
    apply_yaml(&client, Some(namespace), &support::chain("during", 8, 1000)).await?;
    let flows: Api<jobsmith_api::JobFlow> = Api::namespaced(client.clone(), namespace);
    wait_run(
        &flows,
        "during",
        "two steps done",
        |r| {
            r.progress
                .as_deref()
                .is_some_and(|p| p.starts_with('2') || p.starts_with('3'))
        },
        |f| f.status.as_ref().map(|s| &s.run),
    )
    .await?;

    // The outage: etcd paused, the API server killed; 10 s later both come back, the API
    // server with its own command line.
    let etcd = component_pid(&plane, "etcd")?;
    signal(etcd, "STOP")?;
    let argv = kill_apiserver(&plane)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, _) = readyz(health_port).await;
    ensure!(code == 503, "/readyz during the outage: {code}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    signal(etcd, "CONT")?;
    let _restarted = restart_apiserver(&plane, &argv)?;
    let api_ready = api_back(&plane).await?;
    apply_yaml(&client, Some(namespace), &support::chain("after", 1, 0)).await?;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), namespace);
    jobsmith_e2e::eventually(
        "the first Job after the outage",
        Duration::from_secs(60),
        || async { Ok(jobs.get_opt("after-s0").await?) },
    )
    .await?;
    let recovery = api_ready.elapsed();
    println!("recovery_first_job_ms: {} ms", recovery.as_millis());
    // The target is 5 s (measured 4.5 s on an idle 2-core machine); the bound leaves room for a
    // loaded CI machine (before the capped watch backoff it was 20 s and more).
    ensure!(
        recovery <= Duration::from_secs(15),
        "first Job {recovery:?} after the API server was back"
    );
    for run in ["during", "after"] {
        wait_run(
            &flows,
            run,
            "the run Succeeded",
            |r| r.phase == Some(Phase::Succeeded),
            |f| f.status.as_ref().map(|s| &s.run),
        )
        .await?;
    }
    ensure!(
        readyz(health_port).await.0 == 200,
        "/readyz after the outage"
    );
    let events = jobsmith_e2e::audit_events_at(&plane.run_dir().join("logs/audit.log"), namespace)?;
    let creates = jobsmith_e2e::job_creates_in(&events)?;
    ensure!(
        creates.len() == 9 && creates.values().all(|n| *n == 1),
        "{creates:?}"
    );
    manager.stop()?;
    Ok(())
}

/// The Lease timing of `controllers/manager/src/leader.rs` (not exported by the binary).
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
const RETRY_PERIOD: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const OUTAGE: Duration = Duration::from_secs(25);

/// Issue 15: the API server killed for 25 s under two managers on one Lease. The leader cannot
/// renew: it stops writing at its renew deadline on its own clock and exits non-zero, long
/// before the API server is back; the standby takes over once it is back (the record it saw is
/// older than the Lease duration by then), finishes the run, and the audit log shows every Job
/// created once and no write from two identities in overlapping Lease terms.
#[tokio::test]
async fn an_api_server_outage_of_25_s_under_two_managers_leaves_one_writer_at_a_time() -> Result<()>
{
    let plane = PrivatePlane::start("outage-leader", 1)?;
    let mut pair = Pair::start_on(&plane, "outage").await?;
    let steps = 10;
    apply_yaml(
        &pair.client,
        Some(pair.namespace()),
        &support::chain("outage", steps, 1500),
    )
    .await?;
    pair.wait_steps_done("outage", 2).await?;

    let argv = kill_apiserver(&plane)?;
    let killed = Instant::now();
    // The leader's renewals fail from now on. Its fence closed at the renew deadline after the
    // start of its last successful renewal; the renew loop notices at its next check: at most
    // RENEW_DEADLINE + RETRY_PERIOD + REQUEST_TIMEOUT (one more sleep and one timed-out
    // attempt) after the kill. 1 s more for the log poll and a busy machine.
    pair.a
        .manager
        .wait_for_log("leader election lost", OUTAGE)
        .await?;
    let stepped_down = killed.elapsed();
    println!(
        "step_down_after_apiserver_kill_ms: {} ms",
        stepped_down.as_millis()
    );
    ensure!(
        stepped_down <= RENEW_DEADLINE + RETRY_PERIOD + REQUEST_TIMEOUT + Duration::from_secs(1),
        "the leader stepped down {stepped_down:?} after the API server went away"
    );
    ensure!(
        !pair.b.manager.logs().contains("became the leader"),
        "the standby became the leader while the API server was down"
    );
    tokio::time::sleep(OUTAGE.saturating_sub(killed.elapsed())).await;
    let _restarted = restart_apiserver(&plane, &argv)?;
    let back = api_back(&plane).await?;
    println!(
        "apiserver_outage_ms: {} ms",
        back.duration_since(killed).as_millis()
    );

    // Either manager could lead after the outage as far as the audit check goes; by leader.rs
    // the old leader has stepped down and exits (never to lead again: it is a process that lost
    // its Lease), so the standby must take over, at its first attempt once the API server
    // answers: the record it saw is older than the Lease duration by then. An attempt is at most
    // RETRY_PERIOD + REQUEST_TIMEOUT apart from the next; two of them, as the first may still
    // meet an API server that is not quite ready.
    pair.b
        .manager
        .wait_for_log("became the leader", Duration::from_secs(60))
        .await?;
    let takeover = back.elapsed();
    println!(
        "takeover_after_apiserver_back_ms: {} ms",
        takeover.as_millis()
    );
    ensure!(
        takeover <= 2 * (RETRY_PERIOD + REQUEST_TIMEOUT),
        "the standby took over {takeover:?} after the API server was back"
    );
    pair.finish_and_audit("outage", steps).await?;
    let status = pair.a.manager.exit_status();
    ensure!(
        status.is_some_and(|s| !s.success()),
        "the leader that lost its Lease exited with {status:?}, not with a failure"
    );
    // The managers stop while the API server still serves (the restarted one is killed when
    // `_restarted` is dropped).
    drop(pair);
    Ok(())
}
