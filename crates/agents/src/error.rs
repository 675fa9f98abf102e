//! The crate's single error type.

use agentopt_llm::LlmError;
use agentopt_sandbox::SandboxError;

/// What can stop a conversation. Failures of the code or functions the model asked
/// for are not errors: they go back to the model as "Error: …" messages.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The chat model call failed (after the client's retries).
    #[error("agent `{agent}`: chat model call failed: {source}")]
    Model {
        /// The agent whose model call failed.
        agent: String,
        /// The model error.
        #[source]
        source: LlmError,
    },
    /// The sandbox could not start or talk to a Python worker.
    #[error("agent `{agent}`: sandbox failure: {source}")]
    Sandbox {
        /// The agent whose executor failed.
        agent: String,
        /// The sandbox error.
        #[source]
        source: SandboxError,
    },
    /// A learned function asks for a package the sandbox does not allow.
    #[error("function `{function}`: package `{package}` is not on the sandbox allowlist")]
    PackageNotAllowed {
        /// The learned function.
        function: String,
        /// The package as given.
        package: String,
    },
    /// Code was to run on an agent that has no executor.
    #[error("agent `{agent}` has no executor to run code")]
    NoExecutor {
        /// The agent.
        agent: String,
    },
}

impl AgentError {
    /// What kind of failure this is (for [`crate::StopReason::Error`]).
    pub fn failure_kind(&self) -> crate::FailureKind {
        use crate::FailureKind;
        match self {
            Self::Model { source, .. } => match source {
                LlmError::MalformedResponse { .. } | LlmError::InvalidToolArguments { .. } => {
                    FailureKind::MalformedReply
                }
                LlmError::ContextOverflow { .. } => FailureKind::ContextOverflow,
                LlmError::BudgetExceeded { .. } => FailureKind::Budget,
                _ => FailureKind::Model,
            },
            Self::Sandbox { .. } => FailureKind::Sandbox,
            Self::PackageNotAllowed { .. } | Self::NoExecutor { .. } => FailureKind::Other,
        }
    }
}
