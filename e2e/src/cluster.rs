//! The connection to the cluster under test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kube::{Client, Config};

/// Field manager of every server-side apply made by the tests.
pub const FIELD_MANAGER: &str = "jobsmith-e2e";

/// What to do when no cluster is reachable; part of every connection error.
pub const HINT: &str = "the end-to-end tests need a cluster: start the local control plane with \
`make cluster-up` and `export KUBECONFIG=...` as it prints (or run everything with `make e2e`), \
or point KUBECONFIG at a cluster of your own";

/// The workspace root (the parent of the `e2e` crate). `cargo test` sets `CARGO_MANIFEST_DIR` when
/// it runs a test, which wins over the directory the binary was compiled in (the two differ when a
/// shared `CARGO_TARGET_DIR` reuses a binary built from another checkout).
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map_or_else(|| manifest.join(".."), Path::to_path_buf)
}

/// The kubectl plugin binary the tests run: `KUBECTL_JOBSMITH_BIN` (the Makefile sets it), else
/// `$CARGO_TARGET_DIR/debug/kubectl-jobsmith`, else the workspace's `target/debug/`.
pub fn plugin_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KUBECTL_JOBSMITH_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("debug").join("kubectl-jobsmith")
}

/// A client for the cluster of `KUBECONFIG` (kube's usual inference), checked to answer within
/// 10 s. Fails with [`HINT`] when there is no usable kubeconfig or the API server does not answer.
///
/// Create one client per test: a kube `Client` belongs to the tokio runtime it was made in.
pub async fn client() -> Result<Client> {
    let where_ = std::env::var("KUBECONFIG").map_or_else(
        |_| "KUBECONFIG is not set".to_owned(),
        |k| format!("KUBECONFIG={k}"),
    );
    let config = Config::infer()
        .await
        .map_err(|e| anyhow!("no usable kubeconfig ({where_}): {e}.\n{HINT}"))?;
    let url = config.cluster_url.clone();
    let client = Client::try_from(config)
        .with_context(|| format!("building a client for {url} ({where_})"))?;
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(anyhow!(
            "the cluster at {url} ({where_}) is not reachable: {e}.\n{HINT}"
        )),
        Err(_) => Err(anyhow!(
            "the cluster at {url} ({where_}) did not answer within 10s.\n{HINT}"
        )),
    }
}
