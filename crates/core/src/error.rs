//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong reading or writing agentopt's files.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "rename into", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{}{}: {message}", path.display(), line.map(|line| format!(":{line}")).unwrap_or_default())]
    Format {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file was written by another program or a newer agentopt.
    #[error(
        "{}: format {format:?} version {found} is not supported (this build reads version {supported})",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The `format` field found.
        format: String,
        /// The `version` field found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A function in a function set breaks a rule.
    #[error("{}: function {name:?}: {message}", path.display())]
    InvalidFunction {
        /// The file.
        path: PathBuf,
        /// The function's name.
        name: String,
        /// The rule it breaks.
        message: String,
    },
}

impl CoreError {
    /// A closure mapping an I/O error on `path` to [`CoreError::Io`].
    pub fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
