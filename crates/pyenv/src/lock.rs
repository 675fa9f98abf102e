//! An exclusive `flock` on a file, held until dropped.

use agentopt_core::io_error;
use std::fs::File;
use std::path::Path;

use fs2::FileExt;

use crate::PyEnvError;

/// An exclusive lock on a file, released when dropped (or when the process dies,
/// so a killed setup never leaves a stale lock behind).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock at `path` is held, creating the file and its folder.
    ///
    /// # Errors
    /// [`PyEnvError::Io`] when the file cannot be created or locked.
    pub fn acquire(path: &Path) -> Result<Self, PyEnvError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        }
        let file = File::create(path).map_err(io_error("create", path))?;
        file.lock_exclusive().map_err(io_error("lock", path))?;
        Ok(Self { _file: file })
    }
}
