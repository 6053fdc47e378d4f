//! The states a GitOps tool meets on Jobsmith objects, produced for real on the plane, one set
//! per kind: what `argocd_health.rs` (Argo CD health scripts) and `kstatus.rs` (Flux's kstatus)
//! check. Each kind's objects are created at once in a test namespace with its own manager, and
//! every version of them is recorded by a watch ([`History`]) from before their creation.
//!
//! A [`Case`] names one captured state: the first recorded version of one object that matches a
//! predicate. Two more states need the manager stopped: `generation-ahead` (a spec change the
//! manager has not seen yet) and `deleting` (a deletion held by a finalizer of the test's own).

use std::time::Duration;

use anyhow::{Context as _, Result};
use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};
use jobsmith_e2e::fake_pod::IMAGE;
use jobsmith_e2e::witness::history::{Change, History, Version};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{RUN_TIMEOUT, World};

/// A finalizer of the tests' own that holds a deleted object in `deleting`.
pub const HOLD_FINALIZER: &str = "jobsmith.dev/e2e-hold";

/// One captured state.
pub struct Case {
    /// The capture's name (`testdata/<name>.yaml` for Argo CD).
    pub name: &'static str,
    /// The object it is a version of.
    pub object: &'static str,
    /// What kstatus must say about it (`Current`, `InProgress`, `Failed`, `Terminating`).
    pub kstatus: &'static str,
    /// What Flux must say with `deploy/flux/health-check-exprs.yaml` (`Unknown` when the
    /// expressions cannot be evaluated yet: no status).
    pub flux: &'static str,
    /// Which version: the first that matches.
    pub matches: fn(&Version) -> bool,
}

/// One kind's objects and states.
pub struct Scenario {
    /// The kind (`ManagedJob`, ...), also the directory of its Argo CD health check.
    pub kind: &'static str,
    /// Its API resource.
    pub resource: ApiResource,
    /// Everything to apply at once (run objects and the JobTemplates they use).
    pub yaml: String,
    /// Jobs to create before `yaml` (a name taken by a Job of another owner).
    pub foreign_jobs: Vec<&'static str>,
    /// The states captured while the manager runs, in the order they are waited for.
    pub cases: Vec<Case>,
    /// The object that is then changed with the manager stopped (`generation-ahead`) and deleted
    /// (`deleting`).
    pub subject: &'static str,
    /// The spec change (a JSON merge patch).
    pub spec_change: Value,
}

/// The states captured with the manager stopped, with what kstatus and Flux's expressions must
/// say about them. Flux's expressions have no deletion rule; the deleted subject also has the
/// spec change of `generation-ahead`, hence InProgress.
pub const STOPPED_CASES: &[(&str, &str, &str)] = &[
    ("generation-ahead", "InProgress", "InProgress"),
    ("deleting", "Terminating", "InProgress"),
];

fn created(v: &Version) -> bool {
    v.change == Change::Added
}
fn running(v: &Version) -> bool {
    v.phase() == Some("Running")
}
fn succeeded(v: &Version) -> bool {
    v.phase() == Some("Succeeded")
}
fn failed(v: &Version) -> bool {
    v.phase() == Some("Failed")
}
fn suspended(v: &Version) -> bool {
    v.phase() == Some("Suspended")
}
fn ready_reason(v: &Version, reason: &str) -> bool {
    v.condition_status("Ready")
        .is_some_and(|(_, r)| r == reason)
}
fn invalid_spec(v: &Version) -> bool {
    failed(v) && ready_reason(v, "InvalidSpec")
}
fn template_not_found(v: &Version) -> bool {
    ready_reason(v, "TemplateNotFound")
}
fn template_invalid(v: &Version) -> bool {
    ready_reason(v, "TemplateInvalid")
}
fn name_conflict(v: &Version) -> bool {
    failed(v) && ready_reason(v, "NameConflict")
}
fn override_not_allowed(v: &Version) -> bool {
    failed(v) && ready_reason(v, "OverrideNotAllowed")
}
fn template_ready(v: &Version) -> bool {
    v.condition_status("Ready") == Some(("True", "TemplateValid"))
}

/// The states every run kind goes through (`created` to `failed`).
fn run_cases(extra: Vec<Case>) -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "created",
            object: "ok",
            kstatus: "Current",
            flux: "Unknown",
            matches: created,
        },
        Case {
            name: "running",
            object: "ok",
            kstatus: "InProgress",
            flux: "InProgress",
            matches: running,
        },
        Case {
            name: "succeeded",
            object: "ok",
            kstatus: "Current",
            flux: "Current",
            matches: succeeded,
        },
        Case {
            name: "failed",
            object: "failing",
            kstatus: "Failed",
            flux: "Failed",
            matches: failed,
        },
        Case {
            name: "template-not-found",
            object: "missing",
            kstatus: "InProgress",
            flux: "InProgress",
            matches: template_not_found,
        },
        Case {
            name: "pending-template-invalid",
            object: "waiting",
            kstatus: "InProgress",
            flux: "InProgress",
            matches: template_invalid,
        },
    ];
    cases.extend(extra);
    cases
}

/// kstatus reads a suspended run as InProgress: no Reconciling or Stalled condition is True, and
/// its fallback on `Ready` (False while suspended) says InProgress (docs/gitops.md).
fn suspended_case() -> Case {
    Case {
        name: "suspended",
        object: "suspended",
        kstatus: "InProgress",
        flux: "Current",
        matches: suspended,
    }
}

fn invalid_spec_case() -> Case {
    Case {
        name: "invalid-spec",
        object: "invalid",
        kstatus: "Failed",
        flux: "Failed",
        matches: invalid_spec,
    }
}

/// A JobTemplate that cannot be used (no container).
const BROKEN_TEMPLATE: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {name: broken}
spec:
  template:
    spec:
      containers: []
"#;

/// The pod label that makes a fake pod fail.
const FAIL_LABELS: &str = "{jobsmith.dev/e2e-outcome: fail}";

/// The pods of the DaemonJobs run on one of the plane's own nodes (other tests' extra nodes are
/// tainted for their own pods).
const ONE_NODE: &str = "{kubernetes.io/hostname: kwok-node-0}";

pub fn managedjob() -> Scenario {
    let yaml = format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: ok}}
spec:
  retries: 0
  groups:
  - name: g
    jobs:
    - {{name: a, image: {IMAGE}}}
    - {{name: b, image: {IMAGE}}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: failing}}
spec:
  retries: 0
  groups:
  - name: g
    jobs:
    - {{name: a, image: {IMAGE}, params: {{labels: {FAIL_LABELS}}}}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: suspended}}
spec:
  suspend: true
  groups:
  - name: g
    jobs: [{{name: a, image: {IMAGE}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: invalid}}
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
metadata: {{name: missing}}
spec:
  groups:
  - name: g
    jobs: [{{name: a, templateRef: nope}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: waiting}}
spec:
  groups:
  - name: g
    jobs: [{{name: a, templateRef: broken}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata: {{name: conflict}}
spec:
  groups:
  - name: g
    jobs: [{{name: a, image: {IMAGE}}}]
---
{BROKEN_TEMPLATE}
"#
    );
    Scenario {
        kind: "ManagedJob",
        resource: ApiResource::erase::<ManagedJob>(&()),
        yaml,
        foreign_jobs: vec!["conflict-g-a"],
        cases: run_cases(vec![
            suspended_case(),
            invalid_spec_case(),
            Case {
                name: "name-conflict",
                object: "conflict",
                kstatus: "Failed",
                flux: "Failed",
                matches: name_conflict,
            },
        ]),
        subject: "ok",
        spec_change: json!({"spec": {"retries": 2}}),
    }
}

/// A flow with an inline JobSpec.
fn flow(name: &str, deps: &str, labels: &str) -> String {
    format!(
        r#"
  - name: {name}
    dependencies: [{deps}]
    jobTemplate:
      template:
        metadata: {{labels: {labels}}}
        spec:
          containers: [{{name: main, image: {IMAGE}}}]"#
    )
}

fn jobflow_yaml(name: &str, spec: &str, flows: &[String]) -> String {
    format!(
        "---\napiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata: {{name: {name}}}\nspec:\n{spec}  flows:{}\n",
        flows.concat()
    )
}

pub fn jobflow() -> Scenario {
    let yaml = [
        jobflow_yaml("ok", "", &[flow("a", "", "{}"), flow("b", "a", "{}")]),
        jobflow_yaml("failing", "", &[flow("a", "", FAIL_LABELS)]),
        jobflow_yaml("suspended", "  suspend: true\n", &[flow("a", "", "{}")]),
        jobflow_yaml("invalid", "", &[flow("a", "b", "{}"), flow("b", "a", "{}")]),
        jobflow_yaml(
            "missing",
            "",
            &["\n  - name: a\n    jobTemplateRef: nope".to_owned()],
        ),
        jobflow_yaml(
            "waiting",
            "",
            &["\n  - name: a\n    jobTemplateRef: broken".to_owned()],
        ),
        format!("---{BROKEN_TEMPLATE}"),
    ]
    .concat();
    Scenario {
        kind: "JobFlow",
        resource: ApiResource::erase::<JobFlow>(&()),
        yaml,
        foreign_jobs: Vec::new(),
        cases: run_cases(vec![suspended_case(), invalid_spec_case()]),
        subject: "ok",
        spec_change: json!({"spec": {"maxParallel": 5}}),
    }
}

fn daemonjob_yaml(name: &str, spec: &str, labels: &str) -> String {
    format!(
        r#"---
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata: {{name: {name}}}
spec:
{spec}  backoffLimit: 0
  template:
    metadata: {{labels: {labels}}}
    spec:
      nodeSelector: {ONE_NODE}
      containers: [{{name: main, image: {IMAGE}}}]
"#
    )
}

pub fn daemonjob() -> Scenario {
    let yaml = [
        daemonjob_yaml("ok", "", "{}"),
        daemonjob_yaml("failing", "", FAIL_LABELS),
        daemonjob_yaml("suspended", "  suspend: true\n", "{}"),
        "---\napiVersion: jobsmith.dev/v1alpha1\nkind: DaemonJob\nmetadata: {name: missing}\nspec:\n  templateRef: nope\n".to_owned(),
        "---\napiVersion: jobsmith.dev/v1alpha1\nkind: DaemonJob\nmetadata: {name: waiting}\nspec:\n  templateRef: broken\n".to_owned(),
        format!("---{BROKEN_TEMPLATE}"),
    ]
    .concat();
    Scenario {
        kind: "DaemonJob",
        resource: ApiResource::erase::<DaemonJob>(&()),
        yaml,
        foreign_jobs: Vec::new(),
        cases: run_cases(vec![suspended_case()]),
        subject: "ok",
        spec_change: json!({"spec": {"excludeNodes": ["nope"]}}),
    }
}

pub fn jobrun() -> Scenario {
    let yaml = format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: task}}
spec:
  backoffLimit: 0
  template:
    spec:
      containers: [{{name: main, image: {IMAGE}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: failing-task}}
spec:
  backoffLimit: 0
  template:
    metadata: {{labels: {FAIL_LABELS}}}
    spec:
      containers: [{{name: main, image: {IMAGE}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: locked}}
spec:
  overridable: []
  template:
    spec:
      containers: [{{name: main, image: {IMAGE}}}]
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: ok}}
spec: {{templateRef: task, args: [hello]}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: failing}}
spec: {{templateRef: failing-task}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: locked}}
spec: {{templateRef: locked, args: [not, allowed]}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: missing}}
spec: {{templateRef: nope}}
---
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata: {{name: waiting}}
spec: {{templateRef: broken}}
---
{BROKEN_TEMPLATE}
"#
    );
    Scenario {
        kind: "JobRun",
        resource: ApiResource::erase::<JobRun>(&()),
        yaml,
        foreign_jobs: Vec::new(),
        cases: run_cases(vec![Case {
            name: "override-not-allowed",
            object: "locked",
            kstatus: "Failed",
            flux: "Failed",
            matches: override_not_allowed,
        }]),
        subject: "ok",
        spec_change: json!({"spec": {"args": ["again"]}}),
    }
}

pub fn jobtemplate() -> Scenario {
    let yaml = format!(
        r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata: {{name: ok}}
spec:
  template:
    spec:
      containers: [{{name: main, image: {IMAGE}}}]
---
{BROKEN_TEMPLATE}
"#
    );
    Scenario {
        kind: "JobTemplate",
        resource: ApiResource::erase::<JobTemplate>(&()),
        yaml,
        foreign_jobs: Vec::new(),
        cases: vec![
            Case {
                name: "created",
                object: "ok",
                kstatus: "Current",
                flux: "Unknown",
                matches: created,
            },
            Case {
                name: "ready",
                object: "ok",
                kstatus: "Current",
                flux: "Current",
                matches: template_ready,
            },
            Case {
                name: "invalid",
                object: "broken",
                kstatus: "Failed",
                flux: "Failed",
                matches: template_invalid,
            },
        ],
        subject: "ok",
        spec_change: json!({"spec": {"overridable": ["args"]}}),
    }
}

/// Every kind's scenario.
pub fn all() -> Vec<Scenario> {
    vec![
        managedjob(),
        jobflow(),
        daemonjob(),
        jobrun(),
        jobtemplate(),
    ]
}

/// A captured state: the case's name, what kstatus and Flux's expressions must say, and the
/// object.
pub struct Captured {
    pub name: &'static str,
    pub kstatus: &'static str,
    pub flux: &'static str,
    pub object: Value,
}

/// What a scenario produced: the captured states and the full record of its kind and of the
/// namespace's Jobs.
pub struct Played {
    pub captured: Vec<Captured>,
    pub objects: History,
    pub jobs: History,
}

/// Plays a scenario in the world: records, applies, waits for each case (capturing it), then stops
/// the manager and captures `generation-ahead` and `deleting` of the subject. The deleted subject
/// is released (its finalizer removed) before returning.
pub async fn play(world: &mut World, scenario: &Scenario) -> Result<Played> {
    let objects = History::start(&world.client, world.name(), &scenario.resource).await?;
    let jobs = History::start(&world.client, world.name(), &ApiResource::erase::<Job>(&())).await?;
    for name in &scenario.foreign_jobs {
        let foreign: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": IMAGE}]}}}
        }))?;
        world
            .api::<Job>()
            .create(&PostParams::default(), &foreign)
            .await?;
    }
    world.apply(&scenario.yaml).await?;
    let mut captured = Vec::new();
    for case in &scenario.cases {
        let version = objects
            .wait_for(case.object, case.name, RUN_TIMEOUT, case.matches)
            .await
            .with_context(|| format!("{} {}: state {}", scenario.kind, case.object, case.name))?;
        captured.push(Captured {
            name: case.name,
            kstatus: case.kstatus,
            flux: case.flux,
            object: version.object,
        });
    }

    // The manager stops; a spec change is then not observed.
    world.manager.stop()?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(world.client.clone(), world.name(), &scenario.resource);
    let changed = api
        .patch(
            scenario.subject,
            &PatchParams::default(),
            &Patch::Merge(&scenario.spec_change),
        )
        .await
        .with_context(|| format!("changing the spec of {}", scenario.subject))?;
    captured.push(Captured {
        name: STOPPED_CASES[0].0,
        kstatus: STOPPED_CASES[0].1,
        flux: STOPPED_CASES[0].2,
        object: serde_json::to_value(&changed)?,
    });

    // A deletion held by a finalizer of the test's own.
    let mut finalizers = changed.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(HOLD_FINALIZER.to_owned());
    api.patch(
        scenario.subject,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
    )
    .await?;
    api.delete(scenario.subject, &DeleteParams::background())
        .await?;
    let deleting = api.get(scenario.subject).await?;
    anyhow::ensure!(
        deleting.metadata.deletion_timestamp.is_some(),
        "{} has no deletionTimestamp after its deletion",
        scenario.subject
    );
    captured.push(Captured {
        name: STOPPED_CASES[1].0,
        kstatus: STOPPED_CASES[1].1,
        flux: STOPPED_CASES[1].2,
        object: serde_json::to_value(&deleting)?,
    });
    let kept: Vec<String> = finalizers
        .into_iter()
        .filter(|f| f != HOLD_FINALIZER)
        .collect();
    api.patch(
        scenario.subject,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": kept}})),
    )
    .await?;
    jobsmith_e2e::wait_deleted(&api, scenario.subject, Duration::from_secs(30)).await?;
    Ok(Played {
        captured,
        objects,
        jobs,
    })
}
