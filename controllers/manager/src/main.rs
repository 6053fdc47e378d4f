//! The `jobsmith` binary: five controllers on one client (see docs/architecture.md and
//! docs/manager.md). `main` wires the shared plumbing; each kind lives in `controllers/`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;

use jobsmith_manager::{
    cache::jobs,
    cache::nodes,
    cache::templates,
    cache::{self, WatchScope},
    cli::{Cli, Command, ControllerKind, RunArgs},
    context::Shared,
    controllers, generate,
    leadership::lease,
    leadership::lease::{Fence, LeaderOutcome, Leadership},
    leadership::ratelimit::WriteLimiter,
    shutdown::Shutdown,
    telemetry,
    telemetry::health,
    telemetry::health::{HealthState, Heartbeat, Readiness},
    telemetry::metrics,
    telemetry::metrics::Metrics,
};

/// How long running reconciles may take to finish after the shutdown signal (the pod's
/// `terminationGracePeriodSeconds` should be larger).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    match Cli::parse().into_command() {
        Command::Generate { repo_root } => match generate::write_all(&repo_root) {
            Ok(paths) => {
                for path in paths {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("jobsmith generate: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Crd => match generate::print_crds() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("jobsmith crd: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("jobsmith: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(args))
        }
    }
}

/// Start-up failures: logged, then the process exits non-zero.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("installing the logger: {0}")]
    Telemetry(#[from] tracing_subscriber::util::TryInitError),
    #[error("installing the metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to Kubernetes: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Leader(#[from] lease::LeaderError),
}

impl StartupError {
    fn category(&self) -> &'static str {
        match self {
            StartupError::Telemetry(_) => "telemetry",
            StartupError::Metrics(_) => "metrics",
            StartupError::Signals(_) => "signals",
            StartupError::Bind { .. } => "bind",
            StartupError::Client(_) => "client",
            StartupError::Leader(error) => error.category(),
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    if let Err(error) = telemetry::logging::init(args.dev_mode, args.log_level) {
        eprintln!("jobsmith: {error}");
        return ExitCode::FAILURE;
    }
    match run_manager(args).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(%error, category = error.category(), "start-up failed");
            ExitCode::FAILURE
        }
    }
}

/// Registers the readiness check `cache/<name>` and marks it synced once `cache` has listed.
fn report_ready<K>(
    readiness: &Readiness,
    name: &'static str,
    cache: cache::SharedCache<K>,
    shutdown: &Shutdown,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let ready = readiness.register(format!("cache/{name}"));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if !cache::wait_ready_or_shutdown(name, &cache, &stop).await {
            return;
        }
        ready.set_synced();
        // Not ready while the watch is down; ready again at its next event.
        let mut watching = cache.watching();
        loop {
            tokio::select! {
                changed = watching.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    ready.set(*watching.borrow_and_update());
                }
                () = stop.wait() => return,
            }
        }
    });
}

async fn run_manager(args: RunArgs) -> Result<ExitCode, StartupError> {
    let shutdown = Shutdown::new();
    shutdown
        .spawn_signal_handler()
        .map_err(StartupError::Signals)?;

    let metrics = Metrics::new(Some(metrics::install()?));
    spawn_metrics_upkeep(metrics.clone(), shutdown.clone());
    let readiness = Readiness::default();
    let heartbeat = Heartbeat::default();
    heartbeat.spawn(shutdown.clone());

    // Servers first, so probes answer (not ready) while we connect and wait for the Lease.
    let state = HealthState {
        readiness: readiness.clone(),
        heartbeat,
        metrics: metrics.clone(),
    };
    let servers = start_servers(&args, state, &shutdown).await?;

    let client = kube::Client::try_default()
        .await
        .map_err(StartupError::Client)?;
    let instance = lease::identity();
    let enabled = args.enabled_controllers();
    log_start(&args, &enabled, &instance);

    let leadership = match lead(&args, &client, &instance, &readiness, &shutdown).await? {
        Lead::Alone => None,
        Lead::Elected(election) => Some(*election),
        Lead::StoppedWaiting => return Ok(finish(servers, ExitCode::SUCCESS).await),
    };
    let fence = leadership
        .as_ref()
        .map_or_else(Fence::open, Leadership::fence);
    let shared = shared_state(
        &args,
        &enabled,
        (client, instance),
        fence,
        metrics,
        &readiness,
        &shutdown,
    );
    let code = run_controllers(enabled, shared, leadership, shutdown).await;
    Ok(finish(servers, code).await)
}

/// Binds the health and metrics servers and serves them until the shutdown.
async fn start_servers(
    args: &RunArgs,
    state: HealthState,
    shutdown: &Shutdown,
) -> Result<Vec<tokio::task::JoinHandle<std::io::Result<()>>>, StartupError> {
    let mut servers = Vec::new();
    for (addr, endpoints) in health::plan(
        args.health_probe_bind_address.0,
        args.metrics_bind_address.0,
    ) {
        let router = health::router(state.clone(), endpoints);
        let serve = health::bind_and_serve(addr, router, shutdown.clone())
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        servers.push(tokio::spawn(serve));
    }
    Ok(servers)
}

/// Logs what this manager runs, and warns about a shard selector that Jobs may not match.
fn log_start(args: &RunArgs, enabled: &[ControllerKind], instance: &str) {
    tracing::info!(
        instance,
        controllers = ?enabled.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        namespaces = ?args.namespaces,
        watch_label_selector = %args.watch_label_selector,
        "starting jobsmith"
    );
    if let Some(shard) = args.watch_selector() {
        let others = shard.other_keys(jobsmith_api::labels::SHARD_KEY);
        if !others.is_empty() {
            // Jobs carry these labels only as copied from their run object (params may change
            // them), so a Job could fall outside the Job watch: docs/scaling.md.
            tracing::warn!(keys = ?others, "--watch-label-selector names labels other than sharding.jobsmith.dev/key; only that one is guaranteed on child Jobs");
        }
    }
}

/// What leader election left this manager with.
enum Lead {
    /// `--leader-elect` is off: the only writer by configuration.
    Alone,
    /// The leader: its Lease is held until the controllers stopped.
    Elected(Box<Leadership>),
    /// Shut down while waiting as a standby: nothing to run.
    StoppedWaiting,
}

/// With `--leader-elect`, waits (ready as a standby) until this manager holds the Lease.
async fn lead(
    args: &RunArgs,
    client: &kube::Client,
    instance: &str,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Result<Lead, StartupError> {
    if !args.leader_elect {
        return Ok(Lead::Alone);
    }
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut election = Leadership::new(
        client.clone(),
        &namespace,
        &args.leader_election_id,
        instance,
    );
    readiness.set_standby(true);
    tracing::info!(lease = %args.leader_election_id, %namespace, "waiting to become the leader");
    let leader = election.acquire(shutdown).await?;
    readiness.set_standby(false);
    if !leader {
        return Ok(Lead::StoppedWaiting);
    }
    tracing::info!("became the leader");
    Ok(Lead::Elected(Box::new(election)))
}

/// Starts the shared caches (readiness follows their first sync) and gathers what every
/// controller shares (the client, and this process's `instance` name, the reporting instance of
/// its Events); every write passes `fence`.
fn shared_state(
    args: &RunArgs,
    enabled: &[ControllerKind],
    (client, instance): (kube::Client, String),
    fence: Arc<Fence>,
    metrics: Metrics,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Shared {
    let scope = Arc::new(WatchScope::from_flags(&args.namespaces));
    let jobs = jobs::spawn_cache(&client, &scope, args.watch_selector(), shutdown.clone());
    let templates = templates::spawn_cache(&client, &scope, shutdown.clone());
    // Nodes are watched only for DaemonJobs.
    let node_cache = enabled
        .contains(&ControllerKind::Daemonjob)
        .then(|| nodes::spawn_cache(&client, shutdown.clone()));
    if let Some(node_cache) = node_cache.clone() {
        report_ready(readiness, "nodes", node_cache, shutdown);
    }
    report_ready(readiness, "jobs", jobs.clone(), shutdown);
    report_ready(readiness, "jobtemplates", templates.clone(), shutdown);
    Shared {
        client,
        jobs,
        templates,
        nodes: node_cache,
        limiter: Arc::new(WriteLimiter::new(
            args.kube_api_qps,
            args.kube_api_burst,
            fence.clone(),
        )),
        event_limiter: Arc::new(WriteLimiter::new(args.event_qps, args.event_burst, fence)),
        metrics,
        scope,
        shard: args.watch_selector().cloned(),
        readiness: readiness.clone(),
        concurrency: args.concurrency,
        step_events: args.step_events,
        status_interval: Duration::from_millis(args.status_interval_ms),
        instance,
    }
}

/// Runs the controllers until the shutdown, then releases the Lease once they stopped (their
/// writes are fenced from the shutdown on, so a successor never overlaps with our last
/// writes). Failure when the Lease was lost.
async fn run_controllers(
    enabled: Vec<ControllerKind>,
    shared: Shared,
    leadership: Option<Leadership>,
    shutdown: Shutdown,
) -> ExitCode {
    let controllers = futures::future::join_all(
        enabled
            .into_iter()
            .map(|kind| controllers::run(kind, shared.clone(), shutdown.clone())),
    );
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let running = async {
        // Controllers that are not implemented return at once; the manager still runs until the signal.
        tokio::join!(controllers, shutdown.wait());
    };
    let leader = async {
        match leadership {
            Some(election) => {
                election
                    .hold(shutdown.clone(), async {
                        let _ = stopped_rx.await;
                    })
                    .await
            }
            None => {
                shutdown.wait().await;
                LeaderOutcome::Released
            }
        }
    };
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let (outcome, ()) = tokio::join!(leader, async {
        tokio::select! {
            () = running => tracing::info!("all controllers stopped"),
            () = deadline => tracing::warn!("reconciles still running after the grace period; exiting"),
        }
        let _ = stopped_tx.send(());
    });
    match outcome {
        LeaderOutcome::Lost => ExitCode::FAILURE,
        LeaderOutcome::Released => ExitCode::SUCCESS,
    }
}

/// Waits briefly for the HTTP servers to close, then returns `code`.
async fn finish(
    servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    code: ExitCode,
) -> ExitCode {
    let all = futures::future::join_all(servers);
    if tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .is_err()
    {
        tracing::warn!("health/metrics servers did not stop in time");
    }
    tracing::info!("jobsmith stopped");
    code
}

fn spawn_metrics_upkeep(metrics: Metrics, shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => metrics.run_upkeep(),
                () = shutdown.wait() => return,
            }
        }
    });
}
