//! Report: the status a reconcile leaves (roll-up, durable step record), its write, and the
//! deferred Job TTLs that may run once the outcomes are written.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use jobsmith_api::{RunStatus, StepEntry, StepPhase as ApiStepPhase, StepRecord};
use jobsmith_engine::ObservedJob;
use jobsmith_engine::{
    Decision, StepOutcome,
    build::naming,
    compile::{self, Plan},
    observe,
    status::conditions::bounded,
    status::record::{self, Recorded},
    status::rollup::{self, Blocker, Rollup, RunInput, StepView},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use serde_json::Value;

use super::{RunError, RunKind, StatusParts, StatusView, observe::Observed};
use crate::{
    apply,
    context::Context,
    memory::{LandedStatus, Landing, RunMemo, StepMemo, WrittenStatus, finished_before, step_at},
    status::{self, StatusError, StatusWrite},
};

/// The engine's roll-up of the observed steps; `previous` is the status read (none for the first
/// status of a new object).
pub(super) fn roll_up<K: RunKind>(
    obj: &K,
    plan: &Plan,
    observed: &Observed,
    previous: Option<&RunStatus>,
    now: &Time,
) -> Rollup {
    let entries = match previous {
        Some(_) => obj.step_entries(),
        None => &[],
    };
    roll_up_steps(
        &StepsSeen {
            plan,
            attempts: &observed.attempts,
            jobs: &observed.jobs,
            blockers: &observed.blockers,
            decision: &observed.decision,
        },
        previous,
        entries,
        obj.meta().generation,
        now,
    )
}

/// What a reconcile saw of its steps, per step in plan order, and the decision taken on it.
pub struct StepsSeen<'a> {
    pub plan: &'a Plan,
    /// Per step: its current attempt (empty: every step at attempt 1).
    pub attempts: &'a [u32],
    pub jobs: &'a [Option<Arc<ObservedJob>>],
    pub blockers: &'a [Option<Blocker>],
    pub decision: &'a Decision,
}

/// `roll_up` on plain data (the reconcile benchmark measures it): the previous status and its
/// step entries (times of steps whose Job is gone), the object's generation, the time.
pub fn roll_up_steps(
    seen: &StepsSeen<'_>,
    previous: Option<&RunStatus>,
    previous_entries: &[StepEntry],
    generation: Option<i64>,
    now: &Time,
) -> Rollup {
    let by_key: HashMap<&str, &StepEntry> = previous_entries
        .iter()
        .map(|e| (e.key.as_str(), e))
        .collect();
    let attempt = |i: usize| seen.attempts.get(i).copied().unwrap_or(1).max(1);
    // Names of later attempts, computed only for the steps that have one.
    let renamed: Vec<Option<String>> = (0..seen.plan.steps.len())
        .map(|i| {
            let step = &seen.plan.steps[i];
            (attempt(i) > 1).then(|| naming::attempt_name(&step.job_name, attempt(i)))
        })
        .collect();
    let views: Vec<StepView<'_>> = seen
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepView {
            key: &step.key,
            job_name: renamed[i].as_deref().unwrap_or(&step.job_name),
            attempt: attempt(i),
            job: seen.jobs.get(i).and_then(|j| j.as_deref()),
            blocker: seen.blockers.get(i).and_then(Option::as_ref),
            previous: by_key.get(step.key.as_str()).copied(),
            exit: step.exit,
        })
        .collect();
    rollup::rollup(&RunInput {
        decision: seen.decision,
        steps: &views,
        previous,
        generation,
        now,
    })
}

/// The kind's status from the roll-up, with the durable record of every step as the memory now
/// knows it.
pub(super) fn desired_status<K: RunKind>(
    obj: &K,
    plan: &Plan,
    observed: &Observed,
    rolled: Rollup,
    memo: &RunMemo,
    previous: Option<&K::Status>,
) -> K::Status {
    let mut run = rolled.run;
    run.record = Some(step_record(plan, memo, &observed.jobs, &observed.blockers));
    run.retries.clone_from(&memo.retries);
    run.retry_count = (memo.retry_count > 0).then_some(memo.retry_count);
    run.outputs = super::outputs::recorded(plan, memo);
    let mut desired = K::make_status(StatusParts {
        run,
        entries: rolled.entries,
        omitted: rolled.omitted,
        plan: Some(plan),
        decision: Some(&observed.decision),
    });
    obj.refine_status(
        &mut desired,
        previous,
        &StatusView {
            plan: Some(plan),
            jobs: &observed.jobs,
            step_phases: &rolled.step_phases,
        },
    );
    desired
}

/// The durable record of every step as this reconcile leaves it.
pub fn step_record(
    plan: &Plan,
    memo: &RunMemo,
    jobs: &[Option<Arc<ObservedJob>>],
    blockers: &[Option<Blocker>],
) -> StepRecord {
    let n = plan.steps.len();
    let mut states = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    for (i, step) in plan.steps.iter().enumerate() {
        let known = step_at(&memo.steps, i, &step.key);
        attempts.push(known.map_or(1, StepMemo::attempt));
        let job = jobs.get(i).and_then(Option::as_deref);
        states.push(recorded_state(job, blockers.get(i), known));
    }
    record::encode_attempts(&states, &attempts, plan.key_digest().to_owned())
}

/// What the record says of one step: lost, its Job's outcome, else what the memory knows.
fn recorded_state(
    job: Option<&ObservedJob>,
    blocker: Option<&Option<Blocker>>,
    known: Option<&StepMemo>,
) -> Recorded {
    if matches!(
        blocker,
        Some(Some(Blocker::Lost | Blocker::NodeLost { .. }))
    ) {
        return Recorded::Lost;
    }
    if let Some(job) = job {
        return match observe::job_outcome(job) {
            StepOutcome::Succeeded => Recorded::Succeeded,
            StepOutcome::Failed => Recorded::Failed,
            StepOutcome::Running
            | StepOutcome::Suspended
            | StepOutcome::Queued
            | StepOutcome::NotCreated => Recorded::Created,
        };
    }
    let Some(known) = known else {
        return Recorded::None;
    };
    match (finished_before(known), known.phase) {
        (true, ApiStepPhase::Succeeded) => Recorded::Succeeded,
        (true, _) => Recorded::Failed,
        (false, _) if known.started => Recorded::Created,
        _ => Recorded::None,
    }
}

/// A finished Job that asked for a TTL (held back by engine `compile::defer_ttl` until its
/// outcome is recorded): the TTL in seconds and when the Job finished.
pub(super) fn deferred_expiry(job: &ObservedJob) -> Option<(u64, &Time)> {
    let ttl = compile::deferred_ttl(&job.metadata)?;
    Some((ttl, observe::finished_at(job)?))
}

/// Deletes the finished Jobs whose deferred TTL (engine `compile::defer_ttl`) has passed; their
/// outcome is in the status just written. Returns when the next one is due.
pub(super) async fn expire_recorded_jobs(
    ctx: &Context,
    jobs: &[Option<Arc<ObservedJob>>],
) -> Result<Option<Duration>, RunError> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut next: Option<Duration> = None;
    for job in jobs.iter().flatten() {
        if job.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some((ttl, finished)) = deferred_expiry(job) else {
            continue;
        };
        let due = finished
            .0
            .as_second()
            .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let wait = due.saturating_sub(now.as_second());
        if wait > 0 {
            let wait = Duration::from_secs(u64::try_from(wait).unwrap_or(u64::MAX));
            next = Some(next.map_or(wait, |n| n.min(wait)));
            continue;
        }
        apply::delete_finished_job(ctx, job).await?;
    }
    Ok(next)
}

/// How soon a status change goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pace {
    /// Whatever changed (the first status, an invalid spec).
    AtOnce,
    /// A change of step detail only ([`status::detail_only`]) waits until `--status-interval-ms`
    /// (longer for a large object: [`paced_interval`]) after this object's last patch, so a
    /// wave of Job events costs one patch per interval.
    Paced,
}

/// What became of a status write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// The status is what the reconcile wants (nothing to send, or what was sent landed).
    Settled,
    /// A detail-only change waits this long ([`Pace::Paced`]); nothing was sent.
    Held(Duration),
    /// A write is in flight (sent now or before, or creates this status should carry): its
    /// landing wakes the object. The outcomes it carries are not recorded yet.
    InFlight,
}

/// Sends `desired` when it differs from the status (`memo.written` while the cache still shows
/// the version our last write went over), without waiting for the API server: the patch goes
/// out in a task of its own, at most one per object at a time, and the next reconcile reads
/// back what it did ([`land`]). `wake`: reconcile the object when the patch has landed (work
/// that waits for the outcomes to be recorded: TTLs, cleanup).
pub(super) fn write<K: RunKind>(
    ctx: &Arc<Context>,
    obj: &K,
    desired: K::Status,
    memo: &mut RunMemo,
    pace: Pace,
    wake: bool,
) -> Result<Written, RunError> {
    // Only a paced write needs the object's size (measuring it serializes the whole object).
    let interval = match pace {
        Pace::Paced => paced_interval(ctx.status_interval, object_bytes(obj, memo)),
        Pace::AtOnce => ctx.status_interval,
    };
    let desired = serde_json::to_value(&desired).map_err(|_| StatusError::NotAnObject)?;
    let generation = obj.meta().generation;
    let (creating, patching) = memo.landing.in_flight();
    if patching {
        // Woken when it lands only if another write waits (or work after the write).
        let sending = memo.written.as_ref().map(|w| &w.status);
        if wake || sending.is_none_or(|s| status::status_differs(s, &desired, generation)) {
            memo.landing.wake_when_landed();
        }
        return Ok(Written::InFlight);
    }
    if creating && wait_for_creates(memo, interval) {
        // Their landing wakes the object.
        return Ok(Written::InFlight);
    }
    let Baseline {
        current,
        cache_is_stale,
        versions,
    } = baseline(obj, memo);
    if let Some(wait) = hold_for(pace, memo.last_patch, interval, Instant::now())
        && status::detail_only(&current, &desired, generation)
        && status::status_differs(&current, &desired, generation)
    {
        keep_current(memo, cache_is_stale, versions, current);
        return Ok(Written::Held(wait));
    }
    let Some(body) = status::status_patch(&current, &desired, generation)? else {
        keep_current(memo, cache_is_stale, versions, current);
        memo.held_for_creates = None;
        // Creates in flight wake the object when they land.
        return Ok(if creating {
            Written::InFlight
        } else {
            Written::Settled
        });
    };
    send(ctx, obj, memo, (body, current, desired), wake)
}

/// The status a write is compared with, and what the cache showed.
struct Baseline {
    /// Our last write while the cache does not show it yet, else the cached status.
    current: Value,
    /// The cache does not show our last write yet.
    cache_is_stale: bool,
    /// The cached object's resourceVersion, and the one our last write produced.
    versions: (Option<String>, Option<String>),
}

fn baseline<K: RunKind>(obj: &K, memo: &mut RunMemo) -> Baseline {
    let resource_version = obj.meta().resource_version.clone();
    // `Some`: the cache does not show our last write yet.
    let ours = memo
        .written
        .take()
        .filter(|w| w.newer_than(resource_version.as_deref()));
    let cache_is_stale = ours.is_some();
    let produced = ours
        .as_ref()
        .and_then(|w| w.produced_resource_version.clone());
    let current = match ours.map(|w| w.status) {
        Some(ours) => ours,
        None => read_status(obj, memo, resource_version.as_deref()),
    };
    Baseline {
        current,
        cache_is_stale,
        versions: (resource_version, produced),
    }
}

/// Sends the patch `body` (from `current` to `desired`) in a task of its own and remembers it
/// as our last write.
fn send<K: RunKind>(
    ctx: &Arc<Context>,
    obj: &K,
    memo: &mut RunMemo,
    (body, current, mut desired): (Value, Value, Value),
    wake: bool,
) -> Result<Written, RunError> {
    let generation = obj.meta().generation;
    let resource_version = obj.meta().resource_version.clone();
    // What the status is once the patch lands: `desired` with the observedGeneration it carries.
    if let (Value::Object(fields), Some(generation)) = (&mut desired, generation) {
        fields.insert("observedGeneration".into(), Value::from(generation));
    }
    memo.written = Some(WrittenStatus {
        over_resource_version: resource_version,
        produced_resource_version: None,
        status: desired.clone(),
    });
    memo.last_patch = Some(Instant::now());
    memo.held_for_creates = None;
    memo.landing.send_patch(wake);
    let (Some(namespace), Some(name)) = (obj.meta().namespace.clone(), obj.meta().name.clone())
    else {
        return Err(StatusError::MissingIdentity.into());
    };
    let sent = Patch {
        target: (namespace, name),
        body,
        current,
        desired,
        generation,
    };
    ctx.writes
        .spawn(send_patch::<K>(ctx.clone(), memo.landing.clone(), sent));
    Ok(Written::InFlight)
}

/// Whether the status write waits for the creates in flight, so that it carries what they did
/// (a step's Job and start time: one write instead of two); at most `interval` in a row, so a
/// run that keeps sending creates still gets its status written.
fn wait_for_creates(memo: &mut RunMemo, interval: Duration) -> bool {
    let since = *memo.held_for_creates.get_or_insert_with(Instant::now);
    since.elapsed() < interval.max(Duration::from_secs(1))
}

/// A status patch on its way.
struct Patch {
    target: (String, String),
    body: Value,
    /// The status it goes over and the one it makes: for the summary sent when the API server
    /// refuses the status itself.
    current: Value,
    desired: Value,
    generation: Option<i64>,
}

/// Sends one status patch and puts what it did in `landing`; wakes the object when asked to.
async fn send_patch<K: RunKind>(ctx: Arc<Context>, landing: Arc<Landing>, patch: Patch) {
    let (namespace, name) = &patch.target;
    let landed = match status::send_patch::<K>(&ctx, namespace, name, &patch.body).await {
        Err(StatusError::Patch {
            source: kube::Error::Api(refused),
            ..
        }) if matches!(refused.code, 413 | 422 | 500) => {
            // The status itself was refused (too large for etcd, or a value the server will
            // not store): fall back to the summary, so the object never stays without one.
            tracing::warn!(code = refused.code, message = %bounded(&refused.message), "status refused; writing the summary only");
            let summary = minimal_status(&patch.desired);
            match status::status_patch(&patch.current, &summary, patch.generation) {
                Ok(Some(body)) => landed(
                    status::send_patch::<K>(&ctx, namespace, name, &body).await,
                    Some(summary),
                ),
                Ok(None) => LandedStatus::Dropped,
                Err(error) => landed(Err(error), None),
            }
        }
        other => landed(other, None),
    };
    if landing.land_status(landed) {
        ctx.wakes.wake(namespace, name);
    }
}

/// What a sent patch did, as the memory keeps it.
fn landed(write: Result<StatusWrite, StatusError>, summary: Option<Value>) -> LandedStatus {
    match write {
        Ok(StatusWrite::Patched { resource_version }) => LandedStatus::Patched {
            produced_resource_version: resource_version,
            summary,
        },
        Ok(StatusWrite::Unchanged | StatusWrite::Gone) => LandedStatus::Dropped,
        Err(error) => LandedStatus::Failed {
            category: error.category(),
            message: error.to_string(),
        },
    }
}

/// Records what the status patch that landed did; a failed one is the reconcile's error (its
/// backoff paces the next attempt).
pub(super) fn land(memo: &mut RunMemo, landed: Option<LandedStatus>) -> Option<RunError> {
    match landed? {
        LandedStatus::Patched {
            produced_resource_version,
            summary,
        } => {
            if let Some(written) = &mut memo.written {
                written.produced_resource_version = produced_resource_version;
                if let Some(summary) = summary {
                    written.status = summary;
                }
            }
            None
        }
        LandedStatus::Dropped => {
            memo.written = None;
            None
        }
        LandedStatus::Failed { category, message } => {
            memo.written = None;
            Some(RunError::StatusLanded { category, message })
        }
    }
}

/// The status this process last wrote, while the cache does not show it yet (`None` otherwise,
/// or when it does not decode).
pub(super) fn written_status<K: RunKind>(obj: &K, memo: &RunMemo) -> Option<K::Status> {
    let written = memo.written.as_ref()?;
    if !written.newer_than(obj.meta().resource_version.as_deref()) {
        return None;
    }
    K::Status::deserialize(&written.status).ok()
}

/// The object's status as JSON: serialized once per `resourceVersion` (during a wave most
/// reconciles of a big run see the same version, and its status has hundreds of entries).
pub(super) fn read_status<K: RunKind>(
    obj: &K,
    memo: &mut RunMemo,
    resource_version: Option<&str>,
) -> Value {
    match memo.read_status.take() {
        Some((version, status)) if Some(version.as_str()) == resource_version => status,
        _ => obj.status_value(),
    }
}

/// Keeps the status compared with for the next reconcile: our last write while the cache does
/// not show it yet (`cache_is_stale`; `versions`: the cached one and the one our write
/// produced), else the object's status as read at the cached version.
pub(super) fn keep_current(
    memo: &mut RunMemo,
    cache_is_stale: bool,
    versions: (Option<String>, Option<String>),
    current: Value,
) {
    let (resource_version, produced_resource_version) = versions;
    if cache_is_stale {
        memo.written = Some(WrittenStatus {
            over_resource_version: resource_version,
            produced_resource_version,
            status: current,
        });
    } else if let Some(version) = resource_version {
        memo.read_status = Some((version, current));
    }
}

/// The status rewrites of one run object that the API server is asked to store per second.
/// Decision: a status patch costs the API server (decode, schema validation, etcd, every
/// watcher) in proportion to the whole stored object, not to the change; a 10,000-flow JobFlow
/// stores about 1.5 MiB, which once a second kept the local plane's API server saturated
/// (docs/scaling.md). So the interval between detail-only writes grows with the object's size.
pub(crate) const STATUS_BYTES_PER_SECOND: usize = 256 * 1024;

/// The shortest time between two detail-only status writes of an object of `object_bytes`:
/// `--status-interval-ms` (`configured`), or longer for an object large enough that rewriting
/// it that often exceeds [`STATUS_BYTES_PER_SECOND`]. A configured `0` (every change at once)
/// stays `0`.
pub(crate) fn paced_interval(configured: Duration, object_bytes: usize) -> Duration {
    if configured.is_zero() {
        return configured;
    }
    let by_size = Duration::from_secs_f64(object_bytes as f64 / STATUS_BYTES_PER_SECOND as f64);
    configured.max(by_size)
}

/// The object's serialized size (metadata, spec and status as cached), measured once per
/// generation: the status part is bounded, the spec is what makes an object large.
fn object_bytes<K: RunKind>(obj: &K, memo: &mut RunMemo) -> usize {
    let generation = obj.meta().generation;
    match memo.object_bytes {
        Some((measured_at, bytes)) if measured_at == generation => bytes,
        _ => {
            let mut counter = ByteCount(0);
            // Writing into a counter fails only if serializing fails; then size does not pace.
            let bytes = serde_json::to_writer(&mut counter, obj).map_or(0, |()| counter.0);
            memo.object_bytes = Some((generation, bytes));
            bytes
        }
    }
}

/// An `io::Write` that only counts (measuring a serialized size without building it).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a [`Pace::Paced`] change may still wait at `now`: the rest of the interval since
/// the last patch (`None`: it goes now).
pub(super) fn hold_for(
    pace: Pace,
    last_patch: Option<Instant>,
    interval: Duration,
    now: Instant,
) -> Option<Duration> {
    let since = now.saturating_duration_since(last_patch?);
    (pace == Pace::Paced && since < interval).then(|| interval - since)
}

/// The fields of a run status that are always written (the per-step detail is dropped).
pub(super) fn minimal_status(status: &Value) -> Value {
    const KEPT: &[&str] = &[
        "phase",
        "conditions",
        "observedGeneration",
        "progress",
        "startTime",
        "completionTime",
        "message",
        "record",
        // Dependents read these; they are bounded (docs/integrations.md "Step outputs").
        "outputs",
    ];
    match status {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| KEPT.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}
