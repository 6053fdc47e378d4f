//! The durable step record (`status.record`, docs/guarantees.md): for every step of a run,
//! whether its Job was created and how it finished, as compact sets of step positions in plan
//! order. The run mechanism writes it with every status write and reads it back after a
//! restart or a leader handover, so a step whose Job is gone (deleted after its outcome was
//! recorded, or deleted before that: `Lost`) is never created a second time.
//!
//! Encoding: each set is a comma-separated list of positions and inclusive ranges
//! (`"0-99,105,107-200"`); a run that finishes in order needs a few characters per set at any
//! size, and the worst case (every other step) stays under 7 bytes a step. The record carries
//! the plan's size and a digest of its step keys; a record whose digest does not match the
//! current plan (the spec's steps changed) is translated by key through the plan it was written
//! for, when the caller still has it.
//!
//! Attempts (retry in place, docs/lifecycle.md): the four sets describe each step's *latest*
//! attempt; `attempts` maps every attempt number above 1 to the set of steps at that attempt
//! (`{"2": "3,7-9"}`). A run never retried has none, so its record is unchanged. After a
//! restart the attempt says which Job name is the step's current one, so an attempt's Job is
//! never created twice and the outcome of an earlier attempt never stands for a later one.

use std::fmt::Write as _;

use jobsmith_api::StepRecord;
use sha2::{Digest, Sha256};

/// What the record says of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Recorded {
    /// No Job was ever recorded for it.
    #[default]
    None,
    /// Its Job was created and had not finished when last recorded.
    Created,
    /// Its Job succeeded.
    Succeeded,
    /// Its Job failed.
    Failed,
    /// Its outcome cannot be known; it is never run again.
    Lost,
}

/// The digest of a plan's step keys, in order (16 hex characters).
pub fn digest<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update([0u8]);
    }
    let mut out = String::with_capacity(16);
    for byte in &hasher.finalize()[..8] {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Encodes the per-step states (indexed by plan position) with the plan's digest; every step
/// at attempt 1.
pub fn encode(states: &[Recorded], digest: String) -> StepRecord {
    encode_attempts(states, &[], digest)
}

/// Encodes the per-step states and attempts (both indexed by plan position; a missing attempt
/// is 1) with the plan's digest.
pub fn encode_attempts(states: &[Recorded], attempts: &[u32], digest: String) -> StepRecord {
    let set = |want: Recorded| ranges(states.iter().map(|s| *s == want));
    let mut numbers: Vec<u32> = attempts.iter().copied().filter(|a| *a > 1).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let attempts_of = numbers
        .into_iter()
        .map(|n| {
            let members = (0..states.len()).map(|i| attempts.get(i).copied() == Some(n));
            (n.to_string(), ranges(members))
        })
        .collect();
    StepRecord {
        attempts: attempts_of,
        steps: u32::try_from(states.len()).unwrap_or(u32::MAX),
        digest,
        created: set(Recorded::Created),
        succeeded: set(Recorded::Succeeded),
        failed: set(Recorded::Failed),
        lost: set(Recorded::Lost),
    }
}

/// Decodes a record written for a plan of `record.steps` steps. Positions beyond that size and
/// malformed parts are ignored (a hand-edited status never panics the manager).
pub fn decode(record: &StepRecord) -> Vec<Recorded> {
    let n = usize::try_from(record.steps).unwrap_or(0);
    let mut states = vec![Recorded::None; n];
    for (set, state) in [
        (&record.created, Recorded::Created),
        (&record.succeeded, Recorded::Succeeded),
        (&record.failed, Recorded::Failed),
        (&record.lost, Recorded::Lost),
    ] {
        for i in positions(set, n) {
            states[i] = state;
        }
    }
    states
}

/// The attempt of every step of a record written for a plan of `record.steps` steps (1 where
/// the record says nothing; malformed parts are ignored).
pub fn decode_attempts(record: &StepRecord) -> Vec<u32> {
    let n = usize::try_from(record.steps).unwrap_or(0);
    let mut attempts = vec![1; n];
    for (number, set) in &record.attempts {
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        for i in positions(set, n) {
            attempts[i] = attempts[i].max(number);
        }
    }
    attempts
}

/// The attempts of the record for the current plan, when it was written for it (the same
/// digest and size): see [`for_plan`].
pub fn attempts_for_plan(record: &StepRecord, keys: &[&str]) -> Option<Vec<u32>> {
    let attempts = decode_attempts(record);
    (record.digest == digest(keys.iter().copied()) && attempts.len() == keys.len())
        .then_some(attempts)
}

/// The record translated to the current plan: directly when the digests match, through the
/// keys of the plan it was written for (`written_for`) when they do not; `None` when it cannot
/// be translated (the caller then knows only what the Jobs and the step entries say).
pub fn for_plan(
    record: &StepRecord,
    keys: &[&str],
    written_for: Option<&[&str]>,
) -> Option<Vec<Recorded>> {
    let states = decode(record);
    if record.digest == digest(keys.iter().copied()) && states.len() == keys.len() {
        return Some(states);
    }
    let old = written_for
        .filter(|old| old.len() == states.len() && record.digest == digest(old.iter().copied()))?;
    let by_key: std::collections::HashMap<&str, Recorded> =
        old.iter().copied().zip(states).collect();
    Some(
        keys.iter()
            .map(|k| by_key.get(k).copied().unwrap_or_default())
            .collect(),
    )
}

fn ranges(members: impl Iterator<Item = bool>) -> String {
    let mut out = String::new();
    let mut start: Option<usize> = None;
    let flush = |out: &mut String, from: usize, to: usize| {
        if !out.is_empty() {
            out.push(',');
        }
        if from == to {
            let _ = write!(out, "{from}");
        } else {
            let _ = write!(out, "{from}-{to}");
        }
    };
    let mut last = 0;
    for (i, member) in members.enumerate() {
        last = i;
        match (member, start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                flush(&mut out, from, i - 1);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        flush(&mut out, from, last);
    }
    out
}

fn positions(set: &str, n: usize) -> impl Iterator<Item = usize> + '_ {
    set.split(',')
        .filter_map(|part| {
            let part = part.trim();
            let (from, to) = part.split_once('-').unwrap_or((part, part));
            Some((from.parse::<usize>().ok()?, to.parse::<usize>().ok()?))
        })
        .flat_map(move |(from, to)| from..=to.min(n.saturating_sub(1)))
        .filter(move |i| *i < n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_retried_run_records_its_attempts_compactly() {
        let mut attempts = vec![1; 10_000];
        attempts[5_000..5_100].fill(2);
        attempts[5_050] = 3;
        let record = encode_attempts(&vec![Recorded::Succeeded; 10_000], &attempts, String::new());
        assert_eq!(
            record.attempts.get("2").map(String::as_str),
            Some("5000-5049,5051-5099")
        );
        assert_eq!(record.attempts.get("3").map(String::as_str), Some("5050"));
        assert_eq!(decode_attempts(&record), attempts);
    }

    #[test]
    fn a_finished_run_is_a_few_characters() {
        let states = vec![Recorded::Succeeded; 10_000];
        let record = encode(&states, digest(["a"]));
        assert_eq!(record.succeeded, "0-9999");
        assert!(record.created.is_empty() && record.failed.is_empty());
        assert_eq!(decode(&record), states);
    }

    #[test]
    fn the_worst_case_stays_small() {
        let states: Vec<Recorded> = (0..10_000)
            .map(|i| {
                if i % 2 == 0 {
                    Recorded::Succeeded
                } else {
                    Recorded::Created
                }
            })
            .collect();
        let record = encode(&states, String::new());
        let bytes = record.created.len() + record.succeeded.len();
        assert!(bytes < 7 * 10_000, "{bytes}");
        assert_eq!(decode(&record), states);
    }

    #[test]
    fn malformed_records_never_panic() {
        let record = StepRecord {
            steps: 3,
            digest: "x".into(),
            created: "a,-,5-1,2-99999999999999999999,1".into(),
            succeeded: "0-1000000".into(),
            failed: String::new(),
            lost: "9".into(),
            attempts: [("x".into(), "0".into()), ("3".into(), "1,a-,7".into())].into(),
        };
        assert_eq!(decode_attempts(&record), vec![1, 3, 1]);
        let states = decode(&record);
        assert_eq!(states.len(), 3);
        assert_eq!(states[0], Recorded::Succeeded);
    }

    #[test]
    fn a_changed_plan_is_translated_by_key() {
        let old = ["a", "b", "c"];
        let record = encode(
            &[Recorded::Succeeded, Recorded::Lost, Recorded::Created],
            digest(old),
        );
        let new = ["c", "x", "a"];
        assert_eq!(for_plan(&record, &new, None), None);
        assert_eq!(
            for_plan(&record, &new, Some(&old)),
            Some(vec![Recorded::Created, Recorded::None, Recorded::Succeeded])
        );
        assert_eq!(
            for_plan(&record, &old, None),
            Some(vec![Recorded::Succeeded, Recorded::Lost, Recorded::Created])
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(raw in proptest::collection::vec(0u8..5, 0..300)) {
            let states: Vec<Recorded> = raw.iter().map(|r| match r {
                0 => Recorded::None,
                1 => Recorded::Created,
                2 => Recorded::Succeeded,
                3 => Recorded::Failed,
                _ => Recorded::Lost,
            }).collect();
            let record = encode(&states, digest(["k"]));
            prop_assert_eq!(decode(&record), states);
        }

        #[test]
        fn attempts_round_trip(raw in proptest::collection::vec((0u8..5, 1u32..6), 0..300)) {
            let states: Vec<Recorded> = raw.iter().map(|(r, _)| match r {
                0 => Recorded::None,
                1 => Recorded::Created,
                2 => Recorded::Succeeded,
                3 => Recorded::Failed,
                _ => Recorded::Lost,
            }).collect();
            let attempts: Vec<u32> = raw.iter().map(|(_, a)| *a).collect();
            let record = encode_attempts(&states, &attempts, digest(["k"]));
            prop_assert_eq!(decode(&record), states);
            prop_assert_eq!(decode_attempts(&record), attempts.clone());
            // Attempt 1 costs nothing: a run never retried keeps today's record.
            if attempts.iter().all(|a| *a == 1) {
                prop_assert!(record.attempts.is_empty());
            }
        }
    }
}
