//! Checkpoint I/O. A snapshot of the whole state is written atomically at each step
//! and reset; what is recorded in between (conversations, validation outcomes) is
//! appended to a journal beside it, one fsync'd line per record. Recording thus costs
//! one line, not a rewrite of everything recorded so far, and a resume replays the
//! snapshot's journal lines to the same state an uninterrupted run holds.
//!
//! Each snapshot has a fresh id and journal lines name the snapshot they extend, so
//! lines of an earlier snapshot (a journal not yet cleared when a kill came) are
//! never applied twice; a line's position after its snapshot (`seq`) makes a record
//! whose write failed and was retried count once.

use std::path::{Path, PathBuf};

use agentopt_core::CoreError;
use agentopt_core::files::{JsonLines, read_json_lines, read_versioned, write_json_atomic};

use crate::OptimizerError;
use crate::state::{
    CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CHECKPOINT_VERSION_WHOLE, Checkpoint, CheckpointRef,
    JournalEntry, Record,
};

/// The checkpoint files of one optimizer and where its journal stands.
#[derive(Debug)]
pub(crate) struct CheckpointFiles {
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    /// The id of the snapshot on disk that the journal extends; `None` until this
    /// optimizer wrote or loaded one (the next write is then a snapshot).
    snapshot: Option<u64>,
    /// Lines appended after that snapshot.
    journal_len: u64,
    /// Open for appending; dropped after a failed append, so that reopening drops a
    /// line the failure cut short.
    journal: Option<JsonLines>,
}

/// The journal beside the snapshot at `path`: `x.json` → `x.journal.jsonl`.
pub(crate) fn journal_path(path: &Path) -> PathBuf {
    path.with_extension("journal.jsonl")
}

impl CheckpointFiles {
    /// Files at `path` (the snapshot) that this optimizer has not written yet.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            snapshot_path: path.to_owned(),
            journal_path: journal_path(path),
            snapshot: None,
            journal_len: 0,
            journal: None,
        }
    }

    /// Reads the snapshot at `path` (version 2, or version 1 without a journal) and
    /// applies its journal lines; returns the checkpoint and the files, positioned to
    /// append after the last line.
    ///
    /// # Errors
    /// Reading or parsing either file; a journal with a gap in its positions.
    pub(crate) fn load(path: &Path) -> Result<(Checkpoint, Self), OptimizerError> {
        let mut files = Self::new(path);
        let mut checkpoint: Checkpoint =
            match read_versioned(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION) {
                Err(CoreError::UnsupportedVersion {
                    found: CHECKPOINT_VERSION_WHOLE,
                    ..
                }) => read_versioned(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION_WHOLE)?,
                other => other?,
            };
        if checkpoint.version == CHECKPOINT_VERSION_WHOLE {
            // No journal belongs to it: the next write is a version-2 snapshot.
            return Ok((checkpoint, files));
        }
        let entries: Vec<JournalEntry> = read_json_lines(&files.journal_path)?;
        for (line, entry) in entries.into_iter().enumerate() {
            if entry.snapshot != checkpoint.snapshot || entry.seq < files.journal_len {
                continue;
            }
            if entry.seq > files.journal_len {
                return Err(OptimizerError::File(CoreError::Format {
                    path: files.journal_path.clone(),
                    line: Some(line + 1),
                    message: format!(
                        "record {} of this snapshot comes where record {} was expected; the \
                         records between are missing",
                        entry.seq, files.journal_len
                    ),
                }));
            }
            entry.record.apply(&mut checkpoint.state);
            files.journal_len += 1;
        }
        files.snapshot = Some(checkpoint.snapshot);
        Ok((checkpoint, files))
    }

    /// Writes a snapshot of `state` (atomically) under a fresh id and clears the
    /// journal. Nothing changes here when the write fails.
    ///
    /// # Errors
    /// Writing the snapshot.
    pub(crate) fn write_snapshot(
        &mut self,
        max_actions_per_step: usize,
        options: &crate::OptimizerOptions,
        state: &crate::state::OptimizerState,
    ) -> Result<(), OptimizerError> {
        let id = fresh_snapshot_id(self.snapshot);
        write_json_atomic(
            &self.snapshot_path,
            &CheckpointRef {
                format: CHECKPOINT_FORMAT,
                version: CHECKPOINT_VERSION,
                snapshot: id,
                max_actions_per_step,
                options,
                state,
            },
        )?;
        self.snapshot = Some(id);
        self.journal_len = 0;
        self.journal = None;
        // Old lines name the old snapshot and are skipped on load, so a journal that
        // cannot be cleared only costs disk space.
        if let Err(error) = std::fs::remove_file(&self.journal_path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.journal_path.display(), %error, "journal not cleared");
        }
        Ok(())
    }

    /// Appends `record` to the journal after the current snapshot; `false` when this
    /// optimizer has no snapshot yet (the caller writes one instead).
    ///
    /// # Errors
    /// Opening or writing the journal; nothing counts as recorded then.
    pub(crate) fn append(&mut self, record: &Record) -> Result<bool, OptimizerError> {
        let Some(snapshot) = self.snapshot else {
            return Ok(false);
        };
        let journal = match self.journal.take() {
            Some(journal) => journal,
            None => JsonLines::open(&self.journal_path)?,
        };
        let journal = self.journal.insert(journal);
        let entry = JournalEntry {
            snapshot,
            seq: self.journal_len,
            record: record.clone(),
        };
        if let Err(error) = journal.append(&entry) {
            self.journal = None;
            return Err(error.into());
        }
        self.journal_len += 1;
        Ok(true)
    }
}

/// An id no earlier snapshot at this path is likely to have had (time and process),
/// and never the previous one.
fn fresh_snapshot_id(previous: Option<u64>) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let id = nanos ^ u64::from(std::process::id()).rotate_left(40);
    if Some(id) == previous {
        id.wrapping_add(1)
    } else {
        id
    }
}
