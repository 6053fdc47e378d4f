//! Exit steps (`spec.onExit`, docs/lifecycle.md "Exit steps"), end to end: an exit step's Job
//! is created only after every other step's Job finished (its creationTimestamp is not before
//! any of their finish times; the last other step runs 3 s so that an early create would show),
//! exactly once (audit log), with `JOBSMITH_RUN_PHASE`, `JOBSMITH_FAILED_STEPS` and
//! `JOBSMITH_RUN_NAME` in its env as read back from the Job; the run's final phase; the exit
//! steps as their own group in the ManagedJob's status (`onExit`) and marked `onExit: true` in
//! the step entries.

mod support;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, ManagedJob, Phase, RunStatus, StepEntry, StepPhase};
use jobsmith_e2e::{fake_pod, job_creates};
use k8s_openapi::api::batch::v1::Job;
use support::{World, created_at, finished_at, job_env, wait_run};

const RUN_PHASE: &str = "JOBSMITH_RUN_PHASE";
const FAILED_STEPS: &str = "JOBSMITH_FAILED_STEPS";
const RUN_NAME: &str = "JOBSMITH_RUN_NAME";

/// A fake pod that runs `ms` milliseconds and fails when `fail`: the params of a ManagedJob job.
fn pod_params(ms: u32, fail: bool) -> String {
    let labels = if fail {
        format!(
            ", labels: {{{}: {}}}",
            fake_pod::OUTCOME_LABEL,
            fake_pod::OUTCOME_FAIL
        )
    } else {
        String::new()
    };
    format!(
        "params: {{annotations: {{{}: \"{ms}\"}}{labels}}}",
        fake_pod::DURATION_ANNOTATION
    )
}

/// build: compile -> test (3 s, fails when `test_fails`) -> package; docs (parallel group);
/// onExit: report -> notify (notify fails when `exit_fails`).
fn workflow(name: &str, test_fails: bool, exit_fails: bool) -> String {
    let image = fake_pod::IMAGE;
    let quick = pod_params(300, false);
    format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {name}}}
spec:
  retries: 0
  groups:
  - name: build
    jobs:
    - {{name: compile, image: {image}, {quick}}}
    - {{name: test, image: {image}, {test}}}
    - {{name: package, image: {image}, {quick}}}
  - name: docs
    parallel: true
    jobs:
    - {{name: site, image: {image}, {quick}}}
  onExit:
  - {{name: report, image: {image}, {quick}}}
  - {{name: notify, image: {image}, {notify}}}
"#,
        test = pod_params(3000, test_fails),
        notify = pod_params(300, exit_fails),
    )
}

fn mj_run(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

fn env_of(job: &Job) -> BTreeMap<String, String> {
    job_env(job).into_iter().collect()
}

/// Every exit Job was created after every other Job finished, and carries `env`.
fn check_exit_jobs(
    jobs: &BTreeMap<String, Job>,
    exit_jobs: &[String],
    env: &[(&str, &str)],
) -> Result<()> {
    let others_finished = jobs
        .iter()
        .filter(|(name, _)| !exit_jobs.contains(name))
        .map(|(_, job)| finished_at(job))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max()
        .context("no other Job")?;
    for name in exit_jobs {
        let job = jobs.get(name).with_context(|| format!("exit Job {name}"))?;
        let created = created_at(job)?;
        ensure!(
            created >= others_finished,
            "exit Job {name} created at {created}, before the last other Job finished at {others_finished}"
        );
        let found = env_of(job);
        for (key, value) in env {
            ensure!(
                found.get(*key).map(String::as_str) == Some(*value),
                "{name}: {key}={:?}, expected {value:?} (env {found:?})",
                found.get(*key)
            );
        }
    }
    Ok(())
}

fn entry<'a>(entries: &'a [StepEntry], key: &str) -> Result<&'a StepEntry> {
    entries
        .iter()
        .find(|e| e.key == key)
        .with_context(|| format!("no entry {key} in {entries:?}"))
}

/// Runs the workflow to its end and checks the exit steps; returns the final ManagedJob.
async fn run_workflow(
    w: &World,
    name: &str,
    (test_fails, exit_fails): (bool, bool),
    expected: (Phase, &[(&str, &str)]),
) -> Result<ManagedJob> {
    w.apply(&workflow(name, test_fails, exit_fails)).await?;
    let done = wait_run(
        &w.api::<ManagedJob>(),
        name,
        "the run finished",
        |r| r.phase.is_some_and(Phase::is_terminal),
        mj_run,
    )
    .await?;
    let (phase, env) = expected;
    let status = done.status.as_ref().context("status")?;
    ensure!(status.run.phase == Some(phase), "{:?}", status.run);
    let uid = done.metadata.uid.clone().context("uid")?;
    let jobs = w.owned_jobs(&uid).await?;
    let exit_jobs = vec![
        format!("{name}-onexit-report"),
        format!("{name}-onexit-notify"),
    ];
    check_exit_jobs(&jobs, &exit_jobs, env)?;
    // notify waits for report (list order inside onExit, as in a group).
    ensure!(
        created_at(&jobs[&exit_jobs[1]])? >= finished_at(&jobs[&exit_jobs[0]])?,
        "notify started before report finished"
    );
    let group = status
        .groups
        .iter()
        .find(|g| g.name == "onExit")
        .with_context(|| format!("no group onExit in {:?}", status.groups))?;
    ensure!(group.counts.total == 2, "{group:?}");
    for key in ["onExit/report", "onExit/notify"] {
        ensure!(entry(&status.jobs, key)?.on_exit, "{key} not marked onExit");
    }
    ensure!(!entry(&status.jobs, "build/compile")?.on_exit);
    ensure!(
        status.run.progress.as_deref() == Some("6/6"),
        "{:?}",
        status.run.progress
    );
    // Each Job exactly once (audit log).
    let creates = job_creates(w.name())?;
    let ours: Vec<(&String, &usize)> = creates
        .iter()
        .filter(|(job, _)| job.starts_with(&format!("{name}-")))
        .collect();
    ensure!(
        ours.len() == jobs.len() && ours.iter().all(|(_, n)| **n == 1),
        "creates {ours:?} for Jobs {:?}",
        jobs.keys().collect::<Vec<_>>()
    );
    Ok(done)
}

#[tokio::test]
async fn exit_steps_run_after_a_success_and_after_a_failure_with_the_outcome_in_their_env()
-> Result<()> {
    let w = World::new("onexit").await?;
    let ok = run_workflow(
        &w,
        "ok",
        (false, false),
        (
            Phase::Succeeded,
            &[
                (RUN_PHASE, "Succeeded"),
                (FAILED_STEPS, ""),
                (RUN_NAME, "ok"),
            ],
        ),
    )
    .await?;
    let group = &ok.status.as_ref().context("status")?.groups;
    ensure!(
        group
            .iter()
            .any(|g| g.name == "onExit" && g.phase == StepPhase::Succeeded),
        "{group:?}"
    );

    let failed = run_workflow(
        &w,
        "bad",
        (true, false),
        (
            Phase::Failed,
            &[
                (RUN_PHASE, "Failed"),
                (FAILED_STEPS, "build/test"),
                (RUN_NAME, "bad"),
            ],
        ),
    )
    .await?;
    let status = failed.status.as_ref().context("status")?;
    ensure!(entry(&status.jobs, "build/package")?.phase == StepPhase::Aborted);
    ensure!(entry(&status.jobs, "onExit/notify")?.phase == StepPhase::Succeeded);
    Ok(())
}

#[tokio::test]
async fn a_failed_exit_step_fails_a_run_that_succeeded() -> Result<()> {
    let w = World::new("onexit-fail").await?;
    let done = run_workflow(
        &w,
        "wf",
        (false, true),
        (
            Phase::Failed,
            &[
                (RUN_PHASE, "Succeeded"),
                (FAILED_STEPS, ""),
                (RUN_NAME, "wf"),
            ],
        ),
    )
    .await?;
    let status = done.status.as_ref().context("status")?;
    ensure!(entry(&status.jobs, "onExit/notify")?.phase == StepPhase::Failed);
    let group = status.groups.iter().find(|g| g.name == "onExit");
    ensure!(
        group.is_some_and(|g| g.phase == StepPhase::Failed),
        "{:?}",
        status.groups
    );
    Ok(())
}

/// extract fails (fail-fast, the JobFlow default: load never starts), slow runs 3 s; then the
/// exit flows cleanup -> summary.
fn jobflow(name: &str) -> String {
    let flow = |flow: &str, deps: &str, ms: u32, fail: bool| {
        let labels = if fail {
            format!(
                ", labels: {{{}: {}}}",
                fake_pod::OUTCOME_LABEL,
                fake_pod::OUTCOME_FAIL
            )
        } else {
            String::new()
        };
        format!(
            "  - name: {flow}\n    dependencies: [{deps}]\n    jobTemplate:\n      template:\n        metadata: {{annotations: {{{}: \"{ms}\"}}{labels}}}\n        spec: {{containers: [{{name: main, image: {}}}]}}\n",
            fake_pod::DURATION_ANNOTATION,
            fake_pod::IMAGE
        )
    };
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n  flows:\n{}{}{}  onExit:\n{}{}",
        flow("extract", "", 300, true),
        flow("load", "extract", 300, false),
        flow("slow", "", 3000, false),
        flow("cleanup", "", 300, false),
        flow("summary", "cleanup", 300, false),
    )
}

#[tokio::test]
async fn exit_flows_run_after_fail_fast_stopped_the_jobflow() -> Result<()> {
    let w = World::new("onexit-jf").await?;
    let name = "jf";
    w.apply(&jobflow(name)).await?;
    let done = wait_run(
        &w.api::<JobFlow>(),
        name,
        "the JobFlow finished",
        |r| r.phase.is_some_and(Phase::is_terminal),
        |jf: &JobFlow| jf.status.as_ref().map(|s| &s.run),
    )
    .await?;
    let status = done.status.as_ref().context("status")?;
    ensure!(status.run.phase == Some(Phase::Failed), "{:?}", status.run);
    ensure!(entry(&status.flows, "load")?.phase == StepPhase::Aborted);
    for key in ["cleanup", "summary"] {
        let e = entry(&status.flows, key)?;
        ensure!(e.on_exit && e.phase == StepPhase::Succeeded, "{e:?}");
    }
    ensure!(!entry(&status.flows, "slow")?.on_exit);
    let uid = done.metadata.uid.clone().context("uid")?;
    let jobs = w.owned_jobs(&uid).await?;
    ensure!(!jobs.contains_key("jf-load"), "load ran");
    check_exit_jobs(
        &jobs,
        &["jf-cleanup".to_owned(), "jf-summary".to_owned()],
        &[
            (RUN_PHASE, "Failed"),
            (FAILED_STEPS, "extract"),
            (RUN_NAME, name),
        ],
    )?;
    ensure!(created_at(&jobs["jf-summary"])? >= finished_at(&jobs["jf-cleanup"])?);
    Ok(())
}
