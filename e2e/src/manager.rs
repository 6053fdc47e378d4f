//! Running the `jobsmith` manager binary as a host process against the cluster under test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::cluster::workspace_root;

/// A running manager process. Its stdout and stderr go to a log file
/// (`$E2E_LOG_DIR`, default `<tmp>/jobsmith-e2e-logs/`). Dropping it stops it (SIGTERM, then
/// SIGKILL after 10 s); a panicking test first prints the last lines of its log.
pub struct ManagerProcess {
    child: Child,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl ManagerProcess {
    /// The binary: `JOBSMITH_BIN`, else `$CARGO_TARGET_DIR/debug/jobsmith`, else
    /// `<workspace>/target/debug/jobsmith`.
    pub fn binary() -> PathBuf {
        if let Some(bin) = std::env::var_os("JOBSMITH_BIN") {
            return PathBuf::from(bin);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug").join("jobsmith")
    }

    /// Starts the manager with `args` and extra `env` (KUBECONFIG and the rest of the test's
    /// environment are inherited). `name` names the log file (`<name>-<unique>.log`).
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        Self::start_binary(&Self::binary(), name, args, env)
    }

    /// [`Self::start`] with an explicit binary.
    pub fn start_binary(
        binary: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        if !binary.is_file() {
            bail!(
                "manager binary {} not found: build it with `make build` or set JOBSMITH_BIN",
                binary.display()
            );
        }
        let dir = std::env::var_os("E2E_LOG_DIR").map_or_else(
            || std::env::temp_dir().join("jobsmith-e2e-logs"),
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let log_path = dir.join(format!("{name}-{}-{stamp}.log", std::process::id()));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            log_path,
            exited: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything it printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether it still runs (reaps it when it has exited).
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The exit status once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        self.exited
    }

    /// Simulates a crash: SIGKILL (`kill -9`), then reaps it.
    pub fn kill_9(&mut self) -> Result<ExitStatus> {
        if !self.is_running() {
            return self.exited.context("not running");
        }
        self.child.kill().context("SIGKILL")?;
        let status = self.child.wait()?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) with `kill`, e.g. to pause a leader.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -{name} failed: {status}");
        Ok(())
    }

    /// Stops it gracefully: SIGTERM, up to `grace` to exit, then SIGKILL. Returns how it exited.
    pub fn stop_within(&mut self, grace: Duration) -> Result<ExitStatus> {
        if !self.is_running() {
            return self.exited.context("not running");
        }
        let term = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if term.success() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait()? {
                    self.exited = Some(status);
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill_9()
    }

    /// [`Self::stop_within`] 10 s.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_within(Duration::from_secs(10))
    }

    /// Waits until its log contains `needle`, at most `timeout`; fails early if it exits.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return Ok(());
            }
            if !self.is_running() {
                bail!(
                    "the manager exited ({:?}) before logging {needle:?}; log {}:\n{}",
                    self.exited,
                    self.log_path.display(),
                    tail(&self.logs(), 40)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the manager did not log {needle:?} within {timeout:?}; log {}:\n{}",
                    self.log_path.display(),
                    tail(&self.logs(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released), for the
/// manager's `--metrics-bind-address` / `--health-probe-bind-address` and a private plane's
/// components. Taken from 20000-32767, below the kernel's ephemeral range (32768-60999 here):
/// a port the kernel hands out for port 0 is one it also hands to outgoing connections, and
/// every client of the plane opens many, so one took such a port between this check and the
/// manager's bind ("Address already in use", `kstatus.rs` in CI, 2026-12-07). The plane's own
/// fixed ports (2379, 2380, 6443, 10247-10259) lie below this range.
pub fn free_local_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test process starts at its own place (its pid), its threads take the next ones.
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(LOW + start.wrapping_add(step.wrapping_mul(104_729)) % SPAN)
        else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A plain `GET http://<addr><path>` (HTTP/1.0, 5 s limit): the status code and the body. Enough
/// for the manager's `/healthz`, `/readyz` and `/metrics`.
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || http_get_blocking(&addr, &path))
        .await
        .context("the HTTP request task panicked")?
}

fn http_get_blocking(addr: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(5);
    let socket: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr} is not an IP:port"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&socket, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading the answer to GET {addr}{path}"))?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {addr}{path}: no HTTP header in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("GET {addr}{path}: no status code in {head:?}"))?;
    Ok((status, body.to_owned()))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- manager log {} (last 60 lines) ----\n{}",
                self.log_path.display(),
                tail(&self.logs(), 60)
            );
        }
        if self.is_running()
            && let Err(e) = self.stop()
        {
            eprintln!("stopping the manager (pid {}): {e:#}", self.pid());
        }
    }
}

/// A field of `/proc/<pid>/status` given in kB (`"VmHWM:"`: the peak resident set), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU time of a process so far, in milliseconds.
pub fn process_cpu_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: f64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // USER_HZ is 100 on Linux.
    Ok(ticks * 10.0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::time::Duration;

    use super::ManagerProcess;

    /// A stand-in for the manager that logs, and exits 0 on SIGTERM like a graceful shutdown.
    const SCRIPT: &str = "echo started; echo oops >&2; trap 'echo terminating; exit 0' TERM; while :; do sleep 0.05; done";

    #[tokio::test]
    async fn stop_sends_sigterm_and_captures_both_streams() -> anyhow::Result<()> {
        let mut process = ManagerProcess::start_binary(
            Path::new("/bin/sh"),
            "helper-test",
            &["-c", SCRIPT],
            &[],
        )?;
        process
            .wait_for_log("started", Duration::from_secs(10))
            .await?;
        assert!(process.is_running());
        let status = process.stop()?;
        assert!(status.success(), "{status:?}");
        let logs = process.logs();
        assert!(
            logs.contains("oops") && logs.contains("terminating"),
            "{logs}"
        );
        assert!(!process.is_running());
        Ok(())
    }

    #[tokio::test]
    async fn kill_9_is_a_crash() -> anyhow::Result<()> {
        let mut process = ManagerProcess::start_binary(
            Path::new("/bin/sh"),
            "helper-test",
            &["-c", SCRIPT],
            &[],
        )?;
        process
            .wait_for_log("started", Duration::from_secs(10))
            .await?;
        let status = process.kill_9()?;
        assert_eq!(status.signal(), Some(9));
        assert!(!process.logs().contains("terminating"));
        Ok(())
    }

    #[tokio::test]
    async fn an_early_exit_fails_the_log_wait() -> anyhow::Result<()> {
        let mut process = ManagerProcess::start_binary(
            Path::new("/bin/sh"),
            "helper-test",
            &["-c", "exit 3"],
            &[],
        )?;
        let error = process
            .wait_for_log("never", Duration::from_secs(10))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("exited"), "{error}");
        assert_eq!(process.exit_status().and_then(|s| s.code()), Some(3));
        Ok(())
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let error = ManagerProcess::start_binary(Path::new("/nonexistent/jobsmith"), "x", &[], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("make build"), "{error}");
    }
}
