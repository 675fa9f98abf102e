//! Durable JSON files: whole documents written atomically (a synced temporary file
//! renamed over the target) and append-only JSON lines where every line is on disk
//! before `append` returns. A kill at any moment leaves the old or the new content,
//! never a mix; a JSON-lines file loses at most a last line cut short, which readers
//! skip.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CoreError, io_error};

/// Writes `bytes` to `path` through a synced temporary file beside it and a rename.
///
/// # Errors
/// [`CoreError::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory)
        .map_err(io_error("create a file beside", path))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(io_error("write", path))?;
    file.persist(path)
        .map_err(|error| io_error("rename into", path)(error.error))?;
    Ok(())
}

/// Writes `value` as pretty JSON (with a final newline) atomically.
///
/// # Errors
/// [`CoreError::Io`]; [`CoreError::Format`] when `value` cannot be serialised.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), CoreError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|error| CoreError::Format {
        path: path.to_owned(),
        line: None,
        message: format!("cannot serialise: {error}"),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a whole-file JSON document.
///
/// # Errors
/// [`CoreError::Io`]; [`CoreError::Format`] with the line of the error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, CoreError> {
    let text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
    parse_json(path, &text)
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, CoreError> {
    serde_json::from_str(text).map_err(|error| CoreError::Format {
        path: path.to_owned(),
        line: Some(error.line()),
        message: error.to_string(),
    })
}

/// The `format` and `version` fields alone, read before the rest so that a newer
/// file gets a version error rather than a field error.
#[derive(serde::Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// Reads a JSON document tagged `{"format": …, "version": …}` after checking both.
///
/// # Errors
/// [`CoreError::Io`], [`CoreError::Format`], [`CoreError::UnsupportedVersion`].
pub fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    format: &str,
    version: u32,
) -> Result<T, CoreError> {
    let text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
    let header: Header = parse_json(path, &text)?;
    if header.format != format || header.version != version {
        return Err(CoreError::UnsupportedVersion {
            path: path.to_owned(),
            format: header.format,
            found: header.version,
            supported: version,
        });
    }
    parse_json(path, &text)
}

/// An append-only JSON-lines file where every line is on disk (fsync'd) before
/// [`JsonLines::append`] returns, so a kill loses nothing that was appended.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: File,
}

impl JsonLines {
    /// Opens (or creates) `path` for appending. A last line cut short by a kill (no
    /// newline at the end) is dropped from the file first, so new lines start on a
    /// line of their own.
    ///
    /// # Errors
    /// [`CoreError::Io`].
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error("open", path))?;
        let text = std::fs::read(path).map_err(io_error("read", path))?;
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
                .map_err(io_error("truncate", path))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends `value` as one line and waits until it is on disk.
    ///
    /// # Errors
    /// [`CoreError::Io`]; [`CoreError::Format`] when `value` cannot be serialised.
    pub fn append(&mut self, value: &impl Serialize) -> Result<(), CoreError> {
        let mut line = serde_json::to_string(value).map_err(|error| CoreError::Format {
            path: self.path.clone(),
            line: None,
            message: format!("cannot serialise a record: {error}"),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("append to", &self.path))?;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every complete line of a JSON-lines file (a missing file is empty; an
/// incomplete last line, left by a kill, is ignored).
///
/// # Errors
/// [`CoreError::Io`]; [`CoreError::Format`] naming the line that does not parse.
pub fn read_json_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, CoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("read", path)(error).into()),
    };
    let complete = text.rfind('\n').map_or("", |at| &text[..=at]);
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| CoreError::Format {
                path: path.to_owned(),
                line: Some(index + 1),
                message: error.to_string(),
            })
        })
        .collect()
}
