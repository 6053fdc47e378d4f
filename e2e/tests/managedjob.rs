//! ManagedJob end to end (SPEC §1, §2): each test runs its own manager on its own namespace of
//! the real control plane and checks Jobs, Pods, status, Events and metrics.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{ManagedJob, Phase, RunStatus, StepPhase};
use jobsmith_e2e::{eventually, list_pods_selected, wait_deleted};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{
    World, condition, created_at, finished_at, has_condition, job_done, job_env, sample, wait_run,
};

const IMAGE: &str = "example.invalid/fake:1";

fn run_of(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

async fn wait_phase(w: &World, name: &str, phase: Phase) -> Result<ManagedJob> {
    wait_run(
        &w.api::<ManagedJob>(),
        name,
        &format!("ManagedJob {name} phase {phase:?}"),
        |r| r.phase == Some(phase),
        run_of,
    )
    .await
}

fn step_phase(mj: &ManagedJob, key: &str) -> Option<StepPhase> {
    mj.status
        .as_ref()?
        .jobs
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.phase)
}

fn uid(mj: &ManagedJob) -> String {
    mj.uid().unwrap_or_default()
}

async fn get_job(w: &World, name: &str) -> Result<Job> {
    w.api::<Job>()
        .get(name)
        .await
        .with_context(|| format!("reading Job {name}"))
}

fn count(events: &[(String, String, String)], reason: &str) -> usize {
    events.iter().filter(|e| e.0 == reason).count()
}

#[tokio::test]
async fn groups_run_in_order_and_parallel_work_does_not_wait() -> Result<()> {
    let w = World::with_flags("mj-order", &[support::ALL_STEP_EVENTS]).await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  retries: 0
  groups:
  - name: first
    jobs:
    - name: a
      image: {IMAGE}
      params: {{annotations: {{jobsmith.dev/e2e-duration: "3000"}}}}
    - name: b
      image: {IMAGE}
    - name: p
      parallel: true
      image: {IMAGE}
  - name: side
    parallel: true
    jobs:
    - name: c
      image: {IMAGE}
  - name: last
    jobs:
    - name: d
      image: {IMAGE}
"#
    ))
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Succeeded).await?;
    let run = run_of(&mj).context("status")?;
    assert_eq!(run.progress.as_deref(), Some("5/5"));
    assert!(has_condition(run, "Ready", "True"), "{run:?}");
    assert!(has_condition(run, "Complete", "True"), "{run:?}");
    assert!(has_condition(run, "Reconciling", "False"), "{run:?}");
    assert!(has_condition(run, "Stalled", "False"), "{run:?}");
    assert!(run.start_time.is_some() && run.completion_time.is_some());
    assert_eq!(run.observed_generation, mj.metadata.generation);

    let jobs = w.owned_jobs(&uid(&mj)).await?;
    let names: Vec<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "wf-first-a",
            "wf-first-b",
            "wf-first-p",
            "wf-last-d",
            "wf-side-c"
        ]
    );
    let (a, b, p) = (
        &jobs["wf-first-a"],
        &jobs["wf-first-b"],
        &jobs["wf-first-p"],
    );
    let (c, d) = (&jobs["wf-side-c"], &jobs["wf-last-d"]);
    // Sequential: b after a finished; parallel job p and parallel group side: at once.
    ensure!(
        created_at(b)? >= finished_at(a)?,
        "b started before a finished"
    );
    ensure!(
        created_at(p)? < finished_at(a)?,
        "the parallel job p waited for a"
    );
    ensure!(
        created_at(c)? < finished_at(a)?,
        "the parallel group waited for first"
    );
    // A sequential group waits for every group before it.
    for before in [a, b, p, c] {
        ensure!(
            created_at(d)? >= finished_at(before)?,
            "d started before {} finished",
            before.name_any()
        );
    }
    let groups = &mj.status.as_ref().context("status")?.groups;
    assert_eq!(groups.len(), 3);
    assert!(groups.iter().all(|g| g.phase == StepPhase::Succeeded));
    assert_eq!(groups[0].counts.succeeded, 3);

    let events = w.wait_event("wf", "Succeeded").await?;
    assert_eq!(count(&events, "JobCreated"), 5, "{events:?}");
    eventually("5 JobSucceeded Events", Duration::from_secs(20), || async {
        let events = w.events_of("wf").await?;
        Ok((count(&events, "JobSucceeded") == 5).then_some(()))
    })
    .await?;
    assert_eq!(count(&w.events_of("wf").await?, "Succeeded"), 1);

    let metrics = w.metrics().await?;
    let ns = w.name();
    for (series, want) in [
        (
            format!(
                "managedjob_jobs_created_total{{namespace=\"{ns}\",workflow=\"wf\",group=\"first\"}}"
            ),
            3.0,
        ),
        (
            format!(
                "managedjob_jobs_created_total{{namespace=\"{ns}\",workflow=\"wf\",group=\"side\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "managedjob_jobs_succeeded_total{{namespace=\"{ns}\",workflow=\"wf\",group=\"first\"}}"
            ),
            3.0,
        ),
        (
            format!("managedjob_active_jobs{{namespace=\"{ns}\",workflow=\"wf\"}}"),
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&metrics, &series),
            Some(want),
            "{series} in\n{metrics}"
        );
    }
    let observed = sample(
        &metrics,
        &format!(
            "managedjob_reconciliation_duration_seconds_count{{namespace=\"{ns}\",workflow=\"wf\"}}"
        ),
    );
    assert!(observed.is_some_and(|n| n >= 3.0), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn params_are_merged_down_to_the_pod_spec() -> Result<()> {
    let w = World::new("mj-params").await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata:
  name: params
  labels:
    team: data
    app.kubernetes.io/instance: gitops-tracking
    argocd.argoproj.io/instance: gitops
spec:
  retries: 3
  params:
    env: [{{name: LEVEL, value: workflow}}, {{name: FROM_WF, value: w}}]
    labels: {{tier: workflow, wf-only: "yes"}}
    annotations: {{note: workflow}}
    volumes: [{{name: scratch, emptyDir: {{}}}}]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
    resources: {{limits: {{cpu: "1", memory: 64Mi}}}}
  groups:
  - name: g
    params:
      env: [{{name: LEVEL, value: group}}, {{name: FROM_GROUP, value: g}}]
      labels: {{tier: group}}
      restartPolicy: Never
      imagePullPolicy: [Always]
      resources: {{limits: {{cpu: 500m}}}}
    jobs:
    - name: j
      image: {IMAGE}
      command: [sh, -c]
      args: [echo hello]
      params:
        env: [{{name: LEVEL, value: job}}, {{name: FROM_JOB, value: j}}]
        labels: {{tier: job}}
        annotations: {{jobsmith.dev/e2e-duration: "500"}}
"#
    ))
    .await?;
    let mj = wait_phase(&w, "params", Phase::Succeeded).await?;
    let job = get_job(&w, "params-g-j").await?;

    // env: the job's entries first, then the group's, then the workflow's, each name once.
    assert_eq!(
        job_env(&job),
        [
            ("LEVEL".to_owned(), "job".to_owned()),
            ("FROM_JOB".to_owned(), "j".to_owned()),
            ("FROM_GROUP".to_owned(), "g".to_owned()),
            ("FROM_WF".to_owned(), "w".to_owned()),
        ]
    );
    let spec = job.spec.as_ref().context("spec")?;
    assert_eq!(spec.backoff_limit, Some(3), "retries becomes backoffLimit");
    let labels = job.labels();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("jobsmith")
    );
    assert_eq!(
        labels.get("jobsmith.dev/owner-kind").map(String::as_str),
        Some("ManagedJob")
    );
    assert_eq!(
        labels.get("jobsmith.dev/owner-name").map(String::as_str),
        Some("params")
    );
    assert_eq!(
        labels.get("jobsmith.dev/group").map(String::as_str),
        Some("g")
    );
    assert_eq!(
        labels.get("jobsmith.dev/job").map(String::as_str),
        Some("j")
    );
    assert!(
        !labels.contains_key("app.kubernetes.io/instance")
            && !labels.keys().any(|k| k.starts_with("argocd.argoproj.io/")),
        "GitOps tracking labels were copied: {labels:?}"
    );
    let owner = &job.owner_references()[0];
    assert_eq!(owner.uid, uid(&mj));
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );

    // What reached the pod.
    let pods = list_pods_selected(
        &w.client,
        w.name(),
        "batch.kubernetes.io/job-name=params-g-j",
    )
    .await?;
    let pod: &Pod = pods.first().context("no pod")?;
    let pod_labels = pod.labels();
    assert_eq!(pod_labels.get("tier").map(String::as_str), Some("job"));
    assert_eq!(pod_labels.get("wf-only").map(String::as_str), Some("yes"));
    assert_eq!(
        pod_labels.get("jobsmith.dev/job").map(String::as_str),
        Some("j")
    );
    assert_eq!(
        pod.annotations().get("note").map(String::as_str),
        Some("workflow")
    );
    let pod_spec = pod.spec.as_ref().context("pod spec")?;
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
    let container = &pod_spec.containers[0];
    assert_eq!(container.image.as_deref(), Some(IMAGE));
    assert_eq!(
        container.command.as_deref(),
        Some(&["sh".to_owned(), "-c".to_owned()][..])
    );
    assert_eq!(
        container.args.as_deref(),
        Some(&["echo hello".to_owned()][..])
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .context("limits")?;
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("64Mi"));
    let mounts = container.volume_mounts.as_ref().context("mounts")?;
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "scratch" && m.mount_path == "/scratch")
    );
    let volumes = pod_spec.volumes.as_ref().context("volumes")?;
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "scratch" && v.empty_dir.is_some())
    );
    Ok(())
}

#[tokio::test]
async fn a_failure_aborts_dependents_and_independent_work_still_runs() -> Result<()> {
    let w = World::new("mj-failure").await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  retries: 1
  params: {{restartPolicy: Never}}
  groups:
  - name: build
    jobs:
    - name: broken
      image: {IMAGE}
      params: {{labels: {{jobsmith.dev/e2e-outcome: fail}}}}
    - name: after
      image: {IMAGE}
  - name: independent
    parallel: true
    jobs:
    - name: ok
      image: {IMAGE}
    - name: on-failure
      parallel: true
      image: {IMAGE}
      dependencies: [{{name: build/broken, status: failed}}]
    - name: always
      parallel: true
      image: {IMAGE}
      dependencies: [{{name: build/broken, status: completed}}]
    - name: on-success
      parallel: true
      image: {IMAGE}
      dependencies: [{{name: build/broken}}]
  - name: deploy
    jobs:
    - name: d
      image: {IMAGE}
"#
    ))
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Failed).await?;
    let run = run_of(&mj).context("status")?;
    for (key, phase) in [
        ("build/broken", StepPhase::Failed),
        ("build/after", StepPhase::Aborted),
        ("independent/ok", StepPhase::Succeeded),
        ("independent/on-failure", StepPhase::Succeeded),
        ("independent/always", StepPhase::Succeeded),
        ("independent/on-success", StepPhase::Aborted),
        ("deploy/d", StepPhase::Aborted),
    ] {
        assert_eq!(step_phase(&mj, key), Some(phase), "{key}: {run:?}");
    }
    assert!(has_condition(run, "Ready", "False"));
    assert!(has_condition(run, "Stalled", "True"));
    assert!(has_condition(run, "Failed", "True"));
    assert!(has_condition(run, "Reconciling", "False"));
    assert_eq!(run.progress.as_deref(), Some("7/7"));
    let groups = &mj.status.as_ref().context("status")?.groups;
    assert_eq!(groups[0].phase, StepPhase::Failed);
    assert_eq!(groups[2].phase, StepPhase::Aborted);

    let jobs = w.owned_jobs(&uid(&mj)).await?;
    assert!(!jobs.contains_key("wf-build-after") && !jobs.contains_key("wf-deploy-d"));
    // retries: 1 -> one retry: two failed pods, then the Job failed.
    let broken = &jobs["wf-build-broken"];
    assert_eq!(broken.spec.as_ref().and_then(|s| s.backoff_limit), Some(1));
    assert_eq!(broken.status.as_ref().and_then(|s| s.failed), Some(2));

    let events = w.wait_event("wf", "Failed").await?;
    let failed = events
        .iter()
        .find(|e| e.0 == "JobFailed")
        .context("JobFailed Event")?;
    assert_eq!(failed.1, "Warning");
    assert!(failed.2.contains("wf-build-broken"), "{failed:?}");
    // The three aborted steps are summarised in one Warning, not one Event each.
    let aborted = eventually("a StepAborted Event", Duration::from_secs(20), || async {
        let events = w.events_of("wf").await?;
        Ok(events.into_iter().find(|e| e.0 == "StepAborted"))
    })
    .await?;
    assert!(aborted.2.starts_with("3 steps will not run"), "{aborted:?}");
    for key in ["build/after", "independent/on-success", "deploy/d"] {
        assert!(aborted.2.contains(key), "{aborted:?}");
    }
    assert_eq!(count(&w.events_of("wf").await?, "StepAborted"), 1);
    let ns = w.name();
    let metrics = w.metrics().await?;
    let series = format!(
        "managedjob_jobs_failed_total{{namespace=\"{ns}\",workflow=\"wf\",group=\"build\"}}"
    );
    assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn invalid_graphs_stall_without_jobs_and_recover_when_fixed() -> Result<()> {
    let w = World::new("mj-invalid").await?;
    let cycle = format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: cycle}}
spec:
  groups:
  - name: g1
    dependencies: [{{name: g2}}]
    jobs: [{{name: a, image: {IMAGE}}}]
  - name: g2
    dependencies: [{{name: g1}}]
    jobs: [{{name: b, image: {IMAGE}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: unknown}}
spec:
  groups:
  - name: g
    jobs:
    - name: a
      image: {IMAGE}
      dependencies: [{{name: nope}}]
"#
    );
    w.apply(&cycle).await?;
    for (name, message) in [
        ("cycle", "dependency cycle: g1 -> g2 -> g1"),
        ("unknown", "job \"g/a\": unknown dependency \"nope\""),
    ] {
        let mj = wait_phase(&w, name, Phase::Failed).await?;
        let run = run_of(&mj).context("status")?;
        let stalled = condition(run, "Stalled").context("Stalled")?;
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert!(
            stalled.message.contains(message),
            "{name}: {}",
            stalled.message
        );
        assert!(has_condition(run, "Ready", "False"));
        let events = w.wait_event(name, "InvalidSpec").await?;
        let invalid: Vec<_> = events.iter().filter(|e| e.0 == "InvalidSpec").collect();
        assert_eq!(invalid.len(), 1, "{events:?}");
        assert_eq!(invalid[0].1, "Warning");
        assert!(invalid[0].2.contains(message));
        assert!(
            w.owned_jobs(&uid(&mj)).await?.is_empty(),
            "{name} created Jobs"
        );
    }
    // Resyncs and restarts repeat no Event.
    let mut w = w;
    w.restart_manager().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&w.events_of("cycle").await?, "InvalidSpec"), 1);

    // Fixing the spec lets it run.
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: cycle}}
spec:
  groups:
  - name: g1
    jobs: [{{name: a, image: {IMAGE}}}]
  - name: g2
    dependencies: [{{name: g1}}]
    jobs: [{{name: b, image: {IMAGE}}}]
"#
    ))
    .await?;
    let mj = wait_phase(&w, "cycle", Phase::Succeeded).await?;
    let run = run_of(&mj).context("status")?;
    assert!(has_condition(run, "Stalled", "False"));
    assert_eq!(run.observed_generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn long_names_are_shortened_and_foreign_jobs_are_never_adopted() -> Result<()> {
    let w = World::new("mj-names").await?;
    let long = "a-workflow-with-a-rather-long-name-for-its-jobs";
    let group = "a-group-with-a-long-name";
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: {long}}}
spec:
  groups:
  - name: {group}
    jobs: [{{name: the-job-itself, image: {IMAGE}}}]
"#
    ))
    .await?;
    let mj = wait_phase(&w, long, Phase::Succeeded).await?;
    let jobs = w.owned_jobs(&uid(&mj)).await?;
    let (name, job) = jobs.iter().next().context("no Job")?;
    assert_eq!(jobs.len(), 1);
    assert!(name.len() <= 63, "{name}");
    let full = format!("{long}-{group}-the-job-itself");
    let prefix_len = 63 - 9;
    assert!(
        name.starts_with(&full[..prefix_len].trim_end_matches('-').to_owned()),
        "{name}"
    );
    assert_eq!(name.as_bytes()[name.len() - 9], b'-', "{name}");
    let entry_name = mj.status.as_ref().and_then(|s| s.jobs[0].job_name.clone());
    assert_eq!(entry_name.as_deref(), Some(name.as_str()));
    assert!(
        job.labels().values().all(|v| v.len() <= 63),
        "{:?}",
        job.labels()
    );

    // A Job with the step's name that is not ours: the step fails with NameConflict.
    let foreign: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "clash-g-a", "labels": {"app.kubernetes.io/managed-by": "jobsmith"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE}]}}}
    }))?;
    w.api::<Job>()
        .create(&PostParams::default(), &foreign)
        .await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: clash}}
spec:
  groups:
  - name: g
    jobs:
    - {{name: a, image: {IMAGE}}}
    - {{name: b, image: {IMAGE}, parallel: true}}
"#
    ))
    .await?;
    let mj = wait_phase(&w, "clash", Phase::Failed).await?;
    let run = run_of(&mj).context("status")?;
    assert_eq!(
        condition(run, "Stalled").map(|c| c.reason.as_str()),
        Some("NameConflict")
    );
    assert_eq!(
        condition(run, "Ready").map(|c| c.reason.as_str()),
        Some("NameConflict")
    );
    assert_eq!(step_phase(&mj, "g/a"), Some(StepPhase::Failed));
    assert_eq!(step_phase(&mj, "g/b"), Some(StepPhase::Succeeded));
    let entry = mj
        .status
        .as_ref()
        .and_then(|s| s.jobs.iter().find(|e| e.key == "g/a").cloned());
    assert_eq!(
        entry.and_then(|e| e.reason).as_deref(),
        Some("NameConflict")
    );
    let foreign = get_job(&w, "clash-g-a").await?;
    assert!(
        foreign.owner_references().is_empty(),
        "the foreign Job was adopted"
    );
    let conflict = w.wait_first_event("clash", "NameConflict").await?;
    assert_eq!(conflict.1, "Warning");
    assert!(conflict.2.contains("clash-g-a"));

    // The other Job goes away: the step is created within seconds (a read every 2 s while the
    // name is held, not the 5-minute resync), and the run finishes.
    w.api::<Job>()
        .delete("clash-g-a", &Default::default())
        .await?;
    wait_deleted(&w.api::<Job>(), "clash-g-a", Duration::from_secs(30)).await?;
    let freed = std::time::Instant::now();
    wait_run(
        &w.api::<ManagedJob>(),
        "clash",
        "g/a created once the name is free",
        |r| r.phase == Some(Phase::Succeeded),
        run_of,
    )
    .await?;
    let retried = freed.elapsed();
    println!("name_conflict_retry_ms: {} ms", retried.as_millis());
    ensure!(
        retried < Duration::from_secs(20),
        "the step waited {retried:?} after the conflicting Job was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_workflow_deletes_its_jobs_pods_and_gauge() -> Result<()> {
    let w = World::new("mj-delete").await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  groups:
  - name: g
    jobs:
    - name: slow
      image: {IMAGE}
      params: {{annotations: {{jobsmith.dev/e2e-duration: "60000"}}}}
"#
    ))
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Running).await?;
    let series = format!(
        "managedjob_active_jobs{{namespace=\"{}\",workflow=\"wf\"}}",
        w.name()
    );
    eventually(
        "the active gauge reads 1",
        Duration::from_secs(30),
        || async { Ok((sample(&w.metrics().await?, &series) == Some(1.0)).then_some(())) },
    )
    .await?;
    eventually("the pod exists", Duration::from_secs(30), || async {
        let pods = list_pods_selected(
            &w.client,
            w.name(),
            "batch.kubernetes.io/job-name=wf-g-slow",
        )
        .await?;
        Ok((!pods.is_empty()).then_some(()))
    })
    .await?;

    let api: Api<ManagedJob> = w.api();
    api.delete("wf", &Default::default()).await?;
    wait_deleted(&api, "wf", Duration::from_secs(30)).await?;
    wait_deleted(&w.api::<Job>(), "wf-g-slow", Duration::from_secs(60)).await?;
    eventually("the pods are gone", Duration::from_secs(60), || async {
        let pods = list_pods_selected(
            &w.client,
            w.name(),
            "batch.kubernetes.io/job-name=wf-g-slow",
        )
        .await?;
        Ok(pods.is_empty().then_some(()))
    })
    .await?;
    eventually(
        "the active gauge is removed",
        Duration::from_secs(30),
        || async { Ok(sample(&w.metrics().await?, &series).is_none().then_some(())) },
    )
    .await?;
    assert!(w.owned_jobs(&uid(&mj)).await?.is_empty());
    Ok(())
}

/// A workflow that never had a Job (it waits for a JobTemplate) gets no trigger when it is
/// deleted: the manager's periodic sweep drops its gauge and memory all the same. Its reconciles
/// show in the per-object rate of the busiest objects meanwhile.
#[tokio::test]
async fn a_deleted_workflow_without_jobs_loses_its_series() -> Result<()> {
    let w = World::new("mj-sweep").await?;
    w.apply(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: waiting}
spec:
  groups:
  - name: g
    jobs:
    - name: a
      templateRef: not-there-yet
"#,
    )
    .await?;
    let series = format!(
        "managedjob_active_jobs{{namespace=\"{}\",workflow=\"waiting\"}}",
        w.name()
    );
    let rate = format!(
        "jobsmith_object_reconciles_per_minute{{controller=\"managedjob\",namespace=\"{}\",name=\"waiting\"}}",
        w.name()
    );
    eventually(
        "the gauge and the rate",
        Duration::from_secs(30),
        || async {
            let metrics = w.metrics().await?;
            let shown = sample(&metrics, &series) == Some(0.0)
                && sample(&metrics, &rate).is_some_and(|r| r >= 1.0);
            Ok(shown.then_some(()))
        },
    )
    .await?;
    let api: Api<ManagedJob> = w.api();
    api.delete("waiting", &Default::default()).await?;
    wait_deleted(&api, "waiting", Duration::from_secs(30)).await?;
    // The sweep runs every 10 s.
    eventually(
        "the gauge and the rate are removed",
        Duration::from_secs(30),
        || async {
            let metrics = w.metrics().await?;
            let gone = sample(&metrics, &series).is_none() && sample(&metrics, &rate).is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn suspend_stops_new_jobs_and_resume_continues() -> Result<()> {
    let w = World::new("mj-suspend").await?;
    let api: Api<ManagedJob> = w.api();
    let spec = |suspend: bool| {
        format!(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  suspend: {suspend}
  groups:
  - name: g
    jobs:
    - name: a
      image: {IMAGE}
      params: {{annotations: {{jobsmith.dev/e2e-duration: "4000"}}}}
    - name: b
      image: {IMAGE}
"#
        )
    };
    // Suspended from the start: nothing is created.
    w.apply(&spec(true)).await?;
    let mj = wait_phase(&w, "wf", Phase::Suspended).await?;
    let run = run_of(&mj).context("status")?;
    assert_eq!(
        condition(run, "Ready").map(|c| c.reason.as_str()),
        Some("Suspended")
    );
    w.wait_event("wf", "Suspended").await?;
    assert!(w.owned_jobs(&uid(&mj)).await?.is_empty());

    // Resume, then suspend while a runs: a finishes, b is not created.
    w.apply(&spec(false)).await?;
    eventually("a is running", Duration::from_secs(60), || async {
        let mj = api.get("wf").await?;
        Ok((step_phase(&mj, "g/a") == Some(StepPhase::Running)).then_some(()))
    })
    .await?;
    api.patch(
        "wf",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Suspended).await?;
    assert_eq!(step_phase(&mj, "g/a"), Some(StepPhase::Succeeded));
    assert_eq!(step_phase(&mj, "g/b"), Some(StepPhase::Pending));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!w.owned_jobs(&uid(&mj)).await?.contains_key("wf-g-b"));

    api.patch(
        "wf",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Succeeded).await?;
    assert_eq!(w.owned_jobs(&uid(&mj)).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn max_parallel_bounds_the_active_jobs() -> Result<()> {
    let w = World::new("mj-maxpar").await?;
    let jobs: String = (0..5)
        .map(|i| {
            format!(
                "    - {{name: j{i}, parallel: true, image: {IMAGE}, params: {{annotations: {{jobsmith.dev/e2e-duration: \"2000\"}}}}}}\n"
            )
        })
        .collect();
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  maxParallel: 2
  groups:
  - name: g
    jobs:
{jobs}"#
    ))
    .await?;
    let api: Api<ManagedJob> = w.api();
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + support::RUN_TIMEOUT;
    loop {
        let mj = api.get("wf").await?;
        let owned = w.owned_jobs(&uid(&mj)).await?;
        let active = owned.values().filter(|j| !job_done(j)).count();
        most = most.max(active);
        ensure!(
            active <= 2,
            "{active} Jobs active at once with maxParallel 2"
        );
        if run_of(&mj).and_then(|r| r.phase) == Some(Phase::Succeeded) {
            assert_eq!(owned.len(), 5);
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not done: {:?}",
            mj.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(most, 2, "maxParallel 2 should run two at once");
    Ok(())
}

#[tokio::test]
async fn a_template_ref_waits_for_its_template_and_recovers() -> Result<()> {
    let w = World::new("mj-template").await?;
    w.apply(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: wf}
spec:
  groups:
  - name: g
    jobs:
    - name: from-template
      templateRef: later
      args: [from, the, job]
      params: {env: [{name: FROM_JOB, value: "1"}]}
"#,
    )
    .await?;
    let mj = wait_run(
        &w.api::<ManagedJob>(),
        "wf",
        "Ready=False TemplateNotFound",
        |r| {
            condition(r, "Ready")
                .is_some_and(|c| c.status == "False" && c.reason == "TemplateNotFound")
        },
        run_of,
    )
    .await?;
    let run = run_of(&mj).context("status")?;
    assert_eq!(run.phase, Some(Phase::Pending));
    assert!(has_condition(run, "Reconciling", "True"));
    assert!(
        run.message
            .as_deref()
            .is_some_and(|m| m.contains("\"later\"")),
        "{run:?}"
    );
    let event = w.wait_first_event("wf", "TemplateNotFound").await?;
    assert_eq!(event.1, "Warning");
    assert!(w.owned_jobs(&uid(&mj)).await?.is_empty());

    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: later}}
spec:
  backoffLimit: 2
  template:
    spec:
      containers:
      - name: main
        image: {IMAGE}
        command: [run]
        env: [{{name: FROM_TEMPLATE, value: "1"}}]
"#
    ))
    .await?;
    let mj = wait_phase(&w, "wf", Phase::Succeeded).await?;
    let job = get_job(&w, "wf-g-from-template").await?;
    let annotations: BTreeMap<String, String> = job.annotations().clone();
    assert_eq!(
        annotations
            .get("jobsmith.dev/template-generation")
            .map(String::as_str),
        Some("1"),
        "{annotations:?}"
    );
    let container = &job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .context("pod")?
        .containers[0];
    assert_eq!(container.command.as_deref(), Some(&["run".to_owned()][..]));
    assert_eq!(
        container.args.as_deref(),
        Some(&["from".to_owned(), "the".to_owned(), "job".to_owned()][..])
    );
    let env: Vec<String> = job_env(&job).into_iter().map(|(n, _)| n).collect();
    assert!(
        env.contains(&"FROM_TEMPLATE".to_owned()) && env.contains(&"FROM_JOB".to_owned()),
        "{env:?}"
    );
    let run = run_of(&mj).context("status")?;
    assert!(has_condition(run, "Ready", "True"));
    Ok(())
}

#[tokio::test]
async fn a_manager_restart_creates_no_second_job_and_repeats_no_event() -> Result<()> {
    let mut w = World::with_flags("mj-restart", &[support::ALL_STEP_EVENTS]).await?;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: wf}}
spec:
  groups:
  - name: g
    jobs:
    - name: a
      image: {IMAGE}
      params: {{annotations: {{jobsmith.dev/e2e-duration: "5000"}}}}
    - name: b
      image: {IMAGE}
"#
    ))
    .await?;
    let api: Api<ManagedJob> = w.api();
    eventually("a is running", Duration::from_secs(60), || async {
        let mj = api.get("wf").await?;
        Ok((step_phase(&mj, "g/a") == Some(StepPhase::Running)).then_some(()))
    })
    .await?;
    w.restart_manager().await?;
    let mj = wait_phase(&w, "wf", Phase::Succeeded).await?;
    assert_eq!(w.owned_jobs(&uid(&mj)).await?.len(), 2);
    // Give background Events time to land, then check each happened once.
    w.wait_event("wf", "Succeeded").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = w.events_of("wf").await?;
    for reason in ["JobCreated", "JobSucceeded"] {
        assert_eq!(count(&events, reason), 2, "{reason}: {events:?}");
    }
    // The run-level Events, each once: the restart does not announce the run again.
    assert_eq!(count(&events, "Started"), 1, "{events:?}");
    assert_eq!(count(&events, "Succeeded"), 1, "{events:?}");
    Ok(())
}

#[tokio::test]
async fn events_over_their_budget_are_dropped_and_status_is_patched_once_per_transition()
-> Result<()> {
    let client = jobsmith_e2e::client().await?;
    jobsmith_e2e::install_crds(&client).await?;
    let ns = jobsmith_e2e::TestNamespace::new(&client, "mj-budget").await?;
    // A budget of one Event, refilled once in ~3 hours: the run's later Events are dropped.
    let mut started = support::start_manager_with(
        ns.name(),
        "mj-budget",
        &[
            "--event-qps",
            "0.0001",
            "--event-burst",
            "1",
            support::ALL_STEP_EVENTS,
        ],
    )?;
    started
        .manager
        .wait_for_log("cache synced; controller ready", Duration::from_secs(60))
        .await?;
    jobsmith_e2e::apply_yaml(&client, Some(ns.name()), &support::two_job_workflow("wf")).await?;
    let api: Api<ManagedJob> = Api::namespaced(client.clone(), ns.name());
    wait_run(
        &api,
        "wf",
        "wf Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        run_of,
    )
    .await?;

    // Events never hold Jobs back: the run finished; one Event went out, the rest were dropped.
    let metrics = eventually(
        "the dropped Events counted",
        Duration::from_secs(20),
        || async {
            let text = support::scrape(started.metrics_port).await?;
            Ok(
                (support::family_sum(&text, "jobsmith_events_dropped_total") >= 5.0)
                    .then_some(text),
            )
        },
    )
    .await?;
    let published = sample(
        &metrics,
        "jobsmith_api_writes_total{verb=\"publish\",resource=\"events\"}",
    );
    assert_eq!(published, Some(1.0), "{metrics}");
    // Started, JobCreated x2, JobSucceeded x2 and Succeeded: 6 Events asked for, 1 published.
    assert_eq!(
        support::family_sum(&metrics, "jobsmith_events_dropped_total"),
        5.0,
        "{metrics}"
    );
    // Two sequential steps are three transitions (a created, a done + b created, b done): one
    // status patch each, plus the status written before the first Job (when no Job event came
    // first to merge it with the first transition), plus at most one more when a reconcile races
    // our own write's echo.
    let patches = sample(
        &metrics,
        "jobsmith_api_writes_total{verb=\"patch\",resource=\"managedjobs/status\"}",
    )
    .unwrap_or(0.0);
    assert!(
        (3.0..=5.0).contains(&patches),
        "{patches} status patches:\n{metrics}"
    );
    started.manager.stop()?;
    Ok(())
}
