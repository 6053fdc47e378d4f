//! Creating and applying multi-document YAML of any kind (resolved through discovery).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiResource, Scope};
use kube::{Client, ResourceExt};
use serde::Deserialize;

use crate::cluster::FIELD_MANAGER;

/// Parses multi-document YAML into objects; empty documents are skipped.
pub fn parse_yaml(yaml: &str) -> Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(document)
            .with_context(|| format!("YAML document {index} does not parse"))?;
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(value)
            .with_context(|| format!("YAML document {index} is not JSON-compatible"))?;
        let object: DynamicObject = serde_json::from_value(json)
            .with_context(|| format!("YAML document {index} is not a Kubernetes object"))?;
        if object.types.is_none() {
            bail!("YAML document {index} has no apiVersion/kind");
        }
        objects.push(object);
    }
    Ok(objects)
}

/// The dynamic API of `gvk`, namespaced in `namespace` when the resource is namespaced
/// (an error if it is and no namespace is given), cluster-wide otherwise.
pub async fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    gvk: &GroupVersionKind,
) -> Result<(Api<DynamicObject>, ApiResource)> {
    let (resource, caps) = discovery::pinned_kind(client, gvk)
        .await
        .with_context(|| format!("discovering {gvk:?} (is its CRD installed?)"))?;
    let api = match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => bail!("{} is namespaced but no namespace was given", gvk.kind),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    Ok((api, resource))
}

fn gvk_of(object: &DynamicObject) -> Result<GroupVersionKind> {
    let types = object
        .types
        .as_ref()
        .ok_or_else(|| anyhow!("object {} has no apiVersion/kind", object.name_any()))?;
    GroupVersionKind::try_from(types).map_err(|e| anyhow!("bad apiVersion/kind: {e}"))
}

fn describe(object: &DynamicObject) -> String {
    let kind = object.types.as_ref().map_or("?", |t| t.kind.as_str());
    format!("{kind}/{}", object.name_any())
}

/// Server-side applies one object with `params`; its own `metadata.namespace` wins over
/// `namespace`. Returns the object as the server answered (for a dry run: as it would be).
pub async fn apply_object(
    client: &Client,
    namespace: Option<&str>,
    object: &DynamicObject,
    params: &PatchParams,
) -> Result<DynamicObject> {
    let gvk = gvk_of(object)?;
    let ns = object.metadata.namespace.as_deref().or(namespace);
    let (api, _) = dynamic_api(client, ns, &gvk).await?;
    let name = object
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| anyhow!("server-side apply needs metadata.name ({})", gvk.kind))?;
    api.patch(name, params, &Patch::Apply(object))
        .await
        .map_err(concise)
        .with_context(|| format!("applying {}", describe(object)))
}

/// Server-side applies every document of `yaml` (field manager [`FIELD_MANAGER`], forced).
pub async fn apply_yaml(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
) -> Result<Vec<DynamicObject>> {
    apply_yaml_with(
        client,
        namespace,
        yaml,
        &PatchParams::apply(FIELD_MANAGER).force(),
    )
    .await
}

/// Like [`apply_yaml`] with explicit patch params (e.g. `PatchParams::apply(..).dry_run()`).
pub async fn apply_yaml_with(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
    params: &PatchParams,
) -> Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for object in parse_yaml(yaml)? {
        applied.push(apply_object(client, namespace, &object, params).await?);
    }
    Ok(applied)
}

/// Server-side applies the documents of a file.
pub async fn apply_file(
    client: &Client,
    namespace: Option<&str>,
    path: &Path,
) -> Result<Vec<DynamicObject>> {
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    apply_yaml(client, namespace, &yaml)
        .await
        .with_context(|| format!("applying {}", path.display()))
}

/// Creates (POST) every document of `yaml`; `metadata.generateName` works here.
pub async fn create_yaml(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
) -> Result<Vec<DynamicObject>> {
    create_yaml_with(client, namespace, yaml, &PostParams::default()).await
}

/// Like [`create_yaml`] with explicit params (e.g. `dry_run: true`). Unlike server-side apply,
/// a create reports schema errors of keyed lists (duplicate names) with the API server's own
/// validation message.
pub async fn create_yaml_with(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
    params: &PostParams,
) -> Result<Vec<DynamicObject>> {
    let mut created = Vec::new();
    for object in parse_yaml(yaml)? {
        let gvk = gvk_of(&object)?;
        let ns = object.metadata.namespace.as_deref().or(namespace);
        let (api, _) = dynamic_api(client, ns, &gvk).await?;
        created.push(
            api.create(params, &object)
                .await
                .map_err(concise)
                .with_context(|| format!("creating {}", describe(&object)))?,
        );
    }
    Ok(created)
}

/// The API server refused a request. Its `Display` is the server's own message (kube's error
/// prints the whole Status twice, which buries the message in test output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRejection {
    /// HTTP status code (422 for an invalid object, 409 for a conflict, ...).
    pub code: u16,
    /// The Status reason (`Invalid`, `AlreadyExists`, `NotFound`, ...).
    pub reason: String,
    /// The server's message, e.g. the schema's validation messages.
    pub message: String,
}

impl std::fmt::Display for ApiRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {})", self.message, self.code, self.reason)
    }
}

impl std::error::Error for ApiRejection {}

/// A kube error as an anyhow error, API refusals as [`ApiRejection`].
pub(crate) fn concise(error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => anyhow::Error::new(ApiRejection {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        }),
        other => anyhow::Error::new(other),
    }
}

/// The API server's message when `error` (anywhere in its chain) is an API rejection, e.g. the
/// schema's validation messages of a 422 Invalid.
pub fn api_error_message(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(rejection) = cause.downcast_ref::<ApiRejection>() {
            return Some(rejection.message.clone());
        }
        match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.message.clone()),
            _ => None,
        }
    })
}
