//! Running the other command-line tools of the packaging tests (helm, helm-unittest, buildah,
//! skopeo) and writing kubeconfigs that act as a ServiceAccount.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::cluster::workspace_root;
use crate::kubectl::CommandOutput;

/// Runs `program args` with extra `env`, at most `timeout`. A non-zero exit is not an error here;
/// errors only when the program cannot run or overruns.
pub async fn run_tool(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CommandOutput> {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("{} {}", program.display(), args.join(" "));
    let child = command
        .spawn()
        .with_context(|| format!("starting {shown} (make setup / make tools install it)"))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("{shown} did not finish within {timeout:?}"))??;
    Ok(CommandOutput {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// [`run_tool`] that fails (showing both streams) on a non-zero exit, returning stdout.
pub async fn run_tool_ok(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<String> {
    let out = run_tool(program, args, env, timeout).await?;
    if !out.success {
        bail!(
            "{} {} exited with {:?}:\n{}{}",
            program.display(),
            args.join(" "),
            out.code,
            out.stderr,
            out.stdout
        );
    }
    Ok(out.stdout)
}

/// The helm binary: `HELM`, else the one `e2e/scripts/build-tools.sh helm` built into the tools
/// cache (`make chart` and `make e2e` build it first).
pub fn helm_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HELM") {
        return Ok(PathBuf::from(path));
    }
    let versions = workspace_root().join("e2e/scripts/versions.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && echo \"$HELM_BIN\"",
            versions.display()
        ))
        .output()
        .with_context(|| format!("sourcing {}", versions.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("helm");
    if !path.is_file() {
        bail!(
            "{} not found: build it with `bash e2e/scripts/build-tools.sh helm` (make chart does) \
             or set HELM",
            path.display()
        );
    }
    Ok(path)
}

/// Runs helm with the kubeconfig `kubeconfig` (10 minutes at most).
pub async fn helm(kubeconfig: &Path, args: &[&str]) -> Result<CommandOutput> {
    let kubeconfig = kubeconfig.to_string_lossy();
    run_tool(
        &helm_binary()?,
        args,
        &[("KUBECONFIG", kubeconfig.as_ref())],
        Duration::from_secs(600),
    )
    .await
}

/// [`helm`] that fails on a non-zero exit; returns `(stdout, stderr)`.
pub async fn helm_ok(kubeconfig: &Path, args: &[&str]) -> Result<(String, String)> {
    let out = helm(kubeconfig, args).await?;
    if !out.success {
        bail!(
            "helm {} exited with {:?}:\n{}{}",
            args.join(" "),
            out.code,
            out.stderr,
            out.stdout
        );
    }
    Ok((out.stdout, out.stderr))
}

/// Writes a copy of the kubeconfig `source` whose users act as `user` (kubeconfig `as:`, the
/// API server's impersonation), e.g. `system:serviceaccount:<namespace>:<name>`, with `groups`
/// as `as-groups:` when given. The audit log then names that user for every request made with
/// it, which also tells two managers apart.
pub fn impersonating_kubeconfig(
    source: &Path,
    user: &str,
    groups: &[&str],
    path: &Path,
) -> Result<()> {
    let text =
        std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .context("the kubeconfig has no users")?;
    for entry in users {
        if let Some(auth) = entry
            .get_mut("user")
            .and_then(serde_yaml::Value::as_mapping_mut)
        {
            auth.insert("as".into(), user.into());
            if !groups.is_empty() {
                let groups: Vec<serde_yaml::Value> = groups.iter().map(|g| (*g).into()).collect();
                auth.insert("as-groups".into(), groups.into());
            }
        }
    }
    std::fs::write(path, serde_yaml::to_string(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
