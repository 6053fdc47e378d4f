//! Run lifecycle decisions (docs/lifecycle.md "Deadline of the whole run" and "Cleanup"), pure:
//! spec, status and a `now` go in, what to do comes out. The run mechanism acts on them.
//!
//! - **Deadline** (`spec.activeDeadlineSeconds`): it passes that many seconds after the run's
//!   `status.startTime`, or after the last retry in place acted on (its `honouredAt`),
//!   whichever is later. A run that finished before it (a final phase whose reason is not
//!   `DeadlineExceeded`) is never touched by it; a run it ended stays ended by it. Everything
//!   derives from spec and status, so a restarted manager decides the same. Past it the scheduler
//!   starts no new step (except the steps [`crate::schedule::runs_past_deadline`] exempts),
//!   aborts the steps that did not start and names the running ones to stop;
//!   [`stopping_deadline`] is how a running Job is stopped.
//! - **Cleanup** (`spec.jobsCleanup`): once the run is final, the child Jobs of every attempt
//!   go when the outcome's action is `Delete` ([`jobs_to_delete`]).
//! - **TTL** (`spec.ttlSecondsAfterFinished`): the run object goes that long after its
//!   `completionTime` ([`run_expires_at`]).
//!
//! [`retry`] holds retry in place (docs/lifecycle.md "Retry in place").

pub mod retry;

use std::time::Duration;

use crate::observe::observed_job::ObservedJob;
use jobsmith_api::{JobsCleanup, Phase, RetryEntry, RunStatus, condition_types as types, reasons};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::observe::{self, StepOutcome};

/// The lifecycle controls of a run, as the run mechanism reads them from the kind's spec
/// (all unset for a kind that has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// `spec.activeDeadlineSeconds` of the whole run.
    pub active_deadline_seconds: Option<i64>,
    /// `spec.ttlSecondsAfterFinished` of the run object.
    pub ttl_seconds_after_finished: Option<i32>,
    /// `spec.jobsCleanup`.
    pub jobs_cleanup: JobsCleanup,
}

/// The run's deadline as of `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// No deadline applies: none is set, the run has not started, or it finished in time.
    None,
    /// It passes in this long (the reconcile is requeued then, so it is hit on time).
    Ahead(Duration),
    /// It passed while the run was not finished.
    Exceeded,
}

impl Deadline {
    /// Whether the deadline passed.
    pub fn is_exceeded(self) -> bool {
        self == Deadline::Exceeded
    }

    /// How long until it passes, when it is ahead.
    pub fn due_in(self) -> Option<Duration> {
        match self {
            Deadline::Ahead(wait) => Some(wait),
            Deadline::None | Deadline::Exceeded => None,
        }
    }
}

/// When the deadline passes: `seconds` after the later of `start` (`status.startTime`) and the
/// last retry in place acted on (also one that found no failed step: a run the deadline cut
/// short has only aborted steps, and a retry lets them run). `None` without a deadline or
/// before the run started.
pub fn deadline_at(
    seconds: Option<i64>,
    start: Option<Timestamp>,
    retries: &[RetryEntry],
) -> Option<Timestamp> {
    let seconds = seconds?;
    let retried = retries
        .iter()
        .filter(|r| r.rejected.is_none())
        .filter_map(|r| r.honoured_at.as_ref().map(|t| t.0))
        .max();
    let from = start.into_iter().chain(retried).max()?;
    Some(
        from.checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(Timestamp::MAX),
    )
}

/// The deadline of a run whose last written status is `previous` and whose retries acted on so
/// far are `retries` (the memory's, which may be ahead of `previous`), at `now`.
pub fn deadline(
    seconds: Option<i64>,
    previous: Option<&RunStatus>,
    retries: &[RetryEntry],
    now: Timestamp,
) -> Deadline {
    let start = previous.and_then(|p| p.start_time.as_ref()).map(|t| t.0);
    let Some(at) = deadline_at(seconds, start, retries) else {
        return Deadline::None;
    };
    if now < at {
        let wait = now.duration_until(at).unsigned_abs();
        return Deadline::Ahead(wait);
    }
    if previous.is_some_and(finished_in_time) {
        return Deadline::None;
    }
    Deadline::Exceeded
}

/// A final status that the deadline did not bring about: it stays as it is.
fn finished_in_time(status: &RunStatus) -> bool {
    status.phase.is_some_and(Phase::is_terminal)
        && !status
            .conditions
            .iter()
            .any(|c| c.type_ == types::READY && c.reason == reasons::DEADLINE_EXCEEDED)
}

/// The `activeDeadlineSeconds` that stops a running (or suspended) Job now: the whole seconds it
/// has been active (at least 1), so the Job controller fails it at once with its own reason
/// `DeadlineExceeded` and removes its pods; a suspended Job fails a second after it is resumed.
/// `None` when the Job finished or its own deadline is already that short (nothing to write).
///
/// Why not `suspend: true`: a suspended Job is not finished (its step would wait forever) and
/// could be resumed by hand or by a queue controller; a Job past its deadline is finished, with
/// the reason on its own `Failed` condition, and is never deleted.
pub fn stopping_deadline(job: &ObservedJob, now: Timestamp) -> Option<i64> {
    if matches!(
        observe::job_outcome(job),
        StepOutcome::Succeeded | StepOutcome::Failed
    ) {
        return None;
    }
    let active = observe::started_at(job)
        .filter(|_| !observe::is_suspended(job))
        .map_or(0, |start| start.0.duration_until(now).as_secs());
    let seconds = active.max(1);
    let own = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    match own {
        Some(own) if own <= seconds => None,
        _ => Some(seconds),
    }
}

/// Whether a run in `phase` deletes its child Jobs under `cleanup`.
pub fn deletes_jobs(cleanup: &JobsCleanup, phase: Option<Phase>) -> bool {
    match phase {
        Some(Phase::Succeeded) => cleanup.on_success.deletes(),
        Some(Phase::Failed) => cleanup.on_failure.deletes(),
        _ => false,
    }
}

/// The run's own Jobs (`owned`: every Job whose controller owner is the run, of every attempt)
/// to delete now: all that are not being deleted already, once the run is final (`phase`, as
/// just written with every outcome in `status.record`) and its outcome's action is `Delete`.
pub fn jobs_to_delete<'a>(
    cleanup: &JobsCleanup,
    phase: Option<Phase>,
    owned: impl IntoIterator<Item = &'a ObservedJob>,
) -> Vec<&'a ObservedJob> {
    if !deletes_jobs(cleanup, phase) {
        return Vec::new();
    }
    owned
        .into_iter()
        .filter(|job| job.metadata.deletion_timestamp.is_none())
        .collect()
}

/// When the run object itself is deleted: `ttl` seconds after its `completionTime`, once it is
/// final. `None` without a TTL or while it runs.
pub fn run_expires_at(ttl: Option<i32>, status: &RunStatus) -> Option<Timestamp> {
    let ttl = ttl?;
    if !status.phase.is_some_and(Phase::is_terminal) {
        return None;
    }
    let finished = status.completion_time.as_ref()?.0;
    Some(
        finished
            .checked_add(SignedDuration::from_secs(i64::from(ttl.max(0))))
            .unwrap_or(Timestamp::MAX),
    )
}

/// How long from `now` until `at` (zero when it passed).
pub fn wait_until(now: Timestamp, at: Timestamp) -> Duration {
    if at <= now {
        return Duration::ZERO;
    }
    now.duration_until(at).unsigned_abs()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::observe::observed_job::ObservedJobSpec;
    use jobsmith_api::CleanupAction;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn status(phase: Phase, start: Option<i64>, ready_reason: &str) -> RunStatus {
        RunStatus {
            phase: Some(phase),
            start_time: start.map(|s| Time(at(s))),
            completion_time: phase.is_terminal().then(|| Time(at(1_000))),
            conditions: vec![Condition {
                type_: types::READY.into(),
                status: "False".into(),
                reason: ready_reason.into(),
                message: String::new(),
                last_transition_time: Time(at(0)),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    fn retry(honoured: i64, steps: u32, rejected: bool) -> RetryEntry {
        RetryEntry {
            requested_at: "x".into(),
            honoured_at: Some(Time(at(honoured))),
            step_count: steps,
            rejected: rejected.then(|| "no".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_deadline_counts_from_the_start_or_the_last_accepted_retry() {
        assert_eq!(deadline_at(Some(10), Some(at(100)), &[]), Some(at(110)));
        assert_eq!(deadline_at(None, Some(at(100)), &[]), None);
        assert_eq!(deadline_at(Some(10), None, &[]), None);
        let retries = [
            retry(200, 2, false),
            retry(300, 0, false),
            retry(400, 1, true),
        ];
        assert_eq!(
            deadline_at(Some(10), Some(at(100)), &retries),
            Some(at(310))
        );
        assert_eq!(
            deadline_at(Some(i64::MAX), Some(at(100)), &[]),
            Some(Timestamp::MAX)
        );
    }

    #[test]
    fn a_run_is_cut_only_when_its_deadline_passes_before_it_finished() {
        let running = status(Phase::Running, Some(100), reasons::PROGRESSING);
        assert_eq!(
            deadline(Some(10), Some(&running), &[], at(104)),
            Deadline::Ahead(Duration::from_secs(6))
        );
        assert_eq!(
            deadline(Some(10), Some(&running), &[], at(110)),
            Deadline::Exceeded
        );
        // Finished in time: a later reconcile (or a restart) leaves it alone.
        let done = status(Phase::Succeeded, Some(100), reasons::SUCCEEDED);
        assert_eq!(
            deadline(Some(10), Some(&done), &[], at(500)),
            Deadline::None
        );
        let failed = status(Phase::Failed, Some(100), reasons::FAILED);
        assert_eq!(
            deadline(Some(10), Some(&failed), &[], at(500)),
            Deadline::None
        );
        // Ended by the deadline: it stays ended by it.
        let cut = status(Phase::Failed, Some(100), reasons::DEADLINE_EXCEEDED);
        assert_eq!(
            deadline(Some(10), Some(&cut), &[], at(500)),
            Deadline::Exceeded
        );
        // A retry in place gives the run a new deadline.
        assert_eq!(
            deadline(Some(10), Some(&cut), &[retry(495, 1, false)], at(500)),
            Deadline::Ahead(Duration::from_secs(5))
        );
        // Not started (no startTime yet) or no deadline: none.
        let new = status(Phase::Pending, None, reasons::PENDING);
        assert_eq!(deadline(Some(10), Some(&new), &[], at(500)), Deadline::None);
        assert_eq!(deadline(Some(10), None, &[], at(500)), Deadline::None);
        assert_eq!(deadline(None, Some(&running), &[], at(500)), Deadline::None);
    }

    fn job(
        start: Option<i64>,
        own: Option<i64>,
        suspended: bool,
        finished: Option<&str>,
    ) -> ObservedJob {
        ObservedJob {
            spec: Some(ObservedJobSpec {
                active_deadline_seconds: own,
                suspend: suspended.then_some(true),
            }),
            status: Some(JobStatus {
                start_time: start.map(|s| Time(at(s))),
                conditions: finished.map(|t| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_job_is_stopped_with_a_deadline_that_already_passed() {
        assert_eq!(
            stopping_deadline(&job(Some(100), None, false, None), at(130)),
            Some(30)
        );
        // Just started, or not started yet: one second.
        assert_eq!(
            stopping_deadline(&job(Some(100), None, false, None), at(100)),
            Some(1)
        );
        assert_eq!(
            stopping_deadline(&job(None, None, false, None), at(100)),
            Some(1)
        );
        // Suspended: it fails a second after a resume.
        assert_eq!(
            stopping_deadline(&job(Some(100), None, true, None), at(130)),
            Some(1)
        );
        // Its own deadline is already that short (or it was stopped before): nothing to write.
        assert_eq!(
            stopping_deadline(&job(Some(100), Some(20), false, None), at(130)),
            None
        );
        assert_eq!(
            stopping_deadline(&job(Some(100), Some(60), false, None), at(130)),
            Some(30)
        );
        // Finished: left alone.
        assert_eq!(
            stopping_deadline(&job(Some(100), None, false, Some("Complete")), at(130)),
            None
        );
        assert_eq!(
            stopping_deadline(&job(Some(100), None, false, Some("Failed")), at(130)),
            None
        );
    }

    #[test]
    fn cleanup_deletes_the_jobs_of_a_final_run_by_its_outcome() {
        let cleanup = JobsCleanup {
            on_success: CleanupAction::Delete,
            on_failure: CleanupAction::Keep,
        };
        let a = job(Some(1), None, false, Some("Complete"));
        let mut going = a.clone();
        going.metadata.deletion_timestamp = Some(Time(at(5)));
        let owned = [a.clone(), going];
        assert_eq!(
            jobs_to_delete(&cleanup, Some(Phase::Succeeded), &owned).len(),
            1
        );
        assert!(jobs_to_delete(&cleanup, Some(Phase::Failed), &owned).is_empty());
        assert!(jobs_to_delete(&cleanup, Some(Phase::Running), &owned).is_empty());
        assert!(jobs_to_delete(&JobsCleanup::default(), Some(Phase::Succeeded), &owned).is_empty());
        let on_failure = JobsCleanup {
            on_success: CleanupAction::Keep,
            on_failure: CleanupAction::Delete,
        };
        assert!(deletes_jobs(&on_failure, Some(Phase::Failed)));
        assert!(!deletes_jobs(&on_failure, Some(Phase::Succeeded)));
        assert!(!deletes_jobs(&on_failure, None));
    }

    #[test]
    fn the_run_expires_ttl_seconds_after_it_finished() {
        let done = status(Phase::Succeeded, Some(100), reasons::SUCCEEDED);
        assert_eq!(run_expires_at(Some(2), &done), Some(at(1_002)));
        assert_eq!(run_expires_at(Some(0), &done), Some(at(1_000)));
        assert_eq!(run_expires_at(None, &done), None);
        let running = status(Phase::Running, Some(100), reasons::PROGRESSING);
        assert_eq!(run_expires_at(Some(2), &running), None);
        assert_eq!(wait_until(at(10), at(12)), Duration::from_secs(2));
        assert_eq!(wait_until(at(12), at(10)), Duration::ZERO);
    }
}
