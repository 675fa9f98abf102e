//! Rebuilding a conversation's Python state after a timeout or crash killed its
//! worker: the cells that ran to completion are run again, in order, before the next
//! cell, whether the state was lost by a cell or by a learned-function call.

use agentopt_sandbox::CellOutcome;

/// The cells that completed in the conversation's session, and whether the worker
/// has lost its state since they ran.
#[derive(Debug, Default)]
pub(crate) struct CellLog {
    completed: Vec<String>,
    lost: bool,
}

impl CellLog {
    /// Notes a cell's outcome: kept for replay when it completed.
    pub(crate) fn record_cell(&mut self, code: &str, outcome: &CellOutcome) {
        if outcome.succeeded() {
            self.completed.push(code.to_owned());
        }
        self.note_state(outcome);
    }

    /// Notes whether a cell or function call killed the worker.
    pub(crate) fn note_state(&mut self, outcome: &CellOutcome) {
        self.lost |= outcome.state_lost;
    }

    /// The cells to run again when state was lost since the last replay, or `None`.
    /// The log is emptied: the cells that complete again are recorded again.
    pub(crate) fn take_replay(&mut self) -> Option<Vec<String>> {
        std::mem::take(&mut self.lost).then(|| std::mem::take(&mut self.completed))
    }

    /// The next conversation starts from nothing.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

/// What running the earlier cells again did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Cells run again.
    pub cells: usize,
    /// Those that did not complete this time: what they defined is missing.
    pub failures: Vec<ReplayFailure>,
}

/// One cell that failed when run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFailure {
    /// Its position among the cells run again, from 1.
    pub cell: usize,
    /// The cell's code.
    pub code: String,
    /// Its error (traceback with library frames removed, or how the worker died).
    pub error: String,
}

impl Replay {
    /// The text that tells the model which replayed cells failed, or `None` when all
    /// completed (a clean replay is invisible, as if the state had never been lost).
    pub fn failure_note(&self) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        let mut note = format!(
            "Note: the Python session had been restarted, so the {} earlier cell(s) that had \
             succeeded were run again first; {} of them failed this time, so what they defined \
             is missing:",
            self.cells,
            self.failures.len()
        );
        for failure in &self.failures {
            note.push_str(&format!(
                "\n--- cell {} ---\n{}\n--- error ---\n{}",
                failure.cell,
                failure.code.trim_end(),
                failure.error.trim_end()
            ));
        }
        Some(note)
    }
}

/// Told to the model in the result of a learned-function call that killed the
/// worker: its earlier definitions are gone until the replay before the next cell.
pub(crate) const FUNCTION_STATE_LOST: &str = "The Python session was restarted because \
this call did not finish: everything defined by earlier code was lost. The earlier cells \
that succeeded will be run again before the next code runs.";
