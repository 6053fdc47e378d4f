//! Retry in place (docs/lifecycle.md "Retry in place"): a new value of the annotation
//! `jobsmith.dev/retry-requested-at` gives every failed step (or those of the selection in
//! `jobsmith.dev/retry-steps`, with what depends on them) a new attempt, and is recorded in
//! `status.retries` so that it is acted on once. What is retried is decided by the engine
//! (`jobsmith_engine::lifecycle::retry`); here the memory of the selected steps moves to their next
//! attempt.
//!
//! Exactly once per attempt: the new attempt number is the recorded one plus one, so a manager
//! that dies before the status write that records the request acts on it again after the
//! restart and arrives at the same attempts, hence the same Job names: a Job it had created
//! already is found in the cache, never created twice.

use jobsmith_api::labels::{RETRY_REQUESTED_AT, RETRY_STEPS};
use jobsmith_engine::{compile::Plan, lifecycle::retry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{RunKind, notes::Note, observe::Observed};
use crate::{memory::RunMemo, telemetry::events::EventKind};

/// Acts on the object's retry request when it is new: moves the selected steps of `memo` to
/// their next attempt and records the request. Returns the Event to publish, `None` when there
/// is no new request. The caller observes the steps again when steps were retried.
pub(super) fn honour_request<K: RunKind>(
    obj: &K,
    plan: &Plan,
    observed: &Observed,
    memo: &mut RunMemo,
    now: &Time,
) -> Option<(Note, bool)> {
    let annotations = obj.meta().annotations.as_ref()?;
    let value = annotations.get(RETRY_REQUESTED_AT)?;
    if retry::already_honoured(&memo.retries, value) {
        return None;
    }
    let request = if K::RETRIABLE {
        retry::parse_request(
            value,
            annotations.get(RETRY_STEPS).map(String::as_str),
            |key| plan.step_id(key).map(|s| s.index()),
        )
    } else {
        Err(format!(
            "a {} runs exactly one Job and is not retried in place; resubmit it (kubectl jobsmith resubmit)",
            K::kind(&())
        ))
    };
    let (mut entry, note) = match request {
        Ok(request) => {
            let selected = retry::selection(&plan.dag, &observed.outcomes, &request);
            let keys: Vec<&str> = selected
                .iter()
                .filter_map(|i| plan.steps.get(*i).map(|s| s.key.as_str()))
                .collect();
            for key in &keys {
                memo.steps.entry((*key).to_owned()).or_default().retry();
            }
            let entry = retry::entry(value, &keys, None);
            let note = Note {
                kind: EventKind::Created,
                reason: "RetryStarted",
                message: retried_message(value, &entry),
            };
            (entry, note)
        }
        Err(reason) => {
            tracing::info!(%reason, "retry request rejected");
            let note = Note {
                kind: EventKind::Invalid,
                reason: "RetryRejected",
                message: reason.clone(),
            };
            (retry::entry(value, &[], Some(reason)), note)
        }
    };
    let retried = entry.step_count > 0;
    entry.honoured_at = Some(now.clone());
    entry.generation = obj.meta().generation;
    retry::push(&mut memo.retries, &mut memo.retry_count, entry);
    Some((note, retried))
}

fn retried_message(value: &str, entry: &jobsmith_api::RetryEntry) -> String {
    if entry.step_count == 0 {
        return format!("retry requested at {value}: no failed step to run again");
    }
    let mut list = entry.steps.join(", ");
    let unlisted = entry.step_count as usize - entry.steps.len();
    if unlisted > 0 {
        list.push_str(&format!(" and {unlisted} more"));
    }
    format!(
        "retry requested at {value}: {} failed steps run again: {list}",
        entry.step_count
    )
}
