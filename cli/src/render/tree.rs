//! `visualize` / `tree`: the seed plugin's tree.
//!
//! ```text
//! parallel-demo [succeeded]
//! ├── preparation [succeeded]
//! │   └── prepare [succeeded]
//! ├── processing [succeeded]
//! │   ├── depends on group: preparation
//! │   ├── process-1 [succeeded]
//! ...
//! ```
//!
//! Root `NAME [status]`; for a ManagedJob each group `GROUP [status]` holds first its dependency
//! lines (`depends on group: G`: the declared ones in spec order, then the automatic ones of
//! list-order sequencing in group order), then its jobs `JOB [status]`, each with a
//! `depends on: <full Job name>` line per dependency. A JobFlow's flows, a DaemonJob's nodes and
//! a JobRun's Job take the place of the groups. Dependencies come from the engine's step graph
//! (the one the manager schedules), so the tree shows what really gates a step: a sequential
//! job shows the nearest earlier job whose success implies all before it. A dependency that
//! requires another outcome than success says so: `depends on: x (failed)`.
//!
//! Exit steps (`spec.onExit`) come last, as their own group `onExit` (a ManagedJob's shows the
//! group's status; a JobFlow has no group status, so its `onExit` line has none), with the
//! line `runs after every other step` and then their steps as above.

use std::collections::BTreeMap;

use jobsmith_engine::{Dep, Plan, Required, Target, compile::exit};

use jobsmith_api::{ManagedJobGroup, ManagedJobSpec};

use crate::error::CliError;
use crate::model::{Run, RunSpec, phase_text};
use crate::render::color;

const MIDDLE: &str = "├── ";
const LAST: &str = "└── ";
const CONTINUE: &str = "│   ";
const EMPTY: &str = "    ";

/// One line of the tree and what hangs under it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeNode {
    /// The text (a name, or a `depends on` line).
    pub text: String,
    /// The lower-case status shown as `[status]`, if any.
    pub status: Option<String>,
    /// Children, in order.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// A line without status.
    pub fn line(text: impl Into<String>) -> TreeNode {
        TreeNode {
            text: text.into(),
            ..TreeNode::default()
        }
    }

    /// A line with a status.
    pub fn with_status(text: impl Into<String>, status: impl Into<String>) -> TreeNode {
        TreeNode {
            text: text.into(),
            status: Some(status.into()),
            children: Vec::new(),
        }
    }
}

/// Renders the tree; the bracketed statuses are coloured when `colour` is on.
pub fn render(root: &TreeNode, colour: bool) -> String {
    let mut out = String::new();
    push_text(&mut out, root, colour);
    out.push('\n');
    let mut prefix = String::new();
    push_children(&mut out, root, &mut prefix, colour);
    out
}

fn push_children(out: &mut String, node: &TreeNode, prefix: &mut String, colour: bool) {
    let count = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        let last = i + 1 == count;
        out.push_str(prefix);
        out.push_str(if last { LAST } else { MIDDLE });
        push_text(out, child, colour);
        out.push('\n');
        let len = prefix.len();
        prefix.push_str(if last { EMPTY } else { CONTINUE });
        push_children(out, child, prefix, colour);
        prefix.truncate(len);
    }
}

fn push_text(out: &mut String, node: &TreeNode, colour: bool) {
    out.push_str(&node.text);
    if let Some(status) = &node.status {
        out.push(' ');
        out.push_str(&color::paint(&format!("[{status}]"), status, colour));
    }
}

/// Phases of steps not listed in the status (beyond its size cap), read from their Jobs by
/// the caller: step key -> phase as the API would write it (`Succeeded`).
pub type ExtraPhases = BTreeMap<String, String>;

/// Builds the tree of a run. `plan` is the engine's plan (`None` for a DaemonJob).
pub fn build(run: &Run, plan: Option<&Plan>, extra: &ExtraPhases) -> Result<TreeNode, CliError> {
    let mut root = TreeNode::with_status(run.name(), phase_text(run.status.phase.as_deref()));
    let step_phase = |key: &str| -> String {
        let written = run
            .status
            .step(key)
            .and_then(|s| s.shown_phase())
            .or_else(|| extra.get(key).map(String::as_str));
        phase_text(written)
    };
    root.children = match (run.spec()?, plan) {
        (RunSpec::ManagedJob(spec), Some(plan)) => managedjob_nodes(run, spec, plan, &step_phase),
        (RunSpec::JobFlow(spec), Some(plan)) => {
            let flow_node = |name: &str| step_node(plan, name, name, &step_phase(name));
            let mut nodes: Vec<TreeNode> = spec.flows.iter().map(|f| flow_node(&f.name)).collect();
            if !spec.on_exit.is_empty() {
                let mut node = exit_node(None);
                node.children
                    .extend(spec.on_exit.iter().map(|f| flow_node(&f.name)));
                nodes.push(node);
            }
            nodes
        }
        (RunSpec::JobRun(_), Some(plan)) => plan
            .steps
            .iter()
            .map(|step| {
                let job_name = run.status.job_name.as_deref().unwrap_or(&step.job_name);
                // A JobRun's one step has the run's phase.
                TreeNode::with_status(job_name, phase_text(run.status.phase.as_deref()))
            })
            .collect(),
        (RunSpec::DaemonJob(_), _) => daemonjob_nodes(run),
        (_, None) => Vec::new(),
    };
    Ok(root)
}

/// A ManagedJob's groups in spec order (each with its dependencies and jobs), then its exit
/// steps.
fn managedjob_nodes(
    run: &Run,
    spec: &ManagedJobSpec,
    plan: &Plan,
    step_phase: &dyn Fn(&str) -> String,
) -> Vec<TreeNode> {
    let group_phase =
        |name: &str| phase_text(run.status.group(name).and_then(|g| g.phase.as_deref()));
    let job_node = |group: &str, job: &str| {
        let key = jobsmith_engine::compile::managedjob::step_key(group, job);
        step_node(plan, &key, job, &step_phase(&key))
    };
    let mut nodes = Vec::new();
    for group in &spec.groups {
        let mut node = TreeNode::with_status(&group.name, group_phase(&group.name));
        node.children = group_dependency_lines(plan, group);
        node.children.extend(
            group
                .jobs
                .iter()
                .map(|job| job_node(&group.name, &job.name)),
        );
        nodes.push(node);
    }
    if !spec.on_exit.is_empty() {
        let mut node = exit_node(Some(group_phase(exit::GROUP)));
        node.children.extend(
            spec.on_exit
                .iter()
                .map(|job| job_node(exit::GROUP, &job.name)),
        );
        nodes.push(node);
    }
    nodes
}

/// A group's dependency lines: the declared ones first, in spec order, then the automatic
/// ones (list order, explicit dependencies of its steps).
fn group_dependency_lines(plan: &Plan, group: &ManagedJobGroup) -> Vec<TreeNode> {
    let mut lines: Vec<TreeNode> = group
        .dependencies
        .iter()
        .map(|dep| {
            TreeNode::line(format!(
                "depends on group: {}{}",
                dep.name,
                required_suffix(dep.status.into())
            ))
        })
        .collect();
    if let Some(gid) = plan.dag.group_id(&group.name) {
        let mut automatic: Vec<&Dep> = plan
            .dag
            .group_deps(gid)
            .iter()
            .filter(|d| match d.target {
                Target::Group(t) => {
                    let key = plan.dag.group_key(t);
                    !group.dependencies.iter().any(|x| x.name == key)
                }
                Target::Step(_) => true,
            })
            .collect();
        automatic.sort_by_key(|d| target_order(d.target));
        lines.extend(automatic.into_iter().map(|dep| dependency_line(plan, dep)));
    }
    lines
}

/// A DaemonJob's nodes as its status lists them, and how many it leaves out.
fn daemonjob_nodes(run: &Run) -> Vec<TreeNode> {
    let mut nodes: Vec<TreeNode> = run
        .status
        .nodes
        .iter()
        .map(|node| TreeNode::with_status(&node.node, phase_text(node.shown_phase())))
        .collect();
    if let Some(omitted) = run.status.omitted_nodes.filter(|n| *n > 0) {
        nodes.push(TreeNode::line(format!(
            "... {omitted} more nodes not listed"
        )));
    }
    nodes
}

/// The group line of the exit steps, with the line that says when they run.
fn exit_node(status: Option<String>) -> TreeNode {
    let mut node = match status {
        Some(status) => TreeNode::with_status(exit::GROUP, status),
        None => TreeNode::line(exit::GROUP),
    };
    node.children
        .push(TreeNode::line("runs after every other step"));
    node
}

/// A step line with its dependency lines.
fn step_node(plan: &Plan, key: &str, text: &str, phase: &str) -> TreeNode {
    let mut node = TreeNode::with_status(text, phase);
    if let Some(id) = plan.step_id(key) {
        let mut deps: Vec<&Dep> = plan.dag.step_deps(id).iter().collect();
        deps.sort_by_key(|d| target_order(d.target));
        for dep in deps {
            node.children.push(dependency_line(plan, dep));
        }
    }
    node
}

/// Steps in spec order, groups after steps in group order.
fn target_order(target: Target) -> (u8, u32) {
    match target {
        Target::Step(s) => (0, s.0),
        Target::Group(g) => (1, g.0),
    }
}

fn dependency_line(plan: &Plan, dep: &Dep) -> TreeNode {
    let suffix = required_suffix(dep.required);
    match dep.target {
        Target::Step(s) => {
            let name = plan.step(s).map_or("", |p| p.job_name.as_str());
            TreeNode::line(format!("depends on: {name}{suffix}"))
        }
        Target::Group(g) => TreeNode::line(format!(
            "depends on group: {}{suffix}",
            plan.dag.group_key(g)
        )),
    }
}

fn required_suffix(required: Required) -> &'static str {
    match required {
        Required::Succeeded => "",
        Required::Failed => " (failed)",
        Required::Completed => " (completed)",
    }
}
