//! `list`: one table per kind, the seed's for ManagedJob (`NAME STATUS GROUPS JOBS` with a
//! dashes row), per-kind columns for the others; `NAMESPACE` first with `-A`; `-o wide` adds
//! PROGRESS, AGE and MESSAGE.
//!
//! Columns are at least as wide as the seed's (30, 12, 8, 8) and grow with their content; a
//! row carries no trailing blanks.

use chrono::{DateTime, Utc};

use crate::kinds::RunKind;
use crate::model::{Run, RunSpec, phase_text};
use crate::render::color;

/// Table options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `-o wide`: PROGRESS, AGE and MESSAGE.
    pub wide: bool,
    /// Colour the STATUS column.
    pub colour: bool,
}

/// The table of `runs` (all of `kind`). `now` is used for AGE.
pub fn render(kind: RunKind, runs: &[Run], options: TableOptions, now: DateTime<Utc>) -> String {
    let mut header: Vec<(&str, usize)> = Vec::new();
    if options.all_namespaces {
        header.push(("NAMESPACE", 20));
    }
    header.push(("NAME", 30));
    header.push(("STATUS", 12));
    match kind {
        RunKind::ManagedJob => {
            header.push(("GROUPS", 8));
            header.push(("JOBS", 8));
        }
        RunKind::JobFlow => header.push(("FLOWS", 8)),
        RunKind::DaemonJob => {
            header.push(("NODES", 8));
            header.push(("SUCCEEDED", 8));
            header.push(("FAILED", 8));
        }
        RunKind::JobRun => {
            header.push(("TEMPLATE", 20));
            header.push(("JOB", 8));
        }
    }
    if options.wide {
        header.push(("PROGRESS", 8));
        header.push(("AGE", 6));
        header.push(("MESSAGE", 0));
    }

    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| row(kind, run, options, now))
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|(h, w)| (*w).max(h.len())).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let status_col = usize::from(options.all_namespaces) + 1;
    let mut out = String::new();
    let names: Vec<String> = header.iter().map(|(h, _)| (*h).to_owned()).collect();
    let dashes: Vec<String> = header.iter().map(|(h, _)| "-".repeat(h.len())).collect();
    push_row(&mut out, &names, &widths, None);
    push_row(&mut out, &dashes, &widths, None);
    for row in &rows {
        let paint = options.colour.then_some(status_col);
        push_row(&mut out, row, &widths, paint);
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize], paint: Option<usize>) {
    let mut line = String::new();
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        let width = widths.get(i).copied().unwrap_or(0);
        let pad = if i == last {
            0
        } else {
            width.saturating_sub(cell.chars().count()) + 1
        };
        if paint == Some(i) {
            line.push_str(&color::paint(cell, cell, true));
        } else {
            line.push_str(cell);
        }
        line.push_str(&" ".repeat(pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn row(kind: RunKind, run: &Run, options: TableOptions, now: DateTime<Utc>) -> Vec<String> {
    let mut cells = Vec::new();
    if options.all_namespaces {
        cells.push(run.namespace().to_owned());
    }
    cells.push(run.name().to_owned());
    cells.push(phase_text(run.status.phase.as_deref()));
    let status = &run.status;
    match (kind, &run.spec) {
        (RunKind::ManagedJob, Ok(RunSpec::ManagedJob(spec))) => {
            cells.push(spec.groups.len().to_string());
            cells.push(
                spec.groups
                    .iter()
                    .map(|g| g.jobs.len())
                    .sum::<usize>()
                    .to_string(),
            );
        }
        (RunKind::JobFlow, Ok(RunSpec::JobFlow(spec))) => cells.push(spec.flows.len().to_string()),
        (RunKind::DaemonJob, _) => {
            let nodes = status
                .desired
                .unwrap_or(status.nodes.len() as u64 + status.omitted_nodes.unwrap_or(0));
            cells.push(nodes.to_string());
            cells.push(status.succeeded.unwrap_or(0).to_string());
            cells.push(status.failed.unwrap_or(0).to_string());
        }
        (RunKind::JobRun, spec) => {
            let template = match spec {
                Ok(RunSpec::JobRun(s)) => s.template_ref.clone(),
                _ => String::new(),
            };
            cells.push(template);
            cells.push(
                status
                    .job_name
                    .clone()
                    .unwrap_or_else(|| "<none>".to_owned()),
            );
        }
        // A spec this plugin cannot read: the counts are unknown.
        (RunKind::ManagedJob, _) => {
            cells.push("?".to_owned());
            cells.push("?".to_owned());
        }
        (RunKind::JobFlow, _) => cells.push("?".to_owned()),
    }
    if options.wide {
        cells.push(
            status
                .progress
                .clone()
                .unwrap_or_else(|| "<none>".to_owned()),
        );
        cells.push(age(run, now));
        cells.push(status.message.clone().unwrap_or_default());
    }
    cells
}

/// kubectl's short age: `45s`, `12m`, `3h`, `5d`.
fn age(run: &Run, now: DateTime<Utc>) -> String {
    let Some(created) = run.metadata.creation_timestamp.as_ref() else {
        return "<unknown>".to_owned();
    };
    let created = DateTime::<Utc>::from_timestamp(created.0.as_second(), 0);
    let Some(created) = created else {
        return "<unknown>".to_owned();
    };
    let secs = (now - created).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The line printed when a kind has no object (`No ManagedJobs found in namespace ns`).
pub fn empty_message(kinds: &[RunKind], namespace: Option<&str>) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.kind_plural()).collect();
    let what = match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    match namespace {
        Some(ns) => format!("No {what} found in namespace {ns}"),
        None => format!("No {what} found in any namespace"),
    }
}
