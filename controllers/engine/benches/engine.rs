//! Plain benchmark binary (no harness): `cargo bench -p jobsmith-engine --bench engine`.
//!
//! Prints exactly two lines on stdout:
//! - `build_validate_10k_ms`: median time to build and validate a 10,000-step graph;
//! - `decision_10k_ms`: median time of one scheduling decision as the manager makes it (a full
//!   `evaluate` after one step finished) in a 10,000-step workflow that is half done.
//!
//! Targets: 20 ms and 1 ms. The binary reports, it never fails on time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jobsmith_engine::{
    Dag, DepSpec, GroupSpec, Policies, Required, StepId, StepOutcome, StepSpec, evaluate,
};

const GROUPS: usize = 100;
const JOBS_PER_GROUP: usize = 100;

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// A ManagedJob-shaped workflow: 100 groups of 100 jobs. Every third group is not parallel
/// (waits for every group before it, as SPEC §2 orders), the others wait for the previous group
/// only; inside a group each job depends on up to 3 earlier jobs of its group, one in ten also on
/// a job of an earlier group, and one in twenty with `completed`.
fn workflow() -> (Vec<StepSpec>, Vec<GroupSpec>) {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut steps = Vec::with_capacity(GROUPS * JOBS_PER_GROUP);
    let mut groups = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let key = format!("group-{g}");
        let deps = match g {
            0 => Vec::new(),
            _ if g % 3 == 0 => (0..g)
                .map(|h| dep(format!("group-{h}"), Required::Succeeded))
                .collect(),
            _ => vec![dep(format!("group-{}", g - 1), Required::Succeeded)],
        };
        groups.push(GroupSpec {
            key: key.clone(),
            deps,
        });
        for j in 0..JOBS_PER_GROUP {
            let mut deps = Vec::new();
            if j > 0 {
                for _ in 0..rng.below(4) {
                    let required = if rng.below(20) == 0 {
                        Required::Completed
                    } else {
                        Required::Succeeded
                    };
                    deps.push(dep(format!("{key}/job-{}", rng.below(j)), required));
                }
            }
            if g > 0 && rng.below(10) == 0 {
                let h = rng.below(g);
                deps.push(dep(
                    format!("group-{h}/job-{}", rng.below(JOBS_PER_GROUP)),
                    Required::Succeeded,
                ));
            }
            deps.sort_by(|a, b| a.target.cmp(&b.target));
            deps.dedup_by(|a, b| a.target == b.target);
            steps.push(StepSpec {
                key: format!("{key}/job-{j}"),
                group: Some(key.clone()),
                deps,
            });
        }
    }
    (steps, groups)
}

fn dep(target: String, required: Required) -> DepSpec {
    DepSpec { target, required }
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let (steps, groups) = workflow();

    let mut builds = Vec::new();
    let mut dag = None;
    for _ in 0..15 {
        let start = Instant::now();
        let built = Dag::build(black_box(&steps), black_box(&groups));
        builds.push(start.elapsed());
        dag = built.ok();
    }
    let Some(dag) = dag else {
        eprintln!("benchmark workflow is invalid");
        std::process::exit(1);
    };
    println!("build_validate_10k_ms: {:.3} ms", median(builds));
    eprintln!(
        "graph: {} steps, {} groups, {} step dependencies",
        dag.len(),
        dag.group_count(),
        dag.steps().map(|s| dag.step_deps(s).len()).sum::<usize>()
    );

    // Run the workflow until half the steps are done, finishing Jobs in creation order.
    let policies = Policies::default();
    let total = dag.len();
    let mut outcomes = vec![StepOutcome::NotCreated; total];
    let mut running: std::collections::VecDeque<StepId> = std::collections::VecDeque::new();
    let mut done = 0usize;
    let start_wave = |outcomes: &mut Vec<StepOutcome>,
                      running: &mut std::collections::VecDeque<StepId>| {
        for s in evaluate(&dag, outcomes, &policies).create {
            outcomes[s.index()] = StepOutcome::Running;
            running.push_back(s);
        }
    };
    start_wave(&mut outcomes, &mut running);
    while done < total / 2 {
        // Finish a whole wave before deciding again (one evaluate per wave keeps set-up short).
        let wave: Vec<StepId> = running.drain(..).collect();
        if wave.is_empty() {
            break;
        }
        for s in wave {
            outcomes[s.index()] = StepOutcome::Succeeded;
            done += 1;
        }
        start_wave(&mut outcomes, &mut running);
    }
    let candidates: Vec<StepId> = running.iter().copied().collect();
    let mut rng = Rng(0xDEC1_5105);
    let mut decisions = Vec::new();
    let mut created = 0usize;
    for _ in 0..101 {
        let Some(&step) = candidates.get(rng.below(candidates.len())) else {
            break;
        };
        let mut observed = outcomes.clone();
        observed[step.index()] = StepOutcome::Succeeded;
        let start = Instant::now();
        let decision = evaluate(&dag, black_box(&observed), &policies);
        decisions.push(start.elapsed());
        created += decision.create.len();
        black_box(decision);
    }
    let worst = decisions.iter().max().copied().unwrap_or_default();
    eprintln!(
        "decision_10k: {} samples, worst {:.4} ms, {} Jobs created in total",
        decisions.len(),
        worst.as_secs_f64() * 1e3,
        created
    );
    println!("decision_10k_ms: {:.4} ms", median(decisions));
}
