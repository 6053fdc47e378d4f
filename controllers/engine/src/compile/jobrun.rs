//! JobRun (SPEC §6): exactly one step, keyed by the JobRun's name, whose Job
//! `<template>-<jobrun>` is the JobTemplate's JobSpec with the run's overrides.
//!
//! `command`/`args` replace those of the container named by `container` (default: the first),
//! an empty list means no override; `env` is merged by name (the run wins). An override the
//! template's `overridable` does not list fails with `OverrideNotAllowed`. Pods whose template
//! sets no `restartPolicy` get `Never` (a Job's pods must say `Never` or `OnFailure`).

use jobsmith_api::labels::TEMPLATE;
use jobsmith_api::{JobRun, JobTemplate};
use k8s_openapi::api::batch::v1::Job;

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned};
use crate::build::naming::child_name;
use crate::build::params::apply_overrides;
use crate::build::template::{self, ChildMeta};
use crate::schedule::Policies;
use crate::schedule::dag::{Dag, StepId, StepSpec};

/// The kind, as written in labels and owner references.
pub const KIND: &str = "JobRun";

/// The Job name of a run: `<template>-<jobrun>`.
pub fn job_name(template: &str, jobrun: &str) -> String {
    child_name(&[template, jobrun])
}

/// The single-step plan of a JobRun.
pub fn plan(obj: &JobRun) -> Result<Plan, InvalidSpec> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let dag = Dag::build(
        &[StepSpec {
            key: name.clone(),
            group: None,
            deps: Vec::new(),
        }],
        &[],
    )?;
    Ok(Plan {
        dag,
        steps: vec![PlannedStep {
            job_name: job_name(&obj.spec.template_ref, &name),
            key: name,
            group: None,
            template_ref: Some(obj.spec.template_ref.clone()),
            ..PlannedStep::default()
        }],
        policies: Policies::default(),
        key_digest: Default::default(),
    })
}

/// The run's Job. `template` is the JobTemplate named by `spec.templateRef`.
pub fn build_job(
    obj: &JobRun,
    plan: &Plan,
    step: StepId,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let planned = planned(plan, step)?;
    let template_ref = obj.spec.template_ref.as_str();
    let mut spec = template::resolve(Some(template_ref), template, None)?;
    let allowed = template
        .map(|t| t.spec.overridable.as_slice())
        .unwrap_or_default();
    apply_overrides(&mut spec.template, &obj.spec, allowed)?;
    template::default_restart_policy(&mut spec.template, "Never");
    let meta = ChildMeta {
        kind: KIND,
        parent: &obj.metadata,
        job_name: &planned.job_name,
        step_labels: vec![(TEMPLATE, template_ref.to_owned())],
        labels: None,
        annotations: None,
        template,
    };
    let mut job = template::assemble_job(&meta, spec)?;
    crate::build::kueue::queue_job(&mut job, &obj.spec.queue);
    Ok(job)
}
