//! Run lifecycle controls shared by the run kinds (docs/lifecycle.md): what happens to a finished
//! run's child Jobs (`spec.jobsCleanup`). The whole run's deadline (`spec.activeDeadlineSeconds`)
//! and the run's own TTL (`spec.ttlSecondsAfterFinished`) are plain integers on each kind's spec.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens to the child Jobs of a finished run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CleanupAction {
    /// The Jobs (and their pods) stay until the run object is deleted (default).
    #[default]
    Keep,
    /// The Jobs are deleted with their pods (background propagation) once the run finished and
    /// its status recorded every step's outcome; the run object and its status stay.
    Delete,
}

impl CleanupAction {
    /// Whether the Jobs go.
    pub fn deletes(self) -> bool {
        self == CleanupAction::Delete
    }
}

/// `spec.jobsCleanup`: what happens to the child Jobs (and their pods) once the run finished,
/// per outcome. The run object keeps its status (phases, step entries, the durable record) as
/// the history.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsCleanup {
    /// After the run `Succeeded`: `Keep` (default) or `Delete`.
    #[serde(default)]
    pub on_success: CleanupAction,
    /// After the run `Failed`: `Keep` (default) or `Delete`.
    #[serde(default)]
    pub on_failure: CleanupAction,
}
