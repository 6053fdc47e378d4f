//! The Helm chart `charts/jobsmith` and the kustomize base, on a real plane.
//!
//! * Every flag of the `jobsmith` binary (`jobsmith run --help`) is rendered from a value, and the
//!   binary accepts the rendered arguments (no cluster needed).
//! * On a private plane (the test installs CRDs, cluster RBAC and Helm releases, which would
//!   disturb the tests sharing the usual plane): `helm install` into a namespace that enforces
//!   (and warns about) Pod Security `restricted` is admitted without a warning (helm does print
//!   the warning for a privileged variant, so the check can fail); `helm upgrade` from a previous chart whose JobRun
//!   CRD differs lands the change; the manager, run as a host process that impersonates the
//!   chart's ServiceAccount with the Deployment's own arguments, runs a workflow of each kind to
//!   completion; `helm uninstall` keeps the CRDs and the users' objects; a second release limited
//!   to one namespace (`watchNamespaces`) runs a workflow there with Roles only; and the kustomize
//!   example overlay applies onto the same plane under `restricted`, its pods admitted.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{
    ManagerProcess, PrivatePlane, apply_yaml, helm_binary, helm_ok, impersonating_kubeconfig,
    kubectl, parse_yaml, run_tool_ok, status_condition, wait_for, workspace_root,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use support::{
    StartedManager, family_sum, scrape, start_manager_process, two_job_workflow, wait_run,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const RELEASE_NS: &str = "jobsmith-system";
const USER_NS: &str = "team";

fn chart_dir() -> PathBuf {
    workspace_root().join("charts/jobsmith")
}

/// `helm template` of `chart` with extra arguments, as JSON documents.
async fn render(chart: &Path, extra: &[&str]) -> Result<Vec<Value>> {
    let chart = chart.to_string_lossy();
    let mut args = vec![
        "template",
        "jobsmith",
        chart.as_ref(),
        "--namespace",
        RELEASE_NS,
    ];
    args.extend_from_slice(extra);
    let out = run_tool_ok(&helm_binary()?, &args, &[], Duration::from_secs(120)).await?;
    parse_yaml(&out)?
        .iter()
        .map(|d| Ok(serde_json::to_value(d)?))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .with_context(|| format!("no {kind} rendered"))
}

fn container_args(deployment: &Value) -> Result<Vec<String>> {
    Ok(serde_json::from_value(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )?)
}

/// The long flags `jobsmith run --help` lists (without help and version).
fn binary_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',', '=', '<']))
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|f| !f.is_empty() && !matches!(*f, "help" | "version"))
        .map(str::to_owned)
        .collect()
}

fn flag_name(arg: &str) -> Option<&str> {
    arg.strip_prefix("--")
        .map(|f| f.split_once('=').map_or(f, |(name, _)| name))
}

#[tokio::test]
async fn every_manager_flag_is_rendered_from_values_and_accepted_by_the_binary() -> Result<()> {
    let binary = ManagerProcess::binary();
    let help = run_tool_ok(&binary, &["run", "--help"], &[], Duration::from_secs(30)).await?;
    let flags = binary_flags(&help);
    ensure!(
        flags.len() >= 13 && flags.contains("kube-api-qps"),
        "flags of the binary: {flags:?}"
    );
    let every = chart_dir().join("ci/every-flag-values.yaml");
    let every = every.to_string_lossy();
    for values in [vec![], vec!["-f", every.as_ref()]] {
        let docs = render(&chart_dir(), &values).await?;
        let args = container_args(find(&docs, "Deployment")?)?;
        ensure!(args.first().map(String::as_str) == Some("run"), "{args:?}");
        // The binary parses the rendered arguments (clap validates every value before --help).
        let mut check: Vec<&str> = args.iter().map(String::as_str).collect();
        check.push("--help");
        run_tool_ok(&binary, &check, &[], Duration::from_secs(30))
            .await
            .with_context(|| format!("the binary rejects the chart's arguments {args:?}"))?;
        if !values.is_empty() {
            let rendered: BTreeSet<&str> = args.iter().filter_map(|a| flag_name(a)).collect();
            let missing: Vec<&String> = flags
                .iter()
                .filter(|f| !rendered.contains(f.as_str()))
                .collect();
            ensure!(
                missing.is_empty(),
                "flags of `jobsmith run` with no chart value (not rendered with \
                 ci/every-flag-values.yaml): {missing:?}; add a value to charts/jobsmith"
            );
        }
    }
    // The check itself: a bad value is refused before --help.
    let refused = jobsmith_e2e::run_tool(
        &binary,
        &["run", "--concurrency=0", "--help"],
        &[],
        Duration::from_secs(30),
    )
    .await?;
    ensure!(!refused.success, "--concurrency=0 --help was accepted");
    Ok(())
}

/// `kubectl --kubeconfig <plane> args`, failing on a non-zero exit; returns `(stdout, stderr)`.
async fn k(kubeconfig: &Path, args: &[&str]) -> Result<(String, String)> {
    let kc = format!("--kubeconfig={}", kubeconfig.display());
    let mut all = vec![kc.as_str()];
    all.extend_from_slice(args);
    let out = kubectl(&all).await?;
    if !out.success {
        bail!(
            "kubectl {} exited with {:?}:\n{}{}",
            args.join(" "),
            out.code,
            out.stderr,
            out.stdout
        );
    }
    Ok((out.stdout, out.stderr))
}

/// A namespace that enforces and warns about Pod Security `restricted`.
async fn restricted_namespace(kubeconfig: &Path, name: &str) -> Result<()> {
    k(kubeconfig, &["create", "namespace", name]).await?;
    k(
        kubeconfig,
        &[
            "label",
            "namespace",
            name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ],
    )
    .await?;
    Ok(())
}

/// No API warning (Pod Security or other) in a tool's stderr.
fn no_warning(what: &str, stderr: &str) -> Result<()> {
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("warning") || l.contains("podsecurity") || l.contains("would violate")
        })
        .collect();
    ensure!(warnings.is_empty(), "{what} printed warnings: {warnings:?}");
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The chart as a previous release would have had it: version 0.0.1, and a JobRun CRD whose short
/// name is `jrold` instead of `jr`.
fn previous_chart(dir: &Path) -> Result<PathBuf> {
    let previous = dir.join("previous/jobsmith");
    copy_dir(&chart_dir(), &previous)?;
    let crd = previous.join("templates/crds/jobrun.yaml");
    let text = std::fs::read_to_string(&crd)?;
    let changed = text.replace(
        "    shortNames:\n    - jr\n",
        "    shortNames:\n    - jrold\n",
    );
    ensure!(
        changed != text,
        "the JobRun CRD template has no short name `jr`"
    );
    std::fs::write(&crd, changed)?;
    let chart = previous.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart)?;
    std::fs::write(
        &chart,
        text.replace(&format!("version: {VERSION}\n"), "version: 0.0.1\n"),
    )?;
    Ok(previous)
}

async fn short_names(crds: &Api<CustomResourceDefinition>, name: &str) -> Result<Vec<String>> {
    Ok(crds
        .get(name)
        .await?
        .spec
        .names
        .short_names
        .unwrap_or_default())
}

/// Objects of every kind, each a complete small workflow on the fake nodes.
fn workflows(prefix: &str) -> String {
    format!(
        r#"{mj}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: {prefix}-flow}}
spec:
  flows:
  - name: a
    jobTemplate:
      template:
        spec:
          containers: [{{name: main, image: example.invalid/fake:1}}]
  - name: b
    dependencies: [a]
    jobTemplate:
      template:
        spec:
          containers: [{{name: main, image: example.invalid/fake:1}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {{name: {prefix}-per-node}}
spec:
  template:
    spec:
      nodeSelector: {{kubernetes.io/hostname: kwok-node-0}}
      containers: [{{name: main, image: example.invalid/fake:1}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: {prefix}-echo}}
spec:
  template:
    spec:
      containers: [{{name: main, image: example.invalid/fake:1, command: [echo, hi]}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: {prefix}-run}}
spec:
  templateRef: {prefix}-echo
"#,
        mj = two_job_workflow(&format!("{prefix}-wf"))
    )
}

fn succeeded(run: &RunStatus) -> bool {
    run.phase == Some(Phase::Succeeded)
}

/// Waits until every object of [`workflows`] has finished successfully.
async fn wait_workflows(client: &kube::Client, prefix: &str) -> Result<()> {
    let ns = USER_NS;
    let name = |s: &str| format!("{prefix}-{s}");
    wait_run(
        &Api::<ManagedJob>::namespaced(client.clone(), ns),
        &name("wf"),
        "ManagedJob Succeeded",
        succeeded,
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    wait_run(
        &Api::<JobFlow>::namespaced(client.clone(), ns),
        &name("flow"),
        "JobFlow Succeeded",
        succeeded,
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    wait_run(
        &Api::<DaemonJob>::namespaced(client.clone(), ns),
        &name("per-node"),
        "DaemonJob Succeeded",
        succeeded,
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    wait_run(
        &Api::<JobRun>::namespaced(client.clone(), ns),
        &name("run"),
        "JobRun Succeeded",
        succeeded,
        |o| o.status.as_ref().map(|s| &s.run),
    )
    .await?;
    let (templates, _) = jobsmith_e2e::dynamic_api(
        client,
        Some(ns),
        &kube::api::GroupVersionKind::gvk("jobsmith.dev", "v1alpha1", "JobTemplate"),
    )
    .await?;
    let _: DynamicObject = wait_for(
        &templates,
        &name("echo"),
        Duration::from_secs(60),
        status_condition("Ready", "True"),
    )
    .await?;
    Ok(())
}

/// Runs the manager on the host as `system:serviceaccount:<namespace>:<service_account>`, with
/// the arguments of the release's Deployment (probe and metrics addresses moved to free local
/// ports), until `wait_workflows(prefix)` is done; fails on any refused request.
async fn run_as_release(
    plane: &PrivatePlane,
    dir: &Path,
    namespace: &str,
    deployment: &str,
    service_account: &str,
    prefix: &str,
) -> Result<()> {
    let client = plane.client().await?;
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let kubeconfig = dir.join(format!("kubeconfig-as-{service_account}"));
    impersonating_kubeconfig(plane.kubeconfig(), &user, &[], &kubeconfig)?;
    let (json, _) = k(
        plane.kubeconfig(),
        &[
            "get",
            "deployment",
            deployment,
            "-n",
            namespace,
            "-o",
            "json",
        ],
    )
    .await?;
    let args: Vec<String> = container_args(&serde_json::from_str(&json)?)?
        .into_iter()
        .filter(|a| {
            !matches!(
                flag_name(a),
                Some("metrics-bind-address" | "health-probe-bind-address")
            )
        })
        .collect();
    ensure!(args.iter().any(|a| a == "--leader-elect"), "{args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let StartedManager {
        mut manager,
        metrics_port,
        ..
    } = start_manager_process(
        prefix,
        &args,
        &[("KUBECONFIG", &kubeconfig), ("POD_NAMESPACE", namespace)],
    )?;
    manager
        .wait_for_log("became the leader", Duration::from_secs(60))
        .await?;
    apply_yaml(&client, Some(USER_NS), &workflows(prefix)).await?;
    wait_workflows(&client, prefix).await?;
    let text = scrape(metrics_port).await?;
    ensure!(
        family_sum(&text, "jobsmith_reconcile_errors_total") == 0.0,
        "reconcile errors as {user}:\n{text}"
    );
    ensure!(
        !manager.logs().to_lowercase().contains("forbidden"),
        "the manager was refused something as {user}; log {}",
        manager.log_path().display()
    );
    manager.stop()?;
    Ok(())
}

async fn can_i(kubeconfig: &Path, user: &str, verb: &str, what: &str, ns: &[&str]) -> Result<bool> {
    let kc = format!("--kubeconfig={}", kubeconfig.display());
    let mut args = vec![kc.as_str(), "auth", "can-i", verb, what, "--as", user];
    args.extend_from_slice(ns);
    Ok(kubectl(&args).await?.stdout.trim() == "yes")
}

#[tokio::test]
async fn helm_and_kustomize_install_on_a_restricted_plane() -> Result<()> {
    let plane = PrivatePlane::start("chart", 1)?;
    let kc = plane.kubeconfig().to_path_buf();
    let client = plane.client().await?;
    let dir = std::env::temp_dir().join(format!("jobsmith-e2e-chart-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    restricted_namespace(&kc, RELEASE_NS).await?;
    k(&kc, &["create", "namespace", USER_NS]).await?;

    // The warning check can fail: helm prints the API server's Pod Security warning for a
    // release whose container allows privilege escalation.
    restricted_namespace(&kc, "jobsmith-psa-check").await?;
    let (_, stderr) = helm_ok(
        &kc,
        &[
            "install",
            "privileged",
            &chart_dir().to_string_lossy(),
            "--namespace",
            "jobsmith-psa-check",
            "--set",
            "crds.install=false,rbac.create=false,metrics.enabled=false",
            "--set",
            "serviceAccount.create=false,serviceAccount.name=default",
            "--set",
            "securityContext.allowPrivilegeEscalation=true",
        ],
    )
    .await?;
    ensure!(
        stderr.contains("would violate PodSecurity") && no_warning("", &stderr).is_err(),
        "helm printed no Pod Security warning for a privileged variant: {stderr}"
    );
    helm_ok(
        &kc,
        &[
            "uninstall",
            "privileged",
            "--namespace",
            "jobsmith-psa-check",
        ],
    )
    .await?;

    // Install the previous chart, then upgrade to this one.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let previous = previous_chart(&dir)?;
    let (_, stderr) = helm_ok(
        &kc,
        &[
            "install",
            "jobsmith",
            &previous.to_string_lossy(),
            "--namespace",
            RELEASE_NS,
            "--wait",
            "--timeout=180s",
        ],
    )
    .await?;
    no_warning("helm install", &stderr)?;
    ensure!(short_names(&crds, "jobruns.jobsmith.dev").await? == ["jrold"]);

    let (_, stderr) = helm_ok(
        &kc,
        &[
            "upgrade",
            "jobsmith",
            &chart_dir().to_string_lossy(),
            "--namespace",
            RELEASE_NS,
            "--wait",
            "--timeout=180s",
        ],
    )
    .await?;
    no_warning("helm upgrade", &stderr)?;
    ensure!(
        short_names(&crds, "jobruns.jobsmith.dev").await? == ["jr"],
        "the upgrade did not change the JobRun CRD"
    );
    for kind in [
        "managedjobs",
        "jobflows",
        "daemonjobs",
        "jobtemplates",
        "jobruns",
    ] {
        let crd = crds.get(&format!("{kind}.jobsmith.dev")).await?;
        let labels = crd.metadata.labels.unwrap_or_default();
        ensure!(
            labels.get("helm.sh/chart").map(String::as_str) == Some(&format!("jobsmith-{VERSION}")),
            "{kind}: labels {labels:?}"
        );
        let annotations = crd.metadata.annotations.unwrap_or_default();
        ensure!(
            annotations
                .get("helm.sh/resource-policy")
                .map(String::as_str)
                == Some("keep"),
            "{kind}: annotations {annotations:?}"
        );
    }

    // The manager's pod was admitted under `restricted` and runs (on a fake node).
    let (pods, _) = k(
        &kc,
        &[
            "get",
            "pods",
            "-n",
            RELEASE_NS,
            "-l",
            "app.kubernetes.io/name=jobsmith",
            "-o",
            "json",
        ],
    )
    .await?;
    let pods: Value = serde_json::from_str(&pods)?;
    let pod = &pods["items"][0];
    ensure!(pod["status"]["phase"] == "Running", "manager pod: {pod}");
    ensure!(
        pod["spec"]["securityContext"]["runAsNonRoot"] == true
            && pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] == true,
        "manager pod securityContext: {pod}"
    );

    // The chart's ServiceAccount and RBAC are enough for every kind.
    let sa = format!("system:serviceaccount:{RELEASE_NS}:jobsmith");
    // Jobs may be created and (finished, recorded ones) deleted, never updated.
    ensure!(!can_i(&kc, &sa, "update", "jobs.batch", &["-n", USER_NS]).await?);
    ensure!(!can_i(&kc, &sa, "delete", "pods", &["-n", USER_NS]).await?);
    ensure!(!can_i(&kc, &sa, "get", "secrets", &["-n", USER_NS]).await?);
    run_as_release(&plane, &dir, RELEASE_NS, "jobsmith", "jobsmith", "cluster").await?;

    // Uninstall: the release's objects go, the CRDs and the users' objects stay.
    let (out, _) = helm_ok(
        &kc,
        &["uninstall", "jobsmith", "--namespace", RELEASE_NS, "--wait"],
    )
    .await?;
    ensure!(out.contains("kept due to the resource policy"), "{out}");
    let left = k(
        &kc,
        &[
            "get",
            "deployment,serviceaccount",
            "-n",
            RELEASE_NS,
            "-l",
            "app.kubernetes.io/instance=jobsmith",
            "-o",
            "name",
        ],
    )
    .await?
    .0;
    ensure!(left.trim().is_empty(), "left after uninstall: {left}");
    let clusterrole = kubectl(&[
        &format!("--kubeconfig={}", kc.display()),
        "get",
        "clusterrole",
        "jobsmith-manager",
    ])
    .await?;
    ensure!(
        !clusterrole.success,
        "the ClusterRole survived the uninstall"
    );
    for kind in [
        "managedjobs",
        "jobflows",
        "daemonjobs",
        "jobtemplates",
        "jobruns",
    ] {
        crds.get(&format!("{kind}.jobsmith.dev"))
            .await
            .with_context(|| format!("the {kind} CRD is gone after helm uninstall"))?;
    }
    Api::<ManagedJob>::namespaced(client.clone(), USER_NS)
        .get("cluster-wf")
        .await?;
    Api::<JobFlow>::namespaced(client.clone(), USER_NS)
        .get("cluster-flow")
        .await?;
    Api::<DaemonJob>::namespaced(client.clone(), USER_NS)
        .get("cluster-per-node")
        .await?;
    Api::<JobTemplate>::namespaced(client.clone(), USER_NS)
        .get("cluster-echo")
        .await?;
    Api::<JobRun>::namespaced(client.clone(), USER_NS)
        .get("cluster-run")
        .await?;

    // A release limited to one namespace: Roles there, nothing namespaced cluster-wide.
    restricted_namespace(&kc, "jobsmith-scoped").await?;
    let (_, stderr) = helm_ok(
        &kc,
        &[
            "install",
            "scoped",
            &chart_dir().to_string_lossy(),
            "--namespace",
            "jobsmith-scoped",
            "--set",
            "crds.install=false",
            "--set",
            &format!("watchNamespaces={{{USER_NS}}}"),
            "--wait",
            "--timeout=180s",
        ],
    )
    .await?;
    no_warning("helm install (scoped)", &stderr)?;
    let scoped = "system:serviceaccount:jobsmith-scoped:scoped-jobsmith";
    ensure!(
        can_i(
            &kc,
            scoped,
            "list",
            "managedjobs.jobsmith.dev",
            &["-n", USER_NS]
        )
        .await?
    );
    ensure!(
        !can_i(
            &kc,
            scoped,
            "list",
            "managedjobs.jobsmith.dev",
            &["-n", "default"]
        )
        .await?
    );
    ensure!(
        !can_i(
            &kc,
            scoped,
            "list",
            "managedjobs.jobsmith.dev",
            &["--all-namespaces"]
        )
        .await?
    );
    ensure!(can_i(&kc, scoped, "list", "nodes", &[]).await?);
    run_as_release(
        &plane,
        &dir,
        "jobsmith-scoped",
        "scoped-jobsmith",
        "scoped-jobsmith",
        "scoped",
    )
    .await?;
    helm_ok(
        &kc,
        &[
            "uninstall",
            "scoped",
            "--namespace",
            "jobsmith-scoped",
            "--wait",
        ],
    )
    .await?;

    // The kustomize example overlay onto the same plane (CRDs included: the same as the chart's).
    let overlay = workspace_root().join("deploy/kustomize/overlays/example");
    let (rendered, _) = k(&kc, &["kustomize", &overlay.to_string_lossy()]).await?;
    let file = dir.join("kustomize-example.yaml");
    std::fs::write(&file, &rendered)?;
    let (_, stderr) = k(
        &kc,
        &["apply", "--server-side", "-f", &file.to_string_lossy()],
    )
    .await?;
    no_warning("kubectl apply of the kustomize overlay", &stderr)?;
    let (labels, _) = k(
        &kc,
        &[
            "get",
            "namespace",
            "jobsmith-example",
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    )
    .await?;
    ensure!(
        labels.contains("\"pod-security.kubernetes.io/enforce\":\"restricted\""),
        "{labels}"
    );
    k(
        &kc,
        &[
            "rollout",
            "status",
            "deployment/jobsmith",
            "-n",
            "jobsmith-example",
            "--timeout=180s",
        ],
    )
    .await?;
    let (ready, _) = k(
        &kc,
        &[
            "get",
            "deployment",
            "jobsmith",
            "-n",
            "jobsmith-example",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
    )
    .await?;
    ensure!(
        ready == "2",
        "ready replicas of the kustomize Deployment: {ready}"
    );
    k(
        &kc,
        &[
            "get",
            "poddisruptionbudget",
            "jobsmith",
            "-n",
            "jobsmith-example",
        ],
    )
    .await?;
    let example = "system:serviceaccount:jobsmith-example:jobsmith";
    ensure!(can_i(&kc, example, "create", "jobs.batch", &["-n", USER_NS]).await?);
    ensure!(
        can_i(
            &kc,
            example,
            "update",
            "leases.coordination.k8s.io",
            &["-n", "jobsmith-example"]
        )
        .await?
    );

    drop(plane);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The kustomize base's Deployment is written by hand as the chart renders it: the parts that
/// matter for admission and health must stay the same (arguments may differ: the base leaves the
/// defaults to the binary).
#[tokio::test]
async fn the_kustomize_base_deployment_matches_the_chart_defaults() -> Result<()> {
    let docs = render(&chart_dir(), &[]).await?;
    let chart = &find(&docs, "Deployment")?["spec"]["template"]["spec"];
    let base = jobsmith_e2e::kubectl_ok(&[
        "kustomize",
        &workspace_root()
            .join("deploy/kustomize/base")
            .to_string_lossy(),
    ])
    .await?;
    let base: Vec<Value> = parse_yaml(&base)?
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let kustomize = &find(&base, "Deployment")?["spec"]["template"]["spec"];
    ensure!(
        chart["securityContext"] == kustomize["securityContext"],
        "pod securityContext: chart {} kustomize {}",
        chart["securityContext"],
        kustomize["securityContext"]
    );
    for field in [
        "securityContext",
        "env",
        "ports",
        "resources",
        "imagePullPolicy",
    ] {
        let (a, b) = (
            &chart["containers"][0][field],
            &kustomize["containers"][0][field],
        );
        ensure!(a == b, "container {field}: chart {a} kustomize {b}");
    }
    for probe in ["livenessProbe", "readinessProbe"] {
        let (a, b) = (
            &chart["containers"][0][probe]["httpGet"],
            &kustomize["containers"][0][probe]["httpGet"],
        );
        ensure!(a == b, "{probe}: chart {a} kustomize {b}");
    }
    let args = container_args(find(&base, "Deployment")?)?;
    for flag in [
        "run",
        "--leader-elect",
        "--metrics-bind-address=:8080",
        "--health-probe-bind-address=:8081",
    ] {
        ensure!(
            args.iter().any(|a| a == flag),
            "kustomize args {args:?} lack {flag}"
        );
    }
    Ok(())
}
