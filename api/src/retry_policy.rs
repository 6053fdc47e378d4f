//! `retryPolicy`: how often a step's Job retries its pods and which pod failures count
//! (docs/lifecycle.md "Retry policies"). Set on a run (ManagedJob, JobFlow, DaemonJob), a
//! ManagedJob group and job, and a JobFlow flow; the most specific level that sets a field wins.
//! The engine maps it onto the Job's `backoffLimit` and `podFailurePolicy`, so Kubernetes' Job
//! controller enforces it.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most exit codes in `onExitCodes` or `ignoreExitCodes` (Kubernetes' limit per rule).
pub const MAX_EXIT_CODES: usize = 255;
/// Most entries in `onPodConditions` (Kubernetes' limit of patterns per rule).
pub const MAX_POD_CONDITION_RULES: usize = 20;
/// Highest `limit` (as `spec.retries`).
pub const MAX_RETRY_LIMIT: i32 = 100;

/// When a step's pods are retried. Every field is optional; a level that leaves a field unset
/// takes it from the less specific level (job, then group, then run).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Pod failures the Job tolerates before it fails (its `backoffLimit`), 0 to 100. On a
    /// ManagedJob `spec.retries` is the run-level limit when no `retryPolicy` sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_RETRY_LIMIT))]
    pub limit: Option<i32>,
    /// Retry only for these exit codes (1-255): a pod whose container fails with any other
    /// nonzero code fails the Job at once (reason `PodFailurePolicy`). Unset: every code is
    /// retried. An empty list clears what a less specific level set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_EXIT_CODES), inner(range(min = 1, max = 255)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub on_exit_codes: Option<Vec<i32>>,
    /// Exit codes (1-255) that do not count: a pod failing with one of them is replaced
    /// without using up the `limit`. A code may not also be in `onExitCodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_EXIT_CODES), inner(range(min = 1, max = 255)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub ignore_exit_codes: Option<Vec<i32>>,
    /// What a failed pod with one of these conditions does (for example `DisruptionTarget`:
    /// evicted or preempted). Checked before the exit codes; when a pod has several listed
    /// conditions, the action of the first listed one wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POD_CONDITION_RULES))]
    pub on_pod_conditions: Option<Vec<PodConditionRule>>,
}

impl RetryPolicy {
    /// Whether a pod-failure rule field is set (even to an empty list, which clears a less
    /// specific level's rules).
    pub fn sets_rules(&self) -> bool {
        self.on_exit_codes.is_some()
            || self.ignore_exit_codes.is_some()
            || self.on_pod_conditions.is_some()
    }

    /// Whether the policy has at least one pod-failure rule (a non-empty list).
    pub fn has_rules(&self) -> bool {
        [&self.on_exit_codes, &self.ignore_exit_codes]
            .iter()
            .any(|codes| codes.as_ref().is_some_and(|c| !c.is_empty()))
            || self
                .on_pod_conditions
                .as_ref()
                .is_some_and(|c| !c.is_empty())
    }
}

/// A pod condition and what a failed pod that has it does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodConditionRule {
    /// The pod condition type (`DisruptionTarget`, or a qualified name of your own).
    #[serde(rename = "type")]
    #[schemars(
        length(min = 1, max = 316),
        pattern(
            "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
        )
    )]
    pub type_: String,
    /// The condition's status that matches: `True` (default), `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "PodConditionStatus::is_default")]
    pub status: PodConditionStatus,
    /// `Ignore` (default: the pod is replaced and not counted), `Count` (counted against
    /// `limit`, as without a rule) or `FailJob` (the Job fails at once).
    #[serde(default, skip_serializing_if = "RetryAction::is_default")]
    pub action: RetryAction,
}

/// The status of a pod condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum PodConditionStatus {
    /// The condition holds.
    #[default]
    True,
    /// The condition does not hold.
    False,
    /// Unknown.
    Unknown,
}

impl PodConditionStatus {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The value as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// What a matched pod failure does to the Job (a `podFailurePolicy` action).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum RetryAction {
    /// The failure is not counted; the Job replaces the pod.
    #[default]
    Ignore,
    /// The failure counts against `limit` (the Job's default).
    Count,
    /// The Job fails at once.
    FailJob,
}

impl RetryAction {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The `podFailurePolicy` action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ignore => "Ignore",
            Self::Count => "Count",
            Self::FailJob => "FailJob",
        }
    }
}
