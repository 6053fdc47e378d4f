//! The step graph shared by every run kind, and its validation (SPEC §1 "Validation").
//!
//! Input is plain data: steps (each becomes one Job) that may belong to a group, and groups.
//! A dependency names a step or a group by key and carries the outcome it requires. A step
//! inherits its group's dependencies. A dependency on a group is a condition on the whole group:
//! `Succeeded` = all its steps succeeded, `Failed` = all its steps are terminal and at least one
//! failed or was aborted, `Completed` = all its steps are terminal.
//!
//! [`Dag::build`] checks the input and returns the **first** problem found, in a fixed order
//! (too many steps, duplicate names, then every step's group (unknown group), then empty groups,
//! then each step in list order: self dependency, unknown dependency; then cycles). One precise message is
//! what the status and the Warning Event can carry; fixing it reveals the next one.
//!
//! Internally a group is two graph nodes: its *gate* (waits for the group's own dependencies;
//! every member waits for the gate) and its *completion* (waits for every member; dependents of
//! the group wait for it). The validated [`Dag`] stores dense indices ([`StepId`], [`GroupId`])
//! and compressed adjacency lists in both directions, so the scheduler touches only the edges of
//! what changed.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use thiserror::Error;

/// The outcome a dependency requires of its target (SPEC §2 `dependencies[].status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Required {
    /// The target succeeded (the default).
    #[default]
    Succeeded,
    /// The target failed (a step that was aborted counts as failed: it did not succeed).
    Failed,
    /// The target finished, whatever the result.
    Completed,
}

/// `dependencies[].status` as the graph reads it.
impl From<jobsmith_api::RequiredStatus> for Required {
    fn from(status: jobsmith_api::RequiredStatus) -> Self {
        match status {
            jobsmith_api::RequiredStatus::Succeeded => Self::Succeeded,
            jobsmith_api::RequiredStatus::Failed => Self::Failed,
            jobsmith_api::RequiredStatus::Completed => Self::Completed,
        }
    }
}

/// One dependency as written by the user (after the kind's compile step resolved short names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepSpec {
    /// A step key or a group key.
    pub target: String,
    /// The outcome required of the target.
    pub required: Required,
}

/// One step: becomes exactly one Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSpec {
    /// Stable key (`group/job`, flow name, node name, ...). Unique among steps and groups.
    pub key: String,
    /// The key of the group the step belongs to, if any.
    pub group: Option<String>,
    /// The step's own dependencies (its group's are added implicitly).
    pub deps: Vec<DepSpec>,
}

/// One group of steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// Stable key. Unique among steps and groups.
    pub key: String,
    /// Dependencies every step of the group inherits.
    pub deps: Vec<DepSpec>,
}

/// Dense index of a step (its position in the input list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u32);

/// Dense index of a group (its position in the input list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

impl StepId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl GroupId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a dependency points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A step.
    Step(StepId),
    /// A group (condition on all its steps).
    Group(GroupId),
}

/// Who holds a dependency: a step, or a group's gate (inherited by all the group's steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Referrer {
    /// A step's own dependency.
    Step(StepId),
    /// A group's dependency.
    Gate(GroupId),
}

/// A resolved dependency edge, seen from the referrer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dep {
    /// What is depended on.
    pub target: Target,
    /// The outcome required.
    pub required: Required,
}

/// A resolved dependency edge, seen from the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dependent {
    /// Who depends.
    pub referrer: Referrer,
    /// The outcome required of the target.
    pub required: Required,
}

/// Names the object that holds a bad dependency in messages: `step "g/x"` or `group "g"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A step, by key.
    Step(String),
    /// A group, by key.
    Group(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Step(key) => write!(f, "step \"{key}\""),
            Self::Group(key) => write!(f, "group \"{key}\""),
        }
    }
}

/// Why a step graph is invalid. The message is meant for `status.message` and the Event.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    /// More steps or groups than the dense indices can address.
    #[error("too many steps and groups: {count} (at most {max})")]
    TooLarge {
        /// Steps plus groups in the input.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two steps share a key.
    #[error("duplicate step name \"{0}\"")]
    DuplicateStep(String),
    /// Two groups share a key.
    #[error("duplicate group name \"{0}\"")]
    DuplicateGroup(String),
    /// A step and a group share a key, so a dependency on it would be ambiguous.
    #[error("name \"{0}\" is used by a step and a group")]
    AmbiguousName(String),
    /// A group without steps.
    #[error("group \"{0}\" has no steps")]
    EmptyGroup(String),
    /// A step names a group that does not exist.
    #[error("step \"{step}\": unknown group \"{group}\"")]
    UnknownGroup {
        /// The step's key.
        step: String,
        /// The group it names.
        group: String,
    },
    /// A step or group depends on itself.
    #[error("self dependency \"{0}\"")]
    SelfDependency(String),
    /// A dependency names neither a step nor a group.
    #[error("{owner}: unknown dependency \"{target}\"")]
    UnknownDependency {
        /// Who holds the dependency.
        owner: Owner,
        /// The name that was not found.
        target: String,
    },
    /// The dependencies form a cycle; `path` starts and ends with the same name and reads
    /// "depends on" from left to right.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The names along the cycle.
        path: Vec<String>,
    },
}

impl GraphError {
    /// A short static category for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::DuplicateStep(_) | Self::DuplicateGroup(_) | Self::AmbiguousName(_) => {
                "duplicate_name"
            }
            Self::EmptyGroup(_) => "empty_group",
            Self::UnknownGroup { .. } => "unknown_group",
            Self::SelfDependency(_) => "self_dependency",
            Self::UnknownDependency { .. } => "unknown_dependency",
            Self::Cycle { .. } => "dependency_cycle",
        }
    }
}

/// Compressed adjacency: `items[start[i]..start[i + 1]]` belongs to node `i`.
#[derive(Clone, Debug, Default)]
struct Csr<T> {
    start: Vec<u32>,
    items: Vec<T>,
}

impl<T> Csr<T> {
    fn get(&self, i: usize) -> &[T] {
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Builds from `(node, item)` pairs, keeping the pairs' order within a node.
    fn from_pairs(nodes: usize, pairs: impl Iterator<Item = (usize, T)> + Clone) -> Self {
        let mut counts = vec![0u32; nodes + 1];
        for (node, _) in pairs.clone() {
            if let Some(c) = counts.get_mut(node + 1) {
                *c += 1;
            }
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        let mut slots: Vec<Option<T>> = Vec::new();
        slots.resize_with(counts.last().copied().unwrap_or(0) as usize, || None);
        for (node, item) in pairs {
            if let Some(pos) = fill.get_mut(node) {
                if let Some(slot) = slots.get_mut(*pos as usize) {
                    *slot = Some(item);
                }
                *pos += 1;
            }
        }
        Self {
            start: counts,
            items: slots.into_iter().flatten().collect(),
        }
    }
}

/// A node of the evaluation order: steps, group gates and group completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A step.
    Step(StepId),
    /// A group's gate: its own dependencies.
    Gate(GroupId),
    /// A group's completion: all its members.
    Done(GroupId),
}

/// A validated step graph with dense indices.
#[derive(Clone, Debug)]
pub struct Dag {
    step_keys: Vec<String>,
    step_group: Vec<Option<GroupId>>,
    group_keys: Vec<String>,
    members: Csr<StepId>,
    step_deps: Csr<Dep>,
    group_deps: Csr<Dep>,
    step_dependents: Csr<Dependent>,
    group_dependents: Csr<Dependent>,
    names: HashMap<String, Target>,
    order: Vec<Node>,
    topo_steps: Vec<StepId>,
    /// Per step: an exit step (`spec.onExit`, [`Dag::mark_exit_steps`]); empty when none is.
    exit: Vec<bool>,
}

/// Every step and group key -> its node; a key used twice (or by a step and a group) is an
/// error.
fn name_table(
    steps: &[StepSpec],
    groups: &[GroupSpec],
) -> Result<HashMap<String, Target>, GraphError> {
    let mut names: HashMap<String, Target> = HashMap::with_capacity(steps.len() + groups.len());
    for (i, step) in steps.iter().enumerate() {
        let id = Target::Step(StepId(i as u32));
        if names.insert(step.key.clone(), id).is_some() {
            return Err(GraphError::DuplicateStep(step.key.clone()));
        }
    }
    for (i, group) in groups.iter().enumerate() {
        match names.insert(group.key.clone(), Target::Group(GroupId(i as u32))) {
            None => {}
            Some(Target::Group(_)) => {
                return Err(GraphError::DuplicateGroup(group.key.clone()));
            }
            Some(Target::Step(_)) => return Err(GraphError::AmbiguousName(group.key.clone())),
        }
    }
    Ok(names)
}

/// Each step's group (by position), or the first step naming a group that does not exist.
fn step_groups(
    steps: &[StepSpec],
    names: &HashMap<String, Target>,
) -> Result<Vec<Option<GroupId>>, GraphError> {
    steps
        .iter()
        .map(|step| match &step.group {
            None => Ok(None),
            Some(g) => match names.get(g) {
                Some(Target::Group(id)) => Ok(Some(*id)),
                _ => Err(GraphError::UnknownGroup {
                    step: step.key.clone(),
                    group: g.clone(),
                }),
            },
        })
        .collect()
}

/// The dependencies of one step or group (`own_key`), resolved to nodes.
fn resolve_deps(
    names: &HashMap<String, Target>,
    owner: &dyn Fn() -> Owner,
    own_key: &str,
    deps: &[DepSpec],
) -> Result<Vec<Dep>, GraphError> {
    deps.iter()
        .map(|d| {
            if d.target == own_key {
                return Err(GraphError::SelfDependency(d.target.clone()));
            }
            match names.get(&d.target) {
                Some(&target) => Ok(Dep {
                    target,
                    required: d.required,
                }),
                None => Err(GraphError::UnknownDependency {
                    owner: owner(),
                    target: d.target.clone(),
                }),
            }
        })
        .collect()
}

/// Per target (`n` steps when `target_is_step`, else `n` groups): who depends on it, from the
/// steps' and the groups' dependency pairs.
fn dependents(
    n: usize,
    step_dep_pairs: &[(usize, Dep)],
    group_dep_pairs: &[(usize, Dep)],
    target_is_step: bool,
) -> Csr<Dependent> {
    let steps_side = step_dep_pairs
        .iter()
        .map(|&(i, d)| (Referrer::Step(StepId(i as u32)), d));
    let groups_side = group_dep_pairs
        .iter()
        .map(|&(i, d)| (Referrer::Gate(GroupId(i as u32)), d));
    Csr::from_pairs(
        n,
        steps_side
            .chain(groups_side)
            .filter_map(move |(referrer, d)| match (d.target, target_is_step) {
                (Target::Step(t), true) => Some((t.index(), referrer, d.required)),
                (Target::Group(g), false) => Some((g.index(), referrer, d.required)),
                _ => None,
            })
            .map(|(t, referrer, required)| (t, Dependent { referrer, required })),
    )
}

impl Dag {
    /// Validates the input and builds the graph; returns the first problem found (see the
    /// module documentation for the order).
    pub fn build(steps: &[StepSpec], groups: &[GroupSpec]) -> Result<Self, GraphError> {
        let count = steps.len() + groups.len();
        // Node indices are `u32` and there are `steps + 2 * groups` of them.
        let max = (u32::MAX / 2) as usize;
        if count > max {
            return Err(GraphError::TooLarge { count, max });
        }
        let names = name_table(steps, groups)?;
        // Group membership, checked before dependencies so an empty group is reported as such.
        let step_group = step_groups(steps, &names)?;
        let members = Csr::from_pairs(
            groups.len(),
            step_group
                .iter()
                .enumerate()
                .filter_map(|(i, g)| g.map(|g| (g.index(), StepId(i as u32)))),
        );

        let mut group_dep_pairs = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            if members.get(i).is_empty() {
                return Err(GraphError::EmptyGroup(group.key.clone()));
            }
            let owner = || Owner::Group(group.key.clone());
            for dep in resolve_deps(&names, &owner, &group.key, &group.deps)? {
                group_dep_pairs.push((i, dep));
            }
        }
        let mut step_dep_pairs = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let owner = || Owner::Step(step.key.clone());
            for dep in resolve_deps(&names, &owner, &step.key, &step.deps)? {
                step_dep_pairs.push((i, dep));
            }
        }

        let mut dag = Self {
            step_keys: steps.iter().map(|s| s.key.clone()).collect(),
            step_group,
            group_keys: groups.iter().map(|g| g.key.clone()).collect(),
            members,
            step_deps: Csr::from_pairs(steps.len(), step_dep_pairs.iter().copied()),
            group_deps: Csr::from_pairs(groups.len(), group_dep_pairs.iter().copied()),
            step_dependents: dependents(steps.len(), &step_dep_pairs, &group_dep_pairs, true),
            group_dependents: dependents(groups.len(), &step_dep_pairs, &group_dep_pairs, false),
            names,
            order: Vec::new(),
            topo_steps: Vec::new(),
            exit: Vec::new(),
        };
        dag.order_nodes()?;
        Ok(dag)
    }

    /// Topologically sorts steps, gates and completions with petgraph; reports a cycle path.
    fn order_nodes(&mut self) -> Result<(), GraphError> {
        let graph = self.petgraph();
        match toposort(&graph, None) {
            Ok(order) => {
                self.order = order.iter().map(|n| self.node_of(*n)).collect();
                self.topo_steps = self
                    .order
                    .iter()
                    .filter_map(|n| match n {
                        Node::Step(s) => Some(*s),
                        _ => None,
                    })
                    .collect();
                Ok(())
            }
            Err(cycle) => Err(GraphError::Cycle {
                path: self.cycle_path(&graph, cycle.node_id()),
            }),
        }
    }

    /// The graph with edges from each dependency target to what waits for it.
    fn petgraph(&self) -> DiGraph<(), (), u32> {
        let (n, g) = (self.step_keys.len(), self.group_keys.len());
        let mut graph = DiGraph::with_capacity(n + 2 * g, self.step_deps.items.len() + 3 * n);
        for _ in 0..n + 2 * g {
            graph.add_node(());
        }
        let ix = |node: Node| -> NodeIndex<u32> {
            NodeIndex::new(match node {
                Node::Step(s) => s.index(),
                Node::Gate(gr) => n + gr.index(),
                Node::Done(gr) => n + g + gr.index(),
            })
        };
        let target_node = |t: Target| match t {
            Target::Step(s) => Node::Step(s),
            Target::Group(gr) => Node::Done(gr),
        };
        for s in 0..n {
            let step = StepId(s as u32);
            for dep in self.step_deps.get(s) {
                graph.add_edge(ix(target_node(dep.target)), ix(Node::Step(step)), ());
            }
            if let Some(gr) = self.step_group(step) {
                graph.add_edge(ix(Node::Gate(gr)), ix(Node::Step(step)), ());
                graph.add_edge(ix(Node::Step(step)), ix(Node::Done(gr)), ());
            }
        }
        for gi in 0..g {
            let gr = GroupId(gi as u32);
            for dep in self.group_deps.get(gi) {
                graph.add_edge(ix(target_node(dep.target)), ix(Node::Gate(gr)), ());
            }
        }
        graph
    }

    fn node_of(&self, ix: NodeIndex<u32>) -> Node {
        let (n, g) = (self.step_keys.len(), self.group_keys.len());
        let i = ix.index();
        if i < n {
            Node::Step(StepId(i as u32))
        } else if i < n + g {
            Node::Gate(GroupId((i - n) as u32))
        } else {
            Node::Done(GroupId((i - n - g) as u32))
        }
    }

    /// A shortest cycle through a chosen node of the strongly connected component holding
    /// `seed`, written in "depends on" order and with a group's internal plumbing
    /// (completion -> member -> gate of the same group) shown as the group's name.
    fn cycle_path(&self, graph: &DiGraph<(), (), u32>, seed: NodeIndex<u32>) -> Vec<String> {
        let Some(scc) = tarjan_scc(graph)
            .into_iter()
            .find(|c| c.len() > 1 && c.contains(&seed))
        else {
            return vec![self.node_name(self.node_of(seed)).to_owned()];
        };
        let mut in_scc = vec![false; graph.node_count()];
        for n in &scc {
            in_scc[n.index()] = true;
        }
        // Prefer starting at a group (group-level cycles then read `a -> b -> a`), else the
        // first step in input order.
        let start = scc
            .iter()
            .copied()
            .filter(|n| matches!(self.node_of(*n), Node::Gate(_)))
            .min()
            .or_else(|| scc.iter().copied().min())
            .unwrap_or(seed);
        // Breadth-first search along "depends on" (incoming edges) back to `start`.
        let mut parent: Vec<Option<NodeIndex<u32>>> = vec![None; graph.node_count()];
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(node) = queue.pop_front() {
            let mut deps: Vec<NodeIndex<u32>> = graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
                .collect();
            deps.sort_unstable();
            for dep in deps {
                if !in_scc[dep.index()] {
                    continue;
                }
                if dep == start {
                    last = Some(node);
                    break 'search;
                }
                if parent[dep.index()].is_none() {
                    parent[dep.index()] = Some(node);
                    queue.push_back(dep);
                }
            }
        }
        let mut nodes = vec![start];
        let mut cursor = last;
        let mut back = Vec::new();
        while let Some(node) = cursor {
            if node == start {
                break;
            }
            back.push(node);
            cursor = parent[node.index()];
        }
        nodes.extend(back.into_iter().rev());
        nodes.push(start);
        let nodes: Vec<Node> = nodes.into_iter().map(|n| self.node_of(n)).collect();
        self.collapse_plumbing(&nodes)
    }

    fn collapse_plumbing(&self, nodes: &[Node]) -> Vec<String> {
        let mut names = Vec::with_capacity(nodes.len());
        let mut i = 0;
        while let Some(node) = nodes.get(i) {
            if let (Node::Done(g), Some(Node::Step(m)), Some(Node::Gate(g2))) =
                (node, nodes.get(i + 1), nodes.get(i + 2))
                && g == g2
                && self.step_group(*m) == Some(*g)
            {
                names.push(self.group_key(*g).to_owned());
                i += 3;
                continue;
            }
            names.push(self.node_name(*node).to_owned());
            i += 1;
        }
        names.dedup();
        names
    }

    fn node_name(&self, node: Node) -> &str {
        match node {
            Node::Step(s) => self.step_key(s),
            Node::Gate(g) | Node::Done(g) => self.group_key(g),
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.step_keys.len()
    }

    /// `true` when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.step_keys.is_empty()
    }

    /// Marks the exit steps (`spec.onExit`, docs/lifecycle.md "Exit steps"): the scheduler
    /// starts them only once every other step is terminal. `exit[i]` is step `i`'s flag;
    /// missing entries are `false`. Set by the kinds' compile step from
    /// `PlannedStep::exit` (the compile step), the one source of the flag.
    pub fn mark_exit_steps(&mut self, exit: &[bool]) {
        self.exit = if exit.iter().any(|e| *e) {
            (0..self.len())
                .map(|i| exit.get(i).copied().unwrap_or(false))
                .collect()
        } else {
            Vec::new()
        };
    }

    /// Whether `step` is an exit step.
    pub fn is_exit(&self, step: StepId) -> bool {
        self.exit.get(step.index()).copied().unwrap_or(false)
    }

    /// Whether the graph has exit steps.
    pub fn has_exit_steps(&self) -> bool {
        !self.exit.is_empty()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.group_keys.len()
    }

    /// All step ids in input order.
    pub fn steps(&self) -> impl ExactSizeIterator<Item = StepId> + use<> {
        (0..self.step_keys.len() as u32).map(StepId)
    }

    /// All group ids in input order.
    pub fn groups(&self) -> impl ExactSizeIterator<Item = GroupId> + use<> {
        (0..self.group_keys.len() as u32).map(GroupId)
    }

    /// The key of a step (empty for an id not from this graph).
    pub fn step_key(&self, step: StepId) -> &str {
        self.step_keys.get(step.index()).map_or("", String::as_str)
    }

    /// The key of a group (empty for an id not from this graph).
    pub fn group_key(&self, group: GroupId) -> &str {
        self.group_keys
            .get(group.index())
            .map_or("", String::as_str)
    }

    /// The step or group with this key.
    pub fn lookup(&self, key: &str) -> Option<Target> {
        self.names.get(key).copied()
    }

    /// The step with this key.
    pub fn step_id(&self, key: &str) -> Option<StepId> {
        match self.lookup(key) {
            Some(Target::Step(s)) => Some(s),
            _ => None,
        }
    }

    /// The group with this key.
    pub fn group_id(&self, key: &str) -> Option<GroupId> {
        match self.lookup(key) {
            Some(Target::Group(g)) => Some(g),
            _ => None,
        }
    }

    /// The group a step belongs to.
    pub fn step_group(&self, step: StepId) -> Option<GroupId> {
        self.step_group.get(step.index()).copied().flatten()
    }

    /// The steps of a group, in input order.
    pub fn group_members(&self, group: GroupId) -> &[StepId] {
        self.members.get(group.index())
    }

    /// A step's own dependencies (not including its group's).
    pub fn step_deps(&self, step: StepId) -> &[Dep] {
        self.step_deps.get(step.index())
    }

    /// A group's dependencies (inherited by each of its steps).
    pub fn group_deps(&self, group: GroupId) -> &[Dep] {
        self.group_deps.get(group.index())
    }

    /// Who depends directly on a step.
    pub fn step_dependents(&self, step: StepId) -> &[Dependent] {
        self.step_dependents.get(step.index())
    }

    /// Who depends directly on a group.
    pub fn group_dependents(&self, group: GroupId) -> &[Dependent] {
        self.group_dependents.get(group.index())
    }

    /// All dependencies that must hold before a step may start: its own, then its group's.
    pub fn effective_deps(&self, step: StepId) -> impl Iterator<Item = &Dep> {
        let inherited = self
            .step_group(step)
            .map(|g| self.group_deps(g))
            .unwrap_or(&[]);
        self.step_deps(step).iter().chain(inherited)
    }

    /// Steps in a topological order (every dependency, direct or inherited, comes first).
    pub fn topological_order(&self) -> &[StepId] {
        &self.topo_steps
    }

    /// Steps, gates and completions in a topological order (used by full evaluation).
    pub fn node_order(&self) -> &[Node] {
        &self.order
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn dep(target: &str, required: Required) -> DepSpec {
        DepSpec {
            target: target.to_owned(),
            required,
        }
    }

    pub(crate) fn step(key: &str, group: Option<&str>, deps: &[&str]) -> StepSpec {
        StepSpec {
            key: key.to_owned(),
            group: group.map(str::to_owned),
            deps: deps.iter().map(|d| dep(d, Required::Succeeded)).collect(),
        }
    }

    pub(crate) fn group(key: &str, deps: &[&str]) -> GroupSpec {
        GroupSpec {
            key: key.to_owned(),
            deps: deps.iter().map(|d| dep(d, Required::Succeeded)).collect(),
        }
    }

    fn err(steps: &[StepSpec], groups: &[GroupSpec]) -> String {
        match Dag::build(steps, groups) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn two_step_cycle_names_the_path() {
        let steps = [step("a", None, &["b"]), step("b", None, &["a"])];
        assert_eq!(err(&steps, &[]), "dependency cycle: a -> b -> a");
    }

    #[test]
    fn longer_cycle_is_the_shortest_through_the_start() {
        let steps = [
            step("a", None, &["c"]),
            step("b", None, &["a"]),
            step("c", None, &["b"]),
            step("d", None, &["a"]),
        ];
        assert_eq!(err(&steps, &[]), "dependency cycle: a -> c -> b -> a");
    }

    #[test]
    fn group_cycle_reads_at_group_level() {
        let steps = [step("g/x", Some("g"), &[]), step("h/y", Some("h"), &[])];
        let groups = [group("g", &["h"]), group("h", &["g"])];
        assert_eq!(err(&steps, &groups), "dependency cycle: g -> h -> g");
    }

    #[test]
    fn step_on_its_own_group_is_a_cycle() {
        let steps = [step("g/x", Some("g"), &["g"])];
        assert_eq!(
            err(&steps, &[group("g", &[])]),
            "dependency cycle: g/x -> g -> g/x"
        );
    }

    #[test]
    fn cycle_through_a_group_and_a_step() {
        // g waits for step t; t (in h) waits for group g.
        let steps = [step("g/x", Some("g"), &[]), step("h/t", Some("h"), &["g"])];
        let groups = [group("g", &["h/t"]), group("h", &[])];
        assert_eq!(err(&steps, &groups), "dependency cycle: g -> h/t -> g");
    }

    #[test]
    fn unknown_dependency_names_the_referrer() {
        let steps = [step("g/x", Some("g"), &["nope"])];
        assert_eq!(
            err(&steps, &[group("g", &[])]),
            "step \"g/x\": unknown dependency \"nope\""
        );
        let steps = [step("g/x", Some("g"), &[])];
        assert_eq!(
            err(&steps, &[group("g", &["missing"])]),
            "group \"g\": unknown dependency \"missing\""
        );
    }

    #[test]
    fn duplicates_and_self_dependencies() {
        let steps = [step("x", None, &[]), step("x", None, &[])];
        assert_eq!(err(&steps, &[]), "duplicate step name \"x\"");
        let steps = [step("x", None, &["x"])];
        assert_eq!(err(&steps, &[]), "self dependency \"x\"");
        let steps = [step("g/x", Some("g"), &[])];
        assert_eq!(err(&steps, &[group("g", &["g"])]), "self dependency \"g\"");
        assert_eq!(
            err(&steps, &[group("g", &[]), group("g", &[])]),
            "duplicate group name \"g\""
        );
        let steps = [step("g", None, &[]), step("x", Some("g"), &[])];
        assert_eq!(
            err(&steps, &[group("g", &[])]),
            "name \"g\" is used by a step and a group"
        );
    }

    #[test]
    fn membership_problems() {
        let steps = [step("x", Some("nope"), &[])];
        assert_eq!(err(&steps, &[]), "step \"x\": unknown group \"nope\"");
        let steps = [step("x", None, &[])];
        assert_eq!(err(&steps, &[group("g", &[])]), "group \"g\" has no steps");
    }

    #[test]
    fn first_error_in_list_order_wins() {
        let steps = [step("a", None, &["nope1"]), step("b", None, &["nope2"])];
        assert_eq!(err(&steps, &[]), "step \"a\": unknown dependency \"nope1\"");
    }

    #[test]
    fn error_categories() {
        let e = GraphError::Cycle {
            path: vec!["a".into(), "a".into()],
        };
        assert_eq!(e.category(), "dependency_cycle");
        assert_eq!(
            GraphError::SelfDependency("x".into()).category(),
            "self_dependency"
        );
    }

    #[test]
    fn accessors_and_topological_order() {
        let steps = [
            step("g/b", Some("g"), &["g/a"]),
            step("g/a", Some("g"), &[]),
            step("h/c", Some("h"), &[]),
            step("d", None, &["h"]),
        ];
        let groups = [group("g", &[]), group("h", &["g"])];
        let dag = Dag::build(&steps, &groups).expect("valid");
        assert_eq!(dag.len(), 4);
        assert_eq!(dag.group_count(), 2);
        let pos = |k: &str| {
            let id = dag.step_id(k).expect("known");
            dag.topological_order()
                .iter()
                .position(|s| *s == id)
                .expect("ordered")
        };
        assert!(pos("g/a") < pos("g/b"));
        assert!(pos("g/b") < pos("h/c"));
        assert!(pos("h/c") < pos("d"));
        let h = dag.group_id("h").expect("group");
        assert_eq!(dag.group_members(h), &[StepId(2)]);
        assert_eq!(dag.effective_deps(StepId(2)).count(), 1);
        assert_eq!(dag.group_dependents(h).len(), 1);
        assert_eq!(dag.step_dependents(StepId(1)).len(), 1);
        assert_eq!(dag.lookup("g"), Some(Target::Group(GroupId(0))));
        assert_eq!(dag.step_key(StepId(99)), "");
        assert_eq!(dag.node_order().len(), 4 + 2 * 2);
    }

    #[test]
    fn empty_graph_is_valid() {
        let dag = Dag::build(&[], &[]).expect("valid");
        assert!(dag.is_empty());
        assert!(dag.topological_order().is_empty());
    }
}
