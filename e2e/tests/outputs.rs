//! Step outputs end to end (docs/integrations.md "Step outputs"): a producer's fake pod gets a
//! termination message from the annotation `jobsmith.dev/e2e-message` (e2e/kwok/pod-complete.yaml),
//! the manager lists that Job's pods once, records the value in `status.outputs`, and the
//! dependent's Job is created with the literal value in its env. A missing output fails the
//! dependent with `OutputMissing` (no Job, a Warning Event); a recorded output survives a manager
//! restart and is not read again (the producer's pods are deleted before the dependent starts).

mod support;

use std::time::Duration;

use anyhow::{Result, ensure};
use jobsmith_api::{JobFlow, ManagedJob, Phase, RunStatus, StepEntry, StepOutputs, StepPhase};
use jobsmith_e2e::{eventually, fake_pod};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use support::{World, job_env, wait_run};

const MESSAGE: &str = r#"{"version":"1.2.3","files":42}"#;

fn mj_run(mj: &ManagedJob) -> Option<&RunStatus> {
    mj.status.as_ref().map(|s| &s.run)
}

fn jf_run(jf: &JobFlow) -> Option<&RunStatus> {
    jf.status.as_ref().map(|s| &s.run)
}

fn outputs_of<'a>(run: &'a RunStatus, step: &str) -> Option<&'a StepOutputs> {
    run.outputs.iter().find(|o| o.step == step)
}

fn entry<'a>(entries: &'a [StepEntry], key: &str) -> Option<&'a StepEntry> {
    entries.iter().find(|e| e.key == key)
}

/// The env of a Job's first container as (name, value), from the API server.
async fn env_of(w: &World, job: &str) -> Result<Vec<(String, String)>> {
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = w.api();
    Ok(job_env(&jobs.get(job).await?))
}

/// build (message `{"version":"1.2.3",...}`) -> test group reads `VERSION` (group-level params)
/// and `FILES`; `ship` (after `wait`, a slow step) reads `VERSION` too.
fn managedjob(name: &str, message: &str, wait_ms: u32) -> String {
    let image = fake_pod::IMAGE;
    let annotation = fake_pod::MESSAGE_ANNOTATION;
    let duration = fake_pod::DURATION_ANNOTATION;
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
    - name: compile
      image: {image}
      params: {{annotations: {{{annotation}: '{message}'}}}}
      outputs:
      - {{name: version, from: terminationMessage, jsonKey: version}}
      - {{name: files, from: terminationMessage, jsonKey: files}}
    - name: wait
      image: {image}
      params: {{annotations: {{{duration}: "{wait_ms}"}}}}
  - name: test
    params:
      env:
      - {{name: VERSION, valueFrom: {{stepOutput: {{step: build/compile, name: version}}}}}}
    jobs:
    - name: unit
      image: {image}
      params:
        env:
        - {{name: FILES, valueFrom: {{stepOutput: {{step: build/compile, name: files}}}}}}
        - {{name: PLAIN, value: kept}}
"#
    )
}

#[tokio::test]
async fn a_managedjob_passes_a_version_from_build_to_test() -> Result<()> {
    let w = World::new("outputs-mj").await?;
    w.apply(&managedjob("wf", MESSAGE, 0)).await?;
    let mj = wait_run(
        &w.api::<ManagedJob>(),
        "wf",
        "ManagedJob wf Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        mj_run,
    )
    .await?;
    let run = mj_run(&mj).ok_or_else(|| anyhow::anyhow!("no status"))?;
    let recorded = outputs_of(run, "build/compile");
    ensure!(
        recorded.is_some_and(
            |o| o.values.get("version").map(String::as_str) == Some("1.2.3")
                && o.values.get("files").map(String::as_str) == Some("42")
                && o.missing.is_empty()
        ),
        "status.outputs: {:?}",
        run.outputs
    );
    let env = env_of(&w, "wf-test-unit").await?;
    let expected: Vec<(String, String)> =
        [("FILES", "42"), ("PLAIN", "kept"), ("VERSION", "1.2.3")]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
    ensure!(env == expected, "env of wf-test-unit: {env:?}");
    Ok(())
}

#[tokio::test]
async fn a_jobflow_passes_a_version_directly_and_transitively() -> Result<()> {
    let w = World::new("outputs-jf").await?;
    let image = fake_pod::IMAGE;
    let annotation = fake_pod::MESSAGE_ANNOTATION;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: flow}}
spec:
  flows:
  - name: build
    outputs: [{{name: version, jsonKey: version}}, {{name: raw}}]
    jobTemplate:
      template:
        metadata: {{annotations: {{{annotation}: '{MESSAGE}'}}}}
        spec:
          containers: [{{name: main, image: {image}}}]
  - name: test
    dependencies: [build]
    env:
    - {{name: VERSION, valueFrom: {{stepOutput: {{step: build, name: version}}}}}}
    jobTemplate:
      template:
        spec:
          containers: [{{name: main, image: {image}, env: [{{name: VERSION, value: overridden}}, {{name: OWN, value: x}}]}}]
  - name: deploy
    dependencies: [test]
    env:
    - {{name: RAW, valueFrom: {{stepOutput: {{step: build, name: raw}}}}}}
    jobTemplate:
      template:
        spec:
          containers: [{{name: main, image: {image}}}]
"#
    ))
    .await?;
    let jf = wait_run(
        &w.api::<JobFlow>(),
        "flow",
        "JobFlow flow Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        jf_run,
    )
    .await?;
    let run = jf_run(&jf).ok_or_else(|| anyhow::anyhow!("no status"))?;
    ensure!(
        outputs_of(run, "build").is_some_and(|o| o.values.get("version").map(String::as_str)
            == Some("1.2.3")
            && o.values.get("raw").map(String::as_str) == Some(MESSAGE)),
        "status.outputs: {:?}",
        run.outputs
    );
    let test_env = env_of(&w, "flow-test").await?;
    ensure!(
        test_env
            == [
                ("VERSION".to_owned(), "1.2.3".to_owned()),
                ("OWN".to_owned(), "x".to_owned())
            ],
        "env of flow-test: {test_env:?}"
    );
    let deploy_env = env_of(&w, "flow-deploy").await?;
    ensure!(
        deploy_env == [("RAW".to_owned(), MESSAGE.to_owned())],
        "env of flow-deploy: {deploy_env:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_output_fails_the_dependent_with_output_missing() -> Result<()> {
    let w = World::new("outputs-missing").await?;
    // The message has no "version" key.
    w.apply(&managedjob("wf", r#"{"files":1}"#, 0)).await?;
    let mj = wait_run(
        &w.api::<ManagedJob>(),
        "wf",
        "ManagedJob wf Failed",
        |r| r.phase == Some(Phase::Failed),
        mj_run,
    )
    .await?;
    let status = mj
        .status
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no status"))?;
    let unit = entry(&status.jobs, "test/unit");
    ensure!(
        unit.is_some_and(
            |e| e.phase == StepPhase::Failed && e.reason.as_deref() == Some("OutputMissing")
        ),
        "test/unit entry: {unit:?}"
    );
    ensure!(
        outputs_of(&status.run, "build/compile").is_some_and(|o| o
            .missing
            .get("version")
            .is_some_and(|why| why.contains("no key"))),
        "status.outputs: {:?}",
        status.run.outputs
    );
    ensure!(
        status
            .run
            .message
            .as_deref()
            .is_some_and(|m| m.contains("version")),
        "message: {:?}",
        status.run.message
    );
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = w.api();
    ensure!(
        jobs.get_opt("wf-test-unit").await?.is_none(),
        "the dependent's Job was created"
    );
    let warned = eventually(
        "an OutputMissing Event",
        Duration::from_secs(20),
        || async {
            let events = w.events_of("wf").await?;
            Ok(events
                .iter()
                .any(|(reason, type_, _)| reason == "OutputMissing" && type_ == "Warning")
                .then_some(()))
        },
    )
    .await;
    ensure!(warned.is_ok(), "{warned:?}: {:?}", w.events_of("wf").await?);
    Ok(())
}

#[tokio::test]
async fn recorded_outputs_survive_a_restart_and_are_not_read_again() -> Result<()> {
    let mut w = World::new("outputs-restart").await?;
    // `wait` runs 6 s beside compile; the test group starts after it.
    w.apply(&managedjob("wf", MESSAGE, 6000)).await?;
    wait_run(
        &w.api::<ManagedJob>(),
        "wf",
        "build/compile's outputs recorded",
        |r| outputs_of(r, "build/compile").is_some(),
        mj_run,
    )
    .await?;
    // Nothing left to read: a second read would find no pod and record the outputs missing.
    let pods: Api<Pod> = w.api();
    let selected = ListParams::default().labels("jobsmith.dev/job=compile");
    pods.delete_collection(&DeleteParams::default(), &selected)
        .await?;
    eventually("compile's pods gone", Duration::from_secs(20), || async {
        Ok(pods.list(&selected).await?.items.is_empty().then_some(()))
    })
    .await?;
    w.restart_manager().await?;
    let mj = wait_run(
        &w.api::<ManagedJob>(),
        "wf",
        "ManagedJob wf Succeeded",
        |r| r.phase == Some(Phase::Succeeded),
        mj_run,
    )
    .await?;
    let env = env_of(&w, "wf-test-unit").await?;
    ensure!(
        env.iter().any(|(n, v)| n == "VERSION" && v == "1.2.3"),
        "env of wf-test-unit: {env:?}; status {:?}",
        mj.status
    );
    Ok(())
}

#[tokio::test]
async fn reading_an_output_of_a_step_that_is_not_a_dependency_is_invalid() -> Result<()> {
    let w = World::new("outputs-invalid").await?;
    let image = fake_pod::IMAGE;
    w.apply(&format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: flow}}
spec:
  flows:
  - name: build
    outputs: [{{name: version}}]
    jobTemplate: {{template: {{spec: {{containers: [{{name: main, image: {image}}}]}}}}}}
  - name: beside
    env: [{{name: V, valueFrom: {{stepOutput: {{step: build, name: version}}}}}}]
    jobTemplate: {{template: {{spec: {{containers: [{{name: main, image: {image}}}]}}}}}}
"#
    ))
    .await?;
    let jf = wait_run(
        &w.api::<JobFlow>(),
        "flow",
        "JobFlow flow InvalidSpec",
        |r| r.phase == Some(Phase::Failed),
        jf_run,
    )
    .await?;
    let message = jf_run(&jf)
        .and_then(|r| r.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("not one of its dependencies"),
        "message: {message}"
    );
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = w.api();
    ensure!(
        jobs.list(&ListParams::default()).await?.items.is_empty(),
        "a Job was created"
    );
    Ok(())
}
