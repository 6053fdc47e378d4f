//! Two managers on one Lease (SPEC §7), each impersonating a user of its own so the API server's
//! audit log tells their writes apart; on the shared plane (a namespace of its own) or on a
//! private plane (its `default` namespace).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use jobsmith_api::{JobFlow, Phase, RunStatus};
use jobsmith_e2e::{
    AuditEvent, PrivatePlane, TestNamespace, audit_events_at, audit_log_path, client,
    impersonating_kubeconfig, install_crds, install_crds_on, job_creates_in,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

use super::{StartedManager, start_manager_process, wait_run};

/// Two managers on one Lease; `a` started first and is the leader with its caches synced, `b`
/// waits as the standby.
pub struct Pair {
    pub client: kube::Client,
    namespace: String,
    /// The namespace on the shared plane (deleted when dropped); `None` on a private plane.
    _ns: Option<TestNamespace>,
    /// The users `a` and `b` act as (kubeconfig `as:`), as the audit log names them.
    pub users: [String; 2],
    pub a: StartedManager,
    pub b: StartedManager,
    audit_log: PathBuf,
}

/// One successful write of one of the pair's users, as the audit log recorded it.
#[derive(Clone, Debug)]
pub struct Write {
    pub at: Timestamp,
    /// 0: `a`, 1: `b`.
    pub by: usize,
    pub lease: bool,
    pub what: String,
}

impl Pair {
    /// A pair on the shared plane (`KUBECONFIG`), in a fresh namespace (the Lease there too).
    pub async fn start(prefix: &str) -> Result<Self> {
        let client = client().await?;
        install_crds(&client).await?;
        let ns = TestNamespace::new(&client, prefix).await?;
        let source = PathBuf::from(std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?);
        let namespace = ns.name().to_owned();
        let users = [format!("{namespace}-a"), format!("{namespace}-b")];
        Self::launch(
            client,
            &source,
            audit_log_path(),
            namespace,
            Some(ns),
            users,
            prefix,
        )
        .await
    }

    /// A pair on a private plane, in its `default` namespace, with the CRDs installed there.
    /// Drop the pair before the plane.
    pub async fn start_on(plane: &PrivatePlane, prefix: &str) -> Result<Self> {
        let client = plane.client().await?;
        install_crds_on(&client).await?;
        let users = [format!("{prefix}-a"), format!("{prefix}-b")];
        Self::launch(
            client,
            plane.kubeconfig(),
            plane.run_dir().join("logs/audit.log"),
            "default".to_owned(),
            None,
            users,
            prefix,
        )
        .await
    }

    async fn launch(
        client: kube::Client,
        source: &Path,
        audit_log: PathBuf,
        namespace: String,
        ns: Option<TestNamespace>,
        users: [String; 2],
        prefix: &str,
    ) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "jobsmith-e2e-{prefix}-{namespace}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let configs: Vec<String> = users
            .iter()
            .map(|u| {
                let path = dir.join(format!("kubeconfig-as-{u}"));
                impersonating_kubeconfig(source, u, &["system:masters"], &path)?;
                Ok(path.to_string_lossy().into_owned())
            })
            .collect::<Result<_>>()?;
        let args = [
            "--leader-elect",
            "--namespace",
            &namespace,
            "--leader-election-namespace",
            &namespace,
        ];
        let mut a = start_manager_process(
            &format!("{prefix}-a"),
            &args,
            &[("KUBECONFIG", &configs[0])],
        )?;
        a.manager
            .wait_for_log("became the leader", Duration::from_secs(60))
            .await?;
        let mut b = start_manager_process(
            &format!("{prefix}-b"),
            &args,
            &[("KUBECONFIG", &configs[1])],
        )?;
        b.manager
            .wait_for_log("waiting to become the leader", Duration::from_secs(60))
            .await?;
        a.manager
            .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
            .await?;
        Ok(Self {
            client,
            namespace,
            _ns: ns,
            users,
            a,
            b,
            audit_log,
        })
    }

    /// The namespace of the pair's Lease and runs.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn flows(&self) -> Api<JobFlow> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits until the JobFlow `run` has at least `done` finished steps.
    pub async fn wait_steps_done(&self, run: &str, done: usize) -> Result<()> {
        wait_run(
            &self.flows(),
            run,
            &format!("{done} steps done"),
            |r| done_steps(r) >= done,
            |f| f.status.as_ref().map(|s| &s.run),
        )
        .await?;
        Ok(())
    }

    /// Every successful write of `a` and `b` in the namespace, oldest first (by the time the API
    /// server received it).
    pub fn writes(&self) -> Result<(Vec<Write>, Vec<AuditEvent>)> {
        let events = audit_events_at(&self.audit_log, &self.namespace)?;
        let mut writes = Vec::new();
        for event in events.iter().filter(|e| e.succeeded()) {
            let Some(by) = audit_user(event).and_then(|u| self.users.iter().position(|x| x == u))
            else {
                continue;
            };
            let at: Timestamp = event
                .request_received_timestamp
                .as_deref()
                .context("an audit event without requestReceivedTimestamp")?
                .parse()?;
            writes.push(Write {
                at,
                by,
                lease: event.resource() == Some("leases"),
                what: format!(
                    "{} {}/{}",
                    event.verb,
                    event.resource().unwrap_or_default(),
                    event.name().unwrap_or_default()
                ),
            });
        }
        writes.sort_by_key(|w| w.at);
        Ok((writes, events))
    }

    /// Waits for the run to succeed and the old leader (`a`) to exit, then checks the audit log:
    /// `a` wrote, then `b`, never interleaved, each write inside its writer's Lease term (below),
    /// and each of `steps` Jobs created once.
    pub async fn finish_and_audit(&mut self, run: &str, steps: usize) -> Result<()> {
        wait_run(
            &self.flows(),
            run,
            "the run finished under the new leader",
            |s| s.phase == Some(Phase::Succeeded),
            |f| f.status.as_ref().map(|s| &s.run),
        )
        .await?;
        let exited = std::time::Instant::now();
        // A lost leader stops its controllers within the manager's shutdown grace (20 s), then
        // its probe servers (5 s).
        while self.a.manager.is_running() {
            ensure!(
                exited.elapsed() < Duration::from_secs(30),
                "the old leader did not exit"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (writes, events) = self.writes()?;
        let order = one_writer_at_a_time(&writes, &self.users)?;
        ensure!(
            order == [0, 1],
            "expected writes by {} and then by {}, got writers {order:?}",
            self.users[0],
            self.users[1]
        );
        let creates = job_creates_in(&events)?;
        ensure!(
            creates.len() == steps && creates.values().all(|n| *n == 1),
            "each of {steps} Jobs created once: {creates:?}"
        );
        Ok(())
    }
}

/// The finished steps of a run (`progress` is `"<done>/<total>"`).
pub fn done_steps(run: &RunStatus) -> usize {
    run.progress
        .as_deref()
        .and_then(|p| p.split('/').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Checks that the writers never overlapped, from the audit log alone, and returns who wrote in
/// turn (`[0, 1]`: `a`, then `b`):
/// - the non-Lease writes (Jobs, our kinds' status, Events), ordered by the time the API server
///   received them, come in one block per identity: once an identity wrote, the one before it
///   never writes again;
/// - each non-Lease write lies inside its writer's Lease term: the last successful Lease write of
///   the pair before it is the writer's own. A term starts with a holder's first Lease write and
///   ends with the other's first. Only the pair's own Lease writes count: a Lease edited by
///   someone else (a test) is noticed by the leader at its next renewal, and the standby still
///   waits for that record to expire. A write before any recorded Lease write of the pair belongs
///   to the first one that wrote the Lease (a plane whose audit policy does not record Lease
///   creates only shows the creator's first renewal, one retry period after the create).
pub fn one_writer_at_a_time(writes: &[Write], users: &[String; 2]) -> Result<Vec<usize>> {
    let first_holder = writes.iter().find(|w| w.lease).map(|w| w.by);
    let mut holder = first_holder;
    let mut order: Vec<usize> = Vec::new();
    let mut outside = Vec::new();
    for write in writes {
        if write.lease {
            holder = Some(write.by);
            continue;
        }
        if holder != Some(write.by) {
            outside.push(format!(
                "{} at {} by {} in the Lease term of {}",
                write.what,
                write.at,
                users[write.by],
                holder.map_or("nobody", |h| users[h].as_str())
            ));
        }
        if order.last() != Some(&write.by) {
            order.push(write.by);
        }
    }
    let shown: Vec<String> = writes
        .iter()
        .map(|w| format!("{} {} {}", w.at, users[w.by], w.what))
        .collect();
    if !outside.is_empty() {
        bail!(
            "writes outside their writer's Lease term: {outside:#?}\nall writes:\n{}",
            shown.join("\n")
        );
    }
    let mut seen = [false; 2];
    for by in &order {
        if std::mem::replace(&mut seen[*by], true) {
            bail!(
                "the writers interleaved ({order:?}): {} wrote again after its successor\nall writes:\n{}",
                users[*by],
                shown.join("\n")
            );
        }
    }
    ensure!(!order.is_empty(), "neither manager wrote anything");
    Ok(order)
}

fn audit_user(event: &AuditEvent) -> Option<&str> {
    event.impersonated_user.as_ref()?.username.as_deref()
}
