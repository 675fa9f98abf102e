//! `MathChatError`, the crate's one error enum.

use std::path::PathBuf;

/// Everything that can go wrong while loading and selecting problems. Every variant
/// names the offending file (and line and field where there is one) and keeps the
/// raw input.
#[derive(Debug, thiserror::Error)]
pub enum MathChatError {
    /// A file or directory could not be read.
    #[error(transparent)]
    Io(#[from] agentopt_core::IoError),
    /// A data file is not UTF-8 text.
    #[error("{}:{line}: not valid UTF-8 (byte {byte} of the line)", path.display())]
    NotUtf8 {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based position of that byte within its line.
        byte: usize,
    },
    /// A data file holds no record at all (empty or blank lines only).
    #[error("{}: empty data file (no records)", path.display())]
    EmptyFile {
        /// The data file.
        path: PathBuf,
    },
    /// A line (or a whole one-record file) is not valid JSON.
    #[error("{}:{line}: not valid JSON ({message}): {}", path.display(), excerpt(raw))]
    Json {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// serde_json's message.
        message: String,
        /// The raw line (or file text).
        raw: String,
    },
    /// A record lacks a field, or the field has the wrong type or an unusable value.
    #[error("{}:{line}: field `{field}`: {message}: {}", path.display(), excerpt(raw))]
    Field {
        /// The data file.
        path: PathBuf,
        /// 1-based line number of the record.
        line: usize,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
        /// The raw record.
        raw: String,
    },
    /// The first record of a file fits none of the known formats.
    #[error(
        "{}:{line}: unknown record format (expected CRAFT `question`+`answer`, Hendrycks \
         `problem`+`solution`, MATH-500 `problem`+`answer` or GSM8K `question`+`answer` \
         with `#### N`): {}", path.display(), excerpt(raw)
    )]
    UnknownFormat {
        /// The data file.
        path: PathBuf,
        /// 1-based line number of the record.
        line: usize,
        /// The raw record.
        raw: String,
    },
    /// Several records cannot be used: all of them, each naming its file, line
    /// and what is wrong.
    #[error("{}", bad_records_summary(records))]
    BadRecords {
        /// One error per unusable record, in file order (at least two).
        records: Vec<MathChatError>,
    },
    /// A subject asked for is in none of the loaded problems.
    #[error("{split}: no problem has subject {subject:?}; the data's subjects are {}", available.join(", "))]
    UnknownSubject {
        /// "train", "test" or "validation".
        split: String,
        /// The subject asked for.
        subject: String,
        /// The subjects the data holds, sorted.
        available: Vec<String>,
    },
    /// A data path holds no record files.
    #[error("{}: no .jsonl or .json data files", path.display())]
    NoDataFiles {
        /// The path given.
        path: PathBuf,
    },
    /// Fewer problems match the selection than were asked for.
    #[error("{split}: {wanted} problems wanted but only {available} match ({selection})")]
    NotEnoughProblems {
        /// "train", "test" or "validation".
        split: String,
        /// Problems asked for.
        wanted: usize,
        /// Problems matching the filters.
        available: usize,
        /// The filters, for the message.
        selection: String,
    },
}

impl MathChatError {
    /// `file:line` of an unusable record's error (`None` for other errors).
    pub fn record_location(&self) -> Option<String> {
        match self {
            Self::Json { path, line, .. }
            | Self::Field { path, line, .. }
            | Self::UnknownFormat { path, line, .. } => Some(format!("{}:{line}", path.display())),
            _ => None,
        }
    }

    /// Whether this names unusable records (which a load may skip) rather than a
    /// file that cannot be read at all.
    pub fn is_bad_record(&self) -> bool {
        matches!(self, Self::BadRecords { .. }) || self.record_location().is_some()
    }
}

/// How many locations of bad records a message lists before "and N more".
const LOCATIONS_SHOWN: usize = 10;

/// `14 unusable records (a.jsonl:3, a.jsonl:9, … and 4 more); the first: …`.
pub(crate) fn bad_records_summary(records: &[MathChatError]) -> String {
    let shown: Vec<String> = records
        .iter()
        .filter_map(MathChatError::record_location)
        .take(LOCATIONS_SHOWN)
        .collect();
    let more = match records.len().saturating_sub(LOCATIONS_SHOWN) {
        0 => String::new(),
        more => format!(" and {more} more"),
    };
    let first = records.first().map(ToString::to_string).unwrap_or_default();
    format!(
        "{} unusable records ({}{more}); the first: {first}",
        records.len(),
        shown.join(", ")
    )
}

/// The first 120 characters of a raw record, for messages (the whole text stays in
/// the error value).
fn excerpt(raw: &str) -> String {
    const LIMIT: usize = 120;
    let trimmed = raw.trim();
    match trimmed.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_owned(),
    }
}
