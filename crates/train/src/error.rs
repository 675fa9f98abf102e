//! The crate's one error type.

use std::path::PathBuf;

/// What stops a training run. Infrastructure failures of single attempts are not
/// errors (they are counted and re-run); these are the failures of the run itself.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A run file could not be read or written, or is not what this build writes.
    #[error(transparent)]
    File(#[from] agentopt_core::CoreError),
    /// A model failed its check before the first attempt (unreachable, model not
    /// served, context window unknown); nothing was run or recorded.
    #[error("before the first conversation: {0}")]
    Preflight(agentopt_llm::LlmError),
    /// The optimizer failed (its model, its checkpoint, its options).
    #[error("optimizer: {0}")]
    Optimizer(#[from] agentopt_optimizer::OptimizerError),
    /// The sandbox that checks proposed functions could not start.
    #[error("sandbox for checking proposed functions: {0}")]
    Sandbox(#[from] agentopt_sandbox::SandboxError),
    /// A trainer option cannot work.
    #[error("option `{option}` = {value}: {message}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// Why.
        message: String,
    },
    /// The learning curve could not be drawn (plotters' message).
    #[error("cannot draw the learning curve: {0}")]
    Plot(String),
    /// Another process is working on the run directory (it holds `run.lock`).
    #[error(
        "run directory {} is in use by {}; wait for it to end (or stop it) before \
         running again",
        path.display(),
        pid.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"))
    )]
    RunDirInUse {
        /// The run directory.
        path: PathBuf,
        /// The holder's pid, when its lock file names one.
        pid: Option<u32>,
    },
    /// Two problems of one set have the same id.
    #[error("{set} problems {first} and {second} have the same id {id:?}; ids must be unique")]
    DuplicateProblemId {
        /// `train`, `validation` or `test`.
        set: &'static str,
        /// The id.
        id: String,
        /// Index of its first occurrence.
        first: usize,
        /// Index of its second occurrence.
        second: usize,
    },
    /// A test problem is also a training or validation problem: the test would
    /// measure recall, not skill.
    #[error(
        "test problem {test_id:?} has the text of {set} problem {other_id:?}; a test \
         problem must not be trained on (draw the test set from test files only)"
    )]
    TestProblemInTraining {
        /// The test problem's id.
        test_id: String,
        /// `train` or `validation`.
        set: &'static str,
        /// The id of the training or validation problem with the same text.
        other_id: String,
    },
    /// The run directory holds another run's conversation at this position.
    #[error(
        "{}: {phase} problem {index} was {recorded:?} but is now {now:?}; the problems \
         changed since the run started (use another run directory)",
        path.display()
    )]
    ProblemChanged {
        /// `transcripts.jsonl`.
        path: PathBuf,
        /// The phase.
        phase: crate::Phase,
        /// The position.
        index: usize,
        /// The id recorded there.
        recorded: String,
        /// The id now at that position.
        now: String,
    },
}
