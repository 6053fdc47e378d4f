//! `jobsmith_object_reconciles_per_minute{controller, namespace, name}`: how often each object
//! was reconciled over the last minute, for the busiest objects only. A hot loop (an object
//! reconciled again and again without progress) shows at the top; the number of series stays
//! bounded whatever the number of objects, and an object that stops being reconciled (or is
//! deleted) drops out within two minutes.
//!
//! The rate is the sliding-window estimate of rate limiters: the count of the current one-minute
//! window plus the previous window's count weighted by how much of it still lies within the last
//! 60 s. Pure bookkeeping over instants the caller passes in (tested without a clock).

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Series shown at most.
pub const SHOWN: usize = 10;
pub const METRIC: &str = "jobsmith_object_reconciles_per_minute";
const WINDOW: Duration = Duration::from_secs(60);

/// (controller, namespace, name)
type Key = (&'static str, String, String);

#[derive(Default)]
struct Windows {
    start: Option<Instant>,
    current: HashMap<Key, u32>,
    previous: HashMap<Key, u32>,
}

impl Windows {
    /// Moves to the window that holds `now`; returns how far into it `now` is.
    fn roll(&mut self, now: Instant) -> Duration {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return elapsed;
        }
        self.previous = if elapsed < 2 * WINDOW {
            std::mem::take(&mut self.current)
        } else {
            self.current.clear();
            HashMap::new()
        };
        let windows = (elapsed.as_secs() / WINDOW.as_secs()) as u32;
        let new_start = start + WINDOW * windows;
        self.start = Some(new_start);
        now.saturating_duration_since(new_start)
    }
}

/// Per-object reconcile rates (cheap to clone, shared by every controller).
#[derive(Clone, Default)]
pub struct HotObjects {
    windows: Arc<Mutex<Windows>>,
}

impl HotObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reconcile of the object, now.
    pub fn reconciled(&self, controller: &'static str, namespace: &str, name: &str) {
        self.reconciled_at(controller, namespace, name, Instant::now());
    }

    fn reconciled_at(&self, controller: &'static str, namespace: &str, name: &str, now: Instant) {
        let mut windows = self.lock();
        windows.roll(now);
        *windows
            .current
            .entry((controller, namespace.to_owned(), name.to_owned()))
            .or_default() += 1;
    }

    /// Drops the object (deleted).
    pub fn forget(&self, controller: &'static str, namespace: &str, name: &str) {
        let key = (controller, namespace.to_owned(), name.to_owned());
        let mut windows = self.lock();
        windows.current.remove(&key);
        windows.previous.remove(&key);
    }

    /// The [`SHOWN`] busiest objects with their reconciles per minute, busiest first.
    fn top_at(&self, now: Instant) -> Vec<(Key, f64)> {
        let mut windows = self.lock();
        let into_current = windows.roll(now);
        let weight = 1.0 - into_current.as_secs_f64() / WINDOW.as_secs_f64();
        let mut rates: HashMap<&Key, f64> = HashMap::new();
        for (key, n) in &windows.current {
            *rates.entry(key).or_default() += f64::from(*n);
        }
        for (key, n) in &windows.previous {
            *rates.entry(key).or_default() += f64::from(*n) * weight;
        }
        let mut top: Vec<(Key, f64)> = rates
            .into_iter()
            .filter(|(_, r)| *r > 0.0)
            .map(|(k, r)| (k.clone(), r))
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(SHOWN);
        top
    }

    /// Appends the gauge in the text exposition format (nothing when no object was reconciled).
    pub fn render_into(&self, out: &mut String) {
        let top = self.top_at(Instant::now());
        if top.is_empty() {
            return;
        }
        super::gauge_header(
            out,
            METRIC,
            &format!("Reconciles per minute of the busiest objects (at most {SHOWN})."),
        );
        for ((controller, namespace, name), rate) in top {
            let _ = writeln!(
                out,
                "{METRIC}{{controller=\"{controller}\",namespace=\"{}\",name=\"{}\"}} {rate:.1}",
                super::escape_label(&namespace),
                super::escape_label(&name)
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn the_busiest_objects_are_shown_with_a_sliding_minute_rate() {
        let hot = HotObjects::default();
        let t0 = Instant::now();
        for i in 0..30 {
            hot.reconciled_at("jobflow", "ns", "loop", t0 + Duration::from_millis(i * 100));
        }
        hot.reconciled_at("jobflow", "ns", "calm", t0);
        let top = hot.top_at(t0 + Duration::from_secs(10));
        assert_eq!(top[0].0.2, "loop");
        assert_eq!(top[0].1, 30.0);
        assert_eq!(top[1].1, 1.0);
        // Half way into the next window, the last one counts half.
        let top = hot.top_at(t0 + Duration::from_secs(90));
        assert_eq!(top[0].1, 15.0);
        // Two quiet minutes later, nothing is shown.
        assert!(hot.top_at(t0 + Duration::from_secs(200)).is_empty());
    }

    #[test]
    fn series_stay_bounded_and_deleted_objects_go() {
        let hot = HotObjects::default();
        let t0 = Instant::now();
        for i in 0..100 {
            hot.reconciled_at("managedjob", "ns", &format!("w{i}"), t0);
        }
        assert_eq!(hot.top_at(t0).len(), SHOWN);
        hot.reconciled_at("managedjob", "ns", "gone", t0);
        hot.reconciled_at("managedjob", "ns", "gone", t0);
        assert_eq!(hot.top_at(t0)[0].0.2, "gone");
        hot.forget("managedjob", "ns", "gone");
        assert!(hot.top_at(t0).iter().all(|(k, _)| k.2 != "gone"));
    }
}
