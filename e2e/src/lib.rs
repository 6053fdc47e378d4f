//! End-to-end test helpers for Jobsmith.
//!
//! Tests run against the cluster of `KUBECONFIG`: the local control plane of
//! `e2e/scripts/cluster-up.sh` (started by `make e2e` / `make cluster-up`), or any cluster given
//! through `E2E_KUBECONFIG`. There is no skipping: without a reachable cluster every test fails
//! and says how to start one. Each test works in its own [`TestNamespace`]; cluster-wide setup
//! (the CRDs) goes through [`install_crds`], which runs once per test process.
//!
//! See `docs/e2e.md` for the architecture and the fake-pod semantics (`jobsmith.dev/e2e-*`).

mod apply;
mod cluster;
mod crds;
mod kubectl;
pub mod kueue;
mod list;
mod manager;
mod namespace;
mod plane;
mod tools;
mod wait;
pub mod witness;

pub use apply::{
    ApiRejection, api_error_message, apply_file, apply_object, apply_yaml, apply_yaml_with,
    create_yaml, create_yaml_with, dynamic_api, parse_yaml,
};
pub use cluster::{FIELD_MANAGER, HINT, client, plugin_binary, workspace_root};
pub use crds::{crd_files, install_crd_files, install_crds, install_crds_on};
pub use kubectl::{CommandOutput, kubectl, kubectl_ok, kubectl_program};
pub use list::{list_events, list_jobs, list_pods, list_pods_selected};
pub use manager::{ManagerProcess, free_local_port, http_get, proc_status_kib, process_cpu_ms};
pub use namespace::TestNamespace;
pub use plane::PrivatePlane;
pub use tools::{helm, helm_binary, helm_ok, impersonating_kubeconfig, run_tool, run_tool_ok};
pub use wait::{
    eventually, job_condition, job_finished, pod_phase, status_condition, status_phase,
    wait_deleted, wait_for,
};
pub use witness::audit::{
    AuditEvent, audit_events, audit_events_at, audit_log_path, job_creates, job_creates_in,
};

/// Labels and annotations that steer the fake pods of the local plane (`e2e/kwok/*.yaml`).
pub mod fake_pod {
    /// Pod annotation: how long the pod runs, in milliseconds (`"3000"`) or as a Go duration
    /// (`"3s"`); without it the plane's `E2E_POD_DURATION_MS` applies.
    pub const DURATION_ANNOTATION: &str = "jobsmith.dev/e2e-duration";
    /// Pod label: `fail` makes the pod fail (phase Failed, exit code 1, reason Error).
    pub const OUTCOME_LABEL: &str = "jobsmith.dev/e2e-outcome";
    /// The value of [`OUTCOME_LABEL`] that makes a pod fail.
    pub const OUTCOME_FAIL: &str = "fail";
    /// The value of [`OUTCOME_LABEL`] that makes the pods of a step's first attempt fail and
    /// those of later attempts (label `jobsmith.dev/attempt`) succeed: a retry in place succeeds.
    pub const OUTCOME_FAIL_FIRST_ATTEMPT: &str = "fail-first-attempt";
    /// Pod annotation: the exit code of a failing pod (default 1).
    pub const EXIT_CODE_ANNOTATION: &str = "jobsmith.dev/e2e-exit-code";
    /// Pod annotation: the termination message of every container of a pod that succeeds
    /// (`state.terminated.message`, what step outputs read).
    pub const MESSAGE_ANNOTATION: &str = "jobsmith.dev/e2e-message";
    /// An image reference that is never pulled (no container ever runs on the fake nodes).
    pub const IMAGE: &str = "example.invalid/fake:1";
}
