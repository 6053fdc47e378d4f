//! Kubernetes Events without repeats (SPEC §1 "Events").
//!
//! An identical (object uid, type, reason, message) is published once; a changed message is a new
//! Event. kube's `Recorder` keys its series cache by reason *without* the message and would patch a
//! new message into the earlier Event's series, keeping the old text; so each publish uses a fresh
//! `Recorder` (cheap: a client clone) and the repeat suppression lives here.

use std::{
    collections::{HashSet, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client, Resource,
    runtime::events::{Event, EventType, Reporter},
};

use crate::{leadership::ratelimit::WriteLimiter, telemetry::metrics};

/// What happened; decides Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Succeeded,
    Failed,
    Invalid,
    Conflict,
    /// A run became suspended (Normal).
    Suspended,
}

impl EventKind {
    pub fn event_type(self) -> EventType {
        match self {
            EventKind::Created | EventKind::Succeeded | EventKind::Suspended => EventType::Normal,
            EventKind::Failed | EventKind::Invalid | EventKind::Conflict => EventType::Warning,
        }
    }
}

/// Bounded memory of what was already published.
pub struct Dedupe {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Dedupe {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn key(uid: &str, event_type: EventType, reason: &str, message: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        (uid, event_type == EventType::Warning, reason, message).hash(&mut hasher);
        hasher.finish()
    }

    /// `true` the first time a key is seen (then it is remembered); oldest keys are forgotten first.
    pub fn first_time(
        &mut self,
        uid: &str,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> bool {
        let key = Self::key(uid, event_type, reason, message);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Forgets a key, so that a publish that failed is retried on the next reconcile.
    pub fn forget(&mut self, uid: &str, event_type: EventType, reason: &str, message: &str) {
        let key = Self::key(uid, event_type, reason, message);
        if self.seen.remove(&key) {
            self.order.retain(|k| *k != key);
        }
    }
}

/// The event recorder of one controller.
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    limiter: Arc<WriteLimiter>,
    dedupe: Mutex<Dedupe>,
}

/// What an Event needs of the object it is about: its uid (the dedupe key) and its reference.
#[derive(Clone, Debug)]
pub struct Regarding {
    pub uid: String,
    pub reference: ObjectReference,
}

impl Regarding {
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        Self {
            uid: obj.meta().uid.clone().unwrap_or_default(),
            reference: obj.object_ref(&()),
        }
    }
}

impl EventPublisher {
    /// `controller` is the reporting controller (the field manager name), `instance` the pod.
    pub fn new(
        client: Client,
        controller: &str,
        instance: &str,
        limiter: Arc<WriteLimiter>,
    ) -> Self {
        Self {
            client,
            reporter: Reporter {
                controller: controller.to_owned(),
                instance: Some(instance.to_owned()),
            },
            limiter,
            dedupe: Mutex::new(Dedupe::new(20_000)),
        }
    }

    /// Publishes an Event about `obj` unless the same one was already published. Best effort: a
    /// failure is logged (and retried on the next identical call), never returned — an Event must
    /// not fail a reconcile.
    pub async fn publish<K>(
        &self,
        obj: &K,
        kind: EventKind,
        reason: &str,
        message: impl Into<String>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        self.publish_about(&Regarding::of(obj), kind, reason, message)
            .await;
    }

    /// [`Self::publish`] about an object known by its [`Regarding`] (a background task keeps
    /// that, not the object).
    pub async fn publish_about(
        &self,
        regarding: &Regarding,
        kind: EventKind,
        reason: &str,
        message: impl Into<String>,
    ) {
        let message = message.into();
        let event_type = kind.event_type();
        let uid = regarding.uid.clone();
        let first = self
            .dedupe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first_time(&uid, event_type, reason, &message);
        if !first {
            return;
        }
        let reference = regarding.reference.clone();
        let event = Event {
            type_: event_type,
            reason: reason.to_owned(),
            note: Some(jobsmith_engine::status::conditions::bounded(&message)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if !self.limiter.try_acquire() {
            // Over the Event budget: dropped rather than queued (a queue would grow without
            // bound under load and delay nothing useful); the metric tells.
            metrics::event_dropped();
            tracing::debug!(reason, "event dropped: over --event-qps");
            self.dedupe
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(&uid, event_type, reason, &message);
            return;
        }
        metrics::api_write("publish", "events".into());
        if let Err(error) = self.create(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish event");
            self.dedupe
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(&uid, event_type, reason, &message);
        }
    }

    /// Creates the `events.k8s.io/v1` Event. Not kube's `Recorder`: it names an Event
    /// `<object name>.<hex time>`, which is longer than the 253 characters a name may have for
    /// object names of 237 characters and more, so every Event of such an object failed. Each
    /// distinct Event is published once (the dedupe above), so no series is needed.
    async fn create(&self, event: &Event, reference: ObjectReference) -> Result<(), kube::Error> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = event_name(
            reference
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond(),
        );
        let body = k8s_openapi::api::events::v1::Event {
            metadata: kube::api::ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                now,
            )),
            regarding: Some(reference),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        let api: kube::Api<k8s_openapi::api::events::v1::Event> =
            kube::Api::namespaced(self.client.clone(), &namespace);
        api.create(&Default::default(), &body).await.map(|_| ())
    }
}

/// `<object name>.<hex time>`, the object name cut (at a character boundary, with a hash of the
/// whole name) so the result stays a valid name of at most 253 characters.
fn event_name(object: &str, nanos: i128) -> String {
    const MAX: usize = 253;
    let suffix = format!(".{nanos:x}");
    if object.len() + suffix.len() <= MAX {
        return format!("{object}{suffix}");
    }
    let mut hasher = DefaultHasher::new();
    object.hash(&mut hasher);
    let hash = format!("-{:08x}", hasher.finish() as u32);
    let mut end = MAX - suffix.len() - hash.len();
    while !object.is_char_boundary(end) {
        end -= 1;
    }
    let head = object[..end].trim_end_matches(['.', '-']);
    format!("{head}{hash}{suffix}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    #[test]
    fn event_names_stay_valid_for_any_object_name() {
        let long = "a".repeat(253);
        let name = event_name(&long, 0x18ec_8c41_6dbd_9d83);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with(".18ec8c416dbd9d83"));
        assert_ne!(event_name(&"b".repeat(253), 1), event_name(&long, 1));
        assert_eq!(event_name("wf", 255), "wf.ff");
    }

    use super::*;

    #[test]
    fn identical_events_are_published_once() {
        let mut d = Dedupe::new(100);
        assert!(d.first_time(
            "uid",
            EventType::Warning,
            "InvalidSpec",
            "cycle a -> b -> a"
        ));
        assert!(!d.first_time(
            "uid",
            EventType::Warning,
            "InvalidSpec",
            "cycle a -> b -> a"
        ));
        // A new message, another object, another type or reason is a new Event.
        assert!(d.first_time(
            "uid",
            EventType::Warning,
            "InvalidSpec",
            "unknown dependency \"x\""
        ));
        assert!(d.first_time(
            "uid2",
            EventType::Warning,
            "InvalidSpec",
            "cycle a -> b -> a"
        ));
        assert!(d.first_time("uid", EventType::Normal, "InvalidSpec", "cycle a -> b -> a"));
        assert!(d.first_time(
            "uid",
            EventType::Warning,
            "NameConflict",
            "cycle a -> b -> a"
        ));
    }

    #[test]
    fn forgotten_events_can_be_published_again() {
        let mut d = Dedupe::new(100);
        assert!(d.first_time("u", EventType::Normal, "Created", "job a"));
        d.forget("u", EventType::Normal, "Created", "job a");
        assert!(d.first_time("u", EventType::Normal, "Created", "job a"));
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let mut d = Dedupe::new(2);
        assert!(d.first_time("u", EventType::Normal, "R", "1"));
        assert!(d.first_time("u", EventType::Normal, "R", "2"));
        assert!(d.first_time("u", EventType::Normal, "R", "3"));
        assert_eq!(d.seen.len(), 2);
        assert!(
            d.first_time("u", EventType::Normal, "R", "1"),
            "oldest was forgotten"
        );
        assert!(!d.first_time("u", EventType::Normal, "R", "3"));
    }

    #[test]
    fn kinds_map_to_the_spec_types() {
        assert_eq!(EventKind::Created.event_type(), EventType::Normal);
        assert_eq!(EventKind::Succeeded.event_type(), EventType::Normal);
        for kind in [EventKind::Failed, EventKind::Invalid, EventKind::Conflict] {
            assert_eq!(kind.event_type(), EventType::Warning);
        }
    }
}
