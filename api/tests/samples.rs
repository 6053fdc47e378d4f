//! Every manifest under `samples/` (recursively, multi-document files split) parses into the type
//! its `apiVersion`/`kind` names without an unknown or dropped field, has no field the CRD schema
//! would prune, passes the CRD's CEL rules, and is self-consistent:
//! - every `samples/<kind>/` directory holds at least one file, with an object of that kind, and
//!   every kind has a sample;
//! - names are unique per kind (so `kubectl apply -R -f samples/` into one namespace works) and
//!   no sample pins a namespace;
//! - every `templateRef`/`jobTemplateRef` names a JobTemplate of the samples, and every
//!   ConfigMap/Secret a sample references is defined in the same file;
//! - a pod that should fail carries `jobsmith.dev/e2e-outcome: fail` (fake-node plane) and runs a
//!   command that exits 1 (real cluster), or the code of its `jobsmith.dev/e2e-exit-code`
//!   annotation, and no other pod does either;
//! - `docs/samples.md` lists every sample, and the YAML examples of `README.md` parse the same way.

// Tests may panic on broken fixtures; the workspace lint is for production code.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jobsmith_api::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PodTemplateSpec, Secret, ServiceAccount,
};
use kube::CustomResourceExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

mod common;
use common::dropped_in;

/// The label that makes a pod fail on the fake-node plane (`e2e/kwok/pod-fail.yaml`).
const OUTCOME_LABEL: &str = "jobsmith.dev/e2e-outcome";
/// The annotation that gives a failing fake pod its exit code (`e2e/kwok/pod-fail.yaml`).
const EXIT_CODE_ANNOTATION: &str = "jobsmith.dev/e2e-exit-code";

/// The sample directory of each kind.
const KIND_DIRS: [(&str, &str); 5] = [
    ("ManagedJob", "managedjob"),
    ("JobFlow", "jobflow"),
    ("DaemonJob", "daemonjob"),
    ("JobTemplate", "jobtemplate"),
    ("JobRun", "jobrun"),
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn samples_dir() -> PathBuf {
    repo_root().join("samples")
}

/// One parsed object of a sample file.
#[derive(Debug)]
enum Object {
    ManagedJob(Box<ManagedJob>),
    JobFlow(Box<JobFlow>),
    DaemonJob(Box<DaemonJob>),
    JobTemplate(Box<JobTemplate>),
    JobRun(Box<JobRun>),
    /// A core/v1 object (ConfigMap, Secret, ...): only its kind and name matter here.
    Core,
}

/// One document of a sample file.
#[derive(Debug)]
struct Document {
    file: String,
    index: usize,
    kind: String,
    name: String,
    raw: Value,
    object: Object,
}

impl Document {
    fn at(&self) -> String {
        format!("{}#{} ({} {})", self.file, self.index, self.kind, self.name)
    }
}

/// Parses `value` as `T`, reporting an error and every dropped path.
fn typed<T: DeserializeOwned + Serialize + PartialEq>(value: &Value) -> Result<T, String> {
    let (typed, dropped) = dropped_in::<T>(value).map_err(|e| format!("does not parse: {e}"))?;
    if dropped.is_empty() {
        Ok(typed)
    } else {
        Err(format!("unknown or dropped fields: {}", dropped.join(", ")))
    }
}

/// Parses a custom resource and evaluates its CRD's CEL rules locally.
fn custom<K>(value: &Value) -> Result<K, String>
where
    K: DeserializeOwned + Serialize + PartialEq + CustomResourceExt,
{
    let object: K = typed(value)?;
    let pruned = pruned_paths::<K>(value);
    if !pruned.is_empty() {
        return Err(format!(
            "fields the API server would prune (not in the CRD schema): {}",
            pruned.join(", ")
        ));
    }
    kube::core::cel::validate_cel(&object).map_err(|e| format!("CEL rules reject it: {e:?}"))?;
    Ok(object)
}

/// Paths of `value` that the CRD's structural schema does not declare: the API server drops them
/// on admission, so the controller would never see them even if the Rust type reads them.
fn pruned_paths<K: CustomResourceExt>(value: &Value) -> Vec<String> {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema serializes"))
        .expect("CRD has a schema");
    let mut pruned = Vec::new();
    let mut root = value.clone();
    if let Some(map) = root.as_object_mut() {
        // handled by the API server itself, not by the CRD schema
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    collect_pruned(&schema, &root, "", &mut pruned);
    pruned
}

fn collect_pruned(schema: &Value, value: &Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    collect_pruned(sub, child, &child_path, pruned);
                } else if let Some(additional) = additional {
                    collect_pruned(additional, child, &child_path, pruned);
                } else if !preserve {
                    pruned.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    collect_pruned(item_schema, item, &format!("{path}[{index}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn parse_object(api_version: &str, kind: &str, value: &Value) -> Result<Object, String> {
    Ok(match (api_version, kind) {
        ("jobsmith.dev/v1alpha1", "ManagedJob") => Object::ManagedJob(Box::new(custom(value)?)),
        ("jobsmith.dev/v1alpha1", "JobFlow") => Object::JobFlow(Box::new(custom(value)?)),
        ("jobsmith.dev/v1alpha1", "DaemonJob") => Object::DaemonJob(Box::new(custom(value)?)),
        ("jobsmith.dev/v1alpha1", "JobTemplate") => Object::JobTemplate(Box::new(custom(value)?)),
        ("jobsmith.dev/v1alpha1", "JobRun") => Object::JobRun(Box::new(custom(value)?)),
        ("v1", "ConfigMap") => core::<ConfigMap>(value)?,
        ("v1", "Secret") => core::<Secret>(value)?,
        ("v1", "ServiceAccount") => core::<ServiceAccount>(value)?,
        ("v1", "PersistentVolumeClaim") => core::<PersistentVolumeClaim>(value)?,
        _ => return Err(format!("unknown apiVersion/kind {api_version}/{kind}")),
    })
}

fn core<T: DeserializeOwned + Serialize + PartialEq>(value: &Value) -> Result<Object, String> {
    typed::<T>(value)?;
    Ok(Object::Core)
}

/// Splits a (multi-document) YAML text and parses every non-empty document.
fn parse_documents(file: &str, text: &str, problems: &mut Vec<String>) -> Vec<Document> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let raw = match Value::deserialize(document) {
            Ok(Value::Null) => continue,
            Ok(raw) => raw,
            Err(error) => {
                problems.push(format!("{file}#{index}: invalid YAML: {error}"));
                continue;
            }
        };
        let api_version = raw["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = raw["kind"].as_str().unwrap_or_default().to_owned();
        let name = raw["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let at = format!("{file}#{index} ({kind} {name})");
        if name.is_empty() {
            problems.push(format!("{at}: no metadata.name"));
        }
        if !raw["metadata"]["namespace"].is_null() {
            problems.push(format!(
                "{at}: sets metadata.namespace (samples are applied with -n)"
            ));
        }
        match parse_object(&api_version, &kind, &raw) {
            Ok(object) => documents.push(Document {
                file: file.to_owned(),
                index,
                kind,
                name,
                raw,
                object,
            }),
            Err(error) => problems.push(format!("{at}: {error}")),
        }
    }
    documents
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
    dirs.push(dir.to_path_buf());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files, dirs);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Every sample file (relative to the repository root) and its parsed documents.
fn load_samples(problems: &mut Vec<String>) -> Vec<(String, Vec<Document>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk(&samples_dir(), &mut files, &mut dirs);
    for dir in dirs.iter().skip(1) {
        let has_file = files
            .iter()
            .any(|file| file.parent() == Some(dir.as_path()));
        if !has_file {
            problems.push(format!("{}: no sample file", relative(dir)));
        }
    }
    files
        .iter()
        .map(|path| {
            let file = relative(path);
            let text = std::fs::read_to_string(path).expect("readable sample");
            let before = problems.len();
            let documents = parse_documents(&file, &text, problems);
            if documents.is_empty() && problems.len() == before {
                problems.push(format!("{file}: no object"));
            }
            (file, documents)
        })
        .collect()
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_sample_parses_without_unknown_or_dropped_fields() {
    let mut problems = Vec::new();
    let samples = load_samples(&mut problems);
    assert!(!samples.is_empty(), "samples/ holds no YAML file");
    assert_no_problems(&problems);
}

#[test]
fn every_kind_has_a_sample_directory_with_its_kind() {
    let mut problems = Vec::new();
    let samples = load_samples(&mut problems);
    for (kind, dir) in KIND_DIRS {
        let prefix = format!("samples/{dir}/");
        let in_dir: Vec<&(String, Vec<Document>)> = samples
            .iter()
            .filter(|(file, _)| file.starts_with(&prefix))
            .collect();
        if in_dir.is_empty() {
            problems.push(format!("{kind}: no sample in {prefix}"));
        }
        for (file, documents) in in_dir {
            if !documents.iter().any(|d| d.kind == kind) {
                problems.push(format!("{file}: holds no {kind}"));
            }
        }
    }
    for (file, _) in &samples {
        let known = KIND_DIRS
            .iter()
            .any(|(_, dir)| file.starts_with(&format!("samples/{dir}/")));
        if !known {
            problems.push(format!("{file}: not in a samples/<kind>/ directory"));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn names_are_unique_per_kind_and_references_resolve() {
    let mut problems = Vec::new();
    let samples = load_samples(&mut problems);
    let documents: Vec<&Document> = samples.iter().flat_map(|(_, docs)| docs).collect();

    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for document in &documents {
        let key = (document.kind.clone(), document.name.clone());
        if let Some(first) = seen.insert(key, document.at()) {
            problems.push(format!("{}: same kind and name as {first}", document.at()));
        }
    }

    let templates: BTreeSet<&str> = documents
        .iter()
        .filter(|d| d.kind == "JobTemplate")
        .map(|d| d.name.as_str())
        .collect();
    for document in &documents {
        for reference in template_refs(&document.object) {
            if !templates.contains(reference.as_str()) {
                problems.push(format!(
                    "{}: JobTemplate {reference:?} is not defined in samples/",
                    document.at()
                ));
            }
        }
    }

    for (file, docs) in &samples {
        let defined: BTreeSet<(&str, &str)> = docs
            .iter()
            .map(|d| (d.kind.as_str(), d.name.as_str()))
            .collect();
        for document in docs.iter().filter(|d| d.raw["apiVersion"] != "v1") {
            let mut references = Vec::new();
            core_refs(&document.raw, &mut references);
            for (kind, name) in references {
                if !defined.contains(&(kind, name.as_str())) {
                    problems.push(format!(
                        "{}: references {kind} {name:?}, not defined in {file}",
                        document.at()
                    ));
                }
            }
        }
    }
    assert_no_problems(&problems);
}

/// JobTemplates a parsed object refers to.
fn template_refs(object: &Object) -> Vec<String> {
    match object {
        Object::ManagedJob(mj) => mj
            .spec
            .groups
            .iter()
            .flat_map(|g| &g.jobs)
            .chain(&mj.spec.on_exit)
            .filter_map(|j| j.template_ref.clone())
            .collect(),
        Object::JobFlow(jf) => jf
            .spec
            .flows
            .iter()
            .chain(&jf.spec.on_exit)
            .filter_map(|f| f.job_template_ref.clone())
            .collect(),
        Object::DaemonJob(dj) => dj.spec.template_ref.iter().cloned().collect(),
        Object::JobRun(jr) => vec![jr.spec.template_ref.clone()],
        Object::JobTemplate(_) | Object::Core => Vec::new(),
    }
}

/// ConfigMaps and Secrets referenced anywhere in `value` (envFrom, valueFrom, volumes, image pull
/// secrets), except optional references.
fn core_refs(value: &Value, references: &mut Vec<(&'static str, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let optional = child["optional"] == Value::Bool(true);
                let name = |field: &str| child[field].as_str().map(str::to_owned);
                let found = match key.as_str() {
                    "configMapRef" | "configMapKeyRef" | "configMap" if !optional => {
                        name("name").map(|n| ("ConfigMap", n))
                    }
                    "secretRef" | "secretKeyRef" if !optional => {
                        name("name").map(|n| ("Secret", n))
                    }
                    "secret" if !optional => name("secretName").map(|n| ("Secret", n)),
                    _ => None,
                };
                references.extend(found);
                if key == "imagePullSecrets" {
                    for item in child.as_array().into_iter().flatten() {
                        let secret = item.as_str().or_else(|| item["name"].as_str());
                        references.extend(secret.map(|s| ("Secret", s.to_owned())));
                    }
                    continue;
                }
                core_refs(child, references);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| core_refs(item, references)),
        _ => {}
    }
}

// ---------------------------------------------------------------- expected failures

/// Whether a shell text runs `exit 1`.
fn exits_one(text: &str) -> bool {
    exits_with(text, "1")
}

/// Whether a shell text runs `exit <code>`.
fn exits_with(text: &str, code: &str) -> bool {
    let pattern = format!("exit {code}");
    text.match_indices(&pattern)
        .any(|(at, m)| !text[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

fn join(parts: &[&Option<Vec<String>>]) -> String {
    parts
        .iter()
        .filter_map(|part| part.as_ref())
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command text of every container of a pod template.
fn pod_commands(template: &PodTemplateSpec) -> String {
    template
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|c| join(&[&c.command, &c.args]))
        .collect::<Vec<_>>()
        .join(" ; ")
}

fn pod_label<'a>(template: &'a PodTemplateSpec, key: &str) -> Option<&'a String> {
    template.metadata.as_ref()?.labels.as_ref()?.get(key)
}

/// The values of the outcome label that make a pod fail on the fake-node plane: `fail` always
/// (`e2e/kwok/pod-fail.yaml`), `fail-first-attempt` only in a step's first attempt
/// (`e2e/kwok/pod-fail-first-attempt.yaml`; its command exits 1 only then).
const FAILING_OUTCOMES: [&str; 2] = ["fail", "fail-first-attempt"];

fn pod_annotation<'a>(template: &'a PodTemplateSpec, key: &str) -> Option<&'a String> {
    template.metadata.as_ref()?.annotations.as_ref()?.get(key)
}

/// Checks one pod: the outcome label names a failing outcome iff its command exits 1, or the
/// exit code of the annotation [`EXIT_CODE_ANNOTATION`] (which only a failing pod may carry).
fn check_outcome(
    at: &str,
    label: Option<&String>,
    exit_code: Option<&String>,
    commands: &str,
    problems: &mut Vec<String>,
) {
    let labelled = label.is_some_and(|v| FAILING_OUTCOMES.contains(&v.as_str()));
    if let Some(value) = label.filter(|v| !FAILING_OUTCOMES.contains(&v.as_str())) {
        problems.push(format!(
            "{at}: {OUTCOME_LABEL}: {value:?} (only {FAILING_OUTCOMES:?} exist)"
        ));
    }
    if let Some(code) = exit_code.filter(|_| labelled) {
        if !exits_with(commands, code) {
            problems.push(format!(
                "{at}: labelled {OUTCOME_LABEL}: fail with {EXIT_CODE_ANNOTATION}: {code} but its command does not exit {code} ({commands:?})"
            ));
        }
        return;
    }
    if exit_code.is_some() {
        problems.push(format!(
            "{at}: {EXIT_CODE_ANNOTATION} without the label {OUTCOME_LABEL}: fail"
        ));
    }
    match (labelled, exits_one(commands)) {
        (true, false) => problems.push(format!(
            "{at}: labelled {OUTCOME_LABEL}: {label:?} but its command does not exit 1 ({commands:?})"
        )),
        (false, true) => problems.push(format!(
            "{at}: its command exits 1 but it lacks the label {OUTCOME_LABEL}: fail"
        )),
        _ => {}
    }
}

fn template_spec<'a>(
    templates: &'a BTreeMap<&str, &JobTemplate>,
    name: &str,
) -> Option<&'a JobSpec> {
    templates.get(name).map(|t| t.spec.effective_job_spec())
}

#[test]
fn failing_pods_carry_the_outcome_label_and_exit_one() {
    let mut problems = Vec::new();
    let samples = load_samples(&mut problems);
    let documents: Vec<&Document> = samples.iter().flat_map(|(_, docs)| docs).collect();
    let templates: BTreeMap<&str, &JobTemplate> = documents
        .iter()
        .filter_map(|d| match &d.object {
            Object::JobTemplate(t) => Some((d.name.as_str(), t.as_ref())),
            _ => None,
        })
        .collect();

    for document in &documents {
        let at = document.at();
        match &document.object {
            Object::ManagedJob(mj) => {
                let workflow = mj.spec.params.as_ref();
                // Exit jobs (spec.onExit) are the group `onExit`, without group params.
                let groups = mj
                    .spec
                    .groups
                    .iter()
                    .map(|g| (g.name.as_str(), g.params.as_ref(), &g.jobs))
                    .chain([("onExit", None, &mj.spec.on_exit)]);
                for (group_name, group_params, jobs) in groups {
                    for job in jobs {
                        // labels merge key by key, the most specific level wins
                        let levels = [job.params.as_ref(), group_params, workflow];
                        let label = levels
                            .into_iter()
                            .flatten()
                            .find_map(|p| p.labels.as_ref()?.get(OUTCOME_LABEL));
                        let exit_code = levels
                            .into_iter()
                            .flatten()
                            .find_map(|p| p.annotations.as_ref()?.get(EXIT_CODE_ANNOTATION));
                        let mut commands = join(&[&job.command, &job.args]);
                        if job.command.is_none() && job.args.is_none() {
                            let spec = job
                                .template_ref
                                .as_deref()
                                .and_then(|name| template_spec(&templates, name));
                            commands = spec.map(|s| pod_commands(&s.template)).unwrap_or_default();
                        }
                        let at = format!("{at} job {group_name}/{}", job.name);
                        check_outcome(&at, label, exit_code, &commands, &mut problems);
                    }
                }
            }
            Object::JobFlow(jf) => {
                let global = jf
                    .spec
                    .global_params
                    .as_ref()
                    .and_then(|g| g.labels.as_ref());
                for flow in jf.spec.flows.iter().chain(&jf.spec.on_exit) {
                    let spec = flow.job_template.as_deref().or_else(|| {
                        let name = flow.job_template_ref.as_deref()?;
                        template_spec(&templates, name)
                    });
                    let Some(spec) = spec else { continue };
                    let label = pod_label(&spec.template, OUTCOME_LABEL)
                        .or_else(|| global.and_then(|g| g.get(OUTCOME_LABEL)));
                    let exit_code = pod_annotation(&spec.template, EXIT_CODE_ANNOTATION);
                    let at = format!("{at} flow {}", flow.name);
                    let commands = pod_commands(&spec.template);
                    check_outcome(&at, label, exit_code, &commands, &mut problems);
                }
            }
            Object::DaemonJob(dj) => {
                let global = dj
                    .spec
                    .global_params
                    .as_ref()
                    .and_then(|g| g.labels.as_ref());
                let spec = if dj.spec.has_inline_template() {
                    Some(&dj.spec.job)
                } else {
                    dj.spec
                        .template_ref
                        .as_deref()
                        .and_then(|name| template_spec(&templates, name))
                };
                if let Some(spec) = spec {
                    let label = pod_label(&spec.template, OUTCOME_LABEL)
                        .or_else(|| global.and_then(|g| g.get(OUTCOME_LABEL)));
                    let exit_code = pod_annotation(&spec.template, EXIT_CODE_ANNOTATION);
                    let commands = pod_commands(&spec.template);
                    check_outcome(&at, label, exit_code, &commands, &mut problems);
                }
            }
            Object::JobTemplate(jt) => {
                let template = &jt.spec.effective_job_spec().template;
                let label = pod_label(template, OUTCOME_LABEL);
                let exit_code = pod_annotation(template, EXIT_CODE_ANNOTATION);
                check_outcome(
                    &at,
                    label,
                    exit_code,
                    &pod_commands(template),
                    &mut problems,
                );
            }
            Object::JobRun(jr) => {
                let Some(spec) = template_spec(&templates, &jr.spec.template_ref) else {
                    continue;
                };
                let containers = spec.template.spec.iter().flat_map(|s| &s.containers);
                let target = jr.spec.container.as_deref();
                let commands = containers
                    .enumerate()
                    .map(|(index, c)| {
                        let chosen = target.map_or(index == 0, |name| name == c.name);
                        let pick =
                            |over: &Option<Vec<String>>, own: &Option<Vec<String>>| match over {
                                Some(list) if chosen && !list.is_empty() => Some(list.clone()),
                                _ => own.clone(),
                            };
                        let command = pick(&jr.spec.command, &c.command);
                        let args = pick(&jr.spec.args, &c.args);
                        join(&[&command, &args])
                    })
                    .collect::<Vec<_>>()
                    .join(" ; ");
                let label = pod_label(&spec.template, OUTCOME_LABEL);
                let exit_code = pod_annotation(&spec.template, EXIT_CODE_ANNOTATION);
                check_outcome(&at, label, exit_code, &commands, &mut problems);
            }
            Object::Core => {}
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn samples_doc_lists_every_sample() {
    let mut problems = Vec::new();
    let samples = load_samples(&mut problems);
    let doc = std::fs::read_to_string(repo_root().join("docs/samples.md"))
        .expect("docs/samples.md exists");
    for (file, _) in &samples {
        if !doc.contains(&format!("kubectl apply -f {file}")) {
            problems.push(format!(
                "docs/samples.md: no line with `kubectl apply -f {file}`"
            ));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn readme_examples_parse_like_samples() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut problems = Vec::new();
    let mut blocks = 0;
    let mut kinds = BTreeSet::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim_start() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks += 1;
        let file = format!("README.md yaml block {blocks}");
        for document in parse_documents(&file, &block.join("\n"), &mut problems) {
            kinds.insert(document.kind);
        }
    }
    for (kind, _) in KIND_DIRS {
        if !kinds.contains(kind) {
            problems.push(format!("README.md: no yaml example of {kind}"));
        }
    }
    assert_no_problems(&problems);
}

#[test]
fn the_helpers_catch_what_they_should() {
    // an unknown field and a known field at its omitted default
    let value: Value = serde_yaml::from_str(
        "apiVersion: jobsmith.dev/v1alpha1\nkind: ManagedJob\nmetadata: {name: x}\nspec:\n  \
         groups:\n    - name: g\n      jobs:\n        - name: a\n          image: busybox\n        \
         - name: b\n          image: busybox\n          bogus: 1\n          dependencies:\n            \
         - {name: a, status: succeeded}\n",
    )
    .unwrap();
    let error = typed::<ManagedJob>(&value).unwrap_err();
    assert!(error.contains(".spec.groups[0].jobs[1].bogus"), "{error}");
    assert!(!error.contains("status"), "{error}");
    // a field the type reads but the CRD schema does not declare
    let value: Value = serde_yaml::from_str(
        "spec:\n  groups:\n    - name: g\n      params:\n        volumeMounts: []\n        bogus: 1\n",
    )
    .unwrap();
    assert_eq!(
        pruned_paths::<ManagedJob>(&value),
        vec![".spec.groups[0].params.bogus".to_string()]
    );
    let mut problems = Vec::new();
    let docs = parse_documents(
        "x",
        "apiVersion: v2\nkind: Nope\nmetadata: {name: n}\n",
        &mut problems,
    );
    assert!(docs.is_empty());
    assert!(
        problems[0].contains("unknown apiVersion/kind v2/Nope"),
        "{problems:?}"
    );
    assert!(exits_one("sleep 1 && exit 1"));
    assert!(exits_one("echo x; exit 1"));
    assert!(!exits_one("exit 10"));
    assert!(!exits_one("exit 0"));
    assert!(exits_with("echo x; exit 3", "3"));
    assert!(!exits_with("exit 30", "3"));
}
