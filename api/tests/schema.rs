//! Each kind accepts the seed examples without dropping a field, and its CRD schema carries the
//! validations of SPEC §1-6 (bounds, enums, keyed lists, CEL rules, preserve-unknown embeds).

// Tests may panic on broken fixtures; the workspace lint is for production code.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use jobsmith_api::{
    DaemonJob, FailurePolicy, ImagePullPolicyParam, JobFlow, JobRun, JobTemplate, ManagedJob,
    OverridableField, RequiredStatus,
};
use kube::CustomResourceExt;
use serde_json::Value;

mod common;
use common::dropped_paths;

const MANAGEDJOB_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata:
  labels:
  name: managedjob-sample
spec:
  retries: 3
  params:
    env:
      - name: "FOO"
        value: "bar"
      - name: "QUE"
        value: "pasa"
  groups:
    - name: "first-group"
      parallel: true
      params:
        env:
          - name: "FEE"
            value: "bee"
      jobs:
        - name: "first-job"
          image: "busybox"
          args:
            - "echo"
            - "Hello world!"
          params:
            env:
              - name: "POO"
                value: "paz"
        - name: "second-job"
          image: "busybox"
          args: ["sleep", "10"]
        - name: "second-half-job"
          image: "busybox"
          args: ["sleep", "10"]
    - name: "second-group"
      parallel: true
      jobs:
        - name: "third-job"
          image: "busybox"
          args: ["echo", "Hello world!"]
          parallel: true
        - name: "fourth-job"
          image: "busybox"
          args: ["sleep", "10"]
          parallel: false
    - name: "third-group"
      parallel: false
      jobs:
        - name: "fifth-job"
          image: "busybox"
          args: ["echo", "Hello world!"]
          parallel: true
"#;

/// The seed's "Available params" block, with every params field.
const MANAGEDJOB_PARAMS_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: ManagedJob
metadata:
  name: params
spec:
  params:
    fromEnv:
      - configMapRef:
          name: "configmap-name"
        key: "key-name"
    env:
      - name: "FOO"
        value: "bar"
    volumes:
      - name: secrets-store-api
        csi:
          driver: secrets-store.csi.k8s.io
          readOnly: true
          volumeAttributes:
            secretProviderClass: api-secrets-provider
    volumeMount:
      - name: secrets-store-api
        mountPath: "/mnt/secrets-api"
        readOnly: true
    serviceAccount: "service-account-name"
    restartPolicy: "Never"
    imagePullSecrets:
      - "ghcr-token"
    imagePullPolicy:
      - "Always"
    labels:
      this/works: "true"
    annotations:
      this/works/aswell: "true"
    resources:
      limits:
        cpu: "500m"
        memory: "256Mi"
      requests:
        cpu: "100m"
        memory: "128Mi"
  groups:
    - name: g
      dependencies:
        - name: other
          status: completed
      jobs:
        - name: j
          image: busybox
          command: ["sh", "-c"]
          args: ["true"]
          templateRef: base
          dependencies:
            - name: other/x
    - name: other
      jobs:
        - name: x
          image: busybox
  failurePolicy: FailFast
  suspend: true
  maxParallel: 2
"#;

const JOBFLOW_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobFlow
metadata:
  name: jobflow-example
spec:
  globalParams:
    nodeName: minikube
    env:
      - name: "FOO"
        value: "bar"
    annotations:
      key1: value1
    labels:
      key1: value1
  shareVolumes:
    - name: data
      emptyDir: {}
  flows:
    - name: job1
      dependencies: []
      shareVolumeMounts:
        - name: data
          mountPath: /data
      jobTemplate:
        template:
          spec:
            containers:
              - image: busybox:1.28
                command: ["sh", "-c", "sleep 10s"]
                imagePullPolicy: IfNotPresent
                name: nginx
    - name: job2
      jobTemplate:
        template:
          spec:
            containers:
              - image: busybox:1.28
                command: ["sh", "-c", "sleep 100s"]
                imagePullPolicy: IfNotPresent
                name: nginx
      dependencies:
        - job1
    - name: job3
      jobTemplateRef: my-template
      dependencies:
        - job1
        - job2
"#;

const DAEMONJOB_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: DaemonJob
metadata:
  name: daemonjob-example
spec:
  globalParams:
    env:
      - name: "FOO"
        value: "bar"
    annotations:
      key1: value1
    labels:
      key1: value1
  excludeNodeList: node1, node2
  excludeNodes: [node3]
  backoffLimit: 2
  suspend: true
  maxParallel: 3
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - image: busybox:1.28
          command: ["sh", "-c", "sleep 100s"]
          imagePullPolicy: IfNotPresent
          name: nginx
"#;

const JOBTEMPLATE_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata:
  name: echo-template
spec:
  backoffLimit: 1
  template:
    spec:
      containers:
        - name: echo-container
          image: busybox
          command: ["echo"]
      restartPolicy: Never
"#;

const JOBTEMPLATE_DEPLOY_SHAPE: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobTemplate
metadata:
  name: deploy-shape
spec:
  overridable: [args]
  jobTemplate:
    backoffLimit: 4
    template:
      spec:
        containers:
          - name: c
            image: busybox
        restartPolicy: Never
"#;

const JOBRUN_SEED: &str = r#"
apiVersion: jobsmith.dev/v1alpha1
kind: JobRun
metadata:
  name: echo-hello-world-run
spec:
  templateRef: echo-template
  args: ["Hello, world!"]
  container: echo-container
  command: ["echo"]
  env:
    - name: GREETING
      value: hi
"#;

#[test]
fn managedjob_seed_round_trips() {
    let (mj, dropped) = dropped_paths::<ManagedJob>(MANAGEDJOB_SEED);
    assert_eq!(dropped, Vec::<String>::new());
    assert_eq!(mj.spec.retries, 3);
    assert_eq!(mj.spec.groups.len(), 3);
    assert_eq!(mj.spec.groups[0].jobs[1].name, "second-job");
    assert!(mj.spec.groups[0].parallel);
    assert!(mj.spec.groups[1].jobs[0].parallel);
    assert_eq!(mj.spec.failure_policy, FailurePolicy::ContinueIndependent);
}

#[test]
fn managedjob_params_seed_keeps_every_field_but_the_bogus_key() {
    let (mj, dropped) = dropped_paths::<ManagedJob>(MANAGEDJOB_PARAMS_SEED);
    // The seed README puts `key` next to `configMapRef` in fromEnv; EnvFromSource has no such
    // field (the seed's API server prunes it too). Nothing else may be dropped.
    assert_eq!(dropped, vec![".spec.params.fromEnv[0].key".to_string()]);
    let params = mj.spec.params.expect("params");
    assert_eq!(
        params.image_pull_policy.as_ref().and_then(|p| p.policy()),
        Some("Always")
    );
    assert_eq!(params.volume_mount.as_ref().map(Vec::len), Some(1));
    assert_eq!(params.volumes.as_ref().map(Vec::len), Some(1));
    assert_eq!(mj.spec.retries, 1, "retries defaults to 1");
    assert_eq!(mj.spec.failure_policy, FailurePolicy::FailFast);
    assert!(mj.spec.suspend);
    assert_eq!(mj.spec.max_parallel, Some(2));
    let group = &mj.spec.groups[0];
    assert_eq!(group.dependencies[0].status, RequiredStatus::Completed);
    assert_eq!(
        group.jobs[0].dependencies[0].status,
        RequiredStatus::Succeeded
    );
    assert_eq!(group.jobs[0].template_ref.as_deref(), Some("base"));
}

#[test]
fn volume_mounts_alias_is_accepted() {
    let yaml = "volumeMounts:\n  - name: v\n    mountPath: /v\n";
    let params: jobsmith_api::Params = serde_yaml::from_str(yaml).expect("alias accepted");
    assert_eq!(
        params.volume_mount.map(|m| m[0].mount_path.clone()),
        Some("/v".into())
    );
}

#[test]
fn image_pull_policy_accepts_string_and_single_element_list() {
    let single: ImagePullPolicyParam = serde_json::from_str("\"Never\"").expect("string");
    let list: ImagePullPolicyParam = serde_json::from_str("[\"Always\"]").expect("list");
    let two: ImagePullPolicyParam = serde_json::from_str("[\"Always\",\"Never\"]").expect("list");
    let bogus: ImagePullPolicyParam = serde_json::from_str("\"Sometimes\"").expect("string");
    assert_eq!(single.policy(), Some("Never"));
    assert!(single.is_valid() && list.is_valid());
    assert!(!two.is_valid());
    assert!(!bogus.is_valid());
    assert_eq!(
        serde_json::to_string(&list).expect("serializes"),
        "[\"Always\"]"
    );
}

#[test]
fn jobflow_seed_round_trips() {
    let (jf, dropped) = dropped_paths::<JobFlow>(JOBFLOW_SEED);
    assert_eq!(dropped, Vec::<String>::new());
    assert_eq!(
        jf.spec.failure_policy,
        FailurePolicy::FailFast,
        "JobFlow fails fast by default"
    );
    assert_eq!(jf.spec.flows[2].dependencies, vec!["job1", "job2"]);
    assert!(jf.spec.flows[0].job_template.is_some());
    assert_eq!(
        jf.spec.flows[2].job_template_ref.as_deref(),
        Some("my-template")
    );
    assert_eq!(
        jf.spec.global_params.and_then(|g| g.node_name).as_deref(),
        Some("minikube")
    );
}

#[test]
fn daemonjob_seed_round_trips_with_inline_jobspec() {
    let (dj, dropped) = dropped_paths::<DaemonJob>(DAEMONJOB_SEED);
    assert_eq!(dropped, Vec::<String>::new());
    assert!(dj.spec.suspend, "spec.suspend is the run control");
    assert_eq!(dj.spec.job.suspend, None, "never copied into the Job spec");
    assert_eq!(dj.spec.job.backoff_limit, Some(2));
    assert!(dj.spec.has_inline_template());
    let excluded: Vec<String> = dj.spec.excluded_nodes().into_iter().collect();
    assert_eq!(excluded, vec!["node1", "node2", "node3"]);
}

#[test]
fn jobtemplate_both_shapes_round_trip() {
    let (jt, dropped) = dropped_paths::<JobTemplate>(JOBTEMPLATE_SEED);
    assert_eq!(dropped, Vec::<String>::new());
    assert_eq!(jt.spec.effective_job_spec().backoff_limit, Some(1));
    assert!(
        jt.spec.allows(OverridableField::Env),
        "default allows command, args, env"
    );
    assert!(jt.spec.allows(OverridableField::Command));

    let (jt, dropped) = dropped_paths::<JobTemplate>(JOBTEMPLATE_DEPLOY_SHAPE);
    assert_eq!(dropped, Vec::<String>::new());
    assert_eq!(
        jt.spec.effective_job_spec().backoff_limit,
        Some(4),
        "jobTemplate wins"
    );
    assert!(jt.spec.allows(OverridableField::Args));
    assert!(!jt.spec.allows(OverridableField::Command));
}

#[test]
fn jobrun_seed_round_trips() {
    let (jr, dropped) = dropped_paths::<JobRun>(JOBRUN_SEED);
    assert_eq!(dropped, Vec::<String>::new());
    assert_eq!(jr.spec.template_ref, "echo-template");
    assert_eq!(jr.spec.args, Some(vec!["Hello, world!".to_string()]));
}

// ---------------------------------------------------------------- schema content

fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

fn at<'a>(schema: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = schema;
    for step in path {
        node = if *step == "[]" {
            &node["items"]
        } else {
            &node["properties"][*step]
        };
        assert!(!node.is_null(), "no schema at {path:?} (stopped at {step})");
    }
    node
}

fn rules(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["rule"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_keyed_by_name(node: &Value) {
    assert_eq!(node["x-kubernetes-list-type"], "map", "{node}");
    assert_eq!(
        node["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
}

#[test]
fn managedjob_schema_validations() {
    let schema = schema_of::<ManagedJob>();
    let retries = at(&schema, &["spec", "retries"]);
    assert_eq!(retries["minimum"].as_f64(), Some(0.0));
    assert_eq!(retries["maximum"].as_f64(), Some(100.0));
    assert_eq!(retries["default"], 1);
    let groups = at(&schema, &["spec", "groups"]);
    assert_keyed_by_name(groups);
    assert!(groups["maxItems"].is_number());
    let group_rules = rules(groups);
    assert!(group_rules.iter().any(|r| r.contains("d.name != g.name")));
    assert!(
        group_rules
            .iter()
            .any(|r| r.contains("self.exists(o, o.name == d.name)"))
    );
    let jobs = at(&schema, &["spec", "groups", "[]", "jobs"]);
    assert_keyed_by_name(jobs);
    assert!(rules(jobs).iter().any(|r| r.contains("d.name != j.name")));
    let name = at(&schema, &["spec", "groups", "[]", "jobs", "[]", "name"]);
    assert_eq!(name["maxLength"], 63);
    assert_eq!(name["pattern"], "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
    assert_eq!(
        at(
            &schema,
            &["spec", "groups", "[]", "dependencies", "[]", "status"]
        )["enum"],
        serde_json::json!(["succeeded", "failed", "completed"])
    );
    assert_eq!(
        at(&schema, &["spec", "failurePolicy"])["enum"],
        serde_json::json!(["ContinueIndependent", "FailFast"])
    );
    assert_keyed_by_name(at(&schema, &["spec", "params", "env"]));
    let volumes = at(&schema, &["spec", "params", "volumes"]);
    assert_keyed_by_name(volumes);
    assert_eq!(
        volumes["items"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(
        at(&schema, &["status", "conditions"])["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    assert_eq!(
        at(&schema, &["status", "jobs", "[]", "phase"])["enum"],
        serde_json::json!([
            "Pending",
            "Running",
            "Succeeded",
            "Failed",
            "Aborted",
            "NodeLost",
            "Skipped"
        ])
    );
    assert!(at(&schema, &["status", "groups", "[]", "counts", "succeeded"]).is_object());
}

#[test]
fn jobflow_schema_validations() {
    let schema = schema_of::<JobFlow>();
    let flows = at(&schema, &["spec", "flows"]);
    assert_keyed_by_name(flows);
    let flow_rules = rules(flows);
    assert!(flow_rules.iter().any(|r| r.contains("d != f.name")));
    // At 10,000 flows the sibling rule would cost flows x dependencies x flows: the manager checks
    // it (InvalidSpec), the schema must not carry it (the API server would refuse the CRD).
    assert!(
        !flow_rules
            .iter()
            .any(|r| r.contains("self.exists(o, o.name == d)"))
    );
    assert_eq!(flows["maxItems"], 10_000);
    let template = at(&schema, &["spec", "flows", "[]", "jobTemplate"]);
    assert_eq!(template["x-kubernetes-preserve-unknown-fields"], true);
    assert!(
        rules(&flows["items"])
            .iter()
            .any(|r| r.contains("has(self.jobTemplateRef)"))
    );
    assert_eq!(
        at(&schema, &["spec", "failurePolicy"])["default"],
        "FailFast"
    );
}

#[test]
fn daemonjob_and_jobtemplate_embed_jobspecs_as_preserved_objects() {
    for schema in [schema_of::<DaemonJob>(), schema_of::<JobTemplate>()] {
        let template = at(&schema, &["spec", "template"]);
        assert_eq!(template["type"], "object");
        assert_eq!(template["x-kubernetes-preserve-unknown-fields"], true);
        assert!(
            template.get("properties").is_none(),
            "no pod schema inlined"
        );
        assert_eq!(at(&schema, &["spec", "backoffLimit"])["type"], "integer");
    }
    let dj = schema_of::<DaemonJob>();
    assert_eq!(at(&dj, &["spec", "excludeNodeList"])["type"], "string");
    assert_eq!(at(&dj, &["spec", "excludeNodes"])["type"], "array");
    assert!(
        rules(&dj["properties"]["spec"])
            .iter()
            .any(|r| r.contains("has(self.templateRef)"))
    );
    let jt = schema_of::<JobTemplate>();
    assert_eq!(
        at(&jt, &["spec", "jobTemplate"])["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(
        at(&jt, &["spec", "overridable"])["default"],
        serde_json::json!(["command", "args", "env"])
    );
}

#[test]
fn jobrun_requires_template_ref_and_has_its_columns() {
    let schema = schema_of::<JobRun>();
    assert_eq!(
        schema["properties"]["spec"]["required"],
        serde_json::json!(["templateRef"])
    );
    let crd = JobRun::crd();
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        columns,
        [
            "TEMPLATE",
            "STATUS",
            "START",
            "COMPLETION",
            "AGE",
            "MESSAGE"
        ]
    );
}

#[test]
fn crd_names_columns_and_size() {
    for (crd, short) in [
        (ManagedJob::crd(), "mj"),
        (JobFlow::crd(), "jf"),
        (DaemonJob::crd(), "dj"),
        (JobTemplate::crd(), "jt"),
        (JobRun::crd(), "jr"),
    ] {
        let kind = crd.spec.names.kind.clone();
        assert_eq!(crd.spec.group, "jobsmith.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["jobsmith".to_string()])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns = version
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert!(
            names.contains(&"STATUS") && names.contains(&"AGE"),
            "{kind}: {names:?}"
        );
        let message = columns
            .iter()
            .find(|c| c.name == "MESSAGE")
            .expect("MESSAGE column");
        assert_eq!(message.priority, Some(1));
        if kind != "JobTemplate" {
            assert!(
                names.contains(&"PROGRESS") || kind == "JobRun",
                "{kind}: {names:?}"
            );
        }
        // kubectl's client-side apply stores the object as JSON in an annotation (all
        // annotations together at most 256 KiB). The ManagedJob CRD repeats the job schema for
        // the workflow, group, job and onExit levels (params, retryPolicy, outputs, queue) and
        // is the largest, ~112 KiB as JSON since those fields; 160 KiB keeps room below the
        // limit (e2e smoke proves a plain `kubectl apply` of every CRD).
        let json = serde_json::to_string(&crd).expect("json");
        assert!(
            json.len() < 160 * 1024,
            "{kind} CRD is {} bytes",
            json.len()
        );
    }
}

/// Structural-schema rules of apiextensions: every node has a type unless it preserves unknown
/// fields or is int-or-string; list-map keys are required in the items; no `$ref`/`anyOf` with
/// types; CEL-bearing lists have `maxItems`.
fn check_structural(path: &str, node: &Value, problems: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    let untyped_ok = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !object.contains_key("type") && !untyped_ok {
        problems.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$defs", "oneOf", "anyOf", "allOf"] {
        if object.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    if object.get("x-kubernetes-list-type") == Some(&Value::String("map".into())) {
        let required = node["items"]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for key in node["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !required.contains(key) {
                problems.push(format!("{path}: list-map key {key} not required"));
            }
        }
    }
    if object.contains_key("x-kubernetes-validations")
        && object.get("type") == Some(&Value::String("array".into()))
        && !object.contains_key("maxItems")
    {
        problems.push(format!("{path}: CEL on an unbounded list"));
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_structural(&format!("{path}.{name}"), child, problems);
        }
    }
    if let Some(items) = object.get("items") {
        check_structural(&format!("{path}[]"), items, problems);
    }
    if let Some(additional) = object.get("additionalProperties").filter(|a| a.is_object()) {
        check_structural(&format!("{path}{{}}"), additional, problems);
    }
}

#[test]
fn schemas_are_structural() {
    for (kind, schema) in [
        ("ManagedJob", schema_of::<ManagedJob>()),
        ("JobFlow", schema_of::<JobFlow>()),
        ("DaemonJob", schema_of::<DaemonJob>()),
        ("JobTemplate", schema_of::<JobTemplate>()),
        ("JobRun", schema_of::<JobRun>()),
    ] {
        let mut problems = Vec::new();
        check_structural(kind, &schema, &mut problems);
        assert_eq!(problems, Vec::<String>::new());
    }
}

// ---------------------------------------------------------------- CEL rules, evaluated locally

#[test]
fn cel_accepts_seeds_and_rejects_bad_dependencies() {
    let (mj, _) = dropped_paths::<ManagedJob>(MANAGEDJOB_PARAMS_SEED);
    assert!(
        kube::core::cel::validate_cel(&mj).is_ok(),
        "{:?}",
        kube::core::cel::validate_cel(&mj)
    );

    let mut self_dep = mj.clone();
    self_dep.spec.groups[1].dependencies = vec![jobsmith_api::Dependency {
        name: "other".into(),
        status: RequiredStatus::Succeeded,
    }];
    let error = kube::core::cel::validate_cel(&self_dep).expect_err("self dependency rejected");
    assert!(
        format!("{error:?}").contains("cannot depend on itself"),
        "{error:?}"
    );

    let mut unknown = mj.clone();
    unknown.spec.groups[0].dependencies[0].name = "nope".into();
    let error = kube::core::cel::validate_cel(&unknown).expect_err("unknown dependency rejected");
    assert!(
        format!("{error:?}").contains("must name a group"),
        "{error:?}"
    );

    let mut job_self = mj.clone();
    job_self.spec.groups[1].jobs[0].dependencies = vec![jobsmith_api::Dependency {
        name: "x".into(),
        status: RequiredStatus::Failed,
    }];
    assert!(
        kube::core::cel::validate_cel(&job_self).is_err(),
        "job self dependency rejected"
    );

    let mut no_image = mj;
    no_image.spec.groups[1].jobs[0].image = None;
    assert!(
        kube::core::cel::validate_cel(&no_image).is_err(),
        "image or templateRef required"
    );

    let (jf, _) = dropped_paths::<JobFlow>(JOBFLOW_SEED);
    assert!(
        kube::core::cel::validate_cel(&jf).is_ok(),
        "{:?}",
        kube::core::cel::validate_cel(&jf)
    );
    let mut unknown = jf.clone();
    unknown.spec.flows[1].dependencies.push("missing".into());
    assert!(
        kube::core::cel::validate_cel(&unknown).is_ok(),
        "an unknown flow is the manager's check (InvalidSpec), not the schema's"
    );
    let mut own = jf.clone();
    own.spec.flows[1].dependencies = vec!["job2".into()];
    assert!(
        kube::core::cel::validate_cel(&own).is_err(),
        "self flow rejected"
    );
    let mut both = jf;
    both.spec.flows[2].job_template = both.spec.flows[0].job_template.clone();
    assert!(
        kube::core::cel::validate_cel(&both).is_err(),
        "template and ref both set"
    );
}

/// A decoded run object holds one of these per step: a large field held inline (a `JobSpec` is
/// over 2 KiB even when absent) multiplies by 10,000 in every decoded copy of a big run.
#[test]
fn a_step_of_a_big_run_stays_small_when_decoded() {
    assert!(std::mem::size_of::<jobsmith_api::jobflow::Flow>() <= 512);
    assert!(std::mem::size_of::<jobsmith_api::managedjob::GroupJob>() <= 1024);
}
