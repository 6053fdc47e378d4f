//! Params rules (SPEC §2 merge, §3/§4 globalParams, §6 JobRun overrides, §1 GitOps metadata),
//! one test per rule, and the seed README's `compiledParams` example, reproduced exactly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use jobsmith_api::jobtemplate::OverridableField;
use jobsmith_api::{
    GlobalParams, ImagePullPolicyParam, JobRestartPolicy, JobRunSpec, ManagedJob, Params,
};
use jobsmith_engine::build::params::{
    ParamsError, apply_global_params, apply_overrides, apply_params, compiled_params, merge,
    merge_levels, strip_gitops, validate_params, with_defaults,
};
use jobsmith_engine::compile::managedjob;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};

/// The seed README's ManagedJob (jobs-manager-operator), with our apiVersion: the sample that
/// `make demo` runs.
const SEED: &str = include_str!("../../../samples/managedjob/readme-workflow.yaml");

/// The seed README's `compiledParams` of `first-job`, verbatim.
const SEED_COMPILED: &str = "env:
- name: POO
  value: paz
- name: FEE
  value: bee
- name: FOO
  value: bar
- name: QUE
  value: pasa
";

fn seed() -> ManagedJob {
    let mut seed: ManagedJob = serde_yaml::from_str(SEED).expect("seed parses");
    seed.metadata.namespace = Some("default".into());
    seed.metadata.uid = Some("0b6c1d2e-0000-4000-8000-000000000001".into());
    seed
}

fn params(yaml: &str) -> Params {
    serde_yaml::from_str(yaml).expect("params parse")
}

fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(n, v)| EnvVar {
            name: (*n).to_owned(),
            value: Some((*v).to_owned()),
            value_from: None,
        })
        .collect()
}

fn names(env: &[EnvVar]) -> Vec<&str> {
    env.iter().map(|e| e.name.as_str()).collect()
}

fn pod(containers: &[&str]) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|n| Container {
                    name: (*n).to_owned(),
                    image: Some("busybox".into()),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
    }
}

fn containers(pod: &PodTemplateSpec) -> &[Container] {
    &pod.spec.as_ref().unwrap().containers
}

#[test]
fn seed_readme_compiled_params_are_reproduced_exactly() {
    let mj = seed();
    let merged = {
        let group = &mj.spec.groups[0];
        let job = &group.jobs[0];
        merge_levels(
            mj.spec.params.as_ref(),
            group.params.as_ref(),
            job.params.as_ref(),
        )
    };
    assert_eq!(serde_yaml::to_string(&merged).unwrap(), SEED_COMPILED);
    // With the defaults (applied after merging) the env is unchanged.
    let compiled = managedjob::job_params(&mj, "first-group/first-job").unwrap();
    assert_eq!(
        compiled.env.as_deref().unwrap(),
        env(&[
            ("POO", "paz"),
            ("FEE", "bee"),
            ("FOO", "bar"),
            ("QUE", "pasa")
        ])
    );
    assert_eq!(compiled.restart_policy, Some(JobRestartPolicy::OnFailure));
    // And so is the Job's container env, in that order.
    let plan = managedjob::plan(&mj).unwrap();
    let id = plan.step_id("first-group/first-job").unwrap();
    let job = managedjob::build_job(&mj, &plan, id, None).unwrap();
    let c = &job.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(names(c.env.as_ref().unwrap()), ["POO", "FEE", "FOO", "QUE"]);
}

#[test]
fn env_merges_by_name_most_specific_wins_in_its_own_position() {
    let wf = params("env: [{name: A, value: wf}, {name: B, value: wf}]");
    let group = params("env: [{name: B, value: group}, {name: C, value: group}]");
    let job = params("env: [{name: C, value: job}, {name: D, value: job}]");
    let merged = merge_levels(Some(&wf), Some(&group), Some(&job));
    assert_eq!(
        merged.env.unwrap(),
        env(&[("C", "job"), ("D", "job"), ("B", "group"), ("A", "wf")])
    );
}

#[test]
fn volumes_merge_by_name_mounts_by_name_and_path_and_volume_mounts_is_an_alias() {
    let wf = params(
        "volumes: [{name: data, emptyDir: {}}, {name: cache, emptyDir: {}}]\nvolumeMount: [{name: data, mountPath: /wf}]",
    );
    let job = params(
        "volumes: [{name: data, configMap: {name: cm}}]\nvolumeMounts: [{name: data, mountPath: /job}, {name: cache, mountPath: /cache}]",
    );
    let merged = merge(&job, &wf);
    let vols = merged.volumes.unwrap();
    assert_eq!(vols.len(), 2);
    assert_eq!(vols[0].name, "data");
    assert!(vols[0].config_map.is_some(), "job's volume wins");
    assert_eq!(vols[1].name, "cache");
    // `data` at /wf and at /job are two mounts: both kept, the job's first.
    let mounts: Vec<(&str, &str)> = merged
        .volume_mount
        .as_deref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("data", "/job"), ("cache", "/cache"), ("data", "/wf")]
    );
}

#[test]
fn from_env_merges_by_referenced_object_and_the_specific_source_comes_last() {
    let wf = params(
        "fromEnv: [{configMapRef: {name: shared}}, {secretRef: {name: shared}}, {configMapRef: {name: wf-only}}]",
    );
    let job = params("fromEnv: [{configMapRef: {name: shared}, prefix: JOB_}]");
    let merged = merge(&job, &wf).from_env.unwrap();
    assert_eq!(
        merged.len(),
        3,
        "a ConfigMap and a Secret of one name are distinct"
    );
    assert_eq!(
        merged[0].secret_ref.as_ref().map(|s| s.name.as_str()),
        Some("shared")
    );
    assert_eq!(
        merged[1].config_map_ref.as_ref().map(|s| s.name.as_str()),
        Some("wf-only")
    );
    let last = &merged[2];
    assert_eq!(
        last.config_map_ref.as_ref().map(|s| s.name.as_str()),
        Some("shared")
    );
    assert_eq!(
        last.prefix.as_deref(),
        Some("JOB_"),
        "the job's entry is kept"
    );
}

#[test]
fn labels_and_annotations_merge_key_by_key() {
    let wf = params("labels: {a: wf, b: wf}\nannotations: {x: wf}");
    let job = params("labels: {b: job, c: job}\nannotations: {y: job}");
    let merged = merge(&job, &wf);
    let labels = merged.labels.unwrap();
    assert_eq!(labels["a"], "wf");
    assert_eq!(labels["b"], "job");
    assert_eq!(labels["c"], "job");
    let ann = merged.annotations.unwrap();
    assert_eq!(ann.len(), 2);
}

#[test]
fn scalars_take_the_most_specific_set_value() {
    let wf = params(
        "serviceAccount: wf-sa\nrestartPolicy: Never\nimagePullPolicy: Always\nimagePullSecrets: [a]",
    );
    let group = params("serviceAccount: group-sa\nimagePullSecrets: [b, a]");
    let job = params("imagePullPolicy: [\"Never\"]");
    let merged = merge_levels(Some(&wf), Some(&group), Some(&job));
    assert_eq!(merged.service_account.as_deref(), Some("group-sa"));
    assert_eq!(merged.restart_policy, Some(JobRestartPolicy::Never));
    assert_eq!(
        merged.image_pull_policy,
        Some(ImagePullPolicyParam::List(vec!["Never".into()]))
    );
    assert_eq!(merged.image_pull_secrets.unwrap(), ["b", "a"]);
}

#[test]
fn resources_merge_per_resource_name_within_limits_and_requests() {
    let wf = params("resources: {limits: {cpu: '1', memory: 1Gi}, requests: {cpu: 100m}}");
    let job = params("resources: {limits: {memory: 2Gi}, requests: {memory: 1Gi}}");
    let r = merge(&job, &wf).resources.unwrap();
    let limits = r.limits.unwrap();
    assert_eq!(limits["cpu"].0, "1");
    assert_eq!(limits["memory"].0, "2Gi");
    let requests = r.requests.unwrap();
    assert_eq!(requests["cpu"].0, "100m");
    assert_eq!(requests["memory"].0, "1Gi");
}

#[test]
fn defaults_apply_only_after_merging() {
    // A workflow-level value is not hidden by a default on a more specific level.
    let wf = params("restartPolicy: Never\nimagePullPolicy: Always");
    let compiled = compiled_params(Some(&wf), None, Some(&Params::default()));
    assert_eq!(compiled.restart_policy, Some(JobRestartPolicy::Never));
    assert_eq!(
        compiled.image_pull_policy.as_ref().and_then(|p| p.policy()),
        Some("Always")
    );
    // Nothing set anywhere: the defaults.
    let none = with_defaults(Params::default());
    assert_eq!(none.restart_policy, Some(JobRestartPolicy::OnFailure));
    assert_eq!(
        none.image_pull_policy.as_ref().and_then(|p| p.policy()),
        Some("IfNotPresent")
    );
    // On a pod: defaults fill only what neither params nor the pod set.
    let mut p = pod(&["a", "b"]);
    p.spec.as_mut().unwrap().containers[1].image_pull_policy = Some("Never".into());
    apply_params(&mut p, &Params::default());
    assert_eq!(
        p.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("OnFailure")
    );
    assert_eq!(
        containers(&p)[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(
        containers(&p)[1].image_pull_policy.as_deref(),
        Some("Never")
    );
}

#[test]
fn image_pull_policy_accepts_a_string_or_a_list_of_one_and_rejects_the_rest() {
    let mut p = pod(&["a"]);
    apply_params(&mut p, &params("imagePullPolicy: [\"Always\"]"));
    assert_eq!(
        containers(&p)[0].image_pull_policy.as_deref(),
        Some("Always")
    );
    assert!(validate_params(&params("imagePullPolicy: Never"), "spec.params").is_ok());
    let err = validate_params(&params("imagePullPolicy: [Always, Never]"), "spec.params")
        .expect_err("two values");
    assert!(matches!(err, ParamsError::InvalidImagePullPolicy { .. }));
    assert!(
        err.to_string()
            .starts_with("spec.params: invalid imagePullPolicy")
    );
    assert!(validate_params(&params("imagePullPolicy: Sometimes"), "x").is_err());
}

#[test]
fn params_apply_to_every_container_and_the_pod() {
    let mut p = pod(&["a", "b"]);
    apply_params(
        &mut p,
        &params(
            "env: [{name: X, value: '1'}]\nserviceAccount: sa\nimagePullSecrets: [reg]\nlabels: {jobsmith.dev/e2e-outcome: fail}\nannotations: {jobsmith.dev/e2e-duration: '3000'}\nvolumes: [{name: v, emptyDir: {}}]\nvolumeMount: [{name: v, mountPath: /v}]",
        ),
    );
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("sa"));
    assert_eq!(spec.image_pull_secrets.as_ref().unwrap()[0].name, "reg");
    assert_eq!(spec.volumes.as_ref().unwrap()[0].name, "v");
    for c in &spec.containers {
        assert_eq!(names(c.env.as_ref().unwrap()), ["X"]);
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/v");
    }
    let meta = p.metadata.as_ref().unwrap();
    assert_eq!(
        meta.labels.as_ref().unwrap()["jobsmith.dev/e2e-outcome"],
        "fail"
    );
    assert_eq!(
        meta.annotations.as_ref().unwrap()["jobsmith.dev/e2e-duration"],
        "3000"
    );
}

#[test]
fn global_params_merge_and_the_flows_own_values_win() {
    let mut p = pod(&["a"]);
    p.spec.as_mut().unwrap().containers[0].env = Some(env(&[("FOO", "own")]));
    p.metadata = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        labels: Some(BTreeMap::from([("k".to_owned(), "own".to_owned())])),
        ..Default::default()
    });
    let global: GlobalParams = serde_yaml::from_str(
        "env: [{name: FOO, value: g}, {name: QUE, value: g}]\nlabels: {k: g, k2: g}\nannotations: {a: g}\nnodeName: node-1",
    )
    .unwrap();
    let mut pinned = p.clone();
    apply_global_params(&mut pinned, &global, true);
    let c = &containers(&pinned)[0];
    assert_eq!(
        c.env.as_ref().unwrap(),
        &env(&[("FOO", "own"), ("QUE", "g")])
    );
    let meta = pinned.metadata.as_ref().unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["k"], "own");
    assert_eq!(meta.labels.as_ref().unwrap()["k2"], "g");
    assert_eq!(meta.annotations.as_ref().unwrap()["a"], "g");
    assert_eq!(
        pinned.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    // DaemonJob ignores nodeName.
    apply_global_params(&mut p, &global, false);
    assert_eq!(p.spec.as_ref().unwrap().node_name, None);
}

fn run(yaml: &str) -> JobRunSpec {
    serde_yaml::from_str(yaml).unwrap()
}

const ALL: &[OverridableField] = &[
    OverridableField::Command,
    OverridableField::Args,
    OverridableField::Env,
];

#[test]
fn jobrun_overrides_replace_command_and_args_of_the_first_container() {
    let mut p = pod(&["first", "second"]);
    p.spec.as_mut().unwrap().containers[0].args = Some(vec!["old".into()]);
    apply_overrides(
        &mut p,
        &run("templateRef: t\ncommand: [echo]\nargs: [hi]"),
        ALL,
    )
    .unwrap();
    assert_eq!(containers(&p)[0].command.as_deref().unwrap(), ["echo"]);
    assert_eq!(containers(&p)[0].args.as_deref().unwrap(), ["hi"]);
    assert_eq!(containers(&p)[1].args, None);
}

#[test]
fn jobrun_overrides_the_named_container_and_merges_env_by_name() {
    let mut p = pod(&["first", "second"]);
    p.spec.as_mut().unwrap().containers[1].env = Some(env(&[("A", "t"), ("B", "t")]));
    apply_overrides(
        &mut p,
        &run("templateRef: t\ncontainer: second\nargs: [x]\nenv: [{name: B, value: run}, {name: C, value: run}]"),
        ALL,
    )
    .unwrap();
    let second = &containers(&p)[1];
    assert_eq!(second.args.as_deref().unwrap(), ["x"]);
    assert_eq!(
        second.env.as_ref().unwrap(),
        &env(&[("A", "t"), ("B", "run"), ("C", "run")])
    );
    assert_eq!(containers(&p)[0].args, None);
    let err = apply_overrides(
        &mut p,
        &run("templateRef: t\ncontainer: nope\nargs: [x]"),
        ALL,
    )
    .expect_err("unknown container");
    assert_eq!(err, ParamsError::UnknownContainer("nope".into()));
}

#[test]
fn jobrun_empty_lists_mean_no_override() {
    let mut p = pod(&["a"]);
    p.spec.as_mut().unwrap().containers[0].args = Some(vec!["keep".into()]);
    // Not allowed at all, but empty lists are no override, so no error either.
    apply_overrides(
        &mut p,
        &run("templateRef: t\ncommand: []\nargs: []\nenv: []"),
        &[],
    )
    .unwrap();
    assert_eq!(containers(&p)[0].args.as_deref().unwrap(), ["keep"]);
    assert_eq!(containers(&p)[0].command, None);
}

#[test]
fn jobrun_overrides_outside_the_allow_list_are_refused() {
    let mut p = pod(&["a"]);
    let err = apply_overrides(
        &mut p,
        &run("templateRef: t\ncommand: [sh]"),
        &[OverridableField::Args],
    )
    .expect_err("command not allowed");
    assert_eq!(
        err,
        ParamsError::OverrideNotAllowed {
            field: "command".into()
        }
    );
    let err = apply_overrides(&mut p, &run("templateRef: t\nenv: [{name: A}]"), &[])
        .expect_err("empty allow-list allows nothing");
    assert_eq!(
        err,
        ParamsError::OverrideNotAllowed {
            field: "env".into()
        }
    );
    assert_eq!(
        containers(&p)[0].command,
        None,
        "nothing applied on refusal"
    );
}

#[test]
fn gitops_tracking_metadata_is_stripped() {
    let map: BTreeMap<String, String> = [
        "app.kubernetes.io/instance",
        "argocd.argoproj.io/tracking-id",
        "kustomize.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/name",
        "meta.helm.sh/release-name",
        "kubectl.kubernetes.io/last-applied-configuration",
        "team",
        "app.kubernetes.io/name",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), "v".to_owned()))
    .collect();
    let kept = strip_gitops(Some(&map));
    assert_eq!(
        kept.keys().map(String::as_str).collect::<Vec<_>>(),
        ["app.kubernetes.io/name", "team"]
    );
    assert!(strip_gitops(None).is_empty());
}
