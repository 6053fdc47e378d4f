//! The four run kinds the plugin works on, how a user names them, and how a bare NAME is
//! resolved among them.
//!
//! Kinds are always addressed by their group (`jobsmith.dev`) through an explicit
//! [`ApiResource`] taken from the `jobsmith-api` types, never by a bare kind name through
//! discovery: another CRD with a kind called `JobFlow` (in another group) can never be picked up,
//! and a stale discovery cache cannot send a request to a deleted group.

use std::fmt;

use jobsmith_api::{DaemonJob, JobFlow, JobRun, ManagedJob};
use kube::discovery::ApiResource;

use crate::error::CliError;

/// A run kind: ManagedJob, JobFlow, DaemonJob or JobRun.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunKind {
    /// `mj`
    ManagedJob,
    /// `jf`
    JobFlow,
    /// `dj`
    DaemonJob,
    /// `jr`
    JobRun,
}

impl RunKind {
    /// Every run kind, in the order they are looked up and listed.
    pub const ALL: [RunKind; 4] = [
        RunKind::ManagedJob,
        RunKind::JobFlow,
        RunKind::DaemonJob,
        RunKind::JobRun,
    ];

    /// The kind as the API writes it (`ManagedJob`).
    pub fn kind(self) -> &'static str {
        match self {
            RunKind::ManagedJob => "ManagedJob",
            RunKind::JobFlow => "JobFlow",
            RunKind::DaemonJob => "DaemonJob",
            RunKind::JobRun => "JobRun",
        }
    }

    /// The plural kind for messages (`ManagedJobs`).
    pub fn kind_plural(self) -> &'static str {
        match self {
            RunKind::ManagedJob => "ManagedJobs",
            RunKind::JobFlow => "JobFlows",
            RunKind::DaemonJob => "DaemonJobs",
            RunKind::JobRun => "JobRuns",
        }
    }

    /// The short name (`mj`).
    pub fn short(self) -> &'static str {
        match self {
            RunKind::ManagedJob => "mj",
            RunKind::JobFlow => "jf",
            RunKind::DaemonJob => "dj",
            RunKind::JobRun => "jr",
        }
    }

    /// The resource of this kind in group `jobsmith.dev`, from the API crate's types.
    pub fn api_resource(self) -> ApiResource {
        match self {
            RunKind::ManagedJob => ApiResource::erase::<ManagedJob>(&()),
            RunKind::JobFlow => ApiResource::erase::<JobFlow>(&()),
            RunKind::DaemonJob => ApiResource::erase::<DaemonJob>(&()),
            RunKind::JobRun => ApiResource::erase::<JobRun>(&()),
        }
    }

    /// Whether the kind has `spec.suspend` (SPEC §1 run controls: not JobRun).
    pub fn has_suspend(self) -> bool {
        !matches!(self, RunKind::JobRun)
    }

    /// The kind named by `alias`, case-insensitively: the short name (`mj`), the kind
    /// (`managedjob`), the plural (`managedjobs`), each optionally with `.jobsmith.dev`.
    pub fn from_alias(alias: &str) -> Option<RunKind> {
        let lower = alias.to_ascii_lowercase();
        let bare = lower.strip_suffix(".jobsmith.dev").unwrap_or(&lower);
        RunKind::ALL.into_iter().find(|kind| {
            let singular = kind.kind().to_ascii_lowercase();
            bare == kind.short() || bare == singular || bare == format!("{singular}s")
        })
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// What the user typed for an object: `NAME`, or `KIND/NAME` (`mj/build`, `jobflow/build`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// The kind, when given.
    pub kind: Option<RunKind>,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// Parses `NAME` or `KIND/NAME`.
    pub fn parse(text: &str) -> Result<ObjectRef, CliError> {
        let (kind, name) = match text.split_once('/') {
            None => (None, text),
            Some((kind, name)) => {
                let kind = RunKind::from_alias(kind).ok_or_else(|| CliError::UnknownKind {
                    kind: kind.to_owned(),
                    text: text.to_owned(),
                })?;
                (Some(kind), name)
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(CliError::BadName(text.to_owned()));
        }
        Ok(ObjectRef {
            kind,
            name: name.to_owned(),
        })
    }

    /// Restricts a bare name to one kind (`kubectl-managedjob` names only ManagedJobs).
    pub fn with_default_kind(mut self, kind: Option<RunKind>) -> ObjectRef {
        if self.kind.is_none() {
            self.kind = kind;
        }
        self
    }
}

/// Picks the kind of a bare NAME from the kinds that have an object of that name: exactly one
/// is the answer; none is "not found"; several is an error listing the `KIND/NAME` choices.
pub fn pick_kind(namespace: &str, name: &str, found: &[RunKind]) -> Result<RunKind, CliError> {
    match found {
        [] => Err(CliError::NotFoundAnyKind {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        [one] => Ok(*one),
        several => Err(CliError::Ambiguous {
            name: name.to_owned(),
            choices: several
                .iter()
                .map(|kind| format!("{}/{name}", kind.kind()))
                .collect(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_case_insensitively() {
        for alias in [
            "mj",
            "MJ",
            "managedjob",
            "ManagedJob",
            "managedjobs",
            "managedjobs.jobsmith.dev",
        ] {
            assert_eq!(
                RunKind::from_alias(alias),
                Some(RunKind::ManagedJob),
                "{alias}"
            );
        }
        assert_eq!(RunKind::from_alias("jf"), Some(RunKind::JobFlow));
        assert_eq!(RunKind::from_alias("daemonjobs"), Some(RunKind::DaemonJob));
        assert_eq!(RunKind::from_alias("JobRun"), Some(RunKind::JobRun));
        assert_eq!(RunKind::from_alias("jt"), None);
        assert_eq!(RunKind::from_alias("job"), None);
        assert_eq!(RunKind::from_alias("jobflow.other.dev"), None);
    }

    #[test]
    fn api_resources_are_in_our_group() {
        for kind in RunKind::ALL {
            let ar = kind.api_resource();
            assert_eq!(ar.group, "jobsmith.dev");
            assert_eq!(ar.version, "v1alpha1");
            assert_eq!(ar.kind, kind.kind());
            assert_eq!(ar.plural, format!("{}s", kind.kind().to_ascii_lowercase()));
        }
    }

    #[test]
    fn object_refs_parse() {
        assert_eq!(
            ObjectRef::parse("build").unwrap(),
            ObjectRef {
                kind: None,
                name: "build".into()
            }
        );
        assert_eq!(
            ObjectRef::parse("jf/build").unwrap(),
            ObjectRef {
                kind: Some(RunKind::JobFlow),
                name: "build".into()
            }
        );
        assert_eq!(
            ObjectRef::parse("nope/build").unwrap_err().to_string(),
            "unknown kind \"nope\" in \"nope/build\" (use mj, jf, dj or jr, or their kind names)"
        );
        assert_eq!(
            ObjectRef::parse("mj/").unwrap_err().to_string(),
            "\"mj/\" is not a valid object name (NAME or KIND/NAME)"
        );
        assert_eq!(
            ObjectRef::parse("build")
                .unwrap()
                .with_default_kind(Some(RunKind::ManagedJob))
                .kind,
            Some(RunKind::ManagedJob)
        );
    }

    #[test]
    fn ambiguity_lists_the_choices() {
        assert_eq!(
            pick_kind("ns", "build", &[RunKind::JobFlow]).unwrap(),
            RunKind::JobFlow
        );
        assert_eq!(
            pick_kind("ns", "build", &[RunKind::ManagedJob, RunKind::JobRun])
                .unwrap_err()
                .to_string(),
            "\"build\" names more than one run: ManagedJob/build, JobRun/build (give one of them)"
        );
        assert_eq!(
            pick_kind("ns", "build", &[]).unwrap_err().to_string(),
            "failed to get ManagedJob, JobFlow, DaemonJob or JobRun ns/build: not found"
        );
    }
}
