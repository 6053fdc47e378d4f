//! JobFlow (SPEC §3) on the run mechanism: its compile functions and its status type.
//! Everything else is the run mechanism (`run/`).

use jobsmith_api::{JobFlow, JobFlowStatus, JobTemplate, StepEntry};
use jobsmith_engine::{
    StepId,
    compile::{self, BuildError, InvalidSpec, Plan},
    lifecycle::Lifecycle,
};
use k8s_openapi::api::batch::v1::Job;

use crate::{
    cli::ControllerKind,
    run::{self, RunKind, StatusParts},
};

impl RunKind for JobFlow {
    type Status = JobFlowStatus;
    const CONTROLLER: ControllerKind = ControllerKind::Jobflow;

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn step_entries(&self) -> &[StepEntry] {
        self.status.as_ref().map_or(&[], |s| s.flows.as_slice())
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

    fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            active_deadline_seconds: self.spec.active_deadline_seconds,
            ttl_seconds_after_finished: self.spec.ttl_seconds_after_finished,
            jobs_cleanup: self.spec.jobs_cleanup.unwrap_or_default(),
        }
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
            .chain(&self.spec.on_exit)
            .any(|f| f.job_template.is_none() && f.job_template_ref.as_deref() == Some(name))
    }
}

/// The JobFlow controller.
pub type JobFlowController = run::RunController<JobFlow>;
