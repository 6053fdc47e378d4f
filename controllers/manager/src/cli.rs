//! Command line and environment (SPEC §7). Every flag has an environment fallback so the Helm chart
//! can configure the manager either way; `LOG_LEVEL` and `POD_NAMESPACE` keep the seed's names.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cache::selector::{OptionalSelector, WatchSelector};

/// The `jobsmith` binary: five controllers on one client.
#[derive(Debug, Parser)]
#[command(
    name = "jobsmith",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, also accepted without the subcommand (`jobsmith --leader-elect`).
    #[command(flatten)]
    pub run: RunArgs,
}

impl Cli {
    /// The subcommand to execute; no subcommand means `run` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the manager against the current kubeconfig or in-cluster config (the default).
    Run(RunArgs),
    /// Write every generated file (CRD YAML, reference docs) under the repository root.
    Generate {
        /// Repository root the generated paths are relative to.
        #[arg(long, env = "JOBSMITH_REPO_ROOT", default_value = ".")]
        repo_root: PathBuf,
    },
    /// Print all CRDs as one multi-document YAML stream (`jobsmith crd | kubectl apply -f -`).
    Crd,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run leader election on a coordination.k8s.io Lease; only the leader runs controllers.
    #[arg(long, env = "JOBSMITH_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "JOBSMITH_LEADER_ELECTION_ID", default_value = "jobsmith")]
    pub leader_election_id: String,

    /// Namespace of the Lease [default: $POD_NAMESPACE, else the kubeconfig's namespace].
    #[arg(long, env = "JOBSMITH_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Address of the Prometheus `/metrics` endpoint; `0` disables it.
    #[arg(
        long,
        env = "JOBSMITH_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: BindAddress,

    /// Address of `/healthz` and `/readyz`; `0` disables them. Same address as metrics: one server.
    #[arg(
        long,
        env = "JOBSMITH_HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_probe_bind_address: BindAddress,

    /// Namespace to watch (repeatable or comma-separated); none means all namespaces.
    #[arg(long = "namespace", env = "JOBSMITH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// Label selector of the run objects this manager reconciles (and, through the
    /// `sharding.jobsmith.dev/key` label copied onto them, of their Jobs), e.g.
    /// `sharding.jobsmith.dev/key in (shard1)`; empty means all. Each shard needs its own
    /// `--leader-election-id`.
    #[arg(
        long,
        env = "JOBSMITH_WATCH_LABEL_SELECTOR",
        default_value = "",
        hide_default_value = true
    )]
    pub watch_label_selector: OptionalSelector,

    /// Human-readable coloured logs instead of JSON lines.
    #[arg(long, env = "JOBSMITH_DEV_MODE", default_value_t = false)]
    pub dev_mode: bool,

    /// Log level; `RUST_LOG`, when set, overrides it with a full filter.
    #[arg(long, env = "LOG_LEVEL", value_enum, default_value_t = LogLevel::Info, ignore_case = true)]
    pub log_level: LogLevel,

    /// Client-side rate limit for object writes (Job creates, status patches), per second;
    /// writes wait for their turn. 0 = off.
    #[arg(long, env = "JOBSMITH_KUBE_API_QPS", default_value_t = 100.0)]
    pub kube_api_qps: f64,

    /// Burst allowed above `--kube-api-qps`.
    #[arg(long, env = "JOBSMITH_KUBE_API_BURST", default_value_t = 200)]
    pub kube_api_burst: u32,

    /// Rate of Events per second, separate from `--kube-api-qps` so that Events never delay a
    /// Job: an Event over the budget is dropped (counted in `jobsmith_events_dropped_total`),
    /// as client-go's event broadcaster does. 0 = no limit.
    #[arg(long, env = "JOBSMITH_EVENT_QPS", default_value_t = 20.0)]
    pub event_qps: f64,

    /// Burst of Events allowed above `--event-qps`.
    #[arg(long, env = "JOBSMITH_EVENT_BURST", default_value_t = 200)]
    pub event_burst: u32,

    /// Per-step Events: `warnings` (failures, conflicts, blocked steps, aborted steps summarised,
    /// and the run's own Events) or `all` (also a Normal `JobCreated` and `JobSucceeded` per
    /// step, which doubles the API writes per Job; the Job's own Events already say it).
    #[arg(long, env = "JOBSMITH_STEP_EVENTS", value_enum, default_value_t = StepEvents::Warnings,
          ignore_case = true)]
    pub step_events: StepEvents,

    /// The shortest time between two status writes of one run object while only its step
    /// detail changes (step entries, counts, the step record): the changes of a wave go out
    /// together, one patch per interval. A change of the run's phase, its conditions, the
    /// observed generation or the retry requests is written at once. An object larger than
    /// 256 KiB waits one second per 256 KiB instead when that is longer (a patch costs the API
    /// server the whole object). 0 = every change at once.
    #[arg(long, env = "JOBSMITH_STATUS_INTERVAL_MS", default_value_t = 1000)]
    pub status_interval_ms: u64,

    /// Reconciles running at once per controller (and per watched namespace).
    #[arg(long, env = "JOBSMITH_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Controllers to run (comma-separated); the others are off.
    #[arg(long, env = "JOBSMITH_CONTROLLERS", value_enum, value_delimiter = ',',
          default_values_t = ControllerKind::ALL)]
    pub controllers: Vec<ControllerKind>,
}

impl RunArgs {
    /// The `--watch-label-selector`, when one is set.
    pub fn watch_selector(&self) -> Option<&WatchSelector> {
        self.watch_label_selector.0.as_ref()
    }

    /// The enabled controllers, deduplicated, in the canonical order.
    pub fn enabled_controllers(&self) -> Vec<ControllerKind> {
        ControllerKind::ALL
            .into_iter()
            .filter(|kind| self.controllers.contains(kind))
            .collect()
    }
}

/// One of the five controllers; the value is its flag spelling and its metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum ControllerKind {
    Managedjob,
    Jobflow,
    Daemonjob,
    Jobtemplate,
    Jobrun,
}

impl ControllerKind {
    pub const ALL: [ControllerKind; 5] = [
        ControllerKind::Managedjob,
        ControllerKind::Jobflow,
        ControllerKind::Daemonjob,
        ControllerKind::Jobtemplate,
        ControllerKind::Jobrun,
    ];

    /// The label value in metrics and logs, and the suffix of the field manager.
    pub fn as_str(self) -> &'static str {
        match self {
            ControllerKind::Managedjob => "managedjob",
            ControllerKind::Jobflow => "jobflow",
            ControllerKind::Daemonjob => "daemonjob",
            ControllerKind::Jobtemplate => "jobtemplate",
            ControllerKind::Jobrun => "jobrun",
        }
    }

    /// Field manager of this controller's writes (and `reportingController` of its Events).
    pub fn field_manager(self) -> &'static str {
        match self {
            ControllerKind::Managedjob => "jobsmith-managedjob",
            ControllerKind::Jobflow => "jobsmith-jobflow",
            ControllerKind::Daemonjob => "jobsmith-daemonjob",
            ControllerKind::Jobtemplate => "jobsmith-jobtemplate",
            ControllerKind::Jobrun => "jobsmith-jobrun",
        }
    }
}

impl fmt::Display for ControllerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which per-step Events are published (`--step-events`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum StepEvents {
    /// Warnings only (and the run's own Events).
    #[default]
    Warnings,
    /// Also a Normal `JobCreated` and `JobSucceeded` per step.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A listen address, or `0` for "disabled" (the controller-runtime convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

impl FromStr for BindAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "0" {
            return Ok(BindAddress(None));
        }
        // Accept ":8080" like the Go managers do.
        let full = if s.starts_with(':') {
            format!("0.0.0.0{s}")
        } else {
            s.to_string()
        };
        full.parse::<SocketAddr>()
            .map(|addr| BindAddress(Some(addr)))
            .map_err(|err| format!("{s:?} is not `host:port` or `0`: {err}"))
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("0"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobsmith").chain(args.iter().copied()))
            .map(Cli::into_command)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args) {
            Ok(Command::Run(run)) => run,
            other => panic!("expected run, got {other:?}"),
        }
    }

    // Tests that read defaults must not see the variables of the environment they run in.
    fn without_env() {
        for key in [
            "JOBSMITH_LEADER_ELECT",
            "JOBSMITH_NAMESPACES",
            "JOBSMITH_CONTROLLERS",
            "LOG_LEVEL",
            "JOBSMITH_METRICS_BIND_ADDRESS",
            "JOBSMITH_HEALTH_PROBE_BIND_ADDRESS",
            "JOBSMITH_CONCURRENCY",
            "JOBSMITH_WATCH_LABEL_SELECTOR",
        ] {
            assert!(
                std::env::var_os(key).is_none(),
                "{key} is set in the test environment"
            );
        }
    }

    #[test]
    fn no_arguments_runs_the_manager_with_defaults() {
        without_env();
        let run = run_args(&[]);
        assert!(!run.leader_elect);
        assert_eq!(run.leader_election_id, "jobsmith");
        assert_eq!(run.leader_election_namespace, None);
        assert_eq!(
            run.metrics_bind_address.0,
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(
            run.health_probe_bind_address.0,
            Some("0.0.0.0:8081".parse().unwrap())
        );
        assert!(run.namespaces.is_empty());
        assert_eq!(run.log_level, LogLevel::Info);
        assert_eq!(run.concurrency, 4);
        assert_eq!(run.enabled_controllers(), ControllerKind::ALL.to_vec());
        assert_eq!(run.watch_selector(), None);
    }

    #[test]
    fn the_watch_label_selector_is_checked_when_parsed() {
        let run = run_args(&[
            "--watch-label-selector",
            "sharding.jobsmith.dev/key in (shard1)",
        ]);
        assert_eq!(
            run.watch_selector().map(ToString::to_string).as_deref(),
            Some("sharding.jobsmith.dev/key in (shard1)")
        );
        let run = run_args(&["run", "--watch-label-selector=!sharding.jobsmith.dev/key"]);
        assert_eq!(
            run.watch_selector().map(ToString::to_string).as_deref(),
            Some("!sharding.jobsmith.dev/key")
        );
        assert_eq!(
            run_args(&["--watch-label-selector", ""]).watch_selector(),
            None
        );
        let error = parse(&[
            "--watch-label-selector",
            "sharding.jobsmith.dev/key in shard1",
        ])
        .expect_err("a selector without parentheses")
        .to_string();
        assert!(
            error.contains("--watch-label-selector") && error.contains("expected `key`"),
            "{error}"
        );
    }

    #[test]
    fn flags_work_with_and_without_the_run_subcommand() {
        let top = run_args(&["--leader-elect", "--namespace", "a", "--namespace", "b,c"]);
        let sub = run_args(&[
            "run",
            "--leader-elect",
            "--namespace",
            "a",
            "--namespace",
            "b,c",
        ]);
        for run in [top, sub] {
            assert!(run.leader_elect);
            assert_eq!(run.namespaces, ["a", "b", "c"]);
        }
    }

    #[test]
    fn controllers_are_selected_by_list_in_canonical_order() {
        let run = run_args(&["--controllers", "jobrun,managedjob,jobrun"]);
        assert_eq!(
            run.enabled_controllers(),
            [ControllerKind::Managedjob, ControllerKind::Jobrun]
        );
        assert!(parse(&["--controllers", "nope"]).is_err());
    }

    #[test]
    fn metrics_can_be_disabled_with_zero_and_accept_colon_port() {
        let run = run_args(&[
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            ":9000",
        ]);
        assert_eq!(run.metrics_bind_address, BindAddress(None));
        assert_eq!(
            run.health_probe_bind_address.0,
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert!(parse(&["--metrics-bind-address", "nonsense"]).is_err());
    }

    #[test]
    fn log_level_accepts_the_four_levels_only() {
        assert_eq!(
            run_args(&["--log-level", "DEBUG"]).log_level,
            LogLevel::Debug
        );
        assert_eq!(run_args(&["--log-level", "warn"]).log_level, LogLevel::Warn);
        assert!(parse(&["--log-level", "trace"]).is_err());
    }

    #[test]
    fn concurrency_zero_is_rejected() {
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert_eq!(run_args(&["--concurrency", "16"]).concurrency, 16);
    }

    #[test]
    fn subcommands_parse_and_reject_run_flags() {
        assert!(matches!(parse(&["crd"]), Ok(Command::Crd)));
        match parse(&["generate", "--repo-root", "/tmp/x"]) {
            Ok(Command::Generate { repo_root }) => assert_eq!(repo_root, PathBuf::from("/tmp/x")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["--dev-mode", "crd"]).is_err());
    }

    #[test]
    fn field_managers_are_per_controller() {
        let managers: std::collections::BTreeSet<_> = ControllerKind::ALL
            .iter()
            .map(|k| k.field_manager())
            .collect();
        assert_eq!(managers.len(), 5);
        assert_eq!(
            ControllerKind::Managedjob.field_manager(),
            "jobsmith-managedjob"
        );
    }
}
