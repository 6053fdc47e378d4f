//! `/healthz`, `/readyz` and `/metrics` (STYLE 9): readiness means caches synced, liveness means
//! the runtime's loop is alive, metrics from the same small server when the addresses match.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};

use crate::{shutdown::Shutdown, telemetry::metrics::Metrics};

/// Which caches must be synced before the manager is ready. Every controller (per watched
/// namespace) and every shared cache registers an entry at start-up and marks it synced later.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Mutex<ReadinessState>>,
}

#[derive(Default)]
struct ReadinessState {
    entries: BTreeMap<String, bool>,
    /// A leader-election standby runs no controllers; it reports ready so that a rolling update
    /// (which waits for the new pod to be ready before stopping the old leader) cannot deadlock.
    standby: bool,
}

/// The handle of one registered entry.
#[derive(Clone)]
pub struct ReadyHandle {
    readiness: Readiness,
    name: String,
}

impl ReadyHandle {
    pub fn set_synced(&self) {
        self.set(true);
    }

    /// Ready again (`true`), or not ready while a required watch is down (`false`). Readiness
    /// only: liveness is the heartbeat, so a pod whose API server is away is not restarted.
    pub fn set(&self, ready: bool) {
        self.readiness
            .state()
            .entries
            .insert(self.name.clone(), ready);
    }
}

impl Readiness {
    fn state(&self) -> std::sync::MutexGuard<'_, ReadinessState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `name` as not yet synced.
    pub fn register(&self, name: impl Into<String>) -> ReadyHandle {
        let name = name.into();
        self.state().entries.insert(name.clone(), false);
        ReadyHandle {
            readiness: self.clone(),
            name,
        }
    }

    pub fn set_standby(&self, standby: bool) {
        self.state().standby = standby;
    }

    /// `Ok(summary)` when ready, `Err(names not synced)` otherwise. Nothing registered is not ready:
    /// a manager that runs no controller serves no purpose.
    pub fn check(&self) -> Result<String, Vec<String>> {
        let state = self.state();
        if state.standby {
            return Ok("standby (not the leader)".into());
        }
        if state.entries.is_empty() {
            return Err(vec!["no controller started yet".into()]);
        }
        let pending: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, synced)| !**synced)
            .map(|(n, _)| n.clone())
            .collect();
        if pending.is_empty() {
            Ok(format!("{} caches synced", state.entries.len()))
        } else {
            Err(pending)
        }
    }
}

/// Liveness: a task on the runtime beats every few seconds; a wedged runtime stops beating.
#[derive(Clone)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Heartbeat {
    pub const INTERVAL: Duration = Duration::from_secs(5);
    pub const STALE_AFTER: Duration = Duration::from_secs(30);

    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    pub fn spawn(&self, shutdown: Shutdown) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.beat(),
                    _ = shutdown.wait() => return,
                }
            }
        });
    }
}

#[derive(Clone)]
pub struct HealthState {
    pub readiness: Readiness,
    pub heartbeat: Heartbeat,
    pub metrics: Metrics,
}

/// Which endpoints one server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub probes: bool,
    pub metrics: bool,
}

pub fn router(state: HealthState, endpoints: Endpoints) -> Router {
    let mut router = Router::new();
    if endpoints.probes {
        router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
    }
    if endpoints.metrics {
        router = router.route("/metrics", get(metrics));
    }
    router.with_state(state)
}

async fn healthz(State(state): State<HealthState>) -> impl IntoResponse {
    let age = state.heartbeat.age();
    if age <= Heartbeat::STALE_AFTER {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("runtime heartbeat is {}s old\n", age.as_secs()),
        )
    }
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(summary) => (StatusCode::OK, format!("ok: {summary}\n")),
        Err(pending) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not synced: {}\n", pending.join(", ")),
        ),
    }
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The servers to start: one per distinct address, with the endpoints bound there.
pub fn plan(
    probes: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
) -> Vec<(SocketAddr, Endpoints)> {
    match (probes, metrics) {
        (Some(p), Some(m)) if p == m => vec![(
            p,
            Endpoints {
                probes: true,
                metrics: true,
            },
        )],
        (p, m) => {
            let mut servers = Vec::new();
            if let Some(p) = p {
                servers.push((
                    p,
                    Endpoints {
                        probes: true,
                        metrics: false,
                    },
                ));
            }
            if let Some(m) = m {
                servers.push((
                    m,
                    Endpoints {
                        probes: false,
                        metrics: true,
                    },
                ));
            }
            servers
        }
    }
}

/// Binds now (so a taken port fails start-up) and serves until `shutdown`.
pub async fn bind_and_serve(
    addr: SocketAddr,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "serving health/metrics");
    Ok(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.wait())
            .await
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_entry_synced() {
        let readiness = Readiness::default();
        assert!(
            readiness.check().is_err(),
            "nothing registered is not ready"
        );
        let jobs = readiness.register("cache/jobs");
        let mj = readiness.register("managedjob");
        assert_eq!(readiness.check().unwrap_err(), ["cache/jobs", "managedjob"]);
        jobs.set_synced();
        assert_eq!(readiness.check().unwrap_err(), ["managedjob"]);
        mj.set_synced();
        assert!(readiness.check().is_ok());
        readiness.register("jobrun");
        assert!(readiness.check().is_err());
        readiness.set_standby(true);
        assert!(readiness.check().is_ok(), "a standby is ready");
    }

    #[test]
    fn heartbeat_ages() {
        let hb = Heartbeat::default();
        hb.beat();
        assert!(hb.age() < Duration::from_secs(1));
    }

    #[test]
    fn one_server_when_addresses_match() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            plan(Some(a), Some(a)),
            [(
                a,
                Endpoints {
                    probes: true,
                    metrics: true
                }
            )]
        );
        assert_eq!(plan(Some(b), Some(a)).len(), 2);
        assert_eq!(
            plan(None, Some(a)),
            [(
                a,
                Endpoints {
                    probes: false,
                    metrics: true
                }
            )]
        );
        assert!(plan(None, None).is_empty());
    }

    /// A plain HTTP/1.1 GET over a std socket (tokio's io-util feature is not enabled).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default();
            (code, body)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn routes_answer_over_http_and_stop_on_shutdown() {
        let readiness = Readiness::default();
        let heartbeat = Heartbeat::default();
        heartbeat.beat();
        let metrics = Metrics::new(None);
        metrics.active_jobs.set("ns", "wf", 4);
        let state = HealthState {
            readiness: readiness.clone(),
            heartbeat,
            metrics,
        };
        let shutdown = Shutdown::new();
        let listener_addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // Bind on an ephemeral port and read it back.
        let listener = tokio::net::TcpListener::bind(listener_addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            state,
            Endpoints {
                probes: true,
                metrics: true,
            },
        );
        let wait = shutdown.wait();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(wait)
                .await
        });

        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("no controller"), "{body}");
        readiness.register("managedjob").set_synced();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("managedjob_active_jobs{namespace=\"ns\",workflow=\"wf\"} 4"),
            "{body}"
        );
        assert_eq!(get(addr, "/nope").await.0, 404);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn probes_only_server_has_no_metrics() {
        let state = HealthState {
            readiness: Readiness::default(),
            heartbeat: Heartbeat::default(),
            metrics: Metrics::new(None),
        };
        let shutdown = Shutdown::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            state,
            Endpoints {
                probes: true,
                metrics: false,
            },
        );
        let wait = shutdown.wait();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(wait)
                .await
        });
        assert_eq!(get(addr, "/metrics").await.0, 404);
        // The heartbeat never beat since start: still fresh (origin is "now").
        assert_eq!(get(addr, "/healthz").await.0, 200);
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
