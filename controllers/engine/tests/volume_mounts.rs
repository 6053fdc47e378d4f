//! Volume mounts in params merging (SPEC §2) and JobFlow shared volumes (SPEC §3): mounts are
//! told apart by (volume name, `mountPath`), so one volume mounted at several paths (for
//! example with different `subPath`s) keeps every mount; at one path the most specific mount
//! wins, and a container never gets two mounts at one path.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use jobsmith_api::{JobFlow, ManagedJob, Params};
use jobsmith_engine::build::params::{apply_params, merge_levels};
use jobsmith_engine::compile::{jobflow, managedjob};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, VolumeMount};
use proptest::prelude::*;

const UID: &str = "0b6c1d2e-0000-4000-8000-000000000001";

fn mj(spec: &str) -> ManagedJob {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata:\n  name: wf\n  namespace: ns\n  uid: {UID}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("ManagedJob parses")
}

fn jf(spec: &str) -> JobFlow {
    let yaml = format!(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: JobFlow\nmetadata:\n  name: flow\n  namespace: ns\n  uid: {UID}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).expect("JobFlow parses")
}

fn params(yaml: &str) -> Params {
    serde_yaml::from_str(yaml).expect("params parse")
}

/// (name, mountPath, subPath) of each mount, in order.
fn triples(mounts: &[VolumeMount]) -> Vec<(&str, &str, Option<&str>)> {
    mounts
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.mount_path.as_str(),
                m.sub_path.as_deref(),
            )
        })
        .collect()
}

fn containers(job: &Job) -> &[Container] {
    &job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
}

fn build_mj(obj: &ManagedJob, key: &str) -> Job {
    let plan = managedjob::plan(obj).unwrap();
    let id = plan.step_id(key).unwrap();
    managedjob::build_job(obj, &plan, id, None).unwrap()
}

#[test]
fn two_subpath_mounts_of_one_volume_both_reach_the_job() {
    let obj = mj("  params:
    volumes: [{name: data, emptyDir: {}}]
    volumeMounts:
      - {name: data, mountPath: /in, subPath: input}
      - {name: data, mountPath: /out, subPath: output}
  groups:
    - name: g
      jobs:
        - {name: j, image: busybox}
");
    let job = build_mj(&obj, "g/j");
    let mounts = containers(&job)[0].volume_mounts.as_deref().unwrap();
    assert_eq!(
        triples(mounts),
        [
            ("data", "/in", Some("input")),
            ("data", "/out", Some("output"))
        ]
    );
    // The compiled params (kubectl plugin) show both as well.
    let compiled = managedjob::job_params(&obj, "g/j").unwrap();
    assert_eq!(compiled.volume_mount.unwrap().len(), 2);
}

#[test]
fn a_job_mount_replaces_the_group_mount_with_the_same_name_and_path() {
    let obj = mj("  params:
    volumes: [{name: data, emptyDir: {}}]
  groups:
    - name: g
      params:
        volumeMount:
          - {name: data, mountPath: /d, readOnly: true}
          - {name: data, mountPath: /g, subPath: group}
      jobs:
        - name: j
          image: busybox
          params:
            volumeMount: [{name: data, mountPath: /d, subPath: job}]
");
    let job = build_mj(&obj, "g/j");
    let mounts = containers(&job)[0].volume_mounts.as_deref().unwrap();
    assert_eq!(
        triples(mounts),
        [("data", "/d", Some("job")), ("data", "/g", Some("group"))]
    );
    assert_eq!(
        mounts[0].read_only, None,
        "the job's mount, not the group's"
    );
}

#[test]
fn a_more_specific_mount_takes_its_path_from_a_less_specific_one() {
    let wf = params("volumeMount: [{name: a, mountPath: /d}, {name: a, mountPath: /wf}]");
    let group = params("volumeMount: [{name: b, mountPath: /d}]");
    let merged = merge_levels(Some(&wf), Some(&group), None);
    assert_eq!(
        triples(merged.volume_mount.as_deref().unwrap()),
        [("b", "/d", None), ("a", "/wf", None)]
    );
}

#[test]
fn params_mounts_join_the_containers_own_by_name_and_path() {
    let mut pod = PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                volume_mounts: Some(vec![
                    VolumeMount {
                        name: "data".into(),
                        mount_path: "/tpl".into(),
                        ..VolumeMount::default()
                    },
                    VolumeMount {
                        name: "other".into(),
                        mount_path: "/p".into(),
                        ..VolumeMount::default()
                    },
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    };
    let merged = merge_levels(
        None,
        None,
        Some(&params(
            "volumeMount: [{name: data, mountPath: /p2, subPath: x}, {name: data, mountPath: /p}]",
        )),
    );
    apply_params(&mut pod, &merged);
    let c = &pod.spec.as_ref().unwrap().containers[0];
    // The params' mounts first; the container's own mount of `data` at another path stays;
    // its mount at /p gives way to the params' one.
    assert_eq!(
        triples(c.volume_mounts.as_deref().unwrap()),
        [
            ("data", "/p2", Some("x")),
            ("data", "/p", None),
            ("data", "/tpl", None)
        ]
    );
}

#[test]
fn shared_mounts_of_one_volume_at_two_paths_reach_every_container() {
    let obj = jf("  shareVolumes: [{name: ws, emptyDir: {}}]
  flows:
    - name: a
      shareVolumeMounts:
        - {name: ws, mountPath: /in, subPath: in}
        - {name: ws, mountPath: /out, subPath: out}
      jobTemplate:
        template:
          spec:
            containers:
              - {name: one, image: busybox}
              - name: two
                image: busybox
                volumeMounts: [{name: own, mountPath: /out}]
            volumes: [{name: own, emptyDir: {}}]
");
    let plan = jobflow::plan(&obj).unwrap();
    let job = jobflow::build_job(&obj, &plan, plan.step_id("a").unwrap(), None).unwrap();
    let cs = containers(&job);
    assert_eq!(
        triples(cs[0].volume_mounts.as_deref().unwrap()),
        [("ws", "/in", Some("in")), ("ws", "/out", Some("out"))]
    );
    // A path the container already uses keeps the container's own mount.
    assert_eq!(
        triples(cs[1].volume_mounts.as_deref().unwrap()),
        [("own", "/out", None), ("ws", "/in", Some("in"))]
    );
}

/// One level's mounts: at most one per path (as Kubernetes requires in one container).
fn level() -> impl Strategy<Value = BTreeMap<u8, u8>> {
    proptest::collection::btree_map(0u8..5, 0u8..3, 0..4)
}

fn level_params(mounts: &BTreeMap<u8, u8>) -> Params {
    Params {
        volume_mount: Some(
            mounts
                .iter()
                .map(|(path, name)| VolumeMount {
                    name: format!("v{name}"),
                    mount_path: format!("/p{path}"),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        ..Params::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Merged mounts: the job's, then the group's, then the workflow's, each kept unless a more
    /// specific level already mounts something at its path; so every (name, path) of the most
    /// specific level holding that path survives and no path appears twice.
    #[test]
    fn merged_mounts_keep_each_path_once_from_the_most_specific_level(
        wf in level(), group in level(), job in level(),
    ) {
        let merged = merge_levels(
            Some(&level_params(&wf)),
            Some(&level_params(&group)),
            Some(&level_params(&job)),
        );
        let got: Vec<(String, String)> = merged
            .volume_mount
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect();
        let mut expected = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        for lvl in [&job, &group, &wf] {
            for (path, name) in lvl {
                if taken.insert(*path) {
                    expected.push((format!("v{name}"), format!("/p{path}")));
                }
            }
        }
        prop_assert_eq!(got, expected);
    }
}
