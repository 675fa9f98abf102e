//! Checkpoint I/O. A snapshot of the whole state is written atomically at each step
//! and reset; what is recorded in between (conversations, validation outcomes) is
//! appended to a journal beside it, one fsync'd line per record. Recording thus costs
//! one line, not a rewrite of everything recorded so far, and a resume replays the
//! snapshot's journal lines to the same state an uninterrupted run holds.
//!
//! A conversation's messages stay in the journal line that recorded it: the state
//! holds where the line is ([`LineAt`]). When a snapshot supersedes the journal
//! and still refers to its lines (the epoch's conversations become the best list's),
//! the journal is kept as `x.records-<snapshot id>.jsonl` (a hard link), so neither
//! memory nor the snapshot grows with the conversations of an epoch.
//!
//! Each snapshot has a fresh id and journal lines name the snapshot they extend, so
//! lines of an earlier snapshot (a journal not yet cleared when a kill came) are
//! never applied twice; a line's position after its snapshot (`seq`) makes a record
//! whose write failed and was retried count once.

use std::path::{Path, PathBuf};

use agentopt_core::CoreError;
use agentopt_core::files::{
    JsonLines, for_each_json_line, read_json_line_at, read_versioned, write_json_atomic,
};

use crate::OptimizerError;
use crate::state::{
    CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CHECKPOINT_VERSION_INLINE, CHECKPOINT_VERSION_WHOLE,
    Checkpoint, CheckpointRef, JournalEntry, LineAt, OptimizerState, Record, RecordedConversation,
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
        let read = |version| read_versioned(path, CHECKPOINT_FORMAT, version);
        let mut checkpoint: Checkpoint = match read(CHECKPOINT_VERSION) {
            Err(CoreError::UnsupportedVersion { found, .. })
                if found == CHECKPOINT_VERSION_INLINE || found == CHECKPOINT_VERSION_WHOLE =>
            {
                read(found)?
            }
            other => other?,
        };
        if checkpoint.version == CHECKPOINT_VERSION_WHOLE {
            // No journal belongs to it: the next write is a newer snapshot.
            return Ok((checkpoint, files));
        }
        let snapshot = checkpoint.snapshot;
        let journal_file = files.records_name(snapshot);
        let journal_path = files.journal_path.clone();
        let mut line = 0;
        for_each_json_line(&journal_path, |offset, entry: JournalEntry| {
            line += 1;
            if entry.snapshot != snapshot || entry.seq < files.journal_len {
                return Ok(());
            }
            if entry.seq > files.journal_len {
                return Err(OptimizerError::File(CoreError::Format {
                    path: journal_path.clone(),
                    line: Some(line),
                    message: format!(
                        "record {} of this snapshot comes where record {} was expected; the \
                         records between are missing",
                        entry.seq, files.journal_len
                    ),
                }));
            }
            let at = LineAt {
                file: journal_file.clone(),
                offset,
            };
            entry.record.apply(&mut checkpoint.state, Some(at));
            files.journal_len += 1;
            Ok(())
        })?;
        files.snapshot = Some(snapshot);
        Ok((checkpoint, files))
    }

    /// The name the journal of snapshot `id` keeps once superseded.
    fn records_name(&self, id: u64) -> String {
        let stem = self
            .snapshot_path
            .file_stem()
            .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
        format!("{stem}.records-{id:016x}.jsonl")
    }

    /// The journal, when it holds the line at `at` (its snapshot is the current
    /// one; a superseded journal is read under `at.file`).
    fn journal_holding(&self, at: &LineAt) -> Option<&Path> {
        let id = self.snapshot?;
        (self.records_name(id) == at.file).then_some(self.journal_path.as_path())
    }

    /// Keeps the journal of the current snapshot as its records file when `state`
    /// (about to become the next snapshot) still refers to its lines.
    pub(crate) fn keep_journal_for(&self, state: &OptimizerState) -> Result<(), OptimizerError> {
        let Some(id) = self.snapshot else {
            return Ok(());
        };
        let name = self.records_name(id);
        let refers = state
            .trial_conversations
            .iter()
            .chain(&state.best_conversations)
            .any(|stored| stored.at.as_ref().is_some_and(|at| at.file == name));
        if !refers {
            return Ok(());
        }
        let kept = directory_of(&self.snapshot_path).join(&name);
        // Another optimizer resumed from the same snapshot kept it already.
        if !self.journal_path.exists() && kept.exists() {
            return Ok(());
        }
        // A link left by an earlier try that failed later is made again.
        if let Err(error) = std::fs::remove_file(&kept)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            return Err(CoreError::from(agentopt_core::io_error("replace", &kept)(error)).into());
        }
        std::fs::hard_link(&self.journal_path, &kept)
            .or_else(|_| std::fs::copy(&self.journal_path, &kept).map(drop))
            .map_err(agentopt_core::io_error("keep the journal as", &kept))
            .map_err(CoreError::from)?;
        Ok(())
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
        self.keep_journal_for(state)?;
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

    /// Appends `record` to the journal after the current snapshot and returns where
    /// its line is; `None` when this optimizer has no snapshot yet (the caller writes
    /// one instead).
    ///
    /// # Errors
    /// Opening or writing the journal; nothing counts as recorded then.
    pub(crate) fn append(&mut self, record: &Record) -> Result<Option<LineAt>, OptimizerError> {
        let Some(snapshot) = self.snapshot else {
            return Ok(None);
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
        let offset = match journal.append_line(&entry) {
            Ok(offset) => offset,
            Err(error) => {
                self.journal = None;
                return Err(error.into());
            }
        };
        self.journal_len += 1;
        Ok(Some(LineAt {
            file: self.records_name(snapshot),
            offset,
        }))
    }
}

/// The directory of the file at `path` (`.` for a bare file name).
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Reads stored conversations' messages back from their journal lines: those of
/// the current journal through `files`, the kept journals in `directory` (the
/// snapshot's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineReader<'a> {
    pub(crate) files: Option<&'a CheckpointFiles>,
    pub(crate) directory: Option<&'a Path>,
}

impl LineReader<'_> {
    /// The conversation recorded at `at`.
    ///
    /// # Errors
    /// Reading the file; a line that holds no conversation.
    pub(crate) fn read(&self, at: &LineAt) -> Result<RecordedConversation, OptimizerError> {
        let kept = self.directory.map_or_else(
            || PathBuf::from(&at.file),
            |directory| directory.join(&at.file),
        );
        // Another optimizer resumed from the same snapshot may have superseded the
        // journal since: its lines are then where it kept them.
        let path = match self.files.and_then(|files| files.journal_holding(at)) {
            Some(journal) if journal.exists() || !kept.exists() => journal.to_owned(),
            _ => kept,
        };
        match read_json_line_at::<JournalEntry>(&path, at.offset)?.record {
            Record::Conversation(conversation) => Ok(conversation),
            Record::Validation { .. } => Err(OptimizerError::File(CoreError::Format {
                path,
                line: None,
                message: format!(
                    "the line at byte {} is a validation outcome, not a conversation",
                    at.offset
                ),
            })),
        }
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
