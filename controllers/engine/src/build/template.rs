//! From a JobSpec (inline, or a JobTemplate in either shape) to the final `batch/v1` Job:
//! template resolution, the per-kind restart/backoff rules and the Job's metadata (name,
//! namespace, labels, annotations, owner reference). SPEC §1 "Child Jobs", §3, §5.
//!
//! Metadata precedence, decided here once. Job labels/annotations: the parent's (minus GitOps
//! tracking keys, SPEC §1), then the kind's params (`params`/`globalParams`), then ours
//! (managed-by, owner kind/name, the step label). Pod template labels: the pod's own (from the
//! template or params, untouched, so e.g. the e2e harness' `jobsmith.dev/e2e-outcome` passes
//! through), then ours. Our labels always win: the manager's shared Job watch selects on them.
//! The sharding label (`sharding.jobsmith.dev/key`) is the parent's alone: copied when the parent
//! has it, removed when params set it on a parent without it, so a Job is always in the shard
//! of its parent (the Job watch of a sharded manager selects on it too).

use std::collections::BTreeMap;

use jobsmith_api::labels::{
    MANAGED_BY, MANAGED_BY_VALUE, OWNER_KIND, OWNER_NAME, SHARD_KEY, TEMPLATE, TEMPLATE_GENERATION,
};
use jobsmith_api::{API_GROUP_VERSION, JobTemplate};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::build::BuildError;
use crate::build::naming::label_value;
use crate::build::params::strip_gitops;

/// The JobSpec of a JobTemplate (`spec.jobTemplate` when present, else the inline fields),
/// checked to be usable: its pod template has at least one container.
pub fn template_job_spec(template: &JobTemplate) -> Result<JobSpec, BuildError> {
    let name = template.metadata.name.clone().unwrap_or_default();
    let spec = template.spec.effective_job_spec().clone();
    // Name the field the user wrote: the job-deploy-operator shape or the inline one.
    let written_at = if template.spec.job_template.is_some() {
        "spec.jobTemplate"
    } else {
        "spec"
    };
    check_usable(&spec, written_at)
        .map_err(|message| BuildError::TemplateInvalid { name, message })?;
    Ok(spec)
}

/// Why a JobSpec cannot make a Job, if it cannot: no containers, or a container without a
/// name or an image, or two containers with one name (the API server would reject the Job).
/// `written_at` is where the user wrote the JobSpec (`spec`, `spec.jobTemplate`,
/// `flows[build].jobTemplate`), so the message names their field.
pub fn check_usable(spec: &JobSpec, written_at: &str) -> Result<(), String> {
    let containers = spec
        .template
        .spec
        .as_ref()
        .map_or(&[][..], |s| s.containers.as_slice());
    if containers.is_empty() {
        return Err(format!("{written_at}.template.spec.containers is empty"));
    }
    for (i, container) in containers.iter().enumerate() {
        if container.name.is_empty() {
            return Err(format!(
                "{written_at}.template.spec.containers[{i}] has no name"
            ));
        }
        if container.image.as_deref().unwrap_or_default().is_empty() {
            return Err(format!(
                "{written_at}.template.spec.containers[{i}] (\"{}\") has no image",
                container.name
            ));
        }
        if containers[..i].iter().any(|c| c.name == container.name) {
            return Err(format!(
                "{written_at}.template.spec.containers: duplicate name \"{}\"",
                container.name
            ));
        }
    }
    Ok(())
}

/// Resolves a step's base JobSpec: the referenced template when `template_ref` is set (it must
/// be given and carry that name), else `inline`.
pub fn resolve(
    template_ref: Option<&str>,
    template: Option<&JobTemplate>,
    inline: Option<(&JobSpec, &str)>,
) -> Result<JobSpec, BuildError> {
    match template_ref {
        Some(wanted) => {
            let template = template.ok_or_else(|| BuildError::TemplateNotFound {
                name: wanted.to_owned(),
            })?;
            let got = template.metadata.name.as_deref().unwrap_or_default();
            if got != wanted {
                return Err(BuildError::Invalid(format!(
                    "JobTemplate \"{got}\" was given for templateRef \"{wanted}\""
                )));
            }
            template_job_spec(template)
        }
        None => {
            let (spec, written_at) = inline
                .ok_or_else(|| BuildError::Invalid("no JobSpec and no templateRef".to_owned()))?;
            check_usable(spec, written_at).map_err(BuildError::Invalid)?;
            Ok(spec.clone())
        }
    }
}

/// The pod spec of a JobSpec, created when absent.
pub fn pod_spec_mut(spec: &mut JobSpec) -> &mut PodSpec {
    spec.template.spec.get_or_insert_with(PodSpec::default)
}

/// Sets the pod's `restartPolicy` to `policy` (JobFlow: always `Never`).
pub fn force_restart_policy(pod: &mut PodTemplateSpec, policy: &str) {
    pod.spec.get_or_insert_with(PodSpec::default).restart_policy = Some(policy.to_owned());
}

/// Sets the pod's `restartPolicy` to `policy` when the pod sets none (a Job's pods must say
/// `OnFailure` or `Never`; the pod default `Always` is rejected).
pub fn default_restart_policy(pod: &mut PodTemplateSpec, policy: &str) {
    pod.spec
        .get_or_insert_with(PodSpec::default)
        .restart_policy
        .get_or_insert_with(|| policy.to_owned());
}

/// Everything about the child Job besides its spec.
#[derive(Clone, Debug)]
pub struct ChildMeta<'a> {
    /// The parent's kind (`ManagedJob`, `JobFlow`, `DaemonJob`, `JobRun`).
    pub kind: &'static str,
    /// The parent's metadata (name, namespace, uid, labels, annotations).
    pub parent: &'a ObjectMeta,
    /// The Job's name.
    pub job_name: &'a str,
    /// The per-kind step labels (values are shortened here).
    pub step_labels: Vec<(&'static str, String)>,
    /// Labels from params/globalParams for the Job itself.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Annotations from params/globalParams for the Job itself.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The JobTemplate used, if any (recorded in annotations).
    pub template: Option<&'a JobTemplate>,
}

/// Our labels: managed-by, owner kind and name, the step labels.
pub fn managed_labels(meta: &ChildMeta<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    out.insert(OWNER_KIND.to_owned(), meta.kind.to_owned());
    out.insert(
        OWNER_NAME.to_owned(),
        label_value(meta.parent.name.as_deref().unwrap_or_default()),
    );
    for (key, value) in &meta.step_labels {
        out.insert((*key).to_owned(), label_value(value));
    }
    out
}

/// Makes the Job's sharding label the parent's: its value when the parent has one, absent when
/// the parent has none (whatever params or templates said), so a sharded manager's Job watch
/// sees exactly the Jobs of its own run objects.
pub fn follow_parent_shard(labels: &mut BTreeMap<String, String>, parent: &ObjectMeta) {
    match parent.labels.as_ref().and_then(|l| l.get(SHARD_KEY)) {
        Some(shard) => labels.insert(SHARD_KEY.to_owned(), shard.clone()),
        None => labels.remove(SHARD_KEY),
    };
}

/// The controller owner reference to the parent; the parent must have a name and a uid.
pub fn owner_reference(kind: &str, parent: &ObjectMeta) -> Result<OwnerReference, BuildError> {
    let name = parent
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| BuildError::Invalid(format!("the {kind} has no metadata.name")))?;
    let uid = parent
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| BuildError::Invalid(format!("{kind} \"{name}\" has no metadata.uid")))?;
    Ok(OwnerReference {
        api_version: API_GROUP_VERSION.to_owned(),
        kind: kind.to_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The complete Job: `spec` plus the metadata of `meta` (see the module doc for precedence).
pub fn assemble_job(meta: &ChildMeta<'_>, mut spec: JobSpec) -> Result<Job, BuildError> {
    let owner = owner_reference(meta.kind, meta.parent)?;
    let ours = managed_labels(meta);

    let mut labels = strip_gitops(meta.parent.labels.as_ref());
    labels.extend(
        meta.labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    labels.extend(ours.clone());
    follow_parent_shard(&mut labels, meta.parent);

    let mut annotations = strip_gitops(meta.parent.annotations.as_ref());
    annotations.extend(
        meta.annotations
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if let Some(template) = meta.template {
        if let Some(name) = &template.metadata.name {
            annotations.insert(TEMPLATE.to_owned(), name.clone());
        }
        if let Some(generation) = template.metadata.generation {
            annotations.insert(TEMPLATE_GENERATION.to_owned(), generation.to_string());
        }
    }

    let pod_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(ours);

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(meta.job_name.to_owned()),
            namespace: meta.parent.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}
