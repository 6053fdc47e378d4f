//! What independent witnesses say about a test's objects, whatever the manager believes: the
//! API server's audit log ([`audit`]), every version a watch delivered ([`history`]), and the
//! verdicts of GitOps tools' own code ([`gitops`]).

pub mod audit;
pub mod gitops;
pub mod history;
