//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong outside a cell. A cell that raises, crashes or times
/// out is not an error: it is a [`crate::CellOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No usable Python interpreter was found.
    #[error("no usable Python interpreter: tried {tried:?}: {detail}")]
    PythonNotFound {
        /// Candidates that were tried, in order.
        tried: Vec<PathBuf>,
        /// Why the last candidate was rejected.
        detail: String,
    },
    /// A setup command (venv creation, pip install) failed.
    #[error("python environment setup failed at `{command}` (exit {status}): {output}")]
    SetupCommand {
        /// The command line that failed.
        command: String,
        /// Its exit status, as text.
        status: String,
        /// Its combined stdout and stderr, verbatim.
        output: String,
    },
    /// A package a learned function asked for is not on the allowlist.
    #[error("package `{package}` is not on the sandbox allowlist")]
    PackageNotAllowed {
        /// The package name as given.
        package: String,
    },
    /// No isolation mechanism works here and the caller did not opt out.
    #[error(
        "no sandbox isolation is available ({reason}); refusing to run untrusted code \
         (set SandboxPolicy::allow_unsandboxed to opt out explicitly)"
    )]
    IsolationUnavailable {
        /// Why isolation could not be set up.
        reason: String,
    },
    /// The worker did not start or did not report ready.
    #[error("python worker failed to start: {detail}; worker stderr: {stderr}")]
    WorkerStart {
        /// What went wrong.
        detail: String,
        /// The worker's stderr, verbatim (tail).
        stderr: String,
    },
    /// The worker sent something that is not a protocol message.
    #[error("malformed message from python worker: {detail}: {raw:?}")]
    Protocol {
        /// What was wrong with it.
        detail: String,
        /// The raw line received.
        raw: String,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or program.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The environment manifest could not be read or written.
    #[error("environment manifest {path}: {detail}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong, with the raw text where there was one.
        detail: String,
    },
    /// The executor runs no Python, so learned functions cannot be defined in it.
    #[error("this executor cannot define learned functions for code to call")]
    FunctionsUnsupported,
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
