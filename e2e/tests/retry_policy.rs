//! Retry policies and the failure history of a step (docs/lifecycle.md "Retry policies",
//! "Status history"), end to end: the fake pods fail with the exit code of their annotation
//! `jobsmith.dev/e2e-exit-code` (e2e/kwok/pod-fail.yaml), and the real Job controller applies
//! the `backoffLimit` and `podFailurePolicy` Jobsmith mapped from `retryPolicy`.
//!
//! - `onExitCodes: [1]`, `limit: 2`: a job failing with 1 is retried (3 pods) and fails with
//!   `BackoffLimitExceeded`; a job failing with 3 fails at once (1 pod) with `PodFailurePolicy`
//!   and exit code 3 in its status entry and in `kubectl jobsmith status --job`.
//! - `ignoreExitCodes: [42]`, `limit: 0` on a JobFlow flow: pods failing with 42 are replaced
//!   without being counted (with limit 0 the first counted failure would fail the Job), until
//!   the JobSpec's own `activeDeadlineSeconds` ends it with `DeadlineExceeded`.

mod support;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, ManagedJob, Phase, RunStatus, StepEntry, StepPhase};
use jobsmith_e2e::{fake_pod, list_pods_selected, plugin_binary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use support::{World, wait_run};

/// The exit codes of the Job's pods that failed, oldest pod first.
async fn failed_exit_codes(w: &World, job: &str) -> Result<Vec<i32>> {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    let mut pods: Vec<Pod> = list_pods_selected(&w.client, w.name(), &selector).await?;
    pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    Ok(pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .filter_map(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            statuses
                .iter()
                .find_map(|c| Some(c.state.as_ref()?.terminated.as_ref()?.exit_code))
        })
        .collect())
}

fn entry<'a>(entries: &'a [StepEntry], key: &str) -> Result<&'a StepEntry> {
    entries
        .iter()
        .find(|e| e.key == key)
        .with_context(|| format!("no status entry {key}: {entries:?}"))
}

/// The Job's `(backoffLimit, podFailurePolicy rules as "action operator values")`.
fn policy_of(job: &Job) -> (Option<i32>, Vec<String>) {
    let spec = job.spec.as_ref();
    let rules = spec
        .and_then(|s| s.pod_failure_policy.as_ref())
        .map(|p| {
            p.rules
                .iter()
                .map(|r| match &r.on_exit_codes {
                    Some(c) => format!("{} {} {:?}", r.action, c.operator, c.values),
                    None => format!("{} conditions", r.action),
                })
                .collect()
        })
        .unwrap_or_default();
    (spec.and_then(|s| s.backoff_limit), rules)
}

fn failing_pod(exit_code: u8) -> String {
    format!(
        "params: {{labels: {{{}: {}}}, annotations: {{{}: '{exit_code}', {}: '200'}}}}",
        fake_pod::OUTCOME_LABEL,
        fake_pod::OUTCOME_FAIL,
        fake_pod::EXIT_CODE_ANNOTATION,
        fake_pod::DURATION_ANNOTATION,
    )
}

#[tokio::test]
async fn exit_codes_decide_what_is_retried_and_the_status_says_why_a_step_failed() -> Result<()> {
    let w = World::new("retry-policy").await?;
    let name = "wf";
    let image = fake_pod::IMAGE;
    let (one, three) = (failing_pod(1), failing_pod(3));
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {name}}}
spec:
  retries: 5
  retryPolicy: {{limit: 2, onExitCodes: [1]}}
  groups:
  - name: g
    jobs:
    - {{name: retried, image: {image}, parallel: true, {one}}}
    - {{name: fatal, image: {image}, parallel: true, {three}}}
"#
    ))
    .await?;
    let done = wait_run(
        &w.api::<ManagedJob>(),
        name,
        "the workflow Failed with both jobs failed",
        |r: &RunStatus| r.phase == Some(Phase::Failed),
        |mj: &ManagedJob| mj.status.as_ref().map(|s| &s.run),
    )
    .await?;
    let jobs = &done.status.as_ref().context("status")?.jobs;

    let retried = entry(jobs, "g/retried")?;
    ensure!(
        retried.phase == StepPhase::Failed
            && retried.reason.as_deref() == Some("BackoffLimitExceeded")
            && retried.exit_code.is_none(),
        "{retried:?}"
    );
    let job = w.api::<Job>().get("wf-g-retried").await?;
    ensure!(
        policy_of(&job) == (Some(2), vec!["FailJob NotIn [1]".to_owned()]),
        "retryPolicy.limit wins over retries, onExitCodes maps to FailJob NotIn: {:?}",
        policy_of(&job)
    );
    let codes = failed_exit_codes(&w, "wf-g-retried").await?;
    ensure!(codes == [1, 1, 1], "three pods failed with 1: {codes:?}");

    let fatal = entry(jobs, "g/fatal")?;
    ensure!(
        fatal.phase == StepPhase::Failed
            && fatal.reason.as_deref() == Some("PodFailurePolicy")
            && fatal.exit_code == Some(3),
        "{fatal:?}"
    );
    let codes = failed_exit_codes(&w, "wf-g-fatal").await?;
    ensure!(codes == [3], "one pod, not retried: {codes:?}");

    let out = tokio::process::Command::new(plugin_binary())
        .args(["status", name, "-n", w.name(), "--job", "g/fatal"])
        .output()
        .await
        .context("running kubectl-jobsmith (make build)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && text.contains("Reason:    PodFailurePolicy\n")
            && text.contains("Exit Code: 3\n"),
        "kubectl jobsmith status --job g/fatal: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn ignored_exit_codes_are_not_counted() -> Result<()> {
    let w = World::new("retry-ignore").await?;
    let name = "flow";
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: {name}}}
spec:
  retryPolicy: {{limit: 3, onPodConditions: [{{type: DisruptionTarget}}]}}
  flows:
  - name: ignored
    retryPolicy: {{limit: 0, ignoreExitCodes: [42]}}
    jobTemplate:
      activeDeadlineSeconds: 25
      template:
        metadata:
          labels: {{{label}: {fail}}}
          annotations: {{{code}: '42', {duration}: '200'}}
        spec:
          containers: [{{name: main, image: {image}}}]
"#,
        label = fake_pod::OUTCOME_LABEL,
        fail = fake_pod::OUTCOME_FAIL,
        code = fake_pod::EXIT_CODE_ANNOTATION,
        duration = fake_pod::DURATION_ANNOTATION,
        image = fake_pod::IMAGE,
    ))
    .await?;
    let done = wait_run(
        &w.api::<JobFlow>(),
        name,
        "the flow failed by its deadline",
        |r: &RunStatus| r.phase == Some(Phase::Failed),
        |jf: &JobFlow| jf.status.as_ref().map(|s| &s.run),
    )
    .await?;
    let flows = &done.status.as_ref().context("status")?.flows;
    let ignored = entry(flows, "ignored")?;
    ensure!(
        ignored.reason.as_deref() == Some("DeadlineExceeded") && ignored.exit_code.is_none(),
        "with limit 0 a counted failure would be BackoffLimitExceeded: {ignored:?}"
    );
    let job = w.api::<Job>().get("flow-ignored").await?;
    ensure!(
        policy_of(&job)
            == (
                Some(0),
                vec!["Ignore conditions".to_owned(), "Ignore In [42]".to_owned()]
            ),
        "the flow's policy with the run's onPodConditions: {:?}",
        policy_of(&job)
    );
    let codes = failed_exit_codes(&w, "flow-ignored").await?;
    println!("ignored_pods_failed_with_42: {}", codes.len());
    ensure!(
        codes.len() >= 2 && codes.iter().all(|c| *c == 42),
        "pods failing with 42 were replaced, not counted: {codes:?}"
    );
    Ok(())
}
