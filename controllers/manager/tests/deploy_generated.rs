//! The install files that are derived from one source each, and the checks that keep the chart
//! in step with the binary:
//!
//! * `charts/jobsmith/templates/crds/*.yaml` from `crds/` (wrapped in `crds.install`, with
//!   `helm.sh/resource-policy: keep` under `crds.keep`);
//! * `charts/jobsmith/templates/_rbac-rules.tpl` from `deploy/rbac.yaml` (the rules, split into
//!   cluster-scoped and namespaced ones, and the leader-election rules);
//! * `charts/jobsmith/Chart.yaml` with `version`/`appVersion` from the workspace version;
//! * `deploy/kustomize/base/` copies of `crds/` and `deploy/rbac.yaml`, and its
//!   `kustomization.yaml` (the image tag is the workspace version).
//!
//! `make generate` (JOBSMITH_UPDATE_GENERATED=1) rewrites them instead of comparing.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test may panic

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde::Deserialize as _;
use serde_yaml::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The CRD files of `crds/`, `(file name, content)`, sorted by name.
fn crd_files() -> Vec<(String, String)> {
    let dir = repo_root().join("crds");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("crds/ is readable")
        .map(|entry| entry.expect("a crds/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "five CRDs in crds/");
    files
}

/// What the chart adds to a CRD's metadata, after its name.
const CRD_METADATA: &str = "  labels:\n    {{- include \"jobsmith.labels\" . | nindent 4 }}\n\
\x20 {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n\
\x20 {{- end }}\n";

/// A CRD of `crds/` as a chart template: behind `crds.install`, with the chart's labels and the
/// keep annotation. The input's leading comment is replaced; `{{` is escaped for Go templates.
fn chart_crd(file: &str, content: &str) -> String {
    let body: Vec<&str> = content
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .collect();
    let metadata = body
        .iter()
        .position(|line| *line == "metadata:")
        .unwrap_or_else(|| panic!("crds/{file}: no top-level `metadata:` line"));
    assert!(
        body.get(metadata + 1)
            .is_some_and(|line| line.starts_with("  name: ")),
        "crds/{file}: `metadata:` is not followed by `  name:`"
    );
    assert!(
        !body
            .iter()
            .any(|line| *line == "  labels:" || *line == "  annotations:"),
        "crds/{file}: the CRD already has labels or annotations; teach chart_crd to merge them"
    );
    let mut out = format!(
        "{{{{- /* Generated from crds/{file} by `make generate`. Do not edit. */ -}}}}\n\
         {{{{- if .Values.crds.install }}}}\n"
    );
    for (i, line) in body.iter().enumerate() {
        out.push_str(&line.replace("{{", "{{ \"{{\" }}"));
        out.push('\n');
        if i == metadata + 1 {
            out.push_str(CRD_METADATA);
        }
    }
    out.push_str("{{- end }}\n");
    out
}

/// Whether a resource (without its subresource) is cluster-scoped. Unknown resources fail the
/// generation: the chart must know which Role a new rule belongs to.
fn cluster_scoped(group: &str, resource: &str) -> bool {
    let resource = resource.split('/').next().unwrap_or(resource);
    match (group, resource) {
        ("", "nodes" | "namespaces" | "persistentvolumes")
        | ("apiextensions.k8s.io", "customresourcedefinitions")
        | ("storage.k8s.io", "storageclasses")
        | ("scheduling.k8s.io", "priorityclasses") => true,
        (
            "jobsmith.dev",
            "managedjobs" | "jobflows" | "daemonjobs" | "jobtemplates" | "jobruns",
        )
        | ("batch", "jobs" | "cronjobs")
        | ("", "pods" | "events" | "configmaps" | "secrets" | "serviceaccounts")
        | ("events.k8s.io", "events")
        | ("coordination.k8s.io", "leases") => false,
        _ => panic!(
            "deploy/rbac.yaml: resource {resource} of group {group:?} has no known scope; \
             add it to cluster_scoped() in {}",
            file!()
        ),
    }
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("deploy/rbac.yaml: a rule without {key}: {rule:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// The objects of `deploy/rbac.yaml`.
fn rbac_objects() -> Vec<Value> {
    let text = read("deploy/rbac.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("deploy/rbac.yaml parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn rules_of(objects: &[Value], kind: &str) -> Vec<Value> {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "deploy/rbac.yaml: one {kind} expected");
    found[0]
        .get("rules")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_else(|| panic!("deploy/rbac.yaml: the {kind} has no rules"))
}

fn define(name: &str, rules: &[Value]) -> String {
    let yaml = serde_yaml::to_string(rules).expect("rules serialise");
    format!("{{{{- define \"{name}\" -}}}}\n{yaml}{{{{- end }}}}\n")
}

/// The rules of deploy/rbac.yaml as named templates for templates/rbac.yaml.
fn rbac_rules_template() -> String {
    let objects = rbac_objects();
    let (mut cluster, mut namespaced) = (Vec::new(), Vec::new());
    for rule in rules_of(&objects, "ClusterRole") {
        let groups = strings(&rule, "apiGroups");
        let scopes: BTreeSet<bool> = strings(&rule, "resources")
            .iter()
            .flat_map(|r| groups.iter().map(move |g| cluster_scoped(g, r)))
            .collect();
        assert_eq!(
            scopes.len(),
            1,
            "deploy/rbac.yaml: a rule mixes cluster-scoped and namespaced resources: {rule:?}"
        );
        if scopes.contains(&true) {
            cluster.push(rule);
        } else {
            namespaced.push(rule);
        }
    }
    let leader = rules_of(&objects, "Role");
    format!(
        "{{{{- /* Generated from deploy/rbac.yaml by `make generate`. Do not edit. */ -}}}}\n\n\
         {{{{- /* Rules of the ClusterRole on cluster-scoped resources. */}}}}\n{}\n\
         {{{{- /* Rules of the ClusterRole on namespaced resources (a Role per watched namespace when watchNamespaces is set). */}}}}\n{}\n\
         {{{{- /* Rules of the leader-election Role. */}}}}\n{}",
        define("jobsmith.rbac.clusterScopedRules", &cluster),
        define("jobsmith.rbac.namespacedRules", &namespaced),
        define("jobsmith.rbac.leaderElectionRules", &leader),
    )
}

fn chart_yaml() -> String {
    format!(
        "# Generated by `make generate`: version and appVersion are the workspace version of Cargo.toml.\n\
         # Do not edit.\n\
         apiVersion: v2\n\
         name: jobsmith\n\
         description: Jobsmith, a Kubernetes operator for multi-Job batch work (ManagedJob, JobFlow, DaemonJob, JobTemplate, JobRun)\n\
         type: application\n\
         version: {VERSION}\n\
         appVersion: \"{VERSION}\"\n\
         keywords:\n- batch\n- jobs\n- workflow\n- operator\n"
    )
}

fn kustomization_yaml(crds: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Generated by `make generate` (the CRDs and RBAC are copies of crds/ and deploy/rbac.yaml;\n\
         # the image tag is the workspace version). Do not edit; change the sources, or override\n\
         # in an overlay (see ../overlays/example).\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n",
    );
    for (name, _) in crds {
        out.push_str(&format!("  - crds/{name}\n"));
    }
    out.push_str(&format!(
        "  - rbac.yaml\n  - deployment.yaml\n\
         patches:\n  - path: namespace-restricted.yaml\n\
         images:\n  - name: jobsmith\n    newName: localhost/jobsmith\n    newTag: \"{VERSION}\"\n"
    ));
    out
}

/// Every derived file, `(path relative to the repository root, content)`.
fn rendered() -> Vec<(PathBuf, String)> {
    let crds = crd_files();
    let mut files = vec![
        (PathBuf::from("charts/jobsmith/Chart.yaml"), chart_yaml()),
        (
            PathBuf::from("charts/jobsmith/templates/_rbac-rules.tpl"),
            rbac_rules_template(),
        ),
        (
            PathBuf::from("deploy/kustomize/base/kustomization.yaml"),
            kustomization_yaml(&crds),
        ),
        (
            PathBuf::from("deploy/kustomize/base/rbac.yaml"),
            format!(
                "# Copied from deploy/rbac.yaml by `make generate`. Do not edit.\n{}",
                read("deploy/rbac.yaml")
            ),
        ),
    ];
    for (name, content) in &crds {
        files.push((
            Path::new("charts/jobsmith/templates/crds").join(name),
            chart_crd(name, content),
        ));
        files.push((
            Path::new("deploy/kustomize/base/crds").join(name),
            content.clone(),
        ));
    }
    files
}

#[test]
fn derived_install_files_are_up_to_date() {
    let update = std::env::var("JOBSMITH_UPDATE_GENERATED").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (relative, content) in rendered() {
        let path = repo_root().join(&relative);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == content => {}
            Ok(_) => stale.push(format!("{} differs", relative.display())),
            Err(error) => stale.push(format!("{} unreadable: {error}", relative.display())),
        }
    }
    // A CRD removed from crds/ must not linger in the chart or the kustomize base.
    for dir in [
        "charts/jobsmith/templates/crds",
        "deploy/kustomize/base/crds",
    ] {
        let expected: BTreeSet<String> = crd_files().into_iter().map(|(n, _)| n).collect();
        for entry in std::fs::read_dir(repo_root().join(dir))
            .into_iter()
            .flatten()
        {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !expected.contains(&name) {
                if update {
                    std::fs::remove_file(repo_root().join(dir).join(&name)).unwrap();
                } else {
                    stale.push(format!("{dir}/{name} has no source in crds/"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "install files derived from crds/, deploy/rbac.yaml or the workspace version are stale \
         ({}); run: make generate",
        stale.join(", ")
    );
}

#[test]
fn the_chart_crds_are_the_source_crds_plus_metadata() {
    // Without the added metadata and the `crds.install` guard, a chart CRD is its source without
    // the leading comment: nothing else was changed.
    for (name, content) in crd_files() {
        let template = chart_crd(&name, &content).replacen(CRD_METADATA, "", 1);
        let mut lines: Vec<&str> = template.lines().collect();
        assert_eq!(
            lines.remove(0),
            format!(
                "{{{{- /* Generated from crds/{name} by `make generate`. Do not edit. */ -}}}}"
            )
        );
        assert_eq!(lines.remove(0), "{{- if .Values.crds.install }}");
        assert_eq!(lines.pop(), Some("{{- end }}"));
        let source: Vec<&str> = content.lines().skip_while(|l| l.starts_with('#')).collect();
        assert_eq!(lines, source, "{name}");
    }
}

#[test]
fn the_rbac_rules_split_by_scope_and_cover_deploy_rbac() {
    let template = rbac_rules_template();
    let objects = rbac_objects();
    // Every rule of the ClusterRole and the Role appears once in the generated rules.
    let rendered_rules: Vec<Value> = template
        .split("{{- define ")
        .skip(1)
        .flat_map(|part| {
            let body = part.split_once("-}}\n").unwrap().1;
            let body = body.split("{{- end }}").next().unwrap();
            serde_yaml::from_str::<Vec<Value>>(body).unwrap()
        })
        .collect();
    let mut source = rules_of(&objects, "ClusterRole");
    source.extend(rules_of(&objects, "Role"));
    assert_eq!(rendered_rules.len(), source.len());
    for rule in &source {
        assert!(rendered_rules.contains(rule), "missing {rule:?}");
    }
    assert!(template.contains("customresourcedefinitions"));
    let cluster = template
        .split("jobsmith.rbac.namespacedRules")
        .next()
        .unwrap();
    assert!(cluster.contains("nodes") && !cluster.contains("managedjobs"));
}

/// Every flag of `jobsmith run` has a value in the chart: the Deployment template passes it. (The
/// end-to-end test e2e/tests/chart.rs renders the chart with helm and checks the arguments too.)
#[test]
fn every_manager_flag_is_passed_by_the_chart() {
    let command = jobsmith_manager::cli::Cli::command();
    let run = command
        .find_subcommand("run")
        .expect("the run subcommand")
        .clone();
    let deployment = read("charts/jobsmith/templates/deployment.yaml");
    let every_flag_values = read("charts/jobsmith/ci/every-flag-values.yaml");
    let mut missing = Vec::new();
    let mut flags = 0;
    for arg in run.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        flags += 1;
        if !deployment.contains(&format!("- --{long}")) {
            missing.push(format!(
                "--{long} (templates/deployment.yaml does not pass it)"
            ));
        }
        if !every_flag_values.contains(&format!("--{long}")) {
            missing.push(format!(
                "--{long} (ci/every-flag-values.yaml does not name it in a comment)"
            ));
        }
    }
    assert!(flags >= 13, "only {flags} flags found");
    assert!(
        missing.is_empty(),
        "manager flags without a chart value: {}; add a value to charts/jobsmith/values.yaml \
         (and values.schema.json), pass it in templates/deployment.yaml, and set it in \
         ci/every-flag-values.yaml",
        missing.join(", ")
    );
}
