//! The kustomize files of `deploy/kustomize/`, rendered with `kubectl kustomize`:
//!
//! * `examples/prefixed-run`: with the `components/jobsmith-references` component, a name prefix
//!   and suffix rename the JobTemplate and every reference to it (JobRun `templateRef`, JobFlow
//!   `jobTemplateRef`); without it the references would dangle (checked, so the test can fail).
//!   Applied to the plane, the prefixed JobRun and JobFlow run to completion on the prefixed
//!   template.
//! * `overlays/example`: the base (CRDs, RBAC, Deployment) moved to another namespace with the
//!   image, replicas and arguments of the overlay. (It is applied to a plane of its own in
//!   `chart.rs`, because it installs CRDs and cluster RBAC.)

mod support;

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, JobRun, Phase};
use jobsmith_e2e::{kubectl_ok, parse_yaml, workspace_root};
use k8s_openapi::api::batch::v1::Job;
use serde_json::Value;
use support::{World, wait_run};

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn kustomize(dir: &Path) -> Result<Vec<Value>> {
    let out = kubectl_ok(&["kustomize", &dir.to_string_lossy()]).await?;
    parse_yaml(&out)?
        .iter()
        .map(|d| Ok(serde_json::to_value(d)?))
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} in {docs:#?}"))
}

#[tokio::test]
async fn a_prefixed_jobtemplate_and_its_jobrun_run_through_the_reference_component() -> Result<()> {
    let example = workspace_root().join("deploy/kustomize/examples/prefixed-run");
    let docs = kustomize(&example).await?;
    named(&docs, "JobTemplate", "team-a-echo-v2")?;
    let run = named(&docs, "JobRun", "team-a-hello-v2")?;
    ensure!(
        run["spec"]["templateRef"] == "team-a-echo-v2",
        "JobRun templateRef not rewritten: {run}"
    );
    let flow = named(&docs, "JobFlow", "team-a-flow-v2")?;
    let refs: Vec<&Value> = flow["spec"]["flows"]
        .as_array()
        .context("flows")?
        .iter()
        .map(|f| &f["jobTemplateRef"])
        .collect();
    ensure!(
        refs.iter().all(|r| *r == "team-a-echo-v2") && refs.len() == 2,
        "JobFlow jobTemplateRefs not rewritten: {flow}"
    );

    // Without the component kustomize leaves the references alone (what the component fixes).
    let plain = std::env::temp_dir().join(format!("jobsmith-e2e-kustomize-{}", std::process::id()));
    std::fs::create_dir_all(&plain)?;
    std::fs::copy(example.join("workflow.yaml"), plain.join("workflow.yaml"))?;
    std::fs::write(
        plain.join("kustomization.yaml"),
        "namePrefix: team-a-\nnameSuffix: -v2\nresources: [workflow.yaml]\n",
    )?;
    let without = kustomize(&plain).await?;
    let _ = std::fs::remove_dir_all(&plain);
    ensure!(
        named(&without, "JobRun", "team-a-hello-v2")?["spec"]["templateRef"] == "echo",
        "kustomize rewrote templateRef without the component; the test proves nothing"
    );

    // Applied to the plane: the prefixed pair runs.
    let w = World::new("kustomize").await?;
    let rendered = kubectl_ok(&["kustomize", &example.to_string_lossy()]).await?;
    w.apply(&rendered).await?;
    let run = wait_run(
        &w.api::<JobRun>(),
        "team-a-hello-v2",
        "JobRun team-a-hello-v2 Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    let job_name = run
        .status
        .as_ref()
        .and_then(|s| s.job_name.clone())
        .context("the JobRun names no Job")?;
    let job = w.api::<Job>().get(&job_name).await?;
    let container = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .context("the Job has no container")?;
    ensure!(
        container.name == "echo"
            && container.args.as_deref() == Some(&["hello from a prefixed JobRun".to_owned()][..]),
        "the Job does not come from the prefixed template with the run's args: {container:?}"
    );
    wait_run(
        &w.api::<JobFlow>(),
        "team-a-flow-v2",
        "JobFlow team-a-flow-v2 Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_example_overlay_moves_the_base_to_its_namespace_and_registry() -> Result<()> {
    let docs = kustomize(&workspace_root().join("deploy/kustomize/overlays/example")).await?;
    let crds = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .count();
    ensure!(crds == 5, "{crds} CRDs in the overlay");
    let namespace = named(&docs, "Namespace", "jobsmith-example")?;
    ensure!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted",
        "{namespace}"
    );
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
        );
        ensure!(
            cluster_scoped || doc["metadata"]["namespace"] == "jobsmith-example",
            "{kind} {} is not in jobsmith-example",
            doc["metadata"]["name"]
        );
    }
    let binding = named(&docs, "ClusterRoleBinding", "jobsmith-manager")?;
    ensure!(
        binding["subjects"][0]["namespace"] == "jobsmith-example",
        "{binding}"
    );
    let deployment = named(&docs, "Deployment", "jobsmith")?;
    ensure!(deployment["spec"]["replicas"] == 2, "{deployment}");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    ensure!(
        container["image"] == format!("registry.example/platform/jobsmith:{VERSION}").as_str(),
        "image {}",
        container["image"]
    );
    let args: Vec<String> = serde_json::from_value(container["args"].clone())?;
    ensure!(
        args.iter().any(|a| a == "--leader-elect")
            && args.last().map(String::as_str) == Some("--log-level=debug"),
        "args {args:?}"
    );
    ensure!(
        pod["securityContext"]["runAsNonRoot"] == true
            && pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            && container["securityContext"]["allowPrivilegeEscalation"] == false
            && container["securityContext"]["readOnlyRootFilesystem"] == true
            && container["securityContext"]["capabilities"]["drop"][0] == "ALL",
        "not restricted: {pod}"
    );
    named(&docs, "PodDisruptionBudget", "jobsmith")?;
    Ok(())
}
