//! [`Guarded`]: an object of our own kinds decoded as `K` when it can be, and otherwise kept as
//! its metadata and the decode error, so that one object the manager cannot read (written by a
//! newer schema, or by hand past validation) does not stop the watch of every other one.
//!
//! Why not kube's `DeserializeGuard`: it decodes every event into a generic value tree, clones
//! that tree, then decodes the clone as `K`; for a 10,000-step run object those are three
//! full-size copies per watch event, the largest transient allocation of the manager. Here the
//! event's JSON is kept as one string (`RawValue`) and decoded once, straight into `K`; only an
//! object that fails is read a second time, for its metadata.
//!
//! The raw text is available only when the object is decoded straight from the JSON stream. In
//! a watch event that holds when the event's `type` comes before its `object`, which is how the
//! API server writes every event (`metav1.WatchEvent` encodes its fields in that order); lists
//! hold their objects in `items` and are always read straight. An event written the other way
//! round (not by an API server) would be an error of the event, and the watch would retry.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, core::error_boundary::InvalidObject};
use serde::{Deserialize, Deserializer, de::DeserializeOwned, de::Error as _};
use serde_json::value::RawValue;

/// `K`, or the metadata of an object that does not decode as `K` and why.
#[derive(Debug, Clone)]
pub struct Guarded<K>(pub Result<K, InvalidObject>);

/// What is read of an object that does not decode as `K`.
#[derive(Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

impl<'de, K> Deserialize<'de> for Guarded<K>
where
    K: DeserializeOwned + Resource,
{
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let object = match serde_json::from_str::<K>(raw.get()) {
            Ok(object) => Ok(object),
            Err(error) => {
                let MetadataOnly { metadata } =
                    serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
                Err(InvalidObject {
                    error: error.to_string(),
                    metadata,
                })
            }
        };
        Ok(Guarded(object))
    }
}

impl<K: Resource> Resource for Guarded<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0
            .as_ref()
            .map_or_else(|invalid| &invalid.metadata, K::meta)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0
            .as_mut()
            .map_or_else(|invalid| &mut invalid.metadata, K::meta_mut)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::core::WatchEvent;

    #[test]
    fn a_valid_object_decodes_as_its_kind() {
        let text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"v\"w"}}"#;
        let guarded: Guarded<ConfigMap> = serde_json::from_str(text).unwrap();
        assert_eq!(guarded.meta().name.as_deref(), Some("a"));
        let data = guarded.0.unwrap().data.unwrap();
        assert_eq!(data.get("k").map(String::as_str), Some("v\"w"));
    }

    #[test]
    fn an_invalid_object_keeps_its_metadata_and_the_error() {
        let text =
            r#"{"metadata":{"name":"bad","namespace":"n"},"spec":{"containers":"not-a-list"}}"#;
        let guarded: Guarded<Pod> = serde_json::from_str(text).unwrap();
        assert_eq!(guarded.meta().name.as_deref(), Some("bad"));
        assert_eq!(guarded.meta().namespace.as_deref(), Some("n"));
        let invalid = guarded.0.unwrap_err();
        assert!(invalid.error.contains("invalid type"), "{}", invalid.error);
    }

    #[test]
    fn decodes_inside_a_watch_event_and_from_a_value() {
        // The watcher decodes a whole event line; tests and lists may decode from a value.
        let line = r#"{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"7"},"data":{"k":"v"}}}"#;
        let event: WatchEvent<Guarded<ConfigMap>> = serde_json::from_str(line).unwrap();
        let WatchEvent::Modified(guarded) = event else {
            panic!("not a MODIFIED event");
        };
        assert_eq!(guarded.meta().resource_version.as_deref(), Some("7"));
        assert!(guarded.0.is_ok());
        let value = serde_json::json!({"metadata": {"name": "v"}, "data": {"k": 1}});
        let guarded: Guarded<ConfigMap> = serde_json::from_value(value).unwrap();
        assert_eq!(guarded.meta().name.as_deref(), Some("v"));
        assert!(guarded.0.is_err(), "a number is not a string");
    }

    #[test]
    fn an_event_with_its_object_before_its_type_is_an_error_of_the_event() {
        // serde buffers the object until it knows the type; the raw text is gone by then.
        let line = r#"{"object":{"metadata":{"name":"a"}},"type":"ADDED"}"#;
        assert!(serde_json::from_str::<WatchEvent<Guarded<ConfigMap>>>(line).is_err());
    }

    #[test]
    fn a_value_that_is_not_an_object_is_an_error_of_the_event() {
        assert!(serde_json::from_str::<Guarded<ConfigMap>>("[1,2]").is_err());
    }
}
