//! Step outputs at plan and build time (docs/integrations.md "Step outputs"): which env
//! variables of a step read which output, the validation of those references (the producer
//! exists, declares the output and is a dependency, direct or transitive), and where the
//! variable sits in the built Job until the run mechanism sets its value.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{JobFlow, ManagedJob};
use jobsmith_engine::compile::outputs::{OutputInput, set_input_values};
use jobsmith_engine::compile::{InvalidSpec, jobflow, managedjob};
use k8s_openapi::api::batch::v1::Job;

const UID: &str = "0b6c1d2e-0000-4000-8000-000000000001";

fn mj(spec: &str) -> ManagedJob {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {{name: wf, namespace: ns, uid: {UID}}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("ManagedJob parses")
}

fn jf(spec: &str) -> JobFlow {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: flow, namespace: ns, uid: {UID}}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("JobFlow parses")
}

fn invalid_message(result: Result<jobsmith_engine::Plan, InvalidSpec>) -> String {
    match result {
        Err(InvalidSpec::Outputs(message)) => message,
        other => panic!("expected an outputs InvalidSpec, got {other:?}"),
    }
}

fn env(job: &Job) -> Vec<(String, Option<String>)> {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

fn input(env: &str, step: &str, output: &str) -> OutputInput {
    OutputInput {
        env: env.into(),
        step: step.into(),
        output: output.into(),
    }
}

const PRODUCER: &str = "  - name: build
    jobs:
    - name: compile
      image: busybox
      outputs: [{name: version, jsonKey: version}, {name: files}]
";

#[test]
fn a_later_group_reads_an_output_at_every_params_level_most_specific_first() {
    let obj = mj(&format!(
        "  params:
    env: [{{name: WF, value: wf}}]
  groups:
{PRODUCER}  - name: test
    params:
      env: [{{name: VERSION, valueFrom: {{stepOutput: {{step: build/compile, name: version}}}}}}]
    jobs:
    - name: unit
      image: busybox
      params:
        env:
        - {{name: FILES, valueFrom: {{stepOutput: {{step: wf-build-compile, name: files}}}}}}
        - {{name: OWN, value: x}}
"
    ));
    let plan = managedjob::plan(&obj).unwrap();
    let id = plan.step_id("test/unit").unwrap();
    let step = plan.step(id).unwrap();
    assert_eq!(
        step.inputs,
        vec![
            input("FILES", "build/compile", "files"),
            input("VERSION", "build/compile", "version")
        ]
    );
    assert_eq!(
        plan.step(plan.step_id("build/compile").unwrap())
            .unwrap()
            .outputs
            .len(),
        2
    );
    let mut job = managedjob::build_job(&obj, &plan, id, None).unwrap();
    // The variables keep their merged place without a value until the values are set.
    assert_eq!(
        env(&job),
        vec![
            ("FILES".into(), None),
            ("OWN".into(), Some("x".into())),
            ("VERSION".into(), None),
            ("WF".into(), Some("wf".into()))
        ]
    );
    set_input_values(
        &mut job,
        &[
            ("VERSION".into(), "1.2.3".into()),
            ("FILES".into(), "42".into()),
        ],
    );
    assert_eq!(env(&job)[0], ("FILES".into(), Some("42".into())));
    assert_eq!(env(&job)[2], ("VERSION".into(), Some("1.2.3".into())));
}

#[test]
fn a_job_of_the_same_group_resolves_by_its_short_name() {
    let obj = mj("  groups:
  - name: build
    jobs:
    - {name: compile, image: busybox, outputs: [{name: version}]}
    - name: test
      image: busybox
      params:
        env: [{name: V, valueFrom: {stepOutput: {step: compile, name: version}}}]
");
    let plan = managedjob::plan(&obj).unwrap();
    let step = plan.step(plan.step_id("build/test").unwrap()).unwrap();
    assert_eq!(step.inputs, vec![input("V", "build/compile", "version")]);
}

#[test]
fn reading_a_step_that_is_not_a_dependency_is_invalid() {
    // A parallel group does not wait for the producer's group.
    let parallel = mj(&format!(
        "  groups:
{PRODUCER}  - name: test
    parallel: true
    jobs:
    - name: unit
      image: busybox
      params:
        env: [{{name: V, valueFrom: {{stepOutput: {{step: build/compile, name: version}}}}}}]
"
    ));
    let message = invalid_message(managedjob::plan(&parallel));
    assert_eq!(
        message,
        "step \"test/unit\": env V: reads an output of \"build/compile\", which is not one of its dependencies (direct or transitive)"
    );
    // A workflow-level entry reaches the producer itself.
    let workflow_level = mj(&format!(
        "  params:
    env: [{{name: V, valueFrom: {{stepOutput: {{step: build/compile, name: version}}}}}}]
  groups:
{PRODUCER}"
    ));
    assert!(invalid_message(managedjob::plan(&workflow_level)).contains("step \"build/compile\""));
}

#[test]
fn a_group_dependency_makes_the_producer_upstream() {
    let obj = mj(&format!(
        "  groups:
{PRODUCER}  - name: other
    parallel: true
    jobs: [{{name: x, image: busybox}}]
  - name: test
    parallel: true
    dependencies: [{{name: build, status: completed}}]
    jobs:
    - name: unit
      image: busybox
      params:
        env: [{{name: V, valueFrom: {{stepOutput: {{step: build/compile, name: version}}}}}}]
"
    ));
    managedjob::plan(&obj).unwrap();
}

#[test]
fn unknown_steps_and_undeclared_outputs_are_invalid() {
    let unknown = jf("  flows:
  - name: a
    env: [{name: V, valueFrom: {stepOutput: {step: nope, name: version}}}]
    jobTemplate: {template: {spec: {containers: [{name: main, image: busybox}]}}}
");
    assert_eq!(
        invalid_message(jobflow::plan(&unknown)),
        "step \"a\": env V: unknown step \"nope\""
    );
    let undeclared = jf("  flows:
  - name: build
    jobTemplate: {template: {spec: {containers: [{name: main, image: busybox}]}}}
  - name: test
    dependencies: [build]
    env: [{name: V, valueFrom: {stepOutput: {step: build, name: version}}}]
    jobTemplate: {template: {spec: {containers: [{name: main, image: busybox}]}}}
");
    assert_eq!(
        invalid_message(jobflow::plan(&undeclared)),
        "step \"test\": env V: step \"build\" declares no output \"version\""
    );
    let unknown_mj = mj("  groups:
  - name: g
    jobs:
    - name: a
      image: busybox
      params:
        env: [{name: V, valueFrom: {stepOutput: {step: g/zzz, name: v}}}]
");
    assert!(invalid_message(managedjob::plan(&unknown_mj)).contains("unknown step \"g/zzz\""));
}

#[test]
fn a_flow_reads_transitively_and_its_env_replaces_the_containers_own() {
    let obj = jf("  globalParams:
    env: [{name: VERSION, value: global}, {name: G, value: g}]
  flows:
  - name: build
    outputs: [{name: version}]
    jobTemplate: {template: {spec: {containers: [{name: main, image: busybox}]}}}
  - name: test
    dependencies: [build]
    jobTemplate: {template: {spec: {containers: [{name: main, image: busybox}]}}}
  - name: deploy
    dependencies: [test]
    env:
    - {name: VERSION, valueFrom: {stepOutput: {step: build, name: version}}}
    - {name: PLAIN, value: p}
    jobTemplate:
      template:
        spec:
          initContainers: [{name: init, image: busybox}]
          containers: [{name: main, image: busybox, env: [{name: A, value: a}, {name: VERSION, value: own}]}]
");
    let plan = jobflow::plan(&obj).unwrap();
    let id = plan.step_id("deploy").unwrap();
    assert_eq!(
        plan.step(id).unwrap().inputs,
        vec![input("VERSION", "build", "version")]
    );
    let mut job = jobflow::build_job(&obj, &plan, id, None).unwrap();
    set_input_values(&mut job, &[("VERSION".into(), "2.0.0".into())]);
    assert_eq!(
        env(&job),
        vec![
            ("A".into(), Some("a".into())),
            ("VERSION".into(), Some("2.0.0".into())),
            ("PLAIN".into(), Some("p".into())),
            ("G".into(), Some("g".into()))
        ]
    );
    let pod = job.spec.unwrap().template.spec.unwrap();
    let init = pod.init_containers.unwrap();
    assert!(
        init[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "VERSION" && e.value.as_deref() == Some("2.0.0"))
    );
}

#[test]
fn at_most_100_steps_declare_outputs() {
    let flows: String = (0..101)
        .map(|i| {
            format!(
                "  - name: f{i}\n    outputs: [{{name: v}}]\n    jobTemplate: {{template: {{spec: {{containers: [{{name: main, image: busybox}}]}}}}}}\n"
            )
        })
        .collect();
    let message = invalid_message(jobflow::plan(&jf(&format!("  flows:\n{flows}"))));
    assert_eq!(message, "101 steps declare outputs (at most 100)");
}
