//! Installing the Jobsmith CRDs from `crds/` into the cluster, once per test process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions;
use tokio::sync::OnceCell;

use crate::apply::{concise, parse_yaml};
use crate::cluster::{FIELD_MANAGER, workspace_root};
use crate::wait::wait_for;

/// The CRD files (`*.yaml`, `*.yml`, sorted) of `E2E_CRD_DIR`, by default the repository's
/// `crds/`.
pub fn crd_files() -> Result<Vec<PathBuf>> {
    let dir = std::env::var_os("E2E_CRD_DIR")
        .map_or_else(|| workspace_root().join("crds"), PathBuf::from);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

static INSTALLED: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();

/// Server-side applies (forced, field manager [`FIELD_MANAGER`]) every CRD of `crds/` and waits
/// until each is Established; returns their names. Runs once per process: concurrent and later
/// callers get the first outcome. Applying is idempotent, so several processes may do it too.
pub async fn install_crds(client: &Client) -> Result<Vec<String>> {
    let outcome = INSTALLED
        .get_or_init(|| async { install(client).await.map_err(|e| format!("{e:#}")) })
        .await;
    outcome
        .clone()
        .map_err(|e| anyhow!("installing the CRDs of crds/ failed: {e}"))
}

/// [`install_crds`] on a cluster of its own (a private plane), every time it is called: the
/// once-per-process guard of [`install_crds`] is for the shared plane.
pub async fn install_crds_on(client: &Client) -> Result<Vec<String>> {
    install(client).await
}

async fn install(client: &Client) -> Result<Vec<String>> {
    let files = crd_files()?;
    if files.is_empty() {
        bail!("no CRD files in crds/ (generate them: make generate)");
    }
    install_crd_files(client, &files).await
}

/// Server-side applies (forced) the CRDs of `files` (each may hold several documents) and waits
/// until each is Established; returns their names. Used for other projects' CRDs too (Kueue's).
pub async fn install_crd_files(client: &Client, files: &[PathBuf]) -> Result<Vec<String>> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    // Every CRD is tried, so one run reports every rejected CRD (not only the first).
    let mut rejected = Vec::new();
    for file in files {
        let yaml =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for object in parse_yaml(&yaml).with_context(|| format!("parsing {}", file.display()))? {
            let crd: CustomResourceDefinition =
                serde_json::from_value(serde_json::to_value(&object)?).with_context(|| {
                    format!("{} is not a CustomResourceDefinition", file.display())
                })?;
            let name = crd
                .metadata
                .name
                .clone()
                .ok_or_else(|| anyhow!("a CRD in {} has no name", file.display()))?;
            match api.patch(&name, &params, &Patch::Apply(&crd)).await {
                Ok(_) => names.push(name),
                Err(e) => rejected.push(format!(
                    "applying {name} from {}: {}",
                    file.display(),
                    concise(e)
                )),
            }
        }
    }
    if !rejected.is_empty() {
        bail!(
            "{} CRD(s) rejected by the API server:\n{}",
            rejected.len(),
            rejected.join("\n")
        );
    }
    for name in &names {
        wait_for(
            &api,
            name,
            Duration::from_secs(60),
            conditions::is_crd_established(),
        )
        .await
        .with_context(|| format!("{name} did not become Established"))?;
    }
    Ok(names)
}
