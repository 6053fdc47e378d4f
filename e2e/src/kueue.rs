//! The real Kueue controller as a host process against the cluster under test
//! (docs/integrations.md "Kueue", docs/e2e.md): its binary and CRDs come from the tools cache
//! (`bash e2e/scripts/build-tools.sh kueue`, `make kueue-tool`), never built here (a cold build
//! takes minutes), so a missing build fails the test and says how to make it.
//!
//! How it runs (the flags were found on the local plane):
//! - its own config file: leader election off, `internalCertManagement.enable: false` (it would
//!   manage Secrets and webhook configurations of an in-cluster install), metrics off
//!   (`bindAddress: "0"`), the webhook server on a free 127.0.0.1 port with a self-signed
//!   certificate (the server starts whether or not its webhooks are registered with the API
//!   server), health probes on a free port, only the `batch/job` integration, and the Jobs of
//!   the test's namespace only (`managedJobsNamespaceSelector`; Kueue's default selector
//!   excludes `kube-system` and Kueue's own namespace, which must therefore not be the test's:
//!   it stays `kueue-system`, which need not exist);
//! - feature gate `VisibilityOnDemand=false` (no aggregated visibility API server);
//! - a certificate at `/etc/kueue/metrics/certs` (read at start-up even with metrics off when
//!   Kueue does not manage certificates; the path is fixed in Kueue's `main.go`).
//!
//! Kueue's webhooks are **not** registered with the API server: Jobsmith creates its Jobs already
//! suspended with the queue label, which is what Kueue's mutating webhook would otherwise
//! enforce, and Kueue's Job reconciler alone creates the Workloads, admits (unsuspends) and
//! finishes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::Client;

use crate::cluster::workspace_root;
use crate::crds::install_crd_files;
use crate::manager::{ManagerProcess, free_local_port, http_get};
use crate::wait::eventually;

/// Where Kueue reads its metrics certificate when it does not manage certificates itself.
pub const METRICS_CERT_DIR: &str = "/etc/kueue/metrics/certs";

/// The Kueue build of the tools cache: `bin/kueue` and the CRDs of the same module (`crds/`).
#[derive(Clone, Debug)]
pub struct KueueTool {
    /// The `kueue` manager binary.
    pub binary: PathBuf,
    /// Kueue's CRD files (`config/components/crd/bases` of the module).
    pub crds: Vec<PathBuf>,
}

/// The Kueue build of the tools cache (`$KUEUE_DIR` of `e2e/scripts/versions.sh`); fails with
/// the command that builds it when it is missing.
pub fn kueue_tool() -> Result<KueueTool> {
    let versions = workspace_root().join("e2e/scripts/versions.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && printf '%s' \"$KUEUE_DIR\"")
        .arg("bash")
        .arg(&versions)
        .output()
        .with_context(|| format!("sourcing {}", versions.display()))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned());
    let binary = dir.join("bin/kueue");
    let crds = yaml_files(&dir.join("crds")).unwrap_or_default();
    if !binary.is_file() || crds.is_empty() || !dir.join("STAMP").is_file() {
        bail!(
            "Kueue is not built in the tools cache ({} missing): run `make kueue-tool` \
             (`bash e2e/scripts/build-tools.sh kueue`, about 8 minutes cold, then cached); \
             `make e2e` builds it",
            dir.display()
        );
    }
    Ok(KueueTool { binary, crds })
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Installs Kueue's CRDs (server-side apply, forced) and waits until they are Established.
pub async fn install_kueue_crds(client: &Client, tool: &KueueTool) -> Result<Vec<String>> {
    install_crd_files(client, &tool.crds)
        .await
        .context("installing Kueue's CRDs")
}

/// A running Kueue controller; dropping it stops it (SIGTERM, then SIGKILL).
pub struct KueueProcess {
    /// The process (its log is in `$E2E_LOG_DIR`, printed when a test panics).
    pub process: ManagerProcess,
    /// Its health probe port (`/readyz`).
    pub health_port: u16,
    /// Its working directory (config, webhook certificate); removed on drop.
    dir: PathBuf,
}

impl Drop for KueueProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl KueueProcess {
    /// Starts Kueue with `KUBECONFIG` of the environment, managing the Jobs of `namespace` only
    /// (`managedJobsNamespaceSelector`), and waits until it is ready (`/readyz`).
    pub async fn start(tool: &KueueTool, namespace: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("jobsmith-kueue-{namespace}"));
        let webhook_certs = dir.join("webhook-certs");
        std::fs::create_dir_all(&webhook_certs)
            .with_context(|| format!("creating {}", webhook_certs.display()))?;
        self_signed_cert(&webhook_certs)?;
        ensure_metrics_cert()?;
        let health_port = free_local_port()?;
        let webhook_port = free_local_port()?;
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            config_yaml(namespace, health_port, webhook_port, &webhook_certs),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let config_arg = format!("--config={}", config.display());
        let process = ManagerProcess::start_binary(
            &tool.binary,
            "kueue",
            &[
                config_arg.as_str(),
                "--feature-gates=VisibilityOnDemand=false",
                "--zap-log-level=2",
            ],
            &[],
        )?;
        let mut kueue = Self {
            process,
            health_port,
            dir,
        };
        kueue.wait_ready().await?;
        Ok(kueue)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let addr = format!("127.0.0.1:{}", self.health_port);
        let ready = eventually("Kueue ready (/readyz)", Duration::from_secs(60), || {
            let addr = addr.clone();
            async move {
                Ok(matches!(http_get(&addr, "/readyz").await, Ok((200, _))).then_some(()))
            }
        })
        .await;
        if let Err(e) = ready {
            let running = self.process.is_running();
            bail!(
                "{e:#}; Kueue running: {running}; its log {}:\n{}",
                self.process.log_path().display(),
                tail(&self.process.logs(), 40)
            );
        }
        Ok(())
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.process.logs(), lines)
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn config_yaml(namespace: &str, health_port: u16, webhook_port: u16, cert_dir: &Path) -> String {
    format!(
        r#"apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
managedJobsNamespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {namespace}
health:
  healthProbeBindAddress: 127.0.0.1:{health_port}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: {webhook_port}
  certDir: {cert_dir}
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
manageJobsWithoutQueueName: false
integrations:
  frameworks:
  - batch/job
"#,
        cert_dir = cert_dir.display()
    )
}

/// Writes `tls.crt` and `tls.key` (self-signed, for 127.0.0.1 and localhost) into `dir`.
fn self_signed_cert(dir: &Path) -> Result<()> {
    let key = dir.join("tls.key");
    let crt = dir.join("tls.crt");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .context("running openssl (make setup installs it)")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Kueue reads a certificate at [`METRICS_CERT_DIR`] at start-up; one is written there when
/// none is (kept for the next run).
fn ensure_metrics_cert() -> Result<()> {
    let dir = Path::new(METRICS_CERT_DIR);
    if dir.join("tls.crt").is_file() && dir.join("tls.key").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "creating {METRICS_CERT_DIR} (Kueue reads its metrics certificate there; the test \
             needs write access to it once, or a tls.crt/tls.key pair put there)"
        )
    })?;
    self_signed_cert(dir)
}
