//! Byte-for-byte tests of everything the plugin prints that does not need a cluster: trees
//! (with and without colour), list tables, status blocks, DOT and Mermaid, for each run kind.
//!
//! Inputs are run objects in `tests/testdata/*.yaml` (samples with a status as the manager
//! writes it); expected outputs are the files beside them. `parallel-demo.tree` is written by
//! hand from the seed plugin's format; the others were generated with
//! `JOBSMITH_UPDATE_GENERATED=1 cargo test -p jobsmith-cli --test render` and reviewed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use jobsmith_cli::kinds::RunKind;
use jobsmith_cli::model::Run;
use jobsmith_cli::render::table::{self, TableOptions};
use jobsmith_cli::render::tree::{self, ExtraPhases};
use jobsmith_cli::{render::graph, render::status};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name)
}

fn load(name: &str) -> Run {
    let text = std::fs::read_to_string(testdata(name)).unwrap();
    let value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let kind = value["kind"]
        .as_str()
        .and_then(RunKind::from_alias)
        .unwrap();
    Run::from_value(kind, value)
}

/// Compares with the expected file; `JOBSMITH_UPDATE_GENERATED=1` writes it instead.
fn check(expected_file: &str, actual: &str) {
    let path = testdata(expected_file);
    if std::env::var("JOBSMITH_UPDATE_GENERATED").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{expected_file} differs (JOBSMITH_UPDATE_GENERATED=1 cargo test -p jobsmith-cli --test render rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn tree_of(run: &Run, colour: bool) -> String {
    let plan = run.plan().unwrap();
    let root = tree::build(run, plan.as_ref(), &ExtraPhases::new()).unwrap();
    tree::render(&root, colour)
}

#[test]
fn parallel_demo_tree_is_the_seed_format() {
    let run = load("parallel-demo-succeeded.yaml");
    // Written by hand, never regenerated: the seed's tree, byte for byte.
    let expected = std::fs::read_to_string(testdata("parallel-demo.tree")).unwrap();
    assert_eq!(tree_of(&run, false), expected);
}

#[test]
fn parallel_demo_tree_in_colour_colours_only_the_statuses() {
    let run = load("parallel-demo-succeeded.yaml");
    let coloured = tree_of(&run, true);
    check("parallel-demo.color.tree", &coloured);
    // Every bracketed status is green; removing the colour codes gives the plain tree.
    assert_eq!(coloured.matches("\x1b[32m[succeeded]\x1b[0m").count(), 9);
    let plain = coloured.replace("\x1b[32m", "").replace("\x1b[0m", "");
    assert_eq!(plain, tree_of(&run, false));
}

#[test]
fn managedjob_with_failure_handlers_tree() {
    let run = load("dependency-status-failed.yaml");
    check("dependency-status.tree", &tree_of(&run, false));
}

#[test]
fn exit_steps_are_their_own_group_in_the_tree() {
    let run = load("on-exit-failed.yaml");
    let tree = tree_of(&run, false);
    check("on-exit.tree", &tree);
    assert!(tree.contains("└── onExit [succeeded]\n    ├── runs after every other step\n"));
    let run = load("jobflow-on-exit-running.yaml");
    let tree = tree_of(&run, false);
    check("jobflow-on-exit.tree", &tree);
    assert!(tree.contains("└── onExit\n    ├── runs after every other step\n"));
}

#[test]
fn jobflow_tree_shows_unknown_phases_in_cyan() {
    let run = load("jobflow-running.yaml");
    check("jobflow.tree", &tree_of(&run, false));
    let coloured = tree_of(&run, true);
    assert!(
        coloured.contains("job3 \x1b[36m[queued]\x1b[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("job2 \x1b[33m[running]\x1b[0m"),
        "{coloured}"
    );
}

#[test]
fn steps_queued_in_kueue_are_shown_queued() {
    let run = load("managedjob-queued.yaml");
    let tree = tree_of(&run, false);
    check("managedjob-queued.tree", &tree);
    assert_eq!(tree.matches("[queued]").count(), 3, "{tree}");
    let plan = run.plan().unwrap();
    let status = status::render(&run, plan.as_ref(), false);
    check("managedjob-queued.status", &status);
    // The groups count queued steps as pending; the block tells them apart.
    assert!(status.contains("  Pending:   0\n"), "{status}");
    assert!(status.contains("  Queued:    3\n"), "{status}");
    let step = status::render_step(&run, plan.as_ref(), "shards/shard-4", false).unwrap();
    assert!(step.contains("Status:    queued\n"), "{step}");
    assert!(step.contains("Reason:    Queued\n"), "{step}");
}

#[test]
fn daemonjob_tree() {
    let run = load("daemonjob-running.yaml");
    check("daemonjob.tree", &tree_of(&run, false));
}

#[test]
fn jobrun_tree() {
    let run = load("jobrun-succeeded.yaml");
    check("jobrun.tree", &tree_of(&run, false));
}

#[test]
fn steps_beyond_the_status_cap_take_their_phase_from_the_jobs() {
    let mut run = load("parallel-demo-succeeded.yaml");
    run.status.jobs.retain(|j| j.key != "finalization/finalize");
    run.status.omitted_jobs = Some(1);
    let plan = run.plan().unwrap();
    let extra: ExtraPhases = [("finalization/finalize".to_owned(), "Running".to_owned())].into();
    let root = tree::build(&run, plan.as_ref(), &extra).unwrap();
    assert!(tree::render(&root, false).contains("finalize [running]"));
}

#[test]
fn status_blocks() {
    for (input, expected) in [
        ("parallel-demo-succeeded.yaml", "parallel-demo.status"),
        ("dependency-status-failed.yaml", "dependency-status.status"),
        ("jobflow-running.yaml", "jobflow.status"),
        ("daemonjob-running.yaml", "daemonjob.status"),
        ("jobrun-succeeded.yaml", "jobrun.status"),
    ] {
        let run = load(input);
        let plan = run.plan().unwrap();
        check(expected, &status::render(&run, plan.as_ref(), false));
    }
}

#[test]
fn the_seed_status_block_of_parallel_demo() {
    let run = load("parallel-demo-succeeded.yaml");
    let plan = run.plan().unwrap();
    let text = status::render(&run, plan.as_ref(), false);
    assert!(text.starts_with(
        "Name:      parallel-demo\nNamespace: default\nStatus:    succeeded\nGroups:    3\nJobs:      5\n"
    ));
    assert!(text.ends_with(
        "\nJob Status:\n  Pending:   0\n  Running:   0\n  Succeeded: 5\n  Failed:    0\n  Aborted:   0\n"
    ));
}

#[test]
fn one_job_with_its_compiled_params() {
    let run = load("parallel-demo-succeeded.yaml");
    let plan = run.plan().unwrap();
    let text = status::render_step(&run, plan.as_ref(), "processing/process-2", false).unwrap();
    check("parallel-demo.job.status", &text);
    let error = status::render_step(&run, plan.as_ref(), "processing/nope", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "ManagedJob parallel-demo has no step \"processing/nope\" (steps: preparation/prepare, processing/process-1, processing/process-2, processing/process-3, finalization/finalize)"
    );
}

#[test]
fn list_tables() {
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 5, 0).unwrap();
    let plain = TableOptions::default();
    let runs = vec![
        load("parallel-demo-succeeded.yaml"),
        load("dependency-status-failed.yaml"),
    ];
    let mut runs_sorted = runs.clone();
    runs_sorted.sort_by(|a, b| a.name().cmp(b.name()));
    check(
        "managedjobs.list",
        &table::render(RunKind::ManagedJob, &runs_sorted, plain, now),
    );
    let wide = TableOptions {
        all_namespaces: true,
        wide: true,
        colour: false,
    };
    check(
        "managedjobs-wide.list",
        &table::render(RunKind::ManagedJob, &runs_sorted, wide, now),
    );
    check(
        "jobflows.list",
        &table::render(
            RunKind::JobFlow,
            &[load("jobflow-running.yaml")],
            plain,
            now,
        ),
    );
    check(
        "daemonjobs.list",
        &table::render(
            RunKind::DaemonJob,
            &[load("daemonjob-running.yaml")],
            plain,
            now,
        ),
    );
    check(
        "jobruns.list",
        &table::render(
            RunKind::JobRun,
            &[load("jobrun-succeeded.yaml")],
            plain,
            now,
        ),
    );
    assert_eq!(
        table::empty_message(&[RunKind::ManagedJob], Some("ns")),
        "No ManagedJobs found in namespace ns"
    );
    assert_eq!(
        table::empty_message(&RunKind::ALL, None),
        "No ManagedJobs, JobFlows, DaemonJobs or JobRuns found in any namespace"
    );
}

#[test]
fn graphs() {
    for (input, stem) in [
        ("parallel-demo-succeeded.yaml", "parallel-demo"),
        ("dependency-status-failed.yaml", "dependency-status"),
        ("jobflow-running.yaml", "jobflow"),
        ("daemonjob-running.yaml", "daemonjob"),
        ("jobrun-succeeded.yaml", "jobrun"),
    ] {
        let run = load(input);
        let plan = run.plan().unwrap();
        check(
            &format!("{stem}.dot"),
            &graph::dot(&run, plan.as_ref()).unwrap(),
        );
        check(
            &format!("{stem}.mmd"),
            &graph::mermaid(&run, plan.as_ref()).unwrap(),
        );
    }
}

#[test]
fn an_unreadable_status_keeps_its_phase() {
    let mut value: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(testdata("jobflow-running.yaml")).unwrap())
            .unwrap();
    // A future manager changing a field's type must not break the plugin.
    value["status"]["flows"] = serde_json::json!("not a list");
    let run = Run::from_value(RunKind::JobFlow, value);
    assert_eq!(run.status.phase.as_deref(), Some("Running"));
    assert!(tree_of(&run, false).starts_with("jobflow-example [running]\n"));
}
