//! Per-object exponential backoff for failed reconciles (STYLE 5): kube-runtime requeues with
//! whatever `Action` the error policy returns and keeps no per-object state, so it lives here.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

pub struct Backoffs {
    base: Duration,
    max: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    failures: u32,
    last: Instant,
}

impl Default for Backoffs {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoffs {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying:
    /// `base * 2^(failures-1)`, capped at `max`.
    pub fn next_delay(&self, key: &str) -> Duration {
        self.next_delay_at(key, Instant::now())
    }

    fn next_delay_at(&self, key: &str, now: Instant) -> Duration {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Objects deleted while failing are never reset; forget entries idle for long.
        let forget_after = self.max * 4;
        if entries.len() > 1024 {
            entries.retain(|_, e| now.saturating_duration_since(e.last) < forget_after);
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) >= forget_after {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        let exp = entry.failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// A successful reconcile starts the next failure from `base` again.
    pub fn reset(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    pub fn failures(&self, key: &str) -> u32 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).map_or(0, |e| e.failures)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let b = Backoffs::new(Duration::from_millis(500), Duration::from_secs(4));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay("ns/a")).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(
            b.next_delay("ns/b"),
            Duration::from_millis(500),
            "keys are independent"
        );
        b.reset("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
        assert_eq!(b.next_delay("ns/a"), Duration::from_millis(500));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let b = Backoffs::default();
        for _ in 0..100 {
            b.next_delay("x");
        }
        assert_eq!(b.next_delay("x"), Duration::from_secs(300));
    }

    #[test]
    fn a_long_quiet_period_starts_over() {
        let b = Backoffs::new(Duration::from_secs(1), Duration::from_secs(10));
        let t0 = Instant::now();
        b.next_delay_at("k", t0);
        b.next_delay_at("k", t0);
        assert_eq!(
            b.next_delay_at("k", t0 + Duration::from_secs(41)),
            Duration::from_secs(1)
        );
    }
}
