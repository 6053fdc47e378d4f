//! ManagedJob job dependencies (SPEC §2): a name resolves to a job of the same group, then to a
//! `group/job` step key, then to a full generated Job name. The compiler looks them up in an
//! index built once per compile; these tests hold it to the rule as written, on generated
//! workflows with many groups and jobs and dependencies across groups.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use jobsmith_api::ManagedJob;
use jobsmith_engine::compile::{Plan, managedjob};
use jobsmith_engine::{Required, Target};
use proptest::prelude::*;
use serde_json::{Value, json};

const UID: &str = "0b6c1d2e-0000-4000-8000-000000000001";

/// One job as generated: its explicit dependencies as written (name, status).
type Jobs = Vec<Vec<(String, Required)>>;

fn status(required: Required) -> &'static str {
    match required {
        Required::Succeeded => "succeeded",
        Required::Failed => "failed",
        Required::Completed => "completed",
    }
}

/// A workflow of `groups` (group `gI` holds jobs `jK`), every group and job parallel so that
/// the explicit dependencies are the only edges.
fn workflow(groups: &[Jobs]) -> ManagedJob {
    let groups: Vec<Value> = groups
        .iter()
        .enumerate()
        .map(|(gi, jobs)| {
            let jobs: Vec<Value> = jobs
                .iter()
                .enumerate()
                .map(|(ji, deps)| {
                    let deps: Vec<Value> = deps
                        .iter()
                        .map(|(name, r)| json!({"name": name, "status": status(*r)}))
                        .collect();
                    json!({"name": format!("j{ji}"), "image": "i", "parallel": true,
                           "dependencies": deps})
                })
                .collect();
            json!({"name": format!("g{gi}"), "parallel": true, "jobs": jobs})
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "jobsmith.dev/v1alpha1",
        "kind": "ManagedJob",
        "metadata": {"name": "wf", "namespace": "ns", "uid": UID},
        "spec": {"groups": groups},
    }))
    .expect("ManagedJob parses")
}

/// The rule as SPEC §2 writes it, by scanning the spec: the step key a dependency `name`
/// written on a job of group `group` names.
fn resolve_by_scan(obj: &ManagedJob, group: &str, name: &str) -> Option<String> {
    let spec = &obj.spec;
    let own = spec.groups.iter().find(|g| g.name == group)?;
    if own.jobs.iter().any(|j| j.name == name) {
        return Some(managedjob::step_key(group, name));
    }
    let all = spec
        .groups
        .iter()
        .flat_map(|g| g.jobs.iter().map(move |j| (g, j)));
    let mut keys = all
        .clone()
        .map(|(g, j)| managedjob::step_key(&g.name, &j.name));
    if name.contains('/') && keys.any(|k| k == name) {
        return Some(name.to_owned());
    }
    all.clone()
        .find(|(g, j)| managedjob::job_name("wf", &g.name, &j.name) == name)
        .map(|(g, j)| managedjob::step_key(&g.name, &j.name))
}

/// What `plan` must give: every step's dependencies (sorted by target), or the message of the
/// first bad dependency in spec order.
fn expected(obj: &ManagedJob) -> Result<BTreeMap<String, Vec<(String, Required)>>, String> {
    let mut out = BTreeMap::new();
    for group in &obj.spec.groups {
        for job in &group.jobs {
            let key = managedjob::step_key(&group.name, &job.name);
            let mut deps = BTreeMap::new();
            for dep in &job.dependencies {
                let target = resolve_by_scan(obj, &group.name, &dep.name)
                    .ok_or_else(|| format!("job \"{key}\": unknown dependency \"{}\"", dep.name))?;
                if target == key {
                    return Err(format!("self dependency \"{key}\""));
                }
                deps.insert(target, Required::from(dep.status));
            }
            out.insert(key, deps.into_iter().collect());
        }
    }
    Ok(out)
}

fn actual(plan: &Plan) -> BTreeMap<String, Vec<(String, Required)>> {
    let dag = &plan.dag;
    dag.steps()
        .map(|id| {
            let mut deps: Vec<(String, Required)> = dag
                .step_deps(id)
                .iter()
                .map(|d| {
                    let target = match d.target {
                        Target::Step(s) => dag.step_key(s).to_owned(),
                        Target::Group(g) => dag.group_key(g).to_owned(),
                    };
                    (target, d.required)
                })
                .collect();
            deps.sort_by(|a, b| a.0.cmp(&b.0));
            (dag.step_key(id).to_owned(), deps)
        })
        .collect()
}

fn compiled(obj: &ManagedJob) -> Result<BTreeMap<String, Vec<(String, Required)>>, String> {
    managedjob::plan(obj)
        .map(|plan| actual(&plan))
        .map_err(|e| e.to_string())
}

/// A dependency name for a job at (`gi`, `ji`) pointing at an earlier job (`tg`, `tj`) in one of
/// the three written forms, or (`form` 3..) a name that is unknown or the job itself.
fn written(form: u8, gi: usize, ji: usize, tg: usize, tj: usize) -> String {
    match form {
        0 if tg == gi => format!("j{tj}"),
        0 | 1 => format!("g{tg}/j{tj}"),
        2 => managedjob::job_name("wf", &format!("g{tg}"), &format!("j{tj}")),
        3 => format!("g{tg}/nope"),
        4 => "nope".to_owned(),
        _ => format!("g{gi}/j{ji}"),
    }
}

fn required() -> impl Strategy<Value = Required> {
    prop_oneof![
        Just(Required::Succeeded),
        Just(Required::Failed),
        Just(Required::Completed)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Dependencies across many groups, written in every form (and sometimes unknown or on the
    /// job itself), compile to exactly the edges or the error the scanning rule gives.
    #[test]
    fn indexed_dependency_lookup_equals_the_scanning_rule(
        shape in proptest::collection::vec(1usize..6, 1..8),
        picks in proptest::collection::vec(
            proptest::collection::vec(
                (any::<proptest::sample::Index>(), 0u8..30, required()),
                0..4,
            ),
            40,
        ),
    ) {
        // Jobs in spec order; a dependency names an earlier job so the graph stays acyclic
        // (forms 3..6 are the bad names, one in ten).
        let order: Vec<(usize, usize)> = shape
            .iter()
            .enumerate()
            .flat_map(|(gi, n)| (0..*n).map(move |ji| (gi, ji)))
            .collect();
        let mut groups: Vec<Jobs> = shape.iter().map(|n| vec![Vec::new(); *n]).collect();
        for (pos, (gi, ji)) in order.iter().copied().enumerate().skip(1) {
            for (ix, form, r) in &picks[pos % picks.len()] {
                let (tg, tj) = order[ix.index(pos)];
                let form = if *form >= 6 { *form % 3 } else { *form };
                groups[gi][ji].push((written(form, gi, ji, tg, tj), *r));
            }
        }
        let obj = workflow(&groups);
        prop_assert_eq!(compiled(&obj), expected(&obj));
    }
}

/// 40 groups of 25 jobs, each job after the first depending on three earlier jobs (one per
/// written form, mostly in other groups): the plan has exactly those edges, and compiling twice
/// gives the same plan.
#[test]
fn a_thousand_jobs_with_cross_group_dependencies_compile_to_the_written_edges() {
    let (groups_n, jobs_n) = (40usize, 25usize);
    let order: Vec<(usize, usize)> = (0..groups_n)
        .flat_map(|gi| (0..jobs_n).map(move |ji| (gi, ji)))
        .collect();
    let mut groups: Vec<Jobs> = vec![vec![Vec::new(); jobs_n]; groups_n];
    for (pos, (gi, ji)) in order.iter().copied().enumerate().skip(1) {
        for (form, step_back, r) in [
            (0u8, 1usize, Required::Succeeded),
            (1, 26, Required::Failed),
            (2, 517, Required::Completed),
        ] {
            let (tg, tj) = order[pos.saturating_sub(step_back)];
            groups[gi][ji].push((written(form, gi, ji, tg, tj), r));
        }
    }
    let obj = workflow(&groups);
    let plan = managedjob::plan(&obj).expect("compiles");
    assert_eq!(plan.steps.len(), groups_n * jobs_n);
    let edges = actual(&plan);
    assert_eq!(Ok(edges.clone()), expected(&obj));
    assert_eq!(edges, actual(&managedjob::plan(&obj).unwrap()));
    // Spot checks of each form: same group by job name, `group/job`, full Job name.
    assert_eq!(
        edges["g3/j7"],
        [
            ("g0/j0".to_owned(), Required::Completed),
            ("g2/j6".to_owned(), Required::Failed),
            ("g3/j6".to_owned(), Required::Succeeded),
        ]
    );
    let far = &edges["g30/j0"];
    assert!(
        far.contains(&("g9/j8".to_owned(), Required::Completed)),
        "{far:?}"
    );
    assert!(
        far.contains(&("g29/j24".to_owned(), Required::Succeeded)),
        "{far:?}"
    );
}
