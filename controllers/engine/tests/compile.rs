//! The compile interface (docs/architecture.md): plans and complete Jobs of the four run kinds,
//! one test per rule of SPEC §1-6 that lives in the engine.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};
use jobsmith_engine::build::naming::{is_dns1123_label, is_label_value};
use jobsmith_engine::compile::{
    BuildError, InvalidSpec, Plan, daemonjob, jobflow, jobrun, managedjob,
};
use jobsmith_engine::schedule::{FailurePolicy, StepPhase, evaluate};
use jobsmith_engine::{Required, StepId, StepOutcome, Target};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PodSpec};
use proptest::prelude::*;

const UID: &str = "0b6c1d2e-0000-4000-8000-000000000001";

fn mj(spec: &str) -> ManagedJob {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata:\n  name: wf\n  namespace: ns\n  uid: {UID}\n  labels:\n    team: a\n    app.kubernetes.io/instance: argo-app\n  annotations:\n    argocd.argoproj.io/tracking-id: x\n    note: kept\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("ManagedJob parses")
}

fn jf(spec: &str) -> JobFlow {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata:\n  name: flow\n  namespace: ns\n  uid: {UID}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("JobFlow parses")
}

fn dj(spec: &str) -> DaemonJob {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: DaemonJob\nmetadata:\n  name: dj\n  namespace: ns\n  uid: {UID}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("DaemonJob parses")
}

fn jr(spec: &str) -> JobRun {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobRun\nmetadata:\n  name: run-1\n  namespace: ns\n  uid: {UID}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("JobRun parses")
}

fn jt(name: &str, spec: &str) -> JobTemplate {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobTemplate\nmetadata:\n  name: {name}\n  namespace: ns\n  generation: 4\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("JobTemplate parses")
}

const TEMPLATE_SPEC: &str = "  template:
    metadata:
      labels: {jobsmith.dev/e2e-outcome: fail}
      annotations: {jobsmith.dev/e2e-duration: '500'}
    spec:
      restartPolicy: OnFailure
      containers:
        - {name: main, image: busybox, command: [echo], args: [template]}
        - {name: side, image: busybox}
";

fn deps(plan: &Plan, key: &str) -> Vec<(String, Required)> {
    let dag = &plan.dag;
    let id = dag.step_id(key).unwrap();
    dag.step_deps(id)
        .iter()
        .map(|d| (target_key(plan, d.target), d.required))
        .collect()
}

fn group_deps(plan: &Plan, key: &str) -> Vec<String> {
    let dag = &plan.dag;
    let id = dag.group_id(key).unwrap();
    dag.group_deps(id)
        .iter()
        .map(|d| target_key(plan, d.target))
        .collect()
}

fn target_key(plan: &Plan, target: Target) -> String {
    match target {
        Target::Step(s) => plan.dag.step_key(s).to_owned(),
        Target::Group(g) => plan.dag.group_key(g).to_owned(),
    }
}

fn labels(job: &Job) -> &std::collections::BTreeMap<String, String> {
    job.metadata.labels.as_ref().unwrap()
}

fn pod_labels(job: &Job) -> &std::collections::BTreeMap<String, String> {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap()
}

fn pod(job: &Job) -> &PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn build_mj(
    obj: &ManagedJob,
    key: &str,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let plan = managedjob::plan(obj).unwrap();
    let id = plan.step_id(key).unwrap();
    managedjob::build_job(obj, &plan, id, template)
}

// ---------------------------------------------------------------- ManagedJob: ordering (§2)

const SEED_GROUPS: &str = "  groups:
    - name: first-group
      parallel: true
      jobs:
        - {name: first-job, image: busybox}
        - {name: second-job, image: busybox}
        - {name: second-half-job, image: busybox}
    - name: second-group
      parallel: true
      jobs:
        - {name: third-job, image: busybox, parallel: true}
        - {name: fourth-job, image: busybox, parallel: false}
    - name: third-group
      parallel: false
      jobs:
        - {name: fifth-job, image: busybox, parallel: true}
";

#[test]
fn managedjob_seed_ordering() {
    let obj = mj(SEED_GROUPS);
    let plan = managedjob::plan(&obj).unwrap();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "first-group/first-job",
            "first-group/second-job",
            "first-group/second-half-job",
            "second-group/third-job",
            "second-group/fourth-job",
            "third-group/fifth-job"
        ]
    );
    assert_eq!(plan.steps[0].job_name, "wf-first-group-first-job");
    assert_eq!(plan.steps[0].group.as_deref(), Some("first-group"));
    assert_eq!(plan.steps[0].template_ref, None);
    assert_eq!(plan.policies.failure, FailurePolicy::ContinueIndependent);
    // Jobs: sequential by default inside a group (a parallel group does not change that).
    assert!(deps(&plan, "first-group/first-job").is_empty());
    assert_eq!(
        deps(&plan, "first-group/second-job"),
        [("first-group/first-job".to_owned(), Required::Succeeded)]
    );
    assert!(!deps(&plan, "first-group/second-half-job").is_empty());
    assert!(deps(&plan, "second-group/third-job").is_empty());
    assert_eq!(
        deps(&plan, "second-group/fourth-job"),
        [("second-group/third-job".to_owned(), Required::Succeeded)]
    );
    // Groups: parallel groups get nothing, a sequential group waits for every earlier group.
    assert!(group_deps(&plan, "first-group").is_empty());
    assert!(group_deps(&plan, "second-group").is_empty());
    assert_eq!(
        group_deps(&plan, "third-group"),
        ["first-group", "second-group"]
    );
    // Scheduling: first wave is first-job and third-job.
    let d = evaluate(&plan.dag, &[], &plan.policies);
    let created: Vec<&str> = d.create.iter().map(|s| plan.dag.step_key(*s)).collect();
    assert_eq!(created, ["first-group/first-job", "second-group/third-job"]);
}

#[test]
fn a_sequential_job_waits_for_every_earlier_job_of_its_group() {
    let obj = mj(SEED_GROUPS);
    let plan = managedjob::plan(&obj).unwrap();
    let n = plan.dag.len();
    let id = |k: &str| plan.step_id(k).unwrap().index();
    // first-job failed: second-job and second-half-job never start.
    let mut outcomes = vec![StepOutcome::NotCreated; n];
    outcomes[id("first-group/first-job")] = StepOutcome::Failed;
    outcomes[id("second-group/third-job")] = StepOutcome::Succeeded;
    outcomes[id("second-group/fourth-job")] = StepOutcome::Succeeded;
    let d = evaluate(&plan.dag, &outcomes, &plan.policies);
    assert_eq!(d.steps[id("first-group/second-job")], StepPhase::Aborted);
    assert_eq!(
        d.steps[id("first-group/second-half-job")],
        StepPhase::Aborted
    );
    assert_eq!(d.steps[id("third-group/fifth-job")], StepPhase::Aborted);
    // first-job and second-job succeeded: second-half-job starts; third-group still waits.
    let mut outcomes = vec![StepOutcome::NotCreated; n];
    outcomes[id("first-group/first-job")] = StepOutcome::Succeeded;
    outcomes[id("first-group/second-job")] = StepOutcome::Succeeded;
    let d = evaluate(&plan.dag, &outcomes, &plan.policies);
    let created: Vec<&str> = d.create.iter().map(|s| plan.dag.step_key(*s)).collect();
    assert_eq!(
        created,
        ["first-group/second-half-job", "second-group/third-job"]
    );
}

#[test]
fn parallel_jobs_and_explicit_dependencies() {
    let obj = mj("  groups:
    - name: g
      jobs:
        - {name: a, image: busybox}
        - {name: b, image: busybox, parallel: true}
        - {name: c, image: busybox, dependencies: [{name: a, status: failed}]}
        - {name: d, image: busybox, parallel: true, dependencies: [{name: g/b, status: completed}, {name: wf-h-x}]}
    - name: h
      parallel: true
      jobs:
        - {name: x, image: busybox, parallel: true}
    - name: k
      parallel: true
      dependencies: [{name: g, status: completed}]
      jobs:
        - {name: y, image: busybox}
");
    let plan = managedjob::plan(&obj).unwrap();
    assert!(deps(&plan, "g/b").is_empty(), "parallel job");
    // c: explicit `failed` on a replaces the automatic `succeeded`; b is still automatic.
    assert_eq!(
        deps(&plan, "g/c"),
        [
            ("g/a".to_owned(), Required::Failed),
            ("g/b".to_owned(), Required::Succeeded)
        ]
    );
    // d: `group/job` and the full generated Job name.
    assert_eq!(
        deps(&plan, "g/d"),
        [
            ("g/b".to_owned(), Required::Completed),
            ("h/x".to_owned(), Required::Succeeded)
        ]
    );
    assert!(group_deps(&plan, "h").is_empty(), "parallel group");
    assert_eq!(group_deps(&plan, "k"), ["g"]);
    let k = plan.dag.group_id("k").unwrap();
    assert_eq!(plan.dag.group_deps(k)[0].required, Required::Completed);
}

#[test]
fn managedjob_run_controls_become_policies() {
    let obj = mj(
        "  failurePolicy: FailFast\n  suspend: true\n  maxParallel: 2\n  groups:\n    - {name: g, jobs: [{name: a, image: busybox}]}\n",
    );
    let plan = managedjob::plan(&obj).unwrap();
    assert_eq!(plan.policies.failure, FailurePolicy::FailFast);
    assert!(plan.policies.suspend);
    assert_eq!(plan.policies.max_parallel, Some(2));
}

// ---------------------------------------------------------------- invalid specs (§1)

fn invalid(spec: &str) -> String {
    managedjob::plan(&mj(spec))
        .expect_err("invalid")
        .to_string()
}

#[test]
fn invalid_managedjobs_name_the_problem() {
    assert_eq!(
        invalid("  groups:\n    - {name: g, jobs: [{name: x, image: i}, {name: x, image: i}]}\n"),
        "duplicate job name \"x\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: x, image: i}]}\n    - {name: g, jobs: [{name: y, image: i}]}\n"
        ),
        "duplicate group name \"g\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: x, image: i, dependencies: [{name: nope}]}]}\n"
        ),
        "job \"g/x\": unknown dependency \"nope\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, dependencies: [{name: nope}], jobs: [{name: x, image: i}]}\n"
        ),
        "group \"g\": unknown dependency \"nope\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: x, image: i, dependencies: [{name: x}]}]}\n"
        ),
        "self dependency \"g/x\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, dependencies: [{name: g}], jobs: [{name: x, image: i}]}\n"
        ),
        "self dependency \"g\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: a, image: i, parallel: true, dependencies: [{name: b}]}, {name: b, image: i, parallel: true, dependencies: [{name: a}]}]}\n"
        ),
        "dependency cycle: g/a -> g/b -> g/a"
    );
    let err = managedjob::plan(&mj("  groups:\n    - {name: a, parallel: true, dependencies: [{name: b}], jobs: [{name: x, image: i}]}\n    - {name: b, parallel: true, dependencies: [{name: a}], jobs: [{name: y, image: i}]}\n"))
        .expect_err("group cycle");
    assert!(err.to_string().starts_with("dependency cycle: "), "{err}");
    assert_eq!(err.category(), "dependency_cycle");
    assert_eq!(err.reason(), "InvalidSpec");
    assert_eq!(
        invalid(
            "  groups:\n    - {name: a-b, jobs: [{name: c, image: i}]}\n    - {name: a, jobs: [{name: b-c, image: i}]}\n"
        ),
        "\"a-b/c\" and \"a/b-c\" both get the Job name \"wf-a-b-c\""
    );
    assert_eq!(
        invalid("  groups:\n    - {name: g, jobs: [{name: x}]}\n"),
        "job \"g/x\": needs an image or a templateRef"
    );
    assert!(
        invalid("  params: {imagePullPolicy: [Always, Never]}\n  groups:\n    - {name: g, jobs: [{name: x, image: i}]}\n")
            .starts_with("spec.params: invalid imagePullPolicy")
    );
}

#[test]
fn invalid_jobflows_name_the_problem() {
    let f = |spec: &str| jobflow::plan(&jf(spec)).expect_err("invalid").to_string();
    let tpl = "jobTemplate: {template: {spec: {containers: [{name: c, image: i}]}}}";
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, {tpl}}}\n    - {{name: a, {tpl}}}\n"
        )),
        "duplicate flow name \"a\""
    );
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, dependencies: [nope], {tpl}}}\n"
        )),
        "flow \"a\": unknown dependency \"nope\""
    );
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, dependencies: [a], {tpl}}}\n"
        )),
        "self dependency \"a\""
    );
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, dependencies: [b], {tpl}}}\n    - {{name: b, dependencies: [a], {tpl}}}\n"
        )),
        "dependency cycle: a -> b -> a"
    );
    assert_eq!(
        f("  flows:\n    - {name: a}\n"),
        "flow \"a\": set exactly one of jobTemplate and jobTemplateRef"
    );
}

// ---------------------------------------------------------------- ManagedJob: the Job (§1, §2)

#[test]
fn managedjob_job_has_name_labels_owner_and_retries() {
    let obj = mj(
        "  retries: 0\n  params: {labels: {jobsmith.dev/e2e-outcome: fail}, annotations: {jobsmith.dev/e2e-duration: '2000'}}\n  groups:\n    - {name: g, jobs: [{name: j, image: busybox, command: [sh, -c], args: [exit 0]}]}\n",
    );
    let job = build_mj(&obj, "g/j", None).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("wf-g-j"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
    for l in [labels(&job), pod_labels(&job)] {
        assert_eq!(l["app.kubernetes.io/managed-by"], "jobsmith");
        assert_eq!(l["jobsmith.dev/owner-kind"], "ManagedJob");
        assert_eq!(l["jobsmith.dev/owner-name"], "wf");
        assert_eq!(l["jobsmith.dev/group"], "g");
        assert_eq!(l["jobsmith.dev/job"], "j");
        assert_eq!(l["jobsmith.dev/e2e-outcome"], "fail");
    }
    // Parent labels/annotations are copied, GitOps tracking keys are not.
    assert_eq!(labels(&job)["team"], "a");
    assert!(!labels(&job).contains_key("app.kubernetes.io/instance"));
    assert!(!pod_labels(&job).contains_key("team"));
    let ann = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["note"], "kept");
    assert!(!ann.contains_key("argocd.argoproj.io/tracking-id"));
    let pod_ann = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        pod_ann.annotations.as_ref().unwrap()["jobsmith.dev/e2e-duration"],
        "2000"
    );
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.api_version, "jobsmith.dev/v1alpha1");
    assert_eq!(owner.kind, "ManagedJob");
    assert_eq!(owner.name, "wf");
    assert_eq!(owner.uid, UID);
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(0), "retries 0 means 0");
    let pod = pod(&job);
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    let c = &pod.containers[0];
    assert_eq!(c.name, "j");
    assert_eq!(c.image.as_deref(), Some("busybox"));
    assert_eq!(c.command.as_deref().unwrap(), ["sh", "-c"]);
    assert_eq!(c.args.as_deref().unwrap(), ["exit 0"]);
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
}

#[test]
fn retries_default_to_one() {
    let obj = mj("  groups:\n    - {name: g, jobs: [{name: j, image: busybox}]}\n");
    let job = build_mj(&obj, "g/j", None).unwrap();
    assert_eq!(job.spec.unwrap().backoff_limit, Some(1));
}

#[test]
fn a_missing_uid_is_an_error_not_a_panic() {
    let mut obj = mj("  groups:\n    - {name: g, jobs: [{name: j, image: busybox}]}\n");
    obj.metadata.uid = None;
    let err = build_mj(&obj, "g/j", None).expect_err("no uid");
    assert!(matches!(err, BuildError::Invalid(_)));
    assert_eq!(err.reason(), "InvalidSpec");
    assert_eq!(err.to_string(), "ManagedJob \"wf\" has no metadata.uid");
}

#[test]
fn managedjob_template_ref_waits_for_the_template_then_uses_it() {
    let obj = mj(
        "  retries: 2\n  params: {env: [{name: P, value: params}]}\n  groups:\n    - {name: g, jobs: [{name: j, templateRef: tpl, args: [job]}]}\n",
    );
    let plan = managedjob::plan(&obj).unwrap();
    assert_eq!(plan.steps[0].template_ref.as_deref(), Some("tpl"));
    assert_eq!(plan.template_refs(), ["tpl"]);
    let err = build_mj(&obj, "g/j", None).expect_err("no template yet");
    assert_eq!(err, BuildError::TemplateNotFound { name: "tpl".into() });
    assert_eq!(err.reason(), "TemplateNotFound");
    assert!(err.is_waiting());

    let template = jt("tpl", TEMPLATE_SPEC);
    let job = build_mj(&obj, "g/j", Some(&template)).unwrap();
    let ann = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["jobsmith.dev/template"], "tpl");
    assert_eq!(ann["jobsmith.dev/template-generation"], "4");
    assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(2));
    let pod = pod(&job);
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(pod.containers[0].command.as_deref().unwrap(), ["echo"]);
    assert_eq!(pod.containers[0].args.as_deref().unwrap(), ["job"]);
    for c in &pod.containers {
        assert_eq!(c.env.as_ref().unwrap()[0].name, "P");
    }
    assert_eq!(pod_labels(&job)["jobsmith.dev/e2e-outcome"], "fail");
    assert_eq!(pod_labels(&job)["jobsmith.dev/job"], "j");

    let empty = jt("tpl", "  template: {spec: {containers: []}}\n");
    let err = build_mj(&obj, "g/j", Some(&empty)).expect_err("unusable");
    assert!(matches!(err, BuildError::TemplateInvalid { .. }));
    assert_eq!(err.reason(), "TemplateInvalid");
}

#[test]
fn long_names_are_shortened_consistently() {
    let long = "g".repeat(60);
    let obj = mj(&format!(
        "  groups:\n    - {{name: {long}, jobs: [{{name: {long}, image: i}}]}}\n"
    ));
    let plan = managedjob::plan(&obj).unwrap();
    let name = &plan.steps[0].job_name;
    assert!(is_dns1123_label(name));
    assert_eq!(name.len(), 63);
    let job = managedjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(job.metadata.name.as_ref(), Some(name));
    for value in labels(&job).values() {
        assert!(is_label_value(value), "{value}");
    }
    assert_eq!(plan.step_by_job_name(name), Some(StepId(0)));
}

// ---------------------------------------------------------------- JobFlow (§3)

const FLOWS: &str = "  globalParams:
    nodeName: node-1
    env: [{name: FOO, value: global}, {name: QUE, value: global}]
    labels: {k: global, k2: global}
    annotations: {a: global}
  shareVolumes:
    - {name: shared, emptyDir: {}}
  flows:
    - name: a
      shareVolumeMounts: [{name: shared, mountPath: /shared}]
      jobTemplate:
        backoffLimit: 3
        template:
          metadata: {labels: {k: own, jobsmith.dev/e2e-outcome: fail}}
          spec:
            restartPolicy: OnFailure
            containers:
              - {name: one, image: i, env: [{name: FOO, value: own}]}
              - {name: two, image: i}
    - name: b
      dependencies: [a]
      jobTemplateRef: tpl
    - name: c
      dependencies: [a, b]
      jobTemplate: {template: {spec: {containers: [{name: c, image: i}]}}}
";

#[test]
fn jobflow_plan() {
    let obj = jf(FLOWS);
    let plan = jobflow::plan(&obj).unwrap();
    assert_eq!(
        plan.policies.failure,
        FailurePolicy::FailFast,
        "JobFlow default"
    );
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(plan.steps[1].job_name, "flow-b");
    assert_eq!(plan.steps[1].template_ref.as_deref(), Some("tpl"));
    assert_eq!(plan.steps[0].template_ref, None);
    assert_eq!(
        deps(&plan, "c"),
        [
            ("a".to_owned(), Required::Succeeded),
            ("b".to_owned(), Required::Succeeded)
        ]
    );
    let ci = jobflow::plan(&jf(&format!(
        "  failurePolicy: ContinueIndependent\n{FLOWS}"
    )))
    .unwrap();
    assert_eq!(ci.policies.failure, FailurePolicy::ContinueIndependent);
}

#[test]
fn jobflow_job_rules() {
    let obj = jf(FLOWS);
    let plan = jobflow::plan(&obj).unwrap();
    let a = jobflow::build_job(&obj, &plan, plan.step_id("a").unwrap(), None).unwrap();
    assert_eq!(a.metadata.name.as_deref(), Some("flow-a"));
    let spec = a.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(3), "the template's backoffLimit");
    let p = pod(&a);
    assert_eq!(p.restart_policy.as_deref(), Some("Never"), "always Never");
    assert_eq!(p.node_name.as_deref(), Some("node-1"));
    assert_eq!(p.volumes.as_ref().unwrap()[0].name, "shared");
    for c in &p.containers {
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/shared");
    }
    let one = &p.containers[0];
    let env: Vec<(&str, &str)> = one
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
        .collect();
    assert_eq!(env, [("FOO", "own"), ("QUE", "global")]);
    assert_eq!(pod_labels(&a)["k"], "own");
    assert_eq!(pod_labels(&a)["k2"], "global");
    assert_eq!(pod_labels(&a)["jobsmith.dev/e2e-outcome"], "fail");
    assert_eq!(pod_labels(&a)["jobsmith.dev/flow"], "a");
    assert_eq!(labels(&a)["jobsmith.dev/flow"], "a");
    assert_eq!(labels(&a)["k"], "global");
    assert_eq!(labels(&a)["jobsmith.dev/owner-kind"], "JobFlow");
    assert_eq!(a.metadata.annotations.as_ref().unwrap()["a"], "global");

    // c: no shareVolumeMounts -> no shared volume; backoffLimit 0 when unset.
    let c = jobflow::build_job(&obj, &plan, plan.step_id("c").unwrap(), None).unwrap();
    assert_eq!(c.spec.as_ref().unwrap().backoff_limit, Some(0));
    assert!(pod(&c).volumes.is_none());
    assert_eq!(pod(&c).restart_policy.as_deref(), Some("Never"));

    // b: the template, recorded; restartPolicy still Never.
    let b_id = plan.step_id("b").unwrap();
    assert_eq!(
        jobflow::build_job(&obj, &plan, b_id, None).expect_err("missing"),
        BuildError::TemplateNotFound { name: "tpl".into() }
    );
    let template = jt("tpl", TEMPLATE_SPEC);
    let b = jobflow::build_job(&obj, &plan, b_id, Some(&template)).unwrap();
    assert_eq!(pod(&b).restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        b.metadata.annotations.as_ref().unwrap()["jobsmith.dev/template-generation"],
        "4"
    );
    // A template under another name is refused.
    let other = jt("other", TEMPLATE_SPEC);
    assert!(matches!(
        jobflow::build_job(&obj, &plan, b_id, Some(&other)),
        Err(BuildError::Invalid(_))
    ));
}

#[test]
fn job_template_deploy_operator_shape_wins() {
    let both = jt(
        "tpl",
        "  template: {spec: {containers: [{name: inline, image: i}]}}\n  jobTemplate: {backoffLimit: 5, template: {spec: {containers: [{name: deploy, image: i}]}}}\n",
    );
    let obj = jf("  flows:\n    - {name: b, jobTemplateRef: tpl}\n");
    let plan = jobflow::plan(&obj).unwrap();
    let job = jobflow::build_job(&obj, &plan, StepId(0), Some(&both)).unwrap();
    assert_eq!(pod(&job).containers[0].name, "deploy");
    assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(5));
}

// ---------------------------------------------------------------- DaemonJob (§4)

fn node(name: &str, ready: bool, taint: bool) -> Node {
    let taints = if taint {
        "  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]\n"
    } else {
        ""
    };
    serde_yaml::from_str(&format!(
        "metadata: {{name: {name}, labels: {{kubernetes.io/os: linux}}}}\nspec:\n  unschedulable: false\n{taints}status:\n  conditions: [{{type: Ready, status: '{}'}}]\n",
        if ready { "True" } else { "False" }
    ))
    .unwrap()
}

const DAEMON: &str = "  excludeNodeList: 'n1, n2'
  excludeNodes: [n3]
  backoffLimit: 2
  suspend: true
  globalParams: {nodeName: ignored, env: [{name: G, value: g}], labels: {gl: g}}
  template:
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers: [{name: c, image: busybox}]
";

#[test]
fn daemonjob_plan_is_eligible_nodes_and_known_nodes_sorted() {
    let obj = dj(DAEMON);
    let nodes = [
        node("zeta", true, false),
        node("n1", true, false),
        node("n3", true, false),
        node("alpha", true, false),
        node("down", false, false),
        node("tainted", true, true),
    ];
    let plan = daemonjob::plan(&obj, &nodes, &["gone".to_owned()]).unwrap();
    let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["alpha", "gone", "zeta"]);
    assert_eq!(plan.steps[0].job_name, "dj-alpha");
    assert!(plan.policies.suspend);
    assert_eq!(
        daemonjob::eligible_nodes(&obj, None, &nodes),
        ["zeta", "alpha"]
    );
}

#[test]
fn daemonjob_job_is_pinned_to_its_node() {
    let obj = dj(DAEMON);
    let plan = daemonjob::plan(&obj, &[node("alpha", true, false)], &[]).unwrap();
    let job = daemonjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("dj-alpha"));
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.suspend, None, "the run's suspend is not the Job's");
    assert_eq!(spec.backoff_limit, Some(2));
    let p = pod(&job);
    assert_eq!(p.node_name, None, "nodeName is ignored");
    assert_eq!(p.restart_policy.as_deref(), Some("Never"));
    let terms = &p
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    let field = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(field.key, "metadata.name");
    assert_eq!(field.operator, "In");
    assert_eq!(field.values.as_deref().unwrap(), ["alpha"]);
    assert_eq!(p.containers[0].env.as_ref().unwrap()[0].name, "G");
    assert_eq!(labels(&job)["jobsmith.dev/node"], "alpha");
    assert_eq!(pod_labels(&job)["jobsmith.dev/node"], "alpha");
    assert_eq!(labels(&job)["gl"], "g");
    assert_eq!(labels(&job)["jobsmith.dev/owner-kind"], "DaemonJob");
}

#[test]
fn daemonjob_with_template_ref_judges_eligibility_with_the_template() {
    let obj = dj("  templateRef: tpl\n");
    let template = jt(
        "tpl",
        "  template: {spec: {tolerations: [{key: dedicated, operator: Exists}], containers: [{name: c, image: i}]}}\n",
    );
    let nodes = [node("tainted", true, true)];
    assert!(daemonjob::plan(&obj, &nodes, &[]).unwrap().steps.is_empty());
    let plan = daemonjob::plan_with_template(&obj, Some(&template), &nodes, &[]).unwrap();
    assert_eq!(plan.steps[0].template_ref.as_deref(), Some("tpl"));
    let job = daemonjob::build_job(&obj, &plan, StepId(0), Some(&template)).unwrap();
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()["jobsmith.dev/template"],
        "tpl"
    );
    let err = daemonjob::plan(&dj("  excludeNodes: []\n"), &[], &[]).expect_err("nothing to run");
    assert_eq!(
        err.to_string(),
        "a DaemonJob needs a template or a templateRef"
    );
}

// ---------------------------------------------------------------- JobRun (§5, §6)

#[test]
fn jobrun_is_one_step_named_template_dash_run() {
    let obj = jr("  templateRef: echo\n  args: [hello]\n");
    let plan = jobrun::plan(&obj).unwrap();
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].key, "run-1");
    assert_eq!(plan.steps[0].job_name, "echo-run-1");
    assert_eq!(plan.steps[0].template_ref.as_deref(), Some("echo"));
    assert_eq!(
        jobrun::build_job(&obj, &plan, StepId(0), None).expect_err("no template"),
        BuildError::TemplateNotFound {
            name: "echo".into()
        }
    );
    let template = jt(
        "echo",
        "  template: {spec: {restartPolicy: Never, containers: [{name: echo-container, image: busybox, command: [echo]}]}}\n",
    );
    let job = jobrun::build_job(&obj, &plan, StepId(0), Some(&template)).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("echo-run-1"));
    let c = &pod(&job).containers[0];
    assert_eq!(c.command.as_deref().unwrap(), ["echo"]);
    assert_eq!(c.args.as_deref().unwrap(), ["hello"]);
    assert_eq!(labels(&job)["jobsmith.dev/owner-kind"], "JobRun");
    assert_eq!(labels(&job)["jobsmith.dev/owner-name"], "run-1");
    assert_eq!(labels(&job)["jobsmith.dev/template"], "echo");
    let ann = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["jobsmith.dev/template"], "echo");
    assert_eq!(ann["jobsmith.dev/template-generation"], "4");
}

#[test]
fn jobrun_override_not_allowed() {
    let obj = jr("  templateRef: echo\n  command: [sh]\n");
    let plan = jobrun::plan(&obj).unwrap();
    let template = jt(
        "echo",
        "  overridable: [args]\n  template: {spec: {containers: [{name: c, image: busybox}]}}\n",
    );
    let err = jobrun::build_job(&obj, &plan, StepId(0), Some(&template)).expect_err("refused");
    assert_eq!(
        err,
        BuildError::OverrideNotAllowed {
            field: "command".into()
        }
    );
    assert_eq!(err.reason(), "OverrideNotAllowed");
    // The default allow-list is command, args, env.
    let open = jt(
        "echo",
        "  template: {spec: {containers: [{name: c, image: busybox}]}}\n",
    );
    let job = jobrun::build_job(&obj, &plan, StepId(0), Some(&open)).unwrap();
    assert_eq!(pod(&job).containers[0].command.as_deref().unwrap(), ["sh"]);
    assert_eq!(pod(&job).restart_policy.as_deref(), Some("Never"));
    // An unknown container is an invalid run, not a panic.
    let bad = jr("  templateRef: echo\n  container: nope\n  args: [x]\n");
    let err = jobrun::build_job(&bad, &jobrun::plan(&bad).unwrap(), StepId(0), Some(&open))
        .expect_err("unknown container");
    assert!(matches!(err, BuildError::Invalid(_)));
    assert!(!InvalidSpec::DuplicateJob("x".into()).category().is_empty());
}

// ---------------------------------------------------------------- properties (§1 names)

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn managedjob_job_names_are_valid_unique_and_stable(
        wf in dns_label(),
        groups in proptest::collection::btree_set(dns_label(), 1..4),
        jobs in proptest::collection::btree_set(dns_label(), 1..4),
    ) {
        let mut spec = String::from("  groups:\n");
        for g in &groups {
            spec.push_str(&format!("    - name: {g}\n      jobs:\n"));
            for j in &jobs {
                spec.push_str(&format!("        - {{name: {j}, image: i}}\n"));
            }
        }
        let mut obj = mj(&spec);
        obj.metadata.name = Some(wf.clone());
        match managedjob::plan(&obj) {
            Ok(plan) => {
                let again = managedjob::plan(&obj).unwrap();
                let mut seen = std::collections::HashSet::new();
                for (s, t) in plan.steps.iter().zip(&again.steps) {
                    prop_assert!(is_dns1123_label(&s.job_name), "{}", s.job_name);
                    prop_assert!(s.job_name.len() <= 63);
                    prop_assert_eq!(&s.job_name, &t.job_name);
                    prop_assert!(seen.insert(s.job_name.clone()));
                }
                let job = managedjob::build_job(&obj, &plan, StepId(0), None).unwrap();
                for value in labels(&job).values() {
                    prop_assert!(is_label_value(value), "{value}");
                }
            }
            // Only a real collision of generated names may be refused.
            Err(e) => prop_assert!(matches!(e, InvalidSpec::JobNameCollision { .. }), "{e}"),
        }
    }

    #[test]
    fn other_kinds_names_are_valid_and_stable(a in ".{0,80}", b in ".{0,80}") {
        for name in [jobflow::job_name(&a, &b), daemonjob::job_name(&a, &b), jobrun::job_name(&a, &b)] {
            prop_assert!(is_dns1123_label(&name), "{name}");
        }
        prop_assert_eq!(jobflow::job_name(&a, &b), jobflow::job_name(&a, &b));
        prop_assert_eq!(daemonjob::job_name(&a, &b), daemonjob::job_name(&a, &b));
    }
}

// ---------------------------------------------------------------- the linear job edges (§2)

/// The same group with the literal rule: a sequential job depends on every earlier job of its
/// group, an explicit dependency replacing the automatic one on the same target.
fn literal_dag(jobs: &[(bool, Vec<(usize, Required)>)]) -> jobsmith_engine::Dag {
    use jobsmith_engine::{DepSpec, GroupSpec, StepSpec};
    let steps: Vec<StepSpec> = jobs
        .iter()
        .enumerate()
        .map(|(i, (parallel, explicit))| {
            let mut deps = std::collections::BTreeMap::new();
            if !parallel {
                for j in 0..i {
                    deps.insert(format!("g/j{j}"), Required::Succeeded);
                }
            }
            for (j, r) in explicit {
                deps.insert(format!("g/j{j}"), *r);
            }
            StepSpec {
                key: format!("g/j{i}"),
                group: Some("g".into()),
                deps: deps
                    .into_iter()
                    .map(|(target, required)| DepSpec { target, required })
                    .collect(),
            }
        })
        .collect();
    jobsmith_engine::Dag::build(
        &steps,
        &[GroupSpec {
            key: "g".into(),
            deps: vec![],
        }],
    )
    .unwrap()
}

/// Runs a DAG to the end, each created step finishing with its fate; the final phases.
fn run_to_end(dag: &jobsmith_engine::Dag, fates: &[bool]) -> Vec<StepPhase> {
    let policies = jobsmith_engine::Policies::default();
    let mut outcomes = vec![StepOutcome::NotCreated; dag.len()];
    loop {
        let d = evaluate(dag, &outcomes, &policies);
        if d.create.is_empty() {
            return d.steps;
        }
        for s in d.create {
            outcomes[s.index()] = if fates[s.index()] {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed
            };
        }
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

    /// The linear automatic edges of `plan` behave exactly like "every earlier job".
    #[test]
    fn linear_job_edges_equal_the_literal_rule(
        jobs in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec((any::<proptest::sample::Index>(), required()), 0..3)),
            1..12,
        ),
        fates in proptest::collection::vec(proptest::bool::weighted(0.8), 12),
    ) {
        let jobs: Vec<(bool, Vec<(usize, Required)>)> = jobs
            .into_iter()
            .enumerate()
            .map(|(i, (parallel, deps))| {
                let explicit = if i == 0 {
                    Vec::new()
                } else {
                    let mut d: Vec<(usize, Required)> =
                        deps.into_iter().map(|(ix, r)| (ix.index(i), r)).collect();
                    d.sort_by_key(|(j, _)| *j);
                    d.dedup_by_key(|(j, _)| *j);
                    d
                };
                (parallel, explicit)
            })
            .collect();
        let mut spec = String::from("  groups:\n    - name: g\n      jobs:\n");
        for (i, (parallel, explicit)) in jobs.iter().enumerate() {
            let deps: Vec<String> = explicit
                .iter()
                .map(|(j, r)| {
                    let status = match r {
                        Required::Succeeded => "succeeded",
                        Required::Failed => "failed",
                        Required::Completed => "completed",
                    };
                    format!("{{name: j{j}, status: {status}}}")
                })
                .collect();
            spec.push_str(&format!(
                "        - {{name: j{i}, image: i, parallel: {parallel}, dependencies: [{}]}}\n",
                deps.join(", ")
            ));
        }
        let plan = managedjob::plan(&mj(&spec)).unwrap();
        let literal = literal_dag(&jobs);
        prop_assert_eq!(run_to_end(&plan.dag, &fates), run_to_end(&literal, &fates));
    }
}

// ---------------------------------------------------------------- Sharding (docs/scaling.md)

const SHARD: &str = "sharding.jobsmith.dev/key";

/// Sets (or removes) the parent's sharding label.
fn shard(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    value: Option<&str>,
) {
    let labels = meta.labels.get_or_insert_with(Default::default);
    match value {
        Some(v) => labels.insert(SHARD.to_owned(), v.to_owned()),
        None => labels.remove(SHARD),
    };
}

#[test]
fn every_kind_copies_the_parents_sharding_label_onto_its_jobs() {
    let template = jt("tpl", TEMPLATE_SPEC);
    let mut m = mj("  groups:\n    - {name: g, jobs: [{name: j, image: busybox}]}\n");
    shard(&mut m.metadata, Some("shard1"));
    let mut f = jf(FLOWS);
    shard(&mut f.metadata, Some("shard2"));
    let mut d = dj(DAEMON);
    shard(&mut d.metadata, Some("shard3"));
    let mut r = jr("  templateRef: tpl\n");
    shard(&mut r.metadata, Some("shard4"));

    let m_job = build_mj(&m, "g/j", None).unwrap();
    let f_plan = jobflow::plan(&f).unwrap();
    let f_job = jobflow::build_job(&f, &f_plan, f_plan.step_id("a").unwrap(), None).unwrap();
    let d_plan = daemonjob::plan(&d, &[node("alpha", true, false)], &[]).unwrap();
    let d_job = daemonjob::build_job(&d, &d_plan, StepId(0), None).unwrap();
    let r_plan = jobrun::plan(&r).unwrap();
    let r_job = jobrun::build_job(&r, &r_plan, StepId(0), Some(&template)).unwrap();
    for (job, want) in [
        (&m_job, "shard1"),
        (&f_job, "shard2"),
        (&d_job, "shard3"),
        (&r_job, "shard4"),
    ] {
        assert_eq!(labels(job).get(SHARD).map(String::as_str), Some(want));
    }
}

#[test]
fn params_cannot_move_a_job_out_of_its_parents_shard() {
    // globalParams label the Jobs with another shard: the parent's value wins.
    let flows = FLOWS.replace(
        "labels: {k: global, k2: global}",
        "labels: {k: global, k2: global, sharding.jobsmith.dev/key: other}",
    );
    let mut f = jf(&flows);
    shard(&mut f.metadata, Some("shard1"));
    let plan = jobflow::plan(&f).unwrap();
    let job = jobflow::build_job(&f, &plan, plan.step_id("a").unwrap(), None).unwrap();
    assert_eq!(labels(&job)[SHARD], "shard1");
    assert_eq!(labels(&job)["k"], "global", "the other params labels stay");

    // A parent without the label: its Jobs have none either (they follow the unsharded manager).
    let f = jf(&flows);
    let plan = jobflow::plan(&f).unwrap();
    let job = jobflow::build_job(&f, &plan, plan.step_id("a").unwrap(), None).unwrap();
    assert!(!labels(&job).contains_key(SHARD), "{:?}", labels(&job));
    let m = mj("  groups:\n    - {name: g, jobs: [{name: j, image: busybox}]}\n");
    assert!(!labels(&build_mj(&m, "g/j", None).unwrap()).contains_key(SHARD));
}

// ---------------------------------------------------------------- exit steps (spec.onExit)

#[test]
fn managedjob_exit_jobs_are_the_last_group_and_marked_exit_steps() {
    let obj = mj("  params: {labels: {level: workflow}}
  groups:
    - {name: g, params: {labels: {level: group}}, jobs: [{name: a, image: i}, {name: b, image: i}]}
  onExit:
    - {name: report, image: r}
    - {name: notify, image: n}
    - {name: side, image: s, parallel: true}
    - {name: last, image: l, parallel: true, dependencies: [{name: report, status: completed}]}
");
    let plan = managedjob::plan(&obj).unwrap();
    let keys: Vec<(&str, &str, bool)> = plan
        .steps
        .iter()
        .map(|s| (s.key.as_str(), s.job_name.as_str(), s.exit))
        .collect();
    assert_eq!(
        keys,
        [
            ("g/a", "wf-g-a", false),
            ("g/b", "wf-g-b", false),
            ("onExit/report", "wf-onexit-report", true),
            ("onExit/notify", "wf-onexit-notify", true),
            ("onExit/side", "wf-onexit-side", true),
            ("onExit/last", "wf-onexit-last", true),
        ]
    );
    for s in plan.dag.steps() {
        assert_eq!(plan.dag.is_exit(s), plan.steps[s.index()].exit);
    }
    assert_eq!(
        plan.dag.group_key(plan.dag.group_id("onExit").unwrap()),
        "onExit"
    );
    // Ordered like the jobs of a group, and never after a normal step.
    assert!(deps(&plan, "onExit/report").is_empty());
    assert_eq!(
        deps(&plan, "onExit/notify"),
        [("onExit/report".to_owned(), Required::Succeeded)]
    );
    assert!(deps(&plan, "onExit/side").is_empty());
    assert_eq!(
        deps(&plan, "onExit/last"),
        [("onExit/report".to_owned(), Required::Completed)]
    );
    assert!(group_deps(&plan, "onExit").is_empty());
    // Params: workflow then job (no group level); labels of the group onExit.
    let job = build_mj(&obj, "onExit/report", None).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("wf-onexit-report"));
    assert_eq!(labels(&job)["level"], "workflow");
    assert_eq!(labels(&job)["jobsmith.dev/group"], "onExit");
    assert_eq!(labels(&job)["jobsmith.dev/job"], "report");
    assert_eq!(pod(&job).containers[0].image.as_deref(), Some("r"));
    assert_eq!(
        managedjob::job_params(&obj, "onExit/report")
            .and_then(|p| p.labels)
            .map(|l| l["level"].clone()),
        Some("workflow".to_owned())
    );
}

#[test]
fn invalid_exit_steps_name_the_problem() {
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: a, image: i}]}\n  onExit:\n    - {name: r, image: i, dependencies: [{name: a}]}\n"
        ),
        "job \"onExit/r\": exit steps may depend only on other exit steps, not on \"a\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: a, image: i}]}\n  onExit:\n    - {name: r, image: i, dependencies: [{name: g/a}]}\n"
        ),
        "job \"onExit/r\": exit steps may depend only on other exit steps, not on \"g/a\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: a, image: i, dependencies: [{name: onExit/r}]}]}\n  onExit:\n    - {name: r, image: i}\n"
        ),
        "job \"g/a\": unknown dependency \"onExit/r\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, dependencies: [{name: onExit}], jobs: [{name: a, image: i}]}\n  onExit:\n    - {name: r, image: i}\n"
        ),
        "group \"g\": unknown dependency \"onExit\""
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: onexit, jobs: [{name: r, image: i}]}\n  onExit:\n    - {name: r, image: i}\n"
        ),
        "\"onexit/r\" and \"onExit/r\" both get the Job name \"wf-onexit-r\""
    );
    assert_eq!(
        invalid("  groups:\n    - {name: onExit, jobs: [{name: r, image: i}]}\n"),
        "group \"onExit\": the name is reserved for spec.onExit"
    );
    assert_eq!(
        invalid(
            "  groups:\n    - {name: g, jobs: [{name: a, image: i}]}\n  onExit:\n    - {name: r, image: i}\n    - {name: r, image: i}\n"
        ),
        "duplicate job name \"r\""
    );
    // A group `onexit` whose job names differ is fine.
    managedjob::plan(&mj(
        "  groups:\n    - {name: onexit, jobs: [{name: a, image: i}]}\n  onExit:\n    - {name: r, image: i}\n",
    ))
    .unwrap();
}

#[test]
fn jobflow_exit_flows() {
    let tpl = "jobTemplate: {template: {spec: {containers: [{name: c, image: i}]}}}";
    let obj = jf(&format!(
        "  flows:\n    - {{name: a, {tpl}}}\n    - {{name: b, dependencies: [a], {tpl}}}\n  onExit:\n    - {{name: x, {tpl}}}\n    - {{name: y, dependencies: [x], {tpl}}}\n"
    ));
    let plan = jobflow::plan(&obj).unwrap();
    let keys: Vec<(&str, &str, bool)> = plan
        .steps
        .iter()
        .map(|s| (s.key.as_str(), s.job_name.as_str(), s.exit))
        .collect();
    assert_eq!(
        keys,
        [
            ("a", "flow-a", false),
            ("b", "flow-b", false),
            ("x", "flow-x", true),
            ("y", "flow-y", true),
        ]
    );
    assert_eq!(deps(&plan, "y"), [("x".to_owned(), Required::Succeeded)]);
    let id = plan.step_id("y").unwrap();
    let job = jobflow::build_job(&obj, &plan, id, None).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some("flow-y"));

    let f = |spec: &str| jobflow::plan(&jf(spec)).expect_err("invalid").to_string();
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, {tpl}}}\n  onExit:\n    - {{name: a, {tpl}}}\n"
        )),
        "duplicate flow name \"a\""
    );
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, {tpl}}}\n  onExit:\n    - {{name: x, dependencies: [a], {tpl}}}\n"
        )),
        "flow \"x\": exit steps may depend only on other exit steps, not on \"a\""
    );
    assert_eq!(
        f(&format!(
            "  flows:\n    - {{name: a, dependencies: [x], {tpl}}}\n  onExit:\n    - {{name: x, {tpl}}}\n"
        )),
        "flow \"a\": unknown dependency \"x\""
    );
}

#[test]
fn exit_steps_get_the_outcome_of_the_others_in_their_env() {
    use jobsmith_engine::compile::exit;
    let tpl = "jobTemplate: {template: {spec: {initContainers: [{name: init, image: i}], containers: [{name: c, image: i, env: [{name: JOBSMITH_RUN_PHASE, value: mine}, {name: KEEP, value: k}]}, {name: d, image: i}]}}}";
    let obj = jf(&format!(
        "  flows:\n    - {{name: a, {tpl}}}\n    - {{name: b, {tpl}}}\n    - {{name: c, dependencies: [a], {tpl}}}\n  onExit:\n    - {{name: x, {tpl}}}\n"
    ));
    let plan = jobflow::plan(&obj).unwrap();
    use StepOutcome::*;
    let d = evaluate(
        &plan.dag,
        &[Failed, Failed, NotCreated, NotCreated],
        &plan.policies,
    );
    // FailFast (the JobFlow default) aborted c; the exit flow starts.
    assert_eq!(d.steps[2], StepPhase::Aborted);
    assert_eq!(d.create, [StepId(3)]);
    let env = exit::exit_env(&plan, &d, "flow");
    let pairs: Vec<(&str, &str)> = env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("JOBSMITH_RUN_PHASE", "Failed"),
            ("JOBSMITH_FAILED_STEPS", "a,b"),
            ("JOBSMITH_RUN_NAME", "flow"),
        ]
    );
    let mut job = jobflow::build_job(&obj, &plan, StepId(3), None).unwrap();
    exit::add_env(&mut job, &env);
    let pod = pod(&job);
    for container in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let vars: Vec<(&str, &str)> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        assert!(vars.contains(&("JOBSMITH_RUN_PHASE", "Failed")), "{vars:?}");
        assert!(!vars.contains(&("JOBSMITH_RUN_PHASE", "mine")), "{vars:?}");
        assert!(vars.contains(&("JOBSMITH_FAILED_STEPS", "a,b")), "{vars:?}");
    }
    assert!(
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "KEEP")
    );
    // All succeeded: Succeeded and an empty list.
    let d = evaluate(
        &plan.dag,
        &[Succeeded, Succeeded, Succeeded],
        &plan.policies,
    );
    let env = exit::exit_env(&plan, &d, "flow");
    assert_eq!(env[0].value.as_deref(), Some("Succeeded"));
    assert_eq!(env[1].value.as_deref(), Some(""));
}

#[test]
fn past_the_deadline_exit_steps_start_and_are_told_the_run_failed() {
    use jobsmith_engine::compile::exit;
    use jobsmith_engine::schedule::evaluate_at;
    let tpl = "jobTemplate: {template: {spec: {containers: [{name: c, image: i}]}}}";
    let obj = jf(&format!(
        "  flows:\n    - {{name: a, {tpl}}}\n    - {{name: b, dependencies: [a], {tpl}}}\n  onExit:\n    - {{name: x, {tpl}}}\n"
    ));
    let plan = jobflow::plan(&obj).unwrap();
    use StepOutcome::*;
    // The deadline passed after a succeeded and before b started: b is aborted, nothing is
    // stopped, and the exit flow starts (it runs past the deadline).
    let d = evaluate_at(
        &plan.dag,
        &[Succeeded, NotCreated, NotCreated],
        &plan.policies,
        true,
        |_| false,
    );
    assert_eq!(d.steps[1], StepPhase::Aborted);
    assert_eq!(d.create, [StepId(2)]);
    assert!(d.stop.is_empty());
    let env = exit::exit_env(&plan, &d, "flow");
    // No step failed, but the run does: the deadline cut it short.
    assert_eq!(env[0].value.as_deref(), Some("Failed"));
    assert_eq!(env[1].value.as_deref(), Some(""));
    // Once the exit flow finished, the run ends Failed for its deadline.
    let d = evaluate_at(
        &plan.dag,
        &[Succeeded, NotCreated, Succeeded],
        &plan.policies,
        true,
        |_| false,
    );
    assert_eq!(d.phase, jobsmith_engine::RunPhase::Failed);
    assert!(d.deadline_exceeded);
}
