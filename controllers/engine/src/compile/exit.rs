//! Exit steps (`spec.onExit`, docs/lifecycle.md "Exit steps"), pure: the reserved names, and
//! the env an exit step's Job gets: the run's outcome before the exit steps.
//!
//! Decisions taken here:
//! - The exit steps of a ManagedJob are the group [`GROUP`] (step keys `onExit/<job>`, Job
//!   names `<managedjob>-onexit-<job>`); those of a JobFlow are flows like the others (keys
//!   and Job names as any flow), marked `onExit: true` in `status.flows[]`.
//! - [`RUN_PHASE_ENV`] is `Failed` when a step that is not an exit step failed (its Job failed,
//!   was lost, conflicted or was refused as invalid), else `Succeeded`. [`FAILED_STEPS_ENV`]
//!   lists the keys of those failed steps in plan order, comma-separated; steps that never ran
//!   (aborted, skipped) are not listed. Past [`FAILED_STEPS_MAX_BYTES`] the list is cut after
//!   the last whole key that fits and ends with `,...(+N more)` (N: the keys left out), so the
//!   value never exceeds 4 KiB. [`RUN_NAME_ENV`] is the run object's name.
//! - The values are derived from the outcomes of the other steps only, which are all terminal
//!   (and recorded) when an exit step starts: a manager that restarts between the create and
//!   the status write builds the same Job under the same name, which it finds and never
//!   creates again.
//! - The three variables are set on every container and init container of the Job's pod and
//!   replace a variable of the same name from the spec (the names are Jobsmith's).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::compile::Plan;
use crate::schedule::{Decision, RunPhase, StepPhase};

/// The ManagedJob group of the exit steps: step keys `onExit/<job>`, `status.groups[]` entry.
/// Not a DNS-1123 label, so no group of the spec can have this name.
pub const GROUP: &str = "onExit";

/// The part of a ManagedJob exit step's Job name in place of the group:
/// `<managedjob>-onexit-<job>`.
pub const JOB_NAME_PART: &str = "onexit";

/// The run's phase without the exit steps: `Succeeded` or `Failed`.
pub const RUN_PHASE_ENV: &str = "JOBSMITH_RUN_PHASE";

/// The keys of the failed steps (not exit steps), comma-separated, cut past 4 KiB.
pub const FAILED_STEPS_ENV: &str = "JOBSMITH_FAILED_STEPS";

/// The run object's name.
pub const RUN_NAME_ENV: &str = "JOBSMITH_RUN_NAME";

/// The most bytes of [`FAILED_STEPS_ENV`]'s value.
pub const FAILED_STEPS_MAX_BYTES: usize = 4096;

/// The outcome of a run's steps other than its exit steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeBeforeExit<'a> {
    /// `Failed` when one of them failed, else `Succeeded`.
    pub phase: RunPhase,
    /// The keys of those that failed, in plan order.
    pub failed: Vec<&'a str>,
}

/// The outcome of the steps that are not exit steps, from the scheduler's step phases
/// (indexed like `plan.steps`).
pub fn outcome_before_exit<'a>(
    plan: &'a Plan,
    phases: &[StepPhase],
    deadline_exceeded: bool,
) -> OutcomeBeforeExit<'a> {
    let failed: Vec<&str> = plan
        .steps
        .iter()
        .zip(phases)
        .filter(|(step, phase)| !step.exit && **phase == StepPhase::Failed)
        .map(|(step, _)| step.key.as_str())
        .collect();
    // Past the run's deadline the run fails even when no step did (the deadline aborted them).
    let phase = if failed.is_empty() && !deadline_exceeded {
        RunPhase::Succeeded
    } else {
        RunPhase::Failed
    };
    OutcomeBeforeExit { phase, failed }
}

/// `keys` comma-separated, at most `max_bytes` long: past it, the keys that fit and
/// `,...(+N more)` (`...(+N more)` when not even the first key fits).
pub fn failed_steps_value(keys: &[&str], max_bytes: usize) -> String {
    let full: usize = keys.iter().map(|k| k.len()).sum::<usize>() + keys.len().saturating_sub(1);
    if full <= max_bytes {
        return keys.join(",");
    }
    let suffix = |kept: usize| {
        let more = keys.len() - kept;
        if kept == 0 {
            format!("...(+{more} more)")
        } else {
            format!(",...(+{more} more)")
        }
    };
    // The most keys whose list plus the suffix for the rest fits.
    let mut kept = 0;
    let mut used = 0;
    for (i, key) in keys.iter().enumerate() {
        let with = used + usize::from(i > 0) + key.len();
        if with + suffix(i + 1).len() > max_bytes {
            break;
        }
        used = with;
        kept = i + 1;
    }
    let mut value = keys[..kept].join(",");
    value.push_str(&suffix(kept));
    value
}

/// The env of an exit step's Job: the outcome of the other steps (the scheduler's decision:
/// its step phases, indexed like `plan.steps`, and whether the run's deadline passed) and the
/// run's name.
pub fn exit_env(plan: &Plan, decision: &Decision, run_name: &str) -> Vec<EnvVar> {
    let outcome = outcome_before_exit(plan, &decision.steps, decision.deadline_exceeded);
    let var = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    };
    vec![
        var(RUN_PHASE_ENV, outcome.phase.as_str().to_owned()),
        var(
            FAILED_STEPS_ENV,
            failed_steps_value(&outcome.failed, FAILED_STEPS_MAX_BYTES),
        ),
        var(RUN_NAME_ENV, run_name.to_owned()),
    ]
}

/// Sets `env` on every container and init container of the Job's pod, replacing variables of
/// the same name.
pub fn add_env(job: &mut Job, env: &[EnvVar]) {
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    let init = pod.init_containers.iter_mut().flatten();
    for container in pod.containers.iter_mut().chain(init) {
        set_env(container, env);
    }
}

fn set_env(container: &mut Container, env: &[EnvVar]) {
    let vars = container.env.get_or_insert_with(Vec::new);
    vars.retain(|v| !env.iter().any(|e| e.name == v.name));
    vars.extend(env.iter().cloned());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_list_is_written_whole() {
        assert_eq!(failed_steps_value(&[], 4096), "");
        assert_eq!(failed_steps_value(&["a/b", "c"], 4096), "a/b,c");
        assert_eq!(failed_steps_value(&["a/b", "c"], 5), "a/b,c");
    }

    #[test]
    fn a_long_list_is_cut_after_whole_keys_with_a_count() {
        assert_eq!(
            failed_steps_value(&["aaaa", "bbbb", "cccc"], 13),
            "...(+3 more)"
        );
        assert_eq!(
            failed_steps_value(&["aaaa", "bbbb", "cccc", "dddd", "eeee"], 18),
            "aaaa,...(+4 more)"
        );
        let keys: Vec<String> = (0..2000).map(|i| format!("group-{i}/job-{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let value = failed_steps_value(&refs, FAILED_STEPS_MAX_BYTES);
        assert!(value.len() <= FAILED_STEPS_MAX_BYTES, "{}", value.len());
        assert!(value.starts_with("group-0/job-0,group-1/job-1,"));
        let (listed, more) = value.rsplit_once(",...(+").unwrap();
        let count: usize = more.trim_end_matches(" more)").parse().unwrap();
        assert_eq!(listed.split(',').count() + count, 2000);
    }

    proptest! {
        /// Never past the limit; the listed keys are a prefix of the input, and with the count
        /// they account for every key.
        #[test]
        fn the_value_fits_and_accounts_for_every_key(
            keys in proptest::collection::vec("[a-z]{1,12}(/[a-z]{1,12})?", 0..400),
            max in 20usize..5000,
        ) {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let value = failed_steps_value(&refs, max);
            prop_assert!(value.len() <= max);
            let (listed, count) = match value.rsplit_once("...(+") {
                Some((listed, more)) => (
                    listed.trim_end_matches(','),
                    more.trim_end_matches(" more)").parse::<usize>().unwrap(),
                ),
                None => (value.as_str(), 0),
            };
            let listed: Vec<&str> = if listed.is_empty() { vec![] } else { listed.split(',').collect() };
            prop_assert_eq!(listed.len() + count, refs.len());
            prop_assert_eq!(&listed[..], &refs[..listed.len()]);
        }
    }
}
