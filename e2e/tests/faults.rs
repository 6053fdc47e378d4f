//! Exactly once under faults (docs/guarantees.md), with the API server's audit log as the
//! independent witness of how many times each Job was created:
//! - chains of Jobs with `ttlSecondsAfterFinished: 0` while the manager is SIGKILLed at random
//!   moments and restarted after a random pause: every run succeeds, every step is created once;
//! - a run of more steps than the status lists (520 > 500 entries), TTL 0, a restart mid-run:
//!   no finished step runs again;
//! - a step whose running Job is deleted is `Lost` (failed, reason `Lost`), never re-created;
//! - a create refused by a ResourceQuota (403): the run says why, retries with backoff (a
//!   handful of POSTs, not a loop), and completes once the quota is raised;
//! - status writes refused by the API server (a ValidatingAdmissionPolicy on the status
//!   subresource): while none is stored no Job is created, and the run completes, each Job
//!   created once, when they are allowed again; a status refused for its content (422) is
//!   replaced by its summary and the run completes on the summary alone.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use jobsmith_api::{JobFlow, ManagedJob, Phase, StepPhase};
use jobsmith_e2e::{eventually, job_creates, list_jobs};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use support::{RUN_TIMEOUT, World, condition, mj_status, two_job_workflow, wait_run};

/// A small deterministic generator (xorshift64*), seeded from the clock and printed, so a
/// failing schedule of kills can be replayed with `FAULTS_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Self {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("FAULTS_SEED={seed}");
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A JobFlow chain of `steps` flows, each Job with `ttlSecondsAfterFinished: 0`.
fn ttl0_chain(name: &str, steps: usize) -> String {
    let mut yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n  flows:\n"
    );
    for i in 0..steps {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("\n    dependencies: [s{}]", i - 1)
        };
        yaml.push_str(&format!(
            r#"  - name: s{i}{deps}
    jobTemplate:
      ttlSecondsAfterFinished: 0
      template:
        metadata: {{annotations: {{jobsmith.dev/e2e-duration: "0"}}}}
        spec:
          containers: [{{name: main, image: {image}}}]
"#,
            image = jobsmith_e2e::fake_pod::IMAGE
        ));
    }
    yaml
}

fn flow_status(f: &JobFlow) -> Option<&jobsmith_api::RunStatus> {
    f.status.as_ref().map(|s| &s.run)
}

/// Every Job name created in the namespace must have been created exactly once, and there must
/// be `expected` of them.
fn assert_created_once(namespace: &str, expected: usize) -> Result<()> {
    let creates = job_creates(namespace)?;
    let twice: Vec<_> = creates.iter().filter(|(_, n)| **n != 1).collect();
    ensure!(twice.is_empty(), "Jobs created more than once: {twice:?}");
    ensure!(
        creates.len() == expected,
        "{} Jobs created, expected {expected}",
        creates.len()
    );
    Ok(())
}

#[tokio::test]
async fn sigkilled_managers_create_every_step_exactly_once() -> Result<()> {
    let runs = env_usize("FAULTS_RUNS", 6);
    let steps = env_usize("FAULTS_STEPS", 30);
    let mut w = World::new("faults-kill").await?;
    let mut rng = Rng::from_env_or_clock();
    for r in 0..runs {
        w.apply(&ttl0_chain(&format!("chain-{r}"), steps)).await?;
    }
    let flows: Api<JobFlow> = w.api();
    let deadline = Instant::now() + RUN_TIMEOUT * 4;
    let mut kills = 0;
    loop {
        let all = flows.list(&Default::default()).await?;
        let done = all
            .items
            .iter()
            .filter(|f| {
                flow_status(f)
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p == Phase::Succeeded || p == Phase::Failed)
            })
            .count();
        if done == runs {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "runs did not finish: {done}/{runs}"
        );
        // Let it work a random while, then SIGKILL, pause 0-5 s, start again.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(4000))).await;
        w.manager.kill_9()?;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.below(5000))).await;
        w.start_again().await?;
    }
    eprintln!("{kills} SIGKILLs");
    ensure!(
        kills >= 3,
        "the runs finished before the faults: make them longer"
    );
    for f in flows.list(&Default::default()).await?.items {
        let run = flow_status(&f).context("status")?;
        ensure!(
            run.phase == Some(Phase::Succeeded),
            "{:?} ended {:?}: {:?}",
            f.metadata.name,
            run.phase,
            run.message
        );
        let record = run.record.as_ref().context("status.record")?;
        ensure!(record.succeeded == format!("0-{}", steps - 1), "{record:?}");
    }
    assert_created_once(w.name(), runs * steps)
}

#[tokio::test]
async fn a_run_beyond_the_entry_cap_with_ttl_0_reruns_nothing_after_a_restart() -> Result<()> {
    let mut w = World::new("faults-600").await?;
    // 520 steps: beyond the 500 detail entries the status keeps.
    let per_group = 260;
    let mut yaml = String::from(
        r#"apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: quick}
spec:
  ttlSecondsAfterFinished: 0
  template:
    metadata: {annotations: {jobsmith.dev/e2e-duration: "0"}}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: big}
spec:
  maxParallel: 150
  groups:
"#,
    );
    for g in 0..2 {
        yaml.push_str(&format!("  - name: g{g}\n    jobs:\n"));
        for j in 0..per_group {
            yaml.push_str(&format!(
                "    - {{name: j{j}, parallel: true, templateRef: quick}}\n"
            ));
        }
    }
    w.apply(&yaml).await?;
    let runs: Api<ManagedJob> = w.api();
    // Restart once about half-way, with finished Jobs already deleted by the deferred TTL.
    eventually("half of the steps done", RUN_TIMEOUT * 3, || async {
        let mj = runs.get("big").await?;
        let done = mj
            .status
            .as_ref()
            .and_then(|s| s.run.progress.as_deref())
            .and_then(|p| p.split('/').next()?.parse::<usize>().ok())
            .unwrap_or(0);
        Ok((done >= 2 * per_group / 2).then_some(()))
    })
    .await?;
    w.manager.kill_9()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.start_again().await?;
    let mj = eventually("the run finished", RUN_TIMEOUT * 4, || async {
        let mj = runs.get("big").await?;
        let phase = mj.status.as_ref().and_then(|s| s.run.phase);
        Ok(phase
            .filter(|p| *p == Phase::Succeeded || *p == Phase::Failed)
            .map(|_| mj))
    })
    .await?;
    let status = mj.status.context("status")?;
    ensure!(
        status.run.phase == Some(Phase::Succeeded),
        "{:?}",
        status.run.message
    );
    ensure!(status.jobs.len() <= 500, "entries are capped");
    // The deferred TTL deleted the finished Jobs (only after recording them).
    let left = list_jobs(&w.client, w.name()).await?;
    eventually(
        "the finished Jobs deleted",
        Duration::from_secs(60),
        || async {
            Ok(list_jobs(&w.client, w.name())
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await
    .with_context(|| format!("{} Jobs left", left.len()))?;
    assert_created_once(w.name(), 2 * per_group)
}

#[tokio::test]
async fn a_job_deleted_while_running_is_lost_not_run_again() -> Result<()> {
    let w = World::new("faults-lost").await?;
    w.apply(&format!(
        r#"apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: lost}}
spec:
  flows:
  - name: slow
    jobTemplate:
      template:
        metadata: {{annotations: {{jobsmith.dev/e2e-duration: "60000"}}}}
        spec:
          containers: [{{name: main, image: {image}}}]
"#,
        image = jobsmith_e2e::fake_pod::IMAGE
    ))
    .await?;
    let jobs: Api<Job> = w.api();
    eventually("the Job", Duration::from_secs(30), || async {
        Ok(jobs.get_opt("lost-slow").await?)
    })
    .await?;
    // Give the manager a moment to record the creation, then delete the running Job.
    let flows: Api<JobFlow> = w.api();
    wait_run(
        &flows,
        "lost",
        "creation recorded",
        |s| s.record.as_ref().is_some_and(|r| r.created == "0"),
        flow_status,
    )
    .await?;
    jobs.delete("lost-slow", &DeleteParams::background())
        .await?;
    let f = wait_run(
        &flows,
        "lost",
        "run Failed with a Lost step",
        |s| s.phase == Some(Phase::Failed),
        flow_status,
    )
    .await?;
    let status = f.status.context("status")?;
    let entry = status
        .flows
        .iter()
        .find(|e| e.key == "slow")
        .context("entry")?;
    ensure!(entry.phase == StepPhase::Failed, "{entry:?}");
    ensure!(entry.reason.as_deref() == Some("Lost"), "{entry:?}");
    let stalled = condition(&status.run, "Stalled").context("Stalled")?;
    ensure!(stalled.status == "True", "{stalled:?}");
    ensure!(status.run.record.as_ref().is_some_and(|r| r.lost == "0"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(jobs.get_opt("lost-slow").await?.is_none(), "re-created");
    assert_created_once(w.name(), 1)
}

#[tokio::test]
async fn a_quota_refusal_is_reported_retried_with_backoff_and_then_completes() -> Result<()> {
    let w = World::new("faults-quota").await?;
    w.apply(
        r#"apiVersion: v1
kind: ResourceQuota
metadata: {name: jobs}
spec:
  hard: {count/jobs.batch: "1"}
"#,
    )
    .await?;
    w.apply(&format!(
        r#"apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata: {{name: quota}}
spec:
  flows:
  - name: first
    jobTemplate:
      template:
        metadata: {{annotations: {{jobsmith.dev/e2e-duration: "0"}}}}
        spec: {{containers: [{{name: main, image: {image}}}]}}
  - name: second
    jobTemplate:
      template:
        metadata: {{annotations: {{jobsmith.dev/e2e-duration: "0"}}}}
        spec: {{containers: [{{name: main, image: {image}}}]}}
"#,
        image = jobsmith_e2e::fake_pod::IMAGE
    ))
    .await?;
    let flows: Api<JobFlow> = w.api();
    let f = wait_run(
        &flows,
        "quota",
        "Ready=False CreateRefused naming the quota",
        |s| {
            condition(s, "Ready").is_some_and(|c| {
                c.status == "False" && c.reason == "CreateRefused" && c.message.contains("quota")
            })
        },
        flow_status,
    )
    .await?;
    let status = f.status.context("status")?;
    let refused = status
        .flows
        .iter()
        .find(|e| e.reason.as_deref() == Some("CreateRefused"))
        .context("a CreateRefused step")?;
    ensure!(refused.phase == StepPhase::Pending, "{refused:?}");
    w.wait_first_event("quota", "CreateRefused").await?;
    // Over 12 s the refused create is retried with backoff (1, 2, 4, 8 s): a handful of POSTs.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let refusals = support::family_sum(&w.metrics().await?, "jobsmith_job_create_refusals_total");
    ensure!(
        (1.0..=6.0).contains(&refusals),
        "{refusals} refused creates in 12 s"
    );
    w.apply(
        r#"apiVersion: v1
kind: ResourceQuota
metadata: {name: jobs}
spec:
  hard: {count/jobs.batch: "10"}
"#,
    )
    .await?;
    wait_run(
        &flows,
        "quota",
        "Succeeded after the quota was raised",
        |s| s.phase == Some(Phase::Succeeded),
        flow_status,
    )
    .await?;
    Ok(())
}

/// A ValidatingAdmissionPolicy (and its binding, both named after the test's namespace) that
/// refuses updates of ManagedJob statuses in that namespace for which `refuses` (CEL) is true;
/// deleted when dropped (cluster-scoped, so it must not outlive the test).
struct StatusPolicy {
    name: String,
}

/// The message of the policy's refusals, looked for in the manager's log.
const REFUSED_BY_POLICY: &str = "status refused by the e2e policy";

impl StatusPolicy {
    async fn apply(w: &World, refuses: &str, reason: &str) -> Result<Self> {
        let name = w.name();
        let policy = StatusPolicy {
            name: name.to_owned(),
        };
        let yaml = format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [jobsmith.dev]
      apiVersions: ["*"]
      operations: [UPDATE]
      resources: [managedjobs/status]
  validations:
  - expression: '!({refuses})'
    message: {REFUSED_BY_POLICY}
    reason: {reason}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {name}}}
"#
        );
        jobsmith_e2e::apply_yaml(&w.client, None, &yaml).await?;
        Ok(policy)
    }

    /// Waits until the API server enforces the policy (it is read by an informer): a status
    /// patch of the suspended ManagedJob `probe` (which creates no Job) is refused.
    async fn wait_enforced(&self, w: &World, refused_patch: serde_json::Value) -> Result<()> {
        w.apply(
            r#"apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {name: probe}
spec:
  suspend: true
  groups:
  - name: g
    jobs:
    - {name: a, image: example.invalid/fake:1}
"#,
        )
        .await?;
        let mjs: Api<ManagedJob> = w.api();
        let patch = Patch::Merge(refused_patch);
        eventually("the policy enforced", Duration::from_secs(30), || async {
            match mjs
                .patch_status("probe", &PatchParams::default(), &patch)
                .await
            {
                Err(kube::Error::Api(refused)) if refused.message.contains(REFUSED_BY_POLICY) => {
                    Ok(Some(()))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    fn remove(&self) -> Result<()> {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let status = std::process::Command::new(jobsmith_e2e::kubectl_program())
                .args([
                    "delete",
                    kind,
                    &self.name,
                    "--ignore-not-found",
                    "--wait=false",
                ])
                .status()?;
            ensure!(status.success(), "deleting {kind} {}", self.name);
        }
        Ok(())
    }
}

impl Drop for StatusPolicy {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            eprintln!("removing the policy {}: {error:#}", self.name);
        }
    }
}

#[tokio::test]
async fn while_no_status_can_be_stored_no_job_is_created() -> Result<()> {
    let w = World::new("faults-status").await?;
    let policy = StatusPolicy::apply(&w, "true", "Forbidden").await?;
    policy
        .wait_enforced(&w, serde_json::json!({"status": {"message": "probe"}}))
        .await?;
    w.apply(&two_job_workflow("held")).await?;
    // The manager reconciles it and its first status write is refused (403).
    eventually(
        "the refusal in the log",
        Duration::from_secs(30),
        || async {
            let logs = w.manager.logs();
            Ok(logs
                .lines()
                .any(|l| l.contains("held") && l.contains(REFUSED_BY_POLICY))
                .then_some(()))
        },
    )
    .await?;
    // Status before the first Job: nothing may be created while no status is stored.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let jobs = list_jobs(&w.client, w.name()).await?;
    ensure!(
        jobs.is_empty(),
        "Jobs created while no status was stored: {:?}",
        jobs.iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let mjs: Api<ManagedJob> = w.api();
    let held = mjs.get("held").await?;
    ensure!(
        held.status.is_none(),
        "a status was stored: {:?}",
        held.status
    );
    policy.remove()?;
    wait_run(
        &mjs,
        "held",
        "Succeeded once status writes are allowed",
        |s| s.phase == Some(Phase::Succeeded),
        mj_status,
    )
    .await?;
    assert_created_once(w.name(), 2)
}

#[tokio::test]
async fn a_status_refused_for_its_content_is_replaced_by_its_summary() -> Result<()> {
    let w = World::new("faults-summary").await?;
    // Refused (422, Invalid) when it lists step entries: the summary has none.
    let policy = StatusPolicy::apply(
        &w,
        "has(object.status) && has(object.status.jobs) && size(object.status.jobs) > 0",
        "Invalid",
    )
    .await?;
    policy
        .wait_enforced(
            &w,
            serde_json::json!({"status": {"jobs": [{"key": "g/a", "phase": "Pending"}]}}),
        )
        .await?;
    w.apply(&two_job_workflow("summarised")).await?;
    let mjs: Api<ManagedJob> = w.api();
    let done = wait_run(
        &mjs,
        "summarised",
        "Succeeded on the summary",
        |s| s.phase == Some(Phase::Succeeded),
        mj_status,
    )
    .await?;
    let status = done.status.context("status")?;
    ensure!(
        status.jobs.is_empty() && status.groups.is_empty(),
        "step detail stored past the policy: {:?} {:?}",
        status.jobs,
        status.groups
    );
    ensure!(status.run.record.is_some(), "no record in the summary");
    ensure!(
        status.run.progress.as_deref() == Some("2/2"),
        "progress {:?}",
        status.run.progress
    );
    ensure!(
        w.manager
            .logs()
            .contains("status refused; writing the summary only"),
        "no summary fallback in the log"
    );
    drop(policy);
    assert_created_once(w.name(), 2)
}
