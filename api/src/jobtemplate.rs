//! JobTemplate (seeds: job-template-run, job-deploy-operator): a reusable JobSpec (SPEC §5).

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reusable batch/v1 JobSpec referenced by `templateRef`/`jobTemplateRef` of the other kinds.
///
/// Two shapes are accepted: the job-template-run shape, where `spec` itself is a JobSpec
/// (`spec.template.spec.containers`; the flattened field [`JobTemplateSpec::job`]), and the
/// job-deploy-operator shape `spec.jobTemplate: <JobSpec>`, which wins when present
/// ([`JobTemplateSpec::effective_job_spec`]).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "jobsmith.dev",
    version = "v1alpha1",
    kind = "JobTemplate",
    namespaced,
    status = "JobTemplateStatus",
    shortname = "jt",
    category = "jobsmith",
    derive = "PartialEq",
    doc = "A reusable batch/v1 JobSpec for JobRuns, ManagedJob jobs, JobFlow flows and DaemonJobs.",
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Ready condition: True when the template is usable","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"description":"Why the template is not usable","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.template) || has(self.jobTemplate)").message("a JobTemplate needs spec.template or spec.jobTemplate")
)]
pub struct JobTemplateSpec {
    /// The batch/v1 JobSpec fields, inline in `spec` (job-template-run shape). Nested objects are
    /// validated by the API server when a Job is created from the template.
    #[serde(flatten)]
    #[schemars(schema_with = "crate::crd::schema::flattened_job_spec")]
    pub job: JobSpec,
    /// A full batch/v1 JobSpec (job-deploy-operator shape); wins over the inline fields when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::schema::job_spec_object")]
    pub job_template: Option<JobSpec>,
    /// Fields a JobRun may override: any of `command`, `args`, `env` (default: all three).
    #[serde(default = "default_overridable")]
    #[schemars(length(max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub overridable: Vec<OverridableField>,
}

impl JobTemplateSpec {
    /// The JobSpec to use: `jobTemplate` when present, otherwise the inline fields.
    pub fn effective_job_spec(&self) -> &JobSpec {
        self.job_template.as_ref().unwrap_or(&self.job)
    }

    /// Whether a JobRun may override `field`.
    pub fn allows(&self, field: OverridableField) -> bool {
        self.overridable.contains(&field)
    }
}

/// A container field a JobRun may override.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OverridableField {
    /// The container's `command`.
    Command,
    /// The container's `args`.
    Args,
    /// The container's `env` (merged by name).
    Env,
}

fn default_overridable() -> Vec<OverridableField> {
    vec![
        OverridableField::Command,
        OverridableField::Args,
        OverridableField::Env,
    ]
}

/// Observed state of a JobTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateStatus {
    /// `Ready=True` when the template is valid and usable; `Ready=False` with a reason otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
