//! What the run-kind end-to-end tests share: a namespace with its own manager, typed waits on
//! the run status, Events of one object, Jobs of one owner, and a `/metrics` scrape.

#![allow(dead_code)] // each test binary uses a different subset

pub mod pair;
pub mod scenarios;
pub mod step_watch;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use jobsmith_api::{ManagedJob, RunStatus};
use jobsmith_e2e::{
    ManagerProcess, TestNamespace, apply_yaml, client, free_local_port, install_crds, list_events,
    list_jobs,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a whole run may take in a test (pods of the fake plane run ~1 s each).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One test's world: a namespace and a manager restricted to it.
pub struct World {
    pub client: Client,
    pub ns: TestNamespace,
    pub manager: ManagerProcess,
    pub metrics_port: u16,
    pub health_port: u16,
    /// Extra manager flags, kept across restarts.
    flags: Vec<String>,
}

/// The flag that adds per-step Normal Events (`JobCreated`, `JobSucceeded`) for the tests that
/// check them; the default (`warnings`) publishes none.
pub const ALL_STEP_EVENTS: &str = "--step-events=all";

impl World {
    /// A fresh namespace, the CRDs installed, and a manager watching only that namespace.
    pub async fn new(prefix: &str) -> Result<Self> {
        Self::with_flags(prefix, &[]).await
    }

    /// [`World::new`] with extra manager flags (kept when the manager is restarted).
    pub async fn with_flags(prefix: &str, flags: &[&str]) -> Result<Self> {
        let client = client().await?;
        install_crds(&client).await?;
        let ns = TestNamespace::new(&client, prefix).await?;
        let (manager, metrics_port, health_port) = start_manager(ns.name(), prefix, flags).await?;
        Ok(Self {
            client,
            ns,
            manager,
            metrics_port,
            health_port,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        })
    }

    fn flags(&self) -> Vec<&str> {
        self.flags.iter().map(String::as_str).collect()
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// Stops the manager and starts a new one on the same namespace (a restart).
    pub async fn restart_manager(&mut self) -> Result<()> {
        self.manager.stop()?;
        let (manager, metrics_port, health_port) =
            start_manager(self.ns.name(), "restarted", &self.flags()).await?;
        self.manager = manager;
        self.metrics_port = metrics_port;
        self.health_port = health_port;
        Ok(())
    }

    /// Starts a new manager on the namespace after the last one died (`kill_9`).
    pub async fn start_again(&mut self) -> Result<()> {
        let (manager, metrics_port, health_port) =
            start_manager(self.ns.name(), "started-again", &self.flags()).await?;
        self.manager = manager;
        self.metrics_port = metrics_port;
        self.health_port = health_port;
        Ok(())
    }

    /// Server-side applies YAML into the namespace.
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        apply_yaml(&self.client, Some(self.name()), yaml).await?;
        Ok(())
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        self.ns.api::<K>()
    }

    /// The Jobs of the namespace controlled by the object with `uid`, by name.
    pub async fn owned_jobs(&self, uid: &str) -> Result<BTreeMap<String, Job>> {
        Ok(list_jobs(&self.client, self.name())
            .await?
            .into_iter()
            .filter(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
            .map(|j| (j.name_any(), j))
            .collect())
    }

    /// Events about the object `name`, as `(reason, type, message)`, oldest first.
    pub async fn events_of(&self, name: &str) -> Result<Vec<(String, String, String)>> {
        let events: Vec<Event> = list_events(&self.client, self.name()).await?;
        Ok(events
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.type_.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Waits until the object has an Event with `reason` (Events are published in the background).
    pub async fn wait_event(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<Vec<(String, String, String)>> {
        jobsmith_e2e::eventually(
            &format!("an Event {reason} about {name}"),
            Duration::from_secs(30),
            || async {
                let events = self.events_of(name).await?;
                Ok(events.iter().any(|e| e.0 == reason).then_some(events))
            },
        )
        .await
    }

    /// Waits for an Event with `reason` about `name` and returns the first such one as
    /// `(reason, type, message)`.
    pub async fn wait_first_event(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<(String, String, String)> {
        self.wait_event(name, reason)
            .await?
            .into_iter()
            .find(|e| e.0 == reason)
            .ok_or_else(|| anyhow!("no {reason} Event about {name}"))
    }

    /// The `/metrics` text of the manager.
    pub async fn metrics(&self) -> Result<String> {
        scrape(self.metrics_port).await
    }
}

async fn start_manager(
    namespace: &str,
    name: &str,
    flags: &[&str],
) -> Result<(ManagerProcess, u16, u16)> {
    let mut started = start_manager_with(namespace, name, flags)?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;
    Ok((started.manager, started.metrics_port, started.health_port))
}

/// A manager process with its probe and metrics ports.
pub struct StartedManager {
    pub manager: ManagerProcess,
    pub metrics_port: u16,
    pub health_port: u16,
}

/// Starts a manager restricted to `namespace` (its Lease there too) with `extra` flags, without
/// waiting for anything.
pub fn start_manager_with(namespace: &str, name: &str, extra: &[&str]) -> Result<StartedManager> {
    let mut args = vec![
        "--namespace",
        namespace,
        "--leader-election-namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    start_manager_process(name, &args, &[])
}

/// Starts a manager with `args`, metrics and probes on free 127.0.0.1 ports, `--dev-mode`, debug
/// logs and `env` (e.g. another `KUBECONFIG`), without waiting for anything.
pub fn start_manager_process(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<StartedManager> {
    let metrics_port = free_local_port()?;
    let health_port = free_local_port()?;
    let metrics = format!("127.0.0.1:{metrics_port}");
    let health = format!("127.0.0.1:{health_port}");
    let mut all_args = args.to_vec();
    all_args.extend_from_slice(&[
        "--metrics-bind-address",
        &metrics,
        "--health-probe-bind-address",
        &health,
        "--dev-mode",
    ]);
    let mut all_env = vec![("LOG_LEVEL", "debug")];
    all_env.extend_from_slice(env);
    let manager = ManagerProcess::start(name, &all_args, &all_env)?;
    Ok(StartedManager {
        manager,
        metrics_port,
        health_port,
    })
}

/// A ManagedJob's run status (for [`wait_run`]).
pub fn mj_status(m: &ManagedJob) -> Option<&RunStatus> {
    m.status.as_ref().map(|s| &s.run)
}

/// A ManagedJob `name` of two sequential jobs `g/a`, `g/b` (fake image, no retry).
pub fn two_job_workflow(name: &str) -> String {
    format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {name}}}
spec:
  retries: 0
  groups:
  - name: g
    jobs:
    - {{name: a, image: example.invalid/fake:1}}
    - {{name: b, image: example.invalid/fake:1}}
"#
    )
}

/// The sum of every sample of the metric family `name` (all label sets); 0 when absent.
pub fn family_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// GET `/metrics` over plain HTTP/1.0 (a small blocking read on a blocking-pool thread).
pub async fn scrape(port: u16) -> Result<String> {
    let body = tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to the metrics port {port}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        Ok(body)
    })
    .await??;
    let (head, text) = body
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP response from /metrics"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("/metrics answered {head}");
    }
    Ok(text.to_owned())
}

/// The value of one sample line of the exposition (`name{labels}`), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until the run object's status satisfies `check`, returning it.
pub async fn wait_run<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&RunStatus) -> bool,
    run: impl Fn(&K) -> Option<&RunStatus>,
) -> Result<K>
where
    K: Clone + Debug + DeserializeOwned + Serialize + Resource + Send + 'static,
{
    let last = std::sync::Mutex::new(String::new());
    let found = jobsmith_e2e::eventually(what, RUN_TIMEOUT, || {
        let api = api.clone();
        let name = name.to_owned();
        let last = &last;
        let check = &check;
        let run = &run;
        async move {
            let obj = api.get(&name).await?;
            let ok = run(&obj).is_some_and(check);
            let shown = serde_json::to_string_pretty(&serde_json::to_value(&obj)?.get("status"))?;
            *last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = shown;
            Ok(ok.then_some(obj))
        }
    })
    .await;
    found.map_err(|e| {
        let last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        anyhow!("{e:#}; last status: {last}")
    })
}

/// The status of condition `type_` (`"True"`, ...).
pub fn condition<'a>(
    run: &'a RunStatus,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    run.conditions.iter().find(|c| c.type_ == type_)
}

/// `condition(type_).status == status`.
pub fn has_condition(run: &RunStatus, type_: &str, status: &str) -> bool {
    condition(run, type_).is_some_and(|c| c.status == status)
}

/// The env of the first container of a Job's pod template, as `(name, value)`.
pub fn job_env(job: &Job) -> Vec<(String, String)> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.env.as_ref())
        .map(|env| {
            env.iter()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a Job reports a final condition.
pub fn job_done(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.status == "True"
                    && matches!(
                        c.type_.as_str(),
                        "Complete" | "Failed" | "SuccessCriteriaMet" | "FailureTarget"
                    )
            })
        })
}

/// When a Job was created.
pub fn created_at(job: &Job) -> Result<k8s_openapi::jiff::Timestamp> {
    job.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .ok_or_else(|| anyhow!("Job {} has no creationTimestamp", job.name_any()))
}

/// When a Job finished (its `completionTime`, or the time of its final condition).
pub fn finished_at(job: &Job) -> Result<k8s_openapi::jiff::Timestamp> {
    let status = job.status.as_ref().ok_or_else(|| anyhow!("no status"))?;
    if let Some(t) = &status.completion_time {
        return Ok(t.0);
    }
    status
        .conditions
        .iter()
        .flatten()
        .filter(|c| {
            c.status == "True"
                && matches!(
                    c.type_.as_str(),
                    "Failed" | "FailureTarget" | "SuccessCriteriaMet" | "Complete"
                )
        })
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .min()
        .ok_or_else(|| anyhow!("Job {} has not finished", job.name_any()))
}

/// A JobFlow `name`: a chain of `steps` flows (`s0` -> `s1` -> ...) whose pods run `ms`
/// milliseconds each.
pub fn chain(name: &str, steps: usize, ms: u32) -> String {
    let mut yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n  flows:\n"
    );
    for i in 0..steps {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("\n    dependencies: [s{}]", i - 1)
        };
        yaml.push_str(&format!(
            "  - name: s{i}{deps}\n    jobTemplate:\n      template:\n        metadata: {{annotations: {{jobsmith.dev/e2e-duration: \"{ms}\"}}}}\n        spec: {{containers: [{{name: main, image: {}}}]}}\n",
            jobsmith_e2e::fake_pod::IMAGE
        ));
    }
    yaml
}
