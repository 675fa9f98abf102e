//! A venv that is either complete (its ready marker written) or rebuilt.

use agentopt_core::io_error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{FileLock, PyEnvError, PythonInfo, find_interpreter, run};

/// Written into a venv once it is complete: the [`PythonInfo`] of the interpreter
/// it was built from, as JSON.
pub const READY_MARKER: &str = "agentopt-venv-ready";

/// Where a venv lives and what it is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvOptions {
    /// The venv directory.
    pub dir: PathBuf,
    /// The lock file serialising its creation and installs across processes.
    pub lock: PathBuf,
    /// The interpreter to build it from; `None` searches (see [`find_interpreter`]).
    pub python: Option<PathBuf>,
    /// The oldest usable Python (major, minor).
    pub minimum: (u32, u32),
}

impl VenvOptions {
    /// A venv at `dir`, locked by `<dir>.lock`, built from the interpreter
    /// [`find_interpreter`] finds.
    pub fn new(dir: impl Into<PathBuf>, minimum: (u32, u32)) -> Self {
        let dir = dir.into();
        let mut lock = dir.clone().into_os_string();
        lock.push(".lock");
        Self {
            dir,
            lock: PathBuf::from(lock),
            python: None,
            minimum,
        }
    }
}

/// A complete venv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    dir: PathBuf,
    lock: PathBuf,
    base: PythonInfo,
}

impl Venv {
    /// The venv of `options`, built now (under its lock) unless complete. A
    /// directory without a readable marker is kept when its interpreter and pip
    /// run (a venv made before markers existed), else rebuilt from scratch (the
    /// leftover of an interrupted build).
    ///
    /// # Errors
    /// [`PyEnvError::NoPython`], [`PyEnvError::Command`] (venv creation),
    /// [`PyEnvError::Io`].
    pub fn ensure(options: &VenvOptions) -> Result<Self, PyEnvError> {
        if let Some(venv) = Self::existing(options) {
            return Ok(venv);
        }
        let _lock = FileLock::acquire(&options.lock)?;
        if let Some(venv) = Self::existing(options) {
            return Ok(venv);
        }
        let venv_python = options.dir.join("bin").join("python");
        let base = match Self::adoptable(&venv_python, options.minimum) {
            Some(base) => base,
            None => {
                let base = find_interpreter(options.python.as_deref(), options.minimum)?;
                remove_dir_if_present(&options.dir)?;
                run(Command::new(&base.executable)
                    .args(["-I", "-m", "venv"])
                    .arg(&options.dir))?;
                base
            }
        };
        let marker = options.dir.join(READY_MARKER);
        let text = serde_json::to_string_pretty(&base)
            .map_err(|error| io_error("write", &marker)(std::io::Error::other(error)))?;
        std::fs::write(&marker, text).map_err(io_error("write", &marker))?;
        Ok(Self {
            dir: options.dir.clone(),
            lock: options.lock.clone(),
            base,
        })
    }

    /// The venv of `options` if it is complete (its marker readable, its
    /// interpreter present), without locking or building anything: the cheap check
    /// before showing progress for [`Self::ensure`].
    #[must_use]
    pub fn existing(options: &VenvOptions) -> Option<Self> {
        let text = std::fs::read_to_string(options.dir.join(READY_MARKER)).ok()?;
        let base: PythonInfo = serde_json::from_str(&text).ok()?;
        let venv = Self {
            dir: options.dir.clone(),
            lock: options.lock.clone(),
            base,
        };
        venv.python().is_file().then_some(venv)
    }

    /// The interpreter behind an unmarked venv whose Python and pip both run.
    fn adoptable(venv_python: &Path, minimum: (u32, u32)) -> Option<PythonInfo> {
        if !venv_python.is_file() {
            return None;
        }
        let pip = Command::new(venv_python)
            .args(["-I", "-m", "pip", "--version"])
            .output()
            .ok()?;
        // The venv's interpreter is a link to the one it was built from.
        pip.status
            .success()
            .then(|| PythonInfo::probe(venv_python, minimum).ok())
            .flatten()
    }

    /// The venv directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The venv's interpreter (`<dir>/bin/python`).
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// The interpreter the venv was built from (its version and installation).
    pub fn base(&self) -> &PythonInfo {
        &self.base
    }

    /// The venv's lock; hold it around [`Self::install`] and any marker of your own
    /// that records what is installed.
    ///
    /// # Errors
    /// [`PyEnvError::Io`].
    pub fn lock(&self) -> Result<FileLock, PyEnvError> {
        FileLock::acquire(&self.lock)
    }

    /// `python -I -m pip <subcommand>`, non-interactive, without version check or
    /// progress bars.
    pub fn pip(&self, subcommand: &str) -> Command {
        let mut command = Command::new(self.python());
        command.args([
            "-I",
            "-m",
            "pip",
            subcommand,
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ]);
        command
    }

    /// `pip install <pip_args> <requirements>` in the venv (already satisfied
    /// requirements cost no download). Hold [`Self::lock`] while calling it.
    ///
    /// # Errors
    /// [`PyEnvError::Command`] with pip's output.
    pub fn install(
        &self,
        requirements: &[impl AsRef<OsStr>],
        pip_args: &[&str],
    ) -> Result<(), PyEnvError> {
        run(self.pip("install").args(pip_args).args(requirements)).map(drop)
    }
}

/// Removes `dir` and everything in it; a missing `dir` is fine.
fn remove_dir_if_present(dir: &Path) -> Result<(), PyEnvError> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("remove", dir)(error).into())
        }
        _ => Ok(()),
    }
}
