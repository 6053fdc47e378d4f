//! What a run kind supplies to the run mechanism.

use std::{fmt::Debug, sync::Arc};

use futures::stream::BoxStream;
use jobsmith_api::{JobTemplate, RunStatus, StepEntry, StepPhase as ApiStepPhase};
use jobsmith_engine::ObservedJob;
use jobsmith_engine::{
    Decision, StepId,
    compile::{BuildError, InvalidSpec, Plan, PlannedStep},
    lifecycle::Lifecycle,
    status::rollup::Blocker,
};
use k8s_openapi::{NamespaceResourceScope, api::batch::v1::Job};
use kube::{
    Resource,
    runtime::reflector::{ObjectRef, Store},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{cache::guard::Guarded, cli::ControllerKind, context::Context};

/// The pieces a kind's status is made of.
pub struct StatusParts<'a> {
    /// Phase, conditions, progress, times, message.
    pub run: RunStatus,
    /// Bounded per-step entries, in step order.
    pub entries: Vec<StepEntry>,
    /// Steps not listed in `entries`.
    pub omitted: u32,
    /// The plan (absent for an invalid spec).
    pub plan: Option<&'a Plan>,
    /// The decision (absent for an invalid spec).
    pub decision: Option<&'a Decision>,
}

/// A run kind's status type: serialisable, with the common [`RunStatus`] part.
pub trait KindStatus: Serialize + serde::de::DeserializeOwned + Send + Sync {
    fn run(&self) -> &RunStatus;
}

macro_rules! kind_status {
    ($($status:ty),*) => {$(
        impl KindStatus for $status {
            fn run(&self) -> &RunStatus {
                &self.run
            }
        }
    )*};
}

kind_status!(
    jobsmith_api::ManagedJobStatus,
    jobsmith_api::JobFlowStatus,
    jobsmith_api::DaemonJobStatus,
    jobsmith_api::JobRunStatus
);

/// What a run kind supplies. Implemented on the API type.
pub trait RunKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's status type.
    type Status: KindStatus;

    /// Which controller this kind is (its `--controllers` name and metric label).
    const CONTROLLER: ControllerKind;
    /// Whether the plan reads the Node cache (DaemonJob): reconciling waits for it.
    const USES_NODES: bool = false;
    /// Whether a retry request (`jobsmith.dev/retry-requested-at`) re-runs failed steps in
    /// place; a kind that may not (JobRun: exactly one Job) records the request as rejected.
    const RETRIABLE: bool = true;
    /// Whether a change of step detail may wait for `--status-interval-ms` (`run/report.rs`).
    /// A kind whose status mirrors one Job (JobRun) writes every change at once: pacing saves
    /// nothing there, and a mirrored value held back could be lost when that Job is deleted
    /// during the wait.
    const PACED: bool = true;
    /// Whether the kind's status shows its Jobs' pod counters (JobRun mirrors `active`,
    /// `succeeded`, `failed`). A kind that does not is not woken by a Job event that changes
    /// only those (`cache::jobs::JobTriggerFilter`): a Job passes through several such changes
    /// on its way to one outcome, and each woke the whole run for nothing.
    const READS_JOB_COUNTERS: bool = false;

    /// The current status.
    fn status(&self) -> Option<&Self::Status>;
    /// The per-step entries of the current status.
    fn step_entries(&self) -> &[StepEntry];

    /// The common part of the current status.
    fn run_status(&self) -> Option<&RunStatus> {
        self.status().map(KindStatus::run)
    }
    /// The current status as JSON (`Value::Null` when there is none).
    fn status_value(&self) -> Value {
        self.status()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    }

    /// Compiles the spec (engine `compile::<kind>::plan`).
    fn plan(&self) -> Result<Plan, InvalidSpec>;
    /// Builds one step's Job (engine `compile::<kind>::build_job`).
    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError>;
    /// The kind's status from its parts.
    fn make_status(parts: StatusParts<'_>) -> Self::Status;
    /// Whether some step names the JobTemplate `name` (to reconcile on template changes).
    fn references_template(&self, name: &str) -> bool;

    /// The run's lifecycle controls (`spec.activeDeadlineSeconds`, `spec.ttlSecondsAfterFinished`,
    /// `spec.jobsCleanup`; docs/lifecycle.md). Default: none (JobRun: its one Job carries its
    /// template's own deadline and TTL).
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle::default()
    }

    /// A step's Job was created (metrics).
    fn on_job_created(_ctx: &Context, _obj: &Self, _step: &PlannedStep) {}
    /// A step's Job finished (metrics); `succeeded` tells how.
    fn on_job_finished(_ctx: &Context, _obj: &Self, _step: &PlannedStep, _succeeded: bool) {}
    /// End of a reconcile that saw the plan; `active` steps have a running Job.
    fn on_reconciled(_ctx: &Context, _obj: &Self, _active: u64) {}

    /// Whether the plan depends only on the object's name and spec, so it is compiled once per
    /// `metadata.generation` and reused for every Job event (the per-event cost of a large run).
    /// Kinds whose plan reads the shared caches ([`RunKind::plan_in`]) keep the default `false`.
    const PLAN_FROM_SPEC: bool = false;

    /// Compiles the spec with what the shared caches hold (DaemonJob: the nodes, its templateRef
    /// and the nodes that already have a Job). Default: [`RunKind::plan`].
    fn plan_in(&self, _ctx: &Context) -> Result<Plan, InvalidSpec> {
        self.plan()
    }

    /// The per-step record in the current status, which seeds the memory after a restart (so a
    /// finished step whose Job is gone keeps its result). Default: [`RunKind::step_entries`];
    /// kinds whose status has no `StepEntry` list (JobRun, DaemonJob) derive it.
    fn recorded_steps(&self) -> Vec<StepEntry> {
        self.step_entries().to_vec()
    }

    /// Why a step that has not finished can never finish (DaemonJob: its node is gone). Asked
    /// for steps without a successful Job and without an earlier final result, and for steps
    /// recorded `NodeLost` before (`was_lost`: a recorded loss may stay, whatever the Job does
    /// later). `Some` makes the step terminal and failed, with the blocker's reason.
    fn lost_step(&self, _ctx: &Context, _step: &PlannedStep, _was_lost: bool) -> Option<Blocker> {
        None
    }

    /// Adds kind-specific detail to the status `make_status` built (JobRun mirrors its Job,
    /// DaemonJob counts its nodes). `self` is the object as read, with its previous status.
    /// `previous`: the newest status known (our last write while the cache does not show it
    /// yet, else the object's).
    fn refine_status(
        &self,
        _status: &mut Self::Status,
        _previous: Option<&Self::Status>,
        _view: &StatusView<'_>,
    ) {
    }

    /// Held for the whole reconcile (ManagedJob: its reconcile-duration timer).
    fn reconcile_guard(&self) -> Option<Box<dyn Send>> {
        None
    }
    /// Triggers besides JobTemplate changes (DaemonJob: Node changes).
    fn extra_triggers(
        _ctx: &Arc<Context>,
        _own: &Store<Guarded<Self>>,
    ) -> Vec<BoxStream<'static, ObjectRef<Self>>> {
        Vec::new()
    }
    /// The object is gone: drop what the kind keeps besides the run memory (metric series).
    fn on_forget(_ctx: &Context, _namespace: &str, _name: &str) {}
}

/// What [`RunKind::refine_status`] may read besides the object (all empty for an invalid spec).
pub struct StatusView<'a> {
    /// The plan (absent for an invalid spec).
    pub plan: Option<&'a Plan>,
    /// Per step: its Job as cached, when it exists and is ours.
    pub jobs: &'a [Option<Arc<ObservedJob>>],
    /// Per step: its phase (`NodeLost` included), for every step (not capped like the entries).
    pub step_phases: &'a [ApiStepPhase],
}
