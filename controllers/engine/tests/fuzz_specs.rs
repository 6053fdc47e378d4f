//! Bad input never panics the engine: arbitrary JSON, shaped loosely like each kind's spec
//! (real field names, values of the right shape or of any shape, names from a small pool so
//! that dependencies sometimes resolve and sometimes collide, Unicode, control characters,
//! huge numbers), goes through what the manager does with an object: decoding into the API
//! type, compiling (`plan`), the scheduler (`evaluate`, then `evaluate_with` after random
//! outcome events), building every step's Job (with and without a JobTemplate), and the status
//! roll-up. Any `Result` is fine; a panic fails. Raw bytes go through decoding too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob, RunStatus};
use jobsmith_engine::compile::{Plan, daemonjob, jobflow, jobrun, managedjob};
use jobsmith_engine::status::rollup::{self, Blocker, RunInput, StepView};
use jobsmith_engine::{
    BuildError, ObservedJob, StepId, StepOutcome, evaluate, evaluate_with, job_outcome,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------- value strategies

/// Strings users (and fuzzers) write: names from a small pool (so references resolve or
/// collide), Unicode, control characters, separators, long runs, empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "a", "b", "c", "g", "h", "a-b", "b-c", "g/a", "g/b", "h/a", "wf-g-a", "main", "nope",
            "", " ", "-", "A", "kwok-node-0", "kwok-node-1", "t", "Always", "Never",
            "IfNotPresent", "OnFailure", "succeeded", "failed", "completed", "FailFast",
            "ContinueIndependent", "command", "args", "env",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z0-9-]{0,70}",
        1 => "\\PC{0,40}",
        1 => ".{0,20}",
        1 => (0usize..3000).prop_map(|n| "x".repeat(n)),
        1 => prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        24 => (-3i64..5).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Any JSON value (bounded depth and size); object keys are mostly real field names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A field name: mostly one the specs really have.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "name", "image", "command", "args", "env", "value", "valueFrom", "template", "spec",
            "metadata", "labels", "annotations", "containers", "volumes", "emptyDir", "nfsx",
            "configMap", "items", "nodeName", "nodeSelector", "tolerations", "affinity",
            "restartPolicy", "backoffLimit", "dependencies", "status", "jobs", "groups", "flows",
            "params", "parallel", "templateRef", "jobTemplate", "jobTemplateRef", "resources",
            "limits", "requests", "cpu", "volumeMount", "volumeMounts", "mountPath",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

/// `good` most of the time, any JSON otherwise (a wrong type where the spec wants `good`).
/// Rare enough that a whole spec often decodes: a spec has dozens of such fields.
fn or_any(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![60 => good, 1 => any_json()].boxed()
}

/// One field of an [`object`]: its key, its value and how often it is present.
type Field = (&'static str, BoxedStrategy<Value>, f64);

/// A field present half of the time.
fn opt(key: &'static str, value: BoxedStrategy<Value>) -> Field {
    (key, value, 0.5)
}

/// A field the API type requires: nearly always present.
fn req(key: &'static str, value: BoxedStrategy<Value>) -> Field {
    (key, value, 0.97)
}

/// A field present with probability `p`.
fn often(key: &'static str, value: BoxedStrategy<Value>, p: f64) -> Field {
    (key, value, p)
}

/// A field that is nearly always wrong when present (kept rare so whole specs still decode).
fn rare(key: &'static str, value: BoxedStrategy<Value>) -> Field {
    (key, value, 0.03)
}

/// An object of `fields` (each present with its probability) plus, rarely, a random key.
fn object(fields: Vec<Field>) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, s, p)| prop::option::weighted(p, s.prop_map(move |v| (k.to_owned(), v))).boxed())
        .collect();
    (parts, prop::option::weighted(0.05, (key(), any_json())))
        .prop_map(|(parts, extra)| {
            let mut map: Map<String, Value> = parts.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                map.entry(k).or_insert(v);
            }
            Value::Object(map)
        })
        .boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    or_any(prop::collection::vec(item, 0..max).prop_map(Value::Array))
}

/// A list that is seldom empty (groups, jobs, flows, containers).
fn items(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop_oneof![
        12 => prop::collection::vec(item, 1..max).prop_map(Value::Array),
        1 => Just(Value::Array(Vec::new())),
        1 => any_json(),
    ]
    .boxed()
}

fn string() -> BoxedStrategy<Value> {
    or_any(text().prop_map(Value::String))
}

/// One of `values` (an enum field), rarely anything else.
fn one_of(values: &[&'static str]) -> BoxedStrategy<Value> {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    prop_oneof![
        20 => prop::sample::select(values).prop_map(Value::String),
        1 => text().prop_map(Value::String),
        1 => any_json(),
    ]
    .boxed()
}

fn strings() -> BoxedStrategy<Value> {
    list(text().prop_map(Value::String).boxed(), 4)
}

fn boolean() -> BoxedStrategy<Value> {
    or_any(any::<bool>().prop_map(Value::Bool))
}

fn string_map() -> BoxedStrategy<Value> {
    or_any(
        prop::collection::btree_map(text(), text(), 0..3).prop_map(|m| {
            Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        }),
    )
}

fn env() -> BoxedStrategy<Value> {
    list(
        object(vec![
            req("name", string()),
            opt("value", string()),
            rare("valueFrom", any_json().boxed()),
        ]),
        3,
    )
}

fn volumes() -> BoxedStrategy<Value> {
    let volume = object(vec![
        req("name", string()),
        opt("emptyDir", or_any(Just(json!({})))),
        rare("nfsx", any_json().boxed()),
        opt(
            "configMap",
            object(vec![
                opt("name", string()),
                rare("items", any_json().boxed()),
            ]),
        ),
    ]);
    list(volume, 3)
}

fn mounts() -> BoxedStrategy<Value> {
    list(
        object(vec![
            req("name", string()),
            req("mountPath", string()),
            opt("subPath", string()),
        ]),
        3,
    )
}

fn resources() -> BoxedStrategy<Value> {
    object(vec![
        opt("limits", string_map()),
        opt("requests", string_map()),
    ])
}

fn container() -> BoxedStrategy<Value> {
    object(vec![
        req("name", string()),
        often("image", string(), 0.9),
        opt("command", strings()),
        opt("args", strings()),
        opt("env", env()),
        opt("volumeMounts", mounts()),
        opt("resources", resources()),
    ])
}

fn pod_template() -> BoxedStrategy<Value> {
    object(vec![
        opt(
            "metadata",
            object(vec![
                opt("labels", string_map()),
                opt("annotations", string_map()),
            ]),
        ),
        req(
            "spec",
            object(vec![
                req("containers", items(container(), 3)),
                opt("volumes", volumes()),
                opt("nodeName", string()),
                opt("nodeSelector", string_map()),
                opt("restartPolicy", one_of(&["Never", "OnFailure", "Always"])),
                rare("tolerations", any_json().boxed()),
                rare("affinity", any_json().boxed()),
            ]),
        ),
    ])
}

/// The top-level JobSpec fields.
fn job_spec_fields() -> Vec<Field> {
    vec![
        req("template", pod_template()),
        opt("backoffLimit", or_any(number())),
        opt("parallelism", or_any(number())),
        opt("activeDeadlineSeconds", or_any(number())),
        opt("ttlSecondsAfterFinished", or_any(number())),
    ]
}

fn job_spec() -> BoxedStrategy<Value> {
    object(job_spec_fields())
}

fn params() -> BoxedStrategy<Value> {
    object(vec![
        opt("env", env()),
        opt("volumes", volumes()),
        opt("volumeMount", mounts()),
        opt("volumeMounts", mounts()),
        opt("serviceAccount", string()),
        opt("restartPolicy", one_of(&["OnFailure", "Never"])),
        opt(
            "imagePullPolicy",
            one_of(&["Always", "IfNotPresent", "Never", "Sometimes"]),
        ),
        rare("imagePullPolicy", any_json().boxed()),
        opt("imagePullSecrets", strings()),
        opt("labels", string_map()),
        opt("annotations", string_map()),
        opt("resources", resources()),
    ])
}

fn dependencies() -> BoxedStrategy<Value> {
    list(
        object(vec![
            req("name", string()),
            opt("status", one_of(&["succeeded", "failed", "completed"])),
        ]),
        4,
    )
}

fn run_controls() -> Vec<Field> {
    vec![
        opt("suspend", boolean()),
        opt("maxParallel", or_any(number())),
        opt(
            "failurePolicy",
            one_of(&["FailFast", "ContinueIndependent"]),
        ),
    ]
}

fn managedjob_spec() -> BoxedStrategy<Value> {
    let job = object(vec![
        req("name", string()),
        often("image", string(), 0.8),
        opt("command", strings()),
        opt("args", strings()),
        opt("parallel", boolean()),
        often("params", params(), 0.15),
        often("dependencies", dependencies(), 0.25),
        often("templateRef", string(), 0.25),
    ]);
    let group = object(vec![
        req("name", string()),
        opt("parallel", boolean()),
        often("params", params(), 0.2),
        often("dependencies", dependencies(), 0.25),
        req("jobs", items(job, 5)),
    ]);
    let mut fields = run_controls();
    fields.extend([
        opt("retries", or_any(number())),
        often("params", params(), 0.3),
        req("groups", items(group, 4)),
    ]);
    object(fields)
}

fn jobflow_spec() -> BoxedStrategy<Value> {
    let flow = object(vec![
        req("name", string()),
        often("dependencies", strings(), 0.25),
        often("jobTemplate", job_spec(), 0.8),
        often("jobTemplateRef", string(), 0.2),
        opt("shareVolumeMounts", mounts()),
    ]);
    let mut fields = run_controls();
    fields.extend([
        req("flows", items(flow, 5)),
        opt("shareVolumes", volumes()),
        opt("globalParams", global_params()),
    ]);
    object(fields)
}

fn global_params() -> BoxedStrategy<Value> {
    object(vec![
        opt("env", env()),
        opt("labels", string_map()),
        opt("annotations", string_map()),
        opt("nodeName", string()),
    ])
}

fn daemonjob_spec() -> BoxedStrategy<Value> {
    let mut fields = job_spec_fields();
    fields.extend(run_controls());
    fields.extend([
        opt("templateRef", string()),
        opt("globalParams", global_params()),
        opt("excludeNodeList", string()),
        opt("excludeNodes", strings()),
    ]);
    object(fields)
}

fn jobtemplate_spec() -> BoxedStrategy<Value> {
    let mut fields = job_spec_fields();
    fields.extend([
        opt("jobTemplate", job_spec()),
        opt("overridable", list(one_of(&["command", "args", "env"]), 3)),
    ]);
    object(fields)
}

fn jobrun_spec() -> BoxedStrategy<Value> {
    object(vec![
        req("templateRef", string()),
        opt("container", string()),
        opt("command", strings()),
        opt("args", strings()),
        opt("env", env()),
    ])
}

/// A whole object of `kind` around `spec`, with metadata of arbitrary names.
fn wrap(kind: &str, name: String, spec: Value) -> Value {
    json!({
        "apiVersion": "jobsmith.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "0b6c1d2e-0000-4000-8000-000000000001",
            "generation": 3,
            "labels": {"team": "a", "app.kubernetes.io/instance": "argo"},
        },
        "spec": spec,
    })
}

fn node() -> BoxedStrategy<Value> {
    let condition = object(vec![opt("type", string()), opt("status", string())]);
    let taint = object(vec![
        opt("key", string()),
        opt("value", string()),
        opt("effect", string()),
    ]);
    (
        text(),
        object(vec![
            opt("labels", string_map()),
        ]),
        object(vec![opt("unschedulable", boolean()), opt("taints", list(taint, 2))]),
        object(vec![opt("conditions", list(condition, 2))]),
    )
        .prop_map(|(name, meta, spec, status)| {
            let mut meta = meta;
            if let Some(m) = meta.as_object_mut() {
                m.insert("name".to_owned(), Value::String(name));
            }
            json!({"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status})
        })
        .boxed()
}

fn outcome() -> impl Strategy<Value = StepOutcome> {
    prop::sample::select(vec![
        StepOutcome::NotCreated,
        StepOutcome::Running,
        StepOutcome::Succeeded,
        StepOutcome::Failed,
    ])
}

/// What a run of the scheduler is fed besides the spec.
#[derive(Clone, Debug)]
struct Run {
    outcomes: Vec<StepOutcome>,
    events: Vec<(usize, StepOutcome)>,
    blockers: Vec<u8>,
    previous: Option<Value>,
    job_status: Value,
}

fn run_inputs() -> impl Strategy<Value = Run> {
    (
        prop::collection::vec(outcome(), 0..12),
        prop::collection::vec((0usize..16, outcome()), 0..12),
        prop::collection::vec(0u8..8, 0..12),
        prop::option::of(any_json()),
        any_json(),
    )
        .prop_map(|(outcomes, events, blockers, previous, job_status)| Run {
            outcomes,
            events,
            blockers,
            previous,
            job_status,
        })
}

// ---------------------------------------------------------------- the pipeline

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap())
}

fn blocker(code: u8, key: &str) -> Option<Blocker> {
    match code {
        0 => Some(Blocker::TemplateNotFound {
            template: key.to_owned(),
        }),
        1 => Some(Blocker::TemplateInvalid {
            template: key.to_owned(),
            message: key.repeat(3),
        }),
        2 => Some(Blocker::NameConflict),
        3 => Some(Blocker::OverrideNotAllowed {
            field: key.to_owned(),
        }),
        4 => Some(Blocker::Invalid {
            message: key.to_owned(),
        }),
        5 => Some(Blocker::NodeLost {
            node: key.to_owned(),
        }),
        _ => None,
    }
}

/// The scheduler, both ways, then the roll-up with the built Jobs, random Job statuses and
/// random blockers. `build` builds step `i`'s Job.
fn drive(plan: &Plan, run: &Run, build: impl Fn(StepId) -> Result<Job, BuildError>) {
    let n = plan.steps.len();
    let mut outcomes = run.outcomes.clone();
    outcomes.resize(n, StepOutcome::NotCreated);
    let decision = evaluate(&plan.dag, &outcomes, &plan.policies);
    assert_eq!(decision.steps.len(), n);

    let mut evolved = outcomes.clone();
    for (i, outcome) in &run.events {
        // Out-of-range ids are part of the input too (ignored, as the manager never makes them).
        if let Some(slot) = evolved.get_mut(*i) {
            *slot = *outcome;
        }
        let _ = evaluate_with(&plan.dag, &evolved, &plan.policies, |s| s.index() == *i);
    }

    let mut jobs: Vec<Option<ObservedJob>> = Vec::with_capacity(n);
    for i in 0..n {
        let step = StepId(u32::try_from(i).unwrap());
        let job = match build(step) {
            Ok(job) => {
                let mut job = ObservedJob::from(job);
                job.status = serde_json::from_value(run.job_status.clone()).ok();
                let _ = job_outcome(&job);
                Some(job)
            }
            Err(error) => {
                let _ = (error.to_string(), error.reason(), error.is_waiting());
                None
            }
        };
        jobs.push(job);
    }
    let blockers: Vec<Option<Blocker>> = (0..n)
        .map(|i| {
            blocker(
                run.blockers.get(i).copied().unwrap_or(7),
                &plan.steps[i].key,
            )
        })
        .collect();
    let views: Vec<StepView<'_>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepView {
            key: &step.key,
            job_name: &step.job_name,
            attempt: 1,
            job: jobs[i].as_ref(),
            blocker: blockers[i].as_ref(),
            previous: None,
            exit: step.exit,
        })
        .collect();
    let previous: Option<RunStatus> = run
        .previous
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let rolled = rollup::rollup(&RunInput {
        decision: &decision,
        steps: &views,
        previous: previous.as_ref(),
        generation: Some(3),
        now: &now(),
    });
    assert_eq!(rolled.step_phases.len(), n);
    let _ = plan.template_refs();
}

fn invalid(message: &str) {
    let status = rollup::invalid_spec(None, message, Some(3), &now());
    assert!(status.message.is_some());
}

/// A JobTemplate for the steps that use one (when the arbitrary value decodes as one).
fn template(value: &Value) -> Option<JobTemplate> {
    let mut t: JobTemplate = serde_json::from_value(value.clone()).ok()?;
    let _ = jobsmith_engine::build::template::template_job_spec(&t);
    let _ = jobsmith_engine::build::template::check_usable(t.spec.effective_job_spec(), "spec");
    // Make it the one every step refers to half of the time.
    t.metadata.name = Some("t".to_owned());
    Some(t)
}

fn managedjob(value: Value, run: &Run, template: Option<&JobTemplate>) {
    let Ok(obj) = serde_json::from_value::<ManagedJob>(value) else {
        return;
    };
    match managedjob::plan(&obj) {
        Ok(plan) => {
            for step in &plan.steps {
                let _ = managedjob::job_params(&obj, &step.key);
            }
            drive(&plan, run, |s| {
                managedjob::build_job(&obj, &plan, s, template)
            });
        }
        Err(e) => {
            let _ = e.category();
            invalid(&e.to_string());
        }
    }
}

fn jobflow(value: Value, run: &Run, template: Option<&JobTemplate>) {
    let Ok(obj) = serde_json::from_value::<JobFlow>(value) else {
        return;
    };
    match jobflow::plan(&obj) {
        Ok(plan) => drive(&plan, run, |s| jobflow::build_job(&obj, &plan, s, template)),
        Err(e) => invalid(&e.to_string()),
    }
}

fn daemonjob(value: Value, nodes: &[Value], run: &Run, template: Option<&JobTemplate>) {
    let Ok(obj) = serde_json::from_value::<DaemonJob>(value) else {
        return;
    };
    let nodes: Vec<Node> = nodes
        .iter()
        .filter_map(|n| serde_json::from_value(n.clone()).ok())
        .collect();
    let known: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .take(1)
        .collect();
    let _ = daemonjob::eligible_nodes(&obj, template, &nodes);
    match daemonjob::plan_with_template(&obj, template, &nodes, &known) {
        Ok(plan) => drive(&plan, run, |s| {
            daemonjob::build_job(&obj, &plan, s, template)
        }),
        Err(e) => invalid(&e.to_string()),
    }
}

fn jobrun(value: Value, run: &Run, template: Option<&JobTemplate>) {
    let Ok(obj) = serde_json::from_value::<JobRun>(value) else {
        return;
    };
    match jobrun::plan(&obj) {
        Ok(plan) => drive(&plan, run, |s| jobrun::build_job(&obj, &plan, s, template)),
        Err(e) => invalid(&e.to_string()),
    }
}

fn any_template() -> impl Strategy<Value = Value> {
    (text(), jobtemplate_spec()).prop_map(|(name, spec)| wrap("JobTemplate", name, spec))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_managedjobs_never_panic(
        name in text(), spec in managedjob_spec(), run in run_inputs(), t in any_template(),
    ) {
        managedjob(wrap("ManagedJob", name, spec), &run, template(&t).as_ref());
    }

    #[test]
    fn arbitrary_jobflows_never_panic(
        name in text(), spec in jobflow_spec(), run in run_inputs(), t in any_template(),
    ) {
        jobflow(wrap("JobFlow", name, spec), &run, template(&t).as_ref());
    }

    #[test]
    fn arbitrary_daemonjobs_never_panic(
        name in text(),
        spec in daemonjob_spec(),
        nodes in prop::collection::vec(node(), 0..4),
        run in run_inputs(),
        t in any_template(),
    ) {
        daemonjob(wrap("DaemonJob", name, spec), &nodes, &run, template(&t).as_ref());
    }

    #[test]
    fn arbitrary_jobruns_and_templates_never_panic(
        name in text(), spec in jobrun_spec(), run in run_inputs(), t in any_template(),
    ) {
        jobrun(wrap("JobRun", name, spec), &run, template(&t).as_ref());
    }

    #[test]
    fn arbitrary_specs_of_any_shape_never_panic(spec in any_json(), run in run_inputs()) {
        for kind in ["ManagedJob", "JobFlow", "DaemonJob", "JobRun", "JobTemplate"] {
            let value = wrap(kind, "x".to_owned(), spec.clone());
            managedjob(value.clone(), &run, None);
            jobflow(value.clone(), &run, None);
            daemonjob(value.clone(), &[], &run, None);
            jobrun(value.clone(), &run, None);
            let _ = template(&value);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<ManagedJob>(&bytes);
        let _ = serde_json::from_slice::<JobFlow>(&bytes);
        let _ = serde_json::from_slice::<DaemonJob>(&bytes);
        let _ = serde_json::from_slice::<JobTemplate>(&bytes);
        let _ = serde_json::from_slice::<JobRun>(&bytes);
    }
}

/// How far `tries` generated specs of one kind get: decoded, compiled, at least one Job built.
fn reach<K: serde::de::DeserializeOwned>(
    kind: &str,
    spec: BoxedStrategy<Value>,
    compile: impl Fn(&K) -> Option<Plan>,
    build: impl Fn(&K, &Plan, StepId) -> Result<Job, BuildError>,
) -> (u32, u32, u32) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut decoded, mut planned, mut built) = (0, 0, 0);
    for _ in 0..400 {
        let spec = spec.new_tree(&mut runner).unwrap().current();
        let Ok(obj) = serde_json::from_value::<K>(wrap(kind, "x".to_owned(), spec)) else {
            continue;
        };
        decoded += 1;
        let Some(plan) = compile(&obj) else { continue };
        planned += 1;
        if (0..plan.steps.len()).any(|i| build(&obj, &plan, StepId(i as u32)).is_ok()) {
            built += 1;
        }
    }
    eprintln!(
        "{kind}: of 400 generated specs {decoded} decoded, {planned} compiled, {built} built a Job"
    );
    (decoded, planned, built)
}

/// The generators do reach the engine: a good share of the arbitrary specs decode, compile and
/// build Jobs (a fuzz test whose every input fails decoding would test nothing).
#[test]
fn the_generated_specs_reach_compile_and_build() {
    let results = [
        reach::<ManagedJob>(
            "ManagedJob",
            managedjob_spec(),
            |o| managedjob::plan(o).ok(),
            |o, p, s| managedjob::build_job(o, p, s, None),
        ),
        reach::<JobFlow>(
            "JobFlow",
            jobflow_spec(),
            |o| jobflow::plan(o).ok(),
            |o, p, s| jobflow::build_job(o, p, s, None),
        ),
        reach::<DaemonJob>(
            "DaemonJob",
            daemonjob_spec(),
            |o| daemonjob::plan(o, &[], &["kwok-node-0".to_owned()]).ok(),
            |o, p, s| daemonjob::build_job(o, p, s, None),
        ),
    ];
    for (decoded, planned, built) in results {
        assert!(decoded >= 80 && planned >= 30 && built >= 10, "{results:?}");
    }
}
