//! A private local control plane for a test that changes cluster-wide state (CRDs, cluster RBAC,
//! Helm releases) and so cannot share the plane of the other tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::cluster::workspace_root;
use crate::manager::free_local_port;

/// A plane of its own (`e2e/scripts/cluster-up.sh` on free ports, in a run dir of its own),
/// stopped and removed when dropped. The tools are built first when they are not cached.
pub struct PrivatePlane {
    run_dir: PathBuf,
    env: Vec<(String, String)>,
    kubeconfig: PathBuf,
}

impl PrivatePlane {
    /// Starts a plane with `nodes` fake nodes; `name` tells its run dir apart.
    pub fn start(name: &str, nodes: u32) -> Result<Self> {
        Self::start_with(name, nodes, &[])
    }

    /// [`PrivatePlane::start`] with more `E2E_*` settings of `cluster-up.sh` (for example
    /// `E2E_NODE_PODS`, `E2E_DISABLE_QPS_LIMITS`).
    pub fn start_with(name: &str, nodes: u32, settings: &[(&str, &str)]) -> Result<Self> {
        let scripts = workspace_root().join("e2e/scripts");
        let run_dir =
            std::env::temp_dir().join(format!("jobsmith-e2e-plane-{name}-{}", std::process::id()));
        let mut env = vec![
            (
                "E2E_RUN_DIR".to_owned(),
                run_dir.to_string_lossy().into_owned(),
            ),
            ("E2E_NODES".to_owned(), nodes.to_string()),
        ];
        env.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        for var in [
            "E2E_ETCD_PORT",
            "E2E_ETCD_PEER_PORT",
            "E2E_APISERVER_PORT",
            "E2E_KCM_PORT",
            "E2E_SCHEDULER_PORT",
            "E2E_KWOK_PORT",
        ] {
            env.push((var.to_owned(), free_local_port()?.to_string()));
        }
        run_script(
            &scripts.join("build-tools.sh"),
            &["k8s", "etcd", "kwok"],
            &env,
        )?;
        let plane = Self {
            kubeconfig: run_dir.join("kubeconfig"),
            run_dir,
            env,
        };
        let out = run_script(&scripts.join("cluster-up.sh"), &[], &plane.env)?;
        ensure!(
            out.lines()
                .last()
                .is_some_and(|l| l.starts_with("export KUBECONFIG=")),
            "cluster-up.sh printed no kubeconfig: {out}"
        );
        Ok(plane)
    }

    /// The plane's admin kubeconfig.
    /// The plane's run dir (pids, logs, the audit log).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for the plane.
    pub async fn client(&self) -> Result<kube::Client> {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }
}

impl Drop for PrivatePlane {
    fn drop(&mut self) {
        let down = workspace_root().join("e2e/scripts/cluster-down.sh");
        let _ = run_script(&down, &[], &self.env);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Runs a script, returning its stdout; its stderr is passed through.
fn run_script(script: &Path, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
