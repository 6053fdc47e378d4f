//! JobFlow (SPEC §3): flows -> steps keyed by the flow name, Jobs `<jobflow>-<flow>`.
//!
//! Each flow's Job: its `jobTemplate` or the referenced JobTemplate; pods get
//! `restartPolicy: Never`; `backoffLimit` and `podFailurePolicy` come from the flow's
//! `retryPolicy`, else the template's own, else the run's `retryPolicy` (engine
//! `retry_policy::apply_to_job_spec`), and `backoffLimit` is 0 when none sets it; `spec.shareVolumes`
//! are added to the pod of every flow that declares `shareVolumeMounts`, whose mounts go to
//! every container of that flow; `globalParams` env/labels/annotations are merged in (the
//! flow's own values win) and `nodeName` pins every pod.
//!
//! Exit flows (`spec.onExit`) are planned after the others as exit steps (`crate::compile::exit`): their
//! names are unique among all flows, their dependencies name other exit flows only (a normal
//! flow's name is `exit steps may depend only on other exit steps`), and no normal flow can
//! depend on them (`unknown dependency`). Their Jobs are built like any flow's.

use std::collections::HashSet;

use jobsmith_api::labels::FLOW;
use jobsmith_api::{Flow, JobFlow, JobTemplate};
use k8s_openapi::api::batch::v1::Job;

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned, policies};
use crate::build::naming::child_name;
use crate::build::params::{add_shared_volumes, apply_flow_env, apply_global_params};
use crate::build::retry_policy;
use crate::build::template::{self, ChildMeta};
use crate::compile::outputs::{self, OutputInput};
use crate::schedule::dag::{Dag, DepSpec, Required, StepId, StepSpec};

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
    let mut exit_names = HashSet::new();
    for flow in &spec.on_exit {
        if names.contains(flow.name.as_str()) || !exit_names.insert(flow.name.as_str()) {
            return Err(InvalidSpec::DuplicateFlow(flow.name.clone()));
        }
    }
    for flow in spec.flows.iter().chain(&spec.on_exit) {
        if let Some(policy) = &flow.retry_policy {
            retry_policy::validate(policy, &format!("flow \"{}\" retryPolicy", flow.name))?;
            let merged = retry_policy::merge([Some(policy), run_policy]);
            retry_policy::validate(&merged, &format!("flow \"{}\"", flow.name))?;
        }
    }
    let total = spec.flows.len() + spec.on_exit.len();
    let mut steps = Vec::with_capacity(total);
    let mut planned_steps = Vec::with_capacity(total);
    for flow in &spec.flows {
        steps.push(flow_step(flow, &names, None)?);
        planned_steps.push(planned_flow(name, flow, &names, false)?);
    }
    for flow in &spec.on_exit {
        steps.push(flow_step(flow, &exit_names, Some(&names))?);
        planned_steps.push(planned_flow(name, flow, &names, true)?);
    }
    let dag = Dag::build(&steps, &[])?;
    outputs::check_plan(&dag, &planned_steps)?;
    Ok(Plan::new(
        dag,
        planned_steps,
        policies(spec.failure_policy.into(), spec.suspend, spec.max_parallel),
    ))
}

/// The step of one flow, checked: exactly one JobSpec source, dependencies on flows of
/// `siblings` (its class: normal or exit flows). `others` are the normal flows when the flow is
/// an exit flow (a dependency on one gets its own message).
fn flow_step(
    flow: &Flow,
    siblings: &HashSet<&str>,
    others: Option<&HashSet<&str>>,
) -> Result<StepSpec, InvalidSpec> {
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
        if !siblings.contains(dep.as_str()) {
            let owner = format!("flow \"{}\"", flow.name);
            let name = dep.clone();
            return Err(match others {
                Some(others) if others.contains(dep.as_str()) => {
                    InvalidSpec::ExitDependency { owner, name }
                }
                _ => InvalidSpec::UnknownDependency { owner, name },
            });
        }
        if !deps.iter().any(|d| d.target == *dep) {
            deps.push(DepSpec {
                target: dep.clone(),
                required: Required::Succeeded,
            });
        }
    }
    Ok(StepSpec {
        key: flow.name.clone(),
        group: None,
        deps,
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

/// The planned step of one flow; its env inputs may name any normal flow (`names`), and
/// [`outputs::check_plan`] then checks that the producer is upstream.
fn planned_flow(
    jobflow: &str,
    flow: &Flow,
    names: &HashSet<&str>,
    exit: bool,
) -> Result<PlannedStep, InvalidSpec> {
    Ok(PlannedStep {
        key: flow.name.clone(),
        job_name: job_name(jobflow, &flow.name),
        group: None,
        template_ref: flow
            .job_template
            .is_none()
            .then(|| flow.job_template_ref.clone())
            .flatten(),
        outputs: flow.outputs.clone(),
        inputs: flow_inputs(flow, names)?,
        exit,
    })
}

/// The flow of a step key (exit flows included).
pub fn find_flow<'a>(obj: &'a JobFlow, key: &str) -> Option<&'a Flow> {
    obj.spec
        .flows
        .iter()
        .chain(&obj.spec.on_exit)
        .find(|f| f.name == key)
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
        flow.job_template
            .as_deref()
            .map(|s| (s, written_at.as_str())),
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
    crate::build::kueue::queue_job(&mut job, &obj.spec.queue.overridden_by(Some(&flow.queue)));
    Ok(job)
}
