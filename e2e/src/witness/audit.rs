//! The local plane's API server audit log (`cluster-up.sh` records Job creates and deletes and
//! writes to our kinds and Leases): the tests' independent witness of what was written, by
//! whom and when.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Deserialize;

/// One audit event (only the fields the tests read).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub verb: String,
    #[serde(default)]
    pub object_ref: Option<AuditObject>,
    #[serde(default)]
    pub response_status: Option<AuditStatus>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub request_received_timestamp: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    /// The user a request acted as (kubeconfig `as:`).
    #[serde(default)]
    pub impersonated_user: Option<AuditUser>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObject {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: Option<u16>,
}

impl AuditEvent {
    /// A completed request with a 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.stage.as_deref() == Some("ResponseComplete")
            && self
                .response_status
                .as_ref()
                .and_then(|s| s.code)
                .is_some_and(|c| (200..300).contains(&c))
    }

    /// A request whose outcome the API server did not report: it ended without a complete
    /// answer (stage `Panic`: the client went away mid-request, e.g. a SIGKILLed manager) or
    /// with a server error. A create may have been stored all the same.
    pub fn outcome_unknown(&self) -> bool {
        let code = self.response_status.as_ref().and_then(|s| s.code);
        self.stage.as_deref() != Some("ResponseComplete") || code.is_none_or(|c| c >= 500)
    }

    pub fn resource(&self) -> Option<&str> {
        self.object_ref.as_ref()?.resource.as_deref()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object_ref.as_ref()?.namespace.as_deref()
    }

    pub fn name(&self) -> Option<&str> {
        self.object_ref.as_ref()?.name.as_deref()
    }
}

/// Where the plane writes its audit log: `E2E_AUDIT_LOG`, else `$E2E_RUN_DIR/logs/audit.log`.
pub fn audit_log_path() -> PathBuf {
    if let Ok(path) = std::env::var("E2E_AUDIT_LOG") {
        return PathBuf::from(path);
    }
    let dir = std::env::var("E2E_RUN_DIR").unwrap_or_else(|_| "/tmp/jobsmith-e2e".into());
    PathBuf::from(dir).join("logs/audit.log")
}

/// Every event of the audit log (the current file and its one rotated backup) in `namespace`.
pub fn audit_events(namespace: &str) -> Result<Vec<AuditEvent>> {
    audit_events_at(&audit_log_path(), namespace)
}

/// [`audit_events`] of the audit log at `path` (a private plane's).
pub fn audit_events_at(path: &std::path::Path, namespace: &str) -> Result<Vec<AuditEvent>> {
    let dir = path.parent().context("audit log path")?.to_owned();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("audit")
        .to_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "no audit log in {} (the local plane of e2e/scripts/cluster-up.sh writes one)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&stem) && n != "audit-policy.yaml")
        })
        .collect();
    files.sort();
    let mut events = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            if !line.contains(namespace) {
                continue;
            }
            if let Ok(event) = serde_json::from_str::<AuditEvent>(line)
                && event.namespace() == Some(namespace)
            {
                events.push(event);
            }
        }
    }
    Ok(events)
}

/// How many times each Job of `namespace` was created (successful creates only).
pub fn job_creates(namespace: &str) -> Result<std::collections::BTreeMap<String, usize>> {
    job_creates_in(&audit_events(namespace)?)
}

/// [`job_creates`] over events already read. A name whose only creates have an unknown
/// outcome ([`AuditEvent::outcome_unknown`]: a manager killed while its create was in flight)
/// counts as created once: the API server may have stored it without reporting so, and a
/// manager that finds the Job afterwards rightly creates nothing. Two reported creates of one
/// name still count two.
pub fn job_creates_in(events: &[AuditEvent]) -> Result<std::collections::BTreeMap<String, usize>> {
    let mut creates = std::collections::BTreeMap::new();
    let mut unknown = std::collections::BTreeSet::new();
    for event in events {
        if event.verb != "create" || event.resource() != Some("jobs") {
            continue;
        }
        let name = event.name().unwrap_or_default().to_owned();
        if event.succeeded() {
            *creates.entry(name).or_insert(0) += 1;
        } else if event.outcome_unknown() {
            unknown.insert(name);
        }
    }
    for name in unknown {
        creates.entry(name).or_insert(1);
    }
    Ok(creates)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    fn create(name: &str, stage: &str, code: u16) -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "verb": "create", "stage": stage,
            "objectRef": {"resource": "jobs", "namespace": "ns", "name": name},
            "responseStatus": {"code": code}
        }))
        .unwrap()
    }

    #[test]
    fn a_create_of_unknown_outcome_counts_once_and_only_without_a_reported_one() {
        let events = [
            create("a", "ResponseComplete", 201),
            create("b", "Panic", 500),
            create("c", "ResponseComplete", 504),
            create("c", "ResponseComplete", 201),
            create("d", "ResponseComplete", 409),
            create("e", "ResponseComplete", 201),
            create("e", "ResponseComplete", 201),
        ];
        let creates = job_creates_in(&events).unwrap();
        let expected: std::collections::BTreeMap<String, usize> =
            [("a", 1), ("b", 1), ("c", 1), ("e", 2)]
                .map(|(n, c)| (n.to_owned(), c))
                .into();
        assert_eq!(creates, expected);
    }
}
