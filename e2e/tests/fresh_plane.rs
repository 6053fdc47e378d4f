//! A manager started before its CRDs exist (the order of a fresh install): it waits, becomes
//! ready promptly once the CRDs are installed, and then runs a workflow. This needs a plane of
//! its own, because deleting the CRDs of the shared plane would break the tests beside it: the
//! test starts a second local plane (1 node) on free ports with `e2e/scripts/cluster-up.sh`,
//! building the tools first if they are not cached, and stops it at the end.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use jobsmith_api::{ManagedJob, Phase};
use jobsmith_e2e::{PrivatePlane, apply_yaml, http_get, install_crds};
use kube::api::Api;
use support::{StartedManager, start_manager_process, two_job_workflow, wait_run};

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

    install_crds(&client).await?;
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
        |m| m.status.as_ref().map(|s| &s.run),
    )
    .await?;
    manager.stop()?;
    drop(plane);
    Ok(())
}
