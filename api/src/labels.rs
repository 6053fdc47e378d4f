//! Label and annotation keys Jobsmith puts on the Jobs it creates (and their pod templates), and
//! the GitOps tracking metadata that is never copied from a parent to its children (SPEC §1).

/// Standard `managed-by` label key; every child Job carries it with [`MANAGED_BY_VALUE`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`] on every child Job; the manager's shared Job watch selects on it.
pub const MANAGED_BY_VALUE: &str = "jobsmith";
/// Kind of the parent object (`ManagedJob`, `JobFlow`, `DaemonJob`, `JobRun`).
pub const OWNER_KIND: &str = "jobsmith.dev/owner-kind";
/// Name of the parent object (shortened like a name when longer than 63 characters).
pub const OWNER_NAME: &str = "jobsmith.dev/owner-name";
/// ManagedJob step label: the group name.
pub const GROUP: &str = "jobsmith.dev/group";
/// ManagedJob step label: the job name inside its group.
pub const JOB: &str = "jobsmith.dev/job";
/// JobFlow step label: the flow name.
pub const FLOW: &str = "jobsmith.dev/flow";
/// DaemonJob step label: the node name.
pub const NODE: &str = "jobsmith.dev/node";
/// JobRun step label: the JobTemplate the Job was made from.
pub const TEMPLATE: &str = "jobsmith.dev/template";
/// Annotation on a Job made from a JobTemplate: the template's `metadata.generation` used.
pub const TEMPLATE_GENERATION: &str = "jobsmith.dev/template-generation";
/// Annotation on a child Job: the `ttlSecondsAfterFinished` its spec asked for. The Job is
/// created without it, and the manager deletes the finished Job that long after its outcome is
/// recorded (a TTL of the Job's own could delete it before: docs/guarantees.md).
pub const TTL_AFTER_RECORDED: &str = "jobsmith.dev/ttl-seconds-after-finished";

/// Annotation on a run object asking for a retry in place (an RFC 3339 time, like
/// `kubectl rollout restart`'s `restartedAt`). Each value is acted on once and recorded in
/// `status.retries` (docs/lifecycle.md "Retry in place").
pub const RETRY_REQUESTED_AT: &str = "jobsmith.dev/retry-requested-at";
/// Annotation beside [`RETRY_REQUESTED_AT`]: the steps to retry (comma-separated step keys),
/// with what depends on them; absent = every failed step.
pub const RETRY_STEPS: &str = "jobsmith.dev/retry-steps";
/// Label on a child Job and its pod template of attempt 2 and later: the attempt number
/// (attempt 1 carries none, as before retries existed).
pub const ATTEMPT: &str = "jobsmith.dev/attempt";

/// Sharding label of a run object (docs/scaling.md): a manager started with
/// `--watch-label-selector` on it reconciles only the run objects it selects. Every child Job
/// carries the run object's value (or none, like its run object), so the manager's Job watch,
/// which adds the same selector, follows the shard.
pub const SHARD_KEY: &str = "sharding.jobsmith.dev/key";

/// Exact label/annotation keys of GitOps tools that are never copied to child Jobs.
pub const GITOPS_TRACKING_KEYS: &[&str] = &[
    "app.kubernetes.io/instance",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Key prefixes of GitOps tools whose labels/annotations are never copied to child Jobs.
pub const GITOPS_TRACKING_PREFIXES: &[&str] = &[
    "argocd.argoproj.io/",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
    "meta.helm.sh/",
];

/// Whether a label or annotation key is GitOps tracking metadata (SPEC §1): such keys stay on
/// the user's object and are never copied to the Jobs Jobsmith creates.
pub fn is_gitops_tracking_key(key: &str) -> bool {
    GITOPS_TRACKING_KEYS.contains(&key)
        || GITOPS_TRACKING_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitops_keys_are_recognised() {
        assert!(is_gitops_tracking_key("app.kubernetes.io/instance"));
        assert!(is_gitops_tracking_key("argocd.argoproj.io/tracking-id"));
        assert!(is_gitops_tracking_key("kustomize.toolkit.fluxcd.io/name"));
        assert!(is_gitops_tracking_key("helm.toolkit.fluxcd.io/namespace"));
        assert!(is_gitops_tracking_key("meta.helm.sh/release-name"));
        assert!(is_gitops_tracking_key(
            "kubectl.kubernetes.io/last-applied-configuration"
        ));
        assert!(!is_gitops_tracking_key("app.kubernetes.io/name"));
        assert!(!is_gitops_tracking_key("team"));
        assert!(!is_gitops_tracking_key(MANAGED_BY));
    }
}
