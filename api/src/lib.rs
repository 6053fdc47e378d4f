//! Jobsmith API types: the five `jobsmith.dev/v1alpha1` custom resources, their shared status and
//! condition types, the label and annotation keys put on child Jobs, and the rendering of the
//! generated artifacts (CRD YAML and the API reference).
//!
//! No client and no I/O live here: everything is plain data plus pure functions.

pub mod common;
pub mod crd;
pub mod daemonjob;
pub mod jobflow;
pub mod jobrun;
pub mod jobtemplate;
pub mod kueue;
pub mod labels;
pub mod lifecycle;
pub mod managedjob;
pub mod outputs;
pub mod retry_policy;

pub use common::*;
pub use daemonjob::{DaemonJob, DaemonJobSpec, DaemonJobStatus, NodeEntry};
pub use jobflow::{Flow, JobFlow, JobFlowSpec, JobFlowStatus};
pub use jobrun::{JobRun, JobRunSpec, JobRunStatus};
pub use jobtemplate::{JobTemplate, JobTemplateSpec, JobTemplateStatus, OverridableField};
pub use kueue::Queueing;
pub use lifecycle::{CleanupAction, JobsCleanup};
pub use managedjob::{
    GroupJob, GroupStatus, ManagedJob, ManagedJobGroup, ManagedJobSpec, ManagedJobStatus,
};
pub use outputs::{
    OutputEnvVar, OutputEnvVarSource, OutputSource, StepOutput, StepOutputRef, StepOutputs,
};
pub use retry_policy::{PodConditionRule, PodConditionStatus, RetryAction, RetryPolicy};

/// API group of every Jobsmith kind.
pub const API_GROUP: &str = "jobsmith.dev";
/// API version of every Jobsmith kind.
pub const API_VERSION: &str = "v1alpha1";
/// `apiVersion` string of every Jobsmith kind (`jobsmith.dev/v1alpha1`).
pub const API_GROUP_VERSION: &str = "jobsmith.dev/v1alpha1";
/// CRD category shared by the five kinds (`kubectl get jobsmith`).
pub const CATEGORY: &str = "jobsmith";
