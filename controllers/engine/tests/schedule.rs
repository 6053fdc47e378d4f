//! Scheduler rules, one test per rule (SPEC §1-3), and the ManagedJob seed ordering example.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{group, id, keys, step};
use jobsmith_engine::schedule::{
    FailurePolicy, Policies, RunPhase, StepPhase, evaluate, evaluate_with,
};
use jobsmith_engine::{Dag, Required, StepOutcome};

use Required::{Completed, Failed as ReqFailed, Succeeded as ReqSucceeded};
use StepOutcome::{Failed, NotCreated, Queued, Running, Succeeded, Suspended};

fn outcomes(dag: &Dag, set: &[(&str, StepOutcome)]) -> Vec<StepOutcome> {
    let mut o = vec![NotCreated; dag.len()];
    for (k, v) in set {
        o[id(dag, k).index()] = *v;
    }
    o
}

fn chain() -> Dag {
    Dag::build(
        &[
            step("a", None, &[]),
            step("b", None, &[("a", ReqSucceeded)]),
            step("c", None, &[("b", ReqSucceeded)]),
            step("x", None, &[]),
        ],
        &[],
    )
    .unwrap()
}

const CI: Policies = Policies {
    failure: FailurePolicy::ContinueIndependent,
    suspend: false,
    max_parallel: None,
};
const FF: Policies = Policies {
    failure: FailurePolicy::FailFast,
    suspend: false,
    max_parallel: None,
};

#[test]
fn roots_start_first_and_the_run_is_pending_until_observed() {
    let dag = chain();
    let d = evaluate(&dag, &[], &CI);
    assert_eq!(keys(&dag, &d.create), ["a", "x"]);
    assert_eq!(d.phase, RunPhase::Pending);
    assert_eq!(d.progress.to_string(), "0/4");
    assert_eq!(d.message, "starting 2 of 4 steps");
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Running)]), &CI);
    assert_eq!(keys(&dag, &d.create), ["x"]);
    assert_eq!(d.phase, RunPhase::Running);
}

#[test]
fn a_step_waits_for_its_dependency() {
    let dag = chain();
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Running), ("x", Running)]),
        &CI,
    );
    assert!(d.create.is_empty());
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Succeeded), ("x", Running)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["b"]);
    assert_eq!(d.message, "2 running, 1/4 done");
}

#[test]
fn a_failure_aborts_dependents_transitively_and_independent_work_goes_on() {
    let dag = chain();
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Failed)]), &CI);
    assert_eq!(d.steps[id(&dag, "b").index()], StepPhase::Aborted);
    assert_eq!(d.steps[id(&dag, "c").index()], StepPhase::Aborted);
    assert_eq!(keys(&dag, &d.create), ["x"]);
    assert_eq!(d.phase, RunPhase::Running);
    assert_eq!(d.progress.done, 3);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Failed), ("x", Succeeded)]),
        &CI,
    );
    assert_eq!(d.phase, RunPhase::Failed);
    assert_eq!(d.message, "step \"a\" failed; 1 succeeded, 2 aborted");
}

#[test]
fn fail_fast_starts_nothing_new_and_aborts_once_nothing_runs() {
    let dag = Dag::build(
        &[
            step("a", None, &[]),
            step("x", None, &[]),
            step("y", None, &[("x", ReqSucceeded)]),
            step("z", None, &[]),
        ],
        &[],
    )
    .unwrap();
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Failed), ("x", Succeeded), ("z", Running)]),
        &FF,
    );
    assert!(
        d.create.is_empty(),
        "y is ready but FailFast stopped the run"
    );
    assert_eq!(d.steps[id(&dag, "y").index()], StepPhase::Pending);
    assert_eq!(d.phase, RunPhase::Running);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Failed), ("x", Succeeded), ("z", Succeeded)]),
        &FF,
    );
    assert_eq!(d.steps[id(&dag, "y").index()], StepPhase::Aborted);
    assert_eq!(d.phase, RunPhase::Failed);
    assert_eq!(d.progress.to_string(), "4/4");
    // The same state under ContinueIndependent starts y.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Failed), ("x", Succeeded), ("z", Succeeded)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["y"]);
}

#[test]
fn required_failed_runs_a_handler_only_on_failure() {
    let dag = Dag::build(
        &[
            step("work", None, &[]),
            step("on-failure", None, &[("work", ReqFailed)]),
        ],
        &[],
    )
    .unwrap();
    let d = evaluate(&dag, &outcomes(&dag, &[("work", Failed)]), &CI);
    assert_eq!(keys(&dag, &d.create), ["on-failure"]);
    let d = evaluate(&dag, &outcomes(&dag, &[("work", Succeeded)]), &CI);
    assert_eq!(d.steps[1], StepPhase::Skipped);
    assert_eq!(
        d.phase,
        RunPhase::Succeeded,
        "an unused failure handler does not fail the run"
    );
    assert_eq!(d.message, "1/2 steps succeeded, 1 skipped");
    // A handled failure still fails the run.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("work", Failed), ("on-failure", Succeeded)]),
        &CI,
    );
    assert_eq!(d.phase, RunPhase::Failed);
}

#[test]
fn only_steps_that_ran_count_for_handlers() {
    let dag = Dag::build(
        &[
            step("a", None, &[]),
            step("b", None, &[("a", ReqSucceeded)]),
            step("cleanup", None, &[("b", Completed)]),
            step("alert", None, &[("b", ReqFailed)]),
            step("on-a", None, &[("a", ReqFailed)]),
        ],
        &[],
    )
    .unwrap();
    // a failed: b never runs (Aborted); handlers of b are not needed (b did not run), a's
    // failure handler runs.
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Failed)]), &CI);
    assert_eq!(d.steps[1], StepPhase::Aborted);
    assert_eq!(d.steps[2], StepPhase::Skipped);
    assert_eq!(d.steps[3], StepPhase::Skipped);
    assert_eq!(keys(&dag, &d.create), ["on-a"]);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Succeeded), ("b", Succeeded)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["cleanup"]);
    assert_eq!(d.steps[3], StepPhase::Skipped);
    assert_eq!(d.steps[4], StepPhase::Skipped);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("a", Succeeded), ("b", Failed)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["cleanup", "alert"]);
}

/// The reported bug: a group that handles the failure of the one before it is not needed when
/// that one succeeded; it must not fail, and the sequential groups after it still run.
#[test]
fn an_unneeded_handler_group_is_skipped_and_later_groups_run() {
    let dag = Dag::build(
        &[
            step("build/compile", Some("build"), &[]),
            step("rescue/notify", Some("rescue"), &[]),
            step("ship/push", Some("ship"), &[]),
        ],
        &[
            group("build", &[]),
            group("rescue", &[("build", ReqFailed)]),
            group("ship", &[("build", ReqSucceeded), ("rescue", ReqSucceeded)]),
        ],
    )
    .unwrap();
    let d = evaluate(&dag, &outcomes(&dag, &[("build/compile", Succeeded)]), &CI);
    assert_eq!(
        d.steps[id(&dag, "rescue/notify").index()],
        StepPhase::Skipped
    );
    assert_eq!(d.groups[1], StepPhase::Skipped);
    assert_eq!(keys(&dag, &d.create), ["ship/push"]);
    let d = evaluate(
        &dag,
        &outcomes(
            &dag,
            &[("build/compile", Succeeded), ("ship/push", Succeeded)],
        ),
        &CI,
    );
    assert_eq!(d.phase, RunPhase::Succeeded);
    assert_eq!(d.message, "2/3 steps succeeded, 1 skipped");
    // When build fails, rescue runs and ship is aborted; the run fails.
    let d = evaluate(&dag, &outcomes(&dag, &[("build/compile", Failed)]), &CI);
    assert_eq!(keys(&dag, &d.create), ["rescue/notify"]);
    assert_eq!(d.steps[id(&dag, "ship/push").index()], StepPhase::Aborted);
}

fn grouped() -> Dag {
    Dag::build(
        &[
            step("g/a", Some("g"), &[]),
            step("g/b", Some("g"), &[]),
            step("h/x", Some("h"), &[]),
            step("ok", None, &[("g", ReqSucceeded)]),
            step("bad", None, &[("g", ReqFailed)]),
            step("any", None, &[("g", Completed)]),
        ],
        &[group("g", &[]), group("h", &[("g", ReqSucceeded)])],
    )
    .unwrap()
}

#[test]
fn group_dependencies_are_conditions_on_all_members() {
    let dag = grouped();
    let d = evaluate(&dag, &[], &CI);
    assert_eq!(keys(&dag, &d.create), ["g/a", "g/b"]);
    // One member failed, one runs: `Succeeded` is impossible now, `Failed` and `Completed` wait.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("g/a", Failed), ("g/b", Running)]),
        &CI,
    );
    assert!(d.create.is_empty());
    assert_eq!(d.steps[id(&dag, "ok").index()], StepPhase::Aborted);
    assert_eq!(
        d.steps[id(&dag, "h/x").index()],
        StepPhase::Aborted,
        "inherits h's dependency on g"
    );
    assert_eq!(d.groups[0], StepPhase::Running);
    assert_eq!(d.groups[1], StepPhase::Aborted);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("g/a", Failed), ("g/b", Succeeded)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["bad", "any"]);
    assert_eq!(d.groups[0], StepPhase::Failed);
    // All succeeded.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("g/a", Succeeded), ("g/b", Succeeded)]),
        &CI,
    );
    assert_eq!(keys(&dag, &d.create), ["h/x", "ok", "any"]);
    assert_eq!(d.steps[id(&dag, "bad").index()], StepPhase::Skipped);
    assert_eq!(d.groups[0], StepPhase::Succeeded);
}

#[test]
fn suspend_creates_nothing_and_is_suspended_once_nothing_runs() {
    let dag = chain();
    let p = Policies {
        suspend: true,
        ..CI
    };
    let d = evaluate(&dag, &[], &p);
    assert!(d.create.is_empty());
    assert_eq!(d.phase, RunPhase::Suspended);
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Running)]), &p);
    assert!(d.create.is_empty());
    assert_eq!(d.phase, RunPhase::Running);
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Succeeded)]), &p);
    assert_eq!(d.phase, RunPhase::Suspended);
    assert_eq!(d.message, "suspended, 1/4 done");
    // A finished run stays finished.
    let all = outcomes(
        &dag,
        &[
            ("a", Succeeded),
            ("b", Succeeded),
            ("c", Succeeded),
            ("x", Succeeded),
        ],
    );
    assert_eq!(evaluate(&dag, &all, &p).phase, RunPhase::Succeeded);
    // Resuming continues where it stopped.
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Succeeded)]), &CI);
    assert_eq!(keys(&dag, &d.create), ["b", "x"]);
}

#[test]
fn max_parallel_caps_running_plus_created_in_list_order() {
    let steps: Vec<_> = (0..6).map(|i| step(&format!("s{i}"), None, &[])).collect();
    let dag = Dag::build(&steps, &[]).unwrap();
    let p = Policies {
        max_parallel: Some(2),
        ..CI
    };
    assert_eq!(keys(&dag, &evaluate(&dag, &[], &p).create), ["s0", "s1"]);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("s0", Succeeded), ("s1", Running)]),
        &p,
    );
    assert_eq!(keys(&dag, &d.create), ["s2"]);
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("s3", Running), ("s5", Running), ("s4", Running)]),
        &p,
    );
    assert!(d.create.is_empty(), "already over the limit");
    let zero = Policies {
        max_parallel: Some(0),
        ..CI
    };
    assert_eq!(evaluate(&dag, &[], &zero).create.len(), 1, "0 behaves as 1");
}

#[test]
fn empty_run_succeeds_and_short_outcome_lists_are_not_created() {
    let dag = Dag::build(&[], &[]).unwrap();
    let d = evaluate(&dag, &[], &CI);
    assert_eq!(d.phase, RunPhase::Succeeded);
    assert_eq!(d.progress.to_string(), "0/0");
    let dag = chain();
    let d = evaluate(&dag, &[Succeeded], &CI);
    assert_eq!(keys(&dag, &d.create), ["b", "x"]);
    let d = evaluate(&dag, &[Succeeded; 9], &CI);
    assert_eq!(d.phase, RunPhase::Succeeded);
}

#[test]
fn an_observed_job_wins_over_derived_state() {
    let dag = chain();
    // c has a Job although b never ran (created by an earlier spec): it is Running, not Aborted.
    let d = evaluate(&dag, &outcomes(&dag, &[("a", Failed), ("c", Running)]), &CI);
    assert_eq!(d.steps[id(&dag, "c").index()], StepPhase::Running);
    assert_eq!(d.steps[id(&dag, "b").index()], StepPhase::Aborted);
}

#[test]
fn unavailable_steps_hold_no_max_parallel_slot() {
    let steps: Vec<_> = (0..4).map(|i| step(&format!("s{i}"), None, &[])).collect();
    let dag = Dag::build(&steps, &[]).unwrap();
    let p = Policies {
        max_parallel: Some(2),
        ..CI
    };
    // s0 waits for its template: s1 and s2 go first.
    let d = evaluate_with(&dag, &[], &p, |s| s.index() == 0);
    assert_eq!(keys(&dag, &d.create), ["s1", "s2"]);
    assert_eq!(d.steps[0], StepPhase::Pending);
}

#[test]
fn suspended_jobs_hold_no_slot_and_are_never_aborted_or_recreated() {
    let steps: Vec<_> = (0..4).map(|i| step(&format!("s{i}"), None, &[])).collect();
    let dag = Dag::build(&steps, &[]).unwrap();
    let p = Policies {
        max_parallel: Some(1),
        ..CI
    };
    // s0's Job is suspended: it waits, is not offered again, and s1 takes the one slot.
    let d = evaluate(&dag, &outcomes(&dag, &[("s0", Suspended)]), &p);
    assert_eq!(d.steps[0], StepPhase::Pending);
    assert_eq!(keys(&dag, &d.create), ["s1"]);
    assert_eq!(d.phase, RunPhase::Pending);
    // Only suspended Jobs and finished steps left: the run is Running and says so.
    let all = outcomes(
        &dag,
        &[
            ("s0", Suspended),
            ("s1", Succeeded),
            ("s2", Succeeded),
            ("s3", Succeeded),
        ],
    );
    let d = evaluate(&dag, &all, &p);
    assert_eq!(d.phase, RunPhase::Running);
    assert!(d.message.contains("1 suspended"), "{}", d.message);
    // Fail-fast aborts what has no Job, never a step whose (suspended) Job exists.
    let ff = Policies {
        max_parallel: Some(1),
        ..FF
    };
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("s0", Suspended), ("s1", Failed)]),
        &ff,
    );
    assert_eq!(d.steps[0], StepPhase::Pending);
    assert_eq!(d.steps[2], StepPhase::Aborted);
    assert!(d.create.is_empty());
}

#[test]
fn queued_jobs_have_not_started_but_hold_their_maxparallel_slot() {
    let steps: Vec<_> = (0..4).map(|i| step(&format!("s{i}"), None, &[])).collect();
    let dag = Dag::build(&steps, &[]).unwrap();
    let p = Policies {
        max_parallel: Some(2),
        ..CI
    };
    // s0 and s1 wait for Kueue: nothing started, the run is Pending, and no third Job is
    // created (Kueue could admit all of them at once).
    let d = evaluate(&dag, &outcomes(&dag, &[("s0", Queued), ("s1", Queued)]), &p);
    assert_eq!(d.steps[0], StepPhase::Pending);
    assert!(d.create.is_empty());
    assert_eq!(d.phase, RunPhase::Pending);
    assert!(d.message.contains("2 queued"), "{}", d.message);
    // One admitted (running), one still queued: still no room.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("s0", Running), ("s1", Queued)]),
        &p,
    );
    assert_eq!(d.phase, RunPhase::Running);
    assert!(d.create.is_empty());
    // s0 done: its slot goes to the next step.
    let d = evaluate(
        &dag,
        &outcomes(&dag, &[("s0", Succeeded), ("s1", Queued)]),
        &p,
    );
    assert_eq!(keys(&dag, &d.create), ["s2"]);
    assert_eq!(d.phase, RunPhase::Running);
    // Without maxParallel every ready step is created (and queued) at once.
    let d = evaluate(&dag, &[], &CI);
    assert_eq!(d.create.len(), 4);
    // Some steps ran and the rest are queued: Running, and the message says so.
    let rest = outcomes(
        &dag,
        &[
            ("s0", Succeeded),
            ("s1", Queued),
            ("s2", Queued),
            ("s3", Queued),
        ],
    );
    let d = evaluate(&dag, &rest, &CI);
    assert_eq!(d.phase, RunPhase::Running);
    assert!(d.message.contains("3 queued"), "{}", d.message);
}

/// The ManagedJob seed (jobs-manager-operator README): first-group (parallel), second-group
/// (parallel), third-group (not parallel, so it waits for both groups before it); inside a
/// group a job without `parallel: true` waits for every earlier job of that group.
fn seed_dag() -> Dag {
    let s = ReqSucceeded;
    Dag::build(
        &[
            step("first-group/first-job", Some("first-group"), &[]),
            step(
                "first-group/second-job",
                Some("first-group"),
                &[("first-group/first-job", s)],
            ),
            step(
                "first-group/second-half-job",
                Some("first-group"),
                &[("first-group/first-job", s), ("first-group/second-job", s)],
            ),
            step("second-group/third-job", Some("second-group"), &[]),
            step(
                "second-group/fourth-job",
                Some("second-group"),
                &[("second-group/third-job", s)],
            ),
            step("third-group/fifth-job", Some("third-group"), &[]),
        ],
        &[
            group("first-group", &[]),
            group("second-group", &[]),
            group("third-group", &[("first-group", s), ("second-group", s)]),
        ],
    )
    .unwrap()
}

#[test]
fn managedjob_seed_ordering() {
    let dag = seed_dag();
    let mut o = vec![NotCreated; dag.len()];
    let d = evaluate(&dag, &o, &CI);
    for c in &d.create {
        o[c.index()] = Running;
    }
    let mut waves = vec![keys(&dag, &d.create)];
    // Finish running Jobs in a fixed order and record what each completion starts.
    let mut order = Vec::new();
    for key in [
        "first-group/first-job",
        "second-group/third-job",
        "first-group/second-job",
        "second-group/fourth-job",
        "first-group/second-half-job",
        "third-group/fifth-job",
    ] {
        order.push(key);
        o[id(&dag, key).index()] = Succeeded;
        let created = evaluate(&dag, &o, &CI).create;
        for c in &created {
            o[c.index()] = Running;
        }
        waves.push(keys(&dag, &created));
    }
    let expected: Vec<Vec<&str>> = vec![
        vec!["first-group/first-job", "second-group/third-job"],
        vec!["first-group/second-job"],
        vec!["second-group/fourth-job"],
        vec!["first-group/second-half-job"],
        vec![],
        vec!["third-group/fifth-job"],
        vec![],
    ];
    assert_eq!(waves, expected);
    let d = evaluate(&dag, &o, &CI);
    assert_eq!(d.phase, RunPhase::Succeeded);
    assert_eq!(d.groups, vec![StepPhase::Succeeded; 3]);
    assert_eq!(d.message, "all 6 steps succeeded");
}

#[test]
fn managedjob_seed_failure_in_first_group() {
    let dag = seed_dag();
    let o = outcomes(
        &dag,
        &[
            ("first-group/first-job", Failed),
            ("second-group/third-job", Succeeded),
            ("second-group/fourth-job", Succeeded),
        ],
    );
    let d = evaluate(&dag, &o, &CI);
    for k in [
        "first-group/second-job",
        "first-group/second-half-job",
        "third-group/fifth-job",
    ] {
        assert_eq!(d.steps[id(&dag, k).index()], StepPhase::Aborted, "{k}");
    }
    assert_eq!(
        d.groups,
        vec![StepPhase::Failed, StepPhase::Succeeded, StepPhase::Aborted]
    );
    assert_eq!(d.phase, RunPhase::Failed);
    assert_eq!(
        d.message,
        "step \"first-group/first-job\" failed; 2 succeeded, 3 aborted"
    );
}
