//! A run object as the plugin reads it: the spec through the `jobsmith-api` types (so the engine
//! can compile it), the status through a lenient view whose phases are plain strings.
//!
//! The status is read leniently on purpose: a newer manager may write phases and reasons this
//! plugin does not know yet (`Skipped`, `Lost`, `Queued`, ...). They are shown in lower case
//! (and in cyan) instead of failing the whole command.

use std::collections::BTreeMap;

use jobsmith_api::{
    DaemonJobSpec, JobFlow, JobFlowSpec, JobRun, JobRunSpec, ManagedJob, ManagedJobSpec,
};
use jobsmith_engine::Plan;
use kube::api::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::error::CliError;
use crate::kinds::RunKind;

/// The typed spec of a run.
#[derive(Clone, Debug)]
pub enum RunSpec {
    /// A ManagedJob's spec.
    ManagedJob(ManagedJobSpec),
    /// A JobFlow's spec.
    JobFlow(JobFlowSpec),
    /// A DaemonJob's spec.
    DaemonJob(Box<DaemonJobSpec>),
    /// A JobRun's spec.
    JobRun(JobRunSpec),
}

/// One `metav1.Condition`, leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ConditionView {
    /// `Ready`, `Stalled`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// The reason.
    pub reason: Option<String>,
    /// The message.
    pub message: Option<String>,
}

/// One step entry of a status (`jobs[]`, `flows[]`), leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct StepView {
    /// `group/job` or the flow name.
    pub key: String,
    /// The Job's name.
    pub job_name: Option<String>,
    /// The phase as written (`Succeeded`, `Skipped`, ...).
    pub phase: Option<String>,
    /// Why the step is in this phase.
    pub reason: Option<String>,
    /// The exit code that failed the step's Job, when the Job named it.
    pub exit_code: Option<i64>,
    /// When the Job started.
    pub start_time: Option<String>,
    /// When the Job finished.
    pub completion_time: Option<String>,
}

impl StepView {
    /// The phase to show: the written one, or `Queued` for a pending step whose Job waits in a
    /// Kueue LocalQueue (reason `Queued`, docs/integrations.md).
    pub fn shown_phase(&self) -> Option<&str> {
        shown_phase(self.phase.as_deref(), self.reason.as_deref())
    }
}

/// The phase to show for an entry: `Queued` when it is `Pending` (or unset) with the reason
/// `Queued`, else the written phase.
pub fn shown_phase<'a>(phase: Option<&'a str>, reason: Option<&str>) -> Option<&'a str> {
    match (phase, reason) {
        (None | Some("Pending"), Some(jobsmith_api::reasons::QUEUED)) => Some("Queued"),
        _ => phase,
    }
}

/// One DaemonJob node entry, leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeView {
    /// The node.
    pub node: String,
    /// The Job's name.
    pub job_name: Option<String>,
    /// The phase as written.
    pub phase: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The exit code that failed the node's Job, when the Job named it.
    pub exit_code: Option<i64>,
}

impl NodeView {
    /// The phase to show (see [`StepView::shown_phase`]).
    pub fn shown_phase(&self) -> Option<&str> {
        shown_phase(self.phase.as_deref(), self.reason.as_deref())
    }
}

/// One ManagedJob group entry, leniently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupView {
    /// The group.
    pub name: String,
    /// The phase as written.
    pub phase: Option<String>,
    /// Counts by phase (`total`, `pending`, ... and any newer phase).
    pub counts: BTreeMap<String, Value>,
}

/// The status of any run kind, leniently: every field optional, phases as strings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusView {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Suspended`, or newer.
    pub phase: Option<String>,
    /// `"<done>/<total>"`.
    pub progress: Option<String>,
    /// The summary message.
    pub message: Option<String>,
    /// The generation the status was computed from.
    pub observed_generation: Option<i64>,
    /// When the first Job was created.
    pub start_time: Option<String>,
    /// When the run finished.
    pub completion_time: Option<String>,
    /// Conditions.
    pub conditions: Vec<ConditionView>,
    /// ManagedJob groups.
    pub groups: Vec<GroupView>,
    /// ManagedJob jobs.
    pub jobs: Vec<StepView>,
    /// JobFlow flows.
    pub flows: Vec<StepView>,
    /// DaemonJob nodes.
    pub nodes: Vec<NodeView>,
    /// Entries left out of `jobs` (size cap).
    pub omitted_jobs: Option<u64>,
    /// Entries left out of `flows`.
    pub omitted_flows: Option<u64>,
    /// Entries left out of `nodes`.
    pub omitted_nodes: Option<u64>,
    /// DaemonJob: eligible nodes.
    pub desired: Option<u64>,
    /// DaemonJob: nodes done; JobRun: the Job's succeeded pods.
    pub succeeded: Option<u64>,
    /// DaemonJob: nodes failed; JobRun: the Job's failed pods.
    pub failed: Option<u64>,
    /// DaemonJob: nodes running.
    pub running: Option<u64>,
    /// DaemonJob: nodes lost.
    pub node_lost: Option<u64>,
    /// JobRun: the Job's name.
    pub job_name: Option<String>,
}

impl StatusView {
    /// Reads a status object; a shape this plugin cannot read at all still yields the phase,
    /// progress and message when they are strings.
    pub fn from_value(status: Option<&Value>) -> StatusView {
        let Some(status) = status else {
            return StatusView::default();
        };
        serde_json::from_value(status.clone()).unwrap_or_else(|_| {
            let text = |key: &str| status.get(key).and_then(Value::as_str).map(str::to_owned);
            StatusView {
                phase: text("phase"),
                progress: text("progress"),
                message: text("message"),
                ..StatusView::default()
            }
        })
    }

    /// The step entry of `key` (ManagedJob jobs or JobFlow flows).
    pub fn step(&self, key: &str) -> Option<&StepView> {
        self.jobs
            .iter()
            .chain(self.flows.iter())
            .find(|s| s.key == key)
    }

    /// The group entry of `name`.
    pub fn group(&self, name: &str) -> Option<&GroupView> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Whether some step entries were left out of the status (size cap).
    pub fn omitted(&self) -> u64 {
        self.omitted_jobs.unwrap_or(0)
            + self.omitted_flows.unwrap_or(0)
            + self.omitted_nodes.unwrap_or(0)
    }
}

/// A run object: kind, name, namespace, typed spec (if readable), lenient status, and the raw
/// object (for `-o json|yaml`).
#[derive(Clone, Debug)]
pub struct Run {
    /// The kind.
    pub kind: RunKind,
    /// The object's metadata.
    pub metadata: ObjectMeta,
    /// The spec, or why it could not be read.
    pub spec: Result<RunSpec, String>,
    /// The status.
    pub status: StatusView,
    /// The object as the API server returned it.
    pub raw: Value,
}

impl Run {
    /// Reads a run of `kind` from the object the API server returned.
    pub fn from_value(kind: RunKind, raw: Value) -> Run {
        let metadata: ObjectMeta = raw
            .get("metadata")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default();
        let spec_value = raw.get("spec").cloned().unwrap_or(Value::Null);
        let spec = match kind {
            RunKind::ManagedJob => serde_json::from_value(spec_value).map(RunSpec::ManagedJob),
            RunKind::JobFlow => serde_json::from_value(spec_value).map(RunSpec::JobFlow),
            RunKind::DaemonJob => serde_json::from_value(spec_value)
                .map(|s: DaemonJobSpec| RunSpec::DaemonJob(Box::new(s))),
            RunKind::JobRun => serde_json::from_value(spec_value).map(RunSpec::JobRun),
        }
        .map_err(|e| e.to_string());
        let status = StatusView::from_value(raw.get("status"));
        Run {
            kind,
            metadata,
            spec,
            status,
            raw,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The spec, or a [`CliError::Spec`].
    pub fn spec(&self) -> Result<&RunSpec, CliError> {
        self.spec.as_ref().map_err(|message| CliError::Spec {
            kind: self.kind.kind(),
            namespace: self.namespace().to_owned(),
            name: self.name().to_owned(),
            message: message.clone(),
        })
    }

    /// The engine's plan of the run: the same step graph the manager schedules. DaemonJob steps
    /// depend on the cluster's Nodes, so its plan is taken from the status instead (`None`).
    pub fn plan(&self) -> Result<Option<Plan>, CliError> {
        let invalid = |message: String| CliError::InvalidSpec {
            kind: self.kind.kind(),
            namespace: self.namespace().to_owned(),
            name: self.name().to_owned(),
            message,
        };
        let metadata = self.metadata.clone();
        let plan = match self.spec()? {
            RunSpec::ManagedJob(spec) => {
                let obj = ManagedJob {
                    metadata,
                    spec: spec.clone(),
                    status: None,
                };
                jobsmith_engine::compile::managedjob::plan(&obj)
            }
            RunSpec::JobFlow(spec) => {
                let obj = JobFlow {
                    metadata,
                    spec: spec.clone(),
                    status: None,
                };
                jobsmith_engine::compile::jobflow::plan(&obj)
            }
            RunSpec::JobRun(spec) => {
                let obj = JobRun {
                    metadata,
                    spec: spec.clone(),
                    status: None,
                };
                jobsmith_engine::compile::jobrun::plan(&obj)
            }
            RunSpec::DaemonJob(_) => return Ok(None),
        };
        plan.map(Some).map_err(|e| invalid(e.to_string()))
    }

    /// The ManagedJob object (for the engine's `job_params`), if this is one.
    pub fn managedjob(&self) -> Option<ManagedJob> {
        match &self.spec {
            Ok(RunSpec::ManagedJob(spec)) => Some(ManagedJob {
                metadata: self.metadata.clone(),
                spec: spec.clone(),
                status: None,
            }),
            _ => None,
        }
    }

    /// The DaemonJob spec, if this is one.
    pub fn daemonjob_spec(&self) -> Option<&DaemonJobSpec> {
        match &self.spec {
            Ok(RunSpec::DaemonJob(spec)) => Some(spec),
            _ => None,
        }
    }

    /// `spec.suspend`, where the kind has it.
    pub fn suspended_in_spec(&self) -> Option<bool> {
        match &self.spec {
            Ok(RunSpec::ManagedJob(s)) => Some(s.suspend),
            Ok(RunSpec::JobFlow(s)) => Some(s.suspend),
            Ok(RunSpec::DaemonJob(s)) => Some(s.suspend),
            _ => None,
        }
    }
}

/// Status text of a phase as shown to the user: lower case, `pending` when there is none yet.
pub fn phase_text(phase: Option<&str>) -> String {
    match phase {
        Some(p) if !p.is_empty() => p.to_ascii_lowercase(),
        _ => "pending".to_owned(),
    }
}
