//! kstatus conditions (SPEC §1 "Status contract"), pure: the current time is a parameter.
//!
//! Conditions are keyed by `type`. Writing a condition keeps its `lastTransitionTime` unless
//! its `status` flips, so a status write that changes nothing else does not look like a change
//! (and does not start a reconcile loop). Reason and message are always refreshed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types and reasons are the API crate's (re-exported under their old paths).
pub use jobsmith_api::{condition_types as types, reasons};

use crate::schedule::RunPhase;

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl ConditionStatus {
    /// The string written to `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// A condition we want to be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    /// The condition type (see [`jobsmith_api::condition_types`]).
    pub type_: String,
    /// Its status.
    pub status: ConditionStatus,
    /// A CamelCase reason (see [`jobsmith_api::reasons`]).
    pub reason: String,
    /// A human-readable message.
    pub message: String,
}

impl DesiredCondition {
    /// Shorthand constructor.
    pub fn new(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// Returns `existing` with one condition set: replaced in place when its type exists (keeping
/// `lastTransitionTime` unless the status changes), appended otherwise.
pub fn set_condition(
    existing: &[Condition],
    desired: &DesiredCondition,
    now: &Time,
    observed_generation: Option<i64>,
) -> Vec<Condition> {
    set_conditions(
        existing,
        std::slice::from_ref(desired),
        now,
        observed_generation,
    )
}

/// Returns `existing` with every desired condition set (see [`set_condition`]). Conditions of
/// other types are kept untouched and in place; new types are appended in the given order.
pub fn set_conditions(
    existing: &[Condition],
    desired: &[DesiredCondition],
    now: &Time,
    observed_generation: Option<i64>,
) -> Vec<Condition> {
    let mut out = existing.to_vec();
    for want in desired {
        let status = want.status.as_str();
        match out.iter_mut().find(|c| c.type_ == want.type_) {
            Some(current) => {
                if current.status != status {
                    current.status = status.to_owned();
                    current.last_transition_time = now.clone();
                }
                current.reason.clone_from(&want.reason);
                current.message.clone_from(&want.message);
                current.observed_generation = observed_generation;
            }
            None => out.push(Condition {
                type_: want.type_.clone(),
                status: status.to_owned(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                last_transition_time: now.clone(),
                observed_generation,
            }),
        }
    }
    out
}

/// The full kstatus condition set for a run phase (all five types, so the set is stable).
///
/// - `Pending`: `Reconciling=True`, `Ready=Unknown`.
/// - `Running`: `Reconciling=True`, `Ready=False`.
/// - `Suspended`: `Reconciling=False`, `Ready=False` (reason `Suspended`; suspension is a
///   deliberate pause, neither progress nor a stall).
/// - `Succeeded`: `Ready=True`, `Complete=True`, `Reconciling=False`.
/// - `Failed`: `Ready=False`, `Stalled=True`, `Failed=True`, `Reconciling=False`.
///
/// `Stalled`, `Complete` and `Failed` are `False` where not listed.
pub fn run_conditions(phase: RunPhase, message: &str) -> Vec<DesiredCondition> {
    use ConditionStatus::{False, True, Unknown};
    let (ready, reconciling, stalled, complete, failed, reason) = match phase {
        RunPhase::Pending => (Unknown, True, False, False, False, reasons::PENDING),
        RunPhase::Running => (False, True, False, False, False, reasons::PROGRESSING),
        RunPhase::Suspended => (False, False, False, False, False, reasons::SUSPENDED),
        RunPhase::Succeeded => (True, False, False, True, False, reasons::SUCCEEDED),
        RunPhase::Failed => (False, False, True, False, True, reasons::FAILED),
    };
    all_five(
        ready,
        reconciling,
        stalled,
        complete,
        failed,
        reason,
        message,
    )
}

/// The condition set for a spec that cannot run: `Stalled=True` with reason `InvalidSpec`,
/// `Ready=False`, `Failed=True` (the phase is `Failed`), `Reconciling=False`.
pub fn invalid_spec_conditions(message: &str) -> Vec<DesiredCondition> {
    use ConditionStatus::{False, True};
    all_five(
        False,
        False,
        True,
        False,
        True,
        reasons::INVALID_SPEC,
        message,
    )
}

fn all_five(
    ready: ConditionStatus,
    reconciling: ConditionStatus,
    stalled: ConditionStatus,
    complete: ConditionStatus,
    failed: ConditionStatus,
    reason: &str,
    message: &str,
) -> Vec<DesiredCondition> {
    vec![
        DesiredCondition::new(types::READY, ready, reason, message),
        DesiredCondition::new(types::RECONCILING, reconciling, reason, message),
        DesiredCondition::new(types::STALLED, stalled, reason, message),
        DesiredCondition::new(types::COMPLETE, complete, reason, message),
        DesiredCondition::new(types::FAILED, failed, reason, message),
    ]
}

/// The status of a condition type in a list, if present.
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The longest message Jobsmith stores (status messages, Event notes).
pub const MESSAGE_LIMIT: usize = 1024;

/// `message` cut to [`MESSAGE_LIMIT`] bytes (at a character boundary) with a marker.
pub fn bounded(message: &str) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message.to_owned();
    }
    // Room for the marker: "... (" + up to 20 digits + " bytes cut)".
    let mut end = MESSAGE_LIMIT - 40;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes cut)", &message[..end], message.len() - end)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    #[test]
    fn stored_messages_are_bounded() {
        let long = "é".repeat(100_000);
        let cut = bounded(&long);
        assert!(cut.len() <= MESSAGE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with("bytes cut)"));
        assert_eq!(bounded("short"), "short");
    }

    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn find<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).expect("condition present")
    }

    #[test]
    fn new_conditions_get_now_and_generation() {
        let out = set_conditions(
            &[],
            &run_conditions(RunPhase::Pending, "starting"),
            &at(1),
            Some(3),
        );
        assert_eq!(out.len(), 5);
        let ready = find(&out, types::READY);
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.last_transition_time, at(1));
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(find(&out, types::RECONCILING).status, "True");
    }

    #[test]
    fn transition_time_only_moves_on_status_flip() {
        let first = set_conditions(
            &[],
            &run_conditions(RunPhase::Running, "1 running"),
            &at(1),
            Some(1),
        );
        let second = set_conditions(
            &first,
            &run_conditions(RunPhase::Running, "2 running"),
            &at(2),
            Some(2),
        );
        let r = find(&second, types::RECONCILING);
        assert_eq!(r.last_transition_time, at(1));
        assert_eq!(r.message, "2 running");
        assert_eq!(r.observed_generation, Some(2));
        let third = set_conditions(
            &second,
            &run_conditions(RunPhase::Succeeded, "done"),
            &at(3),
            Some(2),
        );
        assert_eq!(find(&third, types::RECONCILING).last_transition_time, at(3));
        assert_eq!(find(&third, types::READY).status, "True");
        assert_eq!(find(&third, types::COMPLETE).status, "True");
        // Stalled stayed False: its time is unchanged.
        assert_eq!(find(&third, types::STALLED).last_transition_time, at(1));
    }

    #[test]
    fn identical_write_is_a_fixed_point() {
        let a = set_conditions(
            &[],
            &run_conditions(RunPhase::Failed, "x failed"),
            &at(1),
            Some(1),
        );
        let b = set_conditions(
            &a,
            &run_conditions(RunPhase::Failed, "x failed"),
            &at(9),
            Some(1),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn foreign_conditions_are_kept_in_place() {
        let foreign = Condition {
            type_: "Custom".into(),
            status: "True".into(),
            reason: "Mine".into(),
            message: String::new(),
            last_transition_time: at(0),
            observed_generation: None,
        };
        let out = set_condition(
            std::slice::from_ref(&foreign),
            &DesiredCondition::new(types::READY, ConditionStatus::True, "Valid", "usable"),
            &at(5),
            Some(1),
        );
        assert_eq!(out[0], foreign);
        assert_eq!(out[1].type_, "Ready");
    }

    #[test]
    fn phase_condition_sets() {
        let failed = run_conditions(RunPhase::Failed, "m");
        let get =
            |c: &[DesiredCondition], t: &str| c.iter().find(|d| d.type_ == t).map(|d| d.status);
        assert_eq!(get(&failed, types::READY), Some(ConditionStatus::False));
        assert_eq!(get(&failed, types::STALLED), Some(ConditionStatus::True));
        assert_eq!(get(&failed, types::FAILED), Some(ConditionStatus::True));
        let ok = run_conditions(RunPhase::Succeeded, "m");
        assert_eq!(get(&ok, types::RECONCILING), Some(ConditionStatus::False));
        let susp = run_conditions(RunPhase::Suspended, "m");
        assert_eq!(get(&susp, types::READY), Some(ConditionStatus::False));
        let invalid = invalid_spec_conditions("dependency cycle: a -> b -> a");
        let stalled = invalid
            .iter()
            .find(|d| d.type_ == types::STALLED)
            .expect("stalled");
        assert_eq!(stalled.status, ConditionStatus::True);
        assert_eq!(stalled.reason, "InvalidSpec");
        assert_eq!(stalled.message, "dependency cycle: a -> b -> a");
        let set = set_conditions(&[], &invalid, &at(1), None);
        assert_eq!(condition_status(&set, types::FAILED), Some("True"));
        assert_eq!(condition_status(&set, "Nope"), None);
    }
}
