//! The I/O edge: the kubeconfig (as kubectl reads it), GET/LIST of runs by their explicit
//! `jobsmith.dev` resources, the child Jobs and pods of a run, and the server-side apply of
//! `spec.suspend`.

use std::collections::BTreeMap;

use futures::future::join_all;
use jobsmith_api::labels;
use jobsmith_engine::{ObservedJob, StepOutcome, job_outcome};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use crate::args::GlobalArgs;
use crate::error::{CliError, api_message, is_not_found};
use crate::kinds::{ObjectRef, RunKind, pick_kind};
use crate::model::Run;
use crate::render::tree::ExtraPhases;

/// The field manager of `suspend`/`resume`: the plugin owns `spec.suspend` and nothing else.
pub const FIELD_MANAGER: &str = "kubectl-jobsmith";

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Session {
    /// The client.
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// `-A`.
    pub all_namespaces: bool,
}

/// Reads the kubeconfig like kubectl (`--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`;
/// `--context`) and connects.
pub async fn connect(global: &GlobalArgs) -> Result<Session, CliError> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        cluster: None,
        user: None,
    };
    let config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| CliError::Kubeconfig(format!("{path}: {e}")))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| CliError::Kubeconfig(e.to_string()))?;
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(CliError::Client)?;
    Ok(Session {
        client,
        namespace,
        all_namespaces: global.all_namespaces,
    })
}

impl Session {
    /// The API of a run kind in a namespace (`None`: all namespaces).
    pub fn runs(&self, kind: RunKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// One run of a known kind; `Ok(None)` when it does not exist.
    pub async fn get(&self, kind: RunKind, name: &str) -> Result<Option<Run>, CliError> {
        match self.runs(kind, Some(&self.namespace)).get(name).await {
            Ok(obj) => Ok(Some(run_of(kind, &obj)?)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.get_error(kind, name, api_message(&e))),
        }
    }

    fn get_error(&self, kind: RunKind, name: &str, message: String) -> CliError {
        CliError::Get {
            kind: kind.kind(),
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            message,
        }
    }

    /// The run named by `target`: of its kind when given, else looked up among the run kinds
    /// (one match is the answer; several are an error listing `KIND/NAME`).
    pub async fn resolve(&self, target: &ObjectRef) -> Result<Run, CliError> {
        if self.all_namespaces {
            return Err(CliError::Unsupported(
                "a run cannot be named across all namespaces: drop -A (use -n NS)".to_owned(),
            ));
        }
        if let Some(kind) = target.kind {
            return self.get(kind, &target.name).await?.ok_or_else(|| {
                self.get_error(
                    kind,
                    &target.name,
                    format!(
                        "{}.{} \"{}\" not found",
                        kind.api_resource().plural,
                        jobsmith_api::API_GROUP,
                        target.name
                    ),
                )
            });
        }
        let lookups = RunKind::ALL.map(|kind| self.get(kind, &target.name));
        let mut found = Vec::new();
        for result in join_all(lookups).await {
            if let Some(run) = result? {
                found.push(run);
            }
        }
        let kinds: Vec<RunKind> = found.iter().map(|r| r.kind).collect();
        let kind = pick_kind(&self.namespace, &target.name, &kinds)?;
        found
            .into_iter()
            .find(|r| r.kind == kind)
            .ok_or_else(|| CliError::NotFoundAnyKind {
                namespace: self.namespace.clone(),
                name: target.name.clone(),
            })
    }

    /// The runs of a kind in the namespace (or all namespaces with `-A`), sorted by namespace
    /// and name.
    pub async fn list(&self, kind: RunKind) -> Result<Vec<Run>, CliError> {
        let namespace = (!self.all_namespaces).then_some(self.namespace.as_str());
        let list = self
            .runs(kind, namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| CliError::List {
                what: match namespace {
                    Some(ns) => format!("{} in namespace {ns}", kind.kind_plural()),
                    None => format!("{} in all namespaces", kind.kind_plural()),
                },
                message: api_message(&e),
            })?;
        let mut runs: Vec<Run> = list
            .items
            .iter()
            .map(|obj| run_of(kind, obj))
            .collect::<Result<_, _>>()?;
        runs.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        Ok(runs)
    }

    /// The Jobs of a run (by the owner labels every child Job carries), by name.
    pub async fn child_jobs(&self, run: &Run) -> Result<BTreeMap<String, ObservedJob>, CliError> {
        let api: Api<ObservedJob> = Api::namespaced(self.client.clone(), run.namespace());
        let selector = format!(
            "{}={},{}={}",
            labels::OWNER_KIND,
            run.kind.kind(),
            labels::OWNER_NAME,
            jobsmith_engine::build::naming::label_value(run.name())
        );
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| CliError::List {
                what: format!("the Jobs of {} {}", run.kind, run.name()),
                message: api_message(&e),
            })?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|job| job.metadata.name.clone().map(|n| (n, job)))
            .collect())
    }

    /// Phases of the steps the status does not list (beyond its size cap), read from their
    /// Jobs with the engine's `job_outcome`; empty when the status lists every step.
    pub async fn extra_phases(
        &self,
        run: &Run,
        plan: Option<&jobsmith_engine::Plan>,
    ) -> Result<ExtraPhases, CliError> {
        let mut extra = ExtraPhases::new();
        let Some(plan) = plan else {
            return Ok(extra);
        };
        if run.status.omitted() == 0 {
            return Ok(extra);
        }
        let jobs = self.child_jobs(run).await?;
        for step in &plan.steps {
            if run.status.step(&step.key).is_some() {
                continue;
            }
            let phase = match jobs.get(&step.job_name).map(job_outcome) {
                Some(StepOutcome::Succeeded) => "Succeeded",
                Some(StepOutcome::Failed) => "Failed",
                Some(StepOutcome::Running) => "Running",
                Some(StepOutcome::Queued) => "Queued",
                Some(StepOutcome::NotCreated | StepOutcome::Suspended) | None => "Pending",
            };
            extra.insert(step.key.clone(), phase.to_owned());
        }
        Ok(extra)
    }

    /// The pods of a Job (label `batch.kubernetes.io/job-name`), oldest first.
    pub async fn job_pods(&self, namespace: &str, job_name: &str) -> Result<Vec<Pod>, CliError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = format!("batch.kubernetes.io/job-name={job_name}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| CliError::List {
                what: format!("the pods of Job {namespace}/{job_name}"),
                message: api_message(&e),
            })?;
        let mut pods = list.items;
        pods.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        Ok(pods)
    }

    /// Sets `spec.suspend` with a server-side apply of [`FIELD_MANAGER`]: only that field is
    /// sent, so a GitOps tool's fields stay its own.
    pub async fn set_suspend(
        &self,
        run: &Run,
        suspend: bool,
        force: bool,
    ) -> Result<Run, CliError> {
        let action = if suspend { "suspend" } else { "resume" };
        let patch = suspend_patch(run.kind, run.name(), suspend);
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if force {
            params = params.force();
        }
        let obj = self
            .runs(run.kind, Some(run.namespace()))
            .patch(run.name(), &params, &Patch::Apply(&patch))
            .await
            .map_err(|e| CliError::Write {
                action,
                kind: run.kind.kind(),
                namespace: run.namespace().to_owned(),
                name: run.name().to_owned(),
                message: api_message(&e),
            })?;
        run_of(run.kind, &obj)
    }
}

impl Session {
    /// Sends a JSON merge patch of the run's metadata (the retry request annotations).
    pub async fn annotate(&self, run: &Run, patch: &Value) -> Result<Run, CliError> {
        let obj = self
            .runs(run.kind, Some(run.namespace()))
            .patch(run.name(), &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| CliError::Write {
                action: "retry",
                kind: run.kind.kind(),
                namespace: run.namespace().to_owned(),
                name: run.name().to_owned(),
                message: api_message(&e),
            })?;
        run_of(run.kind, &obj)
    }

    /// Creates a new run of `run`'s kind in its namespace (a resubmit).
    pub async fn create(&self, run: &Run, object: &Value) -> Result<Run, CliError> {
        let object: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| CliError::Render(e.to_string()))?;
        let obj = self
            .runs(run.kind, Some(run.namespace()))
            .create(&kube::api::PostParams::default(), &object)
            .await
            .map_err(|e| CliError::Write {
                action: "resubmit",
                kind: run.kind.kind(),
                namespace: run.namespace().to_owned(),
                name: run.name().to_owned(),
                message: api_message(&e),
            })?;
        run_of(run.kind, &obj)
    }
}

/// The apply configuration of `suspend`/`resume`: identity plus `spec.suspend`, nothing else.
pub fn suspend_patch(kind: RunKind, name: &str, suspend: bool) -> Value {
    json!({
        "apiVersion": jobsmith_api::API_GROUP_VERSION,
        "kind": kind.kind(),
        "metadata": { "name": name },
        "spec": { "suspend": suspend },
    })
}

fn run_of(kind: RunKind, obj: &DynamicObject) -> Result<Run, CliError> {
    let raw = serde_json::to_value(obj).map_err(|e| CliError::Render(e.to_string()))?;
    Ok(Run::from_value(kind, raw))
}
