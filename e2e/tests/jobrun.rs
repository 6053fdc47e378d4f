//! End-to-end: JobTemplate and JobRun (SPEC §5, §6), and templates used by the other kinds
//! (JobFlow `jobTemplateRef`, ManagedJob `templateRef`), each test in its own namespace with its
//! own manager.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, JobRun, JobTemplate, ManagedJob, Phase};
use jobsmith_e2e::{eventually, wait_deleted};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Container;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use support::{World, condition, has_condition, mj_status, sample, wait_run};

/// How long a JobTemplate may take to get its status.
const TEMPLATE_TIMEOUT: Duration = Duration::from_secs(30);

fn run_status(r: &JobRun) -> Option<&jobsmith_api::RunStatus> {
    r.status.as_ref().map(|s| &s.run)
}

fn flow_status(f: &JobFlow) -> Option<&jobsmith_api::RunStatus> {
    f.status.as_ref().map(|s| &s.run)
}

/// Waits until the JobTemplate's `Ready` condition has `status` and `reason` for its current
/// generation.
async fn wait_template(
    world: &World,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<JobTemplate> {
    let api: Api<JobTemplate> = world.api();
    eventually(
        &format!("JobTemplate {name} Ready={status} ({reason})"),
        TEMPLATE_TIMEOUT,
        || async {
            let t = api.get(name).await?;
            let s = t.status.as_ref();
            let ok = s.is_some_and(|s| {
                s.observed_generation == t.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == status && c.reason == reason)
            });
            Ok(ok.then_some(t))
        },
    )
    .await
}

fn containers(job: &Job) -> &[Container] {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or(&[], |p| p.containers.as_slice())
}

fn env_of(c: &Container) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn reasons(events: &[(String, String, String)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

#[tokio::test]
async fn jobrun_overrides_the_named_container_and_mirrors_its_job() -> Result<()> {
    let world = World::with_flags("jr-overrides", &[support::ALL_STEP_EVENTS]).await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: echo}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {jobsmith.dev/e2e-duration: "1500"}
    spec:
      restartPolicy: Never
      containers:
        - name: side
          image: busybox:1.36
          command: [sleep, "1"]
        - name: main
          image: busybox:1.36
          command: [echo]
          args: [template]
          env:
            - {name: KEEP, value: template}
            - {name: REPLACED, value: template}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: hello}
spec:
  templateRef: echo
  container: main
  command: [sh, -c]
  args: ["echo $GREETING"]
  env:
    - {name: REPLACED, value: run}
    - {name: GREETING, value: hello}
"#,
        )
        .await?;
    wait_template(&world, "echo", "True", "TemplateValid").await?;
    let runs: Api<JobRun> = world.api();
    let run = wait_run(
        &runs,
        "hello",
        "JobRun hello Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        run_status,
    )
    .await?;

    // Exactly one Job, named <template>-<jobrun>, with the overrides on `main` only.
    let uid = run.uid().context("no uid")?;
    let jobs = world.owned_jobs(&uid).await?;
    ensure!(jobs.len() == 1, "one Job expected: {:?}", jobs.keys());
    let job = jobs.get("echo-hello").context("Job echo-hello")?;
    let cs = containers(job);
    let side = cs.iter().find(|c| c.name == "side").context("side")?;
    assert_eq!(
        side.command.as_deref(),
        Some(&["sleep".to_owned(), "1".to_owned()][..])
    );
    let main = cs.iter().find(|c| c.name == "main").context("main")?;
    assert_eq!(
        main.command.as_deref(),
        Some(&["sh".to_owned(), "-c".to_owned()][..])
    );
    assert_eq!(
        main.args.as_deref(),
        Some(&["echo $GREETING".to_owned()][..])
    );
    let env = env_of(main);
    for want in [
        ("KEEP", "template"),
        ("REPLACED", "run"),
        ("GREETING", "hello"),
    ] {
        assert!(
            env.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} missing from {env:?}"
        );
    }
    assert_eq!(
        env.iter().filter(|e| e.0 == "REPLACED").count(),
        1,
        "{env:?}"
    );
    let labels = job.labels();
    assert_eq!(
        labels.get("jobsmith.dev/owner-kind").map(String::as_str),
        Some("JobRun")
    );
    assert_eq!(
        job.annotations()
            .get("jobsmith.dev/template")
            .map(String::as_str),
        Some("echo")
    );
    assert!(
        job.annotations()
            .contains_key("jobsmith.dev/template-generation")
    );

    // The status mirrors the Job. The phase turns Succeeded at the Job's first final signal
    // (SuccessCriteriaMet); the Job's own counters and `Complete` follow in its next update, and
    // the mirror follows them.
    let run = jobsmith_e2e::eventually(
        "JobRun hello mirrors the Job's final status",
        Duration::from_secs(30),
        || async {
            let run = runs.get("hello").await?;
            let mirrored = run.status.as_ref().is_some_and(|s| {
                s.succeeded == Some(1)
                    && s.job_conditions
                        .iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
            });
            Ok(mirrored.then_some(run))
        },
    )
    .await?;
    let status = run.status.as_ref().context("status")?;
    assert_eq!(status.job_name.as_deref(), Some("echo-hello"));
    assert_eq!(status.succeeded, Some(1));
    assert!(
        status.run.start_time.is_some() && status.run.completion_time.is_some(),
        "{status:?}"
    );
    assert!(
        status
            .job_conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True"),
        "{:?}",
        status.job_conditions
    );
    assert!(has_condition(&status.run, "Ready", "True"));
    assert!(has_condition(&status.run, "Complete", "True"));
    assert_eq!(status.run.observed_generation, run.metadata.generation);

    let events = world.wait_event("hello", "Succeeded").await?;
    let rs = reasons(&events);
    for want in ["JobCreated", "JobSucceeded", "Succeeded"] {
        assert_eq!(
            rs.iter().filter(|r| **r == want).count(),
            1,
            "{want} once: {events:?}"
        );
    }

    // Reconcile metrics per controller.
    let text = world.metrics().await?;
    for controller in ["jobrun", "jobtemplate"] {
        let total = sample(
            &text,
            &format!("jobsmith_reconcile_total{{controller=\"{controller}\"}}"),
        );
        ensure!(
            total.is_some_and(|v| v >= 1.0),
            "no reconcile of {controller}:\n{text}"
        );
        ensure!(
            text.contains(&format!(
                "jobsmith_reconcile_duration_seconds_count{{controller=\"{controller}\"}}"
            )) || text.contains(&format!(
                "jobsmith_reconcile_duration_seconds_bucket{{controller=\"{controller}\""
            )),
            "no reconcile duration for {controller}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_override_the_template_does_not_allow_fails_the_run() -> Result<()> {
    let world = World::new("jr-not-allowed").await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: args-only}
spec:
  overridable: [args]
  template:
    spec:
      containers:
        - {name: main, image: busybox:1.36, command: [echo]}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: sneaky}
spec:
  templateRef: args-only
  command: [sh, -c, "rm -rf /"]
"#,
        )
        .await?;
    let runs: Api<JobRun> = world.api();
    let run = wait_run(
        &runs,
        "sneaky",
        "JobRun sneaky Failed",
        |s| s.phase == Some(Phase::Failed),
        run_status,
    )
    .await?;
    let status = &run.status.as_ref().context("status")?.run;
    for t in ["Ready", "Stalled", "Failed"] {
        let c = condition(status, t).with_context(|| format!("condition {t}"))?;
        assert_eq!(c.reason, "OverrideNotAllowed", "{t}: {c:?}");
    }
    assert!(has_condition(status, "Stalled", "True"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("command"),
        "{status:?}"
    );
    let warning = world
        .wait_first_event("sneaky", "OverrideNotAllowed")
        .await?;
    assert_eq!(warning.1, "Warning");
    let uid = run.uid().context("uid")?;
    assert!(
        world.owned_jobs(&uid).await?.is_empty(),
        "no Job may be created"
    );

    // Nothing is repeated while the manager keeps reconciling.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = world.events_of("sneaky").await?;
    assert_eq!(
        reasons(&again)
            .iter()
            .filter(|r| **r == "OverrideNotAllowed")
            .count(),
        1,
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_finished_jobrun_never_recreates_its_deleted_job() -> Result<()> {
    let mut world = World::with_flags("jr-one-shot", &[support::ALL_STEP_EVENTS]).await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: once}
spec:
  template:
    spec:
      containers:
        - {name: main, image: busybox:1.36, command: [echo, once]}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: run}
spec:
  templateRef: once
"#,
        )
        .await?;
    let runs: Api<JobRun> = world.api();
    // Succeeded comes with the Job's earliest final signal (`SuccessCriteriaMet`), which the Job
    // controller may write before its `succeeded` count: wait until the count is mirrored too,
    // so that what must stay after the deletion is there before it.
    wait_run(
        &runs,
        "run",
        "JobRun run Succeeded with its Job's succeeded count mirrored",
        |s| s.phase == Some(Phase::Succeeded),
        |r: &JobRun| {
            r.status
                .as_ref()
                .filter(|s| s.succeeded == Some(1))
                .map(|s| &s.run)
        },
    )
    .await?;
    let jobs: Api<Job> = world.api();
    jobs.delete("once-run", &DeleteParams::background()).await?;
    wait_deleted(&jobs, "once-run", Duration::from_secs(30)).await?;

    // Neither the running manager nor a restarted one (memory from the status) re-creates it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        jobs.get_opt("once-run").await?.is_none(),
        "the Job was re-created"
    );
    world.restart_manager().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        jobs.get_opt("once-run").await?.is_none(),
        "the Job was re-created after a restart"
    );
    let run = runs.get("run").await?;
    let status = run.status.context("status")?;
    assert_eq!(status.run.phase, Some(Phase::Succeeded));
    assert_eq!(status.job_name.as_deref(), Some("once-run"));
    assert_eq!(status.succeeded, Some(1), "the mirror stays: {status:?}");
    let events = world.events_of("run").await?;
    assert_eq!(
        reasons(&events)
            .iter()
            .filter(|r| **r == "JobCreated")
            .count(),
        1,
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_template_waits_and_the_run_starts_when_it_appears() -> Result<()> {
    let world = World::new("jr-late-template").await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: early}
spec:
  templateRef: late
  args: [from-the-run]
"#,
        )
        .await?;
    let runs: Api<JobRun> = world.api();
    let run = wait_run(
        &runs,
        "early",
        "JobRun early waiting for its template",
        |s| condition(s, "Ready").is_some_and(|c| c.reason == "TemplateNotFound"),
        run_status,
    )
    .await?;
    let status = &run.status.as_ref().context("status")?.run;
    assert_eq!(status.phase, Some(Phase::Pending));
    assert!(has_condition(status, "Ready", "False"));
    assert!(has_condition(status, "Reconciling", "True"));
    let event = world.wait_first_event("early", "TemplateNotFound").await?;
    assert_eq!(event.1, "Warning");

    // The job-deploy-operator shape: `spec.jobTemplate` (it wins over the inline fields).
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: late}
spec:
  template:
    spec:
      containers:
        - {name: inline, image: busybox:1.36}
  jobTemplate:
    template:
      spec:
        containers:
          - {name: wrapped, image: busybox:1.36, command: [echo]}
"#,
        )
        .await?;
    let run = wait_run(
        &runs,
        "early",
        "JobRun early Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        run_status,
    )
    .await?;
    let jobs = world.owned_jobs(&run.uid().context("uid")?).await?;
    let job = jobs.get("late-early").context("Job late-early")?;
    let cs = containers(job);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].name, "wrapped", "spec.jobTemplate wins");
    assert_eq!(
        cs[0].args.as_deref(),
        Some(&["from-the-run".to_owned()][..])
    );
    Ok(())
}

#[tokio::test]
async fn jobtemplate_validity_is_reported_and_its_users_wait_for_a_fix() -> Result<()> {
    let world = World::new("jt-validity").await?;
    let broken = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: broken}
spec:
  template:
    spec:
      containers: []
"#;
    world.apply(broken).await?;
    let t = wait_template(&world, "broken", "False", "TemplateInvalid").await?;
    let status = t.status.as_ref().context("status")?;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?;
    assert!(ready.message.contains("containers"), "{ready:?}");
    assert_eq!(status.observed_generation, t.metadata.generation);
    world.wait_event("broken", "InvalidSpec").await?;

    // A container without an image is not usable either.
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: no-image}
spec:
  template:
    spec:
      containers: [{name: main}]
"#,
        )
        .await?;
    wait_template(&world, "no-image", "False", "TemplateInvalid").await?;

    // A JobRun of the broken template waits with TemplateInvalid.
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {name: user}
spec:
  templateRef: broken
"#,
        )
        .await?;
    let runs: Api<JobRun> = world.api();
    wait_run(
        &runs,
        "user",
        "JobRun user waits for a usable template",
        |s| {
            s.phase == Some(Phase::Pending)
                && condition(s, "Ready").is_some_and(|c| c.reason == "TemplateInvalid")
        },
        run_status,
    )
    .await?;

    // The fix makes the template Ready and the run go.
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: broken}
spec:
  template:
    spec:
      containers: [{name: main, image: busybox:1.36}]
"#,
        )
        .await?;
    let fixed = wait_template(&world, "broken", "True", "TemplateValid").await?;
    assert!(fixed.metadata.generation >= Some(2));
    wait_run(
        &runs,
        "user",
        "JobRun user Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        run_status,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn both_template_shapes_serve_jobflows_and_managedjobs() -> Result<()> {
    let world = World::new("jt-shapes").await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: inline-shape}
spec:
  template:
    spec:
      containers:
        - {name: inline-c, image: busybox:1.36, command: [echo, inline]}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: wrapped-shape}
spec:
  jobTemplate:
    template:
      spec:
        containers:
          - {name: wrapped-c, image: busybox:1.36, command: [echo, wrapped]}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {name: flow}
spec:
  flows:
    - name: first
      jobTemplateRef: inline-shape
    - name: second
      dependencies: [first]
      jobTemplateRef: wrapped-shape
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: mj}
spec:
  groups:
    - name: g
      jobs:
        - name: from-inline
          templateRef: inline-shape
        - name: from-wrapped
          templateRef: wrapped-shape
          args: [mj-args]
"#,
        )
        .await?;
    let flows: Api<JobFlow> = world.api();
    let flow = wait_run(
        &flows,
        "flow",
        "JobFlow flow Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        flow_status,
    )
    .await?;
    let jobs = world.owned_jobs(&flow.uid().context("uid")?).await?;
    let first = jobs.get("flow-first").context("flow-first")?;
    assert_eq!(containers(first)[0].name, "inline-c");
    let second = jobs.get("flow-second").context("flow-second")?;
    assert_eq!(containers(second)[0].name, "wrapped-c");
    assert_eq!(
        second
            .annotations()
            .get("jobsmith.dev/template")
            .map(String::as_str),
        Some("wrapped-shape")
    );

    let mjs: Api<ManagedJob> = world.api();
    let mj = wait_run(
        &mjs,
        "mj",
        "ManagedJob mj Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        mj_status,
    )
    .await?;
    let jobs = world.owned_jobs(&mj.uid().context("uid")?).await?;
    let from_inline = jobs.get("mj-g-from-inline").context("mj-g-from-inline")?;
    assert_eq!(
        containers(from_inline)[0].command.as_deref(),
        Some(&["echo".to_owned(), "inline".to_owned()][..])
    );
    let from_wrapped = jobs.get("mj-g-from-wrapped").context("mj-g-from-wrapped")?;
    let c = &containers(from_wrapped)[0];
    assert_eq!(
        c.command.as_deref(),
        Some(&["echo".to_owned(), "wrapped".to_owned()][..])
    );
    assert_eq!(c.args.as_deref(), Some(&["mj-args".to_owned()][..]));
    assert_eq!(
        from_wrapped
            .annotations()
            .get("jobsmith.dev/template")
            .map(String::as_str),
        Some("wrapped-shape")
    );
    Ok(())
}

#[tokio::test]
async fn a_managedjob_step_waits_for_its_template() -> Result<()> {
    let world = World::new("mj-late-template").await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: waits}
spec:
  groups:
    - name: g
      jobs:
        - name: j
          templateRef: later
"#,
        )
        .await?;
    let mjs: Api<ManagedJob> = world.api();
    let status = mj_status;
    wait_run(
        &mjs,
        "waits",
        "ManagedJob waits for its template",
        |s| condition(s, "Ready").is_some_and(|c| c.reason == "TemplateNotFound"),
        status,
    )
    .await?;
    world
        .apply(
            r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: later}
spec:
  template:
    spec:
      containers: [{name: main, image: busybox:1.36, command: [echo, later]}]
"#,
        )
        .await?;
    wait_run(
        &mjs,
        "waits",
        "ManagedJob Succeeded",
        |s| s.phase == Some(Phase::Succeeded),
        status,
    )
    .await?;
    Ok(())
}
