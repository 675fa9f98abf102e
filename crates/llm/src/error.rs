//! The crate's single error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in `agentopt-llm`. Messages never contain API keys:
/// server bodies are passed through [`crate::config::redact`] before they are stored.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A configuration source has a missing or invalid field.
    #[error("{source_name}: field `{field}`: {message}")]
    Config {
        /// File path or environment variable the configuration came from.
        source_name: String,
        /// Offending field (e.g. `[0].api_type`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration source is not valid JSON.
    #[error("{source_name}:{line}:{column}: invalid JSON: {message}")]
    ConfigSyntax {
        /// File path or environment variable the configuration came from.
        source_name: String,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No configured endpoint matched the model filter.
    #[error("{source_name}: no endpoint matches the model filter {filter:?}")]
    NoMatchingEndpoint {
        /// Where the endpoint list came from.
        source_name: String,
        /// The models asked for.
        filter: Vec<String>,
    },
    /// The server answered with a non-success HTTP status (after any retries).
    #[error("{endpoint}: HTTP {status} after {attempts} attempt(s): {body}")]
    Http {
        /// Base URL of the endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// Attempts made, retries included.
        attempts: u32,
        /// Response body (redacted).
        body: String,
    },
    /// The request never got a complete HTTP response: connection refused or reset,
    /// or the body was cut off (after any retries).
    #[error("{endpoint}: transport error after {attempts} attempt(s): {message}")]
    Transport {
        /// Base URL of the endpoint.
        endpoint: String,
        /// Attempts made, retries included.
        attempts: u32,
        /// What the HTTP client reported.
        message: String,
    },
    /// No response within the per-request timeout (after any retries).
    #[error("{endpoint}: no response within {timeout:?} after {attempts} attempt(s)")]
    Timeout {
        /// Base URL of the endpoint.
        endpoint: String,
        /// The per-attempt timeout.
        timeout: Duration,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// The server's reply is not a chat completion we can read (after any retries).
    #[error("{endpoint}: malformed response after {attempts} attempt(s): {message}; body: {body}")]
    MalformedResponse {
        /// Base URL of the endpoint.
        endpoint: String,
        /// Attempts made, retries included.
        attempts: u32,
        /// Why it could not be read.
        message: String,
        /// The raw body (redacted, as received).
        body: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("{endpoint}: prompt exceeds the context window: {body}")]
    ContextOverflow {
        /// Base URL of the endpoint.
        endpoint: String,
        /// The server's explanation (redacted).
        body: String,
    },
    /// An endpoint failed its check before any conversation (see
    /// [`crate::ChatModel::preflight`]).
    #[error("preflight of model {model:?} at {endpoint} failed: {problem}")]
    Preflight {
        /// Base URL of the endpoint.
        endpoint: String,
        /// The model that was to be checked.
        model: String,
        /// What is wrong (unreachable, model not served, no answer in time, …).
        problem: String,
    },
    /// A tool call's arguments are not a JSON object.
    #[error("invalid arguments for `{function}`: {message}; arguments: {arguments}")]
    InvalidToolArguments {
        /// The function the model tried to call.
        function: String,
        /// The raw arguments text.
        arguments: String,
        /// Parser message.
        message: String,
    },
    /// The spending budget is used up; no further calls are made.
    #[error(
        "budget exceeded: spent ${spent_usd:.4} and {spent_tokens} tokens, limit {limit}; no further calls"
    )]
    BudgetExceeded {
        /// Cost so far in US dollars.
        spent_usd: f64,
        /// Tokens so far (prompt plus completion).
        spent_tokens: u64,
        /// The limit that was reached, e.g. `$1.0000` or `5000 tokens`.
        limit: String,
    },
    /// A metered event could not be written to the run's spend ledger; the call's
    /// answer is not used (unrecorded spend could overrun a resumed run's budget).
    #[error("spend not recorded: {message}")]
    SpendNotRecorded {
        /// What kept it from being written.
        message: String,
    },
    /// The response cache could not be read or written.
    #[error("response cache at {path}: {source}")]
    Cache {
        /// File or directory involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The request cannot be sent as given (e.g. invalid header value, no messages).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl LlmError {
    /// Whether a retry may succeed: rate limits, server errors, transport errors and
    /// timeouts.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            Self::Transport { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the endpoint itself failed the call (after its retries): any HTTP
    /// error status, transport failure, timeout, malformed reply or context
    /// overflow. A config list falls back to its next entry on these, as AG2 does
    /// on API errors; local refusals (budget, invalid request) stop at once.
    pub fn is_endpoint_failure(&self) -> bool {
        matches!(
            self,
            Self::Http { .. }
                | Self::Transport { .. }
                | Self::Timeout { .. }
                | Self::MalformedResponse { .. }
                | Self::ContextOverflow { .. }
        )
    }

    /// Whether the server answered 200 with something that is not a readable chat
    /// completion (retried against [`crate::RetryPolicy::max_malformed_attempts`]).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::MalformedResponse { .. })
    }
}
