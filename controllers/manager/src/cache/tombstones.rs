//! [`Tombstones`]: the objects a cache saw deleted lately, and by whose controller owner.
//!
//! Why: a run remembers a Job it has just created as "created, the watch has not delivered it
//! yet" and counts it as running until a reconcile finds it in the cache. When the Job is
//! created and deleted again before any reconcile finds it (its first sight requeued behind a
//! big run's evaluation gap, a user deleting it at once), its absence alone would read as
//! "still on its way" for ever; the tombstone says the watch delivered it and its deletion, so
//! the step is `Lost`, as any Job deleted before its outcome was recorded. Not a time bound on
//! "on its way": a watch that lags would then turn a healthy Job into a false `Lost`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long a deletion is remembered: far longer than the moment between a deletion event and
/// the reconcile it wakes, short enough that a burst of deletions (a big run's clean-up) is
/// forgotten soon after.
pub const KEPT_FOR: Duration = Duration::from_secs(600);

/// Deleted objects by their identity (`cache::object_id`: namespace and name), with their
/// controller owner's uid and when the deletion was seen.
#[derive(Debug, Default)]
pub struct Tombstones {
    deleted: HashMap<u64, (Option<String>, Instant)>,
    /// When entries older than [`KEPT_FOR`] were last dropped.
    swept: Option<Instant>,
}

impl Tombstones {
    /// Records the deletion of the object `id`, controlled by `owner_uid`, seen `now`.
    pub fn record(&mut self, id: u64, owner_uid: Option<&str>, now: Instant) {
        self.sweep(now);
        self.deleted.insert(id, (owner_uid.map(str::to_owned), now));
    }

    /// An object of that identity exists again: its old deletion no longer speaks for it.
    pub fn revive(&mut self, id: u64) {
        self.deleted.remove(&id);
    }

    /// Whether the object `id`, controlled by `owner_uid`, was seen deleted within
    /// [`KEPT_FOR`] before `now` (and not created again since).
    pub fn deleted(&self, id: u64, owner_uid: &str, now: Instant) -> bool {
        self.deleted.get(&id).is_some_and(|(owner, at)| {
            owner.as_deref() == Some(owner_uid) && now.duration_since(*at) < KEPT_FOR
        })
    }

    /// Drops entries older than [`KEPT_FOR`], at most once a minute.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(60))
        {
            return;
        }
        self.swept = Some(now);
        self.deleted
            .retain(|_, (_, at)| now.duration_since(*at) < KEPT_FOR);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.deleted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::object_id;

    #[test]
    fn a_deletion_is_remembered_for_its_owner_until_the_name_comes_back() {
        let start = Instant::now();
        let mut gone = Tombstones::default();
        let job = object_id(Some("ns"), Some("wf-g-a"));
        assert!(!gone.deleted(job, "run-1", start));
        gone.record(job, Some("run-1"), start);
        assert!(gone.deleted(job, "run-1", start));
        // Another owner's Job of that name (a run deleted and created again under its name).
        assert!(!gone.deleted(job, "run-2", start));
        assert!(!gone.deleted(object_id(Some("other"), Some("wf-g-a")), "run-1", start));
        gone.revive(job);
        assert!(!gone.deleted(job, "run-1", start));
    }

    #[test]
    fn old_deletions_are_forgotten() {
        let start = Instant::now();
        let mut gone = Tombstones::default();
        let [a, b, c] = ["a", "b", "c"].map(|name| object_id(Some("ns"), Some(name)));
        gone.record(a, Some("run-1"), start);
        let later = start + KEPT_FOR;
        assert!(!gone.deleted(a, "run-1", later));
        gone.record(b, Some("run-1"), later);
        assert_eq!(gone.len(), 1, "the old entry is dropped at the next record");
        // Within a minute of a sweep, no second sweep.
        gone.record(c, None, later + Duration::from_secs(1));
        assert_eq!(gone.len(), 2);
        assert!(!gone.deleted(c, "run-1", later));
    }
}
