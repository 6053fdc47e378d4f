//! Step outputs (docs/integrations.md "Step outputs"): a step declares small results read from
//! its container's termination message; dependents take them into their env through
//! `valueFrom.stepOutput`; the values are kept in `status.outputs`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most bytes of the values of one step (the termination message itself is at most 4 KiB).
pub const MAX_OUTPUT_BYTES_PER_STEP: usize = 4096;
/// Most bytes of the values of all steps of a run kept in `status.outputs`; a step whose values
/// would go beyond it gets its outputs recorded as missing (the object stays far below etcd's
/// limit at any run size: docs/scaling.md).
pub const MAX_OUTPUT_BYTES_PER_RUN: usize = 32 * 1024;
/// Most steps of one run that may declare outputs (bounds `status.outputs`).
pub const MAX_OUTPUT_STEPS: usize = 100;
/// Most outputs one step may declare.
pub const MAX_OUTPUTS_PER_STEP: usize = 16;
/// Longest reason kept for an output that could not be read.
pub const MAX_MISSING_REASON: usize = 200;

/// Where an output's value comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum OutputSource {
    /// The termination message of the step's succeeded pod (`terminationMessagePath`, by
    /// default `/dev/termination-log`, at most 4 KiB).
    #[default]
    #[serde(rename = "terminationMessage")]
    TerminationMessage,
}

/// An output a step declares: a named value read once, when its Job succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepOutput {
    /// The output's name, unique in the step (what `stepOutput.name` refers to).
    #[schemars(
        length(min = 1, max = 63),
        pattern("^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Where the value comes from: `terminationMessage` (the only source today).
    #[serde(default)]
    pub from: OutputSource,
    /// When set, the message is a JSON object and the value is this top-level key (a string as
    /// is, any other JSON value as its compact JSON text). Unset: the whole message, with
    /// surrounding whitespace trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub json_key: Option<String>,
    /// The container whose termination message is read (default: the pod's first container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub container: Option<String>,
}

/// A reference to another step's output (`valueFrom.stepOutput`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepOutputRef {
    /// The producing step: ManagedJob a job of the same group, `group/job` or the full Job
    /// name; JobFlow a flow name. It must be a dependency (direct or transitive) of the step
    /// that reads it.
    #[schemars(length(min = 1, max = 127))]
    pub step: String,
    /// The output's name, as the producing step declares it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// An environment variable as in a container (`core/v1` EnvVar) whose `valueFrom` may also be
/// `stepOutput`: the value of another step's output, set as a literal value when the step's
/// Job is created.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputEnvVar {
    /// Name of the environment variable.
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from: any `core/v1` EnvVarSource, or `stepOutput`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<OutputEnvVarSource>,
}

/// `core/v1` EnvVarSource plus `stepOutput`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputEnvVarSource {
    /// The value of another step's output (Jobsmith; set as a literal value in the Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_output: Option<StepOutputRef>,
    /// The `core/v1` sources (`configMapKeyRef`, `fieldRef`, `resourceFieldRef`,
    /// `secretKeyRef`, ...), passed to the container as written.
    #[serde(flatten)]
    pub source: EnvVarSource,
}

impl OutputEnvVar {
    /// The output this variable takes its value from, if any.
    pub fn step_output(&self) -> Option<&StepOutputRef> {
        self.value_from.as_ref()?.step_output.as_ref()
    }

    /// The container's EnvVar: a `stepOutput` variable becomes a name without value (the run
    /// mechanism sets the value when the Job is created).
    pub fn to_env_var(&self) -> EnvVar {
        if self.step_output().is_some() {
            return EnvVar {
                name: self.name.clone(),
                value: None,
                value_from: None,
            };
        }
        EnvVar {
            name: self.name.clone(),
            value: self.value.clone(),
            value_from: self.value_from.as_ref().map(|v| v.source.clone()),
        }
    }
}

impl From<EnvVar> for OutputEnvVar {
    fn from(env: EnvVar) -> Self {
        Self {
            name: env.name,
            value: env.value,
            value_from: env.value_from.map(|source| OutputEnvVarSource {
                step_output: None,
                source,
            }),
        }
    }
}

impl PartialEq<EnvVar> for OutputEnvVar {
    fn eq(&self, other: &EnvVar) -> bool {
        self.step_output().is_none() && self.to_env_var() == *other
    }
}

/// The outputs read of one step (`status.outputs[]`), recorded once, when its Job succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepOutputs {
    /// The step's key (`group/job`, the flow name).
    pub step: String,
    /// The values, by output name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// The outputs that could not be read, by name, with why (no termination message, not
    /// JSON, no such key, over the size bound, the pod was gone). A step that reads one of
    /// them fails with reason `OutputMissing`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing: BTreeMap<String, String>,
}

impl StepOutputs {
    /// Bytes of the values, as bounded by [`MAX_OUTPUT_BYTES_PER_STEP`] and
    /// [`MAX_OUTPUT_BYTES_PER_RUN`].
    pub fn value_bytes(&self) -> usize {
        self.values.values().map(String::len).sum()
    }
}
