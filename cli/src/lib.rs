//! `kubectl jobsmith`: the kubectl plugin of Jobsmith (docs/plugin.md).
//!
//! Pure parts, tested byte for byte without a cluster:
//! - [`kinds`]: the four run kinds, their `jobsmith.dev` resources, `KIND/NAME` parsing and the
//!   choice among kinds for a bare NAME.
//! - [`model`]: a run as the plugin reads it (typed spec for the engine, lenient status).
//! - [`render`]: what the commands print.
//!   - [`render::tree`]: the seed's coloured tree (`visualize`/`tree`).
//!   - [`render::table`]: the `list` tables.
//!   - [`render::status`]: the `status` block and one step's block with compiled params.
//!   - [`render::graph`]: DOT and Mermaid of the step graph.
//!   - [`render::color`]: the status colours.
//! - [`complete`]: kubectl plugin completion (`kubectl_complete-jobsmith`).
//! - [`lifecycle`]: the `retry` patch and the `resubmit` object.
//! - [`args`], [`error`].
//!
//! I/O edges: [`client`] (kubeconfig, GET/LIST/apply) and [`commands`] (one function per
//! command). The step graph is always the engine's (`jobsmith_engine::compile`), never a second
//! implementation of the dependency rules.

pub mod args;
pub mod client;
pub mod commands;
pub mod complete;
pub mod error;
pub mod kinds;
pub mod lifecycle;
pub mod model;
pub mod render;

use kinds::RunKind;

/// Which name the binary was called by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// `kubectl-jobsmith`: every command, every run kind.
    Jobsmith,
    /// `kubectl-managedjob`: the seed plugin (`visualize`, `list`, `status` of ManagedJobs).
    ManagedJob,
    /// `kubectl_complete-jobsmith` / `kubectl_complete-managedjob`: kubectl's completion helper.
    Complete,
}

impl Personality {
    /// The personality of a program name (`argv[0]`, any directory, any `.exe`).
    pub fn from_program(program: &str) -> Personality {
        let base = program.rsplit(['/', '\\']).next().unwrap_or(program);
        let base = base.strip_suffix(".exe").unwrap_or(base);
        if base.starts_with("kubectl_complete-") {
            Personality::Complete
        } else if base == "kubectl-managedjob" {
            Personality::ManagedJob
        } else {
            Personality::Jobsmith
        }
    }

    /// The kind a bare NAME means, if fixed.
    pub fn default_kind(self) -> Option<RunKind> {
        match self {
            Personality::ManagedJob => Some(RunKind::ManagedJob),
            Personality::Jobsmith | Personality::Complete => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personality_follows_the_program_name() {
        assert_eq!(
            Personality::from_program("/usr/local/bin/kubectl-jobsmith"),
            Personality::Jobsmith
        );
        assert_eq!(
            Personality::from_program("kubectl-managedjob"),
            Personality::ManagedJob
        );
        assert_eq!(
            Personality::from_program("/x/kubectl_complete-jobsmith"),
            Personality::Complete
        );
        assert_eq!(
            Personality::from_program("kubectl-jobsmith.exe"),
            Personality::Jobsmith
        );
    }
}
