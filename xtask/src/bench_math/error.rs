//! `BenchError`, the one error enum of the benchmark library.

use std::path::PathBuf;

/// What can go wrong in bench-math outside the training run itself. Every variant
/// names the offending file (and line and field where there is one).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file could not be read or written, or does not parse (names file and line).
    #[error(transparent)]
    File(#[from] agentopt_core::CoreError),
    /// The problem data could not be loaded or selected (names file, line, field).
    #[error(transparent)]
    Data(#[from] agentopt_mathchat::MathChatError),
    /// The run directory is not in a state the command can use.
    #[error("run directory {}: {message}", path.display())]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
