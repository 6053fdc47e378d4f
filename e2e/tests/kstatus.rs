//! End-to-end: what Flux sees. kstatus (sigs.k8s.io/cli-utils `pkg/kstatus/status`, which Flux's
//! kustomize-controller and helm-controller use to wait for custom resources) computed by
//! `kstatus-check` on live objects of the five kinds (docs/gitops.md).
//!
//! Each kind's scenario (`support/scenarios.rs`) is played with a watch recording every version
//! of its objects and of the namespace's Jobs. Then, for every object:
//! - each captured state reads as its case says: InProgress while pending or running (also while
//!   waiting for a template, and while suspended: `Ready` is False) and when the spec is ahead of
//!   observedGeneration, Current on success, Failed on every terminal failure, Terminating while
//!   being deleted;
//! - every recorded version with a status reads InProgress until the run is over: never Current
//!   early, never Failed early;
//! - every terminal failure carries `Stalled=True` (kstatus reads a failed run without it as in
//!   progress forever, and Flux's wait hangs);
//! - status is written before the object's first Job: the first version with a status was written
//!   (etcd revision, `metadata.resourceVersion`) before the first Job the object controls was
//!   created. Until then the object has no status, and kstatus reads an object without status as
//!   Current: a Flux `wait` that looks in that moment passes before anything ran.
//!
//! The captured states are also evaluated with the `healthCheckExprs` of
//! `deploy/flux/health-check-exprs.yaml` (shown in docs/gitops.md), as Flux evaluates them.
//!
//! All problems of a kind are collected and reported together.

mod support;

use anyhow::{Result, bail};
use jobsmith_e2e::witness::gitops::{flux_health, kstatus};
use jobsmith_e2e::witness::history::Version;
use jobsmith_e2e::workspace_root;
use support::World;
use support::scenarios::{self, Scenario};

fn terminal(v: &Version) -> bool {
    matches!(v.phase(), Some("Succeeded" | "Failed"))
}

async fn check_kind(scenario: Scenario) -> Result<()> {
    let kind = scenario.kind;
    let mut world = World::new(&format!("kstatus-{}", kind.to_lowercase())).await?;
    let played = scenarios::play(&mut world, &scenario).await?;
    let mut problems = Vec::new();

    // The captured states.
    let objects: Vec<_> = played.captured.iter().map(|c| c.object.clone()).collect();
    let verdicts = kstatus(&objects).await?;
    for (state, verdict) in played.captured.iter().zip(&verdicts) {
        if verdict.status == state.kstatus {
            println!("{kind} {:<26} {verdict}", state.name);
        } else {
            problems.push(format!(
                "{kind} state {}: kstatus {verdict}, expected {}",
                state.name, state.kstatus
            ));
        }
    }

    // The same states with the healthCheckExprs of docs/gitops.md.
    let exprs = workspace_root().join("deploy/flux/health-check-exprs.yaml");
    let verdicts = flux_health(&objects, &exprs).await?;
    for (state, verdict) in played.captured.iter().zip(&verdicts) {
        if verdict.status != state.flux {
            problems.push(format!(
                "{kind} state {} with deploy/flux/health-check-exprs.yaml: {verdict}, expected {}",
                state.name, state.flux
            ));
        }
    }

    // Every recorded version of every object of the scenario (the subject's history stops at
    // the manager's stop: what follows is the test's own doing).
    let all = played.objects.all()?;
    let jobs = played.jobs.all()?;
    let mut names: Vec<&str> = all.iter().map(Version::name).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let mut versions: Vec<&Version> = all.iter().filter(|v| v.name() == name).collect();
        if name == scenario.subject
            && let Some(stop) = versions.iter().position(|v| {
                v.object
                    .pointer("/metadata/generation")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(1)
                    > 1
                    || v.object.pointer("/metadata/deletionTimestamp").is_some()
            })
        {
            versions.truncate(stop);
        }
        let values: Vec<_> = versions.iter().map(|v| v.object.clone()).collect();
        let verdicts = kstatus(&values).await?;
        let is_run = kind != "JobTemplate";
        let mut over = false;
        for (v, verdict) in versions.iter().zip(&verdicts) {
            let Some(_) = v.status() else { continue };
            let rv = v.resource_version;
            if is_run && terminal(v) {
                over = true;
                let want = if v.phase() == Some("Failed") {
                    "Failed"
                } else {
                    "Current"
                };
                if v.phase() == Some("Failed")
                    && v.condition_status("Stalled").map(|s| s.0) != Some("True")
                {
                    problems.push(format!(
                        "{kind} {name} (resourceVersion {rv}): phase Failed without Stalled=True"
                    ));
                }
                if verdict.status != want {
                    problems.push(format!(
                        "{kind} {name} (resourceVersion {rv}, phase {:?}): kstatus {verdict}, expected {want}",
                        v.phase()
                    ));
                }
            } else if is_run && !over && verdict.status != "InProgress" {
                problems.push(format!(
                    "{kind} {name} (resourceVersion {rv}, phase {:?}, before the run is over): kstatus {verdict}, expected InProgress",
                    v.phase()
                ));
            } else if is_run && over && !terminal(v) {
                problems.push(format!(
                    "{kind} {name} (resourceVersion {rv}): phase {:?} after the run was over",
                    v.phase()
                ));
            }
        }

        // Status before the first Job.
        let Some(uid) = versions.first().map(|v| v.uid().to_owned()) else {
            continue;
        };
        let first_job = jobs
            .iter()
            .find(|j| j.controller_uid() == Some(uid.as_str()));
        if let Some(job) = first_job {
            match versions.iter().find(|v| v.status().is_some()) {
                Some(first) if first.resource_version < job.resource_version => {
                    println!(
                        "{kind} {name}: status first written at resourceVersion {} (phase {:?}), before Job {} at {}",
                        first.resource_version,
                        first.phase(),
                        job.name(),
                        job.resource_version
                    );
                }
                Some(first) => problems.push(format!(
                    "{kind} {name}: the first status (resourceVersion {}, phase {:?}) was written after its first Job {} was created (resourceVersion {}; etcd revisions): until then the object had no status and read Current to kstatus",
                    first.resource_version,
                    first.phase(),
                    job.name(),
                    job.resource_version
                )),
                None => problems.push(format!(
                    "{kind} {name}: Job {} exists but the object never got a status",
                    job.name()
                )),
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{kind}: {} kstatus problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn managedjob_kstatus_through_every_phase() -> Result<()> {
    check_kind(scenarios::managedjob()).await
}

#[tokio::test]
async fn jobflow_kstatus_through_every_phase() -> Result<()> {
    check_kind(scenarios::jobflow()).await
}

#[tokio::test]
async fn daemonjob_kstatus_through_every_phase() -> Result<()> {
    check_kind(scenarios::daemonjob()).await
}

#[tokio::test]
async fn jobrun_kstatus_through_every_phase() -> Result<()> {
    check_kind(scenarios::jobrun()).await
}

#[tokio::test]
async fn jobtemplate_kstatus_on_valid_and_invalid_templates() -> Result<()> {
    check_kind(scenarios::jobtemplate()).await
}

/// docs/gitops.md shows the expressions of `deploy/flux/health-check-exprs.yaml` unchanged (under
/// a Kustomization's `spec:`).
#[test]
fn the_docs_show_the_tested_flux_expressions() -> Result<()> {
    let exprs =
        std::fs::read_to_string(workspace_root().join("deploy/flux/health-check-exprs.yaml"))?;
    let docs = std::fs::read_to_string(workspace_root().join("docs/gitops.md"))?;
    let start = exprs
        .find("healthCheckExprs:")
        .ok_or_else(|| anyhow::anyhow!("no healthCheckExprs in the file"))?;
    let block: Vec<String> = exprs[start..]
        .trim_end()
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect();
    assert!(
        docs.contains(&block.join("\n")),
        "docs/gitops.md does not show deploy/flux/health-check-exprs.yaml as it is; copy it under the example's spec:"
    );
    Ok(())
}
