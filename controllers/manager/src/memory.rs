//! What a run controller remembers of each run object between reconciles (pure data, no client):
//! the last seen phase of every step, the refused creates, the compiled plan and the status last
//! written. Rebuilt from the durable `status.record` after a restart.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use indexmap::IndexMap;
use jobsmith_api::{
    Phase, RetryEntry, RunStatus, StepEntry, StepOutputs, StepPhase as ApiStepPhase, StepRecord,
};
use jobsmith_engine::{
    ObservedJob,
    build::naming,
    compile::{Plan, PlannedStep},
    status::record::{self, Recorded},
    status::rollup::{self, Blocker},
};
use serde_json::Value;

/// What is remembered of every step, by step key (a fast hasher: the keys come from the
/// cluster's own objects, not from a network peer), kept in the plan's step order
/// ([`RunMemo::align`]) so that a reconcile, which visits every step of its run several times,
/// finds step `i` at position `i` without hashing its key ([`step_at`], [`step_at_mut`]).
pub type StepMemos = IndexMap<String, StepMemo, foldhash::fast::RandomState>;

/// The memory of the step with `key`, step `i` of the plan: at position `i` when the memory is
/// in the plan's order (one comparison of the key), else looked up by key.
pub fn step_at<'a>(steps: &'a StepMemos, i: usize, key: &str) -> Option<&'a StepMemo> {
    match steps.get_index(i) {
        Some((k, known)) if k == key => Some(known),
        _ => steps.get(key),
    }
}

/// [`step_at`], to change it.
pub fn step_at_mut<'a>(steps: &'a mut StepMemos, i: usize, key: &str) -> Option<&'a mut StepMemo> {
    let in_place = steps.get_index(i).is_some_and(|(k, _)| k == key);
    if in_place {
        steps.get_index_mut(i).map(|(_, known)| known)
    } else {
        steps.get_mut(key)
    }
}

/// What was last seen of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepMemo {
    pub phase: ApiStepPhase,
    pub reason: Option<String>,
    /// This process created the step's Job.
    pub created: bool,
    /// The cache has held the step's Job at least once.
    pub seen: bool,
    /// The step had a Job at some point (created here, seen, or in the durable record): if it
    /// is gone without a recorded outcome, the step is `Lost`, never created again.
    pub started: bool,
    /// Not in the record a restart started from (beyond the status' entry cap): its first
    /// observation is a baseline, not a transition (no Event, no metric).
    pub baseline: bool,
    /// The last refused create, while it stands.
    pub refused: Option<Refusal>,
    /// The step's current attempt (0 and 1 both mean the first; a retry in place moves a
    /// failed step to the next one, whose Job has a name of its own).
    pub attempt: u32,
    /// A create of its Job was sent and has not landed yet: it counts as running.
    pub creating: bool,
}

impl StepMemo {
    /// The step's current attempt, at least 1.
    pub fn attempt(&self) -> u32 {
        self.attempt.max(1)
    }

    /// The name of the Job of the step's current attempt.
    pub fn job_name<'a>(&self, step: &'a PlannedStep) -> Cow<'a, str> {
        match self.attempt() {
            1 => Cow::Borrowed(step.job_name.as_str()),
            n => Cow::Owned(naming::attempt_name(&step.job_name, n)),
        }
    }

    /// Starts the step's next attempt (a retry in place): it counts as never created, and
    /// only a step that had a Job of its own moves to a new attempt (a new Job name); one
    /// that never had one (a refused create) is simply tried again.
    pub fn retry(&mut self) {
        let attempt = if self.started {
            self.attempt() + 1
        } else {
            self.attempt()
        };
        *self = StepMemo {
            attempt,
            ..StepMemo::default()
        };
    }
}

/// A create the API server refused, and when it may be tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The object's generation and the template's resourceVersion it was refused for: a change
    /// of either ends the refusal at once.
    pub generation: Option<i64>,
    pub template_version: Option<String>,
    /// What the step shows meanwhile.
    pub blocker: Blocker,
    /// `None`: the Job itself was rejected (400/422); only a change ends it.
    pub retry_at: Option<Instant>,
    pub attempts: u32,
}

/// What was last seen of one run object.
#[derive(Clone, Debug, Default)]
pub struct RunMemo {
    pub uid: String,
    pub phase: Option<Phase>,
    /// The message of the invalid-spec status last reported.
    pub invalid: Option<String>,
    pub steps: StepMemos,
    /// Rebuilt from a status after a restart: steps without a record start as a baseline.
    pub restored: bool,
    /// The durable record of the status a restart started from, applied once the plan is known.
    pub pending_record: Option<StepRecord>,
    /// The plan compiled for this generation (`RunKind::PLAN_FROM_SPEC` kinds only).
    pub plan: Option<(Option<i64>, Arc<Plan>)>,
    /// The status this manager last wrote, and the resourceVersion of the object it was written
    /// over. While the cache still shows that version (our own write not yet delivered by the
    /// watch, typically when a Job event arrives first) the status is compared with what we
    /// wrote, not with the stale copy: otherwise the same patch would be sent again.
    pub written: Option<WrittenStatus>,
    /// The object's status as JSON at the `resourceVersion` it was read at (`run/report.rs`).
    pub read_status: Option<(String, Value)>,
    /// When this manager last patched the status: a change of step detail only waits until
    /// `--status-interval-ms` after it (`run/report.rs`).
    pub last_patch: Option<Instant>,
    /// The object's serialized size and the generation it was measured at: the detail-only
    /// status writes of a large object are spaced further apart (`run/report.rs`).
    pub object_bytes: Option<(Option<i64>, usize)>,
    /// When the last evaluation of this object ended and what its pure part cost (observe,
    /// decide, roll up): the next one waits in proportion (`run/mod.rs`, `evaluation_gap`).
    pub last_evaluation: Option<(Instant, std::time::Duration)>,
    /// The retry requests acted on (`status.retries`, bounded) and their total count: this,
    /// not the cached object, says whether a request is new (the cache may not show our last
    /// status write yet, and a request must never be acted on twice).
    pub retries: Vec<RetryEntry>,
    pub retry_count: u32,
    /// The outputs read of each producing step (by step key), as `status.outputs` records
    /// them: a step listed here is never read again.
    pub outputs: BTreeMap<String, StepOutputs>,
    /// The Jobs this process created that the cache has not shown yet, by step key: the
    /// create's answer stands in for them (a step's start time is in the next status).
    pub fresh_jobs: HashMap<String, Arc<ObservedJob>>,
    /// The writes sent off without waiting and what came of them ([`Landing`]).
    pub landing: Arc<Landing>,
    /// Since when status writes wait for creates sent by the same reconcile (`run/report.rs`).
    pub held_for_creates: Option<Instant>,
    /// The key digest of the plan whose order `steps` is in ([`RunMemo::align`]).
    pub aligned_to: Option<String>,
}

/// The writes of a run object that a reconcile sends off without waiting for the API server
/// (a batch of Job creates, a status patch), and what came of them, read back by the next
/// reconcile of the object (`run/mod.rs`, "Writes in flight"). Pure data: the tasks that do the
/// writes put what they learnt here and wake the object when a landing asks for it.
#[derive(Debug, Default)]
pub struct Landing {
    state: Mutex<LandingState>,
}

#[derive(Debug, Default)]
struct LandingState {
    /// Batches of creates in flight.
    creating: usize,
    patching: bool,
    creates: Vec<LandedCreate>,
    status: Option<LandedStatus>,
    /// A reconcile waits for the status patch in flight: wake the object when it lands.
    wake: bool,
}

/// What one create sent off did.
#[derive(Debug)]
pub struct LandedCreate {
    pub key: String,
    /// The attempt the Job was built for.
    pub attempt: u32,
    /// The object's generation and the template's resourceVersion the Job was built from.
    pub generation: Option<i64>,
    pub template_version: Option<String>,
    pub outcome: CreateOutcome,
}

/// The outcome of one create, as the step memory needs it.
#[derive(Debug)]
pub enum CreateOutcome {
    Created(Box<ObservedJob>),
    /// A Job of ours already had the name.
    Exists,
    /// A Job of another owner (or none) holds the name.
    Conflict,
    /// Refused: what the step shows, and whether trying again later may help.
    Refused {
        blocker: Blocker,
        retryable: bool,
    },
}

/// What the status patch sent off did.
#[derive(Debug)]
pub enum LandedStatus {
    /// Stored; the version it produced, and the status stored when it is not the one sent
    /// (the summary written after the full status was refused).
    Patched {
        produced_resource_version: Option<String>,
        summary: Option<Value>,
    },
    /// The object is gone, or the summary equalled what was stored: nothing to remember.
    Dropped,
    /// Not stored: the error's category (for the error metrics) and message.
    Failed {
        category: &'static str,
        message: String,
    },
}

impl Landing {
    fn state(&self) -> std::sync::MutexGuard<'_, LandingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether creates and a status patch are in flight.
    pub fn in_flight(&self) -> (bool, bool) {
        let state = self.state();
        (state.creating > 0, state.patching)
    }

    /// A batch of creates goes out (its landing always wakes the object).
    pub fn send_creates(&self) {
        self.state().creating += 1;
    }

    /// A status patch goes out; `wake`: the object wants to be reconciled when it lands.
    pub fn send_patch(&self, wake: bool) {
        let mut state = self.state();
        state.patching = true;
        state.wake |= wake;
    }

    /// A reconcile waits for the status patch in flight.
    pub fn wake_when_landed(&self) {
        self.state().wake = true;
    }

    pub fn land_create(&self, landed: LandedCreate) {
        self.state().creates.push(landed);
    }

    /// A batch of creates is done: the object is woken (what they did is for the next
    /// reconcile to record, and more steps may be ready).
    pub fn creates_done(&self) {
        let mut state = self.state();
        state.creating = state.creating.saturating_sub(1);
    }

    /// The status patch is done; whether to wake the object now (always after a failure).
    pub fn land_status(&self, landed: LandedStatus) -> bool {
        let mut state = self.state();
        state.patching = false;
        let failed = matches!(landed, LandedStatus::Failed { .. });
        state.status = Some(landed);
        std::mem::take(&mut state.wake) || failed
    }

    /// What landed since the last call.
    pub fn take(&self) -> (Vec<LandedCreate>, Option<LandedStatus>) {
        let mut state = self.state();
        (std::mem::take(&mut state.creates), state.status.take())
    }
}

/// The order of two resourceVersions of objects of one type, `None` when they cannot be
/// compared. Kubernetes 1.35 made them comparable (KEP-5504, stable): a well-formed version
/// is a decimal integer without leading zeros, and the longer one is newer, else the
/// lexicographically greater one. Anything else (another API server) compares as unknown.
pub fn resource_version_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let well_formed =
        |v: &str| !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit());
    (well_formed(a) && well_formed(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// A status this process wrote, kept until the cache shows it.
#[derive(Clone, Debug)]
pub struct WrittenStatus {
    /// The object's version the cache showed when the write was sent.
    pub over_resource_version: Option<String>,
    /// The version the write produced (the API server's answer), when it said one.
    pub produced_resource_version: Option<String>,
    pub status: Value,
}

impl WrittenStatus {
    /// Whether a cached object at `cached` is older than this write, so this write, not the
    /// cached copy, is the status now: the cache still shows the version the write went over,
    /// or one older than the version it produced (two writes in a row: the watch delivers the
    /// first one's result while the second is already stored).
    pub fn newer_than(&self, cached: Option<&str>) -> bool {
        let Some(cached) = cached else {
            return false;
        };
        if self.over_resource_version.as_deref() == Some(cached) {
            return true;
        }
        self.produced_resource_version
            .as_deref()
            .and_then(|produced| resource_version_order(cached, produced))
            == Some(std::cmp::Ordering::Less)
    }
}

impl RunMemo {
    /// The record after a restart: what the status says (steps without an entry are unknown
    /// until the durable record is applied to the plan).
    pub fn from_status(uid: &str, status: Option<&RunStatus>, entries: &[StepEntry]) -> Self {
        let invalid = status.and_then(|s| {
            let message = s.message.as_deref()?;
            rollup::is_invalid_spec(s, message).then(|| message.to_owned())
        });
        Self {
            uid: uid.to_owned(),
            phase: status.and_then(|s| s.phase),
            invalid,
            steps: entries
                .iter()
                .map(|e| {
                    // Only a blocker's reason is remembered: a failed Job's own reason
                    // (`BackoffLimitExceeded`, ...) belongs to a step that ran and finished.
                    let reason = e.reason.clone().filter(|r| rollup::is_blocker_reason(r));
                    (
                        e.key.clone(),
                        StepMemo {
                            phase: e.phase,
                            attempt: e.attempt.unwrap_or(1),
                            started: e.phase != ApiStepPhase::Pending
                                && e.phase != ApiStepPhase::Aborted
                                && e.phase != ApiStepPhase::Skipped
                                && reason.is_none(),
                            reason,
                            ..StepMemo::default()
                        },
                    )
                })
                .collect(),
            restored: status.is_some(),
            pending_record: status.and_then(|s| s.record.clone()),
            plan: None,
            written: None,
            read_status: None,
            last_patch: None,
            object_bytes: None,
            last_evaluation: None,
            retries: status.map(|s| s.retries.clone()).unwrap_or_default(),
            retry_count: status
                .map(|s| {
                    s.retry_count
                        .unwrap_or(u32::try_from(s.retries.len()).unwrap_or(0))
                })
                .unwrap_or(0),
            outputs: status
                .map(|s| {
                    s.outputs
                        .iter()
                        .map(|o| (o.step.clone(), o.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            fresh_jobs: HashMap::new(),
            landing: Arc::default(),
            held_for_creates: None,
            aligned_to: None,
        }
    }

    /// Applies the durable record of a restart to the plan: every step it knows gets its
    /// outcome (or at least the fact that it had a Job) whatever the entry cap left out.
    pub fn apply_record(&mut self, plan: &Plan) {
        let Some(record) = self.pending_record.take() else {
            return;
        };
        let keys: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
        let Some(states) = record::for_plan(&record, &keys, None) else {
            tracing::warn!(
                "the step record was written for other steps (the spec changed while no manager ran); steps without a Job or entry are taken as not started"
            );
            return;
        };
        let attempts = record::attempts_for_plan(&record, &keys).unwrap_or_default();
        for (i, (step, state)) in plan.steps.iter().zip(states).enumerate() {
            let known = self.steps.entry(step.key.clone()).or_default();
            if let Some(attempt) = attempts.get(i) {
                known.attempt = known.attempt.max(*attempt);
            }
            let (phase, reason) = match state {
                Recorded::None => continue,
                Recorded::Created if known.phase == ApiStepPhase::Pending => {
                    (ApiStepPhase::Running, None)
                }
                Recorded::Created => (known.phase, known.reason.clone()),
                Recorded::Succeeded => (ApiStepPhase::Succeeded, None),
                Recorded::Failed => (ApiStepPhase::Failed, None),
                Recorded::Lost => (
                    ApiStepPhase::Failed,
                    Some(jobsmith_api::reasons::LOST.to_owned()),
                ),
            };
            known.started = true;
            known.phase = phase;
            known.reason = reason;
            known.baseline = false;
        }
    }
}

/// Per-object records of one controller; a reconcile of one object is never concurrent with
/// another of the same object, so a record is taken out for the reconcile and put back after.
#[derive(Default)]
pub struct RunMemory {
    runs: Mutex<HashMap<(String, String), RunMemo>>,
}

impl RunMemory {
    pub fn take(&self, namespace: &str, name: &str) -> Option<RunMemo> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_owned(), name.to_owned()))
    }

    pub fn put(&self, namespace: &str, name: &str, memo: RunMemo) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_owned(), name.to_owned()), memo);
    }

    /// The objects remembered, as (namespace, name).
    pub fn keys(&self) -> Vec<(String, String)> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Forgets an object (it was deleted).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.take(namespace, name);
    }
}

/// Whether the step reached a result of its own Job earlier (not a blocker's).
pub fn finished_before(known: &StepMemo) -> bool {
    known.reason.is_none() && matches!(known.phase, ApiStepPhase::Succeeded | ApiStepPhase::Failed)
}

impl RunMemo {
    /// Drops the steps that are no longer in the plan (removed from the spec).
    pub fn forget_removed_steps(&mut self, plan: &Plan) {
        if self.steps.len() > plan.steps.len() {
            let keys: HashSet<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
            self.steps.retain(|k, _| keys.contains(k.as_str()));
            self.aligned_to = None;
        }
    }

    /// Puts the step memories in the plan's order, once per plan: step `i` is entry `i` (a
    /// step not remembered yet gets a fresh memory, a baseline after a restart); remembered
    /// steps the plan no longer has follow. Entries added later go after them, so the order
    /// holds until the plan changes.
    pub fn align(&mut self, plan: &Plan) {
        let digest = plan.key_digest();
        if self.aligned_to.as_deref() == Some(digest) && self.steps.len() >= plan.steps.len() {
            return;
        }
        let mut old = std::mem::take(&mut self.steps);
        let mut steps = StepMemos::with_capacity_and_hasher(
            old.len().max(plan.steps.len()),
            foldhash::fast::RandomState::default(),
        );
        for step in &plan.steps {
            let known = old.swap_remove(&step.key).unwrap_or_else(|| StepMemo {
                baseline: self.restored,
                ..StepMemo::default()
            });
            steps.insert(step.key.clone(), known);
        }
        steps.extend(old);
        self.steps = steps;
        self.aligned_to = Some(digest.to_owned());
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_compare_as_kubernetes_defines_them() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        assert_eq!(resource_version_order("9", "10"), Some(Less));
        assert_eq!(resource_version_order("123", "122"), Some(Greater));
        assert_eq!(resource_version_order("42", "42"), Some(Equal));
        for odd in ["", "0", "012", "12a", "-1"] {
            assert_eq!(resource_version_order(odd, "12"), None, "{odd:?}");
            assert_eq!(resource_version_order("12", odd), None, "{odd:?}");
        }
    }

    /// A step whose Job failed carries the Job's reason in its entry (docs/lifecycle.md "Status
    /// history"); after a restart it is still a step that ran and finished, never one that a
    /// blocker kept from starting (which could be created again).
    #[test]
    fn a_jobs_failure_reason_is_not_taken_for_a_blocker_after_a_restart() {
        let entries = [
            StepEntry {
                key: "failed".into(),
                phase: ApiStepPhase::Failed,
                reason: Some("BackoffLimitExceeded".into()),
                exit_code: None,
                ..StepEntry::default()
            },
            StepEntry {
                key: "conflict".into(),
                phase: ApiStepPhase::Failed,
                reason: Some(jobsmith_api::reasons::NAME_CONFLICT.into()),
                ..StepEntry::default()
            },
        ];
        let memo = RunMemo::from_status("u", None, &entries);
        let failed = &memo.steps["failed"];
        assert!(failed.started && failed.reason.is_none());
        assert!(finished_before(failed));
        let conflict = &memo.steps["conflict"];
        assert!(!conflict.started && !finished_before(conflict));
        assert_eq!(conflict.reason.as_deref(), Some("NameConflict"));
    }
}
