//! A process's claim on its run directory: one process per directory (an advisory
//! lock held for the trainer's life), and the run's spend as durable state (every
//! metered event in `spend.jsonl` before its answer is used, read back into the
//! meter by the next process, so a budget covers the whole run).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use agentopt_core::files::{JsonLines, read_json, read_json_lines};
use agentopt_core::{CoreError, io_error, lock};
use agentopt_llm::{SpendEntry, SpendLedger, UsageMeter};

use crate::TrainError;
use crate::journal::{ConversationRecord, PhaseRecord, RunDir, StepRecord};

/// An exclusive advisory lock (`flock`) on `run.lock` in a run directory, which
/// records the holder's pid. The kernel releases it when the process ends however
/// it ends, so the lock of a killed process is stale by construction: the next
/// process takes it over (and says whose it was).
#[derive(Debug)]
pub(crate) struct RunLock {
    file: File,
}

impl RunLock {
    /// Takes the lock of the run directory at `root` (which exists).
    ///
    /// # Errors
    /// [`TrainError::RunDirInUse`] naming the holder's pid when another process
    /// holds it; [`TrainError::File`] when the lock file cannot be used.
    pub(crate) fn acquire(root: &Path) -> Result<Self, TrainError> {
        let path = RunDir::at(root).lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open", &path))
            .map_err(CoreError::from)?;
        if let Err(error) = fs2::FileExt::try_lock_exclusive(&file) {
            if error.raw_os_error() == fs2::lock_contended_error().raw_os_error() {
                return Err(TrainError::RunDirInUse {
                    path: root.to_owned(),
                    pid: recorded_pid(&mut file),
                });
            }
            return Err(CoreError::from(io_error("lock", &path)(error)).into());
        }
        if let Some(pid) = recorded_pid(&mut file).filter(|pid| *pid != std::process::id()) {
            tracing::warn!(
                pid,
                lock = %path.display(),
                "taking over the run directory from process {pid}, which no longer holds it"
            );
        }
        let own = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(own.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(io_error("write", &path))
            .map_err(CoreError::from)?;
        Ok(Self { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The pid goes with the lock: a later reader finds no holder to name.
        let _ = self.file.set_len(0);
    }
}

/// The pid a lock file records, if it holds one.
fn recorded_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// `spend.jsonl`: the meter's ledger. Until the run directory exists (a fresh run's
/// preflight) events wait in memory; they are written first when it opens.
#[derive(Debug)]
pub(crate) struct SpendJournal {
    sink: Mutex<SpendSink>,
}

#[derive(Debug)]
enum SpendSink {
    Pending(Vec<SpendEntry>),
    Open(JsonLines),
}

impl SpendJournal {
    fn pending() -> Self {
        Self {
            sink: Mutex::new(SpendSink::Pending(Vec::new())),
        }
    }

    /// Writes to `path` from now on, the events held so far first.
    fn open(&self, path: &Path) -> Result<(), TrainError> {
        let mut sink = lock(&self.sink);
        if let SpendSink::Pending(held) = &*sink {
            let mut lines = JsonLines::open(path)?;
            for entry in held {
                lines.append(entry)?;
            }
            *sink = SpendSink::Open(lines);
        }
        Ok(())
    }
}

impl SpendLedger for SpendJournal {
    fn append(&self, entry: &SpendEntry) -> Result<(), String> {
        match &mut *lock(&self.sink) {
            SpendSink::Pending(held) => {
                held.push(entry.clone());
                Ok(())
            }
            SpendSink::Open(lines) => lines.append(entry).map_err(|error| error.to_string()),
        }
    }
}

/// What a trainer holds of its run directory: nothing yet, or (once the directory
/// exists) its lock, with the spend journal attached to the meter.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    lock: Option<RunLock>,
    journal: Option<Arc<SpendJournal>>,
}

impl Claim {
    /// Claims the run directory at `root` for this process, once: when it exists,
    /// takes its lock, checks that its journals read, restores the spend recorded
    /// there into `meter` and journals every later event; before it exists, holds the
    /// events (the preflight's) until a later call finds it.
    ///
    /// # Errors
    /// [`TrainError::RunDirInUse`]; [`TrainError::File`] naming a journal that does
    /// not read (a corrupt directory is named before any model call).
    pub(crate) fn claim(
        &mut self,
        root: &Path,
        meter: Option<&UsageMeter>,
    ) -> Result<(), TrainError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let journal = meter.map(|meter| {
            Arc::clone(self.journal.get_or_insert_with(|| {
                let journal = Arc::new(SpendJournal::pending());
                meter.set_ledger(Arc::clone(&journal) as Arc<dyn SpendLedger>);
                journal
            }))
        });
        if !root.is_dir() {
            return Ok(());
        }
        let lock = RunLock::acquire(root)?;
        let dir = RunDir::at(root);
        check_journals(&dir)?;
        let spent: Vec<SpendEntry> = read_json_lines(&dir.spend_path())?;
        if let (Some(meter), Some(journal)) = (meter, journal) {
            meter.restore(&spent);
            journal.open(&dir.spend_path())?;
        }
        self.lock = Some(lock);
        Ok(())
    }
}

/// Every journal of the run reads, and so does the checkpoint a resume starts from.
fn check_journals(dir: &RunDir) -> Result<(), TrainError> {
    read_json_lines::<ConversationRecord>(&dir.transcripts_path())?;
    read_json_lines::<PhaseRecord>(&dir.phases_path())?;
    let steps: Vec<StepRecord> = read_json_lines(&dir.steps_path())?;
    if let Some(step) = steps.iter().rev().find(|step| step.skipped.is_none()) {
        read_json::<serde_json::Value>(&dir.checkpoint_path(step.epoch))?;
    }
    Ok(())
}
