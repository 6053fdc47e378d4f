//! The plugin's errors. Each prints as one line for the user (`main` writes `error: <message>`)
//! and maps to an exit code.

use thiserror::Error;

/// Everything that can go wrong in a command.
#[derive(Debug, Error)]
pub enum CliError {
    /// `KIND/NAME` with a kind that is not a run kind.
    #[error("unknown kind \"{kind}\" in \"{text}\" (use mj, jf, dj or jr, or their kind names)")]
    UnknownKind {
        /// The kind as typed.
        kind: String,
        /// The whole argument.
        text: String,
    },
    /// An empty or malformed NAME.
    #[error("\"{0}\" is not a valid object name (NAME or KIND/NAME)")]
    BadName(String),
    /// A bare NAME that names objects of several kinds.
    #[error("\"{name}\" names more than one run: {} (give one of them)", choices.join(", "))]
    Ambiguous {
        /// The name.
        name: String,
        /// `KIND/NAME` of each match.
        choices: Vec<String>,
    },
    /// A bare NAME that no run kind has.
    #[error("failed to get ManagedJob, JobFlow, DaemonJob or JobRun {namespace}/{name}: not found")]
    NotFoundAnyKind {
        /// The namespace looked in.
        namespace: String,
        /// The name.
        name: String,
    },
    /// A GET of one object failed (missing, forbidden, unreachable).
    #[error("failed to get {kind} {namespace}/{name}: {message}")]
    Get {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The API server's message (or the client's error).
        message: String,
    },
    /// A LIST failed.
    #[error("failed to list {what}: {message}")]
    List {
        /// What was listed (`ManagedJobs in namespace ns`).
        what: String,
        /// The API server's message (or the client's error).
        message: String,
    },
    /// A write (suspend, resume) failed.
    #[error("failed to {action} {kind} {namespace}/{name}: {message}")]
    Write {
        /// `suspend` or `resume`.
        action: &'static str,
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The API server's message (or the client's error).
        message: String,
    },
    /// Reading pod logs failed.
    #[error("failed to read the logs of pod {namespace}/{pod}: {message}")]
    Logs {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The API server's message (or the client's error).
        message: String,
    },
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The client could not be built.
    #[error("failed to create a client: {0}")]
    Client(#[source] kube::Error),
    /// The object exists but its spec cannot be read by this version of the plugin.
    #[error("{kind} {namespace}/{name}: cannot read the spec: {message}")]
    Spec {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
    /// The spec is invalid (the manager reports the same message in the status).
    #[error("{kind} {namespace}/{name} is invalid: {message}")]
    InvalidSpec {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The engine's message.
        message: String,
    },
    /// A step that the run does not have.
    #[error("{kind} {name} has no step \"{step}\" (steps: {})", steps.join(", "))]
    NoSuchStep {
        /// The kind.
        kind: &'static str,
        /// The run's name.
        name: String,
        /// The step as typed.
        step: String,
        /// The run's step keys (at most a few).
        steps: Vec<String>,
    },
    /// A command that does not apply to this kind or these options.
    #[error("{0}")]
    Unsupported(String),
    /// Graphviz `dot` failed or is missing.
    #[error("{0}")]
    Graphviz(String),
    /// Writing to stdout failed (a closed pipe ends the command quietly).
    #[error("failed to write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Rendering JSON/YAML failed.
    #[error("failed to render the output: {0}")]
    Render(String),
}

/// The API server's own message of a failed request (`managedjobs.jobsmith.dev "x" not found`),
/// else the client's error.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Whether a request failed with 404 Not Found.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl CliError {
    /// The process exit code for this error: 1 (2 is kept for `wait`'s timeout).
    pub fn exit_code(&self) -> i32 {
        1
    }
}
