//! `PyEnvError`, the crate's one error enum.

use std::path::PathBuf;

/// What can go wrong while finding Python, building a venv or running pip.
#[derive(Debug, thiserror::Error)]
pub enum PyEnvError {
    /// No candidate interpreter runs and is new enough.
    #[error(
        "no usable Python >= {minimum} found (tried: {}); install CPython {minimum} or later or set AGENTOPT_PYTHON",
        rejections(tried)
    )]
    NoPython {
        /// The version asked for, e.g. `3.10`.
        minimum: String,
        /// Each candidate, in order, and why it was rejected.
        tried: Vec<(PathBuf, String)>,
    },
    /// A command (venv creation, pip) could not be started or failed.
    #[error("`{command}` failed ({status}); output:\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status, or why it could not run.
        status: String,
        /// Its stdout followed by its stderr, verbatim.
        output: String,
    },
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] agentopt_core::IoError),
}

impl PyEnvError {
    /// A command that could not be started at all.
    #[must_use]
    pub fn not_started(command: &str, error: &std::io::Error) -> Self {
        Self::Command {
            command: command.to_owned(),
            status: format!("could not run: {error}"),
            output: String::new(),
        }
    }
}

/// The candidates of [`PyEnvError::NoPython`] as text: `candidate: reason; candidate: reason`.
pub fn rejections(tried: &[(PathBuf, String)]) -> String {
    tried
        .iter()
        .map(|(candidate, reason)| format!("{}: {reason}", candidate.display()))
        .collect::<Vec<_>>()
        .join("; ")
}
