//! `status`: the seed's status block (Name, Namespace, Status, counts, then `Job Status:` with
//! Pending, Running, Succeeded, Failed and Aborted), for every run kind; and the block of one
//! step with `--job` (a ManagedJob job's compiled params come from the engine, computed from the
//! spec without reading the Job, SPEC §2).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jobsmith_api::Params;
use jobsmith_engine::Plan;
use serde_json::Value;

use crate::error::CliError;
use crate::model::{Run, RunSpec, phase_text};
use crate::render::color;

/// The five counts every block shows, in order; other phases follow when present.
const COUNTED: [&str; 5] = ["pending", "running", "succeeded", "failed", "aborted"];

/// Step counts by lower-case phase, from the status (ManagedJob: the groups' counts, which
/// stay complete beyond the entry cap; others: the entries).
pub fn step_counts(run: &Run, plan: Option<&Plan>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = COUNTED.iter().map(|p| ((*p).to_owned(), 0)).collect();
    let status = &run.status;
    let mut add = |phase: &str, n: u64| *counts.entry(phase.to_owned()).or_insert(0) += n;
    match &run.spec {
        Ok(RunSpec::ManagedJob(_)) if !status.groups.is_empty() => {
            for group in &status.groups {
                for (phase, value) in &group.counts {
                    if phase == "total" {
                        continue;
                    }
                    if let Some(n) = value.as_u64() {
                        add(&phase.to_ascii_lowercase(), n);
                    }
                }
            }
            // The groups count queued steps as pending; the listed entries tell them apart.
            let queued = status
                .jobs
                .iter()
                .filter(|s| s.shown_phase() == Some("Queued"))
                .count() as u64;
            if queued > 0 {
                add("queued", queued);
                if let Some(pending) = counts.get_mut("pending") {
                    *pending = pending.saturating_sub(queued);
                }
            }
        }
        Ok(RunSpec::JobRun(_)) => add(&phase_text(status.phase.as_deref()), 1),
        Ok(RunSpec::DaemonJob(_)) | Err(_) if !status.nodes.is_empty() => {
            for node in &status.nodes {
                add(&phase_text(node.shown_phase()), 1);
            }
        }
        _ => {
            // Steps of the plan without an entry yet are pending.
            let mut listed = 0u64;
            for step in status.jobs.iter().chain(status.flows.iter()) {
                add(&phase_text(step.shown_phase()), 1);
                listed += 1;
            }
            if let Some(plan) = plan {
                let missing = (plan.steps.len() as u64).saturating_sub(listed + status.omitted());
                add("pending", missing);
            }
        }
    }
    counts
}

/// The status block of a run.
pub fn render(run: &Run, plan: Option<&Plan>, colour: bool) -> String {
    let mut out = String::new();
    let phase = phase_text(run.status.phase.as_deref());
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{:<11}{value}", format!("{label}:"));
    };
    line("Name", run.name());
    line("Namespace", run.namespace());
    line("Status", &color::paint(&phase, &phase, colour));
    match &run.spec {
        Ok(RunSpec::ManagedJob(spec)) => {
            line("Groups", &spec.groups.len().to_string());
            line(
                "Jobs",
                &spec
                    .groups
                    .iter()
                    .map(|g| g.jobs.len())
                    .sum::<usize>()
                    .to_string(),
            );
        }
        Ok(RunSpec::JobFlow(spec)) => line("Flows", &spec.flows.len().to_string()),
        Ok(RunSpec::DaemonJob(_)) => {
            let nodes = run.status.desired.unwrap_or(run.status.nodes.len() as u64);
            line("Nodes", &nodes.to_string());
        }
        Ok(RunSpec::JobRun(spec)) => {
            line("Template", &spec.template_ref);
            line("Job", run.status.job_name.as_deref().unwrap_or("<none>"));
        }
        Err(_) => {}
    }
    if let Some(progress) = &run.status.progress {
        line("Progress", progress);
    }
    if let Some(message) = run.status.message.as_deref().filter(|m| !m.is_empty()) {
        line("Message", message);
    }
    out.push('\n');
    out.push_str("Job Status:\n");
    let counts = step_counts(run, plan);
    let mut order: Vec<&str> = COUNTED.to_vec();
    order.extend(
        counts
            .keys()
            .map(String::as_str)
            .filter(|k| !COUNTED.contains(k)),
    );
    for phase in order {
        let n = counts.get(phase).copied().unwrap_or(0);
        if n == 0 && !COUNTED.contains(&phase) {
            continue;
        }
        let label = format!("{}:", capitalise(phase));
        let _ = writeln!(out, "  {label:<11}{n}");
    }
    out
}

/// The block of one step (`--job G/J`, a flow, a node).
pub fn render_step(
    run: &Run,
    plan: Option<&Plan>,
    step: &str,
    colour: bool,
) -> Result<String, CliError> {
    let status = &run.status;
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{:<11}{value}", format!("{label}:"));
    };
    let (job_name, phase, reason, exit_code) = if let Some(plan) = plan {
        let id = plan
            .step_id(step)
            .ok_or_else(|| no_such_step(run, plan, step))?;
        let planned = plan
            .step(id)
            .map(|p| p.job_name.clone())
            .unwrap_or_default();
        match run.kind {
            crate::kinds::RunKind::JobRun => (
                status.job_name.clone().unwrap_or(planned),
                phase_text(status.phase.as_deref()),
                None,
                None,
            ),
            _ => {
                let entry = status.step(step);
                (
                    entry.and_then(|e| e.job_name.clone()).unwrap_or(planned),
                    phase_text(entry.and_then(|e| e.shown_phase())),
                    entry.and_then(|e| e.reason.clone()),
                    entry.and_then(|e| e.exit_code),
                )
            }
        }
    } else {
        let node = status
            .nodes
            .iter()
            .find(|n| n.node == step)
            .ok_or_else(|| CliError::NoSuchStep {
                kind: run.kind.kind(),
                name: run.name().to_owned(),
                step: step.to_owned(),
                steps: status
                    .nodes
                    .iter()
                    .take(10)
                    .map(|n| n.node.clone())
                    .collect(),
            })?;
        (
            node.job_name.clone().unwrap_or_default(),
            phase_text(node.shown_phase()),
            node.reason.clone(),
            node.exit_code,
        )
    };
    line("Step", step);
    line("Run", &format!("{}/{}", run.kind.kind(), run.name()));
    line("Namespace", run.namespace());
    line("Job Name", &job_name);
    line("Status", &color::paint(&phase, &phase, colour));
    if let Some(reason) = reason {
        line("Reason", &reason);
    }
    if let Some(code) = exit_code {
        line("Exit Code", &code.to_string());
    }
    if let Some(mj) = run.managedjob()
        && let Some(params) = jobsmith_engine::compile::managedjob::job_params(&mj, step)
    {
        out.push_str("Compiled Params:\n");
        out.push_str(&indent(&params_yaml(&params)?, "  "));
    }
    Ok(out)
}

fn no_such_step(run: &Run, plan: &Plan, step: &str) -> CliError {
    CliError::NoSuchStep {
        kind: run.kind.kind(),
        name: run.name().to_owned(),
        step: step.to_owned(),
        steps: plan.steps.iter().take(10).map(|s| s.key.clone()).collect(),
    }
}

/// Compiled params as YAML (keys in the API's camelCase, empty parts left out).
pub fn params_yaml(params: &Params) -> Result<String, CliError> {
    let value: Value = serde_json::to_value(params).map_err(|e| CliError::Render(e.to_string()))?;
    serde_yaml::to_string(&value).map_err(|e| CliError::Render(e.to_string()))
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
