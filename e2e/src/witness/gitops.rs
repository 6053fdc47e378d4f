//! What GitOps tools make of Jobsmith objects, computed by the tools' own code: Argo CD health
//! scripts run by `argocd-lua-health` (gopher-lua, as Argo CD runs argocd-cm scripts), kstatus
//! by `kstatus-check` (sigs.k8s.io/cli-utils, as Flux computes it), and Flux `healthCheckExprs`
//! by `kstatus-check --flux-exprs` (cel-go, evaluated as Flux evaluates them). Both are small Go programs of
//! `e2e/toolchain/` built into the tools cache by `e2e/scripts/build-tools.sh` (cached; the first
//! call of a test process builds them when needed). `ARGOCD_LUA_HEALTH` / `KSTATUS_CHECK` name
//! other binaries.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::workspace_root;

/// A checker of `e2e/toolchain/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checker {
    /// `argocd-lua-health` (tool `argocd-lua`).
    ArgocdLua,
    /// `kstatus-check` (tool `kstatus`).
    Kstatus,
}

impl Checker {
    fn tool(self) -> &'static str {
        match self {
            Self::ArgocdLua => "argocd-lua",
            Self::Kstatus => "kstatus",
        }
    }
    fn binary(self) -> &'static str {
        match self {
            Self::ArgocdLua => "argocd-lua-health",
            Self::Kstatus => "kstatus-check",
        }
    }
    fn bin_var(self) -> &'static str {
        match self {
            Self::ArgocdLua => "ARGOCD_LUA_BIN",
            Self::Kstatus => "KSTATUS_BIN",
        }
    }
    fn override_var(self) -> &'static str {
        match self {
            Self::ArgocdLua => "ARGOCD_LUA_HEALTH",
            Self::Kstatus => "KSTATUS_CHECK",
        }
    }
}

/// The checker's binary: built (or found cached) by `build-tools.sh`, once per test process.
pub async fn checker_binary(checker: Checker) -> Result<PathBuf> {
    static LUA: OnceCell<PathBuf> = OnceCell::const_new();
    static KSTATUS: OnceCell<PathBuf> = OnceCell::const_new();
    let cell = match checker {
        Checker::ArgocdLua => &LUA,
        Checker::Kstatus => &KSTATUS,
    };
    cell.get_or_try_init(|| locate(checker)).await.cloned()
}

async fn locate(checker: Checker) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(checker.override_var()) {
        return Ok(PathBuf::from(path));
    }
    let root = workspace_root();
    let scripts = root.join("e2e/scripts");
    let build = Command::new("bash")
        .arg(scripts.join("build-tools.sh"))
        .arg(checker.tool())
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running e2e/scripts/build-tools.sh")?;
    if !build.status.success() {
        bail!(
            "e2e/scripts/build-tools.sh {} failed:\n{}{}",
            checker.tool(),
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
    }
    let dir = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source \"$1\" && printf '%s' \"${}\"",
            checker.bin_var()
        ))
        .arg("bash")
        .arg(scripts.join("versions.sh"))
        .current_dir(&root)
        .output()
        .await
        .context("reading the checker's directory from versions.sh")?;
    let path =
        PathBuf::from(String::from_utf8_lossy(&dir.stdout).into_owned()).join(checker.binary());
    if !path.is_file() {
        bail!("{} is not there after build-tools.sh", path.display());
    }
    Ok(path)
}

/// A health verdict: Argo CD's `{status, message}` or kstatus' `{status, message}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Argo CD: Healthy, Progressing, Degraded, Suspended, Missing, Unknown. kstatus:
    /// InProgress, Current, Failed, Terminating, NotFound, Unknown.
    pub status: String,
    /// The explanation.
    pub message: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.status, self.message)
    }
}

async fn run_checker(program: &Path, args: &[&str], input: Vec<u8>) -> Result<String> {
    let program = program.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    // A blocking child on a blocking-pool thread: the checkers answer in milliseconds.
    tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::Write;
        let mut child = std::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin for {}", program.display()))?;
        stdin.write_all(&input)?;
        drop(stdin);
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{} {} failed: {}",
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    })
    .await?
}

/// Argo CD's health of `object` by the health script at `script` (run as argocd-cm runs it).
pub async fn argocd_health(script: &Path, object: &Value) -> Result<Verdict> {
    let program = checker_binary(Checker::ArgocdLua).await?;
    let script = script.to_string_lossy();
    let out = run_checker(
        &program,
        &["run", script.as_ref(), "-"],
        serde_json::to_vec(object)?,
    )
    .await?;
    serde_json::from_str(out.trim()).with_context(|| format!("argocd-lua-health printed {out:?}"))
}

/// kstatus of each object, in order.
pub async fn kstatus(objects: &[Value]) -> Result<Vec<Verdict>> {
    run_kstatus_check(objects, &[]).await
}

/// What Flux makes of each object with the `healthCheckExprs` of `exprs` (a YAML file with a
/// `healthCheckExprs` list): Flux's evaluation order, in a cel-go environment like Flux's.
pub async fn flux_health(objects: &[Value], exprs: &Path) -> Result<Vec<Verdict>> {
    let exprs = exprs.to_string_lossy();
    run_kstatus_check(objects, &["--flux-exprs", exprs.as_ref()]).await
}

async fn run_kstatus_check(objects: &[Value], args: &[&str]) -> Result<Vec<Verdict>> {
    let program = checker_binary(Checker::Kstatus).await?;
    let out = run_checker(&program, args, serde_json::to_vec(objects)?).await?;
    let verdicts: Vec<Verdict> = serde_json::from_str(out.trim())
        .with_context(|| format!("kstatus-check printed {out:?}"))?;
    if verdicts.len() != objects.len() {
        bail!(
            "kstatus-check answered {} verdicts for {} objects",
            verdicts.len(),
            objects.len()
        );
    }
    Ok(verdicts)
}

/// Label and annotation keys (or key prefixes, ending in `/`) that GitOps tools put on the
/// objects they apply to track them. Jobsmith never copies them to child Jobs: the tool would
/// otherwise adopt (and prune) Jobs it never applied.
pub const TRACKING_KEYS: &[&str] = &[
    "app.kubernetes.io/instance",
    "argocd.argoproj.io/",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    "meta.helm.sh/",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Whether a label or annotation key is GitOps tracking metadata ([`TRACKING_KEYS`]).
pub fn is_tracking_key(key: &str) -> bool {
    TRACKING_KEYS.iter().any(|t| {
        if t.ends_with('/') {
            key.starts_with(t)
        } else {
            key == *t
        }
    })
}
