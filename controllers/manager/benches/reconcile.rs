//! Plain benchmark binary (no harness): `cargo bench -p jobsmith-manager --bench reconcile`
//! (`make bench-engine` runs it after the engine's).
//!
//! `reconcile_cpu_10k_ms`: the median CPU time of what one reconcile does for one Job event on a
//! 10,000-step ManagedJob (50 sequential groups x 200 parallel jobs, half done, one wave
//! running), the same steps as `run::reconcile_with` without the API calls, through the run
//! mechanism's own functions where they are pure: the plan from the per-generation cache, each
//! step's Job looked up by name in a kube reflector `Store` (the shared Job cache is one), with
//! one reused key as `run/observe.rs` does, and its memory entry, the scheduler's decision (`evaluate_with`), the roll-up (`report::roll_up_steps`), the
//! memory moved to the new phases, the durable step record (`report::step_record`), the kind's
//! status (`make_status`), and the merge patch against the status last written
//! (`status::status_patch`). `reconcile_cpu_1k_ms` is the same on a 1,000-step run, to show how the cost grows
//! with size. The binary reports; it never fails on time.
//!
//! `watch_event_decode_10k_ms`: the median time of decoding one watch event of that run object
//! (spec and status, as each status write sends it back to the manager's watch) through
//! `cache::guard::Guarded`; `watch_event_decode_10k_kube_guard_ms` is the same through kube's
//! `DeserializeGuard`, which the manager used before, for comparison.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use jobsmith_api::ManagedJob;
use jobsmith_engine::{
    ObservedJob,
    compile::{self, Plan},
    evaluate_with, observe,
};
use jobsmith_manager::cache::guard::Guarded;
use jobsmith_manager::memory::{RunMemo, step_at_mut};
use jobsmith_manager::run::report::{StepsSeen, roll_up_steps, step_record};
use jobsmith_manager::run::{RunKind, StatusParts};
use jobsmith_manager::status::{now, status_patch};

use kube::core::{DeserializeGuard, WatchEvent};
use kube::runtime::{
    reflector::{self, ObjectRef, Store},
    watcher,
};
use serde_json::{Value, json};

fn managedjob(groups: usize, jobs: usize) -> ManagedJob {
    let groups: Vec<Value> = (0..groups)
        .map(|g| {
            let jobs: Vec<Value> = (0..jobs)
                .map(|j| json!({"name": format!("j{j}"), "image": "busybox", "parallel": true}))
                .collect();
            json!({"name": format!("g{g}"), "jobs": jobs})
        })
        .collect();
    let value = json!({
        "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
        "metadata": {"name": "big", "namespace": "bench", "uid": "u-1", "generation": 1},
        "spec": {"groups": groups}
    });
    match serde_json::from_value(value) {
        Ok(mj) => mj,
        Err(error) => {
            eprintln!("benchmark workflow does not decode: {error}");
            std::process::exit(1);
        }
    }
}

fn job(name: &str, done: bool) -> ObservedJob {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "bench",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"template": {"spec": {"containers": []}}}
    });
    if done {
        value["status"] = json!({"conditions": [{"type": "Complete", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:05Z"}],
            "completionTime": "2026-01-01T00:00:05Z"});
    }
    serde_json::from_value(value).unwrap_or_default()
}

/// A reflector store holding the Jobs of `jobs` (name -> finished).
fn store_of(jobs: &HashMap<String, bool>) -> Store<ObservedJob> {
    let (reader, mut writer) = reflector::store();
    for (name, done) in jobs {
        writer.apply_watcher_event(&watcher::Event::Apply(job(name, *done)));
    }
    reader
}

/// One reconcile's CPU work, as `run::reconcile_with` does it (its pure functions where it has
/// them); returns the patch body (if any).
fn reconcile(
    obj: &ManagedJob,
    plan: &Plan,
    cache: &Store<ObservedJob>,
    memo: &mut RunMemo,
    written: &Value,
    phases: &mut [Duration; 5],
) -> Option<Value> {
    let mut mark = Instant::now();
    let mut lap = |phase: usize| {
        let now = Instant::now();
        phases[phase] += now - mark;
        mark = now;
    };
    // Observe: each step's Job by name (a map standing for the shared Job cache) and its memory.
    let mut outcomes = Vec::with_capacity(plan.steps.len());
    let mut jobs = Vec::with_capacity(plan.steps.len());
    let mut lookup = ObjectRef::<ObservedJob>::new("").within("bench");
    memo.align(plan);
    for (i, step) in plan.steps.iter().enumerate() {
        let Some(known) = step_at_mut(&mut memo.steps, i, &step.key) else {
            continue;
        };
        lookup.name.clear();
        lookup.name.push_str(&step.job_name);
        let job = cache.get(&lookup);
        if job.is_some() {
            known.seen = true;
            known.started = true;
        }
        outcomes.push(observe::step_outcome(job.as_deref()));
        jobs.push(job);
    }
    let blockers = vec![None; plan.steps.len()];
    lap(0);
    // Decide.
    let decision = evaluate_with(&plan.dag, &outcomes, &plan.policies, |_| false);
    lap(1);
    // Roll up.
    let previous = obj.status.as_ref().map(|s| &s.run);
    let entries = obj.status.as_ref().map_or(&[][..], |s| s.jobs.as_slice());
    let time = now();
    let seen = StepsSeen {
        plan,
        attempts: &[],
        jobs: &jobs,
        blockers: &blockers,
        decision: &decision,
    };
    let rolled = roll_up_steps(&seen, previous, entries, obj.metadata.generation, &time);
    // Move the memory to the new phases.
    for (i, step) in plan.steps.iter().enumerate() {
        if let Some(known) = step_at_mut(&mut memo.steps, i, &step.key) {
            known.phase = rolled.step_phases[i];
            known.reason = None;
        }
    }
    lap(2);
    // The durable record, the kind's status, the patch against what was written.
    let mut run = rolled.run;
    run.record = Some(step_record(plan, memo, &jobs, &blockers));
    lap(3);
    let status = ManagedJob::make_status(StatusParts {
        run,
        entries: rolled.entries,
        omitted: rolled.omitted,
        plan: Some(plan),
        decision: Some(&decision),
    });
    let desired = serde_json::to_value(&status).ok()?;
    let patch = status_patch(written, &desired, obj.metadata.generation)
        .ok()
        .flatten();
    lap(4);
    patch
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// The reconcile time for one Job event on a `groups` x `jobs` run, half done.
fn measure(groups: usize, jobs: usize) -> Measured {
    let mut obj = managedjob(groups, jobs);
    let plan = match compile::managedjob::plan(&obj) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("benchmark workflow is invalid: {error}");
            std::process::exit(1);
        }
    };
    // Half the groups done, the next group's jobs running.
    let mut cache: HashMap<String, bool> = HashMap::new();
    let per_group = jobs;
    let done_groups = groups / 2;
    for (i, step) in plan.steps.iter().enumerate() {
        let group = i / per_group;
        if group < done_groups {
            cache.insert(step.job_name.clone(), true);
        } else if group == done_groups {
            cache.insert(step.job_name.clone(), false);
        }
    }
    // The status as written before the event (and the object carrying it).
    let mut memo = RunMemo::default();
    let empty = Value::Null;
    let mut ignored = [Duration::ZERO; 5];
    let store = store_of(&cache);
    let first =
        reconcile(&obj, &plan, &store, &mut memo, &empty, &mut ignored).unwrap_or(Value::Null);
    let written = first.clone();
    obj.status = serde_json::from_value(first).ok();

    let running: Vec<String> = plan
        .steps
        .iter()
        .skip(done_groups * per_group)
        .take(per_group)
        .map(|s| s.job_name.clone())
        .collect();
    let mut samples = Vec::new();
    let mut phases = [Duration::ZERO; 5];
    for (k, name) in running.iter().enumerate().take(101) {
        // One event: one running Job of the wave succeeded.
        let mut cache = cache.clone();
        cache.insert(name.clone(), true);
        let store = store_of(&cache);
        let mut memo = memo.clone();
        let start = Instant::now();
        let patch = reconcile(
            &obj,
            &plan,
            &store,
            &mut memo,
            black_box(&written),
            &mut phases,
        );
        samples.push(start.elapsed());
        if k == 0 && patch.is_none() {
            eprintln!("an event produced no status patch");
            std::process::exit(1);
        }
        black_box(patch);
    }
    let count = samples.len().max(1) as f64;
    Measured {
        median_ms: median(samples),
        phase_mean_ms: phases.map(|d| d.as_secs_f64() * 1e3 / count),
    }
}

/// One size's figures: the median of the whole reconcile, and the mean of each phase.
struct Measured {
    median_ms: f64,
    /// observe, decide, roll up, record, status and its diff.
    phase_mean_ms: [f64; 5],
}

const PHASES: [&str; 5] = ["observe", "decide", "rollup", "record", "status_diff"];

/// The median time of decoding `line` 21 times.
fn decode_ms<T: serde::de::DeserializeOwned>(line: &str) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let event = serde_json::from_str::<WatchEvent<T>>(line);
        samples.push(start.elapsed());
        if let Err(error) = &event {
            eprintln!("the benchmark's watch event does not decode: {error}");
            std::process::exit(1);
        }
        drop(black_box(event));
    }
    median(samples)
}

/// A watch event of the 10,000-step run object with the status of [`measure`]'s first reconcile.
fn decode_10k() {
    let mut obj = managedjob(50, 200);
    let Ok(plan) = compile::managedjob::plan(&obj) else {
        eprintln!("benchmark workflow is invalid");
        std::process::exit(1);
    };
    let done: HashMap<String, bool> = plan
        .steps
        .iter()
        .take(5000)
        .map(|s| (s.job_name.clone(), true))
        .collect();
    let mut ignored = [Duration::ZERO; 5];
    let status = reconcile(
        &obj,
        &plan,
        &store_of(&done),
        &mut RunMemo::default(),
        &Value::Null,
        &mut ignored,
    );
    obj.status = status.and_then(|s| serde_json::from_value(s).ok());
    // As the API server writes it: `type` first (`cache::guard` relies on that order).
    let Ok(object) = serde_json::to_string(&obj) else {
        eprintln!("benchmark workflow does not encode");
        std::process::exit(1);
    };
    let line = format!(r#"{{"type":"MODIFIED","object":{object}}}"#);
    let ours = decode_ms::<Guarded<ManagedJob>>(&line);
    let kube = decode_ms::<DeserializeGuard<ManagedJob>>(&line);
    println!("watch_event_10k_kib: {:.0} KiB", line.len() as f64 / 1024.0);
    println!("watch_event_decode_10k_ms: {ours:.3} ms");
    println!("watch_event_decode_10k_kube_guard_ms: {kube:.3} ms");
}

fn main() {
    decode_10k();
    for (size, groups, jobs) in [("1k", 10, 100), ("10k", 50, 200)] {
        let measured = measure(groups, jobs);
        println!("reconcile_cpu_{size}_ms: {:.3} ms", measured.median_ms);
        for (phase, mean) in PHASES.iter().zip(measured.phase_mean_ms) {
            println!("reconcile_cpu_{size}_{phase}_ms: {mean:.3} ms");
        }
    }
}
