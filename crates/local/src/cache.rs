//! The per-user cache holding the assembled models, the Python runtime and server logs.
//!
//! Layout under the root:
//! - `models/<id>.gguf`: verified models (present only after a successful check);
//! - `models/<id>.lock`, `models/<id>.gguf.partial`, `downloads/<id>/`: assembly
//!   in progress (the wheels are deleted once the model is in place);
//! - `runtime/venv/`, `runtime.lock`: the managed Python venv with the server runtime;
//! - `logs/`: logs of running servers.

use std::path::{Path, PathBuf};

use crate::LocalError;
use crate::spec::LocalModelSpec;

/// Environment variable that overrides the cache root.
pub const AGENTOPT_HOME: &str = "AGENTOPT_HOME";

/// A cache root: where models, the runtime and logs live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCache {
    root: PathBuf,
}

impl LocalCache {
    /// `$AGENTOPT_HOME` if set and non-empty, else `agentopt` in the per-user cache
    /// directory (e.g. `~/.cache/agentopt`).
    pub fn from_env() -> Result<Self, LocalError> {
        match std::env::var_os(AGENTOPT_HOME) {
            Some(home) if !home.is_empty() => Ok(Self::at(home)),
            _ => dirs::cache_dir()
                .map(|dir| Self::at(dir.join("agentopt")))
                .ok_or(LocalError::NoCacheDir),
        }
    }

    /// A cache rooted at `root` (created on first use).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the verified model file lives once obtained.
    pub fn model_path(&self, spec: &LocalModelSpec) -> PathBuf {
        self.root.join("models").join(spec.file_name())
    }

    pub(crate) fn model_lock_path(&self, spec: &LocalModelSpec) -> PathBuf {
        self.root.join("models").join(format!("{}.lock", spec.id))
    }

    pub(crate) fn download_dir(&self, spec: &LocalModelSpec) -> PathBuf {
        self.root.join("downloads").join(spec.id)
    }

    pub(crate) fn runtime_dir(&self) -> PathBuf {
        self.root.join("runtime")
    }

    pub(crate) fn runtime_lock_path(&self) -> PathBuf {
        self.root.join("runtime.lock")
    }

    pub(crate) fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// An exclusive advisory lock on a file, released when dropped.
///
/// `flock` locks belong to the open file, so the lock also excludes other threads of
/// this process that open the same path.
#[derive(Debug)]
pub(crate) struct FileLock {
    _lock: agentopt_pyenv::FileLock,
}

impl FileLock {
    /// Blocks until the lock at `path` is held, creating the file and its folder.
    pub(crate) fn acquire_blocking(path: &Path) -> Result<Self, LocalError> {
        let lock = agentopt_pyenv::FileLock::acquire(path)?;
        Ok(Self { _lock: lock })
    }

    /// Waits for the lock without blocking the async runtime.
    pub(crate) async fn acquire(path: PathBuf) -> Result<Self, LocalError> {
        tokio::task::spawn_blocking(move || Self::acquire_blocking(&path))
            .await
            .map_err(LocalError::task("file lock"))?
    }
}
