//! The commands: each reads through [`Session`], renders with the pure modules, and returns the
//! exit code.

use std::io::{IsTerminal, Write};
use std::process::Stdio;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::args::{
    Command, GraphArgs, ListArgs, ListOutput, LogsArgs, ResubmitArgs, RetryArgs, StatusArgs,
    SuspendArgs, VisualizeArgs, WaitArgs, WaitFor, format_duration,
};
use crate::client::{Session, connect};
use crate::error::{CliError, api_message};
use crate::kinds::{ObjectRef, RunKind};
use crate::model::{Run, phase_text};
use crate::render::graph::{self, GraphFormat};
use crate::{Personality, render::color, render::status, render::table, render::tree};

/// Exit code of `wait` when the run failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of `wait` on timeout.
pub const EXIT_TIMEOUT: i32 = 2;

/// Runs one command; returns the exit code.
pub async fn run(
    personality: Personality,
    global: &crate::args::GlobalArgs,
    command: &Command,
) -> Result<i32, CliError> {
    if personality == Personality::ManagedJob
        && !matches!(
            command,
            Command::Visualize(_) | Command::List(_) | Command::Status(_)
        )
    {
        return Err(CliError::Unsupported(format!(
            "kubectl managedjob has visualize, list and status; use kubectl jobsmith {}",
            command.name()
        )));
    }
    let colour = color::enabled(
        global.no_color,
        std::env::var("NO_COLOR").ok().as_deref(),
        std::io::stdout().is_terminal(),
    );
    match command {
        Command::Version => {
            println!("kubectl-jobsmith {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Completion(args) => {
            let mut cmd = <crate::args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(
                args.shell,
                &mut cmd,
                "kubectl-jobsmith",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        _ => {
            let session = connect(global).await?;
            let default_kind = personality.default_kind();
            match command {
                Command::Visualize(args) => visualize(&session, args, default_kind, colour).await,
                Command::List(args) => list(&session, args, personality, colour).await,
                Command::Status(args) => status_cmd(&session, args, default_kind, colour).await,
                Command::Graph(args) => graph_cmd(&session, args).await,
                Command::Logs(args) => logs(&session, args).await,
                Command::Wait(args) => wait(&session, args).await,
                Command::Suspend(args) => suspend(&session, args, true).await,
                Command::Resume(args) => suspend(&session, args, false).await,
                Command::Retry(args) => retry(&session, args).await,
                Command::Resubmit(args) => resubmit(&session, args).await,
                Command::Version | Command::Completion(_) => Ok(0),
            }
        }
    }
}

async fn resolve(
    session: &Session,
    name: &str,
    default_kind: Option<RunKind>,
) -> Result<Run, CliError> {
    let target = ObjectRef::parse(name)?.with_default_kind(default_kind);
    session.resolve(&target).await
}

/// The tree text of a run as it is now.
async fn tree_text(session: &Session, run: &Run, colour: bool) -> Result<String, CliError> {
    let plan = run.plan()?;
    let extra = session.extra_phases(run, plan.as_ref()).await?;
    let root = tree::build(run, plan.as_ref(), &extra)?;
    Ok(tree::render(&root, colour))
}

async fn visualize(
    session: &Session,
    args: &VisualizeArgs,
    default_kind: Option<RunKind>,
    colour: bool,
) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, default_kind).await?;
    if !args.watch {
        print(&tree_text(session, &run, colour).await?)?;
        return Ok(0);
    }
    let (kind, name) = (run.kind, run.name().to_owned());
    let interval = args.interval.max(Duration::from_millis(100));
    let banner = format!(
        "\nWatching {}/{} (Ctrl+C to exit, refreshing every {})\n",
        session.namespace,
        name,
        format_duration(interval)
    );
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let frame = match session.get(kind, &name).await {
            Ok(Some(run)) => tree_text(session, &run, colour).await,
            Ok(None) => Err(CliError::Get {
                kind: kind.kind(),
                namespace: session.namespace.clone(),
                name: name.clone(),
                message: "not found".to_owned(),
            }),
            Err(e) => Err(e),
        };
        // Clear the screen and draw the frame in one write (no flicker).
        let mut screen = String::from("\x1b[H\x1b[2J");
        match frame {
            Ok(text) => screen.push_str(&text),
            Err(e) => screen.push_str(&format!("error: {e}\n")),
        }
        screen.push_str(&banner);
        print(&screen)?;
        tokio::select! {
            _ = &mut ctrl_c => return Ok(0),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn list(
    session: &Session,
    args: &ListArgs,
    personality: Personality,
    colour: bool,
) -> Result<i32, CliError> {
    let kinds: Vec<RunKind> = match (&args.kind, personality.default_kind()) {
        (Some(alias), _) => vec![RunKind::from_alias(alias).ok_or_else(|| {
            CliError::Unsupported(format!(
                "unknown kind \"{alias}\" (use mj, jf, dj or jr, or their kind names)"
            ))
        })?],
        (None, Some(kind)) => vec![kind],
        (None, None) => RunKind::ALL.to_vec(),
    };
    let mut all = Vec::new();
    for kind in &kinds {
        all.push((*kind, session.list(*kind).await?));
    }
    if let Some(ListOutput::Json | ListOutput::Yaml) = args.output {
        let items: Vec<Value> = all
            .iter()
            .flat_map(|(_, runs)| runs.iter().map(|r| r.raw.clone()))
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}});
        let text = if args.output == Some(ListOutput::Json) {
            serde_json::to_string_pretty(&list)
                .map(|s| s + "\n")
                .map_err(|e| CliError::Render(e.to_string()))?
        } else {
            serde_yaml::to_string(&list).map_err(|e| CliError::Render(e.to_string()))?
        };
        print(&text)?;
        return Ok(0);
    }
    let options = table::TableOptions {
        all_namespaces: session.all_namespaces,
        wide: args.output == Some(ListOutput::Wide),
        colour,
    };
    let now = chrono::Utc::now();
    let tables: Vec<String> = all
        .iter()
        .filter(|(_, runs)| !runs.is_empty())
        .map(|(kind, runs)| table::render(*kind, runs, options, now))
        .collect();
    let namespace = (!session.all_namespaces).then_some(session.namespace.as_str());
    if tables.is_empty() {
        print(&format!("{}\n", table::empty_message(&kinds, namespace)))?;
    } else {
        print(&tables.join("\n"))?;
    }
    Ok(0)
}

async fn status_cmd(
    session: &Session,
    args: &StatusArgs,
    default_kind: Option<RunKind>,
    colour: bool,
) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, default_kind).await?;
    // An invalid spec still has a status to show (phase Failed, the reason in the message).
    let plan = run.plan().ok().flatten();
    let text = match &args.job {
        Some(step) => status::render_step(&run, plan.as_ref(), step, colour)?,
        None => status::render(&run, plan.as_ref(), colour),
    };
    print(&text)?;
    Ok(0)
}

async fn graph_cmd(session: &Session, args: &GraphArgs) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    let plan = run.plan()?;
    let text = match args.format {
        GraphFormat::Dot => graph::dot(&run, plan.as_ref())?,
        GraphFormat::Mermaid => graph::mermaid(&run, plan.as_ref())?,
        GraphFormat::Svg => svg(&graph::dot(&run, plan.as_ref())?).await?,
    };
    print(&text)?;
    Ok(0)
}

/// Lays DOT out as SVG with Graphviz `dot` (`JOBSMITH_DOT` names another binary).
pub async fn svg(dot: &str) -> Result<String, CliError> {
    let binary = std::env::var("JOBSMITH_DOT").unwrap_or_else(|_| "dot".to_owned());
    let mut child = tokio::process::Command::new(&binary)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CliError::Graphviz(format!(
                "graph --format svg needs Graphviz `{binary}` on the PATH ({e}); install graphviz, or use --format dot|mermaid"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(CliError::Graphviz(format!(
            "`{binary} -Tsvg` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| CliError::Graphviz(format!("`{binary} -Tsvg` wrote invalid UTF-8: {e}")))
}

/// A step of a run whose logs are wanted: its key and its Job's name.
struct LogStep {
    key: String,
    job_name: String,
}

fn log_steps(run: &Run, step: Option<&str>) -> Result<Vec<LogStep>, CliError> {
    let plan = run.plan()?;
    let mut steps: Vec<LogStep> = match &plan {
        Some(plan) => plan
            .steps
            .iter()
            .map(|s| LogStep {
                key: s.key.clone(),
                job_name: run
                    .status
                    .step(&s.key)
                    .and_then(|e| e.job_name.clone())
                    .or_else(|| {
                        (run.kind == RunKind::JobRun)
                            .then(|| run.status.job_name.clone())
                            .flatten()
                    })
                    .unwrap_or_else(|| s.job_name.clone()),
            })
            .collect(),
        None => run
            .status
            .nodes
            .iter()
            .filter_map(|n| {
                n.job_name.clone().map(|job_name| LogStep {
                    key: n.node.clone(),
                    job_name,
                })
            })
            .collect(),
    };
    if let Some(step) = step {
        let keys: Vec<String> = steps.iter().take(10).map(|s| s.key.clone()).collect();
        steps.retain(|s| s.key == step || s.job_name == step);
        if steps.is_empty() {
            return Err(CliError::NoSuchStep {
                kind: run.kind.kind(),
                name: run.name().to_owned(),
                step: step.to_owned(),
                steps: keys,
            });
        }
    }
    Ok(steps)
}

async fn logs(session: &Session, args: &LogsArgs) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    let steps = log_steps(&run, args.step.as_deref())?;
    if args.follow && steps.len() != 1 {
        return Err(CliError::Unsupported(format!(
            "logs -f follows one step: name one of {} {}'s steps",
            run.kind,
            run.name()
        )));
    }
    let streams = log_streams(session, &run, &steps, args).await?;
    if streams.is_empty() {
        return Err(CliError::Unsupported(format!(
            "no pod of {} {} matches (no step has started yet, or --container names no container)",
            run.kind,
            run.name()
        )));
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(session.client.clone(), run.namespace());
    let headers = streams.len() > 1;
    for stream in &streams {
        if headers {
            let LogStream {
                step,
                pod,
                container,
            } = stream;
            print(&format!("==> {step} pod/{pod} {container} <==\n"))?;
        }
        if print_log(&pods, run.namespace(), stream, args).await? == Printed::Interrupted {
            return Ok(0);
        }
    }
    Ok(0)
}

/// One container's log to print, and the step it belongs to.
struct LogStream {
    step: String,
    pod: String,
    container: String,
}

/// The log streams of `steps`: every pod of each step (the newest one with `-f`, the one that
/// runs now), every container or the one `--container` names. A step named with `--step`
/// that has no pod is an error.
async fn log_streams(
    session: &Session,
    run: &Run,
    steps: &[LogStep],
    args: &LogsArgs,
) -> Result<Vec<LogStream>, CliError> {
    let mut streams = Vec::new();
    for step in steps {
        let pods = session.job_pods(run.namespace(), &step.job_name).await?;
        if pods.is_empty() && args.step.is_some() {
            let phase = phase_text(run.status.step(&step.key).and_then(|s| s.shown_phase()));
            return Err(CliError::Unsupported(format!(
                "step \"{}\" of {} {} has no pod (Job {}, step {phase})",
                step.key,
                run.kind,
                run.name(),
                step.job_name
            )));
        }
        let chosen: Vec<_> = if args.follow {
            pods.last().into_iter().collect()
        } else {
            pods.iter().collect()
        };
        for pod in chosen {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
            for container in containers {
                if args
                    .container
                    .as_deref()
                    .is_some_and(|c| c != container.name)
                {
                    continue;
                }
                streams.push(LogStream {
                    step: step.key.clone(),
                    pod: pod_name.clone(),
                    container: container.name.clone(),
                });
            }
        }
    }
    Ok(streams)
}

/// How printing a log ended.
#[derive(PartialEq, Eq)]
enum Printed {
    /// The whole log (or, with `-f`, until the container's log ended).
    Done,
    /// Ctrl-C while following.
    Interrupted,
}

/// Prints one container's log: what it holds now, or with `-f` follows it until it ends.
async fn print_log(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    namespace: &str,
    stream: &LogStream,
    args: &LogsArgs,
) -> Result<Printed, CliError> {
    let params = LogParams {
        container: Some(stream.container.clone()),
        follow: args.follow,
        tail_lines: args.tail,
        ..LogParams::default()
    };
    let log_error = |e: kube::Error| CliError::Logs {
        namespace: namespace.to_owned(),
        pod: stream.pod.clone(),
        message: api_message(&e),
    };
    if !args.follow {
        let text = pods.logs(&stream.pod, &params).await.map_err(log_error)?;
        print(&text)?;
        if !text.is_empty() && !text.ends_with('\n') {
            print("\n")?;
        }
        return Ok(Printed::Done);
    }
    let reader = pods
        .log_stream(&stream.pod, &params)
        .await
        .map_err(log_error)?;
    let mut lines = reader.lines();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(Printed::Interrupted),
            line = lines.next() => match line {
                Some(Ok(line)) => print(&format!("{line}\n"))?,
                Some(Err(e)) => return Err(CliError::Output(e)),
                None => return Ok(Printed::Done),
            }
        }
    }
}

/// What `wait` decides from a phase: `None` keeps waiting.
pub fn wait_outcome(phase: Option<&str>, for_: WaitFor) -> Option<i32> {
    match (phase, for_) {
        (Some("Succeeded"), _) => Some(0),
        (Some("Failed"), WaitFor::Succeeded) => Some(EXIT_FAILED),
        (Some("Failed"), WaitFor::Completed) => Some(0),
        _ => None,
    }
}

async fn wait(session: &Session, args: &WaitArgs) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    let (kind, name) = (run.kind, run.name().to_owned());
    let what = format!("{}/{}", kind.kind(), name);
    let api = session.runs(kind, Some(&session.namespace));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut last_phase = run.status.phase.clone();
    let watch = async {
        // A watch, not polling: each change of the object is judged once.
        let mut stream = watcher(api, config).applied_objects().boxed();
        loop {
            match stream.try_next().await {
                Ok(Some(obj)) => {
                    let raw =
                        serde_json::to_value(&obj).map_err(|e| CliError::Render(e.to_string()))?;
                    let current = Run::from_value(kind, raw);
                    let fresh = match (
                        current.status.observed_generation,
                        current.metadata.generation,
                    ) {
                        (Some(observed), Some(generation)) => observed >= generation,
                        _ => true,
                    };
                    last_phase = current.status.phase.clone();
                    if fresh
                        && let Some(code) = wait_outcome(current.status.phase.as_deref(), args.for_)
                    {
                        let phase = phase_text(current.status.phase.as_deref());
                        match current.status.message.as_deref().filter(|_| code != 0) {
                            Some(message) => println!("{what} {phase}: {message}"),
                            None => println!("{what} {phase}"),
                        }
                        return Ok(code);
                    }
                }
                Ok(None) => {
                    return Err(CliError::Unsupported(format!("the watch of {what} ended")));
                }
                Err(e) => {
                    // The watcher retries on its own only with a backoff; a hard error ends it.
                    return Err(CliError::Get {
                        kind: kind.kind(),
                        namespace: session.namespace.clone(),
                        name: name.clone(),
                        message: e.to_string(),
                    });
                }
            }
        }
    };
    if args.timeout.is_zero() {
        return watch.await;
    }
    let result = tokio::time::timeout(args.timeout, watch).await;
    match result {
        Ok(result) => result,
        Err(_) => {
            eprintln!(
                "timed out after {} waiting for {what} (phase {})",
                format_duration(args.timeout),
                phase_text(last_phase.as_deref())
            );
            Ok(EXIT_TIMEOUT)
        }
    }
}

async fn suspend(session: &Session, args: &SuspendArgs, suspend: bool) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    if !run.kind.has_suspend() {
        return Err(CliError::Unsupported(format!(
            "{} has no spec.suspend (suspend and resume apply to ManagedJob, JobFlow and DaemonJob)",
            run.kind
        )));
    }
    session
        .set_suspend(&run, suspend, args.force_conflicts)
        .await?;
    println!(
        "{}.{}/{} {}",
        run.kind.kind().to_ascii_lowercase(),
        jobsmith_api::API_GROUP,
        run.name(),
        if suspend { "suspended" } else { "resumed" }
    );
    Ok(0)
}

async fn retry(session: &Session, args: &RetryArgs) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    if run.kind == RunKind::JobRun {
        return Err(CliError::Unsupported(format!(
            "a JobRun runs exactly one Job and is not retried in place: kubectl jobsmith resubmit {}",
            run.name()
        )));
    }
    if !args.steps.is_empty() {
        let plan = run.plan()?;
        let unknown = plan
            .as_ref()
            .map(|p| crate::lifecycle::unknown_steps(p, &args.steps))
            .unwrap_or_default();
        if !unknown.is_empty() {
            return Err(CliError::Unsupported(format!(
                "{} {} has no step {} (steps are GROUP/JOB, flow or node names)",
                run.kind,
                run.name(),
                unknown.join(", ")
            )));
        }
    }
    let now = k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map_err(|e| CliError::Render(e.to_string()))?
        .to_string();
    session
        .annotate(&run, &crate::lifecycle::retry_patch(&now, &args.steps))
        .await?;
    println!(
        "{}.{}/{} retry requested at {now}",
        run.kind.kind().to_ascii_lowercase(),
        jobsmith_api::API_GROUP,
        run.name(),
    );
    Ok(0)
}

async fn resubmit(session: &Session, args: &ResubmitArgs) -> Result<i32, CliError> {
    let run = resolve(session, &args.name, None).await?;
    let created = session
        .create(&run, &crate::lifecycle::resubmitted(&run.raw))
        .await?;
    println!(
        "{}.{}/{} created",
        run.kind.kind().to_ascii_lowercase(),
        jobsmith_api::API_GROUP,
        created.name(),
    );
    Ok(0)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_exit_codes() {
        assert_eq!(wait_outcome(Some("Succeeded"), WaitFor::Succeeded), Some(0));
        assert_eq!(wait_outcome(Some("Failed"), WaitFor::Succeeded), Some(1));
        assert_eq!(wait_outcome(Some("Failed"), WaitFor::Completed), Some(0));
        assert_eq!(wait_outcome(Some("Succeeded"), WaitFor::Completed), Some(0));
        assert_eq!(wait_outcome(Some("Running"), WaitFor::Succeeded), None);
        assert_eq!(wait_outcome(Some("Suspended"), WaitFor::Completed), None);
        assert_eq!(wait_outcome(None, WaitFor::Succeeded), None);
    }
}
