//! Retry in place and resubmit (docs/lifecycle.md "Retry in place"), end to end with the real
//! kubectl plugin: a 10-step ManagedJob whose two independent branches fail on their first
//! attempt (pods labelled `jobsmith.dev/e2e-outcome: fail-first-attempt` fail unless they carry
//! the `jobsmith.dev/attempt` label of attempt 2 and later: e2e/kwok/pod-fail-first-attempt.yaml)
//! is retried with `kubectl jobsmith retry`: exactly the failed steps get a new attempt's Job
//! and what did not run downstream of them runs, each Job created once (audit log), and the run
//! succeeds; the request is acted on once (removed and re-applied with the same value, across a
//! manager restart, nothing happens); an unparsable value is recorded as rejected; resubmit
//! creates a new object that runs.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::labels::RETRY_REQUESTED_AT;
use jobsmith_api::{ManagedJob, Phase, RunStatus};
use jobsmith_e2e::{eventually, fake_pod, job_creates, kubectl_ok, plugin_binary};
use jobsmith_engine::build::naming::attempt_name;
use support::{World, family_sum, wait_run};

/// Runs the plugin; (exit code, stdout, stderr).
async fn plugin(args: &[&str]) -> Result<(Option<i32>, String, String)> {
    let out = tokio::process::Command::new(plugin_binary())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running kubectl-jobsmith (make build)")?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn run_of(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

async fn wait_until(
    w: &World,
    name: &str,
    what: &str,
    check: impl Fn(&RunStatus) -> bool,
) -> Result<ManagedJob> {
    wait_run(&w.api::<ManagedJob>(), name, what, check, run_of).await
}

/// prep -> {left: l1, l2, l3 | right: r1, r2, r3 | mid: m1, m2} -> final: z. l2 and r1 fail on
/// their first attempt; l3, r2, r3 (after them in their groups) and z are then aborted.
fn workflow(name: &str) -> String {
    let fail = format!(
        "params: {{labels: {{{}: {}}}}}",
        fake_pod::OUTCOME_LABEL,
        fake_pod::OUTCOME_FAIL_FIRST_ATTEMPT
    );
    let image = fake_pod::IMAGE;
    format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {name}, labels: {{team: retry}}}}
spec:
  retries: 0
  groups:
  - name: prep
    jobs:
    - {{name: a, image: {image}}}
  - name: left
    parallel: true
    dependencies: [{{name: prep}}]
    jobs:
    - {{name: l1, image: {image}}}
    - {{name: l2, image: {image}, {fail}}}
    - {{name: l3, image: {image}}}
  - name: right
    parallel: true
    dependencies: [{{name: prep}}]
    jobs:
    - {{name: r1, image: {image}, {fail}}}
    - {{name: r2, image: {image}}}
    - {{name: r3, image: {image}}}
  - name: mid
    parallel: true
    dependencies: [{{name: prep}}]
    jobs:
    - {{name: m1, image: {image}}}
    - {{name: m2, image: {image}}}
  - name: final
    jobs:
    - {{name: z, image: {image}}}
"#
    )
}

fn attempt_of(mj: &ManagedJob, key: &str) -> Option<u32> {
    mj.status
        .as_ref()?
        .jobs
        .iter()
        .find(|e| e.key == key)?
        .attempt
}

#[tokio::test]
async fn two_failed_branches_are_retried_in_place_once_and_resubmit_makes_a_new_run() -> Result<()>
{
    let mut w = World::new("retry").await?;
    let ns = w.name().to_owned();
    let name = "wf";
    w.apply(&workflow(name)).await?;
    wait_until(&w, name, "the first attempt Failed", |r| {
        r.phase == Some(Phase::Failed)
    })
    .await?;
    let first: Vec<String> = [
        "prep-a", "left-l1", "left-l2", "right-r1", "mid-m1", "mid-m2",
    ]
    .iter()
    .map(|s| format!("{name}-{s}"))
    .collect();
    let creates = job_creates(&ns)?;
    ensure!(
        creates.keys().cloned().collect::<Vec<_>>() == {
            let mut f = first.clone();
            f.sort();
            f
        },
        "first attempt creates: {creates:?}"
    );

    // An unknown step is refused by the plugin, and nothing is written.
    let (code, _, stderr) = plugin(&["retry", name, "-n", &ns, "--step", "left/nope"]).await?;
    ensure!(
        code == Some(1) && stderr.contains("has no step left/nope"),
        "{code:?} {stderr}"
    );

    let (code, stdout, stderr) = plugin(&["retry", name, "-n", &ns]).await?;
    ensure!(code == Some(0), "retry: {code:?} {stdout} {stderr}");
    ensure!(stdout.contains("retry requested at"), "{stdout}");
    let done = wait_until(&w, name, "the retried run Succeeded", |r| {
        r.phase == Some(Phase::Succeeded) && r.retries.len() == 1
    })
    .await?;
    let run = run_of(&done).context("status")?;
    let entry = &run.retries[0];
    ensure!(
        entry.step_count == 2 && entry.steps == ["left/l2", "right/r1"] && entry.rejected.is_none(),
        "{entry:?}"
    );
    ensure!(run.completion_time.is_some() && run.retry_count == Some(1));
    ensure!(attempt_of(&done, "left/l2") == Some(2) && attempt_of(&done, "right/r1") == Some(2));
    ensure!(attempt_of(&done, "left/l1").is_none() && attempt_of(&done, "final/z").is_none());
    // Exactly the failed steps' new attempts and what had not run: each created once.
    let mut expected = first.clone();
    expected.extend([
        attempt_name(&format!("{name}-left-l2"), 2),
        attempt_name(&format!("{name}-right-r1"), 2),
        format!("{name}-left-l3"),
        format!("{name}-right-r2"),
        format!("{name}-right-r3"),
        format!("{name}-final-z"),
    ]);
    expected.sort();
    let creates = job_creates(&ns)?;
    ensure!(
        creates.keys().cloned().collect::<Vec<_>>() == expected
            && creates.values().all(|n| *n == 1),
        "creates after the retry: {creates:?}, expected {expected:?}"
    );

    // The same value removed and applied again (a GitOps sync), seen by a fresh manager too:
    // nothing happens.
    let value = done
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETRY_REQUESTED_AT))
        .cloned()
        .context("the retry annotation")?;
    let target = format!("managedjob.jobsmith.dev/{name}");
    kubectl_ok(&[
        "annotate",
        "-n",
        &ns,
        &target,
        &format!("{RETRY_REQUESTED_AT}-"),
    ])
    .await?;
    kubectl_ok(&[
        "annotate",
        "-n",
        &ns,
        &target,
        &format!("{RETRY_REQUESTED_AT}={value}"),
    ])
    .await?;
    w.restart_manager().await?;
    eventually(
        "the new manager reconciled the ManagedJob",
        Duration::from_secs(60),
        || async {
            let text = w.metrics().await?;
            Ok((family_sum(&text, "jobsmith_reconcile_total") >= 1.0).then_some(()))
        },
    )
    .await?;
    let again = w.api::<ManagedJob>().get(name).await?;
    let run = run_of(&again).context("status")?;
    ensure!(
        run.phase == Some(Phase::Succeeded) && run.retries.len() == 1,
        "{run:?}"
    );
    ensure!(
        job_creates(&ns)? == creates,
        "a re-applied request created Jobs"
    );

    // An unparsable value is recorded as rejected, once, and nothing runs.
    kubectl_ok(&[
        "annotate",
        "--overwrite",
        "-n",
        &ns,
        &target,
        &format!("{RETRY_REQUESTED_AT}=yesterday"),
    ])
    .await?;
    let rejected = wait_until(&w, name, "the rejected request recorded", |r| {
        r.retries.len() == 2
    })
    .await?;
    let run = run_of(&rejected).context("status")?;
    ensure!(
        run.retries[1]
            .rejected
            .as_deref()
            .is_some_and(|m| m.contains("not an RFC 3339 time"))
            && run.retries[1].step_count == 0
            && run.phase == Some(Phase::Succeeded),
        "{:?}",
        run.retries
    );
    w.wait_event(name, "RetryRejected").await?;

    // Resubmit: a new object from the spec, which runs on its own.
    let (code, stdout, stderr) = plugin(&["resubmit", name, "-n", &ns]).await?;
    ensure!(code == Some(0), "resubmit: {code:?} {stdout} {stderr}");
    let created = stdout
        .trim()
        .strip_prefix("managedjob.jobsmith.dev/")
        .and_then(|s| s.strip_suffix(" created"))
        .with_context(|| format!("resubmit printed {stdout:?}"))?
        .to_owned();
    ensure!(created.starts_with("wf-") && created != name, "{created}");
    let new = wait_until(&w, &created, "the resubmitted run finished", |r| {
        r.phase.is_some_and(Phase::is_terminal)
    })
    .await?;
    let annotations = new.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        !annotations.contains_key(RETRY_REQUESTED_AT),
        "{annotations:?}"
    );
    ensure!(
        new.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str)
            == Some("retry")
    );
    ensure!(run_of(&new).is_some_and(|r| r.retries.is_empty()));
    let new_creates = job_creates(&ns)?
        .into_iter()
        .filter(|(job, _)| job.starts_with(&format!("{created}-")))
        .count();
    ensure!(
        new_creates == 6,
        "the resubmitted run created {new_creates} Jobs"
    );
    Ok(())
}
