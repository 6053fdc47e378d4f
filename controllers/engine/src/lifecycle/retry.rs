//! Retry in place (docs/lifecycle.md "Retry in place"), pure: whether a retry request is new,
//! what it asks for, which steps it gives a new attempt, and the bounded history of requests
//! in `status.retries`.
//!
//! Decisions taken here:
//! - A request is the annotation `jobsmith.dev/retry-requested-at` (an RFC 3339 time). It is
//!   new when its value (as written) is not the `requestedAt` of any entry kept in
//!   `status.retries`; removing the annotation or re-applying a value already listed does
//!   nothing.
//! - A value that is not an RFC 3339 time, or a selection naming an unknown step, is recorded
//!   as a rejected entry (with the reason) and acted on no further: visible, never a loop.
//! - The steps a retry re-runs are those that failed (their Job failed, was lost, or could not
//!   be created for a reason that fails the step); with a selection (`jobsmith.dev/retry-steps`),
//!   only those among the selected steps and everything downstream of them. Steps that never
//!   ran because of the failure (aborted, skipped handlers) need no new attempt: they are
//!   decided again by the scheduler once the failed steps run again. Succeeded steps keep
//!   their result.
//! - Exit steps (`spec.onExit`) report on the run: when a retry re-runs any other step, every
//!   exit step that finished (succeeded or failed) gets a new attempt too, and runs again once
//!   the re-run is over, with the new outcome in its env. An exit step still running is left
//!   alone. A retry that re-runs only failed exit steps re-runs just those (and the exit steps
//!   downstream of them, when selected).

use jobsmith_api::{MAX_RETRY_ENTRIES, MAX_RETRY_STEPS_LISTED, RetryEntry};
use k8s_openapi::jiff::Timestamp;

use crate::observe::StepOutcome;
use crate::schedule::dag::{Dag, Target};

/// What a retry request asks for, once it is known to be new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Every failed step.
    All,
    /// The failed steps among these and everything downstream of them (plan positions).
    Steps(Vec<usize>),
}

/// Whether `value` was already acted on (it is listed in `retries`).
pub fn already_honoured(retries: &[RetryEntry], value: &str) -> bool {
    retries.iter().any(|e| e.requested_at == value)
}

/// Reads a request: the annotation's value and the optional step selection (comma-separated
/// step keys). `Err` is the reason it is rejected.
pub fn parse_request(
    value: &str,
    steps: Option<&str>,
    key_position: impl Fn(&str) -> Option<usize>,
) -> Result<Request, String> {
    if value.trim().parse::<Timestamp>().is_err() {
        return Err(format!(
            "{} {:?} is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)",
            jobsmith_api::labels::RETRY_REQUESTED_AT,
            crate::status::conditions::bounded(value)
        ));
    }
    let Some(steps) = steps.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Request::All);
    };
    let mut positions = Vec::new();
    for key in steps.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let position = key_position(key).ok_or_else(|| {
            format!(
                "unknown step {:?} in {}",
                crate::status::conditions::bounded(key),
                jobsmith_api::labels::RETRY_STEPS
            )
        })?;
        positions.push(position);
    }
    Ok(Request::Steps(positions))
}

/// The steps (plan positions) that get a new attempt: the failed ones, restricted by the
/// request, and the finished exit steps when any other step runs again.
pub fn selection(dag: &Dag, outcomes: &[StepOutcome], request: &Request) -> Vec<usize> {
    let failed = |i: usize| outcomes.get(i) == Some(&StepOutcome::Failed);
    let mut selected: Vec<usize> = match request {
        Request::All => (0..outcomes.len()).filter(|i| failed(*i)).collect(),
        Request::Steps(roots) => {
            let reach = downstream(dag, roots);
            (0..outcomes.len())
                .filter(|i| reach[*i] && failed(*i))
                .collect()
        }
    };
    let is_exit = |i: usize| dag.is_exit(crate::schedule::dag::StepId(i as u32));
    if selected.iter().any(|i| !is_exit(*i)) {
        let finished = |i: usize| {
            matches!(
                outcomes.get(i),
                Some(StepOutcome::Succeeded | StepOutcome::Failed)
            )
        };
        selected.extend((0..outcomes.len()).filter(|i| is_exit(*i) && finished(*i)));
        selected.sort_unstable();
        selected.dedup();
    }
    selected
}

/// Which steps are `roots` or depend on one of them, directly or through groups (indexed by
/// plan position). One pass in topological order.
pub fn downstream(dag: &Dag, roots: &[usize]) -> Vec<bool> {
    let mut reach = vec![false; dag.len()];
    for root in roots {
        if let Some(r) = reach.get_mut(*root) {
            *r = true;
        }
    }
    for step in dag.topological_order() {
        if reach[step.index()] {
            continue;
        }
        let reached = dag.effective_deps(*step).any(|dep| match dep.target {
            Target::Step(s) => reach[s.index()],
            Target::Group(g) => dag.group_members(g).iter().any(|m| reach[m.index()]),
        });
        reach[step.index()] = reached;
    }
    reach
}

/// The entry of one request: the keys of the retried steps (bounded), their count.
pub fn entry(value: &str, keys: &[&str], rejected: Option<String>) -> RetryEntry {
    RetryEntry {
        requested_at: crate::status::conditions::bounded(value),
        honoured_at: None,
        generation: None,
        steps: keys
            .iter()
            .take(MAX_RETRY_STEPS_LISTED)
            .map(|k| (*k).to_owned())
            .collect(),
        step_count: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        rejected,
    }
}

/// Adds an entry to the history: the oldest go beyond [`MAX_RETRY_ENTRIES`]; `count` counts all.
pub fn push(retries: &mut Vec<RetryEntry>, count: &mut u32, entry: RetryEntry) {
    retries.push(entry);
    if retries.len() > MAX_RETRY_ENTRIES {
        let excess = retries.len() - MAX_RETRY_ENTRIES;
        retries.drain(..excess);
    }
    *count = count.saturating_add(1);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schedule::dag::{DepSpec, GroupSpec, Required, StepSpec};
    use proptest::prelude::*;

    fn step(key: &str, group: Option<&str>, deps: &[&str]) -> StepSpec {
        StepSpec {
            key: key.into(),
            group: group.map(Into::into),
            deps: deps
                .iter()
                .map(|d| DepSpec {
                    target: (*d).into(),
                    required: Required::Succeeded,
                })
                .collect(),
        }
    }

    /// a -> b -> c, x -> y, group g {g1, g2} after y, z alone.
    fn dag() -> Dag {
        Dag::build(
            &[
                step("a", None, &[]),
                step("b", None, &["a"]),
                step("c", None, &["b"]),
                step("x", None, &[]),
                step("y", None, &["x"]),
                step("g1", Some("g"), &[]),
                step("g2", Some("g"), &[]),
                step("z", None, &["g"]),
            ],
            &[GroupSpec {
                key: "g".into(),
                deps: vec![DepSpec {
                    target: "y".into(),
                    required: Required::Succeeded,
                }],
            }],
        )
        .unwrap()
    }

    #[test]
    fn a_retry_of_other_steps_reruns_the_finished_exit_steps() {
        use StepOutcome::*;
        // a -> b; exit steps x1, x2 (x2 still running), x3 never created.
        let mut dag = Dag::build(
            &[
                step("a", None, &[]),
                step("b", None, &["a"]),
                step("x1", None, &[]),
                step("x2", None, &[]),
                step("x3", None, &[]),
            ],
            &[],
        )
        .unwrap();
        dag.mark_exit_steps(&[false, false, true, true, true]);
        let outcomes = [Failed, NotCreated, Succeeded, Running, NotCreated];
        assert_eq!(selection(&dag, &outcomes, &Request::All), vec![0, 2]);
        // Only a failed exit step: only it runs again.
        let outcomes = [Succeeded, Succeeded, Failed, Succeeded, NotCreated];
        assert_eq!(selection(&dag, &outcomes, &Request::All), vec![2]);
        // Nothing failed: nothing runs again.
        let outcomes = [Succeeded, Succeeded, Succeeded, Succeeded, Succeeded];
        assert!(selection(&dag, &outcomes, &Request::All).is_empty());
    }

    #[test]
    fn downstream_follows_steps_and_groups() {
        let dag = dag();
        let reach = downstream(&dag, &[3]);
        let reached: Vec<usize> = (0..8).filter(|i| reach[*i]).collect();
        assert_eq!(reached, vec![3, 4, 5, 6, 7]);
        let reach = downstream(&dag, &[5]);
        let reached: Vec<usize> = (0..8).filter(|i| reach[*i]).collect();
        assert_eq!(reached, vec![5, 7]);
    }

    #[test]
    fn only_failed_steps_get_a_new_attempt() {
        use StepOutcome::*;
        let dag = dag();
        let outcomes = [
            Succeeded, Failed, NotCreated, Failed, NotCreated, NotCreated, NotCreated, Failed,
        ];
        assert_eq!(selection(&dag, &outcomes, &Request::All), vec![1, 3, 7]);
        // Selecting a succeeded step retries the failed steps downstream of it only.
        assert_eq!(
            selection(&dag, &outcomes, &Request::Steps(vec![0])),
            vec![1]
        );
        assert_eq!(
            selection(&dag, &outcomes, &Request::Steps(vec![4])),
            vec![7]
        );
        assert!(selection(&dag, &[Succeeded; 8], &Request::All).is_empty());
    }

    #[test]
    fn requests_are_parsed_and_rejected_with_a_reason() {
        let position = |k: &str| ["a", "g/b"].iter().position(|x| *x == k);
        assert_eq!(
            parse_request("2026-01-02T15:04:05Z", None, position),
            Ok(Request::All)
        );
        assert_eq!(
            parse_request("2026-01-02T15:04:05+02:00", Some(" g/b , a"), position),
            Ok(Request::Steps(vec![1, 0]))
        );
        assert!(
            parse_request("yesterday", None, position)
                .unwrap_err()
                .contains("not an RFC 3339 time")
        );
        assert!(
            parse_request("2026-01-02T15:04:05Z", Some("nope"), position)
                .unwrap_err()
                .contains("unknown step \"nope\"")
        );
    }

    #[test]
    fn the_history_is_bounded_and_counts_everything() {
        let mut retries = Vec::new();
        let mut count = 0;
        let keys: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for i in 0..25 {
            push(
                &mut retries,
                &mut count,
                entry(&format!("t{i}"), &keys, None),
            );
        }
        assert_eq!(retries.len(), MAX_RETRY_ENTRIES);
        assert_eq!(count, 25);
        assert_eq!(retries[0].requested_at, "t15");
        assert_eq!(retries[0].steps.len(), MAX_RETRY_STEPS_LISTED);
        assert_eq!(retries[0].step_count, 50);
        assert!(already_honoured(&retries, "t24"));
        assert!(!already_honoured(&retries, "t1"));
    }

    proptest! {
        /// Every step downstream of a selected one is reached, and nothing else: a step is
        /// reached iff it is a root or one of its dependencies (or a member of a group it
        /// depends on) is reached.
        #[test]
        fn downstream_is_closed_and_minimal(roots in proptest::collection::vec(0usize..8, 0..4)) {
            let dag = dag();
            let reach = downstream(&dag, &roots);
            for s in dag.steps() {
                let via_dep = dag.effective_deps(s).any(|d| match d.target {
                    Target::Step(t) => reach[t.index()],
                    Target::Group(g) => dag.group_members(g).iter().any(|m| reach[m.index()]),
                });
                prop_assert_eq!(reach[s.index()], roots.contains(&s.index()) || via_dep);
            }
        }
    }
}
