//! `graph`: the run's step graph (the engine's DAG) as Graphviz DOT or a Mermaid flowchart,
//! each node filled by its status. SVG is DOT laid out by Graphviz `dot` (the command module).
//!
//! Arrows point from a dependency to what waits for it (the order things run in). ManagedJob
//! groups are clusters (DOT) or subgraphs (Mermaid); a group dependency is one arrow between
//! the groups. An arrow that requires another outcome than success is dashed and labelled
//! (`failed`, `completed`).

use std::fmt::Write as _;

use jobsmith_engine::{Dep, Plan, Required, Target};

use crate::error::CliError;
use crate::model::{Run, RunSpec, phase_text};

/// Output format of `graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// SVG, laid out by Graphviz `dot`.
    Svg,
}

/// Fill and border colour of a lower-case status (the tree's colours, light fills).
pub fn status_colours(status: &str) -> (&'static str, &'static str) {
    match status {
        "succeeded" => ("#c8e6c9", "#2e7d32"),
        "running" => ("#fff59d", "#f9a825"),
        "failed" => ("#ffcdd2", "#c62828"),
        "pending" => ("#eeeeee", "#757575"),
        "aborted" => ("#e1bee7", "#8e24aa"),
        _ => ("#b2ebf2", "#00838f"),
    }
}

/// A node of the drawing.
struct Node {
    id: String,
    label: String,
    status: String,
    /// Index into `groups`.
    group: Option<usize>,
}

/// A group (ManagedJob) of the drawing.
struct Group {
    id: String,
    label: String,
    status: String,
    /// Index of its first node (the anchor of group arrows in DOT).
    first: Option<usize>,
}

/// An arrow.
struct Edge {
    from: End,
    to: End,
    required: Required,
}

#[derive(Clone, Copy)]
enum End {
    Node(usize),
    Group(usize),
}

/// The plain drawing, built once and written as DOT or Mermaid.
struct Drawing {
    title: String,
    title_status: String,
    nodes: Vec<Node>,
    groups: Vec<Group>,
    edges: Vec<Edge>,
}

fn drawing(run: &Run, plan: Option<&Plan>) -> Result<Drawing, CliError> {
    let mut d = Drawing {
        title: format!("{}/{}", run.kind.kind(), run.name()),
        title_status: phase_text(run.status.phase.as_deref()),
        nodes: Vec::new(),
        groups: Vec::new(),
        edges: Vec::new(),
    };
    let status = &run.status;
    let Some(plan) = plan else {
        // DaemonJob: one node per node entry, no edges.
        for (i, node) in status.nodes.iter().enumerate() {
            d.nodes.push(Node {
                id: format!("s{i}"),
                label: node.node.clone(),
                status: phase_text(node.shown_phase()),
                group: None,
            });
        }
        return Ok(d);
    };
    if let Ok(RunSpec::ManagedJob(_)) = &run.spec {
        for gid in plan.dag.groups() {
            let key = plan.dag.group_key(gid);
            d.groups.push(Group {
                id: format!("g{}", gid.0),
                label: key.to_owned(),
                status: phase_text(status.group(key).and_then(|g| g.phase.as_deref())),
                first: None,
            });
        }
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let phase = match run.kind {
            crate::kinds::RunKind::JobRun => phase_text(status.phase.as_deref()),
            _ => phase_text(status.step(&step.key).and_then(|s| s.shown_phase())),
        };
        let group = step
            .group
            .as_deref()
            .and_then(|g| plan.dag.group_id(g))
            .map(|g| g.index());
        if let Some(g) = group.and_then(|g| d.groups.get_mut(g))
            && g.first.is_none()
        {
            g.first = Some(i);
        }
        let label = match &step.group {
            Some(g) => step
                .key
                .strip_prefix(&format!("{g}/"))
                .unwrap_or(&step.key)
                .to_owned(),
            None => step.key.clone(),
        };
        d.nodes.push(Node {
            id: format!("s{i}"),
            label,
            status: phase,
            group,
        });
    }
    let end = |t: Target| match t {
        Target::Step(s) => End::Node(s.index()),
        Target::Group(g) => End::Group(g.index()),
    };
    for gid in plan.dag.groups() {
        for dep in plan.dag.group_deps(gid) {
            d.edges
                .push(edge(end(dep.target), End::Group(gid.index()), dep));
        }
    }
    for sid in plan.dag.steps() {
        for dep in plan.dag.step_deps(sid) {
            d.edges
                .push(edge(end(dep.target), End::Node(sid.index()), dep));
        }
    }
    Ok(d)
}

fn edge(from: End, to: End, dep: &Dep) -> Edge {
    Edge {
        from,
        to,
        required: dep.required,
    }
}

fn required_label(required: Required) -> Option<&'static str> {
    match required {
        Required::Succeeded => None,
        Required::Failed => Some("failed"),
        Required::Completed => Some("completed"),
    }
}

/// DOT text of a run's graph.
pub fn dot(run: &Run, plan: Option<&Plan>) -> Result<String, CliError> {
    let d = drawing(run, plan)?;
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&d.title));
    let _ = writeln!(
        out,
        "  label={}; labelloc=t; fontname=\"Helvetica\";",
        quote(&format!("{} [{}]", d.title, d.title_status))
    );
    let _ = writeln!(
        out,
        "  rankdir=LR; compound=true; nodesep=0.3; ranksep=0.6;"
    );
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];"
    );
    let _ = writeln!(
        out,
        "  edge [color=\"#616161\", fontname=\"Helvetica\", fontsize=10];"
    );
    let node_line = |out: &mut String, n: &Node, indent: &str| {
        let (fill, border) = status_colours(&n.status);
        let _ = writeln!(
            out,
            "{indent}{} [label={}, fillcolor=\"{fill}\", color=\"{border}\"];",
            n.id,
            quote(&format!("{}\n{}", n.label, n.status))
        );
    };
    for (gi, g) in d.groups.iter().enumerate() {
        let (fill, border) = status_colours(&g.status);
        let _ = writeln!(out, "  subgraph cluster_{} {{", g.id);
        let _ = writeln!(
            out,
            "    label={}; style=\"rounded,filled\"; fillcolor=\"{fill}40\"; color=\"{border}\";",
            quote(&format!("{} [{}]", g.label, g.status))
        );
        for n in d.nodes.iter().filter(|n| n.group == Some(gi)) {
            node_line(&mut out, n, "    ");
        }
        let _ = writeln!(out, "  }}");
    }
    for n in d.nodes.iter().filter(|n| n.group.is_none()) {
        node_line(&mut out, n, "  ");
    }
    for e in &d.edges {
        let mut attrs: Vec<String> = Vec::new();
        let from = match e.from {
            End::Node(i) => d.nodes.get(i).map(|n| n.id.clone()),
            End::Group(g) => d.groups.get(g).and_then(|gr| {
                attrs.push(format!("ltail=cluster_{}", gr.id));
                gr.first.and_then(|i| d.nodes.get(i)).map(|n| n.id.clone())
            }),
        };
        let to = match e.to {
            End::Node(i) => d.nodes.get(i).map(|n| n.id.clone()),
            End::Group(g) => d.groups.get(g).and_then(|gr| {
                attrs.push(format!("lhead=cluster_{}", gr.id));
                gr.first.and_then(|i| d.nodes.get(i)).map(|n| n.id.clone())
            }),
        };
        if let Some(label) = required_label(e.required) {
            attrs.push(format!("label=\"{label}\""));
            attrs.push("style=dashed".to_owned());
        }
        if let (Some(from), Some(to)) = (from, to) {
            if attrs.is_empty() {
                let _ = writeln!(out, "  {from} -> {to};");
            } else {
                let _ = writeln!(out, "  {from} -> {to} [{}];", attrs.join(", "));
            }
        }
    }
    out.push_str("}\n");
    Ok(out)
}

/// Mermaid flowchart of a run's graph.
pub fn mermaid(run: &Run, plan: Option<&Plan>) -> Result<String, CliError> {
    let d = drawing(run, plan)?;
    let mut out = String::new();
    let _ = writeln!(out, "---");
    let _ = writeln!(out, "title: {} [{}]", d.title, d.title_status);
    let _ = writeln!(out, "---");
    let _ = writeln!(out, "flowchart LR");
    let node_line = |out: &mut String, n: &Node, indent: &str| {
        let _ = writeln!(
            out,
            "{indent}{}[\"{}<br/>{}\"]:::{}",
            n.id,
            mermaid_text(&n.label),
            n.status,
            class_name(&n.status)
        );
    };
    for (gi, g) in d.groups.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph {}[\"{} [{}]\"]",
            g.id,
            mermaid_text(&g.label),
            g.status
        );
        for n in d.nodes.iter().filter(|n| n.group == Some(gi)) {
            node_line(&mut out, n, "    ");
        }
        let _ = writeln!(out, "  end");
    }
    for n in d.nodes.iter().filter(|n| n.group.is_none()) {
        node_line(&mut out, n, "  ");
    }
    let id = |end: End| match end {
        End::Node(i) => d.nodes.get(i).map(|n| n.id.clone()),
        End::Group(g) => d.groups.get(g).map(|g| g.id.clone()),
    };
    for e in &d.edges {
        if let (Some(from), Some(to)) = (id(e.from), id(e.to)) {
            match required_label(e.required) {
                None => {
                    let _ = writeln!(out, "  {from} --> {to}");
                }
                Some(label) => {
                    let _ = writeln!(out, "  {from} -. {label} .-> {to}");
                }
            }
        }
    }
    let mut statuses: Vec<&str> = d
        .nodes
        .iter()
        .map(|n| n.status.as_str())
        .chain(d.groups.iter().map(|g| g.status.as_str()))
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let (fill, border) = status_colours(status);
        let _ = writeln!(
            out,
            "  classDef {} fill:{fill},stroke:{border},color:#212121",
            class_name(status)
        );
    }
    for g in &d.groups {
        let _ = writeln!(out, "  class {} {}", g.id, class_name(&g.status));
    }
    Ok(out)
}

/// A Mermaid class name for a status (letters only; `node-lost` style values keep dashes).
fn class_name(status: &str) -> String {
    let cleaned: String = status
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("st_{cleaned}")
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// A DOT string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
