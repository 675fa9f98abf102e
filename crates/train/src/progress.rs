//! Progress events: the trainer says what it does; a front end renders it
//! (indicatif bars in `cargo xtask bench-math`, a callback in Python, nothing here).

use crate::journal::{Phase, StepRecord};
use crate::task::Outcome;

/// Something the trainer did.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A phase starts: `total` problems, some of which may be recorded already.
    PhaseStarted {
        /// The phase.
        phase: Phase,
        /// Problems in the phase.
        total: usize,
    },
    /// A problem of the phase was already recorded by an earlier run.
    Resumed {
        /// The phase.
        phase: Phase,
        /// Its outcome.
        outcome: &'a Outcome,
        /// Its tokens.
        tokens: u64,
    },
    /// An attempt finished and is on disk.
    Finished {
        /// The phase.
        phase: Phase,
        /// The problem's id.
        problem_id: &'a str,
        /// Its outcome.
        outcome: &'a Outcome,
        /// Its tokens.
        tokens: u64,
    },
    /// The phase's attempts are all done (or the phase stopped on errors).
    PhaseFinished {
        /// The phase.
        phase: Phase,
    },
    /// The optimizer step after `epoch` starts.
    StepStarted {
        /// The epoch.
        epoch: u32,
    },
    /// The optimizer step after `epoch` finished and is on disk.
    StepFinished {
        /// What it decided.
        step: &'a StepRecord,
    },
}

/// Receives the trainer's [`Event`]s, in order, from the task running the trainer.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: Event<'_>);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Observer for NoProgress {
    fn event(&self, _event: Event<'_>) {}
}
