//! The run's deadline in the scheduler (docs/lifecycle.md "Deadline of the whole run"): past it
//! no new step starts, steps that did not start are aborted, running ones are named to stop, and
//! the run fails with the deadline as its reason; a run every step of which finished anyway
//! keeps its own outcome. Plus the roll-up's reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{group, id, keys, step};
use jobsmith_api::{condition_types as types, reasons};
use jobsmith_engine::schedule::{
    FailurePolicy, Policies, RunPhase, StepPhase, evaluate, evaluate_at,
};
use jobsmith_engine::status::rollup::{self, RunInput, StepView};
use jobsmith_engine::{Dag, Required, StepOutcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use StepOutcome::{Failed, NotCreated, Running, Succeeded, Suspended};

const CI: Policies = Policies {
    failure: FailurePolicy::ContinueIndependent,
    suspend: false,
    max_parallel: None,
};

fn outcomes(dag: &Dag, set: &[(&str, StepOutcome)]) -> Vec<StepOutcome> {
    let mut o = vec![NotCreated; dag.len()];
    for (k, v) in set {
        o[id(dag, k).index()] = *v;
    }
    o
}

/// a -> b -> c, and x beside them.
fn chain() -> Dag {
    Dag::build(
        &[
            step("a", None, &[]),
            step("b", None, &[("a", Required::Succeeded)]),
            step("c", None, &[("b", Required::Succeeded)]),
            step("x", None, &[]),
        ],
        &[],
    )
    .unwrap()
}

#[test]
fn past_the_deadline_nothing_starts_running_steps_are_stopped_and_the_rest_aborted() {
    let dag = chain();
    let seen = outcomes(&dag, &[("a", Succeeded), ("x", Running)]);
    // Before the deadline b would start.
    let open = evaluate_at(&dag, &seen, &CI, false, |_| false);
    assert_eq!(keys(&dag, &open.create), ["b"]);
    assert!(!open.deadline_exceeded);
    assert!(open.stop.is_empty());

    let cut = evaluate_at(&dag, &seen, &CI, true, |_| false);
    assert!(cut.create.is_empty());
    assert_eq!(keys(&dag, &cut.stop), ["x"]);
    assert_eq!(cut.steps[id(&dag, "b").index()], StepPhase::Aborted);
    assert_eq!(cut.steps[id(&dag, "c").index()], StepPhase::Aborted);
    assert_eq!(cut.steps[id(&dag, "x").index()], StepPhase::Running);
    assert_eq!(cut.phase, RunPhase::Running);
    assert!(cut.deadline_exceeded);
    assert!(
        cut.message.starts_with("deadline exceeded"),
        "{}",
        cut.message
    );
    assert!(
        cut.message.contains("stopping 1 running Jobs"),
        "{}",
        cut.message
    );

    // x's Job was stopped and failed: the run is Failed.
    let seen = outcomes(&dag, &[("a", Succeeded), ("x", Failed)]);
    let done = evaluate_at(&dag, &seen, &CI, true, |_| false);
    assert_eq!(done.phase, RunPhase::Failed);
    assert!(done.deadline_exceeded);
    assert!(done.stop.is_empty());
    assert_eq!(done.progress.to_string(), "4/4");
}

#[test]
fn steps_cut_short_fail_the_run_even_when_every_step_that_ran_succeeded() {
    let dag = chain();
    let seen = outcomes(&dag, &[("a", Succeeded), ("x", Succeeded)]);
    let d = evaluate_at(&dag, &seen, &CI, true, |_| false);
    assert_eq!(d.phase, RunPhase::Failed);
    assert!(d.deadline_exceeded);
    assert_eq!(d.steps[id(&dag, "b").index()], StepPhase::Aborted);
}

#[test]
fn a_run_whose_steps_all_finished_keeps_its_own_outcome() {
    let dag = chain();
    let all = outcomes(
        &dag,
        &[
            ("a", Succeeded),
            ("b", Succeeded),
            ("c", Succeeded),
            ("x", Succeeded),
        ],
    );
    let d = evaluate_at(&dag, &all, &CI, true, |_| false);
    assert_eq!(d.phase, RunPhase::Succeeded);
    assert!(!d.deadline_exceeded);
    assert!(d.stop.is_empty());
}

#[test]
fn a_suspended_job_past_the_deadline_is_aborted_and_stopped() {
    let dag = chain();
    let seen = outcomes(
        &dag,
        &[("a", Succeeded), ("b", Suspended), ("x", Succeeded)],
    );
    let d = evaluate_at(&dag, &seen, &CI, true, |_| false);
    assert_eq!(keys(&dag, &d.stop), ["b"]);
    assert_eq!(d.steps[id(&dag, "b").index()], StepPhase::Aborted);
    assert_eq!(d.phase, RunPhase::Failed);
}

#[test]
fn groups_count_the_steps_the_deadline_aborted() {
    let dag = Dag::build(
        &[step("g/a", Some("g"), &[]), step("g/b", Some("g"), &[])],
        &[group("g", &[])],
    )
    .unwrap();
    let seen = outcomes(&dag, &[("g/a", Succeeded)]);
    let policies = Policies {
        max_parallel: Some(1),
        ..CI
    };
    let d = evaluate_at(&dag, &seen, &policies, true, |_| false);
    assert_eq!(d.groups, [StepPhase::Failed]);
    assert_eq!(d.phase, RunPhase::Failed);
}

#[test]
fn the_deadline_reason_is_on_every_condition() {
    let dag = chain();
    let seen = outcomes(&dag, &[("a", Succeeded), ("x", Failed)]);
    let decision = evaluate_at(&dag, &seen, &CI, true, |_| false);
    let names = ["a", "b", "c", "x"];
    let views: Vec<StepView<'_>> = names
        .iter()
        .map(|k| StepView {
            key: k,
            job_name: k,
            attempt: 1,
            job: None,
            blocker: None,
            previous: None,
            exit: false,
        })
        .collect();
    let now = Time(Timestamp::from_second(1_000).unwrap());
    let rolled = rollup::rollup(&RunInput {
        decision: &decision,
        steps: &views,
        previous: None,
        generation: Some(1),
        now: &now,
    });
    assert_eq!(rolled.reason, reasons::DEADLINE_EXCEEDED);
    for c in &rolled.run.conditions {
        assert_eq!(c.reason, reasons::DEADLINE_EXCEEDED, "{}", c.type_);
    }
    let stalled = rolled
        .run
        .conditions
        .iter()
        .find(|c| c.type_ == types::STALLED)
        .unwrap();
    assert_eq!(stalled.status, "True");
    assert_eq!(rolled.run.phase, Some(jobsmith_api::Phase::Failed));
}

proptest! {
    /// Past the deadline nothing is ever offered for creation, every step is terminal or
    /// running (and then named to stop), and a run that is final is Failed unless every step
    /// succeeded or was skipped.
    #[test]
    fn past_the_deadline_nothing_starts(raw in proptest::collection::vec(0u8..5, 4)) {
        let dag = chain();
        let seen: Vec<StepOutcome> = raw
            .iter()
            .map(|r| match r {
                0 => NotCreated,
                1 => Running,
                2 => Succeeded,
                3 => Failed,
                _ => Suspended,
            })
            .collect();
        let d = evaluate_at(&dag, &seen, &CI, true, |_| false);
        prop_assert!(d.create.is_empty());
        for (i, phase) in d.steps.iter().enumerate() {
            let stopped = d.stop.iter().any(|s| s.index() == i);
            prop_assert!(phase.is_terminal() || (*phase == StepPhase::Running && stopped));
        }
        let all_ok = d.steps.iter().all(|p| matches!(p, StepPhase::Succeeded | StepPhase::Skipped));
        if d.phase.is_terminal() {
            prop_assert_eq!(d.phase == RunPhase::Succeeded, all_ok);
        }
        // Without the deadline the same world decides as `evaluate` does.
        prop_assert_eq!(evaluate_at(&dag, &seen, &CI, false, |_| false), evaluate(&dag, &seen, &CI));
    }
}
