//! JobFlow (SPEC §3) on the run mechanism: its compile functions and its status type.
//! Everything else is `run.rs`.

use std::sync::Arc;

use futures::stream::BoxStream;
use jobsmith_api::{JobFlow, JobFlowStatus, JobTemplate, RunStatus, StepEntry};
use jobsmith_engine::{
    StepId,
    compile::{self, BuildError, InvalidSpec, Plan},
};
use k8s_openapi::api::batch::v1::Job;
use kube::{
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use serde_json::Value;

use crate::{
    cli::ControllerKind,
    context::Context,
    controller::Reconciler,
    run::{self, RunError, RunKind, StatusParts},
};

impl RunKind for JobFlow {
    type Status = JobFlowStatus;

    fn run_status(&self) -> Option<&RunStatus> {
        self.status.as_ref().map(|s| &s.run)
    }

    fn step_entries(&self) -> &[StepEntry] {
        self.status.as_ref().map_or(&[], |s| s.flows.as_slice())
    }

    fn status_value(&self) -> Value {
        self.status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    }

    const PLAN_FROM_SPEC: bool = true;

    fn plan(&self) -> Result<Plan, InvalidSpec> {
        compile::jobflow::plan(self)
    }

    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError> {
        compile::jobflow::build_job(self, plan, step, template)
    }

    fn make_status(parts: StatusParts<'_>) -> JobFlowStatus {
        JobFlowStatus {
            run: parts.run,
            flows: parts.entries,
            omitted_flows: (parts.omitted > 0).then_some(parts.omitted),
        }
    }

    fn references_template(&self, name: &str) -> bool {
        self.spec
            .flows
            .iter()
            .any(|f| f.job_template.is_none() && f.job_template_ref.as_deref() == Some(name))
    }
}

/// The JobFlow controller.
pub struct JobFlowController;

impl Reconciler for JobFlowController {
    type Kind = JobFlow;
    type Error = RunError;
    const CONTROLLER: ControllerKind = ControllerKind::Jobflow;
    const USES_TEMPLATES: bool = true;

    async fn reconcile(obj: Arc<JobFlow>, ctx: Arc<Context>) -> Result<Action, RunError> {
        run::reconcile(obj, ctx).await
    }

    fn triggers(
        ctx: &Arc<Context>,
        own: &Store<DeserializeGuard<JobFlow>>,
    ) -> Vec<BoxStream<'static, ObjectRef<JobFlow>>> {
        vec![run::template_trigger(ctx, own)]
    }

    fn forget(ctx: &Context, namespace: Option<&str>, name: &str) {
        ctx.runs.forget(namespace.unwrap_or_default(), name);
    }
}
