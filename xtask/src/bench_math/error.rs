//! `BenchError`, the one error enum of the benchmark library.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, writing the run directory or
/// reading it back. Every variant names the offending file (and line and field
/// where there is one) and keeps the raw input.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", "append to" …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The problem data could not be loaded or selected (names file, line, field).
    #[error(transparent)]
    Data(#[from] agentopt_mathchat::MathChatError),
    /// A run-directory file (config, transcripts, report) could not be parsed.
    #[error("{}:{line}: {message}", path.display())]
    RunFile {
        /// The file.
        path: PathBuf,
        /// 1-based line (1 for whole-file JSON).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The run directory is not in a state the command can use.
    #[error("run directory {}: {message}", path.display())]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The learning-curve plot could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotters error.
        message: String,
    },
}

impl BenchError {
    /// An `Io` error constructor for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
