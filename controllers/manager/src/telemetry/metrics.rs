//! Prometheus metrics (STYLE 10, SPEC §2).
//!
//! Everything goes through the `metrics` facade and the `metrics-exporter-prometheus` recorder
//! (no listener of its own: `/metrics` is served by `health.rs`), except the one gauge that must
//! disappear with its workflow: `managedjob_active_jobs`. The `metrics` crate cannot unregister a
//! series, and the exporter's only removal mechanism is an idle timeout per metric kind, which would
//! also drop the gauge of a long, quiet workflow. That gauge is therefore kept in [`ActiveJobs`], a
//! small map rendered after the recorder's output, so `remove` takes it out of the next scrape.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Instant,
};

use metrics::{counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Upper bounds of every `*_duration_seconds` histogram: reconciles take milliseconds to seconds,
/// a large workflow under a rate limit can take a minute.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub const RECONCILE_TOTAL: &str = "jobsmith_reconcile_total";
pub const RECONCILE_ERRORS_TOTAL: &str = "jobsmith_reconcile_errors_total";
pub const RECONCILE_DURATION: &str = "jobsmith_reconcile_duration_seconds";
pub const API_WRITES_TOTAL: &str = "jobsmith_api_writes_total";
pub const EVENTS_DROPPED_TOTAL: &str = "jobsmith_events_dropped_total";
pub const CREATE_REFUSALS_TOTAL: &str = "jobsmith_job_create_refusals_total";
/// Counted where the fence refuses a write (leadership sits below telemetry).
pub use crate::leadership::lease::WRITES_FENCED_TOTAL;
pub const MJ_JOBS_CREATED: &str = "managedjob_jobs_created_total";
pub const MJ_JOBS_SUCCEEDED: &str = "managedjob_jobs_succeeded_total";
pub const MJ_JOBS_FAILED: &str = "managedjob_jobs_failed_total";
pub const MJ_ACTIVE_JOBS: &str = "managedjob_active_jobs";
pub const MJ_RECONCILE_DURATION: &str = "managedjob_reconciliation_duration_seconds";

/// The recorder configuration: histograms for `_duration_seconds`, names rendered as written.
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Suffix("_duration_seconds".into()),
        DURATION_BUCKETS,
    )
}

/// Installs the global recorder (start-up only) and describes every metric.
/// The caller runs [`PrometheusHandle::run_upkeep`] periodically (see `main.rs`).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(RECONCILE_TOTAL, "Reconciles started, per controller.");
    describe_counter!(
        RECONCILE_ERRORS_TOTAL,
        "Reconciles that failed, per controller and error category."
    );
    describe_histogram!(
        RECONCILE_DURATION,
        metrics::Unit::Seconds,
        "Duration of one reconcile."
    );
    describe_counter!(
        API_WRITES_TOTAL,
        "HTTP writes sent to the API server, per verb and resource."
    );
    describe_counter!(
        EVENTS_DROPPED_TOTAL,
        "Events not published because they were over the --event-qps budget."
    );
    describe_counter!(
        CREATE_REFUSALS_TOTAL,
        "Job creates the API server refused, per controller and HTTP code (none: no answer)."
    );
    describe_counter!(
        WRITES_FENCED_TOTAL,
        "Writes not sent because this manager is not (or no longer surely) the leader."
    );
    describe_counter!(MJ_JOBS_CREATED, "Jobs created for ManagedJobs.");
    describe_counter!(MJ_JOBS_SUCCEEDED, "ManagedJob Jobs that succeeded.");
    describe_counter!(MJ_JOBS_FAILED, "ManagedJob Jobs that failed.");
    describe_histogram!(
        MJ_RECONCILE_DURATION,
        metrics::Unit::Seconds,
        "Duration of one ManagedJob reconcile."
    );
}

/// What `/metrics` serves: the recorder's snapshot plus the removable gauges.
#[derive(Clone)]
pub struct Metrics {
    handle: Option<PrometheusHandle>,
    pub active_jobs: ActiveJobs,
    /// Reconciles per minute of the busiest objects (`hot_objects.rs`).
    pub hot_objects: crate::telemetry::hot_objects::HotObjects,
}

impl Metrics {
    pub fn new(handle: Option<PrometheusHandle>) -> Self {
        Self {
            handle,
            active_jobs: ActiveJobs::default(),
            hot_objects: Default::default(),
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = self
            .handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        self.active_jobs.render_into(&mut out);
        self.hot_objects.render_into(&mut out);
        out
    }

    pub fn run_upkeep(&self) {
        if let Some(handle) = &self.handle {
            handle.run_upkeep();
        }
    }
}

/// Counts one reconcile and observes its duration when dropped, whatever way the reconcile ends.
#[must_use = "the duration is observed when the guard is dropped"]
pub struct ReconcileTimer {
    controller: &'static str,
    start: Instant,
}

impl ReconcileTimer {
    pub fn start(controller: &'static str) -> Self {
        counter!(RECONCILE_TOTAL, "controller" => controller).increment(1);
        Self {
            controller,
            start: Instant::now(),
        }
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        histogram!(RECONCILE_DURATION, "controller" => self.controller)
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// One failed reconcile; `category` is the error's static `category()`.
pub fn reconcile_error(controller: &'static str, category: &'static str) {
    counter!(RECONCILE_ERRORS_TOTAL, "controller" => controller, "error" => category).increment(1);
}

/// An Event over the `--event-qps` budget, not published.
pub fn event_dropped() {
    counter!(EVENTS_DROPPED_TOTAL).increment(1);
}

/// One real HTTP write (`verb`: create, delete, patch, publish; `resource`: jobs, `<plural>/status`,
/// events).
pub fn api_write(verb: &'static str, resource: String) {
    counter!(API_WRITES_TOTAL, "verb" => verb, "resource" => resource).increment(1);
}

/// A Job create was refused (the step waits or fails; see `run/create.rs`).
pub fn create_refused(controller: &'static str, code: String) {
    counter!(CREATE_REFUSALS_TOTAL, "controller" => controller, "code" => code).increment(1);
}

/// The ManagedJob metrics of SPEC §2, with the seed's names and labels.
pub mod managedjob {
    use super::*;

    pub fn job_created(namespace: &str, workflow: &str, group: &str) {
        counter!(MJ_JOBS_CREATED, "namespace" => namespace.to_owned(),
            "workflow" => workflow.to_owned(), "group" => group.to_owned())
        .increment(1);
    }

    pub fn job_succeeded(namespace: &str, workflow: &str, group: &str) {
        counter!(MJ_JOBS_SUCCEEDED, "namespace" => namespace.to_owned(),
            "workflow" => workflow.to_owned(), "group" => group.to_owned())
        .increment(1);
    }

    pub fn job_failed(namespace: &str, workflow: &str, group: &str) {
        counter!(MJ_JOBS_FAILED, "namespace" => namespace.to_owned(),
            "workflow" => workflow.to_owned(), "group" => group.to_owned())
        .increment(1);
    }

    /// Observes `managedjob_reconciliation_duration_seconds` when dropped.
    #[must_use = "the duration is observed when the guard is dropped"]
    pub struct ReconcileTimer {
        namespace: String,
        workflow: String,
        start: Instant,
    }

    impl ReconcileTimer {
        pub fn start(namespace: &str, workflow: &str) -> Self {
            Self {
                namespace: namespace.to_owned(),
                workflow: workflow.to_owned(),
                start: Instant::now(),
            }
        }
    }

    impl Drop for ReconcileTimer {
        fn drop(&mut self) {
            histogram!(MJ_RECONCILE_DURATION,
                "namespace" => std::mem::take(&mut self.namespace),
                "workflow" => std::mem::take(&mut self.workflow))
            .record(self.start.elapsed().as_secs_f64());
        }
    }
}

/// `managedjob_active_jobs{namespace, workflow}`: set on each reconcile, removed with the workflow.
#[derive(Clone, Default)]
pub struct ActiveJobs {
    series: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl ActiveJobs {
    pub fn set(&self, namespace: &str, workflow: &str, active: u64) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series.insert((namespace.to_owned(), workflow.to_owned()), active);
    }

    /// Drops the series; call it when the workflow is deleted (or found gone).
    pub fn remove(&self, namespace: &str, workflow: &str) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series.remove(&(namespace.to_owned(), workflow.to_owned()));
    }

    fn render_into(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if series.is_empty() {
            return;
        }
        super::gauge_header(
            out,
            MJ_ACTIVE_JOBS,
            "Jobs of a ManagedJob that are running now.",
        );
        for ((namespace, workflow), value) in series.iter() {
            let _ = writeln!(
                out,
                "{MJ_ACTIVE_JOBS}{{namespace=\"{}\",workflow=\"{}\"}} {value}",
                super::escape_label(namespace),
                super::escape_label(workflow)
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    /// Runs `f` against a private recorder and returns what `/metrics` would serve.
    fn render_with(f: impl FnOnce(), active: &ActiveJobs) -> String {
        let recorder = builder().unwrap().build_recorder();
        let metrics = Metrics {
            handle: Some(recorder.handle()),
            active_jobs: active.clone(),
            hot_objects: Default::default(),
        };
        metrics::with_local_recorder(&recorder, f);
        metrics.render()
    }

    #[test]
    fn reconcile_metrics_have_the_documented_names_and_labels() {
        let text = render_with(
            || {
                {
                    let _timer = ReconcileTimer::start("jobrun");
                }
                reconcile_error("jobrun", "kube");
                api_write("create", "jobs".into());
            },
            &ActiveJobs::default(),
        );
        assert!(
            text.contains("jobsmith_reconcile_total{controller=\"jobrun\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "jobsmith_reconcile_errors_total{controller=\"jobrun\",error=\"kube\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("jobsmith_api_writes_total{verb=\"create\",resource=\"jobs\"} 1"));
        // A real histogram (buckets), not a summary.
        assert!(
            text.contains(
                "jobsmith_reconcile_duration_seconds_bucket{controller=\"jobrun\",le=\"0.005\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains("jobsmith_reconcile_duration_seconds_count{controller=\"jobrun\"} 1")
        );
    }

    #[test]
    fn managedjob_metrics_match_the_seed() {
        let active = ActiveJobs::default();
        let text = render_with(
            || {
                managedjob::job_created("ns", "wf", "g1");
                managedjob::job_succeeded("ns", "wf", "g1");
                managedjob::job_failed("ns", "wf", "g2");
                drop(managedjob::ReconcileTimer::start("ns", "wf"));
            },
            &active,
        );
        for line in [
            "managedjob_jobs_created_total{namespace=\"ns\",workflow=\"wf\",group=\"g1\"} 1",
            "managedjob_jobs_succeeded_total{namespace=\"ns\",workflow=\"wf\",group=\"g1\"} 1",
            "managedjob_jobs_failed_total{namespace=\"ns\",workflow=\"wf\",group=\"g2\"} 1",
            "managedjob_reconciliation_duration_seconds_count{namespace=\"ns\",workflow=\"wf\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn active_jobs_gauge_is_removed_with_the_workflow() {
        let active = ActiveJobs::default();
        active.set("ns", "a", 3);
        active.set("ns", "b\"x", 1);
        active.set("ns", "a", 2);
        let text = render_with(|| {}, &active);
        assert!(text.contains("# TYPE managedjob_active_jobs gauge"));
        assert!(text.contains("managedjob_active_jobs{namespace=\"ns\",workflow=\"a\"} 2"));
        assert!(text.contains("managedjob_active_jobs{namespace=\"ns\",workflow=\"b\\\"x\"} 1"));
        active.remove("ns", "a");
        active.remove("ns", "b\"x");
        let text = render_with(|| {}, &active);
        assert!(!text.contains("managedjob_active_jobs"), "{text}");
    }
}
