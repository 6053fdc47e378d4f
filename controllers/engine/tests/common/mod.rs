//! Helpers shared by the scheduler tests.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use jobsmith_engine::{
    Dag, DepSpec, GroupSpec, Required, StepId, StepOutcome, StepPhase, StepSpec, Target,
};

pub fn dep(target: &str, required: Required) -> DepSpec {
    DepSpec {
        target: target.to_owned(),
        required,
    }
}

pub fn step(key: &str, group: Option<&str>, deps: &[(&str, Required)]) -> StepSpec {
    StepSpec {
        key: key.to_owned(),
        group: group.map(str::to_owned),
        deps: deps.iter().map(|(t, r)| dep(t, *r)).collect(),
    }
}

pub fn group(key: &str, deps: &[(&str, Required)]) -> GroupSpec {
    GroupSpec {
        key: key.to_owned(),
        deps: deps.iter().map(|(t, r)| dep(t, *r)).collect(),
    }
}

pub fn id(dag: &Dag, key: &str) -> StepId {
    dag.step_id(key).expect("known step")
}

pub fn keys(dag: &Dag, ids: &[StepId]) -> Vec<String> {
    ids.iter().map(|s| dag.step_key(*s).to_owned()).collect()
}

/// Whether a dependency's required outcome holds, judged from final step phases only.
pub fn requirement_holds(
    dag: &Dag,
    phases: &[StepPhase],
    target: Target,
    required: Required,
) -> bool {
    let members: Vec<StepPhase> = match target {
        Target::Step(s) => vec![phases[s.index()]],
        Target::Group(g) => dag
            .group_members(g)
            .iter()
            .map(|m| phases[m.index()])
            .collect(),
    };
    // Only outcomes of steps that ran count; a skipped step is neutral.
    let all_terminal = members.iter().all(|p| p.is_terminal());
    let any_failed = members.contains(&StepPhase::Failed);
    let all_aborted = !members.is_empty() && members.iter().all(|p| *p == StepPhase::Aborted);
    match required {
        Required::Succeeded => members
            .iter()
            .all(|p| matches!(p, StepPhase::Succeeded | StepPhase::Skipped)),
        Required::Failed => all_terminal && any_failed,
        Required::Completed => all_terminal && !all_aborted,
    }
}

/// A small deterministic generator (xorshift64*), so a proptest seed describes a whole case.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn required(&mut self) -> Required {
        match self.below(10) {
            0..=5 => Required::Succeeded,
            6 | 7 => Required::Failed,
            _ => Required::Completed,
        }
    }
}

/// A random acyclic graph in the shape of the run kinds: blocks that are either a group of
/// steps or a lone step; dependencies point only at earlier steps and at finished groups.
pub fn random_graph(seed: u64, max_steps: usize) -> (Vec<StepSpec>, Vec<GroupSpec>) {
    let mut rng = Rng::new(seed);
    let target_steps = 1 + rng.below(max_steps.max(1));
    let mut steps: Vec<StepSpec> = Vec::new();
    let mut groups: Vec<GroupSpec> = Vec::new();
    let mut closed: Vec<String> = Vec::new();
    let pick =
        |rng: &mut Rng, steps: &[StepSpec], closed: &[String], upto: usize| -> Vec<DepSpec> {
            let count = rng.below(4);
            let mut deps = Vec::new();
            for _ in 0..count {
                let pool = upto + closed.len();
                if pool == 0 {
                    break;
                }
                let k = rng.below(pool);
                let target = if k < upto {
                    steps[k].key.clone()
                } else {
                    closed[k - upto].clone()
                };
                deps.push(dep(&target, rng.required()));
            }
            deps
        };
    while steps.len() < target_steps {
        if rng.chance(50) {
            let gkey = format!("g{}", groups.len());
            let block_start = steps.len();
            let gdeps = pick(&mut rng, &steps, &closed, block_start);
            groups.push(GroupSpec {
                key: gkey.clone(),
                deps: gdeps,
            });
            let size = 1 + rng.below(4);
            for j in 0..size {
                let upto = steps.len();
                let deps = pick(&mut rng, &steps, &closed, upto);
                steps.push(StepSpec {
                    key: format!("{gkey}/s{j}"),
                    group: Some(gkey.clone()),
                    deps,
                });
            }
            closed.push(gkey);
        } else {
            let upto = steps.len();
            let deps = pick(&mut rng, &steps, &closed, upto);
            steps.push(StepSpec {
                key: format!("s{}", steps.len()),
                group: None,
                deps,
            });
        }
    }
    (steps, groups)
}

/// What each step's Job would report if it ran.
pub fn random_fates(seed: u64, n: usize, fail_percent: u64) -> Vec<StepOutcome> {
    let mut rng = Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            if rng.chance(fail_percent) {
                StepOutcome::Failed
            } else {
                StepOutcome::Succeeded
            }
        })
        .collect()
}
