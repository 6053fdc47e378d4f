//! Retry policies (docs/lifecycle.md "Retry policies"): `retryPolicy` on a run, a ManagedJob
//! group and job, a JobFlow flow, merged and mapped onto the Job's `backoffLimit` and
//! `podFailurePolicy`, so the Job controller itself enforces them.
//!
//! Decisions taken here:
//! - Levels merge field by field, the most specific level that sets a field wins ([`merge`]).
//!   An empty list is a setting: it clears the rules of a less specific level.
//! - The mapping ([`pod_failure_policy`]) orders the rules as Kubernetes reads them (first match
//!   wins): the pod conditions first (a pod that was evicted is judged by that, not by the exit
//!   code its killed container reported), one rule per action in the order of the action's first
//!   entry; then `ignoreExitCodes` (`Ignore`, operator `In`); then `onExitCodes` (`FailJob`,
//!   operator `NotIn`: every other nonzero code fails the Job at once, the listed ones are
//!   counted against the limit). Values are sorted, as the API server requires.
//! - Against a JobSpec written by the user (a JobFlow flow's `jobTemplate`, a JobTemplate, a
//!   DaemonJob's inline JobSpec) [`apply_to_job_spec`] decides, separately for the limit and for
//!   the rules: the specific policy (a flow's own `retryPolicy`) wins, then the JobSpec's own
//!   `backoffLimit`/`podFailurePolicy`, then the general policy (the run's `retryPolicy`).
//! - Rules need `restartPolicy: Never` (the API server refuses a `podFailurePolicy` with
//!   `OnFailure`, and with `OnFailure` a failing container restarts in place, so its exit code
//!   never fails a pod): [`check_restart_policy`] names the conflict instead of letting the
//!   API server refuse the Job.

use jobsmith_api::retry_policy::{MAX_EXIT_CODES, MAX_RETRY_LIMIT};
use jobsmith_api::{PodConditionRule, RetryAction, RetryPolicy};
use k8s_openapi::api::batch::v1::{
    JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use thiserror::Error;

/// A retry policy that cannot be used. `Display` is the precise message (`InvalidSpec`).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RetryPolicyError {
    /// A code in both lists: retried and ignored at once.
    #[error("{at}: exit code {code} is in both onExitCodes and ignoreExitCodes")]
    CodeInBothLists {
        /// Where the (merged) policy applies: `spec.retryPolicy`, `job "g/j"`, ...
        at: String,
        /// The code.
        code: i32,
    },
    /// A code outside 1-255 (0 is success and never fails a pod).
    #[error("{at}: {list} lists exit code {code}; exit codes are 1 to 255 (0 is success)")]
    CodeOutOfRange {
        /// Where.
        at: String,
        /// `onExitCodes` or `ignoreExitCodes`.
        list: &'static str,
        /// The code.
        code: i32,
    },
    /// More codes than Kubernetes accepts in one rule.
    #[error("{at}: {list} lists {count} exit codes (at most 255)")]
    TooManyCodes {
        /// Where.
        at: String,
        /// `onExitCodes` or `ignoreExitCodes`.
        list: &'static str,
        /// How many.
        count: usize,
    },
    /// A code listed twice in one list.
    #[error("{at}: {list} lists exit code {code} twice")]
    DuplicateCode {
        /// Where.
        at: String,
        /// `onExitCodes` or `ignoreExitCodes`.
        list: &'static str,
        /// The code.
        code: i32,
    },
    /// One condition (type and status) listed twice.
    #[error("{at}: onPodConditions lists {type_}={status} twice")]
    DuplicateCondition {
        /// Where.
        at: String,
        /// The condition type.
        type_: String,
        /// Its status.
        status: &'static str,
    },
    /// A limit outside 0-100.
    #[error("{at}: limit {limit} is out of range 0 to 100")]
    LimitOutOfRange {
        /// Where.
        at: String,
        /// The limit.
        limit: i32,
    },
    /// Rules with a pod `restartPolicy` other than `Never`.
    #[error(
        "{at}: retryPolicy rules (onExitCodes, ignoreExitCodes, onPodConditions) need restartPolicy Never, but {set_by} sets {policy}"
    )]
    NeedsRestartNever {
        /// Where.
        at: String,
        /// Who set the restart policy (`params`, `the JobSpec`).
        set_by: &'static str,
        /// The restart policy set.
        policy: String,
    },
}

/// The policy of the levels given most specific first, field by field (an unset field is taken
/// from the next level).
pub fn merge<'a>(levels: impl IntoIterator<Item = Option<&'a RetryPolicy>>) -> RetryPolicy {
    let mut merged = RetryPolicy::default();
    for level in levels.into_iter().flatten() {
        if merged.limit.is_none() {
            merged.limit = level.limit;
        }
        if merged.on_exit_codes.is_none() {
            merged.on_exit_codes.clone_from(&level.on_exit_codes);
        }
        if merged.ignore_exit_codes.is_none() {
            merged
                .ignore_exit_codes
                .clone_from(&level.ignore_exit_codes);
        }
        if merged.on_pod_conditions.is_none() {
            merged
                .on_pod_conditions
                .clone_from(&level.on_pod_conditions);
        }
    }
    merged
}

/// Checks what the schema cannot (a code in both lists, a condition twice) and, for a caller
/// that skipped the schema, its bounds. `at` names where the policy applies.
pub fn validate(policy: &RetryPolicy, at: &str) -> Result<(), RetryPolicyError> {
    if let Some(limit) = policy.limit.filter(|l| !(0..=MAX_RETRY_LIMIT).contains(l)) {
        return Err(RetryPolicyError::LimitOutOfRange {
            at: at.to_owned(),
            limit,
        });
    }
    let on = codes(policy.on_exit_codes.as_deref(), "onExitCodes", at)?;
    let ignored = codes(policy.ignore_exit_codes.as_deref(), "ignoreExitCodes", at)?;
    if let Some(code) = on.iter().find(|c| ignored.binary_search(*c).is_ok()) {
        return Err(RetryPolicyError::CodeInBothLists {
            at: at.to_owned(),
            code: *code,
        });
    }
    let mut seen = Vec::new();
    for rule in policy.on_pod_conditions.iter().flatten() {
        let key = (rule.type_.as_str(), rule.status);
        if seen.contains(&key) {
            return Err(RetryPolicyError::DuplicateCondition {
                at: at.to_owned(),
                type_: rule.type_.clone(),
                status: rule.status.as_str(),
            });
        }
        seen.push(key);
    }
    Ok(())
}

/// The codes of one list, checked and sorted.
fn codes(list: Option<&[i32]>, name: &'static str, at: &str) -> Result<Vec<i32>, RetryPolicyError> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_EXIT_CODES {
        return Err(RetryPolicyError::TooManyCodes {
            at: at.to_owned(),
            list: name,
            count: list.len(),
        });
    }
    if let Some(code) = list.iter().find(|c| !(1..=255).contains(*c)) {
        return Err(RetryPolicyError::CodeOutOfRange {
            at: at.to_owned(),
            list: name,
            code: *code,
        });
    }
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(RetryPolicyError::DuplicateCode {
            at: at.to_owned(),
            list: name,
            code: pair[0],
        });
    }
    Ok(sorted)
}

/// The Job's `podFailurePolicy` for the policy's rules (see the module doc for the order), or
/// `None` when it has none.
pub fn pod_failure_policy(policy: &RetryPolicy) -> Option<PodFailurePolicy> {
    let mut rules = condition_rules(policy.on_pod_conditions.as_deref().unwrap_or_default());
    let exit_rules = [
        (
            policy.ignore_exit_codes.as_deref(),
            RetryAction::Ignore,
            "In",
        ),
        (
            policy.on_exit_codes.as_deref(),
            RetryAction::FailJob,
            "NotIn",
        ),
    ];
    for (codes, action, operator) in exit_rules {
        let Some(codes) = codes.filter(|c| !c.is_empty()) else {
            continue;
        };
        let mut values = codes.to_vec();
        values.sort_unstable();
        values.dedup();
        rules.push(PodFailurePolicyRule {
            action: action.as_str().to_owned(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: operator.to_owned(),
                values,
            }),
            on_pod_conditions: None,
        });
    }
    (!rules.is_empty()).then_some(PodFailurePolicy { rules })
}

/// One rule per action, in the order of each action's first entry.
fn condition_rules(entries: &[PodConditionRule]) -> Vec<PodFailurePolicyRule> {
    let mut rules: Vec<PodFailurePolicyRule> = Vec::new();
    for entry in entries {
        let pattern = PodFailurePolicyOnPodConditionsPattern {
            type_: entry.type_.clone(),
            status: Some(entry.status.as_str().to_owned()),
        };
        let action = entry.action.as_str();
        if let Some(rule) = rules.iter_mut().find(|r| r.action == action) {
            rule.on_pod_conditions
                .get_or_insert_with(Vec::new)
                .push(pattern);
            continue;
        }
        rules.push(PodFailurePolicyRule {
            action: action.to_owned(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![pattern]),
        });
    }
    rules
}

/// Applies the policies to a JobSpec the user wrote (see the module doc): for the limit and for
/// the rules separately, `specific` wins, then the JobSpec's own `backoffLimit` /
/// `podFailurePolicy`, then `general`. Returns whether the Job got rules from a policy.
pub fn apply_to_job_spec(
    spec: &mut JobSpec,
    specific: Option<&RetryPolicy>,
    general: Option<&RetryPolicy>,
) -> bool {
    let merged = merge([specific, general]);
    let specific_limit = specific.and_then(|p| p.limit);
    if let Some(limit) = specific_limit.or(spec.backoff_limit).or(merged.limit) {
        spec.backoff_limit = Some(limit);
    }
    let rules_from = if specific.is_some_and(RetryPolicy::sets_rules) {
        Some(&merged)
    } else if spec.pod_failure_policy.is_some() {
        None
    } else {
        general.filter(|p| p.sets_rules())
    };
    match rules_from {
        Some(policy) => {
            spec.pod_failure_policy = pod_failure_policy(policy);
            spec.pod_failure_policy.is_some()
        }
        None => false,
    }
}

/// Refuses a Job with a `podFailurePolicy` whose pods restart in place (`OnFailure`): the API
/// server would refuse it with a less helpful message.
pub fn check_restart_policy(spec: &JobSpec, at: &str) -> Result<(), RetryPolicyError> {
    if spec.pod_failure_policy.is_none() {
        return Ok(());
    }
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.restart_policy.as_deref())
        .unwrap_or("Always");
    if policy == "Never" {
        return Ok(());
    }
    Err(RetryPolicyError::NeedsRestartNever {
        at: at.to_owned(),
        set_by: "the JobSpec",
        policy: policy.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use jobsmith_api::PodConditionStatus;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
    use proptest::prelude::*;

    fn policy(limit: Option<i32>, on: Option<Vec<i32>>, ignore: Option<Vec<i32>>) -> RetryPolicy {
        RetryPolicy {
            limit,
            on_exit_codes: on,
            ignore_exit_codes: ignore,
            on_pod_conditions: None,
        }
    }

    fn condition(type_: &str, action: RetryAction) -> PodConditionRule {
        PodConditionRule {
            type_: type_.to_owned(),
            status: PodConditionStatus::True,
            action,
        }
    }

    fn spec_with_restart(policy: &str) -> JobSpec {
        JobSpec {
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some(policy.to_owned()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }
    }

    #[test]
    fn the_most_specific_level_wins_field_by_field() {
        let job = policy(None, Some(vec![1]), None);
        let group = policy(Some(3), Some(vec![2]), Some(vec![42]));
        let run = policy(Some(5), None, Some(vec![]));
        let merged = merge([Some(&job), Some(&group), Some(&run)]);
        assert_eq!(merged, policy(Some(3), Some(vec![1]), Some(vec![42])));
        // An empty list is a setting: it clears what a less specific level set.
        let cleared = merge([Some(&policy(None, None, Some(vec![]))), Some(&group)]);
        assert_eq!(cleared.ignore_exit_codes, Some(vec![]));
        assert_eq!(merge([None, None]), RetryPolicy::default());
    }

    #[test]
    fn on_exit_codes_fail_the_job_for_every_other_code_and_ignore_comes_first() {
        let p = RetryPolicy {
            on_pod_conditions: Some(vec![condition("DisruptionTarget", RetryAction::Ignore)]),
            ..policy(Some(2), Some(vec![3, 1]), Some(vec![42]))
        };
        let rules = pod_failure_policy(&p).unwrap().rules;
        let summary: Vec<String> = rules
            .iter()
            .map(|r| match &r.on_exit_codes {
                Some(c) => format!("{} {} {:?}", r.action, c.operator, c.values),
                None => format!("{} conditions", r.action),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "Ignore conditions",
                "Ignore In [42]",
                "FailJob NotIn [1, 3]"
            ]
        );
        let patterns = rules[0].on_pod_conditions.as_ref().unwrap();
        assert_eq!(patterns[0].type_, "DisruptionTarget");
        assert_eq!(patterns[0].status.as_deref(), Some("True"));
    }

    #[test]
    fn conditions_make_one_rule_per_action_in_first_appearance_order() {
        let p = RetryPolicy {
            on_pod_conditions: Some(vec![
                condition("A", RetryAction::FailJob),
                condition("B", RetryAction::Ignore),
                condition("C", RetryAction::FailJob),
                condition("D", RetryAction::Count),
            ]),
            ..RetryPolicy::default()
        };
        let rules = pod_failure_policy(&p).unwrap().rules;
        let actions: Vec<&str> = rules.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["FailJob", "Ignore", "Count"]);
        assert_eq!(rules[0].on_pod_conditions.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn no_rules_no_pod_failure_policy() {
        assert_eq!(pod_failure_policy(&policy(Some(4), None, None)), None);
        assert_eq!(
            pod_failure_policy(&policy(None, Some(vec![]), Some(vec![]))),
            None
        );
    }

    #[test]
    fn contradictions_are_named() {
        let both = policy(None, Some(vec![1, 42]), Some(vec![42]));
        assert_eq!(
            validate(&both, "job \"g/j\"").unwrap_err().to_string(),
            "job \"g/j\": exit code 42 is in both onExitCodes and ignoreExitCodes"
        );
        let zero = policy(None, None, Some(vec![0]));
        assert_eq!(
            validate(&zero, "spec.retryPolicy").unwrap_err().to_string(),
            "spec.retryPolicy: ignoreExitCodes lists exit code 0; exit codes are 1 to 255 (0 is success)"
        );
        let many = policy(None, Some((1..=256).map(|c| c % 255 + 1).collect()), None);
        assert!(matches!(
            validate(&many, "x"),
            Err(RetryPolicyError::TooManyCodes { count: 256, .. })
        ));
        let twice = policy(None, Some(vec![7, 1, 7]), None);
        assert!(matches!(
            validate(&twice, "x"),
            Err(RetryPolicyError::DuplicateCode { code: 7, .. })
        ));
        let limit = policy(Some(-1), None, None);
        assert!(matches!(
            validate(&limit, "x"),
            Err(RetryPolicyError::LimitOutOfRange { limit: -1, .. })
        ));
        let conditions = RetryPolicy {
            on_pod_conditions: Some(vec![
                condition("DisruptionTarget", RetryAction::Ignore),
                condition("DisruptionTarget", RetryAction::FailJob),
            ]),
            ..RetryPolicy::default()
        };
        assert!(matches!(
            validate(&conditions, "x"),
            Err(RetryPolicyError::DuplicateCondition { .. })
        ));
        assert_eq!(
            validate(&policy(Some(0), Some(vec![255]), Some(vec![1])), "x"),
            Ok(())
        );
    }

    #[test]
    fn the_flow_policy_wins_over_the_job_spec_which_wins_over_the_run_policy() {
        let run = policy(Some(5), None, Some(vec![42]));
        // The JobSpec's own values win over the run's policy.
        let mut spec = JobSpec {
            backoff_limit: Some(1),
            pod_failure_policy: pod_failure_policy(&policy(None, Some(vec![9]), None)),
            ..JobSpec::default()
        };
        let own = spec.pod_failure_policy.clone();
        assert!(!apply_to_job_spec(&mut spec, None, Some(&run)));
        assert_eq!(spec.backoff_limit, Some(1));
        assert_eq!(spec.pod_failure_policy, own);
        // The run's policy fills what the JobSpec leaves unset.
        let mut bare = JobSpec::default();
        assert!(apply_to_job_spec(&mut bare, None, Some(&run)));
        assert_eq!(bare.backoff_limit, Some(5));
        assert_eq!(
            bare.pod_failure_policy,
            pod_failure_policy(&policy(None, None, Some(vec![42])))
        );
        // A flow's policy wins over both, field by field (its unset fields from the run's).
        let flow = policy(Some(0), Some(vec![1]), None);
        assert!(apply_to_job_spec(&mut spec, Some(&flow), Some(&run)));
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(
            spec.pod_failure_policy,
            pod_failure_policy(&policy(None, Some(vec![1]), Some(vec![42])))
        );
        // A flow policy with only a limit leaves the JobSpec's rules alone.
        let mut kept = JobSpec {
            pod_failure_policy: own.clone(),
            ..JobSpec::default()
        };
        apply_to_job_spec(&mut kept, Some(&policy(Some(3), None, None)), Some(&run));
        assert_eq!(
            (kept.backoff_limit, kept.pod_failure_policy),
            (Some(3), own)
        );
    }

    #[test]
    fn rules_need_restart_policy_never() {
        let mut spec = spec_with_restart("OnFailure");
        assert_eq!(check_restart_policy(&spec, "x"), Ok(()));
        spec.pod_failure_policy = pod_failure_policy(&policy(None, Some(vec![1]), None));
        assert_eq!(
            check_restart_policy(&spec, "node \"n\"")
                .unwrap_err()
                .to_string(),
            "node \"n\": retryPolicy rules (onExitCodes, ignoreExitCodes, onPodConditions) need restartPolicy Never, but the JobSpec sets OnFailure"
        );
        spec.template.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        assert_eq!(check_restart_policy(&spec, "x"), Ok(()));
    }

    fn codes_strategy() -> impl Strategy<Value = Option<Vec<i32>>> {
        proptest::option::of(proptest::collection::btree_set(1..=255i32, 0..6))
            .prop_map(|s| s.map(|s| s.into_iter().collect()))
    }

    proptest! {
        /// Whatever passes validation maps onto rules the API server accepts: at most 20
        /// rules, sorted unique nonzero values, one of the two selectors per rule; and a code
        /// is never both ignored and retried.
        #[test]
        fn valid_policies_map_onto_acceptable_rules(
            on in codes_strategy(),
            ignore in codes_strategy(),
            limit in proptest::option::of(0..=100i32),
        ) {
            let p = policy(limit, on, ignore);
            prop_assume!(validate(&p, "x").is_ok());
            let Some(pfp) = pod_failure_policy(&p) else {
                prop_assert!(!p.has_rules());
                return Ok(());
            };
            prop_assert!(p.has_rules());
            prop_assert!(pfp.rules.len() <= 20);
            for rule in &pfp.rules {
                prop_assert!(rule.on_exit_codes.is_some() != rule.on_pod_conditions.is_some());
                if let Some(codes) = &rule.on_exit_codes {
                    prop_assert!(!codes.values.is_empty() && codes.values.len() <= 255);
                    prop_assert!(codes.values.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(codes.values.iter().all(|c| *c != 0));
                }
            }
        }
    }
}
