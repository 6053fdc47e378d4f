//! End-to-end: the Argo CD health checks of `deploy/argocd/jobsmith.dev/<Kind>/health.lua` on live
//! objects (docs/gitops.md).
//!
//! Each kind's states (`support/scenarios.rs`: created, running, succeeded, failed, suspended,
//! invalid spec, template not found, waiting for a usable template, name conflict, override not
//! allowed, generation ahead of observedGeneration, being deleted) are produced on the plane and
//! every one is run through the kind's script by `argocd-lua-health` (gopher-lua with the
//! libraries Argo CD opens for argocd-cm scripts). The verdict must be the one the kind's
//! `health_test.yaml` states for `testdata/<state>.yaml` (the same status and message; numbers in
//! the message may differ, see [`same_verdict`]), and every case of `health_test.yaml` must be
//! produced here: the testdata can always be regenerated from the plane.
//!
//! `JOBSMITH_CAPTURE_ARGOCD=1` (`make argocd-capture`) also writes each live object to
//! `testdata/<state>.yaml` (managedFields dropped, namespace `jobsmith-demo`), which
//! `make argocd-health` then checks without a cluster, as Argo CD's own health tests do.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use jobsmith_e2e::witness::gitops::{Verdict, argocd_health};
use jobsmith_e2e::workspace_root;
use serde::Deserialize;
use serde_json::Value;
use support::World;
use support::scenarios::{self, Scenario};

const CAPTURE_ENV: &str = "JOBSMITH_CAPTURE_ARGOCD";
/// The namespace written into captures (the test namespaces have random names).
const CAPTURE_NAMESPACE: &str = "jobsmith-demo";

fn kind_dir(kind: &str) -> PathBuf {
    workspace_root()
        .join("deploy/argocd/jobsmith.dev")
        .join(kind)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestCase {
    input_path: String,
    health_status: Verdict,
}

#[derive(Deserialize)]
struct TestFile {
    tests: Vec<TestCase>,
}

/// `health_test.yaml` of a kind: verdict by input path.
fn expectations(kind: &str) -> Result<BTreeMap<String, Verdict>> {
    let path = kind_dir(kind).join("health_test.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: TestFile =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file
        .tests
        .into_iter()
        .map(|t| (t.input_path, t.health_status))
        .collect())
}

/// The form kept in testdata: the live object without managedFields, in a fixed namespace.
fn capture_form(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.insert("namespace".into(), Value::String(CAPTURE_NAMESPACE.into()));
    }
    object
}

/// The live verdict matches the stated one: the same status, and the same message up to the
/// numbers in it. Counts depend on the cluster (a DaemonJob waiting for its template counts every
/// schedulable node, and parallel tests add nodes); the captured testdata is checked exactly by
/// `make argocd-health`.
fn same_verdict(want: &Verdict, live: &Verdict) -> bool {
    fn mask(message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        for c in message.chars() {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
        out
    }
    want.status == live.status && mask(&want.message) == mask(&live.message)
}

/// Plays the kind's scenario and checks every captured state against `health_test.yaml`.
async fn check_kind(scenario: Scenario) -> Result<()> {
    let capture = std::env::var(CAPTURE_ENV).is_ok_and(|v| v == "1");
    let kind = scenario.kind;
    let dir = kind_dir(kind);
    let script = dir.join("health.lua");
    let expected = expectations(kind)?;

    let mut world = World::new(&format!("argocd-{}", kind.to_lowercase())).await?;
    let played = scenarios::play(&mut world, &scenario).await?;

    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for state in &played.captured {
        let input = format!("testdata/{}.yaml", state.name);
        seen.insert(input.clone());
        let live = argocd_health(&script, &state.object).await?;
        if capture {
            let form = capture_form(&state.object);
            let text = format!(
                "# {kind} `{}`, captured from the local plane by e2e/tests/argocd_health.rs\n# (make argocd-capture). Regenerate rather than edit.\n{}",
                state.name,
                serde_yaml::to_string(&form)?
            );
            std::fs::create_dir_all(dir.join("testdata"))?;
            std::fs::write(dir.join(&input), text)?;
            // The stored form must read the same as the live object.
            let stored = argocd_health(&script, &form).await?;
            if stored != live {
                failures.push(format!(
                    "{input}: the stored form reads {stored}, the live object {live}"
                ));
            }
        }
        match expected.get(&input) {
            None => failures.push(format!(
                "{input}: no case in {kind}/health_test.yaml; the live object reads {live}"
            )),
            Some(want) if !same_verdict(want, &live) => failures.push(format!(
                "{input}: health_test.yaml says {want}, the live object reads {live}"
            )),
            Some(_) => println!("{kind} {:<28} {live}", state.name),
        }
    }
    for input in expected.keys() {
        if !seen.contains(input) {
            failures.push(format!(
                "{kind}/health_test.yaml tests {input}, which no scenario produces (stale)"
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{kind}: {} of {} states differ:\n{}",
            failures.len(),
            played.captured.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn managedjob_health_on_live_objects() -> Result<()> {
    check_kind(scenarios::managedjob()).await
}

#[tokio::test]
async fn jobflow_health_on_live_objects() -> Result<()> {
    check_kind(scenarios::jobflow()).await
}

#[tokio::test]
async fn daemonjob_health_on_live_objects() -> Result<()> {
    check_kind(scenarios::daemonjob()).await
}

#[tokio::test]
async fn jobrun_health_on_live_objects() -> Result<()> {
    check_kind(scenarios::jobrun()).await
}

#[tokio::test]
async fn jobtemplate_health_on_live_objects() -> Result<()> {
    check_kind(scenarios::jobtemplate()).await
}

/// The four run kinds share one script (their status contract is the same): the copies must not
/// drift apart.
#[test]
fn the_run_kinds_share_one_health_script() -> Result<()> {
    let reference = std::fs::read_to_string(kind_dir("ManagedJob").join("health.lua"))?;
    for kind in ["JobFlow", "DaemonJob", "JobRun"] {
        let copy = std::fs::read_to_string(kind_dir(kind).join("health.lua"))?;
        assert_eq!(
            copy, reference,
            "{kind}/health.lua differs from ManagedJob/health.lua"
        );
    }
    Ok(())
}

/// `deploy/argocd/argocd-cm.yaml`: the five scripts as one patch of Argo CD's `argocd-cm`.
fn argocd_cm_patch() -> Result<String> {
    let mut out = String::from(
        "# Argo CD health checks of the five Jobsmith kinds (docs/gitops.md), generated from\n\
         # deploy/argocd/jobsmith.dev/<Kind>/health.lua by `make generate`: edit those, not this.\n\
         # Merge it into Argo CD's ConfigMap:\n\
         #   kubectl -n argocd patch configmap argocd-cm --patch-file deploy/argocd/argocd-cm.yaml\n\
         data:\n",
    );
    for kind in [
        "DaemonJob",
        "JobFlow",
        "JobRun",
        "JobTemplate",
        "ManagedJob",
    ] {
        let script = std::fs::read_to_string(kind_dir(kind).join("health.lua"))?;
        out.push_str(&format!(
            "  resource.customizations.health.jobsmith.dev_{kind}: |\n"
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    Ok(out)
}

/// The patch is generated from the scripts (`make generate` rewrites it).
#[test]
fn the_argocd_cm_patch_is_generated_from_the_scripts() -> Result<()> {
    let path = workspace_root().join("deploy/argocd/argocd-cm.yaml");
    let want = argocd_cm_patch()?;
    if std::env::var("JOBSMITH_UPDATE_GENERATED").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want)?;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `make generate`",
        path.display()
    );
    // It is valid YAML whose keys hold the scripts unchanged.
    let parsed: serde_yaml::Value = serde_yaml::from_str(&have)?;
    let managedjob = parsed["data"]["resource.customizations.health.jobsmith.dev_ManagedJob"]
        .as_str()
        .context("the ManagedJob key")?;
    assert_eq!(
        managedjob,
        std::fs::read_to_string(kind_dir("ManagedJob").join("health.lua"))?
    );
    Ok(())
}

/// docs/gitops.md shows the argocd-cm entry of a ManagedJob with the current script.
#[test]
fn the_docs_show_the_current_script() -> Result<()> {
    let docs = std::fs::read_to_string(workspace_root().join("docs/gitops.md"))?;
    let patch = argocd_cm_patch()?;
    let start = patch
        .find("  resource.customizations.health.jobsmith.dev_ManagedJob: |")
        .context("the ManagedJob entry")?;
    let entry = &patch[start..];
    assert!(
        docs.contains(entry.trim_end()),
        "docs/gitops.md does not show the current ManagedJob entry of deploy/argocd/argocd-cm.yaml; copy it from there"
    );
    Ok(())
}
