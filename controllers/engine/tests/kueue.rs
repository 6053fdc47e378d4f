//! Kueue admission in each kind's compile (docs/integrations.md "Kueue"): which Jobs are
//! created suspended with Kueue's labels, and how the levels override each other.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};
use jobsmith_engine::compile::{daemonjob, jobflow, jobrun, managedjob};
use jobsmith_engine::{ObservedJob, StepId, StepOutcome, observe};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;

const QUEUE: &str = "kueue.x-k8s.io/queue-name";
const PRIORITY: &str = "kueue.x-k8s.io/priority-class";

fn parse<T: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: &str) -> T {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: ns\n  uid: u-1\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("parses")
}

fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn suspended(job: &Job) -> Option<bool> {
    job.spec.as_ref()?.suspend
}

/// The queue label never reaches the pods (Kueue's pod integration would take them for its own).
fn no_pod_labels(job: &Job) {
    let pod_labels = job
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!pod_labels.contains_key(QUEUE), "{pod_labels:?}");
    assert!(!pod_labels.contains_key(PRIORITY), "{pod_labels:?}");
}

#[test]
fn managedjob_levels_override_field_by_field() {
    let obj: ManagedJob = parse(
        "ManagedJob",
        "wf",
        "  queueName: team-a
  priorityClassName: low
  groups:
    - name: prep
      jobs:
        - {name: fetch, image: busybox}
    - name: train
      queueName: gpu
      jobs:
        - {name: fit, image: busybox, priorityClassName: high}
        - {name: eval, image: busybox, queueName: cpu}
",
    );
    let plan = managedjob::plan(&obj).unwrap();
    let build = |key: &str| {
        let id = plan.step_id(key).unwrap();
        managedjob::build_job(&obj, &plan, id, None).unwrap()
    };
    let fetch = build("prep/fetch");
    assert_eq!(label(&fetch, QUEUE), Some("team-a"));
    assert_eq!(label(&fetch, PRIORITY), Some("low"));
    assert_eq!(suspended(&fetch), Some(true));
    no_pod_labels(&fetch);
    let fit = build("train/fit");
    assert_eq!(label(&fit, QUEUE), Some("gpu"));
    assert_eq!(label(&fit, PRIORITY), Some("high"));
    let eval = build("train/eval");
    assert_eq!(label(&eval, QUEUE), Some("cpu"));
    assert_eq!(label(&eval, PRIORITY), Some("low"));
    // Created suspended with the queue label: observed as queued until Kueue admits it.
    assert_eq!(
        observe::job_outcome(&ObservedJob::from(eval.clone())),
        StepOutcome::Queued
    );
}

#[test]
fn without_a_queue_nothing_is_suspended_or_labelled() {
    let obj: ManagedJob = parse(
        "ManagedJob",
        "wf",
        "  priorityClassName: low\n  groups:\n    - name: g\n      jobs:\n        - {name: j, image: busybox}\n",
    );
    let plan = managedjob::plan(&obj).unwrap();
    let job = managedjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(suspended(&job), None);
    assert_eq!(label(&job, QUEUE), None);
    assert_eq!(
        label(&job, PRIORITY),
        None,
        "a priority without a queue is ignored"
    );
    assert_eq!(
        observe::job_outcome(&ObservedJob::from(job.clone())),
        StepOutcome::Running
    );
}

#[test]
fn a_queue_label_from_params_also_queues_the_job() {
    let obj: ManagedJob = parse(
        "ManagedJob",
        "wf",
        "  params:\n    labels: {kueue.x-k8s.io/queue-name: from-labels}\n  groups:\n    - name: g\n      jobs:\n        - {name: j, image: busybox}\n",
    );
    let plan = managedjob::plan(&obj).unwrap();
    let job = managedjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(suspended(&job), Some(true));
    assert_eq!(label(&job, QUEUE), Some("from-labels"));
}

#[test]
fn jobflow_flow_overrides_the_run() {
    let obj: JobFlow = parse(
        "JobFlow",
        "flow",
        "  queueName: team-a
  flows:
    - name: a
      jobTemplate: {template: {spec: {containers: [{name: c, image: busybox}]}}}
    - name: b
      queueName: team-b
      priorityClassName: urgent
      jobTemplate: {template: {spec: {containers: [{name: c, image: busybox}]}}}
",
    );
    let plan = jobflow::plan(&obj).unwrap();
    let a = jobflow::build_job(&obj, &plan, plan.step_id("a").unwrap(), None).unwrap();
    let b = jobflow::build_job(&obj, &plan, plan.step_id("b").unwrap(), None).unwrap();
    assert_eq!(
        (label(&a, QUEUE), label(&a, PRIORITY)),
        (Some("team-a"), None)
    );
    assert_eq!(
        (label(&b, QUEUE), label(&b, PRIORITY)),
        (Some("team-b"), Some("urgent"))
    );
    assert_eq!(suspended(&a), Some(true));
    no_pod_labels(&b);
}

fn ready_node(name: &str) -> Node {
    serde_yaml::from_str(&format!(
        "metadata: {{name: {name}}}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n"
    ))
    .unwrap()
}

#[test]
fn daemonjob_node_jobs_are_queued_and_still_pinned() {
    let obj: DaemonJob = parse(
        "DaemonJob",
        "dj",
        "  queueName: nodes\n  template: {spec: {containers: [{name: c, image: busybox}]}}\n",
    );
    let plan = daemonjob::plan(&obj, &[ready_node("n1")], &[]).unwrap();
    let job = daemonjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(suspended(&job), Some(true));
    assert_eq!(label(&job, QUEUE), Some("nodes"));
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert!(pod.affinity.is_some(), "still pinned to its node");
}

#[test]
fn jobrun_job_is_queued() {
    let obj: JobRun = parse(
        "JobRun",
        "run-1",
        "  templateRef: echo\n  queueName: q\n  priorityClassName: p\n",
    );
    let template: JobTemplate = serde_yaml::from_str(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobTemplate\nmetadata: {name: echo, namespace: ns}\nspec: {template: {spec: {containers: [{name: c, image: busybox}]}}}\n",
    )
    .unwrap();
    let plan = jobrun::plan(&obj).unwrap();
    let job = jobrun::build_job(&obj, &plan, StepId(0), Some(&template)).unwrap();
    assert_eq!(suspended(&job), Some(true));
    assert_eq!(
        (label(&job, QUEUE), label(&job, PRIORITY)),
        (Some("q"), Some("p"))
    );
}
