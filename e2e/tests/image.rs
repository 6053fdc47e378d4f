//! The container image of `make image` (Containerfile): pushed to a local registry (Debian's
//! `docker-registry` on 127.0.0.1), inspected there with `skopeo` (one layer, UID 65532, entrypoint
//! `/jobsmith`), reached through the Helm chart's image reference, and run: `buildah from` pulls
//! it back from the registry and `buildah run --isolation chroot` starts its entrypoint on the host
//! network with in-cluster settings only (`KUBERNETES_SERVICE_HOST`/`PORT`, a ServiceAccount
//! token and the cluster CA at the standard path, no kubeconfig). The manager becomes ready and
//! runs a workflow. (`podman run` is refused by the sandbox these tests run in; `buildah run` is
//! not.)

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{ManagedJob, Phase};
use jobsmith_e2e::{
    ManagerProcess, TestNamespace, apply_yaml, client, free_local_port, helm_binary, http_get,
    install_crds, kubectl_ok, parse_yaml, run_tool, run_tool_ok, workspace_root,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;
use support::{family_sum, mj_status, scrape, two_job_workflow, wait_run};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// The image `make image` built: `JOBSMITH_IMAGE`, else `localhost/jobsmith:<workspace version>`.
fn local_image() -> String {
    std::env::var("JOBSMITH_IMAGE").unwrap_or_else(|_| format!("localhost/jobsmith:{VERSION}"))
}

async fn tool(program: &str, args: &[&str]) -> Result<String> {
    run_tool_ok(Path::new(program), args, &[], TOOL_TIMEOUT).await
}

/// A `docker-registry` on a free 127.0.0.1 port, storing into `dir`; stopped when dropped.
struct Registry {
    /// Stopped when dropped.
    _process: ManagerProcess,
    addr: String,
}

impl Registry {
    async fn start(dir: &Path) -> Result<Self> {
        let port = free_local_port()?;
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let config = config.to_string_lossy().into_owned();
        let mut process = ManagerProcess::start_binary(
            Path::new("/usr/bin/docker-registry"),
            "registry",
            &["serve", &config],
            &[],
        )
        .context("starting Debian's docker-registry (make setup installs it)")?;
        jobsmith_e2e::eventually(
            "the registry answers /v2/",
            Duration::from_secs(30),
            || async {
                Ok(http_get(&addr, "/v2/")
                    .await
                    .is_ok_and(|(code, _)| code == 200)
                    .then_some(()))
            },
        )
        .await?;
        ensure!(
            process.is_running(),
            "the registry exited: {}",
            process.logs()
        );
        Ok(Self {
            _process: process,
            addr,
        })
    }
}

/// `skopeo inspect` of an image in the (plain HTTP) local registry, raw or its config.
async fn skopeo_inspect(reference: &str, config: bool) -> Result<Value> {
    let target = format!("docker://{reference}");
    let mut args = vec!["inspect", "--tls-verify=false"];
    if config {
        args.push("--config");
    }
    args.push(&target);
    Ok(serde_json::from_str(&tool("skopeo", &args).await?)?)
}

/// The image reference of the chart's Deployment, rendered with `image.repository` set.
async fn chart_image(repository: &str) -> Result<String> {
    let chart = workspace_root().join("charts/jobsmith");
    let set = format!("image.repository={repository}");
    let rendered = run_tool_ok(
        &helm_binary()?,
        &[
            "template",
            "jobsmith",
            &chart.to_string_lossy(),
            "--namespace",
            "jobsmith-system",
            "--set",
            &set,
        ],
        &[],
        TOOL_TIMEOUT,
    )
    .await?;
    for doc in parse_yaml(&rendered)? {
        let doc = serde_json::to_value(&doc)?;
        if doc["kind"] == "Deployment" {
            return doc["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_owned)
                .context("the Deployment has no image");
        }
    }
    bail!("the chart rendered no Deployment")
}

/// The ServiceAccount directory a kubelet would mount: a real token of
/// `jobsmith-system/jobsmith` (TokenRequest), the cluster CA as published in every namespace
/// (ConfigMap `kube-root-ca.crt`), and the namespace.
async fn service_account_files(client: &kube::Client, ns: &str, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let token = kubectl_ok(&[
        "create",
        "token",
        "jobsmith",
        "-n",
        "jobsmith-system",
        "--duration=1h",
    ])
    .await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let ca = jobsmith_e2e::eventually(
        "the kube-root-ca.crt ConfigMap",
        Duration::from_secs(30),
        || async {
            Ok(configmaps
                .get_opt("kube-root-ca.crt")
                .await?
                .and_then(|cm| cm.data)
                .and_then(|data| data.get("ca.crt").cloned()))
        },
    )
    .await?;
    std::fs::create_dir_all(dir)?;
    for (name, content) in [
        ("token", token.trim()),
        ("ca.crt", ca.as_str()),
        ("namespace", "jobsmith-system"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        // The image runs as UID 65532: the files must be readable by others, as a kubelet's are.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `buildah rm` of a working container, also on panic.
struct WorkingContainer(String);

impl Drop for WorkingContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("buildah")
            .args(["rm", &self.0])
            .output();
    }
}

#[tokio::test]
async fn the_image_is_pushed_inspected_and_runs_in_cluster_mode() -> Result<()> {
    let image = local_image();
    let exists = run_tool(
        Path::new("buildah"),
        &["inspect", "--type", "image", &image],
        &[],
        TOOL_TIMEOUT,
    )
    .await?;
    ensure!(
        exists.success,
        "the image {image} is not in local storage: build it with `make image` ({})",
        exists.stderr.trim()
    );

    let client = client().await?;
    install_crds(&client).await?;
    let rbac = std::fs::read_to_string(workspace_root().join("deploy/rbac.yaml"))?;
    apply_yaml(&client, None, &rbac).await?;
    let ns = TestNamespace::new(&client, "image").await?;
    let dir = std::env::temp_dir().join(format!("jobsmith-e2e-{}", ns.name()));
    std::fs::create_dir_all(&dir)?;

    // Push to a local registry and inspect it there.
    let registry = Registry::start(&dir).await?;
    let repository = format!("{}/jobsmith", registry.addr);
    let pushed = format!("{repository}:{VERSION}");
    let digest_file = dir.join("digest");
    let digest_path = digest_file.to_string_lossy().into_owned();
    tool(
        "buildah",
        &[
            "push",
            "--tls-verify=false",
            "--digestfile",
            &digest_path,
            &image,
            &format!("docker://{pushed}"),
        ],
    )
    .await?;
    let digest = std::fs::read_to_string(&digest_file)?.trim().to_owned();
    let raw = skopeo_inspect(&pushed, false).await?;
    ensure!(raw["Digest"] == digest.as_str(), "registry digest: {raw}");
    ensure!(
        raw["Os"] == "linux" && raw["Architecture"] == "amd64",
        "platform: {raw}"
    );
    let layers = raw["Layers"].as_array().map_or(0, Vec::len);
    ensure!(
        layers == 1,
        "{layers} layers; the image is one static binary on scratch: {raw}"
    );
    let config = skopeo_inspect(&pushed, true).await?;
    let container = &config["config"];
    ensure!(
        container["User"] == "65532:65532",
        "user: {}",
        container["User"]
    );
    ensure!(
        container["Entrypoint"] == serde_json::json!(["/jobsmith"]),
        "entrypoint: {}",
        container["Entrypoint"]
    );
    ensure!(
        container["Labels"]["org.opencontainers.image.version"] == VERSION,
        "version label: {}",
        container["Labels"]
    );

    // The chart's image reference (repository from values, tag = appVersion) is that image.
    let chart_ref = chart_image(&repository).await?;
    ensure!(
        chart_ref == pushed,
        "chart image {chart_ref}, pushed {pushed}"
    );
    let via_chart = skopeo_inspect(&chart_ref, false).await?;
    ensure!(
        via_chart["Digest"] == digest.as_str(),
        "chart reference digest: {via_chart}"
    );

    // Pull it back from the registry into a working container and run its entrypoint.
    let name = format!("jobsmith-e2e-{}", ns.name());
    tool(
        "buildah",
        &[
            "from",
            "--pull-always",
            "--tls-verify=false",
            "--name",
            &name,
            &format!("docker://{chart_ref}"),
        ],
    )
    .await?;
    let _container = WorkingContainer(name.clone());
    let sa = dir.join("serviceaccount");
    service_account_files(&client, ns.name(), &sa).await?;
    let server = kube::Config::infer().await?.cluster_url;
    let host = server.host().context("no API server host")?.to_owned();
    let port = server.port_u16().unwrap_or(443).to_string();
    let (metrics_port, health_port) = (free_local_port()?, free_local_port()?);
    let lease = format!("jobsmith-{}", ns.name());
    let entrypoint: Vec<String> = serde_json::from_value(container["Entrypoint"].clone())?;

    let volume = format!("{}:{SA_DIR}:ro", sa.display());
    let envs = [
        format!("KUBERNETES_SERVICE_HOST={host}"),
        format!("KUBERNETES_SERVICE_PORT={port}"),
        "POD_NAMESPACE=jobsmith-system".to_owned(),
    ];
    let metrics = format!("127.0.0.1:{metrics_port}");
    let health = format!("127.0.0.1:{health_port}");
    let mut args: Vec<&str> = vec![
        "run",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "-v",
        &volume,
    ];
    for env in &envs {
        args.extend(["--env", env.as_str()]);
    }
    args.extend([name.as_str(), "--"]);
    args.extend(entrypoint.iter().map(String::as_str));
    args.extend([
        "run",
        "--namespace",
        ns.name(),
        "--leader-elect",
        "--leader-election-id",
        &lease,
        "--metrics-bind-address",
        &metrics,
        "--health-probe-bind-address",
        &health,
    ]);
    let mut manager =
        ManagerProcess::start_binary(Path::new("/usr/bin/buildah"), "image", &args, &[])?;

    let ready = jobsmith_e2e::eventually("/readyz of the image", Duration::from_secs(90), || {
        let health = health.clone();
        async move {
            Ok(http_get(&health, "/readyz")
                .await
                .is_ok_and(|(code, _)| code == 200)
                .then_some(()))
        }
    })
    .await;
    if let Err(e) = ready {
        bail!(
            "{e:#}; running: {}; log {}:\n{}",
            manager.is_running(),
            manager.log_path().display(),
            manager.logs()
        );
    }
    let logs = manager.logs();
    ensure!(
        logs.lines().any(|l| l.starts_with('{')),
        "no JSON log lines (the in-cluster format):\n{logs}"
    );

    apply_yaml(&client, Some(ns.name()), &two_job_workflow("from-image")).await?;
    let api: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    wait_run(
        &api,
        "from-image",
        "ManagedJob from-image Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        mj_status,
    )
    .await?;
    let text = scrape(metrics_port).await?;
    ensure!(
        family_sum(&text, "jobsmith_reconcile_errors_total") == 0.0,
        "reconcile errors:\n{text}"
    );
    ensure!(
        !manager.logs().to_lowercase().contains("forbidden"),
        "the manager was refused something; log {}",
        manager.log_path().display()
    );

    manager.stop()?;
    drop(registry);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "jobsmith-system");
    let _ = leases.delete(&lease, &Default::default()).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
