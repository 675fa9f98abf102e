//! The run directory: every conversation, step and phase of a run, on disk before
//! the run moves on, so a kill at any moment loses nothing recorded and the next
//! run continues exactly where it stopped.
//!
//! Layout (the trainer's files; a front end may add its own, e.g. `config.json`):
//! - `transcripts.jsonl` — one [`ConversationRecord`] per finished attempt,
//!   appended and fsync'd; a later line for the same phase and index supersedes an
//!   earlier one (an infrastructure error re-run on resume).
//! - `steps.jsonl` — one [`StepRecord`] per finished optimizer step.
//! - `phases.jsonl` — one [`PhaseRecord`] per phase a process finished (time and
//!   spend).
//! - `spend.jsonl` — one [`agentopt_llm::SpendEntry`] per metered model event
//!   (answer, retry, failure), written before the answer is used, the preflight's
//!   included: the report's spend, and what a resumed run's budget starts from.
//! - `run.lock` — the advisory lock of the process working on the run (its pid).
//! - `checkpoints/optimizer.json` — the optimizer's live checkpoint, and a copy
//!   `after-epoch-NNN.json` after each step, from which a resume continues; the
//!   optimizer's journal `optimizer.journal.jsonl` and the journals it keeps
//!   (`optimizer.records-ID.jsonl`) hold the conversations it read, which the
//!   checkpoints point into.
//! - `functions.json` — the trained function set (the artifact).
//! - `step_details.jsonl` — one [`crate::StepDetail`] per optimizer step: its
//!   prompts, replies, accepted and rejected actions, the function set after it
//!   (`step_tape.jsonl` holds the calls of the step in progress).
//! - `report.json`, `report.md`, `learning_curve.svg` — the
//!   [`crate::TrainingReport`]; `report.html` — the whole run as one page
//!   ([`crate::write_report_html`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::task::Attempt;

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`, created (with `checkpoints/`) if missing.
    ///
    /// # Errors
    /// [`TrainError::File`] when the directories cannot be created.
    pub fn open(root: &Path) -> Result<Self, TrainError> {
        let run = Self {
            root: root.to_owned(),
        };
        std::fs::create_dir_all(run.checkpoints_dir())
            .map_err(agentopt_core::io_error("create", run.checkpoints_dir()))
            .map_err(agentopt_core::CoreError::from)?;
        Ok(run)
    }

    /// The run directory at `root`, as it is (nothing created).
    pub(crate) fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// `spend.jsonl`: every metered model event of the run, all processes.
    pub fn spend_path(&self) -> PathBuf {
        self.root.join("spend.jsonl")
    }

    /// `run.lock`: the pid of the process working on the run.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("run.lock")
    }

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The optimizer's live checkpoint.
    pub fn optimizer_checkpoint_path(&self) -> PathBuf {
        self.checkpoints_dir().join("optimizer.json")
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

    /// `report.json`.
    pub fn report_json_path(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// `report.md`.
    pub fn report_md_path(&self) -> PathBuf {
        self.root.join("report.md")
    }

    /// `step_details.jsonl`.
    pub fn step_details_path(&self) -> PathBuf {
        self.root.join("step_details.jsonl")
    }

    /// `step_tape.jsonl`: the optimizer's calls in the step in progress, one
    /// exchange a line, until the step's line of `step_details.jsonl` holds them.
    pub fn step_tape_path(&self) -> PathBuf {
        self.root.join("step_tape.jsonl")
    }

    /// `forced_calls.jsonl`: the conversations run to give a function a worked
    /// example ([`crate::TrainerOptions::forced_call_demonstrations`]).
    pub fn forced_calls_path(&self) -> PathBuf {
        self.root.join("forced_calls.jsonl")
    }

    /// `learning_curve.svg`.
    pub fn learning_curve_path(&self) -> PathBuf {
        self.root.join("learning_curve.svg")
    }

    /// `report.html`.
    pub fn report_html_path(&self) -> PathBuf {
        self.root.join("report.html")
    }
}

/// Which phase of the run a conversation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

impl Phase {
    /// The phase's name in `phases.jsonl` and the report's wall-time table.
    pub fn name(self) -> String {
        match self {
            Self::TestBefore => "test before training".to_owned(),
            Self::Train { epoch } => format!("epoch {epoch}"),
            Self::Validation { epoch } => format!("validation {epoch}"),
            Self::TestAfter => "test after training".to_owned(),
        }
    }
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

/// One finished attempt, as stored in `transcripts.jsonl`. A conversation is stored
/// once: when the attempt's history is what its transcript's recipient saw, the line
/// leaves the history out and reading it back rebuilds it (lines written before
/// hold both, and read as they are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecordLine", into = "RecordLine")]
pub struct ConversationRecord {
    /// The phase.
    #[serde(flatten)]
    pub phase: Phase,
    /// Position of the problem in the phase's problem list.
    pub index: usize,
    /// The problem's id.
    pub problem_id: String,
    /// The learned functions the attempt was offered (all of the set in force, or
    /// those retrieval chose); journals from before read as none recorded.
    pub offered: Vec<String>,
    /// What happened.
    #[serde(flatten)]
    pub attempt: Attempt,
}

/// A [`ConversationRecord`] as one line of `transcripts.jsonl`.
#[derive(Serialize, Deserialize)]
struct RecordLine {
    #[serde(flatten)]
    phase: Phase,
    index: usize,
    problem_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    offered: Vec<String>,
    #[serde(flatten)]
    attempt: Attempt,
    /// `attempt.history` was left out: it is the transcript recipient's view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    history_in_transcript: bool,
}

impl From<ConversationRecord> for RecordLine {
    fn from(record: ConversationRecord) -> Self {
        let mut attempt = record.attempt;
        let history_in_transcript = !attempt.history.is_empty()
            && attempt.transcript.as_ref().is_some_and(|transcript| {
                transcript.history_of(&transcript.recipient) == attempt.history
            });
        if history_in_transcript {
            attempt.history = Vec::new();
        }
        Self {
            phase: record.phase,
            index: record.index,
            problem_id: record.problem_id,
            offered: record.offered,
            attempt,
            history_in_transcript,
        }
    }
}

impl From<RecordLine> for ConversationRecord {
    fn from(line: RecordLine) -> Self {
        let mut attempt = line.attempt;
        if line.history_in_transcript
            && let Some(transcript) = &attempt.transcript
        {
            attempt.history = transcript.history_of(&transcript.recipient);
        }
        Self {
            phase: line.phase,
            index: line.index,
            problem_id: line.problem_id,
            offered: line.offered,
            attempt,
        }
    }
}

/// One forced-call conversation, as stored in `forced_calls.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForcedCallRecord {
    /// The step after which it ran.
    pub epoch: u32,
    /// The function its first reply was made to call.
    pub function: String,
    /// Position of the problem in the training problems.
    pub index: usize,
    /// The problem's id.
    pub problem_id: String,
    /// Its solution became the function's worked example.
    pub kept: bool,
    /// What happened.
    #[serde(flatten)]
    pub attempt: Attempt,
}

/// Worked examples of learned functions a step kept and rejected (written by the
/// optimizer, or bootstrapped from correct conversations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemonstrationCounts {
    /// Verified and given to a function.
    pub kept: u32,
    /// Rejected: their solution did not reproduce the reference answer (or did not
    /// run, or did not call the function).
    pub rejected: u32,
}

impl DemonstrationCounts {
    /// Nothing kept or rejected.
    pub fn is_empty(&self) -> bool {
        self.kept == 0 && self.rejected == 0
    }
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
    /// Optimizer replies rejected by validation and retried (invalid functions,
    /// unknown tools, unreadable JSON).
    #[serde(default)]
    pub rejected: u32,
    /// Function names in force after the step.
    pub functions_after: Vec<String>,
    /// The optimizer asked to stop (patience used up).
    pub should_stop: bool,
    /// The step did not run: its model failed after its retries (the reason). The
    /// functions stayed; the epoch's conversations count in the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Functions the step removed because no conversation had called them for
    /// the configured number of steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// Worked examples the step kept and rejected.
    #[serde(default, skip_serializing_if = "DemonstrationCounts::is_empty")]
    pub demonstrations: DemonstrationCounts,
    /// Groups the step's conversations were split into, when they did not fit one
    /// optimizer prompt whole (0: one prompt).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partitions: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl StepRecord {
    /// `kept the trial · 1 action (2 rejected) over 3 partitions · functions: solve`.
    pub fn summary(&self) -> String {
        if let Some(reason) = &self.skipped {
            return format!("skipped: {reason}");
        }
        let decision = if self.kept {
            "kept the trial"
        } else {
            "rolled back to the best"
        };
        let plural = if self.actions == 1 { "" } else { "s" };
        let rejected = if self.rejected == 0 {
            String::new()
        } else {
            format!(" ({} rejected)", self.rejected)
        };
        let functions = if self.functions_after.is_empty() {
            "none".to_owned()
        } else {
            self.functions_after.join(", ")
        };
        let partitions = if self.partitions == 0 {
            String::new()
        } else {
            format!(" over {} partitions", self.partitions)
        };
        format!(
            "{decision} · {} action{plural}{rejected}{partitions} · functions: {functions}",
            self.actions
        )
    }
}

/// One phase finished by one process, as stored in `phases.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Phase name ([`Phase::name`], or `step N`).
    pub phase: String,
    /// Wall time in seconds (of the process that ran it).
    pub seconds: f64,
    /// Metered spend during the phase, per caller role.
    pub usage: Vec<RoleUsage>,
    /// The same, per endpoint (which config-list entry answered, and which
    /// failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<RoleUsage>,
}

/// Metered usage of one caller role (or, in the endpoint tables, one endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleUsage {
    /// Caller label (`assistant`, `optimizer`, …), or the endpoint's label.
    pub role: String,
    /// Uncached calls answered.
    pub calls: u64,
    /// Calls that failed after their retries.
    #[serde(default)]
    pub failed_calls: u64,
    /// Failed attempts that were retried (429, 5xx, transport faults, malformed
    /// replies).
    #[serde(default)]
    pub retries: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in US dollars (0 for unpriced models).
    pub cost_usd: f64,
}

impl RoleUsage {
    /// Nothing used yet by `role`.
    pub fn empty(role: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            calls: 0,
            failed_calls: 0,
            retries: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
        }
    }

    /// `totals` under `role`.
    pub(crate) fn from_totals(role: &str, totals: &agentopt_llm::UsageTotals) -> Self {
        Self {
            role: role.to_owned(),
            calls: totals.calls,
            failed_calls: totals.failed_calls,
            retries: totals.retries,
            prompt_tokens: totals.prompt_tokens,
            completion_tokens: totals.completion_tokens,
            cost_usd: totals.cost_usd,
        }
    }

    /// What `now` adds to `before`, under `role`; `None` when nothing happened.
    pub(crate) fn delta(
        role: &str,
        now: &agentopt_llm::UsageTotals,
        before: &agentopt_llm::UsageTotals,
    ) -> Option<Self> {
        let delta = Self {
            role: role.to_owned(),
            calls: now.calls - before.calls,
            failed_calls: now.failed_calls - before.failed_calls,
            retries: now.retries - before.retries,
            prompt_tokens: now.prompt_tokens - before.prompt_tokens,
            completion_tokens: now.completion_tokens - before.completion_tokens,
            cost_usd: now.cost_usd - before.cost_usd,
        };
        (delta.calls + delta.failed_calls + delta.retries > 0).then_some(delta)
    }

    /// Adds `other`'s counts (same role).
    pub fn merge(&mut self, other: &RoleUsage) {
        self.calls += other.calls;
        self.failed_calls += other.failed_calls;
        self.retries += other.retries;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
    }
}
