//! DaemonJob (SPEC §4): one step per node, keyed by the node name, Jobs `<daemonjob>-<node>`.
//!
//! The steps are the eligible nodes (see [`crate::build::eligibility`]) plus the `known` nodes that
//! already have a Job of this DaemonJob (so a vanished or newly excluded node keeps its step
//! and the run mechanism can report `NodeLost`), sorted by name. Each pod is pinned to its node
//! with required node affinity on `metadata.name` (`matchFields`, as DaemonSets do), so the
//! scheduler still checks resources. `globalParams` env/labels/annotations are merged in (the
//! Job's own values win; `nodeName` is ignored). The per-node Jobs are never created
//! suspended (`spec.suspend` is the run control), except for Kueue: with a `queueName` they
//! are created suspended for Kueue to admit ([`crate::build::kueue`]); pods without a
//! `restartPolicy` get `Never`. `spec.retryPolicy` fills the Job's `backoffLimit`/
//! `podFailurePolicy` where the JobSpec (inline or the template's) sets none; its rules with an
//! `OnFailure` pod are refused as invalid.
//!
//! Eligibility needs the pod template. With an inline `template` [`plan`] has it; with a
//! `templateRef` call [`plan_with_template`] with the resolved JobTemplate (without it only
//! readiness, schedulability, exclusions and taints, against no tolerations, are checked).

use std::collections::BTreeSet;

use jobsmith_api::labels::NODE;
use jobsmith_api::{DaemonJob, JobTemplate};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodSpec;

use super::{BuildError, InvalidSpec, Plan, PlannedStep, planned, policies};
use crate::build::eligibility::{Exclusions, NodeView, node_eligibility, pin_to_node};
use crate::build::naming::child_name;
use crate::build::params::apply_global_params;
use crate::build::retry_policy;
use crate::build::template::{self, ChildMeta};
use crate::schedule::dag::{Dag, StepId, StepSpec};

/// The kind, as written in labels and owner references.
pub const KIND: &str = "DaemonJob";

/// The Job name of a node: `<daemonjob>-<node>`.
pub fn job_name(daemonjob: &str, node: &str) -> String {
    child_name(&[daemonjob, node])
}

/// The plan for the current nodes (see the module doc for `templateRef`).
pub fn plan<'a>(
    obj: &DaemonJob,
    nodes: impl IntoIterator<Item = &'a NodeView>,
    known: &[String],
) -> Result<Plan, InvalidSpec> {
    plan_with_template(obj, None, nodes, known)
}

/// The plan for the current nodes, judging eligibility with the pod template of `template`
/// when the DaemonJob uses a `templateRef`. `nodes` are borrowed (the manager's cache holds
/// them): nothing is cloned per reconcile.
pub fn plan_with_template<'a>(
    obj: &DaemonJob,
    template: Option<&JobTemplate>,
    nodes: impl IntoIterator<Item = &'a NodeView>,
    known: &[String],
) -> Result<Plan, InvalidSpec> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let template_ref = uses_template(obj)?;
    if let Some(policy) = &obj.spec.retry_policy {
        retry_policy::validate(policy, "spec.retryPolicy")?;
    }
    let mut names: BTreeSet<String> = eligible_nodes(obj, template, nodes).into_iter().collect();
    names.extend(known.iter().filter(|n| !n.is_empty()).cloned());
    let steps: Vec<StepSpec> = names
        .iter()
        .map(|node| StepSpec {
            key: node.clone(),
            group: None,
            deps: Vec::new(),
        })
        .collect();
    let planned_steps = names
        .iter()
        .map(|node| PlannedStep {
            key: node.clone(),
            job_name: job_name(name, node),
            group: None,
            template_ref: template_ref.map(str::to_owned),
            ..PlannedStep::default()
        })
        .collect();
    let dag = Dag::build(&steps, &[])?;
    Ok(Plan {
        dag,
        steps: planned_steps,
        policies: policies(
            crate::schedule::FailurePolicy::ContinueIndependent,
            obj.spec.suspend,
            obj.spec.max_parallel,
        ),
        key_digest: Default::default(),
    })
}

/// The names of the nodes that should get a Job now, in input order.
pub fn eligible_nodes<'a>(
    obj: &DaemonJob,
    template: Option<&JobTemplate>,
    nodes: impl IntoIterator<Item = &'a NodeView>,
) -> Vec<String> {
    let exclusions = Exclusions::new(
        obj.spec.exclude_node_list.as_deref(),
        obj.spec.exclude_nodes.as_deref().unwrap_or_default(),
    );
    let empty = PodSpec::default();
    let pod = if obj.spec.has_inline_template() {
        obj.spec.job.template.spec.as_ref()
    } else {
        template.and_then(|t| t.spec.effective_job_spec().template.spec.as_ref())
    }
    .unwrap_or(&empty);
    nodes
        .into_iter()
        .filter(|node| node_eligibility(node, pod, &exclusions).is_ok())
        .filter_map(|node| node.metadata.name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The `templateRef` used, `None` with an inline template; an error with neither.
fn uses_template(obj: &DaemonJob) -> Result<Option<&str>, InvalidSpec> {
    if obj.spec.has_inline_template() {
        return Ok(None);
    }
    match obj.spec.template_ref.as_deref() {
        Some(name) => Ok(Some(name)),
        None => Err(InvalidSpec::NoJobSpec(
            "a DaemonJob needs a template or a templateRef".to_owned(),
        )),
    }
}

/// The complete Job of one node. `template` is the JobTemplate named by `spec.templateRef`
/// (ignored with an inline template).
pub fn build_job(
    obj: &DaemonJob,
    plan: &Plan,
    step: StepId,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let planned = planned(plan, step)?;
    let node = planned.key.as_str();
    let template_ref = uses_template(obj).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let mut spec = template::resolve(template_ref, template, Some((&obj.spec.job, "spec")))?;
    spec.suspend = None;
    template::default_restart_policy(&mut spec.template, "Never");
    retry_policy::apply_to_job_spec(&mut spec, None, obj.spec.retry_policy.as_ref());
    retry_policy::check_restart_policy(&spec, &format!("node \"{node}\""))?;
    let global = obj.spec.global_params.as_ref();
    if let Some(global) = global {
        apply_global_params(&mut spec.template, global, false);
    }
    pin_to_node(template::pod_spec_mut(&mut spec), node);
    let meta = ChildMeta {
        kind: KIND,
        parent: &obj.metadata,
        job_name: &planned.job_name,
        step_labels: vec![(NODE, node.to_owned())],
        labels: global.and_then(|g| g.labels.as_ref()),
        annotations: global.and_then(|g| g.annotations.as_ref()),
        template: template_ref.and(template),
    };
    let mut job = template::assemble_job(&meta, spec)?;
    crate::build::kueue::queue_job(&mut job, &obj.spec.queue);
    Ok(job)
}
