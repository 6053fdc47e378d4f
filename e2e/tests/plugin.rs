//! The kubectl plugin (`kubectl-jobsmith`, docs/plugin.md) against live objects of each run kind
//! with a manager running: tree, list, status, graph, logs, wait, suspend/resume, watch mode under
//! tmux, completion, the `kubectl-managedjob` name, and the install script as kubectl sees it.
//!
//! The plugin binary is `KUBECTL_JOBSMITH_BIN`, else `$CARGO_TARGET_DIR/debug/kubectl-jobsmith`
//! (`make e2e` builds it). Its output is compared byte for byte with the files of
//! `cli/tests/testdata/` where the live object has the fixture's status.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_e2e::{fake_pod, kubectl, plugin_binary, workspace_root};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use support::{RUN_TIMEOUT, World};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// What one run of the plugin printed.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Result<String> {
        ensure!(
            self.code == Some(0),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self.stdout)
    }
}

/// Runs `program args` (the plugin, or a symlink to it) with the test's KUBECONFIG, no colour
/// variable, stdin closed, within 180 s.
async fn run_program(program: &Path, args: &[&str]) -> Result<Out> {
    let child = Command::new(program)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (make build)", program.display()))?;
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .with_context(|| format!("{} {} did not finish", program.display(), args.join(" ")))??;
    Ok(Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

async fn plugin(args: &[&str]) -> Result<Out> {
    run_program(&plugin_binary(), args).await
}

fn testdata(name: &str) -> Result<String> {
    let path = workspace_root().join("cli/tests/testdata").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn sample(path: &str) -> Result<String> {
    let path = workspace_root().join("samples").join(path);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// A directory with the plugin under all its names (`cli/install-plugin.sh`), for kubectl.
fn installed_plugin_dir(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("jobsmith-plugin-{tag}-{}", std::process::id()));
    let status = std::process::Command::new("bash")
        .arg(workspace_root().join("cli/install-plugin.sh"))
        .arg(plugin_binary())
        .arg(&dir)
        .status()
        .context("running cli/install-plugin.sh")?;
    ensure!(status.success(), "cli/install-plugin.sh failed: {status}");
    Ok(dir)
}

/// `kubectl ARGS` with `dir` first on the PATH (kubectl finds plugins on the PATH).
async fn kubectl_with_plugins(dir: &Path, args: &[&str]) -> Result<Out> {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let program = jobsmith_e2e::kubectl_program();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(&program)
            .args(args)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .context("kubectl did not finish")??;
    Ok(Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Renders an SVG file to PNG with rsvg-convert and returns the PNG's size.
fn svg_to_png(svg: &str, dir: &Path) -> Result<(u32, u32)> {
    std::fs::create_dir_all(dir)?;
    let (svg_path, png_path) = (dir.join("graph.svg"), dir.join("graph.png"));
    std::fs::write(&svg_path, svg)?;
    let out = std::process::Command::new("rsvg-convert")
        .arg(&svg_path)
        .arg("-o")
        .arg(&png_path)
        .output()
        .context("rsvg-convert (make setup)")?;
    ensure!(
        out.status.success(),
        "rsvg-convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&png_path)?;
    ensure!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let size = |at: usize| -> Result<u32> {
        Ok(u32::from_be_bytes(
            png.get(at..at + 4).context("short PNG")?.try_into()?,
        ))
    };
    Ok((size(16)?, size(20)?))
}

/// The parallel-demo sample with its namespace: every command on a live ManagedJob, compared
/// with the fixtures of the unit tests (same names, same final status).
#[tokio::test]
async fn managedjob_commands_on_the_parallel_demo_sample() -> Result<()> {
    let world = World::new("plugin-mj").await?;
    let ns = world.name();
    world
        .apply(&sample("managedjob/parallel-fan-out.yaml")?)
        .await?;

    let waited = plugin(&["wait", "parallel-demo", "-n", ns, "--timeout", "120s"]).await?;
    assert_eq!(
        waited.stdout, "ManagedJob/parallel-demo succeeded\n",
        "{waited:?}"
    );
    assert_eq!(waited.code, Some(0));

    // The tree, byte for byte the seed's format (stdout is a pipe: no colour).
    let tree = plugin(&["visualize", "parallel-demo", "-n", ns])
        .await?
        .ok()?;
    assert_eq!(tree, testdata("parallel-demo.tree")?);
    assert_eq!(
        plugin(&["tree", "mj/parallel-demo", "-n", ns, "--no-color"])
            .await?
            .ok()?,
        tree
    );

    let status = plugin(&["status", "parallel-demo", "-n", ns]).await?.ok()?;
    assert!(
        status.starts_with(&format!(
            "Name:      parallel-demo\nNamespace: {ns}\nStatus:    succeeded\nGroups:    3\nJobs:      5\n"
        )),
        "{status}"
    );
    assert!(
        status.ends_with("Job Status:\n  Pending:   0\n  Running:   0\n  Succeeded: 5\n  Failed:    0\n  Aborted:   0\n"),
        "{status}"
    );
    let job = plugin(&[
        "status",
        "parallel-demo",
        "-n",
        ns,
        "--job",
        "processing/process-2",
    ])
    .await?
    .ok()?;
    let expected_job = testdata("parallel-demo.job.status")?
        .replace("Namespace: default", &format!("Namespace: {ns}"));
    assert_eq!(job, expected_job);

    let list = plugin(&["list", "mj", "-n", ns]).await?.ok()?;
    assert_eq!(
        list,
        "NAME                           STATUS       GROUPS   JOBS\n----                           ------       ------   ----\nparallel-demo                  succeeded    3        5\n"
    );
    let all = plugin(&["list", "-n", ns]).await?.ok()?;
    assert_eq!(
        all, list,
        "only the ManagedJob table when no other kind has objects"
    );
    let json: serde_json::Value =
        serde_json::from_str(&plugin(&["list", "-n", ns, "-o", "json"]).await?.ok()?)?;
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["metadata"]["name"], "parallel-demo");
    assert_eq!(json["items"][0]["status"]["phase"], "Succeeded");
    let everywhere = plugin(&["list", "mj", "-A", "-o", "wide"]).await?.ok()?;
    assert!(everywhere.starts_with("NAMESPACE "), "{everywhere}");
    assert!(everywhere.contains(&format!("{ns} ")), "{everywhere}");

    assert_eq!(
        plugin(&["graph", "parallel-demo", "-n", ns]).await?.ok()?,
        testdata("parallel-demo.dot")?
    );
    assert_eq!(
        plugin(&["graph", "parallel-demo", "-n", ns, "--format", "mermaid"])
            .await?
            .ok()?,
        testdata("parallel-demo.mmd")?
    );
    let svg = plugin(&["graph", "parallel-demo", "-n", ns, "--format", "svg"])
        .await?
        .ok()?;
    let (w, h) = svg_to_png(&svg, &std::env::temp_dir().join(format!("jobsmith-{ns}")))?;
    ensure!(w > 100 && h > 50, "PNG of the SVG is {w}x{h}");

    // Missing objects name the kind looked for.
    let missing = plugin(&["status", "mj/nope", "-n", ns]).await?;
    assert_eq!(missing.code, Some(1));
    assert_eq!(
        missing.stderr,
        format!(
            "error: failed to get ManagedJob {ns}/nope: managedjobs.jobsmith.dev \"nope\" not found\n"
        )
    );
    let missing = plugin(&["tree", "nope", "-n", ns]).await?;
    assert_eq!(missing.code, Some(1));
    assert_eq!(
        missing.stderr,
        format!(
            "error: failed to get ManagedJob, JobFlow, DaemonJob or JobRun {ns}/nope: not found\n"
        )
    );

    // The seed's name: visualize, list and status of ManagedJobs, nothing else.
    let dir = installed_plugin_dir(ns)?;
    let seed = dir.join("kubectl-managedjob");
    assert_eq!(
        run_program(&seed, &["visualize", "parallel-demo", "-n", ns])
            .await?
            .ok()?,
        tree
    );
    assert_eq!(run_program(&seed, &["list", "-n", ns]).await?.ok()?, list);
    assert_eq!(
        run_program(&seed, &["status", "parallel-demo", "-n", ns])
            .await?
            .ok()?,
        status
    );
    let refused = run_program(&seed, &["graph", "parallel-demo", "-n", ns]).await?;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("kubectl managedjob has visualize, list and status"),
        "{refused:?}"
    );
    // ... and through kubectl's plugin mechanism, both names from the PATH.
    let via_kubectl = kubectl_with_plugins(
        &dir,
        &["managedjob", "visualize", "parallel-demo", "-n", ns],
    )
    .await?
    .ok()?;
    assert_eq!(via_kubectl, tree);
    let version = kubectl_with_plugins(&dir, &["jobsmith", "version"])
        .await?
        .ok()?;
    assert_eq!(
        version,
        format!("kubectl-jobsmith {}\n", env!("CARGO_PKG_VERSION"))
    );
    // kubectl's plugin completion runs kubectl_complete-jobsmith, which lists the runs.
    let completion =
        kubectl_with_plugins(&dir, &["__complete", "jobsmith", "tree", "-n", ns, "par"])
            .await?
            .ok()?;
    assert!(completion.starts_with("parallel-demo\n"), "{completion}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A JobFlow whose flow fails: wait exits 1 (0 with --for=completed), the tree shows the failed
/// and aborted flows, a bare name shared with a ManagedJob is refused with the choices.
#[tokio::test]
async fn jobflow_commands_wait_codes_and_ambiguous_names() -> Result<()> {
    let world = World::new("plugin-jf").await?;
    let ns = world.name();
    world
        .apply(&format!(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: build}}
spec:
  flows:
  - name: compile
    jobTemplate: {{backoffLimit: 0, template: {{spec: {{containers: [{{name: c, image: {img}}}]}}}}}}
  - name: test
    dependencies: [compile]
    jobTemplate:
      backoffLimit: 0
      template:
        metadata: {{labels: {{{label}: {fail}}}}}
        spec: {{containers: [{{name: c, image: {img}}}]}}
  - name: publish
    dependencies: [test]
    jobTemplate: {{template: {{spec: {{containers: [{{name: c, image: {img}}}]}}}}}}
"#,
            img = fake_pod::IMAGE,
            label = fake_pod::OUTCOME_LABEL,
            fail = fake_pod::OUTCOME_FAIL
        ))
        .await?;
    let waited = plugin(&["wait", "jf/build", "-n", ns, "--timeout", "120s"]).await?;
    assert_eq!(waited.code, Some(1), "{waited:?}");
    assert!(
        waited.stdout.starts_with("JobFlow/build failed"),
        "{waited:?}"
    );
    let completed = plugin(&["wait", "build", "-n", ns, "--for", "completed"]).await?;
    assert_eq!(completed.code, Some(0), "{completed:?}");

    let tree = plugin(&["tree", "build", "-n", ns]).await?.ok()?;
    assert_eq!(
        tree,
        "build [failed]\n├── compile [succeeded]\n├── test [failed]\n│   └── depends on: build-compile\n└── publish [aborted]\n    └── depends on: build-test\n"
    );
    let status = plugin(&["status", "build", "-n", ns]).await?.ok()?;
    assert!(status.contains("Flows:     3\n"), "{status}");
    assert!(
        status.contains("  Succeeded: 1\n  Failed:    1\n  Aborted:   1\n"),
        "{status}"
    );
    let list = plugin(&["list", "jf", "-n", ns]).await?.ok()?;
    assert!(
        list.starts_with("NAME                           STATUS       FLOWS\n"),
        "{list}"
    );
    assert!(
        list.contains("\nbuild                          failed       3\n"),
        "{list}"
    );
    let dot = plugin(&["graph", "build", "-n", ns]).await?.ok()?;
    assert!(dot.contains("s0 -> s1;\n  s1 -> s2;\n"), "{dot}");

    // The same name on a ManagedJob: a bare name is ambiguous, KIND/NAME is not.
    world.apply(&support::two_job_workflow("build")).await?;
    let ambiguous = plugin(&["status", "build", "-n", ns]).await?;
    assert_eq!(ambiguous.code, Some(1));
    assert_eq!(
        ambiguous.stderr,
        "error: \"build\" names more than one run: ManagedJob/build, JobFlow/build (give one of them)\n"
    );
    assert!(
        plugin(&["status", "jobflow/build", "-n", ns])
            .await?
            .ok()?
            .starts_with("Name:      build\n")
    );
    let both = plugin(&["list", "-n", ns]).await?.ok()?;
    assert!(both.contains("GROUPS") && both.contains("FLOWS"), "{both}");
    Ok(())
}

/// A DaemonJob on the plane's three nodes and a JobRun: tree, status, list, graph; suspend is
/// refused for the JobRun (no spec.suspend).
#[tokio::test]
async fn daemonjob_and_jobrun_commands() -> Result<()> {
    let world = World::new("plugin-dj").await?;
    let ns = world.name();
    world
        .apply(&format!(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {{name: sweep}}
spec:
  template: {{spec: {{containers: [{{name: c, image: {img}}}]}}}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: echo}}
spec:
  template: {{spec: {{containers: [{{name: c, image: {img}}}]}}}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: hello}}
spec: {{templateRef: echo, args: ["hello"]}}
"#,
            img = fake_pod::IMAGE
        ))
        .await?;
    assert_eq!(
        plugin(&["wait", "sweep", "-n", ns, "--timeout", "120s"])
            .await?
            .code,
        Some(0)
    );
    assert_eq!(
        plugin(&["wait", "jr/hello", "-n", ns, "--timeout", "120s"])
            .await?
            .code,
        Some(0)
    );

    let nodes =
        jobsmith_e2e::kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"])
            .await?;
    let mut expected = String::from("sweep [succeeded]\n");
    let names: Vec<&str> = nodes.split_whitespace().collect();
    for (i, node) in names.iter().enumerate() {
        let branch = if i + 1 == names.len() {
            "└── "
        } else {
            "├── "
        };
        expected.push_str(&format!("{branch}{node} [succeeded]\n"));
    }
    assert_eq!(plugin(&["tree", "sweep", "-n", ns]).await?.ok()?, expected);
    let status = plugin(&["status", "dj/sweep", "-n", ns]).await?.ok()?;
    assert!(
        status.contains(&format!("Nodes:     {}\n", names.len())),
        "{status}"
    );
    let list = plugin(&["list", "dj", "-n", ns]).await?.ok()?;
    assert!(
        list.contains(&format!(
            "\nsweep                          succeeded    {}",
            names.len()
        )),
        "{list}"
    );
    let svg = plugin(&["graph", "sweep", "-n", ns, "--format", "svg"])
        .await?
        .ok()?;
    svg_to_png(&svg, &std::env::temp_dir().join(format!("jobsmith-{ns}")))?;

    assert_eq!(
        plugin(&["tree", "hello", "-n", ns]).await?.ok()?,
        "hello [succeeded]\n└── echo-hello [succeeded]\n"
    );
    let status = plugin(&["status", "hello", "-n", ns]).await?.ok()?;
    assert!(
        status.contains("Template:  echo\nJob:       echo-hello\n"),
        "{status}"
    );
    let list = plugin(&["list", "jr", "-n", ns]).await?.ok()?;
    assert!(
        list.contains(
            "\nhello                          succeeded    echo                 echo-hello\n"
        ),
        "{list}"
    );
    // logs: a JobRun's one step needs no STEP; a DaemonJob's step is its node.
    let (_, expected_log) = fake_container_log()?;
    let expected_log = without_followed_lines(&expected_log);
    assert_eq!(
        without_followed_lines(&plugin(&["logs", "hello", "-n", ns]).await?.ok()?),
        expected_log
    );
    let first = names.first().context("no node")?;
    assert_eq!(
        without_followed_lines(&plugin(&["logs", "sweep", first, "-n", ns]).await?.ok()?),
        expected_log
    );
    let refused = plugin(&["suspend", "hello", "-n", ns]).await?;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("JobRun has no spec.suspend"),
        "{refused:?}"
    );
    Ok(())
}

/// `wait` gives up with exit 2, and `suspend`/`resume` own only `spec.suspend` while a
/// GitOps-style field manager owns the rest of the spec (and re-applies it without conflict).
#[tokio::test]
async fn wait_timeout_and_suspend_resume_beside_a_gitops_manager() -> Result<()> {
    let world = World::new("plugin-suspend").await?;
    let ns = world.name();
    let manifest = format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: slow, namespace: {ns}}}
spec:
  retries: 0
  params: {{annotations: {{{dur}: "2000"}}}}
  groups:
  - name: g
    jobs:
    - {{name: a, image: {img}}}
    - {{name: b, image: {img}}}
    - {{name: c, image: {img}}}
"#,
        dur = fake_pod::DURATION_ANNOTATION,
        img = fake_pod::IMAGE
    );
    let gitops = PatchParams::apply("gitops-controller");
    let api: Api<DynamicObject> = Api::namespaced_with(
        world.client.clone(),
        ns,
        &kube::discovery::ApiResource::erase::<jobsmith_api::ManagedJob>(&()),
    );
    let obj: serde_json::Value = serde_yaml::from_str(&manifest)?;
    api.patch("slow", &gitops, &Patch::Apply(&obj)).await?;

    let timed_out = plugin(&["wait", "slow", "-n", ns, "--timeout", "1s"]).await?;
    assert_eq!(timed_out.code, Some(2), "{timed_out:?}");
    assert!(
        timed_out
            .stderr
            .starts_with("timed out after 1s waiting for ManagedJob/slow"),
        "{timed_out:?}"
    );

    let out = plugin(&["suspend", "slow", "-n", ns]).await?.ok()?;
    assert_eq!(out, "managedjob.jobsmith.dev/slow suspended\n");
    let live = api.get("slow").await?;
    assert_eq!(live.data["spec"]["suspend"], true);
    let fields = live.metadata.managed_fields.clone().unwrap_or_default();
    let ours = fields
        .iter()
        .find(|f| f.manager.as_deref() == Some("kubectl-jobsmith"))
        .context("no managedFields entry of kubectl-jobsmith")?;
    let owned = ours
        .fields_v1
        .as_ref()
        .map(|f| f.0.clone())
        .unwrap_or_default();
    assert_eq!(
        owned,
        serde_json::json!({"f:spec": {"f:suspend": {}}}),
        "the plugin owns spec.suspend only"
    );
    // The GitOps tool re-applies its manifest (without suspend): no conflict, still suspended.
    api.patch("slow", &gitops, &Patch::Apply(&obj)).await?;
    assert_eq!(api.get("slow").await?.data["spec"]["suspend"], true);
    jobsmith_e2e::wait_for(
        &api,
        "slow",
        RUN_TIMEOUT,
        jobsmith_e2e::status_phase("Suspended"),
    )
    .await?;
    let tree = plugin(&["tree", "slow", "-n", ns]).await?.ok()?;
    assert!(tree.starts_with("slow [suspended]\n"), "{tree}");

    assert_eq!(
        plugin(&["resume", "slow", "-n", ns]).await?.ok()?,
        "managedjob.jobsmith.dev/slow resumed\n"
    );
    let waited = plugin(&["wait", "slow", "-n", ns, "--timeout", "120s"]).await?;
    assert_eq!(waited.code, Some(0), "{waited:?}");

    // A GitOps manifest that sets spec.suspend itself: taking the field needs --force-conflicts.
    let mut owned_suspend = obj.clone();
    owned_suspend["spec"]["suspend"] = false.into();
    api.patch("slow", &gitops, &Patch::Apply(&owned_suspend))
        .await?;
    let conflict = plugin(&["suspend", "slow", "-n", ns]).await?;
    assert_eq!(conflict.code, Some(1), "{conflict:?}");
    assert!(
        conflict
            .stderr
            .starts_with(&format!("error: failed to suspend ManagedJob {ns}/slow: "))
            && conflict.stderr.contains("gitops-controller"),
        "{conflict:?}"
    );
    plugin(&["suspend", "slow", "-n", ns, "--force-conflicts"])
        .await?
        .ok()?;
    assert_eq!(api.get("slow").await?.data["spec"]["suspend"], true);
    Ok(())
}

/// Reads the pane of a tmux session of our own server.
async fn capture(socket: &str, session: &str) -> Result<String> {
    let out = Command::new("tmux")
        .args(["-L", socket, "capture-pane", "-p", "-e", "-t", session])
        .output()
        .await
        .context("tmux (make setup)")?;
    ensure!(
        out.status.success(),
        "tmux capture-pane: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn wait_pane(
    socket: &str,
    session: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
) -> Result<String> {
    let start = Instant::now();
    loop {
        let pane = capture(socket, session).await?;
        if check(&pane) {
            return Ok(pane);
        }
        if start.elapsed() > timeout {
            bail!("the pane never showed {what}; last:\n{pane}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `tree -w` in a terminal (tmux): redraws as the run goes from running to succeeded, with
/// coloured statuses and the seed's banner, and exits 0 on Ctrl+C.
#[tokio::test]
async fn watch_mode_in_a_terminal_follows_the_run_and_exits_0_on_ctrl_c() -> Result<()> {
    let world = World::new("plugin-watch").await?;
    let ns = world.name().to_owned();
    world
        .apply(&format!(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: watched}}
spec:
  retries: 0
  params: {{annotations: {{{dur}: "2500"}}}}
  groups:
  - name: g
    jobs:
    - {{name: a, image: {img}}}
    - {{name: b, image: {img}}}
"#,
            dur = fake_pod::DURATION_ANNOTATION,
            img = fake_pod::IMAGE
        ))
        .await?;
    let socket = format!("jobsmith-{ns}");
    let session = "watch";
    let kubeconfig = std::env::var("KUBECONFIG").context("KUBECONFIG")?;
    let command = format!(
        "env -u NO_COLOR KUBECONFIG='{kubeconfig}' '{}' tree watched -n {ns} -w --interval 500ms; echo \"EXIT=$?\"; sleep 600",
        plugin_binary().display()
    );
    let started = Command::new("tmux")
        .args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "40",
            &command,
        ])
        .status()
        .await
        .context("tmux (make setup)")?;
    ensure!(started.success(), "tmux new-session failed");
    let result = async {
        let banner = format!("Watching {ns}/watched (Ctrl+C to exit, refreshing every 500ms)");
        let running = wait_pane(
            &socket,
            session,
            "a running run",
            Duration::from_secs(60),
            |p| p.contains(&banner) && p.contains("watched \x1b[33m[running]"),
        )
        .await?;
        ensure!(
            running.contains("a \x1b[33m[running]") || running.contains("a \x1b[32m[succeeded]"),
            "{running}"
        );
        let done = wait_pane(&socket, session, "the run succeeded", RUN_TIMEOUT, |p| {
            p.contains("watched \x1b[32m[succeeded]")
        })
        .await?;
        ensure!(done.contains("    └── depends on: watched-g-a"), "{done}");
        ensure!(done.contains(&banner), "{done}");
        let keys = Command::new("tmux")
            .args(["-L", &socket, "send-keys", "-t", session, "C-c"])
            .status()
            .await?;
        ensure!(keys.success(), "tmux send-keys failed");
        wait_pane(&socket, session, "EXIT=0", Duration::from_secs(15), |p| {
            p.contains("EXIT=0")
        })
        .await?;
        Ok(())
    }
    .await;
    let _ = Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .status()
        .await;
    result
}

/// `logs`: the pod logs of a step through the API server, which the local plane's nodes route to
/// kwok (e2e/kwok/logs-fake-container.yaml serves one file for every container); `-f` follows a
/// line appended to that file and exits 0 on Ctrl+C (SIGINT).
#[tokio::test]
async fn logs_of_a_step_and_following_them() -> Result<()> {
    let world = World::new("plugin-logs").await?;
    let ns = world.name();
    world.apply(&support::two_job_workflow("logged")).await?;
    assert_eq!(
        plugin(&["wait", "logged", "-n", ns, "--timeout", "120s"])
            .await?
            .code,
        Some(0)
    );

    let (log_file, expected) = fake_container_log()?;

    let one = plugin(&["logs", "logged", "g/a", "-n", ns]).await?.ok()?;
    assert_eq!(one, expected);
    let by_job_name = plugin(&["logs", "logged", "logged-g-b", "-n", ns])
        .await?
        .ok()?;
    assert_eq!(by_job_name, expected);
    let all = plugin(&["logs", "logged", "-n", ns]).await?.ok()?;
    let pod_a = kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "batch.kubernetes.io/job-name=logged-g-a",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ])
    .await?
    .stdout;
    assert!(
        all.starts_with(&format!(
            "==> g/a pod/{pod_a} a <==\n{expected}==> g/b pod/"
        )),
        "{all}"
    );
    let missing = plugin(&["logs", "logged", "g/nope", "-n", ns]).await?;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("has no step \"g/nope\""),
        "{missing:?}"
    );
    let several = plugin(&["logs", "logged", "-f", "-n", ns]).await?;
    assert_eq!(several.code, Some(1), "-f needs one step: {several:?}");

    // Follow: a line appended to the log file arrives; SIGINT ends it with 0.
    let mut child = Command::new(plugin_binary())
        .args(["logs", "logged", "g/a", "-f", "-n", ns])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let token = format!("followed line of {ns}");
    let mut appended = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .context("no followed line within 60 s")??
            .context("logs -f ended")?;
        if !appended && expected.lines().last() == Some(line.as_str()) {
            let now = chrono_like_now();
            let mut file = std::fs::OpenOptions::new().append(true).open(&log_file)?;
            std::io::Write::write_all(&mut file, format!("{now} stdout F {token}\n").as_bytes())?;
            appended = true;
        }
        if line == token {
            break;
        }
    }
    let pid = child.id().context("pid")?;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert_eq!(status.code(), Some(0), "logs -f on SIGINT");
    Ok(())
}

/// The local plane's fake container log (e2e/kwok/logs-fake-container.yaml) and the text every
/// container's log has now.
fn fake_container_log() -> Result<(PathBuf, String)> {
    let run_dir = std::env::var("E2E_RUN_DIR").unwrap_or_else(|_| "/tmp/jobsmith-e2e".to_owned());
    let log_file = PathBuf::from(run_dir).join("fake-container.log");
    let cri = std::fs::read_to_string(&log_file).with_context(|| {
        format!(
            "reading {} (the local plane's fake container log)",
            log_file.display()
        )
    })?;
    // CRI log lines: `<time> <stream> <tag> <text>`.
    let expected: String = cri
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .map(|t| format!("{t}\n"))
        .collect();
    ensure!(!expected.is_empty(), "{} is empty", log_file.display());
    Ok((log_file, expected))
}

/// `text` without the lines `logs_of_a_step_and_following_them` appends to the shared fake
/// container log: that test runs beside the others, so its line may land between another
/// test's reading of the file and its `logs` command (CI, 2026-12-07).
fn without_followed_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("followed line of "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// An RFC 3339 UTC time for a CRI log line (from `date`, to need no date crate here).
fn chrono_like_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "2026-01-01T00:00:00.000000000Z".to_owned())
}

/// `completion` scripts and the completion helper (also without a cluster for fixed words).
#[tokio::test]
async fn completion_scripts_and_helper() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let script = plugin(&["completion", shell]).await?.ok()?;
        ensure!(script.contains("kubectl-jobsmith"), "{shell}: {script}");
    }
    let words = plugin(&["__complete", "gr"]).await?.ok()?;
    assert_eq!(words, "graph\n:4\n");
    let formats = plugin(&["__complete", "graph", "x", "--format", ""])
        .await?
        .ok()?;
    assert_eq!(formats, "dot\nmermaid\nsvg\n:4\n");
    Ok(())
}
