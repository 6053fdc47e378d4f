//! Step outputs at the edge (docs/integrations.md "Step outputs"): the pods of a succeeded
//! producer's Job are listed once (one request, label-selected by the Job's uid; never a pod
//! watch), the engine extracts and bounds the values, and the memory keeps them until the
//! status write records them in `status.outputs` (after which they are never read again, also
//! after a restart). A dependent's Job gets the recorded values when it is built.

use jobsmith_api::StepOutputs;
use jobsmith_engine::ObservedJob;
use jobsmith_engine::{
    StepId, StepOutcome,
    compile::Plan,
    compile::outputs::{self, InputProblem},
    status::rollup::Blocker,
};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::api::{Api, ListParams};

use super::observe::Observed;
use crate::{context::Context, memory::RunMemo};

/// The label the Job controller puts on every pod of a Job (Kubernetes 1.27+).
const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// Reads the outputs of every step that succeeded, declares outputs and has none recorded yet.
/// A read that fails is tried again in a later reconcile (its dependents wait meanwhile).
pub(super) async fn read_new(
    ctx: &Context,
    plan: &Plan,
    namespace: &str,
    observed: &Observed,
    memo: &mut RunMemo,
) {
    for (i, step) in plan.steps.iter().enumerate() {
        if step.outputs.is_empty()
            || memo.outputs.contains_key(&step.key)
            || observed.outcomes.get(i) != Some(&StepOutcome::Succeeded)
        {
            continue;
        }
        let read = match observed.jobs.get(i).and_then(Option::as_deref) {
            Some(job) => match list_pods(ctx, namespace, job).await {
                Ok(pods) => outputs::read_outputs(&step.key, &step.outputs, &pods),
                Err(error) => {
                    tracing::warn!(step = %step.key, %error, "reading the outputs of a succeeded step failed; tried again later");
                    continue;
                }
            },
            None => outputs::unreadable_outputs(
                &step.key,
                &step.outputs,
                "the step's Job was gone before its outputs were read",
            ),
        };
        let read = outputs::within_run_bound(read, memo.outputs.values());
        if !read.missing.is_empty() {
            tracing::info!(step = %step.key, missing = ?read.missing, "outputs missing");
        }
        memo.outputs.insert(step.key.clone(), read);
    }
}

/// The pods of one Job: one list, selected by the Job's uid.
async fn list_pods(
    ctx: &Context,
    namespace: &str,
    job: &ObservedJob,
) -> Result<Vec<Pod>, kube::Error> {
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selected = ListParams::default().labels(&format!("{CONTROLLER_UID_LABEL}={uid}"));
    Ok(pods.list(&selected).await?.items)
}

/// Sets the values of the step's inputs in its built Job, or says why it cannot be created.
pub(super) fn set_inputs(
    job: &mut Job,
    plan: &Plan,
    step: StepId,
    observed: &Observed,
    memo: &RunMemo,
) -> Result<(), Blocker> {
    let Some(planned) = plan.steps.get(step.index()) else {
        return Ok(());
    };
    if planned.inputs.is_empty() {
        return Ok(());
    }
    let succeeded = |key: &str| {
        plan.step_id(key)
            .and_then(|id| observed.outcomes.get(id.index()))
            == Some(&StepOutcome::Succeeded)
    };
    let recorded = |key: &str| memo.outputs.get(key);
    match outputs::input_values(&planned.inputs, succeeded, recorded) {
        Ok(values) => {
            outputs::set_input_values(job, &values);
            Ok(())
        }
        Err(InputProblem::Missing(message)) => Err(Blocker::OutputMissing { message }),
        Err(InputProblem::Unread { step }) => Err(Blocker::OutputUnread { step }),
    }
}

/// The Jobs whose deferred TTL may run: not those of producers whose outputs are not recorded
/// yet (a read that failed is tried again while the Job and its pods are still there).
pub(super) fn expirable(
    plan: &Plan,
    jobs: &[Option<std::sync::Arc<ObservedJob>>],
    memo: &RunMemo,
) -> Vec<Option<std::sync::Arc<ObservedJob>>> {
    jobs.iter()
        .zip(&plan.steps)
        .map(|(job, step)| {
            let unread = !step.outputs.is_empty() && !memo.outputs.contains_key(&step.key);
            if unread { None } else { job.clone() }
        })
        .collect()
}

/// The outputs to write in the status: those of the plan's steps, in plan order.
pub(super) fn recorded(plan: &Plan, memo: &RunMemo) -> Vec<StepOutputs> {
    if memo.outputs.is_empty() {
        return Vec::new();
    }
    plan.steps
        .iter()
        .filter(|s| !s.outputs.is_empty())
        .filter_map(|s| memo.outputs.get(&s.key).cloned())
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use jobsmith_api::StepOutput;
    use jobsmith_engine::{Dag, Policies, StepSpec, compile::PlannedStep};

    use super::*;

    fn plan() -> Plan {
        let specs: Vec<StepSpec> = ["producer", "plain"]
            .iter()
            .map(|k| StepSpec {
                key: (*k).into(),
                group: None,
                deps: vec![],
            })
            .collect();
        let output = StepOutput {
            name: "v".into(),
            ..StepOutput::default()
        };
        Plan {
            dag: Dag::build(&specs, &[]).unwrap(),
            steps: vec![
                PlannedStep {
                    key: "producer".into(),
                    job_name: "run-producer".into(),
                    outputs: vec![output],
                    ..PlannedStep::default()
                },
                PlannedStep {
                    key: "plain".into(),
                    job_name: "run-plain".into(),
                    ..PlannedStep::default()
                },
            ],
            policies: Policies::default(),
            key_digest: Default::default(),
        }
    }

    #[test]
    fn a_producer_job_expires_only_once_its_outputs_are_recorded() {
        let plan = plan();
        let jobs = vec![
            Some(Arc::new(ObservedJob::default())),
            Some(Arc::new(ObservedJob::default())),
        ];
        let mut memo = RunMemo::default();
        let kept = expirable(&plan, &jobs, &memo);
        assert!(
            kept[0].is_none(),
            "the producer's Job must wait for its outputs"
        );
        assert!(kept[1].is_some());
        assert!(recorded(&plan, &memo).is_empty());
        let read = StepOutputs {
            step: "producer".into(),
            values: BTreeMap::from([("v".to_owned(), "1".to_owned())]),
            missing: BTreeMap::new(),
        };
        memo.outputs.insert("producer".into(), read.clone());
        // A step no longer in the plan is not written.
        memo.outputs.insert(
            "removed".into(),
            StepOutputs {
                step: "removed".into(),
                ..StepOutputs::default()
            },
        );
        assert!(expirable(&plan, &jobs, &memo)[0].is_some());
        assert_eq!(recorded(&plan, &memo), vec![read]);
    }
}
