//! Property tests over random graphs and random event orders.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{Rng, random_fates, random_graph, requirement_holds};
use jobsmith_engine::schedule::{FailurePolicy, Policies, RunPhase, StepPhase, evaluate};
use jobsmith_engine::{Dag, GraphError, StepId, StepOutcome, StepSpec};
use proptest::prelude::*;

struct Run {
    steps: Vec<StepPhase>,
    phase: RunPhase,
    creations: usize,
}

/// Drives a run to the end the way the manager does (one full evaluation per event), finishing
/// one running Job at a time in an order chosen by `order_seed`, and checks the invariants
/// after every event.
fn simulate(
    dag: &Dag,
    fates: &[StepOutcome],
    policies: Policies,
    order_seed: u64,
    toggle_suspend: bool,
) -> Run {
    let mut rng = Rng::new(order_seed);
    let mut outcomes = vec![StepOutcome::NotCreated; dag.len()];
    let mut created: HashSet<StepId> = HashSet::new();
    let mut running: Vec<StepId> = Vec::new();
    let limit = policies
        .max_parallel
        .map_or(usize::MAX, |n| n.max(1) as usize);
    let mut current = policies;
    for _round in 0..10 * dag.len() + 10 {
        let decision = evaluate(dag, &outcomes, &current);
        for &s in &decision.create {
            assert!(created.insert(s), "step {} created twice", dag.step_key(s));
            assert!(!current.suspend, "created while suspended");
            for dep in dag.effective_deps(s) {
                assert!(
                    requirement_holds(dag, &decision.steps, dep.target, dep.required),
                    "step {} started before {:?} reached {:?}",
                    dag.step_key(s),
                    dep.target,
                    dep.required
                );
            }
            outcomes[s.index()] = StepOutcome::Running;
            running.push(s);
        }
        assert!(running.len() <= limit, "max_parallel exceeded");
        if toggle_suspend && rng.chance(20) {
            current.suspend = !current.suspend;
            continue;
        }
        if running.is_empty() {
            if current.suspend {
                assert!(matches!(
                    decision.phase,
                    RunPhase::Suspended | RunPhase::Succeeded | RunPhase::Failed
                ));
                current.suspend = false;
                continue;
            }
            break;
        }
        let pick = running.swap_remove(rng.below(running.len()));
        outcomes[pick.index()] = fates[pick.index()];
    }
    let end = evaluate(dag, &outcomes, &current);
    assert!(
        end.create.is_empty(),
        "run did not finish: {:?}",
        end.create
    );
    assert!(running.is_empty(), "run did not finish");
    assert!(end.phase.is_terminal(), "ended in {:?}", end.phase);
    assert!(end.steps.iter().all(|p| p.is_terminal()));
    assert_eq!(end.progress.done, end.progress.total);
    // Only steps that ran decide the result.
    let any_failed = end.steps.contains(&StepPhase::Failed);
    assert_eq!(end.phase == RunPhase::Failed, any_failed);
    Run {
        steps: end.steps,
        phase: end.phase,
        creations: created.len(),
    }
}

fn policies(ff: bool, max_parallel: Option<u32>) -> Policies {
    Policies {
        failure: if ff {
            FailurePolicy::FailFast
        } else {
            FailurePolicy::ContinueIndependent
        },
        suspend: false,
        max_parallel,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_run_finishes_and_the_result_does_not_depend_on_event_order(
        graph_seed in any::<u64>(),
        fate_seed in any::<u64>(),
        order_a in any::<u64>(),
        order_b in any::<u64>(),
        fail_percent in 0u64..40,
        max_parallel in proptest::option::of(0u32..4),
    ) {
        let (steps, groups) = random_graph(graph_seed, 30);
        let dag = Dag::build(&steps, &groups).expect("generated graphs are valid");
        let fates = random_fates(fate_seed, dag.len(), fail_percent);
        let ci_a = simulate(&dag, &fates, policies(false, max_parallel), order_a, false);
        let ci_b = simulate(&dag, &fates, policies(false, None), order_b, false);
        prop_assert_eq!(&ci_a.steps, &ci_b.steps);
        prop_assert_eq!(ci_a.phase, ci_b.phase);
        prop_assert_eq!(ci_a.creations, ci_a.steps.iter().filter(|p| matches!(p, StepPhase::Succeeded | StepPhase::Failed)).count());
        // FailFast may run less, but the run's result is the same.
        let ff_a = simulate(&dag, &fates, policies(true, max_parallel), order_a, false);
        let ff_b = simulate(&dag, &fates, policies(true, None), order_b, false);
        prop_assert_eq!(ff_a.phase, ci_a.phase);
        prop_assert_eq!(ff_b.phase, ci_a.phase);
        // Suspending and resuming at random points changes nothing in the end.
        let suspended = simulate(&dag, &fates, policies(false, max_parallel), order_b, true);
        prop_assert_eq!(&suspended.steps, &ci_a.steps);
    }

    #[test]
    fn any_observed_state_evaluates_without_panic_and_jobs_win(
        graph_seed in any::<u64>(),
        state in proptest::collection::vec(0u8..6, 0..25),
        ff in any::<bool>(),
        max_parallel in proptest::option::of(1u32..4),
    ) {
        let (steps, groups) = random_graph(graph_seed, 20);
        let dag = Dag::build(&steps, &groups).expect("valid");
        let outcomes: Vec<StepOutcome> = state.iter().map(|w| [StepOutcome::NotCreated, StepOutcome::Running, StepOutcome::Succeeded, StepOutcome::Failed, StepOutcome::Suspended, StepOutcome::Queued][*w as usize % 6]).collect();
        let p = policies(ff, max_parallel);
        let d = evaluate(&dag, &outcomes, &p);
        prop_assert_eq!(&d, &evaluate(&dag, &outcomes, &p));
        for (i, o) in outcomes.iter().enumerate().take(dag.len()) {
            let expected = match o {
                StepOutcome::Running => Some(StepPhase::Running),
                StepOutcome::Succeeded => Some(StepPhase::Succeeded),
                StepOutcome::Failed => Some(StepPhase::Failed),
                // A suspended Job waits and is never aborted or created again.
                StepOutcome::Suspended | StepOutcome::Queued => Some(StepPhase::Pending),
                StepOutcome::NotCreated => None,
            };
            if let Some(e) = expected {
                prop_assert_eq!(d.steps[i], e);
            }
        }
        for s in &d.create {
            prop_assert_eq!(outcomes.get(s.index()).copied().unwrap_or_default(), StepOutcome::NotCreated);
        }
        // maxParallel bounds the running and queued Jobs together with the new ones.
        if let Some(limit) = max_parallel {
            let held = outcomes
                .iter()
                .take(dag.len())
                .filter(|o| matches!(o, StepOutcome::Running | StepOutcome::Queued))
                .count();
            prop_assert!(d.create.is_empty() || held + d.create.len() <= limit as usize);
        }
    }

    #[test]
    fn arbitrary_graphs_never_panic_and_errors_name_the_problem(
        n in 0usize..12,
        raw in proptest::collection::vec((0usize..14, 0usize..14), 0..30),
    ) {
        let mut steps: Vec<StepSpec> = (0..n).map(|i| StepSpec { key: format!("s{i}"), group: None, deps: vec![] }).collect();
        for (from, to) in raw {
            if let Some(s) = steps.get_mut(from) {
                s.deps.push(common::dep(&format!("s{to}"), jobsmith_engine::Required::Succeeded));
            }
        }
        match Dag::build(&steps, &[]) {
            Ok(dag) => {
                // A valid graph's order respects every dependency.
                let pos: Vec<usize> = {
                    let mut p = vec![0; dag.len()];
                    for (i, s) in dag.topological_order().iter().enumerate() { p[s.index()] = i; }
                    p
                };
                for s in dag.steps() {
                    for d in dag.step_deps(s) {
                        if let jobsmith_engine::Target::Step(t) = d.target { prop_assert!(pos[t.index()] < pos[s.index()]); }
                    }
                }
            }
            Err(GraphError::Cycle { path }) => {
                prop_assert!(path.len() >= 3);
                prop_assert_eq!(path.first(), path.last());
                // Each hop is a real dependency.
                for w in path.windows(2) {
                    let from = steps.iter().find(|s| s.key == w[0]).expect("step");
                    prop_assert!(from.deps.iter().any(|d| d.target == w[1]), "{} does not depend on {}", w[0], w[1]);
                }
            }
            Err(GraphError::UnknownDependency { target, .. }) => prop_assert!(!steps.iter().any(|s| s.key == target)),
            Err(GraphError::SelfDependency(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
