//! What goes into a child Job: its name and labels, the params merged into it, the template it
//! is resolved from, its retry policy, Kueue's labels, and, for a DaemonJob, the node it is
//! pinned to. The lowest layer of the engine: it uses no other module of it.

use jobsmith_api::reasons;
use thiserror::Error;

use params::ParamsError;
use retry_policy::RetryPolicyError;

pub mod eligibility;
pub mod kueue;
pub mod naming;
pub mod params;
pub mod retry_policy;
pub mod template;

/// Why a step's Job cannot be built (now).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BuildError {
    /// The referenced JobTemplate does not exist (yet): the step waits, `Ready=False` with
    /// reason `TemplateNotFound`.
    #[error("JobTemplate \"{name}\" not found")]
    TemplateNotFound {
        /// The JobTemplate's name.
        name: String,
    },
    /// The JobTemplate exists but cannot be used (for example no containers).
    #[error("JobTemplate \"{name}\" cannot be used: {message}")]
    TemplateInvalid {
        /// The JobTemplate's name.
        name: String,
        /// Why.
        message: String,
    },
    /// A JobRun overrides a field its JobTemplate does not allow.
    #[error("overriding {field} is not allowed by the JobTemplate")]
    OverrideNotAllowed {
        /// `command`, `args` or `env`.
        field: String,
    },
    /// Anything else wrong with the final Job (reported as `InvalidSpec`).
    #[error("{0}")]
    Invalid(String),
}

impl BuildError {
    /// The condition/Event reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TemplateNotFound { .. } => reasons::TEMPLATE_NOT_FOUND,
            Self::TemplateInvalid { .. } => reasons::TEMPLATE_INVALID,
            Self::OverrideNotAllowed { .. } => reasons::OVERRIDE_NOT_ALLOWED,
            Self::Invalid(_) => reasons::INVALID_SPEC,
        }
    }

    /// Whether the step waits (the template may appear or be fixed) rather than fails.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            Self::TemplateNotFound { .. } | Self::TemplateInvalid { .. }
        )
    }
}

impl From<RetryPolicyError> for BuildError {
    fn from(error: RetryPolicyError) -> Self {
        Self::Invalid(error.to_string())
    }
}

impl From<ParamsError> for BuildError {
    fn from(error: ParamsError) -> Self {
        match error {
            ParamsError::OverrideNotAllowed { field } => Self::OverrideNotAllowed { field },
            other => Self::Invalid(other.to_string()),
        }
    }
}
