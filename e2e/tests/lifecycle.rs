//! The run lifecycle controls on the local plane (docs/lifecycle.md "Deadline of the whole run"
//! and "Cleanup"):
//!
//! - a ManagedJob whose deadline passes while its second step runs: the running Job is stopped
//!   (its own `activeDeadlineSeconds` shortened, the Job controller fails it with
//!   `DeadlineExceeded`; never deleted), the later step is never created, the run is `Failed`
//!   with `Stalled=True` reason `DeadlineExceeded` and one Warning Event, and it stays so after a
//!   manager restart;
//! - `jobsCleanup.onSuccess: Delete`: the Jobs (and pods) of a succeeded JobFlow are deleted, the
//!   run keeps `Succeeded`, its step entries and record, across a manager restart, nothing is
//!   created again; `onFailure: Keep` keeps the Jobs of a failed one; `onFailure: Delete` deletes
//!   them and a retry in place afterwards still runs the failed step as its next attempt;
//! - `ttlSecondsAfterFinished: 2`: the run object is deleted about 2 s after it finished, and its
//!   Jobs by garbage collection.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::labels::RETRY_REQUESTED_AT;
use jobsmith_api::{JobFlow, ManagedJob, Phase, RunStatus, StepPhase, reasons};
use jobsmith_e2e::{eventually, fake_pod, job_creates, kubectl_ok, list_pods_selected};
use jobsmith_engine::build::naming::attempt_name;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use support::{World, condition, family_sum, has_condition, wait_run};

fn mj_run(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

fn jf_run(jf: &JobFlow) -> Option<&RunStatus> {
    jf.status.as_ref().map(|s| &s.run)
}

/// The reason of the Job's final failure signal (`FailureTarget` comes first, then `Failed`).
fn job_failure_reason(job: &Job) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| matches!(c.type_.as_str(), "FailureTarget" | "Failed") && c.status == "True")
        .and_then(|c| c.reason.clone())
}

/// A ManagedJob: `quick` (0.5 s), then `slow` (60 s), then `never`; a deadline of 4 s.
fn deadline_workflow(name: &str) -> String {
    let image = fake_pod::IMAGE;
    let slow = format!(
        "params: {{annotations: {{{}: \"60000\"}}}}",
        fake_pod::DURATION_ANNOTATION
    );
    let quick = format!(
        "params: {{annotations: {{{}: \"500\"}}}}",
        fake_pod::DURATION_ANNOTATION
    );
    format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {name}}}
spec:
  retries: 0
  activeDeadlineSeconds: 4
  groups:
  - name: g
    jobs:
    - {{name: quick, image: {image}, {quick}}}
    - {{name: slow, image: {image}, {slow}}}
    - {{name: never, image: {image}}}
"#
    )
}

#[tokio::test]
async fn a_deadline_hit_mid_run_stops_the_running_job_and_starts_nothing_more() -> Result<()> {
    let mut w = World::new("deadline").await?;
    let ns = w.name().to_owned();
    let name = "wf";
    w.apply(&deadline_workflow(name)).await?;
    let api = w.api::<ManagedJob>();
    let failed = wait_run(
        &api,
        name,
        "the run Failed at its deadline",
        |r| r.phase == Some(Phase::Failed),
        mj_run,
    )
    .await?;
    let run = mj_run(&failed).context("status")?;
    let stalled = condition(run, "Stalled").context("Stalled")?;
    ensure!(
        stalled.status == "True" && stalled.reason == reasons::DEADLINE_EXCEEDED,
        "{run:?}"
    );
    ensure!(
        has_condition(run, "Ready", "False") && has_condition(run, "Failed", "True"),
        "{run:?}"
    );
    ensure!(
        run.message
            .as_deref()
            .is_some_and(|m| m.starts_with("deadline exceeded")),
        "{:?}",
        run.message
    );
    // On time: the run failed a few seconds after the deadline (the Job controller's own sync).
    let start = run.start_time.as_ref().context("startTime")?.0;
    let end = run.completion_time.as_ref().context("completionTime")?.0;
    let took = start.duration_until(end).as_secs_f64();
    println!("deadline_to_failed_s={:.1}", took - 4.0);
    ensure!(
        (4.0..15.0).contains(&took),
        "Failed {took} s after the start"
    );

    let entries = &failed.status.as_ref().context("status")?.jobs;
    let phase = |key: &str| entries.iter().find(|e| e.key == key).map(|e| e.phase);
    ensure!(
        phase("g/quick") == Some(StepPhase::Succeeded)
            && phase("g/slow") == Some(StepPhase::Failed)
            && phase("g/never") == Some(StepPhase::Aborted),
        "{entries:?}"
    );
    // The slow Job was stopped, not deleted: it is there, failed by the Job controller with
    // DeadlineExceeded, its own deadline shortened; `never` was never created.
    let jobs = w
        .owned_jobs(failed.uid().as_deref().unwrap_or_default())
        .await?;
    let slow = jobs
        .get(&format!("{name}-g-slow"))
        .context("the slow Job is gone")?;
    ensure!(
        job_failure_reason(slow).as_deref() == Some("DeadlineExceeded"),
        "{:?}",
        slow.status
    );
    ensure!(
        slow.spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .is_some(),
        "the slow Job has no activeDeadlineSeconds"
    );
    ensure!(
        jobs.len() == 2,
        "Jobs: {:?}",
        jobs.keys().collect::<Vec<_>>()
    );
    let (_, type_, message) = w.wait_first_event(name, reasons::DEADLINE_EXCEEDED).await?;
    ensure!(type_ == "Warning", "{type_} {message}");

    // A restarted manager decides the same from spec and status: nothing created, still Failed.
    w.restart_manager().await?;
    eventually(
        "the new manager reconciled",
        Duration::from_secs(60),
        || async {
            let text = w.metrics().await?;
            Ok((family_sum(&text, "jobsmith_reconcile_total") >= 1.0).then_some(()))
        },
    )
    .await?;
    let again = api.get(name).await?;
    let run = mj_run(&again).context("status")?;
    ensure!(
        run.phase == Some(Phase::Failed)
            && condition(run, "Stalled").is_some_and(|c| c.reason == reasons::DEADLINE_EXCEEDED),
        "{run:?}"
    );
    let creates = job_creates(&ns)?;
    ensure!(
        creates.len() == 2 && creates.values().all(|n| *n == 1),
        "creates: {creates:?}"
    );
    Ok(())
}

/// A JobFlow chain `a -> b -> c` (0.3 s each) with `jobsCleanup`; `b` fails when `fail` says so
/// (`fail` or `fail-first-attempt`).
fn cleanup_flow(name: &str, cleanup: &str, fail: Option<&str>) -> String {
    let image = fake_pod::IMAGE;
    let duration = fake_pod::DURATION_ANNOTATION;
    let flow = |flow: &str, deps: &str, outcome: Option<&str>| {
        let labels = outcome.map_or(String::new(), |o| {
            format!(", labels: {{{}: {o}}}", fake_pod::OUTCOME_LABEL)
        });
        format!(
            "  - name: {flow}\n    dependencies: [{deps}]\n    jobTemplate:\n      template:\n        metadata: {{annotations: {{{duration}: \"300\"}}{labels}}}\n        spec: {{containers: [{{name: main, image: {image}}}]}}\n"
        )
    };
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n  jobsCleanup: {cleanup}\n  flows:\n{}{}{}",
        flow("a", "", None),
        flow("b", "a", fail),
        flow("c", "b", None)
    )
}

#[tokio::test]
async fn jobs_cleanup_deletes_or_keeps_the_jobs_and_the_run_keeps_its_history() -> Result<()> {
    let mut w = World::new("cleanup").await?;
    let ns = w.name().to_owned();
    let api = w.api::<JobFlow>();
    w.apply(&cleanup_flow(
        "ok",
        "{onSuccess: Delete, onFailure: Keep}",
        None,
    ))
    .await?;
    w.apply(&cleanup_flow(
        "kept",
        "{onSuccess: Delete, onFailure: Keep}",
        Some(fake_pod::OUTCOME_FAIL),
    ))
    .await?;
    w.apply(&cleanup_flow(
        "retried",
        "{onFailure: Delete}",
        Some(fake_pod::OUTCOME_FAIL_FIRST_ATTEMPT),
    ))
    .await?;

    // onSuccess: Delete: the run succeeds, then its Jobs and their pods go.
    let ok = wait_run(
        &api,
        "ok",
        "ok Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        jf_run,
    )
    .await?;
    let ok_uid = ok.uid().unwrap_or_default();
    let finished = std::time::Instant::now();
    eventually(
        "the Jobs of ok deleted",
        Duration::from_secs(30),
        || async { Ok(w.owned_jobs(&ok_uid).await?.is_empty().then_some(())) },
    )
    .await?;
    println!(
        "cleanup_after_success_ms={}",
        finished.elapsed().as_millis()
    );
    eventually(
        "the pods of ok deleted",
        Duration::from_secs(30),
        || async {
            let pods = list_pods_selected(&w.client, &ns, "jobsmith.dev/owner-name=ok").await?;
            Ok(pods.is_empty().then_some(()))
        },
    )
    .await?;
    let history = |jf: &JobFlow| -> Result<()> {
        let status = jf.status.as_ref().context("status")?;
        ensure!(status.run.phase == Some(Phase::Succeeded), "{status:?}");
        ensure!(
            status.flows.len() == 3
                && status.flows.iter().all(|f| f.phase == StepPhase::Succeeded
                    && f.job_name.is_some()
                    && f.reason.is_none()),
            "{:?}",
            status.flows
        );
        let record = status.run.record.as_ref().context("record")?;
        ensure!(
            record.succeeded == "0-2" && record.lost.is_empty(),
            "{record:?}"
        );
        Ok(())
    };
    // A reconcile after the Jobs are gone (their deletion triggers one) keeps the history.
    tokio::time::sleep(Duration::from_secs(2)).await;
    history(&api.get("ok").await?)?;

    // onFailure: Keep: the failed run's Jobs stay.
    let kept = wait_run(
        &api,
        "kept",
        "kept Failed",
        |r| r.phase == Some(Phase::Failed),
        jf_run,
    )
    .await?;
    let kept_uid = kept.uid().unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept_jobs = w.owned_jobs(&kept_uid).await?;
    ensure!(
        kept_jobs.len() == 2
            && kept_jobs
                .values()
                .all(|j| j.metadata.deletion_timestamp.is_none()),
        "kept: {:?}",
        kept_jobs.keys().collect::<Vec<_>>()
    );

    // onFailure: Delete, then a retry in place: the failed step runs as attempt 2, what had
    // succeeded is not run again.
    let failed = wait_run(
        &api,
        "retried",
        "retried Failed",
        |r| r.phase == Some(Phase::Failed),
        jf_run,
    )
    .await?;
    let retried_uid = failed.uid().unwrap_or_default();
    eventually(
        "the Jobs of retried deleted",
        Duration::from_secs(30),
        || async { Ok(w.owned_jobs(&retried_uid).await?.is_empty().then_some(())) },
    )
    .await?;
    let after_cleanup = api.get("retried").await?;
    let status = after_cleanup.status.as_ref().context("status")?;
    ensure!(
        status.run.phase == Some(Phase::Failed)
            && status.flows.iter().map(|f| f.phase).collect::<Vec<_>>()
                == [StepPhase::Succeeded, StepPhase::Failed, StepPhase::Aborted]
            // b keeps its Job's failure reason (the status history); nothing became Lost.
            && status.flows.iter().map(|f| f.reason.as_deref()).collect::<Vec<_>>()
                == [None, Some("BackoffLimitExceeded"), None],
        "{status:?}"
    );
    kubectl_ok(&[
        "annotate",
        "-n",
        &ns,
        "jobflow.jobsmith.dev/retried",
        &format!("{RETRY_REQUESTED_AT}={}", Timestamp::now()),
    ])
    .await?;
    let done = wait_run(
        &api,
        "retried",
        "retried Succeeded after the retry",
        |r| r.phase == Some(Phase::Succeeded),
        jf_run,
    )
    .await?;
    let b = done
        .status
        .as_ref()
        .and_then(|s| s.flows.iter().find(|f| f.key == "b"))
        .context("flow b")?;
    ensure!(
        b.attempt == Some(2)
            && b.job_name.as_deref() == Some(attempt_name("retried-b", 2).as_str()),
        "{b:?}"
    );

    // A restarted manager: every history stays, nothing is created again.
    w.restart_manager().await?;
    eventually(
        "the new manager reconciled",
        Duration::from_secs(60),
        || async {
            let text = w.metrics().await?;
            Ok((family_sum(&text, "jobsmith_reconcile_total") >= 3.0).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    history(&api.get("ok").await?)?;
    let creates = job_creates(&ns)?;
    ensure!(creates.values().all(|n| *n == 1), "creates: {creates:?}");
    let mut names: Vec<&str> = creates.keys().map(String::as_str).collect();
    names.sort_unstable();
    let retried_b = attempt_name("retried-b", 2);
    let mut expected = vec![
        "kept-a",
        "kept-b",
        "ok-a",
        "ok-b",
        "ok-c",
        "retried-a",
        "retried-b",
        "retried-c",
        retried_b.as_str(),
    ];
    expected.sort_unstable();
    ensure!(names == expected, "creates: {names:?}");
    Ok(())
}

#[tokio::test]
async fn ttl_seconds_after_finished_deletes_the_run_and_its_jobs() -> Result<()> {
    let w = World::new("ttl").await?;
    let image = fake_pod::IMAGE;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: short-lived}}
spec:
  retries: 0
  ttlSecondsAfterFinished: 2
  groups:
  - name: g
    jobs:
    - {{name: a, image: {image}}}
"#
    ))
    .await?;
    let api = w.api::<ManagedJob>();
    let done = wait_run(
        &api,
        "short-lived",
        "short-lived Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        mj_run,
    )
    .await?;
    let uid = done.uid().unwrap_or_default();
    let completed = mj_run(&done)
        .and_then(|r| r.completion_time.clone())
        .context("completionTime")?
        .0;
    jobsmith_e2e::wait_deleted(&api, "short-lived", Duration::from_secs(30)).await?;
    let gone_after = completed.duration_until(Timestamp::now()).as_secs_f64();
    println!("ttl_2s_deleted_after_completion_s={gone_after:.1}");
    ensure!(
        (2.0..10.0).contains(&gone_after),
        "deleted {gone_after} s after completion"
    );
    // kube-controller-manager's garbage collector removes them; on a plane whose CRDs were
    // installed moments ago it may first wait for its discovery resync (30 s) to know the owner's
    // kind, so the wait is longer than that.
    eventually("its Jobs collected", Duration::from_secs(90), || async {
        Ok(w.owned_jobs(&uid).await?.is_empty().then_some(()))
    })
    .await?;
    Ok(())
}
