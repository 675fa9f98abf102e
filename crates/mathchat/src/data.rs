//! Problem sets: loaders for the CRAFT split of MATH (bundled), Hendrycks MATH,
//! MATH-500 and GSM8K, and a deterministic selection by subject, level and count.
//!
//! A path is a `.jsonl` file (one record a line), a `.json` file (one record), or a
//! directory searched recursively for both, in sorted path order. The format of a
//! file is recognised from its first record (or forced); every later record must
//! fit it, and a record that does not is an error naming `file:line` and the field.

use agentopt_core::io_error;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::MathChatError;

/// The record layouts understood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// Recognise each file from its first record.
    #[default]
    Auto,
    /// CRAFT: `question`, `answer` (a number or a LaTeX string), `level`; the
    /// subject is the file name.
    Craft,
    /// Hendrycks MATH: `problem`, `solution` (answer in its last `\boxed{}`),
    /// `level`, `type`.
    Hendrycks,
    /// MATH-500: `problem`, `answer`, `level` (a number), `subject`.
    Math500,
    /// GSM8K: `question`, `answer` ending in `#### N`.
    Gsm8k,
}

/// One benchmark problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Where it came from: `file:line` (relative to the path loaded), or the file
    /// for one-record files. Unique within a load.
    pub id: String,
    /// Subject, lower snake case (`counting_and_probability`; `gsm8k` for GSM8K).
    pub subject: String,
    /// Difficulty 1–5, when the data gives one.
    pub level: Option<u8>,
    /// The problem text.
    pub question: String,
    /// The reference answer as text (numbers without a trailing `.0`).
    pub answer: String,
}

/// How [`load_with`] reads a data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Record format (or [`DataFormat::Auto`]).
    pub format: DataFormat,
    /// Skip records that cannot be used (bad JSON, a missing or unusable field)
    /// and report them in [`Loaded::skipped`], instead of failing.
    pub skip_bad_records: bool,
}

/// What [`load_with`] read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The usable problems, in file order.
    pub problems: Vec<Problem>,
    /// The unusable records skipped (with [`LoadOptions::skip_bad_records`]), each
    /// naming its file, line and what is wrong.
    pub skipped: Vec<MathChatError>,
    /// Ids of records left out because their reference answer is empty (always
    /// skipped: nothing can grade them).
    pub ungradable: Vec<String>,
}

impl Loaded {
    /// The unusable records skipped, for a warning: how many, where (the first
    /// ten) and the first one's error; `None` when none was.
    pub fn skipped_summary(&self) -> Option<String> {
        match self.skipped.as_slice() {
            [] => None,
            [one] => Some(format!("1 unusable record: {one}")),
            several => Some(crate::error::bad_records_summary(several)),
        }
    }
}

/// Loads every problem under `path` (file or directory); any unusable record is an
/// error (see [`load_with`]). Records whose reference answer is empty cannot be
/// graded and are skipped with a warning ([`Loaded::ungradable`]).
///
/// # Errors
/// As [`load_with`].
pub fn load(path: &Path, format: DataFormat) -> Result<Vec<Problem>, MathChatError> {
    let options = LoadOptions {
        format,
        skip_bad_records: false,
    };
    load_with(path, options).map(|loaded| loaded.problems)
}

/// Loads every problem under `path` (file or directory). Every record is read
/// before a bad one fails the load, so the error names all of them; with
/// [`LoadOptions::skip_bad_records`] they are skipped and returned instead.
///
/// # Errors
/// [`MathChatError::Io`], [`MathChatError::NoDataFiles`],
/// [`MathChatError::EmptyFile`], [`MathChatError::NotUtf8`]; for one bad record
/// [`MathChatError::Json`], [`MathChatError::Field`] or
/// [`MathChatError::UnknownFormat`] naming the file and line, for several
/// [`MathChatError::BadRecords`] naming them all.
pub fn load_with(path: &Path, options: LoadOptions) -> Result<Loaded, MathChatError> {
    let files = data_files(path)?;
    let mut loaded = Loaded::default();
    for file in &files {
        let label = file_label(path, file);
        load_file(file, &label, options.format, &mut loaded)?;
    }
    if options.skip_bad_records || loaded.skipped.is_empty() {
        return Ok(loaded);
    }
    let mut bad = loaded.skipped;
    Err(if bad.len() == 1 {
        bad.remove(0)
    } else {
        MathChatError::BadRecords { records: bad }
    })
}

/// The record files under `path`, sorted.
fn data_files(path: &Path) -> Result<Vec<PathBuf>, MathChatError> {
    let metadata = std::fs::metadata(path).map_err(io_error("read", path))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(io_error("list", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("list", &dir))?;
            let entry_path = entry.path();
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if matches!(
                entry_path.extension().and_then(|ext| ext.to_str()),
                Some("jsonl" | "json")
            ) {
                files.push(entry_path);
            }
        }
    }
    if files.is_empty() {
        return Err(MathChatError::NoDataFiles {
            path: path.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// A file's name relative to the loaded root (just its name when the root is the file).
fn file_label(root: &Path, file: &Path) -> String {
    let relative = file
        .strip_prefix(root)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty());
    let shown = relative.unwrap_or_else(|| Path::new(file.file_name().unwrap_or(file.as_os_str())));
    shown.to_string_lossy().into_owned()
}

/// Loads one file into `loaded`; `label` prefixes problem ids. Unusable records go
/// to `loaded.skipped`; a file that cannot be read at all is an error.
fn load_file(
    path: &Path,
    label: &str,
    format: DataFormat,
    loaded: &mut Loaded,
) -> Result<(), MathChatError> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        // Caught here, it names the file; later it would be "0 problems match".
        return Err(MathChatError::EmptyFile {
            path: path.to_owned(),
        });
    }
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let one_record = path.extension().is_some_and(|ext| ext == "json");
    let records: Vec<(usize, &str)> = if one_record {
        vec![(1, text.as_str())]
    } else {
        text.lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line))
            .filter(|(_, line)| !line.trim().is_empty())
            .collect()
    };
    let mut format = format;
    for (line, raw) in records {
        let id = if one_record {
            label.to_owned()
        } else {
            format!("{label}:{line}")
        };
        match read_record(path, line, raw, &mut format, &id, &stem) {
            Ok(Some(problem)) => loaded.problems.push(problem),
            Ok(None) => loaded.ungradable.push(id),
            Err(error) => loaded.skipped.push(error),
        }
    }
    Ok(())
}

/// The problem of one record, `None` for a record without a gradable answer; the
/// first usable record decides an `Auto` format.
fn read_record(
    path: &Path,
    line: usize,
    raw: &str,
    format: &mut DataFormat,
    id: &str,
    stem: &str,
) -> Result<Option<Problem>, MathChatError> {
    let record = Record::parse(path, line, raw)?;
    let record_format = match *format {
        DataFormat::Auto => record.detect_format()?,
        known => known,
    };
    if record.has_empty_answer(record_format) {
        // Two multiple-choice problems of MATH's training split have an empty
        // `\boxed{}` (and so an empty CRAFT `answer`); nothing can grade them.
        tracing::warn!(problem = %id, "skipped: the reference answer is empty");
        return Ok(None);
    }
    let problem = record.into_problem(record_format, id.to_owned(), stem)?;
    *format = record_format;
    Ok(Some(problem))
}

/// A data file's text; bytes that are not UTF-8 are an error naming their line.
fn read_text(path: &Path) -> Result<String, MathChatError> {
    let bytes = std::fs::read(path).map_err(io_error("read", path))?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line_start = valid
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        MathChatError::NotUtf8 {
            path: path.to_owned(),
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
            byte: valid.len() - line_start + 1,
        }
    })
}

/// One parsed JSON record, with where it came from for errors.
struct Record<'a> {
    path: &'a Path,
    line: usize,
    raw: &'a str,
    fields: Map<String, Value>,
}

impl<'a> Record<'a> {
    fn parse(path: &'a Path, line: usize, raw: &'a str) -> Result<Self, MathChatError> {
        let value: Value = serde_json::from_str(raw).map_err(|error| MathChatError::Json {
            path: path.to_owned(),
            // A one-record file reports the line inside it.
            line: line + error.line().saturating_sub(1),
            message: error.to_string(),
            raw: raw.to_owned(),
        })?;
        let Value::Object(fields) = value else {
            return Err(MathChatError::Json {
                path: path.to_owned(),
                line,
                message: "expected a JSON object".to_owned(),
                raw: raw.to_owned(),
            });
        };
        Ok(Self {
            path,
            line,
            raw,
            fields,
        })
    }

    fn field_error(&self, field: &'static str, message: impl Into<String>) -> MathChatError {
        MathChatError::Field {
            path: self.path.to_owned(),
            line: self.line,
            field,
            message: message.into(),
            raw: self.raw.to_owned(),
        }
    }

    /// The reference answer is there but empty (or blank): an `answer` string, or
    /// a Hendrycks solution's `\boxed{}`.
    fn has_empty_answer(&self, format: DataFormat) -> bool {
        let blank = |text: &str| text.trim().is_empty();
        match (
            format,
            self.fields.get("answer"),
            self.fields.get("solution"),
        ) {
            (DataFormat::Hendrycks, _, Some(Value::String(solution))) => {
                agentopt_math::get_answer(solution).is_some_and(blank)
            }
            (_, Some(Value::String(answer)), _) => blank(answer),
            _ => false,
        }
    }

    fn detect_format(&self) -> Result<DataFormat, MathChatError> {
        let has = |name: &str| self.fields.contains_key(name);
        let gsm8k_answer = self
            .fields
            .get("answer")
            .and_then(Value::as_str)
            .is_some_and(|answer| answer.contains("####"));
        Ok(if has("problem") && has("solution") && !has("answer") {
            DataFormat::Hendrycks
        } else if has("problem") && has("answer") {
            DataFormat::Math500
        } else if has("question") && gsm8k_answer {
            DataFormat::Gsm8k
        } else if has("question") && has("answer") {
            DataFormat::Craft
        } else {
            return Err(MathChatError::UnknownFormat {
                path: self.path.to_owned(),
                line: self.line,
                raw: self.raw.to_owned(),
            });
        })
    }

    fn text(&self, field: &'static str) -> Result<&str, MathChatError> {
        match self.fields.get(field) {
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
            Some(Value::String(_)) => Err(self.field_error(field, "is empty")),
            Some(other) => {
                Err(self.field_error(field, format!("expected a string, found {other}")))
            }
            None => Err(self.field_error(field, "missing")),
        }
    }

    /// A level given as "Level N", a bare number, or absent; "Level ?" counts as none.
    fn level(&self, field: &'static str) -> Result<Option<u8>, MathChatError> {
        let parsed = match self.fields.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(number)) => number.as_u64().and_then(|n| u8::try_from(n).ok()),
            Some(Value::String(text)) => {
                let digits = text.trim().trim_start_matches("Level").trim();
                if digits == "?" {
                    return Ok(None);
                }
                digits.parse::<u8>().ok()
            }
            Some(_) => None,
        };
        match parsed {
            Some(level @ 1..=5) => Ok(Some(level)),
            _ => Err(self.field_error(field, "expected \"Level N\" or N with N in 1..=5")),
        }
    }

    fn into_problem(
        self,
        format: DataFormat,
        id: String,
        file_stem: &str,
    ) -> Result<Problem, MathChatError> {
        let (question, answer, level, subject) = match format {
            DataFormat::Auto | DataFormat::Craft => (
                self.text("question")?,
                self.craft_answer()?,
                self.level("level")?,
                file_stem.to_owned(),
            ),
            DataFormat::Hendrycks => {
                let solution = self.text("solution")?;
                let answer = agentopt_math::get_answer(solution)
                    .filter(|answer| !answer.trim().is_empty())
                    .ok_or_else(|| {
                        self.field_error(
                            "solution",
                            "no non-empty \\boxed{} (or \\boxed …, \\fbox{}) answer",
                        )
                    })?;
                (
                    self.text("problem")?,
                    answer.to_owned(),
                    self.level("level")?,
                    subject_key(self.text("type")?),
                )
            }
            DataFormat::Math500 => (
                self.text("problem")?,
                self.craft_answer()?,
                self.level("level")?,
                match self.fields.get("subject") {
                    Some(_) => subject_key(self.text("subject")?),
                    None => file_stem.to_owned(),
                },
            ),
            DataFormat::Gsm8k => {
                let answer = self.text("answer")?;
                let (_, final_answer) = answer
                    .rsplit_once("####")
                    .ok_or_else(|| self.field_error("answer", "no `#### N` final answer"))?;
                let final_answer = final_answer.trim().replace(',', "");
                if final_answer.is_empty() {
                    return Err(self.field_error("answer", "empty after `####`"));
                }
                (
                    self.text("question")?,
                    final_answer,
                    None,
                    "gsm8k".to_owned(),
                )
            }
        };
        Ok(Problem {
            id,
            subject,
            level,
            question: question.to_owned(),
            answer,
        })
    }

    /// `answer` as text: a JSON number is written without a trailing `.0` (the seed
    /// notebook strips it too); a string is kept as it is.
    fn craft_answer(&self) -> Result<String, MathChatError> {
        match self.fields.get("answer") {
            Some(Value::Number(number)) => Ok(number_text(number)),
            Some(Value::String(_)) => self.text("answer").map(str::to_owned),
            Some(other) => Err(self.field_error(
                "answer",
                format!("expected a number or a string, found {other}"),
            )),
            None => Err(self.field_error("answer", "missing")),
        }
    }
}

/// `7.0` → `7`, `-2.5` → `-2.5`, integers as they are.
fn number_text(number: &serde_json::Number) -> String {
    let text = number.to_string();
    match text.strip_suffix(".0") {
        Some(integral) => integral.to_owned(),
        None => text,
    }
}

/// The seven subjects of MATH, as [`subject_key`] writes them (the bundled CRAFT
/// data has one file of each).
pub const MATH_SUBJECTS: [&str; 7] = [
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
];

/// "Counting & Probability" → `counting_and_probability`.
pub fn subject_key(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace('&', "and")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
}

/// Which problems to take from a loaded set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Subjects to keep (keys as [`subject_key`] makes them); empty keeps all.
    pub subjects: Vec<String>,
    /// Levels to keep; empty keeps all (problems without a level are kept only
    /// when no level is asked for).
    pub levels: Vec<u8>,
    /// How many to take; `None` takes all that match.
    pub count: Option<usize>,
    /// Shuffle seed; `None` takes the first problems in file order (as the seed
    /// notebook does).
    pub shuffle_seed: Option<u64>,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects = if self.subjects.is_empty() {
            "all".to_owned()
        } else {
            self.subjects.join(",")
        };
        let levels = if self.levels.is_empty() {
            "all".to_owned()
        } else {
            self.levels
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "subject {subjects}, level {levels}")?;
        if let Some(seed) = self.shuffle_seed {
            write!(f, ", shuffled with seed {seed}")?;
        }
        Ok(())
    }
}

impl Selection {
    /// The matching problems: filtered, shuffled if a seed is set, then cut to
    /// `count`. `split` names the set in errors.
    ///
    /// # Errors
    /// [`MathChatError::NotEnoughProblems`] when fewer than `count` (or none) match.
    pub fn apply(
        &self,
        problems: Vec<Problem>,
        split: &str,
    ) -> Result<Vec<Problem>, MathChatError> {
        self.check_subjects(&problems, split)?;
        let mut kept: Vec<Problem> = problems
            .into_iter()
            .filter(|problem| self.subjects.is_empty() || self.subjects.contains(&problem.subject))
            .filter(|problem| {
                self.levels.is_empty()
                    || problem
                        .level
                        .is_some_and(|level| self.levels.contains(&level))
            })
            .collect();
        if let Some(seed) = self.shuffle_seed {
            shuffle(&mut kept, seed);
        }
        let wanted = self.count.unwrap_or(kept.len()).max(1);
        if kept.len() < wanted {
            return Err(MathChatError::NotEnoughProblems {
                split: split.to_owned(),
                wanted,
                available: kept.len(),
                selection: self.to_string(),
            });
        }
        kept.truncate(wanted);
        Ok(kept)
    }
}

impl Selection {
    /// Every subject asked for is in the data: a misspelt subject names the real
    /// ones instead of reporting that nothing matches.
    fn check_subjects(&self, problems: &[Problem], split: &str) -> Result<(), MathChatError> {
        let available: std::collections::BTreeSet<&str> = problems
            .iter()
            .map(|problem| problem.subject.as_str())
            .collect();
        match self
            .subjects
            .iter()
            .find(|subject| !available.contains(subject.as_str()))
        {
            Some(subject) => Err(MathChatError::UnknownSubject {
                split: split.to_owned(),
                subject: subject.clone(),
                available: available.into_iter().map(str::to_owned).collect(),
            }),
            None => Ok(()),
        }
    }
}

/// Fisher–Yates with SplitMix64: a fixed algorithm, so a seed picks the same
/// problems on every platform and with every dependency version.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for upper in (1..items.len()).rev() {
        // Multiply-shift maps a 64-bit draw onto 0..=upper without modulo bias worth
        // noticing at these sizes.
        let bound = upper as u128 + 1;
        let pick = ((u128::from(next()) * bound) >> 64) as usize;
        items.swap(upper, pick);
    }
}
