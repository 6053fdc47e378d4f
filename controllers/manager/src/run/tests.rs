//! Unit tests of the run mechanism's pure parts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic

use jobsmith_api::{Phase, RunStatus, StepEntry, StepPhase as ApiStepPhase};
use jobsmith_engine::{
    StepOutcome,
    compile::{Plan, PlannedStep},
    status::rollup::{self, Blocker},
};

use std::time::{Duration, Instant};

use super::{
    evaluation_gap,
    notes::step_notes,
    observe::outcome_without_job,
    report::{
        Pace, STATUS_BYTES_PER_SECOND, hold_for, keep_current, paced_interval, read_status,
        written_status,
    },
};
use crate::memory::{RunMemo, StepMemo};
use crate::status::now;

#[test]
fn a_step_whose_job_is_gone_is_never_created_again() {
    // Finished and recorded: the result stands.
    let mut m = StepMemo {
        phase: ApiStepPhase::Succeeded,
        started: true,
        ..Default::default()
    };
    assert_eq!(outcome_without_job(&m), (StepOutcome::Succeeded, None));
    m.phase = ApiStepPhase::Failed;
    assert_eq!(outcome_without_job(&m), (StepOutcome::Failed, None));
    // A conflict is re-checked: the other Job may be gone now.
    let m = StepMemo {
        phase: ApiStepPhase::Failed,
        reason: Some("NameConflict".into()),
        ..Default::default()
    };
    assert_eq!(outcome_without_job(&m), (StepOutcome::NotCreated, None));
    // It had a Job that went away before its outcome was recorded: Lost, not re-created.
    let mut m = StepMemo {
        phase: ApiStepPhase::Running,
        started: true,
        ..Default::default()
    };
    assert_eq!(
        outcome_without_job(&m),
        (StepOutcome::Failed, Some(Blocker::Lost))
    );
    // Created by this process a moment ago and not cached yet: running.
    m.created = true;
    assert_eq!(outcome_without_job(&m), (StepOutcome::Running, None));
    m.seen = true;
    assert_eq!(
        outcome_without_job(&m),
        (StepOutcome::Failed, Some(Blocker::Lost))
    );
    // A recorded loss stays a loss.
    let m = StepMemo {
        phase: ApiStepPhase::Failed,
        reason: Some("Lost".into()),
        ..Default::default()
    };
    assert_eq!(
        outcome_without_job(&m),
        (StepOutcome::Failed, Some(Blocker::Lost))
    );
    // Never had a Job: create it.
    assert_eq!(
        outcome_without_job(&StepMemo::default()),
        (StepOutcome::NotCreated, None)
    );
}

#[test]
fn the_record_of_a_restart_covers_steps_beyond_the_entry_cap() {
    use jobsmith_engine::status::record::{Recorded, digest, encode};
    let keys: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
    let mut states = vec![Recorded::Succeeded; 600];
    states[599] = Recorded::Created;
    let record = encode(&states, digest(keys.iter().map(String::as_str)));
    let status = RunStatus {
        phase: Some(Phase::Running),
        record: Some(record),
        ..Default::default()
    };
    let plan = Plan {
        dag: jobsmith_engine::Dag::build(
            &keys
                .iter()
                .map(|k| jobsmith_engine::StepSpec {
                    key: k.clone(),
                    group: None,
                    deps: vec![],
                })
                .collect::<Vec<_>>(),
            &[],
        )
        .unwrap(),
        steps: keys
            .iter()
            .map(|k| PlannedStep {
                key: k.clone(),
                job_name: format!("run-{k}"),
                group: None,
                template_ref: None,
                ..PlannedStep::default()
            })
            .collect(),
        policies: Default::default(),
        key_digest: Default::default(),
    };
    let mut memo = RunMemo::from_status("u", Some(&status), &[]);
    memo.apply_record(&plan);
    assert_eq!(
        outcome_without_job(&memo.steps["s10"]),
        (StepOutcome::Succeeded, None)
    );
    assert_eq!(
        outcome_without_job(&memo.steps["s599"]),
        (StepOutcome::Failed, Some(Blocker::Lost))
    );
}

#[test]
fn events_are_derived_from_transitions_only() {
    let step = PlannedStep {
        key: "g/a".into(),
        job_name: "wf-g-a".into(),
        group: Some("g".into()),
        template_ref: None,
        ..PlannedStep::default()
    };
    let mut notes = Vec::new();
    let mut finished = Vec::new();
    let running = StepMemo {
        phase: ApiStepPhase::Running,
        ..Default::default()
    };
    step_notes(
        &step,
        &running,
        ApiStepPhase::Succeeded,
        None,
        true,
        &mut notes,
        |ok| finished.push(ok),
    );
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].reason, "JobSucceeded");
    assert_eq!(finished, [true]);
    // Unchanged: nothing.
    let done = StepMemo {
        phase: ApiStepPhase::Succeeded,
        ..Default::default()
    };
    notes.clear();
    step_notes(
        &step,
        &done,
        ApiStepPhase::Succeeded,
        None,
        true,
        &mut notes,
        |_| panic!("no second finish"),
    );
    assert!(notes.is_empty());
    // A conflict is announced once, as a conflict and not as a failed Job.
    step_notes(
        &step,
        &StepMemo::default(),
        ApiStepPhase::Failed,
        Some(&Blocker::NameConflict),
        false,
        &mut notes,
        |_| panic!("a conflict is not a finished Job"),
    );
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].reason, "NameConflict");
    let conflicted = StepMemo {
        phase: ApiStepPhase::Failed,
        reason: Some("NameConflict".into()),
        ..Default::default()
    };
    notes.clear();
    step_notes(
        &step,
        &conflicted,
        ApiStepPhase::Failed,
        Some(&Blocker::NameConflict),
        false,
        &mut notes,
        |_| {},
    );
    assert!(notes.is_empty());
    // By default (`--step-events=warnings`) a success is not announced per step; the finish
    // hook (metrics) still runs.
    let mut finished = Vec::new();
    step_notes(
        &step,
        &running,
        ApiStepPhase::Succeeded,
        None,
        false,
        &mut notes,
        |ok| finished.push(ok),
    );
    assert!(notes.is_empty());
    assert_eq!(finished, [true]);
    // A suspended Job is a Normal Event: only with `all`.
    step_notes(
        &step,
        &running,
        ApiStepPhase::Pending,
        Some(&Blocker::Suspended),
        false,
        &mut notes,
        |_| {},
    );
    assert!(notes.is_empty());
}

#[test]
fn the_record_after_a_restart_comes_from_the_status() {
    let status = rollup::invalid_spec(None, "dependency cycle: a -> b -> a", Some(1), &now());
    let memo = RunMemo::from_status("u", Some(&status), &[]);
    assert_eq!(
        memo.invalid.as_deref(),
        Some("dependency cycle: a -> b -> a")
    );
    assert_eq!(memo.phase, Some(Phase::Failed));
    // Steps the status does not list start as a baseline (no Event for what happened before).
    assert!(memo.restored);
    let entries = [StepEntry {
        key: "a".into(),
        phase: ApiStepPhase::Succeeded,
        ..Default::default()
    }];
    let memo = RunMemo::from_status("u", None, &entries);
    assert_eq!(memo.steps["a"].phase, ApiStepPhase::Succeeded);
    assert!(memo.invalid.is_none());
    assert!(!memo.restored, "a new object has no history to protect");
}

/// Exactly once per attempt: after a restart, the record says which attempt each step is at,
/// so the step is looked up (and, if ever, created) under that attempt's Job name; the earlier
/// attempt's outcome no longer stands for it.
#[test]
fn a_restart_resumes_each_step_at_its_recorded_attempt() {
    use jobsmith_engine::status::record::{Recorded, digest, encode_attempts};
    let keys = ["a", "b", "c"];
    let record = encode_attempts(
        &[Recorded::Succeeded, Recorded::None, Recorded::Created],
        &[1, 2, 3],
        digest(keys),
    );
    let status = RunStatus {
        phase: Some(Phase::Running),
        record: Some(record),
        ..Default::default()
    };
    let plan = Plan {
        dag: jobsmith_engine::Dag::build(
            &keys
                .iter()
                .map(|k| jobsmith_engine::StepSpec {
                    key: (*k).into(),
                    group: None,
                    deps: vec![],
                })
                .collect::<Vec<_>>(),
            &[],
        )
        .unwrap(),
        steps: keys
            .iter()
            .map(|k| PlannedStep {
                key: (*k).into(),
                job_name: format!("run-{k}"),
                group: None,
                template_ref: None,
                ..PlannedStep::default()
            })
            .collect(),
        policies: Default::default(),
        key_digest: Default::default(),
    };
    let mut memo = RunMemo::from_status("u", Some(&status), &[]);
    memo.apply_record(&plan);
    assert_eq!(memo.steps["a"].job_name(&plan.steps[0]), "run-a");
    let b = &memo.steps["b"];
    assert_eq!(b.attempt(), 2);
    assert_eq!(
        b.job_name(&plan.steps[1]),
        jobsmith_engine::build::naming::attempt_name("run-b", 2)
    );
    // Attempt 2 of b never had a Job: it may be created (under its own name).
    assert_eq!(outcome_without_job(b), (StepOutcome::NotCreated, None));
    // Attempt 3 of c had one: gone without an outcome, it is Lost, never created again.
    assert_eq!(memo.steps["c"].attempt(), 3);
    assert_eq!(
        outcome_without_job(&memo.steps["c"]),
        (StepOutcome::Failed, Some(Blocker::Lost))
    );
    // And the record written back is the one read.
    let written =
        super::report::step_record(&plan, &memo, &[None, None, None], &[None, None, None]);
    assert_eq!(
        jobsmith_engine::status::record::decode_attempts(&written),
        vec![1, 2, 3]
    );
}

#[test]
fn a_retry_moves_only_a_step_that_had_a_job_to_a_new_attempt() {
    let mut failed = StepMemo {
        phase: ApiStepPhase::Failed,
        started: true,
        seen: true,
        ..Default::default()
    };
    failed.retry();
    assert_eq!(failed.attempt(), 2);
    assert_eq!(
        outcome_without_job(&failed),
        (StepOutcome::NotCreated, None)
    );
    failed.started = true;
    failed.retry();
    assert_eq!(failed.attempt(), 3);
    // A create refused as invalid never made a Job: tried again under the same name.
    let mut refused = StepMemo {
        phase: ApiStepPhase::Failed,
        reason: Some("InvalidSpec".into()),
        ..Default::default()
    };
    refused.retry();
    assert_eq!(refused.attempt(), 1);
    assert_eq!(refused.reason, None);
}

#[test]
fn a_run_its_deadline_ended_stays_ended_after_a_restart() {
    use jobsmith_api::reasons;
    use jobsmith_engine::{evaluate_at, lifecycle};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    let at = |s: i64| Time(Timestamp::from_second(s).unwrap());
    let keys = ["g/quick", "g/slow", "g/never"];
    let status = RunStatus {
        phase: Some(Phase::Failed),
        start_time: Some(at(100)),
        completion_time: Some(at(105)),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: reasons::DEADLINE_EXCEEDED.into(),
            message: String::new(),
            last_transition_time: at(105),
            observed_generation: Some(1),
        }],
        ..Default::default()
    };
    let entry = |key: &str, phase| StepEntry {
        key: key.into(),
        phase,
        ..Default::default()
    };
    // The Jobs are gone (jobsCleanup, say): only the status remains.
    let entries = [
        entry(keys[0], ApiStepPhase::Succeeded),
        entry(keys[1], ApiStepPhase::Failed),
        entry(keys[2], ApiStepPhase::Aborted),
    ];
    let memo = RunMemo::from_status("u", Some(&status), &entries);
    let outcomes: Vec<StepOutcome> = keys
        .iter()
        .map(|k| outcome_without_job(&memo.steps[*k]).0)
        .collect();
    assert_eq!(
        outcomes,
        [
            StepOutcome::Succeeded,
            StepOutcome::Failed,
            StepOutcome::NotCreated
        ]
    );
    let deadline = lifecycle::deadline(Some(4), Some(&status), &memo.retries, at(500).0);
    assert!(deadline.is_exceeded());
    let dag = jobsmith_engine::Dag::build(
        &keys
            .iter()
            .map(|k| jobsmith_engine::StepSpec {
                key: (*k).into(),
                group: None,
                deps: vec![],
            })
            .collect::<Vec<_>>(),
        &[],
    )
    .unwrap();
    let decision = evaluate_at(&dag, &outcomes, &Default::default(), true, |_| false);
    assert!(decision.create.is_empty() && decision.stop.is_empty());
    assert_eq!(decision.phase, jobsmith_engine::RunPhase::Failed);
    assert!(decision.deadline_exceeded);
}

#[test]
fn only_step_detail_waits_and_only_for_the_rest_of_the_interval() {
    let second = Duration::from_secs(1);
    let now = Instant::now();
    let last = now - Duration::from_millis(300);
    // Never patched by this process: at once (the first status, a restart).
    assert_eq!(hold_for(Pace::Paced, None, second, now), None);
    // Patched 300 ms ago: the detail waits the 700 ms left.
    assert_eq!(
        hold_for(Pace::Paced, Some(last), second, now),
        Some(Duration::from_millis(700))
    );
    // What must go at once, goes at once.
    assert_eq!(hold_for(Pace::AtOnce, Some(last), second, now), None);
    // The interval has passed, or pacing is off.
    assert_eq!(hold_for(Pace::Paced, Some(now - second), second, now), None);
    assert_eq!(hold_for(Pace::Paced, Some(last), Duration::ZERO, now), None);
}

#[test]
fn a_large_object_spaces_its_detail_writes_in_proportion_to_its_size() {
    let second = Duration::from_secs(1);
    // A small object: the configured interval.
    assert_eq!(paced_interval(second, 70 * 1024), second);
    assert_eq!(paced_interval(second, STATUS_BYTES_PER_SECOND), second);
    // 1.5 MiB (a 10,000-flow JobFlow as stored): six times as long.
    assert_eq!(
        paced_interval(second, 6 * STATUS_BYTES_PER_SECOND),
        Duration::from_secs(6)
    );
    // A longer configured interval stands; pacing off stays off.
    assert_eq!(
        paced_interval(Duration::from_secs(10), 6 * STATUS_BYTES_PER_SECOND),
        Duration::from_secs(10)
    );
    assert_eq!(
        paced_interval(Duration::ZERO, 6 * STATUS_BYTES_PER_SECOND),
        Duration::ZERO
    );
}

#[test]
fn a_costly_evaluation_spaces_the_next_one_and_a_cheap_one_does_not() {
    let now = Instant::now();
    // 5 ms of work (a 10,000-step run) ended 10 ms ago: the next waits 99 x 5 - 10 = 485 ms.
    let big = Some((now - Duration::from_millis(10), Duration::from_millis(5)));
    assert_eq!(evaluation_gap(big, now), Some(Duration::from_millis(485)));
    assert_eq!(evaluation_gap(big, now + Duration::from_millis(485)), None);
    // A reconcile that cost far more (a plan compiled, a preempted thread): at most a second.
    let slow = Some((now, Duration::from_millis(30)));
    assert_eq!(evaluation_gap(slow, now), Some(Duration::from_secs(1)));
    // 20 us (a small run): under a millisecond, never held back.
    let small = Some((now, Duration::from_micros(20)));
    assert_eq!(evaluation_gap(small, now), None);
    assert_eq!(evaluation_gap(None, now), None);
}

/// A ManagedJob `wf` of one step, cached at `resource_version` with `status`.
fn one_step_workflow_at(
    resource_version: &str,
    status: serde_json::Value,
) -> jobsmith_api::ManagedJob {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "jobsmith.dev/v1alpha1", "kind": "ManagedJob",
        "metadata": {"name": "wf", "namespace": "ns", "resourceVersion": resource_version},
        "spec": {"groups": [{"name": "g", "jobs": [{"name": "a", "image": "busybox"}]}]},
        "status": status
    }))
    .unwrap()
}

#[test]
fn the_status_read_is_reused_only_at_the_same_resource_version() {
    let mut obj = one_step_workflow_at("7", serde_json::json!({"phase": "Running"}));
    let mut memo = RunMemo::default();
    let keep = |memo: &mut RunMemo, stale: bool, version: &str, phase: &str| {
        keep_current(
            memo,
            stale,
            (Some(version.into()), None),
            serde_json::json!({ "phase": phase }),
        );
    };
    let read = read_status(&obj, &mut memo, Some("7"));
    assert_eq!(read["phase"], "Running");
    // Kept at version 7: the next reconcile at version 7 takes it as is (even if the typed
    // object were to say otherwise, which at one version it cannot).
    keep(&mut memo, false, "7", "Kept");
    assert_eq!(read_status(&obj, &mut memo, Some("7"))["phase"], "Kept");
    // Taken out: the next read serializes again.
    assert_eq!(read_status(&obj, &mut memo, Some("7"))["phase"], "Running");
    // Another version: read from the object.
    keep(&mut memo, false, "7", "Kept");
    obj.metadata.resource_version = Some("8".into());
    assert_eq!(read_status(&obj, &mut memo, Some("8"))["phase"], "Running");
    // Our own write not yet in the cache: it is kept as written, not as read.
    keep(&mut memo, true, "8", "Ours");
    assert!(memo.read_status.is_none());
    assert_eq!(memo.written.as_ref().unwrap().status["phase"], "Ours");
}

#[test]
fn transitions_are_computed_against_our_last_write_while_the_cache_lags() {
    use crate::memory::WrittenStatus;
    let mut obj = one_step_workflow_at(
        "7",
        serde_json::json!({"phase": "Pending", "conditions": [{"type": "Ready",
            "status": "Unknown", "reason": "Pending", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    );
    let mut memo = RunMemo::default();
    assert!(written_status(&obj, &memo).is_none());
    // Our write over version 7 made the run Running; the cache still shows version 7.
    memo.written = Some(WrittenStatus {
        over_resource_version: Some("7".into()),
        produced_resource_version: Some("9".into()),
        status: serde_json::json!({"phase": "Running", "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing",
                "message": "1 running", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
            "jobs": [{"key": "g/a", "jobName": "wf-g-a", "phase": "Running"}]}),
    });
    let latest = written_status(&obj, &memo).expect("our last write").run;
    assert_eq!(latest.phase, Some(Phase::Running));
    // A condition rolled up against it keeps the time our write gave it.
    let later = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:05Z".parse().unwrap(),
    );
    use jobsmith_engine::status::conditions::{ConditionStatus, DesiredCondition, set_condition};
    let ready = DesiredCondition::new("Ready", ConditionStatus::False, "Progressing", "2 running");
    let against_ours = set_condition(&latest.conditions, &ready, &later, Some(1));
    assert_eq!(
        against_ours[0].last_transition_time,
        latest.conditions[0].last_transition_time
    );
    // Against the cached copy it would have moved (the spurious write this avoids).
    let cached = obj.status.as_ref().unwrap().run.conditions.clone();
    let against_cache = set_condition(&cached, &ready, &later, Some(1));
    assert_eq!(against_cache[0].last_transition_time, later);
    // Version 8 (an earlier write's result, or anyone's) is older than the 9 ours produced:
    // ours is still the newest. From 9 on, the cache is.
    obj.metadata.resource_version = Some("8".into());
    assert!(written_status(&obj, &memo).is_some());
    for newer in ["9", "10"] {
        obj.metadata.resource_version = Some(newer.into());
        assert!(written_status(&obj, &memo).is_none(), "{newer}");
    }
    // Versions that cannot be compared: only the version the write went over says stale.
    let written = memo.written.as_mut().unwrap();
    written.produced_resource_version = Some("x9".into());
    obj.metadata.resource_version = Some("8".into());
    assert!(written_status(&obj, &memo).is_none());
}

#[test]
fn a_step_whose_create_is_in_flight_counts_as_running_and_is_not_sent_again() {
    let mut m = StepMemo {
        creating: true,
        ..Default::default()
    };
    assert_eq!(outcome_without_job(&m), (StepOutcome::Running, None));
    // Landed as refused: not running, may be created once the refusal's backoff passed.
    m.creating = false;
    assert_eq!(outcome_without_job(&m), (StepOutcome::NotCreated, None));
}

#[test]
fn landed_creates_are_recorded_on_their_steps() {
    use crate::memory::{CreateOutcome, LandedCreate};
    let mut memo = RunMemo::default();
    for key in ["made", "ours", "taken", "refused", "moved-on"] {
        memo.steps.insert(
            key.into(),
            StepMemo {
                creating: true,
                ..Default::default()
            },
        );
    }
    memo.steps.get_mut("moved-on").unwrap().attempt = 2;
    let landed = |key: &str, outcome| LandedCreate {
        key: key.into(),
        attempt: 1,
        generation: Some(1),
        template_version: None,
        outcome,
    };
    let job = jobsmith_engine::ObservedJob::default();
    let created = super::create::land(
        &mut memo,
        vec![
            landed("made", CreateOutcome::Created(Box::new(job))),
            landed("ours", CreateOutcome::Exists),
            landed("taken", CreateOutcome::Conflict),
            landed(
                "refused",
                CreateOutcome::Refused {
                    blocker: Blocker::CreateRefused {
                        message: "quota".into(),
                    },
                    retryable: true,
                },
            ),
            landed("moved-on", CreateOutcome::Exists),
        ],
    );
    assert_eq!(created, vec!["made".to_owned()]);
    assert!(memo.steps.values().all(|s| !s.creating));
    let made = &memo.steps["made"];
    assert!(made.created && made.started && !made.seen);
    // The answer stands in for the Job until the cache shows it.
    assert!(memo.fresh_jobs.contains_key("made"));
    assert!(memo.steps["ours"].started && !memo.steps["ours"].created);
    let taken = memo.steps["taken"].refused.as_ref().unwrap();
    assert_eq!(taken.blocker, Blocker::NameConflict);
    assert!(taken.retry_at.is_some());
    let refused = memo.steps["refused"].refused.as_ref().unwrap();
    assert!(matches!(refused.blocker, Blocker::CreateRefused { .. }));
    assert!(!memo.steps["refused"].started);
    // A create for an attempt the step has left changes nothing but the flight.
    assert!(!memo.steps["moved-on"].started);
}

#[test]
fn a_landed_patch_updates_our_last_write_and_a_failed_one_is_forgotten_and_reported() {
    use crate::memory::{LandedStatus, WrittenStatus};
    let mut memo = RunMemo::default();
    let sent = || WrittenStatus {
        over_resource_version: Some("7".into()),
        produced_resource_version: None,
        status: serde_json::json!({"phase": "Running", "record": {"steps": 2}}),
    };
    assert!(super::report::land(&mut memo, None).is_none());
    memo.written = Some(sent());
    let landed = LandedStatus::Patched {
        produced_resource_version: Some("9".into()),
        summary: None,
    };
    assert!(super::report::land(&mut memo, Some(landed)).is_none());
    let written = memo.written.as_ref().unwrap();
    assert_eq!(written.produced_resource_version.as_deref(), Some("9"));
    assert_eq!(written.status["record"]["steps"], 2);
    // The full status was refused and the summary stored instead: that is what we wrote.
    memo.written = Some(sent());
    let summary = serde_json::json!({"phase": "Running"});
    let landed = LandedStatus::Patched {
        produced_resource_version: Some("10".into()),
        summary: Some(summary.clone()),
    };
    assert!(super::report::land(&mut memo, Some(landed)).is_none());
    assert_eq!(memo.written.as_ref().unwrap().status, summary);
    // A failed patch: compared with the cache again, and the reconcile fails (its backoff).
    memo.written = Some(sent());
    let failed = LandedStatus::Failed {
        category: "status_patch",
        message: "boom".into(),
    };
    let error = super::report::land(&mut memo, Some(failed)).expect("reported");
    assert!(memo.written.is_none());
    use crate::controller::ErrorCategory;
    assert_eq!(error.category(), "status_patch");
}

#[test]
fn a_landing_wakes_the_object_only_when_someone_waits_for_it() {
    use crate::memory::{LandedStatus, Landing};
    let landing = Landing::default();
    assert_eq!(landing.in_flight(), (false, false));
    // Creates are in flight until their last batch is done.
    landing.send_creates();
    landing.send_creates();
    assert_eq!(landing.in_flight(), (true, false));
    landing.creates_done();
    assert_eq!(landing.in_flight(), (true, false));
    landing.creates_done();
    assert_eq!(landing.in_flight(), (false, false));
    // A patch nobody waits for lands quietly...
    let patched = || LandedStatus::Patched {
        produced_resource_version: None,
        summary: None,
    };
    landing.send_patch(false);
    assert_eq!(landing.in_flight(), (false, true));
    assert!(!landing.land_status(patched()));
    // ...one the reconcile asked about (cleanup, TTLs), or that a later reconcile found in
    // flight, wakes the object; a failed one always does.
    landing.send_patch(true);
    assert!(landing.land_status(patched()));
    landing.send_patch(false);
    landing.wake_when_landed();
    assert!(landing.land_status(patched()));
    landing.send_patch(false);
    let failed = LandedStatus::Failed {
        category: "status_patch",
        message: "x".into(),
    };
    assert!(landing.land_status(failed));
    // What landed is read once.
    let (creates, status) = landing.take();
    assert!(creates.is_empty() && status.is_some());
    assert!(landing.take().1.is_none());
}
