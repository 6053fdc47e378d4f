//! Rendering of the generated artifacts: one CRD YAML per kind (`crds/`) and the API reference
//! (`docs/reference/api.md`). Pure functions returning strings; writing them is the caller's job
//! (`api/tests/generated.rs`, run by `make generate`).

use std::fmt::Write as _;
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{DaemonJob, JobFlow, JobRun, JobTemplate, ManagedJob};

/// First line of every generated file.
pub const GENERATED_HEADER: &str =
    "Generated from the Rust types in api/src by `make generate`. Do not edit.";

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A CRD could not be serialized to YAML.
    #[error("rendering the {kind} CRD as YAML: {source}")]
    Yaml {
        /// Kind whose CRD failed.
        kind: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A CRD could not be turned into JSON for the reference.
    #[error("reading the {kind} CRD schema: {source}")]
    Json {
        /// Kind whose CRD failed.
        kind: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// The CRDs of the five kinds, in a fixed order (ManagedJob, JobFlow, DaemonJob, JobTemplate,
/// JobRun).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ManagedJob::crd(),
        JobFlow::crd(),
        DaemonJob::crd(),
        JobTemplate::crd(),
        JobRun::crd(),
    ]
}

/// Repository-relative path of a kind's CRD file (`crds/managedjob.yaml`).
pub fn crd_path(crd: &CustomResourceDefinition) -> PathBuf {
    PathBuf::from("crds").join(format!("{}.yaml", crd.spec.names.kind.to_lowercase()))
}

/// Repository-relative path of the API reference.
pub fn reference_path() -> PathBuf {
    PathBuf::from("docs/reference/api.md")
}

/// One CRD as YAML, with the generated-file header.
pub fn render_crd_yaml(crd: &CustomResourceDefinition) -> Result<String, GenerateError> {
    let yaml = serde_yaml::to_string(crd).map_err(|source| GenerateError::Yaml {
        kind: crd.spec.names.kind.clone(),
        source,
    })?;
    Ok(format!("# {GENERATED_HEADER}\n{yaml}"))
}

/// Every generated file: `(path relative to the repository root, content)`.
pub fn try_rendered_files() -> Result<Vec<(PathBuf, String)>, GenerateError> {
    let crds = crds();
    let mut files = Vec::with_capacity(crds.len() + 1);
    for crd in &crds {
        files.push((crd_path(crd), render_crd_yaml(crd)?));
    }
    files.push((reference_path(), render_reference(&crds)?));
    Ok(files)
}

/// Every generated file: `(path relative to the repository root, content)`.
///
/// Never panics: if rendering fails (it cannot with the types of this crate), the content of
/// the affected file is the error message, so the staleness test fails and shows it.
pub fn rendered_files() -> Vec<(PathBuf, String)> {
    match try_rendered_files() {
        Ok(files) => files,
        Err(error) => vec![(reference_path(), format!("rendering failed: {error}\n"))],
    }
}

/// The API reference as Markdown: for each kind, one table row per schema field with its path,
/// type, description and validation.
pub fn render_reference(crds: &[CustomResourceDefinition]) -> Result<String, GenerateError> {
    let mut out = String::new();
    let _ = writeln!(out, "<!-- {GENERATED_HEADER} -->\n");
    let _ = writeln!(out, "# API reference: `{}`\n", crate::API_GROUP_VERSION);
    let _ = writeln!(
        out,
        "All kinds are namespaced and in the category `{}` (`kubectl get {}`). \
         Embedded Kubernetes objects (pod templates, JobSpecs, volumes) are kept as written \
         (`x-kubernetes-preserve-unknown-fields`) and validated by the API server when the Job is created.\n",
        crate::CATEGORY,
        crate::CATEGORY
    );
    for crd in crds {
        let names = &crd.spec.names;
        let _ = writeln!(out, "- [{}](#{})", names.kind, names.kind.to_lowercase());
    }
    for crd in crds {
        let kind = crd.spec.names.kind.clone();
        let names = &crd.spec.names;
        let _ = writeln!(out, "\n## {kind}\n");
        let short = names.short_names.clone().unwrap_or_default().join(", ");
        let _ = writeln!(
            out,
            "`apiVersion: {}`, `kind: {kind}`, plural `{}`, short names `{short}`.\n",
            crate::API_GROUP_VERSION,
            names.plural
        );
        let Some(version) = crd.spec.versions.first() else {
            continue;
        };
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let Some(schema) = schema else { continue };
        let schema = serde_json::to_value(schema).map_err(|source| GenerateError::Json {
            kind: kind.clone(),
            source,
        })?;
        if let Some(description) = schema.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{}\n", one_line(description));
        }
        if let Some(columns) = &version.additional_printer_columns {
            let list: Vec<String> = columns
                .iter()
                .map(|c| match c.priority {
                    Some(p) if p > 0 => format!("{} (wide)", c.name),
                    _ => c.name.clone(),
                })
                .collect();
            let _ = writeln!(out, "Printer columns: {}.\n", list.join(", "));
        }
        let _ = writeln!(out, "| Field | Type | Description | Validation |");
        let _ = writeln!(out, "|---|---|---|---|");
        let required = required_of(&schema);
        for section in ["spec", "status"] {
            if let Some(property) = schema.get("properties").and_then(|p| p.get(section)) {
                write_rows(
                    &mut out,
                    section,
                    property,
                    required.contains(&section.to_string()),
                );
            }
        }
    }
    Ok(out)
}

fn required_of(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn write_rows(out: &mut String, path: &str, schema: &Value, required: bool) {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_default();
    let type_name = match upstream_type(path) {
        Some(upstream) => format!("{} ({upstream})", type_of(schema)),
        None => type_of(schema),
    };
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} |",
        path,
        type_name,
        escape(&description),
        escape(&validation_of(schema, required))
    );
    if is_upstream_leaf(path) {
        return;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let required = required_of(schema);
        for (name, property) in properties {
            write_rows(
                out,
                &format!("{path}.{name}"),
                property,
                required.contains(name),
            );
        }
    }
    if let Some(items) = schema.get("items")
        && let Some(properties) = items.get("properties").and_then(Value::as_object)
    {
        let required = required_of(items);
        for (name, property) in properties {
            write_rows(
                out,
                &format!("{path}[].{name}"),
                property,
                required.contains(name),
            );
        }
    }
}

/// Fields whose type is a Kubernetes core type: documented by Kubernetes, so the reference
/// does not repeat their sub-fields.
const UPSTREAM_LEAVES: &[(&str, &str)] = &[
    (
        "env",
        "core/v1 EnvVar (ManagedJob params and JobFlow flows: also `valueFrom.stepOutput {step, name}`)",
    ),
    ("fromEnv", "core/v1 EnvFromSource"),
    ("volumeMount", "core/v1 VolumeMount"),
    ("shareVolumeMounts", "core/v1 VolumeMount"),
    ("resources", "core/v1 ResourceRequirements"),
    ("conditions", "meta/v1 Condition"),
    ("jobConditions", "batch/v1 JobCondition"),
];

fn upstream_type(path: &str) -> Option<&'static str> {
    let last = path.rsplit(['.', ']']).next().unwrap_or(path);
    UPSTREAM_LEAVES
        .iter()
        .find(|(name, _)| *name == last)
        .map(|(_, upstream)| *upstream)
}

fn is_upstream_leaf(path: &str) -> bool {
    upstream_type(path).is_some()
}

fn type_of(schema: &Value) -> String {
    let preserved = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return "int or string".into();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let item = schema
                .get("items")
                .map(type_of)
                .unwrap_or_else(|| "any".into());
            format!("array of {item}")
        }
        Some("object") if preserved => "object (kept as written)".into(),
        Some("object") => match schema.get("additionalProperties") {
            Some(additional) if additional.is_object() => {
                format!("map of {}", type_of(additional))
            }
            _ => "object".into(),
        },
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => "string (date-time)".into(),
            _ => "string".into(),
        },
        Some(other) => other.into(),
        None => "any".into(),
    }
}

fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

fn validation_of(schema: &Value, required: bool) -> String {
    let mut parts = Vec::new();
    if required {
        parts.push("required".to_string());
    }
    if let Some(default) = schema.get("default") {
        parts.push(format!("default `{default}`"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        parts.push(format!("one of {}", enum_values(values)));
    }
    if let Some(items) = schema.get("items")
        && let Some(values) = items.get("enum").and_then(Value::as_array)
    {
        parts.push(format!("items one of {}", enum_values(values)));
    }
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(value) = schema.get(key) {
            parts.push(format!("{label} {}", number(value)));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern `{pattern}`"));
    }
    if let Some(items) = schema.get("items") {
        parts.extend(item_limits(items));
    }
    parts.extend(list_type(schema));
    parts.extend(cel_rules(schema));
    parts.join("; ")
}

/// Enum values, each in backticks: `` `a`, `b` ``.
fn enum_values(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| {
            format!(
                "`{}`",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The limits on each item of an array.
fn item_limits(items: &Value) -> Vec<String> {
    [
        ("maxLength", "item max length"),
        ("pattern", "item pattern"),
    ]
    .into_iter()
    .filter_map(|(key, label)| {
        let value = items.get(key)?;
        Some(format!(
            "{label} `{}`",
            value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| number(value))
        ))
    })
    .collect()
}

/// An array's list type, and the keys it is unique by.
fn list_type(schema: &Value) -> Option<String> {
    let list_type = schema
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)?;
    Some(
        match schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        {
            Some(keys) => {
                let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
                format!("list-type `{list_type}`, unique by `{}`", keys.join("`, `"))
            }
            None => format!("list-type `{list_type}`"),
        },
    )
}

/// The CEL validation rules, with their messages.
fn cel_rules(schema: &Value) -> Vec<String> {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            let expression = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            match rule.get("message").and_then(Value::as_str) {
                Some(message) => format!("CEL `{expression}` ({message})"),
                None => format!("CEL `{expression}`"),
            }
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}
