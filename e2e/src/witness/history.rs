//! Every version of the objects of one kind in one namespace, as a watch delivers them: what
//! a GitOps tool (or any client) could have seen, in order. Used to check what an object looked
//! like right after its creation and at each transition, and to order writes of different kinds
//! (see [`Version::resource_version`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::discovery::ApiResource;
use serde_json::Value;

/// What happened to the object in one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Created.
    Added,
    /// Changed (spec, metadata or status).
    Modified,
    /// Deleted (the last version).
    Deleted,
}

/// One version of one object.
#[derive(Clone, Debug)]
pub struct Version {
    /// What the watch event said.
    pub change: Change,
    /// `metadata.resourceVersion` as a number. On an etcd-backed API server (every real
    /// cluster, and the local plane) it is etcd's revision, which grows with every write to any
    /// object: it orders writes across kinds. (Kubernetes calls it opaque; the tests that compare
    /// it say so in their messages.)
    pub resource_version: u64,
    /// The whole object as the API server sent it.
    pub object: Value,
}

impl Version {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `status`, when the object has one.
    pub fn status(&self) -> Option<&Value> {
        self.object.get("status").filter(|s| !s.is_null())
    }

    /// `status.phase`.
    pub fn phase(&self) -> Option<&str> {
        self.object.pointer("/status/phase").and_then(Value::as_str)
    }

    /// The condition of `type_` in `status.conditions`.
    pub fn condition(&self, type_: &str) -> Option<&Value> {
        self.object
            .pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    }

    /// `(status, reason)` of the condition of `type_`.
    pub fn condition_status(&self, type_: &str) -> Option<(&str, &str)> {
        let c = self.condition(type_)?;
        Some((
            c.get("status").and_then(Value::as_str).unwrap_or_default(),
            c.get("reason").and_then(Value::as_str).unwrap_or_default(),
        ))
    }

    /// The uid of the controller owner, if any.
    pub fn controller_uid(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)?
            .iter()
            .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?
            .get("uid")
            .and_then(Value::as_str)
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Recorded {
    versions: Vec<Version>,
    broken: Option<String>,
}

/// A running record of every version of the objects of one resource in one namespace, from the
/// moment it is started. Stops when dropped.
pub struct History {
    what: String,
    recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for History {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl History {
    /// Starts recording `resource` in `namespace`. Objects that exist already are recorded as
    /// `Added` versions first (a fresh test namespace has none).
    pub async fn start(client: &Client, namespace: &str, resource: &ApiResource) -> Result<Self> {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        let what = format!("{} in {namespace}", resource.plural);
        let list = api
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing {what}"))?;
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        {
            let mut r = recorded.lock().unwrap_or_else(PoisonError::into_inner);
            for object in list.items {
                r.versions.push(to_version(Change::Added, &object)?);
            }
        }
        let start = list
            .metadata
            .resource_version
            .ok_or_else(|| anyhow!("the list of {what} has no resourceVersion"))?;
        let task = tokio::spawn(record(api, start, recorded.clone()));
        Ok(Self {
            what,
            recorded,
            task,
        })
    }

    /// Every version recorded so far, in order. An error when the watch broke (the record would
    /// have a gap).
    pub fn all(&self) -> Result<Vec<Version>> {
        let r = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(broken) = &r.broken {
            bail!("the record of {} is incomplete: {broken}", self.what);
        }
        Ok(r.versions.clone())
    }

    /// Every version of the object `name`, in order.
    pub fn of(&self, name: &str) -> Result<Vec<Version>> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|v| v.name() == name)
            .collect())
    }

    /// Waits (up to `timeout`) until a version of `name` matches `check`, and returns the first
    /// one that does.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Version) -> bool,
    ) -> Result<Version> {
        crate::eventually(&format!("{name}: {what}"), timeout, || async {
            Ok(self.of(name)?.into_iter().find(|v| check(v)))
        })
        .await
        .map_err(|e| {
            let last = self.of(name).ok().and_then(|v| v.last().cloned()).map(|v| {
                serde_json::to_string_pretty(v.status().unwrap_or(&Value::Null)).unwrap_or_default()
            });
            anyhow!(
                "{e:#}; last status: {}",
                last.unwrap_or_else(|| "none".into())
            )
        })
    }
}

fn to_version(change: Change, object: &DynamicObject) -> Result<Version> {
    let rv = object
        .metadata
        .resource_version
        .as_deref()
        .ok_or_else(|| anyhow!("a watched object has no resourceVersion"))?;
    let resource_version = rv.parse().with_context(|| {
        format!("resourceVersion {rv:?} is not a number (not an etcd-backed API server?)")
    })?;
    Ok(Version {
        change,
        resource_version,
        object: serde_json::to_value(object)?,
    })
}

async fn record(api: Api<DynamicObject>, mut from: String, recorded: Arc<Mutex<Recorded>>) {
    let fail = |why: String| {
        recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .broken = Some(why);
    };
    loop {
        // The server ends a watch after its timeout; it is resumed from the last version seen.
        let params = WatchParams::default().timeout(240);
        let stream = match api.watch(&params, &from).await {
            Ok(stream) => stream,
            Err(e) => return fail(format!("starting the watch: {e}")),
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let (change, object) = match event {
                Ok(WatchEvent::Added(o)) => (Change::Added, o),
                Ok(WatchEvent::Modified(o)) => (Change::Modified, o),
                Ok(WatchEvent::Deleted(o)) => (Change::Deleted, o),
                Ok(WatchEvent::Bookmark(b)) => {
                    from = b.metadata.resource_version;
                    continue;
                }
                Ok(WatchEvent::Error(status)) => {
                    return fail(format!("the watch ended with {status:?}"));
                }
                Err(e) => return fail(format!("the watch failed: {e}")),
            };
            match to_version(change, &object) {
                Ok(version) => {
                    if let Some(rv) = &object.metadata.resource_version {
                        from.clone_from(rv);
                    }
                    recorded
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .versions
                        .push(version);
                }
                Err(e) => return fail(format!("{e:#}")),
            }
        }
    }
}
