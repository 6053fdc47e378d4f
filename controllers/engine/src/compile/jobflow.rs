//! JobFlow (SPEC §3): flows -> steps keyed by the flow name, Jobs `<jobflow>-<flow>`.
//!
//! Each flow's Job: its `jobTemplate` or the referenced JobTemplate; pods get
//! `restartPolicy: Never`; `backoffLimit` and `podFailurePolicy` come from the flow's
//! `retryPolicy`, else the template's own, else the run's `retryPolicy` (engine
//! `retry_policy::apply_to_job_spec`), and `backoffLimit` is 0 when none sets it; `spec.shareVolumes`
//! are added to the pod of every flow that declares `shareVolumeMounts`, whose mounts go to
//! every container of that flow; `globalParams` env/labels/annotations are merged in (the
//! flow's own values win) and `nodeName` pins every pod.

use std::collections::HashSet;

use jobsmith_api::labels::FLOW;
use jobsmith_api::{Flow, JobFlow, JobTemplate};
use k8s_openapi::api::batch::v1::Job;

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned, policies};
use crate::dag::{Dag, DepSpec, Required, StepId, StepSpec};
use crate::naming::child_name;
use crate::outputs::{self, OutputInput};
use crate::params::{add_shared_volumes, apply_flow_env, apply_global_params};
use crate::retry_policy;
use crate::template::{self, ChildMeta};

/// The kind, as written in labels and owner references.
pub const KIND: &str = "JobFlow";

/// The Job name of a flow: `<jobflow>-<flow>`.
pub fn job_name(jobflow: &str, flow: &str) -> String {
    child_name(&[jobflow, flow])
}

/// Validates the spec and compiles its step graph.
pub fn plan(obj: &JobFlow) -> Result<Plan, InvalidSpec> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let spec = &obj.spec;
    let mut names = HashSet::new();
    for flow in &spec.flows {
        if !names.insert(flow.name.as_str()) {
            return Err(InvalidSpec::DuplicateFlow(flow.name.clone()));
        }
    }
    let run_policy = spec.retry_policy.as_ref();
    if let Some(policy) = run_policy {
        retry_policy::validate(policy, "spec.retryPolicy")?;
    }
    let mut steps = Vec::with_capacity(spec.flows.len());
    let mut planned_steps = Vec::with_capacity(spec.flows.len());
    for flow in &spec.flows {
        if let Some(policy) = &flow.retry_policy {
            retry_policy::validate(policy, &format!("flow \"{}\" retryPolicy", flow.name))?;
            let merged = retry_policy::merge([Some(policy), run_policy]);
            retry_policy::validate(&merged, &format!("flow \"{}\"", flow.name))?;
        }
        if flow.job_template.is_some() == flow.job_template_ref.is_some() {
            return Err(InvalidSpec::NoJobSpec(format!(
                "flow \"{}\": set exactly one of jobTemplate and jobTemplateRef",
                flow.name
            )));
        }
        let mut deps: Vec<DepSpec> = Vec::with_capacity(flow.dependencies.len());
        for dep in &flow.dependencies {
            if *dep == flow.name {
                return Err(InvalidSpec::SelfDependency(flow.name.clone()));
            }
            if !names.contains(dep.as_str()) {
                return Err(InvalidSpec::UnknownDependency {
                    owner: format!("flow \"{}\"", flow.name),
                    name: dep.clone(),
                });
            }
            if !deps.iter().any(|d| d.target == *dep) {
                deps.push(DepSpec {
                    target: dep.clone(),
                    required: Required::Succeeded,
                });
            }
        }
        steps.push(StepSpec {
            key: flow.name.clone(),
            group: None,
            deps,
        });
        planned_steps.push(PlannedStep {
            key: flow.name.clone(),
            job_name: job_name(name, &flow.name),
            group: None,
            template_ref: flow
                .job_template
                .is_none()
                .then(|| flow.job_template_ref.clone())
                .flatten(),
            outputs: flow.outputs.clone(),
            inputs: flow_inputs(flow, &names)?,
        });
    }
    let dag = Dag::build(&steps, &[])?;
    outputs::check_plan(&dag, &planned_steps)?;
    Ok(Plan {
        dag,
        steps: planned_steps,
        policies: policies(spec.failure_policy.into(), spec.suspend, spec.max_parallel),
    })
}

/// The flow's env variables that take another flow's output.
fn flow_inputs(flow: &Flow, names: &HashSet<&str>) -> Result<Vec<OutputInput>, InvalidSpec> {
    let mut inputs = Vec::new();
    for var in &flow.env {
        let Some(source) = var.step_output() else {
            continue;
        };
        if !names.contains(source.step.as_str()) {
            return Err(InvalidSpec::Outputs(format!(
                "step \"{}\": env {}: unknown step \"{}\"",
                flow.name, var.name, source.step
            )));
        }
        inputs.push(OutputInput {
            env: var.name.clone(),
            step: source.step.clone(),
            output: source.name.clone(),
        });
    }
    Ok(inputs)
}

/// The flow of a step key.
pub fn find_flow<'a>(obj: &'a JobFlow, key: &str) -> Option<&'a Flow> {
    obj.spec.flows.iter().find(|f| f.name == key)
}

/// The complete Job of one flow. `template` is the JobTemplate named by the flow's
/// `jobTemplateRef` (ignored when the flow has an inline `jobTemplate`).
pub fn build_job(
    obj: &JobFlow,
    plan: &Plan,
    step: StepId,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let planned = planned(plan, step)?;
    let flow = find_flow(obj, &planned.key).ok_or_else(|| {
        BuildError::Invalid(format!("flow \"{}\" is not in the spec", planned.key))
    })?;
    let template_ref = flow
        .job_template
        .is_none()
        .then_some(flow.job_template_ref.as_deref())
        .flatten();
    let written_at = format!("flows[{}].jobTemplate", flow.name);
    let mut spec = template::resolve(
        template_ref,
        template,
        flow.job_template.as_ref().map(|s| (s, written_at.as_str())),
    )?;

    template::force_restart_policy(&mut spec.template, "Never");
    retry_policy::apply_to_job_spec(
        &mut spec,
        flow.retry_policy.as_ref(),
        obj.spec.retry_policy.as_ref(),
    );
    spec.backoff_limit = Some(spec.backoff_limit.unwrap_or(0));
    apply_flow_env(&mut spec.template, &flow.env);
    if let Some(mounts) = flow.share_volume_mounts.as_ref().filter(|m| !m.is_empty()) {
        let volumes = obj.spec.share_volumes.as_deref().unwrap_or_default();
        add_shared_volumes(&mut spec.template, volumes, mounts);
    }
    let global = obj.spec.global_params.as_ref();
    if let Some(global) = global {
        apply_global_params(&mut spec.template, global, true);
    }

    let meta = ChildMeta {
        kind: KIND,
        parent: &obj.metadata,
        job_name: &planned.job_name,
        step_labels: vec![(FLOW, flow.name.clone())],
        labels: global.and_then(|g| g.labels.as_ref()),
        annotations: global.and_then(|g| g.annotations.as_ref()),
        template: template_ref.and(template),
    };
    let mut job = template::assemble_job(&meta, spec)?;
    crate::kueue::queue_job(&mut job, &obj.spec.queue.overridden_by(Some(&flow.queue)));
    Ok(job)
}
