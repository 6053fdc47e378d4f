//! DaemonJob (SPEC §4) on the run mechanism: one step per node, keyed by the node name, Jobs
//! `<daemonjob>-<node>` pinned to their node (engine `compile::daemonjob`). Everything else is
//! the run mechanism (`run/`); this module adds what is DaemonJob's own:
//!
//! - **The plan comes from the Node cache** ([`RunKind::plan_in`]): the eligible nodes now (with
//!   the pod template of the `templateRef` when one is used) plus the *known* nodes, those that
//!   already have a Job of this DaemonJob (its owned Jobs in the shared Job cache, and the node
//!   entries of the status that had a Job). A node that becomes eligible mid-run gets its Job at
//!   the next reconcile; a node that stops being eligible keeps the Job it has.
//! - **NodeLost** ([`RunKind::lost_step`]): a known node that is gone from the Node cache while
//!   its Job has not succeeded (and had not finished before) is recorded as `NodeLost`: the
//!   step is terminal, does not count as success (so the DaemonJob ends `Failed`), one Warning
//!   Event `NodeLost`. The record stays (a node that comes back under the same name gets no
//!   second Job). Its Job is left as it is (deleted with the DaemonJob).
//! - **Counts** ([`RunKind::refine_status`]): `desired` (steps), `succeeded`, `failed`,
//!   `running`, `nodeLost`, over all nodes (the per-node entries are capped).
//! - **Triggers**: template changes (like every run kind) and Node changes. Every Node event
//!   reconciles every DaemonJob in scope, but only when the node's pruned view (what eligibility
//!   reads, see `nodes.rs`) changed or the node was deleted: heartbeats trigger nothing.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
};

use futures::stream::BoxStream;
use jobsmith_api::{
    DaemonJob, DaemonJobStatus, JobTemplate, NodeEntry, StepEntry, StepPhase, labels::NODE,
};
use jobsmith_engine::{
    StepId,
    compile::{self, BuildError, InvalidSpec, Plan, PlannedStep},
    lifecycle::Lifecycle,
    status::rollup::Blocker,
};
use k8s_openapi::api::{batch::v1::Job, core::v1::Node};
use kube::{
    Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};

use crate::{
    cache::SharedCache,
    cache::guard::Guarded,
    cache::jobs,
    cli::ControllerKind,
    context::Context,
    controller::map_shared,
    run::{self, RunKind, StatusParts, StatusView},
};

impl RunKind for DaemonJob {
    type Status = DaemonJobStatus;
    const CONTROLLER: ControllerKind = ControllerKind::Daemonjob;
    const USES_NODES: bool = true;

    fn extra_triggers(
        ctx: &Arc<Context>,
        own: &Store<Guarded<DaemonJob>>,
    ) -> Vec<BoxStream<'static, ObjectRef<DaemonJob>>> {
        ctx.nodes
            .iter()
            .map(|nodes| node_trigger(nodes, own))
            .collect()
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn step_entries(&self) -> &[StepEntry] {
        // The status holds `NodeEntry`s; see `recorded_steps`.
        &[]
    }

    /// Without the caches: the nodes known from the status only.
    fn plan(&self) -> Result<Plan, InvalidSpec> {
        compile::daemonjob::plan(self, &[], &known_from_status(self))
    }

    fn plan_in(&self, ctx: &Context) -> Result<Plan, InvalidSpec> {
        let nodes: Vec<Arc<Node>> = ctx.nodes.as_ref().map(|c| c.state()).unwrap_or_default();
        let known = known_nodes(self, ctx);
        let guard = template_ref(self).and_then(|name| {
            let namespace = self.namespace()?;
            ctx.templates.get(&ObjectRef::new(name).within(&namespace))
        });
        let template = guard.as_deref().and_then(|g| g.0.as_ref().ok());
        compile::daemonjob::plan_with_template(
            self,
            template,
            nodes.iter().map(Arc::as_ref),
            &known,
        )
    }

    fn build_job(
        &self,
        plan: &Plan,
        step: StepId,
        template: Option<&JobTemplate>,
    ) -> Result<Job, BuildError> {
        compile::daemonjob::build_job(self, plan, step, template)
    }

    /// Only `jobsCleanup`: `spec.activeDeadlineSeconds` and `spec.ttlSecondsAfterFinished` are
    /// the inline JobSpec's fields (as in the seed), i.e. each node's Job's own deadline and TTL
    /// (the TTL held back until the outcome is recorded); a DaemonJob reopens when a node
    /// joins, so a deadline or TTL of the whole run would not fit it (docs/lifecycle.md).
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            jobs_cleanup: self.spec.jobs_cleanup.unwrap_or_default(),
            ..Lifecycle::default()
        }
    }

    fn make_status(parts: StatusParts<'_>) -> DaemonJobStatus {
        DaemonJobStatus {
            run: parts.run,
            nodes: parts.entries.into_iter().map(node_entry).collect(),
            omitted_nodes: (parts.omitted > 0).then_some(parts.omitted),
            ..DaemonJobStatus::default()
        }
    }

    fn references_template(&self, name: &str) -> bool {
        template_ref(self) == Some(name)
    }

    fn recorded_steps(&self) -> Vec<StepEntry> {
        self.status
            .iter()
            .flat_map(|s| &s.nodes)
            .map(|n| StepEntry {
                key: n.node.clone(),
                job_name: n.job_name.clone(),
                phase: n.phase,
                start_time: n.start_time.clone(),
                completion_time: n.completion_time.clone(),
                reason: n.reason.clone(),
                attempt: n.attempt,
                exit_code: n.exit_code,
                on_exit: false,
            })
            .collect()
    }

    /// Lost: the node is gone, or the step was recorded lost before (a loss stays recorded even
    /// if the node comes back or the orphaned Job ends somehow).
    fn lost_step(&self, ctx: &Context, step: &PlannedStep, was_lost: bool) -> Option<Blocker> {
        let nodes = ctx.nodes.as_ref()?;
        (was_lost || nodes.get(&ObjectRef::new(&step.key)).is_none()).then(|| Blocker::NodeLost {
            node: step.key.clone(),
        })
    }

    fn refine_status(
        &self,
        status: &mut DaemonJobStatus,
        _previous: Option<&DaemonJobStatus>,
        view: &StatusView<'_>,
    ) {
        count(status, view.step_phases);
    }
}

/// The JobTemplate used: `templateRef` unless an inline template is given.
fn template_ref(dj: &DaemonJob) -> Option<&str> {
    if dj.spec.has_inline_template() {
        None
    } else {
        dj.spec.template_ref.as_deref()
    }
}

fn node_entry(e: StepEntry) -> NodeEntry {
    NodeEntry {
        node: e.key,
        job_name: e.job_name,
        phase: e.phase,
        start_time: e.start_time,
        completion_time: e.completion_time,
        reason: e.reason,
        attempt: e.attempt,
        exit_code: e.exit_code,
    }
}

/// The counts of the status, from every step's phase.
fn count(status: &mut DaemonJobStatus, phases: &[StepPhase]) {
    let n = |p: StepPhase| {
        u32::try_from(phases.iter().filter(|x| **x == p).count()).unwrap_or(u32::MAX)
    };
    status.desired = u32::try_from(phases.len()).unwrap_or(u32::MAX);
    status.succeeded = n(StepPhase::Succeeded);
    status.failed = n(StepPhase::Failed);
    status.running = n(StepPhase::Running);
    let lost = n(StepPhase::NodeLost);
    status.node_lost = (lost > 0).then_some(lost);
}

/// Nodes the status lists as having (had) a Job.
fn known_from_status(dj: &DaemonJob) -> Vec<String> {
    dj.status
        .iter()
        .flat_map(|s| &s.nodes)
        .filter(|n| n.phase != StepPhase::Pending || n.reason.as_deref() == Some("NodeLost"))
        .map(|n| n.node.clone())
        .collect()
}

/// Nodes that have (had) a Job of this DaemonJob: the status entries and the owned Jobs (whose
/// node label is the node's name unless it was shortened; a shortened one is recognised by the
/// Job name not matching and skipped: the status still lists that node).
fn known_nodes(dj: &DaemonJob, ctx: &Context) -> Vec<String> {
    let mut known: BTreeSet<String> = known_from_status(dj).into_iter().collect();
    if let (Some(namespace), Some(uid)) = (dj.namespace(), dj.meta().uid.as_deref()) {
        let name = dj.name_any();
        for job in jobs::owned_by(&ctx.jobs, &namespace, uid) {
            if let Some(node) = job.labels().get(NODE)
                && compile::daemonjob::job_name(&name, node) == job.name_any()
            {
                known.insert(node.clone());
            }
        }
    }
    known.into_iter().collect()
}

/// Reconciles every DaemonJob in scope when a node's eligibility-relevant view changes or the
/// node is deleted.
fn node_trigger(
    nodes: &SharedCache<Node>,
    own: &Store<Guarded<DaemonJob>>,
) -> BoxStream<'static, ObjectRef<DaemonJob>> {
    let own = own.clone();
    let cache = nodes.clone();
    let seen: Mutex<HashMap<String, Arc<Node>>> = Mutex::default();
    map_shared(nodes, move |node: Arc<Node>| {
        let name = node.name_any();
        let current = cache.get(&ObjectRef::new(&name));
        let changed = {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            match current {
                None => {
                    seen.remove(&name);
                    true
                }
                Some(current) => match seen.get(&name) {
                    Some(before) if before.as_ref() == current.as_ref() => false,
                    _ => {
                        seen.insert(name, current);
                        true
                    }
                },
            }
        };
        if !changed {
            return Vec::new();
        }
        own.state()
            .into_iter()
            .filter_map(|guard| guard.0.as_ref().ok().map(ObjectRef::from_obj))
            .collect()
    })
}

/// The DaemonJob controller.
pub type DaemonJobController = run::RunController<DaemonJob>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    fn daemonjob(spec: serde_json::Value) -> DaemonJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "jobsmith.dev/v1alpha1", "kind": "DaemonJob",
            "metadata": {"name": "dj", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn no_eligible_node_is_an_empty_plan_that_succeeds() {
        let dj = daemonjob(serde_json::json!({
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
        }));
        let plan = dj.plan().unwrap();
        assert!(plan.steps.is_empty());
        let decision = jobsmith_engine::evaluate(&plan.dag, &[], &plan.policies);
        assert!(decision.create.is_empty());
        assert_eq!(decision.progress.to_string(), "0/0");
    }

    #[test]
    fn counts_cover_every_node_and_node_lost_is_its_own() {
        let mut status = DaemonJobStatus::default();
        count(
            &mut status,
            &[
                StepPhase::Succeeded,
                StepPhase::Succeeded,
                StepPhase::Running,
                StepPhase::Failed,
                StepPhase::NodeLost,
                StepPhase::Pending,
            ],
        );
        assert_eq!(
            (
                status.desired,
                status.succeeded,
                status.running,
                status.failed,
                status.node_lost
            ),
            (6, 2, 1, 1, Some(1))
        );
        count(&mut status, &[StepPhase::Succeeded]);
        assert_eq!(status.node_lost, None);
    }

    #[test]
    fn the_template_ref_is_used_only_without_an_inline_template() {
        let by_ref = daemonjob(serde_json::json!({"templateRef": "tpl"}));
        assert!(by_ref.references_template("tpl"));
        assert!(!by_ref.references_template("other"));
        let inline = daemonjob(serde_json::json!({
            "templateRef": "tpl",
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
        }));
        assert!(!inline.references_template("tpl"));
    }

    #[test]
    fn nodes_with_a_job_in_the_status_are_known_and_survive_a_restart() {
        let mut dj = daemonjob(serde_json::json!({"templateRef": "tpl"}));
        dj.status = Some(DaemonJobStatus {
            nodes: vec![
                NodeEntry {
                    node: "a".into(),
                    phase: StepPhase::Succeeded,
                    ..NodeEntry::default()
                },
                NodeEntry {
                    node: "b".into(),
                    phase: StepPhase::Pending,
                    ..NodeEntry::default()
                },
                NodeEntry {
                    node: "c".into(),
                    phase: StepPhase::NodeLost,
                    reason: Some("NodeLost".into()),
                    ..NodeEntry::default()
                },
            ],
            ..DaemonJobStatus::default()
        });
        assert_eq!(known_from_status(&dj), ["a", "c"]);
        let plan = dj.plan().unwrap();
        let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(plan.steps[0].job_name, "dj-a");
        let recorded = dj.recorded_steps();
        assert_eq!(recorded.len(), 3);
        assert_eq!(recorded[2].phase, StepPhase::NodeLost);
    }
}
