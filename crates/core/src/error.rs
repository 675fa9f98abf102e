//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong reading or writing agentopt's files.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
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

/// A file or directory operation that failed: what was being done, to which path,
/// and the OS error. Every agentopt crate's error enum wraps this one as its `Io`
/// variant, so the message reads the same everywhere.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done ("read", "rename into", "lock", …).
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// A closure for `map_err` wrapping an I/O error on `path` as an [`IoError`] (`?`
/// then converts it into the crate's own error).
pub fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.into();
    move |source| IoError {
        action,
        path,
        source,
    }
}
