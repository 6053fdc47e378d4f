//! JobFlow end to end (SPEC §1, §3): each test runs its own manager on its own namespace of the
//! real control plane.

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, Phase, RunStatus, StepPhase};
use jobsmith_e2e::eventually;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::{
    World, condition, created_at, finished_at, has_condition, job_done, job_env, wait_run,
};

const IMAGE: &str = "example.invalid/fake:1";

fn run_of(jf: &JobFlow) -> Option<&RunStatus> {
    jf.status.as_ref().map(|s| &s.run)
}

async fn wait_phase(w: &World, name: &str, phase: Phase) -> Result<JobFlow> {
    wait_run(
        &w.api::<JobFlow>(),
        name,
        &format!("JobFlow {name} phase {phase:?}"),
        |r| r.phase == Some(phase),
        run_of,
    )
    .await
}

fn flow_phase(jf: &JobFlow, key: &str) -> Option<StepPhase> {
    jf.status
        .as_ref()?
        .flows
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.phase)
}

/// A flow with an inline JobSpec; `extra` is more YAML of the flow (indented by 4).
fn flow(name: &str, deps: &[&str], pod_meta: &str, extra: &str) -> String {
    format!(
        r#"  - name: {name}
    dependencies: [{deps}]
{extra}    jobTemplate:
      template:
        metadata: {{{pod_meta}}}
        spec:
          containers: [{{name: main, image: {IMAGE}}}]
"#,
        deps = deps.join(", ")
    )
}

fn jobflow(name: &str, spec: &str, flows: &[String]) -> String {
    format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n{spec}  flows:\n{}",
        flows.concat()
    )
}

const FAIL: &str = "labels: {jobsmith.dev/e2e-outcome: fail}";

fn slow(ms: u32) -> String {
    format!("annotations: {{jobsmith.dev/e2e-duration: \"{ms}\"}}")
}

#[tokio::test]
async fn flows_run_as_a_dag_with_global_params_and_shared_volumes() -> Result<()> {
    let w = World::with_flags("jf-dag", &[support::ALL_STEP_EVENTS]).await?;
    let spec = r#"  globalParams:
    env: [{name: GLOBAL, value: g}, {name: OVERRIDE, value: global}]
    labels: {team: data}
    annotations: {note: global}
  shareVolumes:
  - name: shared
    emptyDir: {}
"#;
    let share = "    shareVolumeMounts: [{name: shared, mountPath: /shared}]\n";
    let diamond = format!(
        r#"  - name: d
    dependencies: [b, c]
{share}    jobTemplate:
      backoffLimit: 2
      template:
        metadata: {{labels: {{team: own}}}}
        spec:
          containers:
          - name: main
            image: {IMAGE}
            env: [{{name: OVERRIDE, value: own}}]
          - name: sidecar
            image: {IMAGE}
"#
    );
    w.apply(&jobflow(
        "flow",
        spec,
        &[
            flow("a", &[], &slow(1500), share),
            flow("b", &["a"], "", ""),
            flow("c", &["a"], &slow(2000), ""),
            diamond,
        ],
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Succeeded).await?;
    let run = run_of(&jf).context("status")?;
    assert_eq!(run.progress.as_deref(), Some("4/4"));
    assert!(has_condition(run, "Ready", "True") && has_condition(run, "Complete", "True"));
    let jobs = w.owned_jobs(&jf.uid().unwrap_or_default()).await?;
    let names: Vec<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(names, ["flow-a", "flow-b", "flow-c", "flow-d"]);
    let (a, b, c, d) = (
        &jobs["flow-a"],
        &jobs["flow-b"],
        &jobs["flow-c"],
        &jobs["flow-d"],
    );
    for after_a in [b, c] {
        ensure!(
            created_at(after_a)? >= finished_at(a)?,
            "{} before a",
            after_a.name_any()
        );
    }
    ensure!(
        created_at(b)? < finished_at(c)?,
        "b and c should run side by side"
    );
    for before in [b, c] {
        ensure!(
            created_at(d)? >= finished_at(before)?,
            "d before {}",
            before.name_any()
        );
    }

    // Pods: restartPolicy Never; backoffLimit from the template, 0 when unset.
    let pod = |j: &Job| j.spec.as_ref().and_then(|s| s.template.spec.clone());
    let a_pod = pod(a).context("pod of a")?;
    assert_eq!(a_pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(a.spec.as_ref().and_then(|s| s.backoff_limit), Some(0));
    assert_eq!(d.spec.as_ref().and_then(|s| s.backoff_limit), Some(2));
    // Global params merged, the flow's own values win.
    let env = job_env(d);
    assert!(
        env.contains(&("OVERRIDE".to_owned(), "own".to_owned())),
        "{env:?}"
    );
    assert!(
        env.contains(&("GLOBAL".to_owned(), "g".to_owned())),
        "{env:?}"
    );
    assert_eq!(
        job_env(b),
        [
            ("GLOBAL".to_owned(), "g".to_owned()),
            ("OVERRIDE".to_owned(), "global".to_owned())
        ]
    );
    let d_template = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .context("template")?;
    let labels = d_template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("own"));
    assert_eq!(
        labels.get("jobsmith.dev/flow").map(String::as_str),
        Some("d")
    );
    assert_eq!(b.labels().get("team").map(String::as_str), Some("data"));
    assert_eq!(
        b.annotations().get("note").map(String::as_str),
        Some("global")
    );
    // Shared volumes: on the pods of the flows that mount them, in every container.
    let d_pod = pod(d).context("pod of d")?;
    for p in [&a_pod, &d_pod] {
        let volumes = p.volumes.clone().unwrap_or_default();
        assert!(
            volumes
                .iter()
                .any(|v| v.name == "shared" && v.empty_dir.is_some()),
            "{volumes:?}"
        );
        for container in &p.containers {
            let mounts = container.volume_mounts.clone().unwrap_or_default();
            assert!(
                mounts
                    .iter()
                    .any(|m| m.name == "shared" && m.mount_path == "/shared"),
                "{}: {mounts:?}",
                container.name
            );
        }
    }
    let b_pod = pod(b).context("pod of b")?;
    assert!(
        b_pod.volumes.clone().unwrap_or_default().is_empty(),
        "b declares no mounts"
    );

    let events = w.wait_event("flow", "Succeeded").await?;
    assert_eq!(
        events.iter().filter(|e| e.0 == "JobCreated").count(),
        4,
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fail_fast_is_the_default_and_running_flows_finish() -> Result<()> {
    let w = World::new("jf-failfast").await?;
    w.apply(&jobflow(
        "flow",
        "",
        &[
            flow("a", &[], "", ""),
            flow("broken", &["a"], FAIL, ""),
            flow("slow", &["a"], &slow(4000), ""),
            flow("after-slow", &["slow"], "", ""),
            flow("after-broken", &["broken"], "", ""),
        ],
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Failed).await?;
    for (key, phase) in [
        ("a", StepPhase::Succeeded),
        ("broken", StepPhase::Failed),
        // Running when `broken` failed: it finishes.
        ("slow", StepPhase::Succeeded),
        // Not started: fail fast.
        ("after-slow", StepPhase::Aborted),
        ("after-broken", StepPhase::Aborted),
    ] {
        assert_eq!(flow_phase(&jf, key), Some(phase), "{key}: {:?}", jf.status);
    }
    let run = run_of(&jf).context("status")?;
    assert!(has_condition(run, "Stalled", "True") && has_condition(run, "Failed", "True"));
    assert!(has_condition(run, "Ready", "False"));
    let jobs = w.owned_jobs(&jf.uid().unwrap_or_default()).await?;
    assert_eq!(jobs.len(), 3, "{:?}", jobs.keys());
    let events = w.wait_event("flow", "Failed").await?;
    assert!(
        events
            .iter()
            .any(|e| e.0 == "JobFailed" && e.1 == "Warning"),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn continue_independent_lets_independent_flows_go_on() -> Result<()> {
    let w = World::new("jf-continue").await?;
    w.apply(&jobflow(
        "flow",
        "  failurePolicy: ContinueIndependent\n",
        &[
            flow("broken", &[], FAIL, ""),
            flow("slow", &[], &slow(3000), ""),
            flow("after-slow", &["slow"], "", ""),
            flow("after-broken", &["broken"], "", ""),
        ],
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Failed).await?;
    for (key, phase) in [
        ("broken", StepPhase::Failed),
        ("slow", StepPhase::Succeeded),
        ("after-slow", StepPhase::Succeeded),
        ("after-broken", StepPhase::Aborted),
    ] {
        assert_eq!(flow_phase(&jf, key), Some(phase), "{key}: {:?}", jf.status);
    }
    Ok(())
}

#[tokio::test]
async fn a_cycle_is_an_invalid_spec_and_creates_nothing() -> Result<()> {
    let w = World::new("jf-invalid").await?;
    w.apply(&jobflow(
        "loop",
        "",
        &[flow("a", &["b"], "", ""), flow("b", &["a"], "", "")],
    ))
    .await?;
    let jf = wait_phase(&w, "loop", Phase::Failed).await?;
    let run = run_of(&jf).context("status")?;
    let stalled = condition(run, "Stalled").context("Stalled")?;
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        stalled.message.starts_with("dependency cycle: "),
        "{}",
        stalled.message
    );
    let events = w.wait_event("loop", "InvalidSpec").await?;
    assert_eq!(events.iter().filter(|e| e.0 == "InvalidSpec").count(), 1);
    assert!(
        w.owned_jobs(&jf.uid().unwrap_or_default())
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn a_job_template_ref_waits_for_the_template() -> Result<()> {
    let w = World::new("jf-template").await?;
    let by_ref = "  - name: from-template\n    jobTemplateRef: shared-template\n".to_owned();
    w.apply(&jobflow(
        "flow",
        "",
        &[by_ref, flow("after", &["from-template"], "", "")],
    ))
    .await?;
    let jf = wait_run(
        &w.api::<JobFlow>(),
        "flow",
        "Ready=False TemplateNotFound",
        |r| condition(r, "Ready").is_some_and(|c| c.reason == "TemplateNotFound"),
        run_of,
    )
    .await?;
    assert!(
        w.owned_jobs(&jf.uid().unwrap_or_default())
            .await?
            .is_empty()
    );
    w.wait_event("flow", "TemplateNotFound").await?;
    // The job-deploy-operator shape of a JobTemplate.
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: shared-template}}
spec:
  jobTemplate:
    template:
      spec:
        restartPolicy: OnFailure
        containers: [{{name: main, image: {IMAGE}}}]
"#
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Succeeded).await?;
    let job: Job = w.api::<Job>().get("flow-from-template").await?;
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .context("pod")?;
    assert_eq!(
        pod.restart_policy.as_deref(),
        Some("Never"),
        "JobFlow pods never restart"
    );
    assert!(
        job.annotations()
            .contains_key("jobsmith.dev/template-generation")
    );
    assert_eq!(flow_phase(&jf, "after"), Some(StepPhase::Succeeded));
    Ok(())
}

#[tokio::test]
async fn max_parallel_and_suspend_control_the_run() -> Result<()> {
    let w = World::new("jf-controls").await?;
    let flows: Vec<String> = (0..4)
        .map(|i| flow(&format!("f{i}"), &[], &slow(1500), ""))
        .collect();
    w.apply(&jobflow(
        "flow",
        "  maxParallel: 1\n  suspend: true\n",
        &flows,
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Suspended).await?;
    let uid = jf.uid().unwrap_or_default();
    assert!(w.owned_jobs(&uid).await?.is_empty());

    let api: Api<JobFlow> = w.api();
    api.patch(
        "flow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + support::RUN_TIMEOUT;
    loop {
        let jf = api.get("flow").await?;
        let jobs = w.owned_jobs(&uid).await?;
        let active = jobs.values().filter(|j| !job_done(j)).count();
        ensure!(active <= 1, "{active} flows active with maxParallel 1");
        if run_of(&jf).and_then(|r| r.phase) == Some(Phase::Succeeded) {
            assert_eq!(jobs.len(), 4);
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not done: {:?}",
            jf.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("a Suspended Event", Duration::from_secs(10), || async {
        let events = w.events_of("flow").await?;
        Ok(events
            .iter()
            .any(|e| e.0 == "Suspended" && e.1 == "Normal")
            .then_some(()))
    })
    .await?;
    Ok(())
}

/// A child Job created suspended (by its JobSpec here; by hand or by Kueue elsewhere) is shown as
/// waiting with reason `StepSuspended`, holds no `maxParallel` slot (the other flows run past
/// it) and is never re-created; resumed, it runs and the run finishes.
#[tokio::test]
async fn a_suspended_child_job_waits_without_holding_a_slot() -> Result<()> {
    let w = World::new("jf-suspended").await?;
    let held = format!(
        "  - name: held\n    jobTemplate:\n      suspend: true\n      template:\n        spec:\n          containers: [{{name: main, image: {IMAGE}}}]\n"
    );
    let mut flows = vec![held];
    flows.extend((0..2).map(|i| flow(&format!("f{i}"), &[], "", "")));
    w.apply(&jobflow("held", "  maxParallel: 1\n", &flows))
        .await?;
    let jf = wait_run(
        &w.api::<JobFlow>(),
        "held",
        "the other flows done while held waits",
        |r| r.progress.as_deref() == Some("2/3"),
        run_of,
    )
    .await?;
    let run = run_of(&jf).context("status")?;
    ensure!(run.phase == Some(Phase::Running), "{run:?}");
    ensure!(
        run.message
            .as_deref()
            .is_some_and(|m| m.contains("suspended")),
        "{run:?}"
    );
    let entry = jf
        .status
        .as_ref()
        .and_then(|s| s.flows.iter().find(|e| e.key == "held"))
        .context("held entry")?;
    ensure!(
        entry.phase == StepPhase::Pending && entry.reason.as_deref() == Some("StepSuspended"),
        "{entry:?}"
    );
    ensure!(
        condition(run, "Ready").is_some_and(|c| c.status == "False" && c.reason == "StepSuspended"),
        "{:?}",
        run.conditions
    );
    let uid = jf.uid().unwrap_or_default();
    ensure!(w.owned_jobs(&uid).await?.len() == 3, "one Job per flow");

    // Resume it (as Kueue's admission would): it runs, and the run succeeds.
    let jobs: Api<Job> = w.api();
    let held_job = entry.job_name.clone().context("held Job name")?;
    jobs.patch(
        &held_job,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await?;
    wait_phase(&w, "held", Phase::Succeeded).await?;
    // The default `--step-events=warnings`: the run's own Event, no per-step Normal Event.
    let events = w.wait_event("held", "Succeeded").await?;
    ensure!(
        !events
            .iter()
            .any(|e| ["JobCreated", "JobSucceeded", "StepSuspended"].contains(&e.0.as_str())),
        "per-step Normal Events by default: {events:?}"
    );
    let creates = jobsmith_e2e::job_creates(w.name())?;
    ensure!(
        creates.len() == 3 && creates.values().all(|n| *n == 1),
        "{creates:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_the_api_server_rejects_fails_its_flow_without_wedging() -> Result<()> {
    let w = World::new("jf-rejected").await?;
    let no_image = r#"  - name: bad
    jobTemplate:
      template:
        spec:
          containers: [{name: main}]
"#
    .to_owned();
    w.apply(&jobflow(
        "flow",
        "  failurePolicy: ContinueIndependent\n",
        &[no_image, flow("good", &[], "", "")],
    ))
    .await?;
    let jf = wait_phase(&w, "flow", Phase::Failed).await?;
    assert_eq!(flow_phase(&jf, "bad"), Some(StepPhase::Failed));
    assert_eq!(flow_phase(&jf, "good"), Some(StepPhase::Succeeded));
    let entry = jf
        .status
        .as_ref()
        .and_then(|s| s.flows.iter().find(|e| e.key == "bad").cloned())
        .context("entry")?;
    assert_eq!(entry.reason.as_deref(), Some("InvalidSpec"));
    let event = w.wait_first_event("flow", "InvalidSpec").await?;
    assert!(event.2.contains("image"), "{event:?}");
    Ok(())
}
