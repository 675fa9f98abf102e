//! The run directory: where a run's configuration, every conversation, the
//! optimizer's checkpoints and the results live, so that a kill at any moment
//! loses nothing recorded and `--resume` can continue.
//!
//! Layout:
//! - `config.json` — the resolved settings (no secrets), written once.
//! - `transcripts.jsonl` — one [`ConversationRecord`] per finished conversation,
//!   appended and fsync'd before the run moves on.
//! - `steps.jsonl` — one [`StepRecord`] per finished optimizer step.
//! - `phases.jsonl` — one [`PhaseRecord`] per finished phase (time and spend).
//! - `checkpoints/` — the optimizer's live checkpoint (`optimizer.json`, rewritten
//!   after every record and step) and a copy after each step
//!   (`after-epoch-NNN.json`), from which `--resume` continues.
//! - `functions.json` — the trained function set (the artifact).
//! - `bench.log` — tracing log.
//! - `report.json`, `report.md`, `learning_curve.svg` — results.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::BenchError;

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates a fresh run directory at `root` (the directory may exist but must
    /// not hold a run already) and writes `config.json`.
    ///
    /// # Errors
    /// [`BenchError::RunDir`] when `root` already holds a run; [`BenchError::Io`].
    pub fn create(root: &Path, config: &impl Serialize) -> Result<Self, BenchError> {
        let run = Self {
            root: root.to_owned(),
        };
        if run.config_path().exists() {
            return Err(BenchError::RunDir {
                path: root.to_owned(),
                message: "already holds a run (config.json exists); pass --resume to continue \
                          it or choose another --run-dir"
                    .to_owned(),
            });
        }
        std::fs::create_dir_all(run.checkpoints_dir())
            .map_err(BenchError::io("create", &run.checkpoints_dir()))?;
        write_json_atomic(&run.config_path(), config)?;
        Ok(run)
    }

    /// Opens an existing run directory for `--resume`; returns it with its config.
    ///
    /// # Errors
    /// [`BenchError::RunDir`] when there is no run there; [`BenchError::RunFile`]
    /// when `config.json` does not parse.
    pub fn open<C: DeserializeOwned>(root: &Path) -> Result<(Self, C), BenchError> {
        let run = Self {
            root: root.to_owned(),
        };
        if !run.config_path().exists() {
            return Err(BenchError::RunDir {
                path: root.to_owned(),
                message: "holds no run to resume (no config.json)".to_owned(),
            });
        }
        std::fs::create_dir_all(run.checkpoints_dir())
            .map_err(BenchError::io("create", &run.checkpoints_dir()))?;
        let config = read_json(&run.config_path())?;
        Ok((run, config))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `transcripts.jsonl`.
    pub fn transcripts_path(&self) -> PathBuf {
        self.root.join("transcripts.jsonl")
    }

    /// `steps.jsonl`.
    pub fn steps_path(&self) -> PathBuf {
        self.root.join("steps.jsonl")
    }

    /// `phases.jsonl`.
    pub fn phases_path(&self) -> PathBuf {
        self.root.join("phases.jsonl")
    }

    /// The optimizer's live checkpoint.
    pub fn optimizer_checkpoint_path(&self) -> PathBuf {
        self.checkpoints_dir().join("optimizer.json")
    }

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The optimizer checkpoint written after the step of `epoch`.
    pub fn checkpoint_path(&self, epoch: u32) -> PathBuf {
        self.checkpoints_dir()
            .join(format!("after-epoch-{epoch:03}.json"))
    }

    /// `functions.json`.
    pub fn functions_path(&self) -> PathBuf {
        self.root.join("functions.json")
    }

    /// `bench.log`.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("bench.log")
    }

    /// `report.json`.
    pub fn report_json_path(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// `report.md`.
    pub fn report_md_path(&self) -> PathBuf {
        self.root.join("report.md")
    }

    /// `learning_curve.svg`.
    pub fn plot_path(&self) -> PathBuf {
        self.root.join("learning_curve.svg")
    }
}

/// Which phase of the run a conversation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The test set before any training.
    TestBefore,
    /// Training conversations of one epoch (1-based).
    Train {
        /// The epoch.
        epoch: u32,
    },
    /// Held-out validation problems of one epoch (validation mode).
    Validation {
        /// The epoch.
        epoch: u32,
    },
    /// The test set after training.
    TestAfter,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TestBefore => f.write_str("test before training"),
            Self::Train { epoch } => write!(f, "training epoch {epoch}"),
            Self::Validation { epoch } => write!(f, "validation epoch {epoch}"),
            Self::TestAfter => f.write_str("test after training"),
        }
    }
}

/// One finished conversation, as stored in `transcripts.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// The phase.
    #[serde(flatten)]
    pub phase: Phase,
    /// Position of the problem in the phase's problem list.
    pub index: usize,
    /// The problem's id.
    pub problem_id: String,
    /// Whether the answer was judged correct.
    pub correct: bool,
    /// The answer the agents gave (last `\boxed{}`), if any.
    pub answer: Option<String>,
    /// The reference answer.
    pub reference: String,
    /// The conversation as the assistant saw it: what the optimizer is given.
    pub history: Vec<agentopt_llm::ChatMessage>,
    /// The whole conversation (the agents crate's transcript JSON).
    pub transcript: serde_json::Value,
}

/// One finished optimizer step, as stored in `steps.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The epoch whose conversations the step read.
    pub epoch: u32,
    /// The epoch's function list became (or stayed) the best.
    pub kept: bool,
    /// Actions applied.
    pub actions: u32,
    /// Function names in force after the step.
    pub functions_after: Vec<String>,
    /// The optimizer asked to stop (patience used up).
    pub should_stop: bool,
}

/// One finished phase, as stored in `phases.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Phase name.
    pub phase: String,
    /// Wall time in seconds (of the last process that ran it).
    pub seconds: f64,
    /// Metered spend during the phase, per caller role.
    pub usage: Vec<crate::bench_math::report::RoleUsage>,
}

/// An append-only JSON-lines file where every line is on disk (fsync'd) before
/// [`JsonLines::append`] returns, so a kill loses nothing that was appended.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: File,
}

impl JsonLines {
    /// Opens (or creates) `path` for appending. A last line cut short by a kill
    /// (no newline at the end) is dropped from the file first, so new lines start
    /// on a line of their own.
    ///
    /// # Errors
    /// [`BenchError::Io`].
    pub fn open(path: &Path) -> Result<Self, BenchError> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(BenchError::io("open", path))?;
        let text = std::fs::read(path).map_err(BenchError::io("read", path))?;
        let complete = text
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        if complete < text.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = text.len() - complete,
                "dropping an incomplete last line (the previous run was killed while writing it)"
            );
            file.set_len(complete as u64)
                .map_err(BenchError::io("truncate", path))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends `value` as one line and waits until it is on disk.
    ///
    /// # Errors
    /// [`BenchError::Io`].
    pub fn append(&mut self, value: &impl Serialize) -> Result<(), BenchError> {
        let mut line = serde_json::to_string(value).map_err(|error| BenchError::RunFile {
            path: self.path.clone(),
            line: 0,
            message: format!("cannot serialise a record: {error}"),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(BenchError::io("append to", &self.path))
    }
}

/// Reads every complete line of a JSON-lines file (a missing file is empty; an
/// incomplete last line, left by a kill, is ignored).
///
/// # Errors
/// [`BenchError::Io`]; [`BenchError::RunFile`] naming the line that does not parse.
pub fn read_json_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, BenchError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(BenchError::io("read", path)(error)),
    };
    let complete = text.rfind('\n').map_or("", |at| &text[..=at]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| BenchError::RunFile {
                path: path.to_owned(),
                line: index + 1,
                message: error.to_string(),
            })
        })
        .collect()
}

/// Writes `value` as pretty JSON through a temporary file and a rename, so the
/// file is always either the old or the new version.
///
/// # Errors
/// [`BenchError::Io`].
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), BenchError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|error| BenchError::RunFile {
        path: path.to_owned(),
        line: 0,
        message: format!("cannot serialise: {error}"),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
///
/// # Errors
/// [`BenchError::Io`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = File::create(&temporary).map_err(BenchError::io("create", &temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(BenchError::io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(BenchError::io("rename into", path))
}

/// Reads a whole-file JSON document.
///
/// # Errors
/// [`BenchError::Io`]; [`BenchError::RunFile`] with the line of the syntax error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, BenchError> {
    let text = std::fs::read_to_string(path).map_err(BenchError::io("read", path))?;
    serde_json::from_str(&text).map_err(|error| BenchError::RunFile {
        path: path.to_owned(),
        line: error.line(),
        message: error.to_string(),
    })
}
