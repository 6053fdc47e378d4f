//! `retryPolicy` on the run kinds (docs/lifecycle.md "Retry policies"): the levels, the
//! precedence against a user's JobSpec, the mapping onto `backoffLimit`/`podFailurePolicy`,
//! `restartPolicy`, and the contradictions refused as `InvalidSpec`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{DaemonJob, JobFlow, JobTemplate, ManagedJob};
use jobsmith_engine::StepId;
use jobsmith_engine::compile::{BuildError, daemonjob, jobflow, managedjob};
use k8s_openapi::api::batch::v1::{Job, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Node;

const UID: &str = "0b6c1d2e-0000-4000-8000-000000000001";

fn object<T: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: &str) -> T {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: ns\n  uid: {UID}\n  generation: 1\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("object parses")
}

fn build_mj(
    obj: &ManagedJob,
    key: &str,
    template: Option<&JobTemplate>,
) -> Result<Job, BuildError> {
    let plan = managedjob::plan(obj).unwrap();
    managedjob::build_job(obj, &plan, plan.step_id(key).unwrap(), template)
}

fn build_flow(obj: &JobFlow, key: &str, template: Option<&JobTemplate>) -> Job {
    let plan = jobflow::plan(obj).unwrap();
    jobflow::build_job(obj, &plan, plan.step_id(key).unwrap(), template).unwrap()
}

fn limit(job: &Job) -> Option<i32> {
    job.spec.as_ref().unwrap().backoff_limit
}

fn restart(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .restart_policy
        .as_deref()
}

/// Each rule as `action operator values` or `action conditions`.
fn rules(job: &Job) -> Vec<String> {
    let Some(policy) = job.spec.as_ref().unwrap().pod_failure_policy.as_ref() else {
        return Vec::new();
    };
    policy.rules.iter().map(rule_text).collect()
}

fn rule_text(rule: &PodFailurePolicyRule) -> String {
    if let Some(codes) = &rule.on_exit_codes {
        return format!("{} {} {:?}", rule.action, codes.operator, codes.values);
    }
    let conditions: Vec<String> = rule
        .on_pod_conditions
        .iter()
        .flatten()
        .map(|p| format!("{}={}", p.type_, p.status.as_deref().unwrap_or("?")))
        .collect();
    format!("{} {}", rule.action, conditions.join(","))
}

fn invalid_mj(spec: &str) -> String {
    managedjob::plan(&object::<ManagedJob>("ManagedJob", "wf", spec))
        .expect_err("invalid")
        .to_string()
}

const LEVELS: &str = "  retries: 4
  retryPolicy:
    limit: 2
    onPodConditions: [{type: DisruptionTarget}]
  groups:
    - name: g
      retryPolicy: {onExitCodes: [3, 1]}
      jobs:
        - {name: inherits, image: busybox}
        - name: own
          image: busybox
          retryPolicy: {limit: 0, ignoreExitCodes: [42], onPodConditions: []}
        - name: cleared
          image: busybox
          retryPolicy: {onExitCodes: [], onPodConditions: []}
    - name: plain
      jobs:
        - {name: seed, image: busybox}
";

#[test]
fn managedjob_levels_merge_field_by_field_and_map_onto_the_job() {
    let obj = object::<ManagedJob>("ManagedJob", "wf", LEVELS);
    let inherits = build_mj(&obj, "g/inherits", None).unwrap();
    assert_eq!(
        limit(&inherits),
        Some(2),
        "the run's limit wins over retries"
    );
    assert_eq!(
        rules(&inherits),
        ["Ignore DisruptionTarget=True", "FailJob NotIn [1, 3]"]
    );
    assert_eq!(
        restart(&inherits),
        Some("Never"),
        "rules make the pods Never"
    );

    let own = build_mj(&obj, "g/own", None).unwrap();
    assert_eq!(limit(&own), Some(0));
    assert_eq!(rules(&own), ["Ignore In [42]", "FailJob NotIn [1, 3]"]);

    // Empty lists clear the rules of the levels above: no podFailurePolicy, the default
    // restartPolicy (OnFailure) stays.
    let cleared = build_mj(&obj, "g/cleared", None).unwrap();
    assert_eq!(rules(&cleared), Vec::<String>::new());
    assert_eq!(cleared.spec.as_ref().unwrap().pod_failure_policy, None);
    assert_eq!(limit(&cleared), Some(2));
    assert_eq!(restart(&cleared), Some("OnFailure"));

    // Without any retryPolicy: `retries` is the limit, as before.
    let seed = object::<ManagedJob>(
        "ManagedJob",
        "wf",
        "  retries: 4\n  groups:\n    - name: g\n      jobs: [{name: j, image: busybox}]\n",
    );
    let job = build_mj(&seed, "g/j", None).unwrap();
    assert_eq!((limit(&job), rules(&job).len()), (Some(4), 0));
    assert_eq!(restart(&job), Some("OnFailure"));
}

#[test]
fn managedjob_rules_replace_a_templates_policy_and_restart_policy() {
    let template: JobTemplate = object(
        "JobTemplate",
        "tpl",
        "  backoffLimit: 9
  podFailurePolicy: {rules: [{action: Ignore, onExitCodes: {operator: In, values: [7]}}]}
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: main, image: busybox}]
",
    );
    let obj = object::<ManagedJob>(
        "ManagedJob",
        "wf",
        "  groups:
    - name: g
      jobs:
        - {name: ruled, templateRef: tpl, retryPolicy: {onExitCodes: [1]}}
        - {name: kept, templateRef: tpl}
",
    );
    let ruled = build_mj(&obj, "g/ruled", Some(&template)).unwrap();
    assert_eq!(
        limit(&ruled),
        Some(1),
        "retries (default 1) replaces the template's"
    );
    assert_eq!(rules(&ruled), ["FailJob NotIn [1]"]);
    assert_eq!(restart(&ruled), Some("Never"));
    // No rules on any level: the template's podFailurePolicy stays; its OnFailure pod would
    // be refused by the API server, so the build names the conflict.
    let kept = build_mj(&obj, "g/kept", Some(&template)).expect_err("OnFailure with rules");
    assert_eq!(
        kept,
        BuildError::Invalid(
            "job \"g/kept\": retryPolicy rules (onExitCodes, ignoreExitCodes, onPodConditions) need restartPolicy Never, but the JobSpec sets OnFailure".into()
        )
    );
}

#[test]
fn managedjob_contradictions_are_invalid_specs() {
    assert_eq!(
        invalid_mj(
            "  retryPolicy: {onExitCodes: [1, 42]}\n  groups:\n    - name: g\n      jobs: [{name: j, image: i, retryPolicy: {ignoreExitCodes: [42]}}]\n"
        ),
        "job \"g/j\": exit code 42 is in both onExitCodes and ignoreExitCodes"
    );
    assert_eq!(
        invalid_mj(
            "  groups:\n    - name: g\n      retryPolicy: {ignoreExitCodes: [0]}\n      jobs: [{name: j, image: i}]\n"
        ),
        "group \"g\" retryPolicy: ignoreExitCodes lists exit code 0; exit codes are 1 to 255 (0 is success)"
    );
    assert_eq!(
        invalid_mj(
            "  params: {restartPolicy: OnFailure}\n  groups:\n    - name: g\n      jobs: [{name: j, image: i, retryPolicy: {onExitCodes: [1]}}]\n"
        ),
        "job \"g/j\": retryPolicy rules (onExitCodes, ignoreExitCodes, onPodConditions) need restartPolicy Never, but params sets OnFailure"
    );
    // restartPolicy: Never in params with rules is fine; OnFailure without rules too.
    let fine = object::<ManagedJob>(
        "ManagedJob",
        "wf",
        "  params: {restartPolicy: OnFailure}\n  groups:\n    - name: g\n      params: {restartPolicy: Never}\n      jobs: [{name: j, image: i, retryPolicy: {onExitCodes: [1]}}]\n    - name: h\n      jobs: [{name: k, image: i}]\n",
    );
    assert!(managedjob::plan(&fine).is_ok());
}

const FLOW_TEMPLATE: &str = "      jobTemplate:
        backoffLimit: 6
        podFailurePolicy: {rules: [{action: Ignore, onExitCodes: {operator: In, values: [9]}}]}
        template: {spec: {containers: [{name: main, image: busybox}]}}
";

#[test]
fn jobflow_the_flow_policy_wins_then_the_job_spec_then_the_run_policy() {
    let spec = format!(
        "  retryPolicy: {{limit: 2, ignoreExitCodes: [42]}}
  flows:
    - name: bare
      jobTemplate: {{template: {{spec: {{containers: [{{name: main, image: busybox}}]}}}}}}
    - name: own
{FLOW_TEMPLATE}    - name: flow-wins
      retryPolicy: {{limit: 0, onExitCodes: [1]}}
{FLOW_TEMPLATE}    - name: by-ref
      jobTemplateRef: tpl
"
    );
    let obj = object::<JobFlow>("JobFlow", "jf", &spec);
    let bare = build_flow(&obj, "bare", None);
    assert_eq!(
        (limit(&bare), rules(&bare)),
        (Some(2), vec!["Ignore In [42]".to_owned()])
    );
    assert_eq!(restart(&bare), Some("Never"));
    let own = build_flow(&obj, "own", None);
    assert_eq!(
        (limit(&own), rules(&own)),
        (Some(6), vec!["Ignore In [9]".to_owned()])
    );
    let flow_wins = build_flow(&obj, "flow-wins", None);
    assert_eq!(limit(&flow_wins), Some(0));
    // The flow's rules, with the run's unset fields filled in (ignoreExitCodes).
    assert_eq!(rules(&flow_wins), ["Ignore In [42]", "FailJob NotIn [1]"]);
    let template: JobTemplate = object(
        "JobTemplate",
        "tpl",
        "  template: {spec: {containers: [{name: main, image: busybox}]}}\n",
    );
    let by_ref = build_flow(&obj, "by-ref", Some(&template));
    assert_eq!((limit(&by_ref), rules(&by_ref).len()), (Some(2), 1));

    // Without any policy: backoffLimit 0, no podFailurePolicy (as before).
    let plain = object::<JobFlow>(
        "JobFlow",
        "jf",
        "  flows:\n    - name: a\n      jobTemplate: {template: {spec: {containers: [{name: m, image: i}]}}}\n",
    );
    let a = build_flow(&plain, "a", None);
    assert_eq!((limit(&a), rules(&a).len()), (Some(0), 0));

    let contradiction = object::<JobFlow>(
        "JobFlow",
        "jf",
        "  retryPolicy: {ignoreExitCodes: [1]}\n  flows:\n    - name: a\n      retryPolicy: {onExitCodes: [1]}\n      jobTemplate: {template: {spec: {containers: [{name: m, image: i}]}}}\n",
    );
    assert_eq!(
        jobflow::plan(&contradiction)
            .expect_err("invalid")
            .to_string(),
        "flow \"a\": exit code 1 is in both onExitCodes and ignoreExitCodes"
    );
}

fn ready_node(name: &str) -> Node {
    serde_yaml::from_str(&format!(
        "metadata: {{name: {name}}}\nstatus:\n  conditions: [{{type: Ready, status: 'True'}}]\n"
    ))
    .unwrap()
}

#[test]
fn daemonjob_run_policy_fills_what_the_job_spec_leaves_unset() {
    let obj = object::<DaemonJob>(
        "DaemonJob",
        "dj",
        "  retryPolicy: {limit: 3, onExitCodes: [1], onPodConditions: [{type: DisruptionTarget, action: Count}]}
  template: {spec: {containers: [{name: c, image: busybox}]}}
",
    );
    let plan = daemonjob::plan(&obj, &[ready_node("n")], &[]).unwrap();
    let job = daemonjob::build_job(&obj, &plan, StepId(0), None).unwrap();
    assert_eq!(limit(&job), Some(3));
    assert_eq!(
        rules(&job),
        ["Count DisruptionTarget=True", "FailJob NotIn [1]"]
    );
    assert_eq!(restart(&job), Some("Never"));

    // The inline JobSpec's own backoffLimit wins; an OnFailure pod with rules is refused.
    let on_failure = object::<DaemonJob>(
        "DaemonJob",
        "dj",
        "  backoffLimit: 5
  retryPolicy: {limit: 3, onExitCodes: [1]}
  template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: busybox}]}}
",
    );
    let plan = daemonjob::plan(&on_failure, &[ready_node("n")], &[]).unwrap();
    assert_eq!(
        daemonjob::build_job(&on_failure, &plan, StepId(0), None).expect_err("OnFailure"),
        BuildError::Invalid(
            "node \"n\": retryPolicy rules (onExitCodes, ignoreExitCodes, onPodConditions) need restartPolicy Never, but the JobSpec sets OnFailure".into()
        )
    );
    let invalid = object::<DaemonJob>(
        "DaemonJob",
        "dj",
        "  retryPolicy: {onExitCodes: [2], ignoreExitCodes: [2]}\n  template: {spec: {containers: [{name: c, image: busybox}]}}\n",
    );
    assert_eq!(
        daemonjob::plan(&invalid, &[], &[])
            .expect_err("invalid")
            .to_string(),
        "spec.retryPolicy: exit code 2 is in both onExitCodes and ignoreExitCodes"
    );
}
