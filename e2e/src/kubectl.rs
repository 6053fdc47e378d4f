//! Running `kubectl` (binary from `KUBECTL`, default `kubectl`) against the cluster of
//! `KUBECONFIG`, which it inherits.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit status 0.
    pub success: bool,
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The kubectl the tests run: `KUBECTL`, else `kubectl` on the PATH.
pub fn kubectl_program() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
}

/// Runs `kubectl <args>` with a 120 s limit (write manifests to a file for `-f`). A non-zero exit is
/// not an error here: look at [`CommandOutput::success`]. Errors only when kubectl cannot run.
pub async fn kubectl(args: &[&str]) -> Result<CommandOutput> {
    let program = kubectl_program();
    let mut command = Command::new(&program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {program} (is kubectl installed? make setup)"))?;
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .with_context(|| format!("kubectl {} did not finish within 120s", args.join(" ")))??;
    Ok(CommandOutput {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `kubectl <args>` and returns its stdout; an error (with stderr) when it exits non-zero.
pub async fn kubectl_ok(args: &[&str]) -> Result<String> {
    let output = kubectl(args).await?;
    if !output.success {
        bail!(
            "kubectl {} exited with {:?}:\n{}{}",
            args.join(" "),
            output.code,
            output.stderr,
            output.stdout
        );
    }
    Ok(output.stdout)
}
