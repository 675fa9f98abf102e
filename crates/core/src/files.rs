//! Durable JSON files: whole documents written atomically (a synced temporary file
//! renamed over the target) and append-only JSON lines where every line is on disk
//! before `append` returns. A kill at any moment leaves the old or the new content,
//! never a mix; a JSON-lines file loses at most a last line cut short, which readers
//! skip.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
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
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error("open", path))?;
        let length = file.metadata().map_err(io_error("read", path))?.len();
        let complete = complete_length(&mut file, length).map_err(io_error("read", path))?;
        if complete < length {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = length - complete,
                "dropping an incomplete last line (the previous run was killed while writing it)"
            );
            file.set_len(complete).map_err(io_error("truncate", path))?;
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
        self.append_line(value).map(drop)
    }

    /// As [`Self::append`], returning the byte offset where the line starts (what
    /// [`read_json_line_at`] reads it back from).
    ///
    /// # Errors
    /// As [`Self::append`].
    pub fn append_line(&mut self, value: &impl Serialize) -> Result<u64, CoreError> {
        let mut line = serde_json::to_string(value).map_err(|error| CoreError::Format {
            path: self.path.clone(),
            line: None,
            message: format!("cannot serialise a record: {error}"),
        })?;
        line.push('\n');
        let offset = self
            .file
            .metadata()
            .map_err(io_error("read", &self.path))?
            .len();
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("append to", &self.path))?;
        Ok(offset)
    }

    /// Appends one line that `write` streams out (without its newline), for a
    /// record too large to build in memory first, and waits until it is on disk. A
    /// line that fails half-way is taken back out of the file.
    ///
    /// # Errors
    /// [`CoreError::Io`], with what `write` failed with.
    pub fn append_with(
        &mut self,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), CoreError> {
        let start = self
            .file
            .metadata()
            .map_err(io_error("read", &self.path))?
            .len();
        let mut out = std::io::BufWriter::new(&self.file);
        let written = write(&mut out)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        drop(out);
        if let Err(error) = written.and_then(|()| self.file.sync_data()) {
            // Best effort: a line left cut short is dropped when the file is opened.
            let _ = self.file.set_len(start);
            return Err(io_error("append to", &self.path)(error).into());
        }
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

/// The length of `file`'s complete lines (up to its last newline; `length` is
/// the file's), read backwards from its end in blocks: a journal of any size is
/// checked without reading it.
///
/// # Errors
/// Reading the file.
pub fn complete_length(file: &mut File, length: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let mut end = length;
    let mut block = vec![0; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let bytes = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(bytes)?;
        if let Some(at) = bytes.iter().rposition(|&byte| byte == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads the JSON line that starts at byte `offset` of `path` (as
/// [`JsonLines::append_line`] returned it).
///
/// # Errors
/// [`CoreError::Io`]; [`CoreError::Format`] when no complete line that parses starts
/// there.
pub fn read_json_line_at<T: DeserializeOwned>(path: &Path, offset: u64) -> Result<T, CoreError> {
    let mut file = File::open(path).map_err(io_error("read", path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error("read", path))?;
    let mut line = String::new();
    BufReader::new(file)
        .read_line(&mut line)
        .map_err(io_error("read", path))?;
    let format = |message: String| CoreError::Format {
        path: path.to_owned(),
        line: None,
        message: format!("at byte {offset}: {message}"),
    };
    if !line.ends_with('\n') {
        return Err(format("no complete line starts here".to_owned()));
    }
    serde_json::from_str(&line).map_err(|error| format(error.to_string()))
}

/// Calls `each` with every complete line of a JSON-lines file, parsed, and its byte
/// offset, one line in memory at a time (a missing file has none; an incomplete last
/// line, left by a kill, is ignored).
///
/// # Errors
/// [`CoreError::Io`]; [`CoreError::Format`] naming the line that does not parse;
/// the first error of `each`.
pub fn for_each_json_line<T, E>(
    path: &Path,
    mut each: impl FnMut(u64, T) -> Result<(), E>,
) -> Result<(), E>
where
    T: DeserializeOwned,
    E: From<CoreError>,
{
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(CoreError::from(io_error("read", path)(error)).into()),
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let (mut offset, mut number) = (0_u64, 0_usize);
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|error| CoreError::from(io_error("read", path)(error)))?;
        if read == 0 || !line.ends_with('\n') {
            return Ok(());
        }
        number += 1;
        if !line.trim().is_empty() {
            let value = serde_json::from_str(&line).map_err(|error| CoreError::Format {
                path: path.to_owned(),
                line: Some(number),
                message: error.to_string(),
            })?;
            each(offset, value)?;
        }
        offset += read as u64;
    }
}
