//! ManagedJob (SPEC §2) on the run mechanism: its compile functions, its status type and the
//! seed's metrics (`managedjob_*`). Everything else is the run mechanism (`run/`).

use jobsmith_api::{JobTemplate, ManagedJob, ManagedJobStatus, StepEntry};
use jobsmith_engine::{
    StepId,
    compile::{self, BuildError, InvalidSpec, Plan, PlannedStep},
    lifecycle::Lifecycle,
    status::rollup,
};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::{
    cli::ControllerKind,
    context::Context,
    run::{self, RunKind, StatusParts},
    telemetry::metrics::managedjob as mj_metrics,
};

impl RunKind for ManagedJob {
    type Status = ManagedJobStatus;
    const CONTROLLER: ControllerKind = ControllerKind::Managedjob;

    fn reconcile_guard(&self) -> Option<Box<dyn Send>> {
        Some(Box::new(mj_metrics::ReconcileTimer::start(
            &self.namespace().unwrap_or_default(),
            &self.name_any(),
        )))
    }

    fn on_forget(ctx: &Context, namespace: &str, name: &str) {
        ctx.metrics.active_jobs.remove(namespace, name);
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn step_entries(&self) -> &[StepEntry] {
        self.status.as_ref().map_or(&[], |s| s.jobs.as_slice())
    }

    const PLAN_FROM_SPEC: bool = true;

    fn plan(&self) -> Result<Plan, InvalidSpec> {
        compile::managedjob::plan(self)
    }

    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError> {
        compile::managedjob::build_job(self, plan, step, template)
    }

    fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            active_deadline_seconds: self.spec.active_deadline_seconds,
            ttl_seconds_after_finished: self.spec.ttl_seconds_after_finished,
            jobs_cleanup: self.spec.jobs_cleanup.unwrap_or_default(),
        }
    }

    fn make_status(parts: StatusParts<'_>) -> ManagedJobStatus {
        let groups = match (parts.plan, parts.decision) {
            (Some(plan), Some(decision)) => rollup::group_statuses(&plan.dag, decision),
            _ => Vec::new(),
        };
        ManagedJobStatus {
            run: parts.run,
            groups,
            jobs: parts.entries,
            omitted_jobs: (parts.omitted > 0).then_some(parts.omitted),
        }
    }

    fn references_template(&self, name: &str) -> bool {
        self.spec
            .groups
            .iter()
            .flat_map(|g| &g.jobs)
            .chain(&self.spec.on_exit)
            .any(|j| j.template_ref.as_deref() == Some(name))
    }

    fn on_job_created(_ctx: &Context, obj: &Self, step: &PlannedStep) {
        mj_metrics::job_created(
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            step.group.as_deref().unwrap_or_default(),
        );
    }

    fn on_job_finished(_ctx: &Context, obj: &Self, step: &PlannedStep, succeeded: bool) {
        let (namespace, workflow) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let group = step.group.as_deref().unwrap_or_default();
        if succeeded {
            mj_metrics::job_succeeded(&namespace, &workflow, group);
        } else {
            mj_metrics::job_failed(&namespace, &workflow, group);
        }
    }

    fn on_reconciled(ctx: &Context, obj: &Self, active: u64) {
        ctx.metrics.active_jobs.set(
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            active,
        );
    }
}

/// The ManagedJob controller.
pub type ManagedJobController = run::RunController<ManagedJob>;
