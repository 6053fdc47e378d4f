//! Parameters applied to child Jobs: ManagedJob params merged workflow -> group -> job (SPEC §2),
//! JobFlow/DaemonJob `globalParams` (SPEC §3, §4), JobRun overrides (SPEC §6), and the GitOps
//! tracking metadata that never reaches a child (SPEC §1).
//!
//! Merge rules (most specific wins), decided here once:
//! - `env`, `volumes` and `imagePullSecrets` by name: the more specific level's entries first,
//!   in their order, then the less specific level's entries whose name is not taken yet. Three
//!   levels give the seed's order: the job's entries, the group's, the workflow's, each name once.
//! - `volumeMount` by volume name and `mountPath` ([`merge_mounts`]), in the same order: one
//!   volume may be mounted at several paths (for example with different `subPath`s) and every
//!   such mount is kept; a less specific mount is dropped when a more specific one has the same
//!   name and path, or already uses its `mountPath` (a container mounts one thing per path).
//! - `fromEnv` by referenced object (`ConfigMap`/`Secret` and name): a source named on several
//!   levels is kept once, as the most specific level wrote it (its `prefix`, `optional`). The
//!   less specific sources come **first**: when two sources hold the same key Kubernetes takes
//!   the value of the last one, so the most specific level also wins key collisions.
//! - `labels`, `annotations`: key by key. `resources`: per resource name within `limits` and
//!   `requests`, `claims` by name. Scalars (`serviceAccount`, `restartPolicy`,
//!   `imagePullPolicy`): the most specific level that sets one.
//! - Defaults (`restartPolicy: OnFailure`, `imagePullPolicy: IfNotPresent`) are applied only
//!   after merging ([`with_defaults`]), so a default never hides a less specific level's value.

use std::collections::{BTreeMap, BTreeSet};

use jobsmith_api::jobtemplate::OverridableField;
use jobsmith_api::labels::is_gitops_tracking_key;
use jobsmith_api::{
    GlobalParams, ImagePullPolicyParam, JobRestartPolicy, JobRunSpec, OutputEnvVar, Params,
};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, LocalObjectReference, PodSpec, PodTemplateSpec,
    ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

/// `restartPolicy` after merging when no level sets one.
pub const DEFAULT_RESTART_POLICY: JobRestartPolicy = JobRestartPolicy::OnFailure;
/// `imagePullPolicy` after merging when no level sets one.
pub const DEFAULT_IMAGE_PULL_POLICY: &str = "IfNotPresent";

/// A problem with params or overrides. The message is meant for status and Events.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParamsError {
    /// `imagePullPolicy` is not one of `Always`, `IfNotPresent`, `Never` (or a list of one).
    #[error(
        "{at}: invalid imagePullPolicy {value}: must be one of Always, IfNotPresent, Never (a string or a list of one)"
    )]
    InvalidImagePullPolicy {
        /// Where: `spec.params`, `group "g" params`, `job "g/j" params`.
        at: String,
        /// The value as written (JSON).
        value: String,
    },
    /// A JobRun overrides a field the template does not list in `overridable`.
    #[error("overriding {field} is not allowed by the JobTemplate")]
    OverrideNotAllowed {
        /// `command`, `args` or `env`.
        field: String,
    },
    /// A JobRun names a container the template does not have (or the template has none).
    #[error("container \"{0}\" not found in the JobTemplate")]
    UnknownContainer(String),
    /// The pod template has no container to apply overrides to.
    #[error("the JobTemplate has no containers")]
    NoContainers,
}

/// Checks one level's params (today: `imagePullPolicy`); `at` names the level in the message.
pub fn validate_params(params: &Params, at: &str) -> Result<(), ParamsError> {
    match &params.image_pull_policy {
        Some(policy) if !policy.is_valid() => Err(ParamsError::InvalidImagePullPolicy {
            at: at.to_owned(),
            value: serde_json::to_string(policy).unwrap_or_default(),
        }),
        _ => Ok(()),
    }
}

/// Merges two levels: `specific` wins over `general` (see the module doc for each field).
pub fn merge(specific: &Params, general: &Params) -> Params {
    Params {
        from_env: merge_from_env(general.from_env.as_deref(), specific.from_env.as_deref()),
        env: merge_by_key(specific.env.as_deref(), general.env.as_deref(), |e| {
            e.name.clone()
        }),
        volumes: merge_by_key(
            specific.volumes.as_deref(),
            general.volumes.as_deref(),
            |v| v.name.clone(),
        ),
        volume_mount: merge_mounts(
            specific.volume_mount.as_deref(),
            general.volume_mount.as_deref(),
        ),
        service_account: specific
            .service_account
            .clone()
            .or_else(|| general.service_account.clone()),
        restart_policy: specific.restart_policy.or(general.restart_policy),
        image_pull_secrets: merge_by_key(
            specific.image_pull_secrets.as_deref(),
            general.image_pull_secrets.as_deref(),
            String::clone,
        ),
        image_pull_policy: specific
            .image_pull_policy
            .clone()
            .or_else(|| general.image_pull_policy.clone()),
        labels: merge_maps(specific.labels.as_ref(), general.labels.as_ref()),
        annotations: merge_maps(specific.annotations.as_ref(), general.annotations.as_ref()),
        resources: merge_resources(specific.resources.as_ref(), general.resources.as_ref()),
    }
}

/// Merges the three ManagedJob levels (workflow, group, job; any may be absent) without
/// applying defaults.
pub fn merge_levels(
    workflow: Option<&Params>,
    group: Option<&Params>,
    job: Option<&Params>,
) -> Params {
    let empty = Params::default();
    let upper = merge(group.unwrap_or(&empty), workflow.unwrap_or(&empty));
    merge(job.unwrap_or(&empty), &upper)
}

/// The merged params with the defaults applied: what a job runs with (the seed's
/// `compiledParams`, shown by the kubectl plugin).
pub fn with_defaults(mut merged: Params) -> Params {
    merged.restart_policy.get_or_insert(DEFAULT_RESTART_POLICY);
    merged
        .image_pull_policy
        .get_or_insert_with(|| ImagePullPolicyParam::Single(DEFAULT_IMAGE_PULL_POLICY.to_owned()));
    merged
}

/// The compiled params of a ManagedJob job: the three levels merged, then defaulted.
pub fn compiled_params(
    workflow: Option<&Params>,
    group: Option<&Params>,
    job: Option<&Params>,
) -> Params {
    with_defaults(merge_levels(workflow, group, job))
}

/// Applies merged (not defaulted) ManagedJob params to a pod template, on top of what it holds
/// (a JobTemplate's pod or a pod built from `image`): params win by name/key, then the defaults
/// fill only what neither the params nor the pod set.
pub fn apply_params(pod: &mut PodTemplateSpec, params: &Params) {
    let meta = pod.metadata.get_or_insert_with(ObjectMeta::default);
    overlay_map(&mut meta.labels, params.labels.as_ref());
    overlay_map(&mut meta.annotations, params.annotations.as_ref());
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    if let Some(volumes) = &params.volumes {
        spec.volumes = merge_by_key(Some(volumes), spec.volumes.as_deref(), |v| v.name.clone());
    }
    if let Some(account) = &params.service_account {
        spec.service_account_name = Some(account.clone());
    }
    if let Some(secrets) = &params.image_pull_secrets {
        let refs: Vec<LocalObjectReference> = secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect();
        spec.image_pull_secrets =
            merge_by_key(Some(&refs), spec.image_pull_secrets.as_deref(), |r| {
                r.name.clone()
            });
    }
    match params.restart_policy {
        Some(policy) => spec.restart_policy = Some(policy.as_str().to_owned()),
        None => {
            spec.restart_policy
                .get_or_insert_with(|| DEFAULT_RESTART_POLICY.as_str().to_owned());
        }
    }
    let pull = params
        .image_pull_policy
        .as_ref()
        .and_then(ImagePullPolicyParam::policy);
    for container in &mut spec.containers {
        apply_to_container(container, params, pull);
    }
}

fn apply_to_container(container: &mut Container, params: &Params, pull: Option<&str>) {
    if let Some(env) = &params.env {
        // A `stepOutput` variable stays a name without value here, in its merged position;
        // the run mechanism sets the value when the Job is created (engine `outputs`).
        let env: Vec<EnvVar> = env.iter().map(OutputEnvVar::to_env_var).collect();
        container.env = merge_by_key(Some(&env), container.env.as_deref(), |e| e.name.clone());
    }
    if let Some(sources) = &params.from_env {
        container.env_from = merge_from_env(container.env_from.as_deref(), Some(sources));
    }
    if let Some(mounts) = &params.volume_mount {
        container.volume_mounts = merge_mounts(Some(mounts), container.volume_mounts.as_deref());
    }
    if let Some(resources) = &params.resources {
        container.resources = merge_resources(Some(resources), container.resources.as_ref());
    }
    match pull {
        Some(policy) => container.image_pull_policy = Some(policy.to_owned()),
        None => {
            container
                .image_pull_policy
                .get_or_insert_with(|| DEFAULT_IMAGE_PULL_POLICY.to_owned());
        }
    }
}

/// Applies JobFlow/DaemonJob `globalParams` to a pod template; the pod's own values win.
/// `env` is added to every container (and init container) where the name is not set yet;
/// `labels`/`annotations` are added to the pod where the key is not set yet; `nodeName` pins
/// the pod when `pin_node_name` (JobFlow) and the pod names no node itself.
pub fn apply_global_params(pod: &mut PodTemplateSpec, global: &GlobalParams, pin_node_name: bool) {
    let meta = pod.metadata.get_or_insert_with(ObjectMeta::default);
    underlay_map(&mut meta.labels, global.labels.as_ref());
    underlay_map(&mut meta.annotations, global.annotations.as_ref());
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    if let Some(env) = &global.env {
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for container in containers {
            container.env = merge_by_key(container.env.as_deref(), Some(env), |e| e.name.clone());
        }
    }
    if let Some(node) = global.node_name.as_ref().filter(|_| pin_node_name) {
        spec.node_name.get_or_insert_with(|| node.clone());
    }
}

/// Applies a JobRun's overrides to the pod template of its JobTemplate (SPEC §6): `command` and
/// `args` replace those of the container named by `container` (default: the first); an empty
/// list means no override. `env` is merged by name, the run's values win. Each override must be
/// listed in `allowed` (the template's `overridable`).
pub fn apply_overrides(
    pod: &mut PodTemplateSpec,
    run: &JobRunSpec,
    allowed: &[OverridableField],
) -> Result<(), ParamsError> {
    let command = run.command.as_ref().filter(|c| !c.is_empty());
    let args = run.args.as_ref().filter(|a| !a.is_empty());
    let env = run.env.as_ref().filter(|e| !e.is_empty());
    for (set, field) in [
        (command.is_some(), OverridableField::Command),
        (args.is_some(), OverridableField::Args),
        (env.is_some(), OverridableField::Env),
    ] {
        if set && !allowed.contains(&field) {
            return Err(ParamsError::OverrideNotAllowed {
                field: overridable_name(field).to_owned(),
            });
        }
    }
    let containers = &mut pod.spec.get_or_insert_with(PodSpec::default).containers;
    let target = match &run.container {
        Some(name) => containers
            .iter_mut()
            .find(|c| &c.name == name)
            .ok_or_else(|| ParamsError::UnknownContainer(name.clone()))?,
        None => containers.first_mut().ok_or(ParamsError::NoContainers)?,
    };
    if let Some(command) = command {
        target.command = Some(command.clone());
    }
    if let Some(args) = args {
        target.args = Some(args.clone());
    }
    if let Some(env) = env {
        target.env = merge_in_place(target.env.take(), env);
    }
    Ok(())
}

/// The field name as written in `overridable`.
pub fn overridable_name(field: OverridableField) -> &'static str {
    match field {
        OverridableField::Command => "command",
        OverridableField::Args => "args",
        OverridableField::Env => "env",
    }
}

/// `map` without GitOps tracking keys (SPEC §1): what may be copied from a parent to a child.
pub fn strip_gitops(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter(|(key, _)| !is_gitops_tracking_key(key) && !is_retry_request_key(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The retry request annotations are addressed to the manager, not to the Jobs: never copied.
fn is_retry_request_key(key: &str) -> bool {
    key == jobsmith_api::labels::RETRY_REQUESTED_AT || key == jobsmith_api::labels::RETRY_STEPS
}

/// Adds shared volumes to a pod and their mounts to every container (JobFlow `shareVolumes` +
/// `shareVolumeMounts`). A volume whose name the pod already has is not added (the flow's own
/// wins); a mount whose `mountPath` a container already uses is not added to it, while mounts of
/// one volume at different paths are all added ([`merge_mounts`], the container's own first).
pub fn add_shared_volumes(pod: &mut PodTemplateSpec, volumes: &[Volume], mounts: &[VolumeMount]) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    spec.volumes = merge_by_key(spec.volumes.as_deref(), Some(volumes), |v| v.name.clone());
    for container in &mut spec.containers {
        container.volume_mounts = merge_mounts(container.volume_mounts.as_deref(), Some(mounts));
    }
}

/// Volume mounts of two levels, keyed by (volume name, `mountPath`): `specific`'s mounts first,
/// in their order (an exact (name, path) repeat kept once), then each of `general`'s whose
/// `mountPath` no mount taken so far uses. Mounts of one volume at different paths all survive;
/// at one path the most specific mount wins, as Kubernetes allows one mount per path in a
/// container. `None` when both are absent.
pub fn merge_mounts(
    specific: Option<&[VolumeMount]>,
    general: Option<&[VolumeMount]>,
) -> Option<Vec<VolumeMount>> {
    if specific.is_none() && general.is_none() {
        return None;
    }
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for mount in specific.into_iter().flatten() {
        if seen.insert((mount.name.as_str(), mount.mount_path.as_str())) {
            paths.insert(mount.mount_path.as_str());
            out.push(mount.clone());
        }
    }
    for mount in general.into_iter().flatten() {
        if paths.insert(mount.mount_path.as_str()) {
            out.push(mount.clone());
        }
    }
    Some(out)
}

/// `first`'s entries in order, then `second`'s whose key is not taken yet; each key once (a key
/// repeated inside one list keeps its first entry). `None` when both are absent.
fn merge_by_key<T: Clone, K: Ord>(
    first: Option<&[T]>,
    second: Option<&[T]>,
    key: impl Fn(&T) -> K,
) -> Option<Vec<T>> {
    if first.is_none() && second.is_none() {
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for item in first
        .into_iter()
        .flatten()
        .chain(second.into_iter().flatten())
    {
        if seen.insert(key(item)) {
            out.push(item.clone());
        }
    }
    Some(out)
}

/// Sets a JobFlow flow's own `env` in every container and init container of its pod, replacing
/// the containers' entries of the same name in place (the flow's list wins) or appending. A
/// `stepOutput` variable is a name without value until the run mechanism sets it.
pub fn apply_flow_env(pod: &mut PodTemplateSpec, env: &[OutputEnvVar]) {
    if env.is_empty() {
        return;
    }
    let env: Vec<EnvVar> = env.iter().map(OutputEnvVar::to_env_var).collect();
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        container.env = merge_in_place(container.env.take(), &env);
    }
}

/// `existing` with every entry of `overrides` replacing the one of the same name in place, or
/// appended when new.
fn merge_in_place(existing: Option<Vec<EnvVar>>, overrides: &[EnvVar]) -> Option<Vec<EnvVar>> {
    let mut out = existing.unwrap_or_default();
    for var in overrides {
        match out.iter_mut().find(|e| e.name == var.name) {
            Some(slot) => *slot = var.clone(),
            None => out.push(var.clone()),
        }
    }
    Some(out)
}

/// The object an `envFrom` source refers to.
fn env_source_key(source: &EnvFromSource) -> (u8, String) {
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(cm), _) => (0, cm.name.clone()),
        (None, Some(secret)) => (1, secret.name.clone()),
        (None, None) => (2, source.prefix.clone().unwrap_or_default()),
    }
}

/// `general`'s sources first, then `specific`'s; a source named by both is kept once, as
/// `specific` wrote it and at `specific`'s position (last), so it also wins key collisions.
fn merge_from_env(
    general: Option<&[EnvFromSource]>,
    specific: Option<&[EnvFromSource]>,
) -> Option<Vec<EnvFromSource>> {
    if general.is_none() && specific.is_none() {
        return None;
    }
    let specific_keys: BTreeSet<_> = specific.into_iter().flatten().map(env_source_key).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let kept_general = general
        .into_iter()
        .flatten()
        .filter(|s| !specific_keys.contains(&env_source_key(s)));
    for source in kept_general.chain(specific.into_iter().flatten()) {
        if seen.insert(env_source_key(source)) {
            out.push(source.clone());
        }
    }
    Some(out)
}

/// Key-by-key union, `specific` wins.
fn merge_maps(
    specific: Option<&BTreeMap<String, String>>,
    general: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    if specific.is_none() && general.is_none() {
        return None;
    }
    let mut out = general.cloned().unwrap_or_default();
    out.extend(
        specific
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Some(out)
}

/// Sets every key of `add` on `target` (overwriting).
fn overlay_map(
    target: &mut Option<BTreeMap<String, String>>,
    add: Option<&BTreeMap<String, String>>,
) {
    if let Some(add) = add.filter(|m| !m.is_empty()) {
        target
            .get_or_insert_with(BTreeMap::new)
            .extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Sets the keys of `add` that `target` does not have yet.
fn underlay_map(
    target: &mut Option<BTreeMap<String, String>>,
    add: Option<&BTreeMap<String, String>>,
) {
    if let Some(add) = add.filter(|m| !m.is_empty()) {
        let map = target.get_or_insert_with(BTreeMap::new);
        for (k, v) in add {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Per resource name within `limits` and `requests`, `claims` by name; `specific` wins.
fn merge_resources(
    specific: Option<&ResourceRequirements>,
    general: Option<&ResourceRequirements>,
) -> Option<ResourceRequirements> {
    match (specific, general) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only.clone()),
        (Some(s), Some(g)) => {
            let quantities = |a: &Option<BTreeMap<_, _>>, b: &Option<BTreeMap<_, _>>| match (a, b) {
                (None, None) => None,
                _ => {
                    let mut out = b.clone().unwrap_or_default();
                    out.extend(a.clone().unwrap_or_default());
                    Some(out)
                }
            };
            Some(ResourceRequirements {
                claims: merge_by_key(s.claims.as_deref(), g.claims.as_deref(), |c| c.name.clone()),
                limits: quantities(&s.limits, &g.limits),
                requests: quantities(&s.requests, &g.requests),
            })
        }
    }
}
