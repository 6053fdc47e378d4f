//! JobRun (SPEC §6) on the run mechanism: one step, keyed by the JobRun's name, whose Job
//! `<template>-<jobrun>` is built from the JobTemplate with the run's overrides (engine
//! `compile::jobrun`). Everything else is the run mechanism (`run/`); this module adds what is JobRun's own:
//!
//! - **Exactly one Job, decided from the status.** The status records `jobName` once the Job was
//!   created, and the outcome (`phase`). The record seeds the run mechanism's memory after a
//!   restart ([`RunKind::recorded_steps`]), so a Job that finished and was then deleted (TTL,
//!   `kubectl delete`) is never created again; and the recorded name stays the run's Job name
//!   even if `templateRef` is edited later (no second Job under another name).
//! - **The status mirrors the Job** ([`RunKind::refine_status`]): `jobName`, `startTime` and
//!   `completionTime` (the Job's own when it reports them), `active`, `succeeded`, `failed` and
//!   the Job's conditions (`jobConditions`). When the Job is gone the last mirrored values stay.
//! - A missing template leaves the run `Pending` with `Ready=False` reason `TemplateNotFound`
//!   (one Warning Event); it starts when the template appears (template trigger). An override
//!   the template does not allow fails the run: phase `Failed`, reason `OverrideNotAllowed`, one
//!   Warning Event, no Job.

use jobsmith_api::{
    JobRun, JobRunStatus, JobTemplate, Phase, StepEntry, StepPhase, condition_types, reasons,
};
use jobsmith_engine::ObservedJob;
use jobsmith_engine::{
    StepId,
    compile::{self, BuildError, InvalidSpec, Plan},
};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::{
    cli::ControllerKind,
    run::{self, RunKind, StatusParts, StatusView},
};

/// Reasons on `Ready` that say the step was blocked (not a result of its Job).
const BLOCKER_REASONS: [&str; 5] = [
    reasons::TEMPLATE_NOT_FOUND,
    reasons::TEMPLATE_INVALID,
    reasons::NAME_CONFLICT,
    reasons::OVERRIDE_NOT_ALLOWED,
    reasons::INVALID_SPEC,
];

impl RunKind for JobRun {
    type Status = JobRunStatus;
    const CONTROLLER: ControllerKind = ControllerKind::Jobrun;
    // SPEC §6: exactly one Job, created once; a new run is a resubmit.
    const RETRIABLE: bool = false;
    const PACED: bool = false;
    // status.active/succeeded/failed mirror the Job's.
    const READS_JOB_COUNTERS: bool = true;

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn step_entries(&self) -> &[StepEntry] {
        &[]
    }

    fn plan(&self) -> Result<Plan, InvalidSpec> {
        let mut plan = compile::jobrun::plan(self)?;
        // The Job recorded in the status stays the run's only Job.
        if let Some(recorded) = self.status.as_ref().and_then(|s| s.job_name.as_ref()) {
            for step in &mut plan.steps {
                step.job_name.clone_from(recorded);
            }
        }
        Ok(plan)
    }

    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError> {
        compile::jobrun::build_job(self, plan, step, template)
    }

    fn make_status(parts: StatusParts<'_>) -> JobRunStatus {
        // The Job name is recorded once the Job exists (or was created), not while blocked.
        let job_name = parts
            .entries
            .first()
            .filter(|e| e.reason.is_none() && e.phase != StepPhase::Pending)
            .and_then(|e| e.job_name.clone());
        JobRunStatus {
            run: parts.run,
            job_name,
            ..JobRunStatus::default()
        }
    }

    fn references_template(&self, name: &str) -> bool {
        self.spec.template_ref == name
    }

    fn recorded_steps(&self) -> Vec<StepEntry> {
        recorded_step(self).into_iter().collect()
    }

    fn refine_status(
        &self,
        status: &mut JobRunStatus,
        previous: Option<&JobRunStatus>,
        view: &StatusView<'_>,
    ) {
        mirror_job(
            previous,
            status,
            view.jobs.first().and_then(|j| j.as_deref()),
        );
    }
}

/// The run's step as its status records it (seeds the memory after a restart).
fn recorded_step(run: &JobRun) -> Option<StepEntry> {
    let status = run.status.as_ref()?;
    let phase = match status.run.phase? {
        Phase::Running => StepPhase::Running,
        Phase::Succeeded => StepPhase::Succeeded,
        Phase::Failed => StepPhase::Failed,
        Phase::Pending | Phase::Suspended => StepPhase::Pending,
    };
    let reason = status
        .run
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::READY)
        .map(|c| c.reason.as_str())
        .filter(|r| BLOCKER_REASONS.contains(r))
        .map(str::to_owned);
    Some(StepEntry {
        key: run.name_any(),
        job_name: status.job_name.clone(),
        phase,
        reason,
        ..StepEntry::default()
    })
}

/// Copies the Job's status into the run's (see the module doc); keeps the previous mirror when
/// the Job is gone.
fn mirror_job(
    previous: Option<&JobRunStatus>,
    status: &mut JobRunStatus,
    job: Option<&ObservedJob>,
) {
    match job {
        Some(job) => {
            status.job_name = Some(job.name_any());
            let Some(js) = job.status.as_ref() else {
                return;
            };
            status.active = js.active;
            status.succeeded = js.succeeded;
            status.failed = js.failed;
            status.job_conditions = js.conditions.clone().unwrap_or_default();
            if let Some(start) = &js.start_time {
                status.run.start_time = Some(start.clone());
            }
            if let Some(done) = &js.completion_time
                && status.run.phase.is_some_and(Phase::is_terminal)
            {
                status.run.completion_time = Some(done.clone());
            }
        }
        None => {
            let Some(previous) = previous else {
                return;
            };
            if status.job_name.is_none() {
                status.job_name.clone_from(&previous.job_name);
            }
            if status.job_name.is_some() && status.job_name == previous.job_name {
                status.active = previous.active.map(|_| 0);
                status.succeeded = previous.succeeded;
                status.failed = previous.failed;
                status.job_conditions.clone_from(&previous.job_conditions);
            }
        }
    }
}

/// The JobRun controller.
pub type JobRunController = run::RunController<JobRun>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use jobsmith_api::RunStatus;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

    fn at(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn jobrun(status: Option<JobRunStatus>) -> JobRun {
        let mut run: JobRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "JobRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
            "spec": {"templateRef": "tpl"}
        }))
        .unwrap();
        run.status = status;
        run
    }

    fn status(phase: Phase, ready_reason: &str, job_name: Option<&str>) -> JobRunStatus {
        JobRunStatus {
            run: RunStatus {
                phase: Some(phase),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: ready_reason.into(),
                    message: String::new(),
                    last_transition_time: at(1),
                    observed_generation: None,
                }],
                ..RunStatus::default()
            },
            job_name: job_name.map(str::to_owned),
            ..JobRunStatus::default()
        }
    }

    #[test]
    fn the_job_name_is_the_template_and_the_run_and_a_recorded_name_stays() {
        let plan = jobrun(None).plan().unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.steps[0].job_name, "tpl-r");
        assert_eq!(plan.steps[0].key, "r");
        let mut edited = jobrun(Some(status(Phase::Running, "Progressing", Some("old-r"))));
        edited.spec.template_ref = "other".into();
        assert_eq!(edited.plan().unwrap().steps[0].job_name, "old-r");
    }

    #[test]
    fn the_outcome_recorded_in_the_status_seeds_the_memory() {
        assert!(recorded_step(&jobrun(None)).is_none());
        let done = recorded_step(&jobrun(Some(status(
            Phase::Succeeded,
            "Succeeded",
            Some("tpl-r"),
        ))))
        .unwrap();
        assert_eq!(
            (done.phase, done.reason.as_deref()),
            (StepPhase::Succeeded, None)
        );
        let failed = recorded_step(&jobrun(Some(status(
            Phase::Failed,
            "Failed",
            Some("tpl-r"),
        ))))
        .unwrap();
        assert_eq!(
            (failed.phase, failed.reason.as_deref()),
            (StepPhase::Failed, None)
        );
        // A blocked run is re-checked, not taken as a result.
        let blocked = recorded_step(&jobrun(Some(status(
            Phase::Failed,
            "OverrideNotAllowed",
            None,
        ))))
        .unwrap();
        assert_eq!(blocked.reason.as_deref(), Some("OverrideNotAllowed"));
    }

    #[test]
    fn the_job_is_mirrored_and_the_mirror_stays_when_the_job_is_gone() {
        let job = ObservedJob {
            metadata: ObjectMeta {
                name: Some("tpl-r".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(JobStatus {
                active: Some(0),
                succeeded: Some(1),
                failed: Some(2),
                start_time: Some(at(5)),
                completion_time: Some(at(9)),
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
        };
        let mut now = JobRunStatus {
            run: RunStatus {
                phase: Some(Phase::Succeeded),
                start_time: Some(at(4)),
                completion_time: Some(at(8)),
                ..RunStatus::default()
            },
            ..JobRunStatus::default()
        };
        mirror_job(None, &mut now, Some(&job));
        assert_eq!(now.job_name.as_deref(), Some("tpl-r"));
        assert_eq!(
            (now.active, now.succeeded, now.failed),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(now.run.start_time, Some(at(5)));
        assert_eq!(now.run.completion_time, Some(at(9)));
        assert_eq!(now.job_conditions.len(), 1);

        let mut later = JobRunStatus {
            run: now.run.clone(),
            ..JobRunStatus::default()
        };
        mirror_job(Some(&now), &mut later, None);
        assert_eq!(later.job_name.as_deref(), Some("tpl-r"));
        assert_eq!((later.succeeded, later.failed), (Some(1), Some(2)));
        assert_eq!(later.job_conditions, now.job_conditions);
    }
}
