//! What a `batch/v1` Job says about its step (SPEC §1 "A step is done when its Job reports it").
//!
//! Only Job conditions decide: `SuccessCriteriaMet` / `FailureTarget` (Kubernetes 1.31+, the
//! earliest final signal) and `Complete` / `Failed`. Pod counts never do: a failed pod that is
//! retried is not a failed step.

pub mod observed_job;

use crate::observe::observed_job::ObservedJob;
use k8s_openapi::api::batch::v1::JobCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The observed state of one step, as the scheduler consumes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    /// No Job exists for the step.
    #[default]
    NotCreated,
    /// The Job exists and has not reported a final result.
    Running,
    /// The Job exists, has not finished and is suspended (`spec.suspend`: created so by its
    /// template, or suspended by hand) without a Kueue queue label. It holds no `maxParallel`
    /// slot and is never created again; it runs when resumed.
    Suspended,
    /// The Job exists, has not finished, is suspended and carries the Kueue queue label: it
    /// waits for Kueue's admission ([`crate::build::kueue`]). The step has not started, but the Job
    /// holds a `maxParallel` slot (Kueue may admit it at any moment, and Jobsmith never
    /// suspends a Job again), and it is never created again.
    Queued,
    /// The Job reported success.
    Succeeded,
    /// The Job reported failure.
    Failed,
}

impl StepOutcome {
    /// `Succeeded` or `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Job condition types read here.
pub mod job_condition {
    /// Kubernetes 1.31+: the success policy is met (pods may still be terminating).
    pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
    /// Kubernetes 1.31+: the Job is going to fail (pods may still be terminating).
    pub const FAILURE_TARGET: &str = "FailureTarget";
    /// The Job completed successfully.
    pub const COMPLETE: &str = "Complete";
    /// The Job failed.
    pub const FAILED: &str = "Failed";
}

/// The outcome of an existing Job, from its conditions, and `spec.suspend` for one that has not
/// finished.
///
/// A failure condition wins over a success condition if both were ever present (the API server
/// does not allow that; being strict here keeps a corrupted status from passing as success).
pub fn job_outcome(job: &ObservedJob) -> StepOutcome {
    let failed = [job_condition::FAILURE_TARGET, job_condition::FAILED]
        .iter()
        .any(|t| condition_true(job, t).is_some());
    if failed {
        return StepOutcome::Failed;
    }
    let succeeded = [job_condition::SUCCESS_CRITERIA_MET, job_condition::COMPLETE]
        .iter()
        .any(|t| condition_true(job, t).is_some());
    if succeeded {
        StepOutcome::Succeeded
    } else if is_suspended(job) {
        if crate::build::kueue::queue_name(&job.metadata).is_some() {
            StepOutcome::Queued
        } else {
            StepOutcome::Suspended
        }
    } else {
        StepOutcome::Running
    }
}

/// The outcome of a step whose Job may not exist.
pub fn step_outcome(job: Option<&ObservedJob>) -> StepOutcome {
    job.map_or(StepOutcome::NotCreated, job_outcome)
}

/// When the Job reached its final result: the `lastTransitionTime` of the earliest final signal
/// (`SuccessCriteriaMet`/`FailureTarget` before `Complete`/`Failed`), else `status.completionTime`.
pub fn finished_at(job: &ObservedJob) -> Option<&Time> {
    let signal = match job_outcome(job) {
        StepOutcome::Succeeded => [job_condition::SUCCESS_CRITERIA_MET, job_condition::COMPLETE],
        StepOutcome::Failed => [job_condition::FAILURE_TARGET, job_condition::FAILED],
        StepOutcome::NotCreated
        | StepOutcome::Running
        | StepOutcome::Suspended
        | StepOutcome::Queued => return None,
    };
    signal
        .iter()
        .find_map(|t| condition_true(job, t).and_then(|c| c.last_transition_time.as_ref()))
        .or_else(|| job.status.as_ref()?.completion_time.as_ref())
}

/// Why a Job failed, as far as the Job itself says (docs/lifecycle.md "Status history").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureDetail {
    /// The reason of its failure condition (`BackoffLimitExceeded`, `PodFailurePolicy`,
    /// `DeadlineExceeded`, ...), at most [`MAX_REASON_LEN`] bytes.
    pub reason: Option<String>,
    /// The exit code the condition's message names (a `podFailurePolicy` rule that failed the
    /// Job names the container and its exit code; `BackoffLimitExceeded` names none).
    pub exit_code: Option<i32>,
}

/// Longest failure reason kept (Kubernetes' reasons are short CamelCase words; a longer one is
/// cut so that a status entry stays small).
pub const MAX_REASON_LEN: usize = 64;

/// The failure of a failed Job: the reason and message of its earliest failure signal
/// (`FailureTarget`, else `Failed`); `None` unless the Job failed.
pub fn failure_detail(job: &ObservedJob) -> Option<FailureDetail> {
    let condition = [job_condition::FAILURE_TARGET, job_condition::FAILED]
        .iter()
        .find_map(|t| condition_true(job, t))?;
    let reason = condition
        .reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| cut(r, MAX_REASON_LEN).to_owned());
    let exit_code = condition.message.as_deref().and_then(exit_code_in_message);
    Some(FailureDetail { reason, exit_code })
}

/// The exit code a Job condition message names. The Job controller writes, for a `FailJob`
/// rule on exit codes: `Container main for pod ns/pod failed with exit code 3 matching FailJob
/// rule at index 0`.
pub fn exit_code_in_message(message: &str) -> Option<i32> {
    const MARK: &str = "with exit code ";
    let rest = &message[message.find(MARK)? + MARK.len()..];
    let sign = usize::from(rest.starts_with('-'));
    let digits = rest[sign..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len() - sign);
    rest[..sign + digits].parse().ok()
}

fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// When the step started: the Job's `creationTimestamp` (known from the create response, so the
/// status records it in the same write that records the creation), else its `status.startTime`.
pub fn created_at(job: &ObservedJob) -> Option<&Time> {
    job.metadata
        .creation_timestamp
        .as_ref()
        .or_else(|| started_at(job))
}

/// `status.startTime` of the Job.
pub fn started_at(job: &ObservedJob) -> Option<&Time> {
    job.status.as_ref()?.start_time.as_ref()
}

/// `spec.suspend` of the Job.
pub fn is_suspended(job: &ObservedJob) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
}

/// Pods the Job reports as active (0 when unknown or negative).
pub fn active_pods(job: &ObservedJob) -> u32 {
    job.status
        .as_ref()
        .and_then(|s| s.active)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn condition_true<'a>(job: &'a ObservedJob, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::observe::observed_job::ObservedJobSpec;
    use k8s_openapi::api::batch::v1::JobStatus;
    use k8s_openapi::jiff::Timestamp;

    fn cond(type_: &str, status: &str, at: i64) -> JobCondition {
        JobCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            last_transition_time: Timestamp::from_second(at).ok().map(Time),
            ..JobCondition::default()
        }
    }

    fn job(conditions: Vec<JobCondition>, status: JobStatus) -> ObservedJob {
        ObservedJob {
            status: Some(JobStatus {
                conditions: Some(conditions),
                ..status
            }),
            ..ObservedJob::default()
        }
    }

    #[test]
    fn missing_job_is_not_created() {
        assert_eq!(step_outcome(None), StepOutcome::NotCreated);
        assert_eq!(
            step_outcome(Some(&ObservedJob::default())),
            StepOutcome::Running
        );
    }

    #[test]
    fn success_signals() {
        let early = job(
            vec![cond("SuccessCriteriaMet", "True", 10)],
            JobStatus::default(),
        );
        assert_eq!(job_outcome(&early), StepOutcome::Succeeded);
        let late = job(vec![cond("Complete", "True", 12)], JobStatus::default());
        assert_eq!(job_outcome(&late), StepOutcome::Succeeded);
        let both = job(
            vec![
                cond("SuccessCriteriaMet", "True", 10),
                cond("Complete", "True", 12),
            ],
            JobStatus::default(),
        );
        assert_eq!(
            finished_at(&both),
            Timestamp::from_second(10).ok().map(Time).as_ref()
        );
    }

    #[test]
    fn failure_signals() {
        let early = job(vec![cond("FailureTarget", "True", 5)], JobStatus::default());
        assert_eq!(job_outcome(&early), StepOutcome::Failed);
        assert_eq!(
            finished_at(&early),
            Timestamp::from_second(5).ok().map(Time).as_ref()
        );
        let late = job(vec![cond("Failed", "True", 7)], JobStatus::default());
        assert_eq!(job_outcome(&late), StepOutcome::Failed);
    }

    #[test]
    fn false_conditions_and_pod_counts_do_not_decide() {
        let j = job(
            vec![cond("Complete", "False", 1), cond("Failed", "Unknown", 1)],
            JobStatus {
                failed: Some(3),
                succeeded: Some(1),
                active: Some(1),
                ..JobStatus::default()
            },
        );
        assert_eq!(job_outcome(&j), StepOutcome::Running);
        assert_eq!(finished_at(&j), None);
        assert_eq!(active_pods(&j), 1);
    }

    #[test]
    fn failure_wins_over_success() {
        let j = job(
            vec![cond("Complete", "True", 1), cond("Failed", "True", 1)],
            JobStatus::default(),
        );
        assert_eq!(job_outcome(&j), StepOutcome::Failed);
    }

    #[test]
    fn completion_time_is_the_fallback() {
        let at = Timestamp::from_second(99).ok().map(Time);
        let j = ObservedJob {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    ..JobCondition::default()
                }]),
                completion_time: at.clone(),
                ..JobStatus::default()
            }),
            ..ObservedJob::default()
        };
        assert_eq!(finished_at(&j), at.as_ref());
    }

    #[test]
    fn the_failure_detail_names_the_reason_and_the_exit_code_of_a_fail_job_rule() {
        let mut target = cond("FailureTarget", "True", 5);
        target.reason = Some("PodFailurePolicy".into());
        target.message = Some(
            "Container main for pod ns/wf-g-j-x7k2p failed with exit code 3 matching FailJob rule at index 1"
                .into(),
        );
        let j = job(vec![target], JobStatus::default());
        assert_eq!(
            failure_detail(&j),
            Some(FailureDetail {
                reason: Some("PodFailurePolicy".into()),
                exit_code: Some(3),
            })
        );
        let mut limit = cond("Failed", "True", 7);
        limit.reason = Some("BackoffLimitExceeded".into());
        limit.message = Some("Job has reached the specified backoff limit".into());
        let j = job(vec![limit], JobStatus::default());
        let detail = failure_detail(&j).unwrap();
        assert_eq!(detail.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(detail.exit_code, None);
        let running = job(vec![cond("Complete", "False", 1)], JobStatus::default());
        assert_eq!(failure_detail(&running), None);
    }

    #[test]
    fn exit_codes_in_messages() {
        assert_eq!(exit_code_in_message("failed with exit code 255"), Some(255));
        assert_eq!(exit_code_in_message("with exit code -1 matching"), Some(-1));
        assert_eq!(exit_code_in_message("with exit code x"), None);
        assert_eq!(exit_code_in_message("with exit code "), None);
        assert_eq!(
            exit_code_in_message("Pod ns/p has condition DisruptionTarget"),
            None
        );
        assert_eq!(cut("ééé", 3), "é");
    }

    #[test]
    fn suspension_and_active_counts() {
        let j = ObservedJob {
            spec: Some(ObservedJobSpec {
                suspend: Some(true),
                ..ObservedJobSpec::default()
            }),
            status: Some(JobStatus {
                active: Some(-1),
                ..JobStatus::default()
            }),
            ..ObservedJob::default()
        };
        assert!(is_suspended(&j));
        assert_eq!(job_outcome(&j), StepOutcome::Suspended);
        assert_eq!(active_pods(&j), 0);
        assert!(!is_suspended(&ObservedJob::default()));
        assert_eq!(started_at(&j), None);
    }

    #[test]
    fn a_suspended_job_with_a_queue_label_is_queued_until_admitted() {
        let mut created = k8s_openapi::api::batch::v1::Job::default();
        crate::build::kueue::queue_job(
            &mut created,
            &jobsmith_api::Queueing {
                queue_name: Some("q".into()),
                priority_class_name: None,
            },
        );
        let mut j = ObservedJob::from(created);
        assert_eq!(job_outcome(&j), StepOutcome::Queued);
        // Kueue admits it: it runs like any Job.
        if let Some(spec) = j.spec.as_mut() {
            spec.suspend = Some(false);
        }
        assert_eq!(job_outcome(&j), StepOutcome::Running);
        // A finished queued Job is its outcome.
        j.status = Some(JobStatus {
            conditions: Some(vec![cond("Complete", "True", 3)]),
            ..JobStatus::default()
        });
        if let Some(spec) = j.spec.as_mut() {
            spec.suspend = Some(true);
        }
        assert_eq!(job_outcome(&j), StepOutcome::Succeeded);
    }
}
