//! Command line of `kubectl-jobsmith` (and of the seed-compatible `kubectl-managedjob`).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::render::graph::GraphFormat;

/// See, follow and steer Jobsmith runs (ManagedJob, JobFlow, DaemonJob, JobRun).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-jobsmith",
    bin_name = "kubectl jobsmith",
    version,
    disable_version_flag = true,
    about = "See, follow and steer Jobsmith runs (ManagedJob, JobFlow, DaemonJob, JobRun)",
    after_help = "NAME is a run's name, looked up among the four run kinds, or KIND/NAME (mj/NAME, jf/NAME, dj/NAME, jr/NAME)."
)]
pub struct Cli {
    /// Connection and output options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (kubectl's names).
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`)
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// All namespaces (list)
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// No colours (also NO_COLOR, or when stdout is not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw a run as a tree with coloured statuses
    #[command(visible_alias = "tree")]
    Visualize(VisualizeArgs),
    /// List runs (all run kinds, or one: mj, jf, dj, jr)
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a run's status summary, or one step's with --job
    Status(StatusArgs),
    /// Print a run's dependency graph (DOT, Mermaid or SVG)
    Graph(GraphArgs),
    /// Print the logs of a step's pods
    Logs(LogsArgs),
    /// Wait until a run succeeds or completes (exit 0 success, 1 failure, 2 timeout)
    Wait(WaitArgs),
    /// Suspend a run (spec.suspend: true, server-side apply of this plugin's field manager)
    Suspend(SuspendArgs),
    /// Resume a suspended run (spec.suspend: false)
    Resume(SuspendArgs),
    /// Retry a run in place: re-run its failed steps and what depends on them
    Retry(RetryArgs),
    /// Create a new run from a run's spec (generateName NAME-); prints the new name
    Resubmit(ResubmitArgs),
    /// Print a shell completion script
    Completion(CompletionArgs),
    /// Print the plugin's version
    Version,
}

impl Command {
    /// The command's name as typed (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Visualize(_) => "visualize",
            Command::List(_) => "list",
            Command::Status(_) => "status",
            Command::Graph(_) => "graph",
            Command::Logs(_) => "logs",
            Command::Wait(_) => "wait",
            Command::Suspend(_) => "suspend",
            Command::Resume(_) => "resume",
            Command::Retry(_) => "retry",
            Command::Resubmit(_) => "resubmit",
            Command::Completion(_) => "completion",
            Command::Version => "version",
        }
    }
}

/// `visualize NAME`.
#[derive(Debug, Args)]
pub struct VisualizeArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// Redraw every --interval until Ctrl+C
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Redraw interval of --watch (500ms, 2s, 1m)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
}

/// `list [KIND]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this kind: mj, jf, dj, jr (or their kind names)
    pub kind: Option<String>,
    /// Output format
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ListOutput>,
}

/// `list -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    /// The objects as a JSON List
    Json,
    /// The objects as a YAML List
    Yaml,
    /// The table with PROGRESS, AGE and MESSAGE
    Wide,
}

/// `status NAME`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// One step: GROUP/JOB of a ManagedJob (with its compiled params), a flow, a node
    #[arg(long, value_name = "STEP")]
    pub job: Option<String>,
}

/// `graph NAME`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// Output format (svg needs Graphviz `dot` on the PATH)
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// `logs NAME [STEP]`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// The step (GROUP/JOB, flow, node); may be left out when the run has one step
    pub step: Option<String>,
    /// Follow the log of a running step
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The container (default: every container of the pod)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Lines from the end of each log to show
    #[arg(long)]
    pub tail: Option<i64>,
}

/// `wait NAME`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// succeeded: exit 0 once Succeeded, 1 once Failed. completed: exit 0 once either
    #[arg(long = "for", value_enum, default_value = "succeeded")]
    pub for_: WaitFor,
    /// Give up after this long (exit 2); 0 waits forever
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `wait --for`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The run succeeded (a failed run exits 1)
    Succeeded,
    /// The run finished, successfully or not
    Completed,
}

/// `suspend NAME` / `resume NAME`.
#[derive(Debug, Args)]
pub struct SuspendArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
    /// Take spec.suspend over from another field manager that owns it
    #[arg(long)]
    pub force_conflicts: bool,
}

/// `retry NAME [--step S]...`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run: NAME or KIND/NAME (ManagedJob, JobFlow, DaemonJob)
    pub name: String,
    /// Only this step (GROUP/JOB, flow, node) and what depends on it; repeatable
    #[arg(long = "step", value_name = "STEP")]
    pub steps: Vec<String>,
}

/// `resubmit NAME`.
#[derive(Debug, Args)]
pub struct ResubmitArgs {
    /// The run: NAME or KIND/NAME
    pub name: String,
}

/// `completion SHELL`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh or fish
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Parses `500ms`, `2s`, `1m30s`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{text}\" (use 500ms, 2s, 1m30s, 1h)"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration \"{text}\""))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => {
                return Err(format!(
                    "invalid duration \"{text}\" (use 500ms, 2s, 1m30s, 1h)"
                ));
            }
        };
        total = total.saturating_add(part);
        rest = next;
    }
    Ok(total)
}

/// `2s`, `500ms`, `1m30s`: a duration as `--interval` takes it (for the watch banner).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    if secs >= 3600 {
        out.push_str(&format!("{}h", secs / 3600));
        secs %= 3600;
    }
    if secs >= 60 {
        out.push_str(&format!("{}m", secs / 60));
        secs %= 60;
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tree_is_an_alias_of_visualize() {
        let cli = Cli::try_parse_from(["kubectl-jobsmith", "tree", "x", "-w", "-n", "ns"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Visualize(VisualizeArgs { watch: true, .. })
        ));
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
    }
}
