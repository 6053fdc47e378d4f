//! Hand-written schema pieces used through `#[schemars(schema_with = ...)]`.
//!
//! Embedded Kubernetes objects (JobSpecs, pod templates, volumes) are described as
//! `x-kubernetes-preserve-unknown-fields` objects instead of their full OpenAPI schemas: a full
//! pod template is about 500 KiB of schema, which would push every CRD past what a client-side
//! `kubectl apply` can store in its last-applied annotation. The API server still validates those
//! objects completely when the controller creates the Job from them.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

/// DNS-1123 label: lower-case alphanumerics and `-`, starting and ending with an alphanumeric.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest DNS-1123 label.
pub const DNS_LABEL_MAX_LENGTH: u32 = 63;
/// DNS-1123 subdomain (the name of an object such as a JobTemplate).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest DNS-1123 subdomain.
pub const DNS_SUBDOMAIN_MAX_LENGTH: u32 = 253;

/// Any JSON object, kept as written (an embedded Kubernetes object validated by the API server
/// when the Job is created).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of embedded objects keyed by a required `name` (pod volumes): unique names are
/// enforced by `x-kubernetes-list-type: map`, the rest of each item is kept as written.
pub fn named_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 64,
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {
                    "type": "string",
                    "description": "Name of the volume (a DNS-1123 label, unique in the list).",
                    "maxLength": DNS_LABEL_MAX_LENGTH,
                    "pattern": DNS_LABEL_PATTERN,
                }
            },
            "x-kubernetes-preserve-unknown-fields": true,
        },
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    })
}

/// A string or a list of strings (the seed writes `imagePullPolicy: ["Always"]`). A structural
/// schema cannot express "string or array", so the value is untyped here and checked by the
/// controller (`InvalidSpec` when it is not one of `Always`, `IfNotPresent`, `Never`).
pub fn string_or_string_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The top-level fields of a `batch/v1` JobSpec, for a JobSpec flattened into a `spec`
/// (DaemonJob, JobTemplate). Scalar fields keep their upstream types and descriptions; object
/// and object-list fields (template, selector, podFailurePolicy, successPolicy) become
/// preserve-unknown objects. `suspend` is left out: in a DaemonJob it is the run control.
/// `template` is not required here (a `templateRef` or `jobTemplate` may stand in for it; CEL
/// rules on the kind say which).
pub fn flattened_job_spec(generator: &mut SchemaGenerator) -> Schema {
    let upstream = generator.subschema_for::<k8s_openapi::api::batch::v1::JobSpec>();
    let mut properties = Map::new();
    if let Some(Value::Object(upstream_properties)) = upstream.get("properties") {
        for (name, property) in upstream_properties {
            if name == "suspend" {
                continue;
            }
            properties.insert(name.clone(), shallow_property(property));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(properties));
    Schema::from(schema)
}

/// A JobSpec kept as written (JobFlow `jobTemplate`, JobTemplate `jobTemplate`).
pub fn job_spec_object(generator: &mut SchemaGenerator) -> Schema {
    preserve_unknown_object(generator)
}

fn is_type(property: &Map<String, Value>, wanted: &str) -> bool {
    match property.get("type") {
        Some(Value::String(found)) => found == wanted,
        Some(Value::Array(found)) => found.iter().any(|t| t == wanted),
        _ => false,
    }
}

/// A property reduced to its top level: objects and lists of objects become preserve-unknown.
fn shallow_property(property: &Value) -> Value {
    let Value::Object(property) = property else {
        return property.clone();
    };
    let mut shallow = Map::new();
    if let Some(description) = property.get("description") {
        shallow.insert("description".into(), description.clone());
    }
    let item_is_object = property
        .get("items")
        .and_then(Value::as_object)
        .is_some_and(|items| is_type(items, "object") || items.contains_key("properties"));
    if is_type(property, "object") || property.contains_key("properties") {
        shallow.insert("type".into(), Value::String("object".into()));
        shallow.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
    } else if is_type(property, "array") && item_is_object {
        shallow.insert("type".into(), Value::String("array".into()));
        let mut items = Map::new();
        items.insert("type".into(), Value::String("object".into()));
        items.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
        shallow.insert("items".into(), Value::Object(items));
    } else {
        for (key, value) in property {
            if key == "type" {
                // `["integer", "null"]` → `"integer"`: absent fields are simply omitted.
                let single = match value {
                    Value::Array(types) => types
                        .iter()
                        .find(|t| *t != "null")
                        .cloned()
                        .unwrap_or(Value::Null),
                    other => other.clone(),
                };
                shallow.insert(key.clone(), single);
            } else if key != "nullable" {
                shallow.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(shallow)
}

/// Adds `volumeMounts`, the accepted alias of ManagedJob params' `volumeMount` (a serde `alias`),
/// to the params schema with the same item schema. Without it the API server would prune the
/// alias (unknown fields of a structural schema are dropped) before the controller reads it.
pub fn volume_mounts_alias(schema: &mut Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(mut alias) = properties.get("volumeMount").cloned() else {
        return;
    };
    if let Some(alias) = alias.as_object_mut() {
        alias.insert(
            "description".into(),
            Value::String("Alias of `volumeMount` (set one of the two).".into()),
        );
    }
    properties.insert("volumeMounts".into(), alias);
}

/// The volume sources of `core/v1` Volume (Kubernetes 1.35). A volume must name exactly one.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// Decodes a list of `core/v1` Volumes, refusing a volume of an unknown type: the typed Volume
/// would drop the unknown key, and the API server would then default the volume to `emptyDir`
/// without a word (a typo such as `persistentVolumeClam` would silently lose the data).
pub(crate) fn known_volumes<'de, D>(
    deserializer: D,
) -> Result<Option<Vec<k8s_openapi::api::core::v1::Volume>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let Some(items) = Option::<Vec<serde_json::Value>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let mut volumes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let name = item
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_owned();
        if let Some(fields) = item.as_object() {
            let sources: Vec<&str> = fields
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "name")
                .collect();
            if let Some(unknown) = sources.iter().find(|k| !VOLUME_SOURCES.contains(k)) {
                return Err(D::Error::custom(format!(
                    "volumes[{index}] (\"{name}\"): unknown volume type \"{unknown}\""
                )));
            }
            if sources.len() > 1 {
                return Err(D::Error::custom(format!(
                    "volumes[{index}] (\"{name}\"): more than one volume type ({})",
                    sources.join(", ")
                )));
            }
        }
        let volume = serde_path_to_error::deserialize(item).map_err(|e| {
            D::Error::custom(format!(
                "volumes[{index}] (\"{name}\").{}: {}",
                e.path(),
                e.inner()
            ))
        })?;
        volumes.push(volume);
    }
    Ok(Some(volumes))
}
