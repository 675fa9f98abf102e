//! `report.html`: the whole run as one self-contained page — the summary and
//! learning curve, the test problems before and after with filters, every
//! conversation, every optimizer step (prompt, reply, actions accepted and
//! rejected, functions after), and every function with its calls per phase.
//!
//! Built from the run directory's files, streaming: each conversation of
//! `transcripts.jsonl` and each step of `step_details.jsonl` is written to the page
//! as it is read, as a `<script type="application/json">` block the page parses only
//! when it is opened; only one small row per attempt is held in memory. Every `<`
//! inside embedded JSON is written `\u003c`, so no model text can close its block or
//! open a comment; the page's script builds the DOM with `textContent` only, and a
//! Content-Security-Policy allows no network and no script but its own (by hash).

mod curve;
mod view;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Seek as _, Write};
use std::path::{Path, PathBuf};

use agentopt_core::files::read_json_lines;
use agentopt_core::{CoreError, FunctionSet, LearnedFunction};
use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use crate::CallCounts;
use crate::TrainError;
use crate::journal::{ConversationRecord, Phase, RunDir, StepRecord};
use crate::report::TrainingReport;
use view::{AttemptRow, ConversationView};

pub use curve::learning_curve_svg;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Rebuilds `report.html` of the run in `run_dir` from its files (an older run's
/// too) and returns its path. A run still going, or killed before its end, has no
/// `report.json` yet: its page shows what the journal holds so far, marked
/// incomplete.
///
/// # Errors
/// [`TrainError::File`] naming the file when neither `report.json` nor
/// `transcripts.jsonl` exists, a file cannot be read, a journal line does not parse,
/// or the page cannot be written.
pub fn write_report_html(run_dir: &Path) -> Result<PathBuf, TrainError> {
    let dir = RunDir::at(run_dir);
    let functions = crate::report::functions_at_end(&dir)?;
    let report = TrainingReport::read(run_dir)?;
    write(&dir, &report, &functions)?;
    Ok(dir.report_html_path())
}

/// A closure for `map_err`: an I/O error on `path` as the crate's file error.
fn file_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TrainError {
    let io = agentopt_core::io_error(action, path);
    move |source| CoreError::from(io(source)).into()
}

/// Writes `report.html` for `report`, with `functions` the set in force at the end.
pub(crate) fn write(
    dir: &RunDir,
    report: &TrainingReport,
    functions: &FunctionSet,
) -> Result<(), TrainError> {
    let path = dir.report_html_path();
    let partial = path.with_extension("html.partial");
    let file = File::create(&partial).map_err(file_error("create", &partial))?;
    let mut page = Page {
        out: BufWriter::new(file),
        path: partial.clone(),
    };
    page.head(report)?;
    let attempts = page.conversations(&dir.transcripts_path())?;
    let details = page.step_details(&dir.step_details_path())?;
    let steps: Vec<StepRecord> = read_json_lines(&dir.steps_path())?;
    let index = Index::new(report, &attempts, steps, &details, functions);
    page.raw("<script type=\"application/json\" id=\"run-data\">")?;
    page.json(&index)?;
    page.raw("</script>\n<script>")?;
    page.raw(SCRIPT)?;
    page.raw("</script>\n</body>\n</html>\n")?;
    let file = page
        .out
        .into_inner()
        .map_err(|error| file_error("write", &partial)(error.into_error()))?;
    file.sync_all().map_err(file_error("write", &partial))?;
    std::fs::rename(&partial, &path).map_err(file_error("rename into", &path))?;
    Ok(())
}

/// The page being written.
struct Page {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Page {
    fn raw(&mut self, text: &str) -> Result<(), TrainError> {
        self.out
            .write_all(text.as_bytes())
            .map_err(file_error("write", &self.path))?;
        Ok(())
    }

    /// `value` as JSON that cannot end the `<script>` element it is written in.
    fn json(&mut self, value: &impl Serialize) -> Result<(), TrainError> {
        serde_json::to_writer(ScriptSafe(&mut self.out), value)
            .map_err(|error| file_error("write", &self.path)(error.into()))?;
        Ok(())
    }

    /// A JSON text already serialised (a journal line), made script-safe likewise.
    fn json_text(&mut self, text: &str) -> Result<(), TrainError> {
        ScriptSafe(&mut self.out)
            .write_all(text.as_bytes())
            .map_err(file_error("write", &self.path))?;
        Ok(())
    }

    /// Everything before the data: the policy, styles, title and the learning curve.
    fn head(&mut self, report: &TrainingReport) -> Result<(), TrainError> {
        let script_hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
        let title = format!("AgentOptimizer on {}", report.setup.task);
        let curve = learning_curve_svg(report).unwrap_or_else(|error| {
            format!(
                "<p class=\"note\">The learning curve could not be drawn: {}</p>",
                escape(&error.to_string())
            )
        });
        self.raw(&format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header><h1>{}</h1><nav><a href=\"#summary\">Summary</a> \
             <a href=\"#problems\">Test problems</a> <a href=\"#steps\">Optimizer steps</a> \
             <a href=\"#functions\">Functions</a></nav></header>\n\
             <noscript><p class=\"note\">This page shows its tables with JavaScript; \
             report.md beside it has the summary.</p></noscript>\n\
             <main>\n<section id=\"summary\"><h2>Summary</h2><div id=\"summary-body\"></div>\
             <figure class=\"curve\">{curve}</figure></section>\n\
             <section id=\"problems\"><h2>Test problems</h2><div id=\"problems-body\"></div></section>\n\
             <section id=\"steps\"><h2>Optimizer steps</h2><div id=\"steps-body\"></div></section>\n\
             <section id=\"functions\"><h2>Functions</h2><div id=\"functions-body\"></div></section>\n\
             </main>\n",
            escape(&title),
            escape(&title),
        ))
    }

    /// `<script type="application/json" id="ID">`, what `body` writes, `</script>`.
    fn block(
        &mut self,
        id: &str,
        body: impl FnOnce(&mut Self) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        self.raw(&format!("<script type=\"application/json\" id=\"{id}\">"))?;
        body(self)?;
        self.raw("</script>\n")
    }

    /// Streams every conversation of `transcripts.jsonl` into the page, one block
    /// per line (`c-LINE`), and returns the latest row of each (phase, index).
    fn conversations(&mut self, path: &Path) -> Result<Attempts, TrainError> {
        let mut attempts = Attempts::new();
        for_each_record(path, |number, _, record: ConversationRecord| {
            let block = format!("c-{number}");
            self.block(&block, |page| page.json(&ConversationView::new(&record)))?;
            let row = AttemptRow::new(&record, block);
            attempts.insert((record.phase, record.index), (record.problem_id, row));
            Ok(())
        })?;
        Ok(attempts)
    }

    /// Streams every line of `step_details.jsonl` into the page as it is
    /// (`s-NUMBER`), in pieces (a partitioned step's line holds every prompt of
    /// the step), and returns the block of each epoch's latest step.
    fn step_details(&mut self, path: &Path) -> Result<BTreeMap<u32, String>, TrainError> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BTreeMap::new());
            }
            Err(error) => return Err(file_error("read", path)(error)),
        };
        let length = file.metadata().map_err(file_error("read", path))?.len();
        // A last line cut short by a kill is left out, as the journal's readers do.
        let complete = agentopt_core::files::complete_length(&mut file, length)
            .and_then(|complete| file.rewind().map(|()| complete))
            .map_err(file_error("read", path))?;
        let mut reader = BufReader::new(std::io::Read::take(file, complete));
        let mut blocks = BTreeMap::new();
        for number in 1.. {
            // `{"epoch":N,` — the first field of every line (StepDetail's order).
            let mut head = Vec::new();
            reader
                .read_until(b',', &mut head)
                .map_err(file_error("read", path))?;
            let head = String::from_utf8_lossy(&head);
            let head = head.trim_start();
            if head.is_empty() {
                break;
            }
            let epoch = step_epoch(head).ok_or_else(|| CoreError::Format {
                path: path.to_owned(),
                line: Some(number),
                message: format!(
                    "a step's line starts {:?}, not with its epoch",
                    head.chars().take(40).collect::<String>()
                ),
            })?;
            let block = format!("s-{number}");
            self.block(&block, |page| {
                page.json_text(head)?;
                page.copy_line(&mut reader, path)
            })?;
            blocks.insert(epoch, block);
        }
        Ok(blocks)
    }

    /// Copies the rest of the current line of `reader` into the page, script-safe,
    /// and consumes its newline.
    fn copy_line(
        &mut self,
        reader: &mut impl std::io::BufRead,
        path: &Path,
    ) -> Result<(), TrainError> {
        loop {
            let buffer = reader.fill_buf().map_err(file_error("read", path))?;
            if buffer.is_empty() {
                return Ok(());
            }
            let (piece, ends) = match buffer.iter().position(|&byte| byte == b'\n') {
                Some(at) => (&buffer[..at], at + 1),
                None => (buffer, buffer.len()),
            };
            ScriptSafe(&mut self.out)
                .write_all(piece)
                .map_err(file_error("write", &self.path))?;
            let line_ended = ends > piece.len();
            reader.consume(ends);
            if line_ended {
                return Ok(());
            }
        }
    }
}

/// The epoch a step's line starts with: `{"epoch":12,` → 12.
fn step_epoch(head: &str) -> Option<u32> {
    let number = head.strip_prefix("{\"epoch\":")?.trim_end_matches(',');
    number.trim().parse().ok()
}

/// The latest attempt of each (phase, index): its problem id and row.
type Attempts = BTreeMap<(Phase, usize), (String, AttemptRow)>;

/// Calls `each` with the 1-based number, text and parsed record of every complete,
/// non-empty line of a JSON-lines file, one line in memory at a time (a missing file
/// has none; a last line cut short by a kill is skipped, as the journal's readers
/// do).
fn for_each_record<T: DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(usize, &str, T) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(file_error("read", path)(error)),
    };
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(file_error("read", path))?;
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        let record = serde_json::from_str(text).map_err(|error| CoreError::Format {
            path: path.to_owned(),
            line: Some(number),
            message: error.to_string(),
        })?;
        each(number, text, record)?;
    }
    Ok(())
}

/// Writes JSON with every `<` as `\u003c`: inside a `<script>` element no string can
/// then close it (`</script>`) or open a comment (`<!--`). `<` is one byte that never
/// occurs inside a multi-byte UTF-8 sequence, and outside strings JSON has none.
struct ScriptSafe<W: Write>(W);

impl<W: Write> Write for ScriptSafe<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&byte| byte == b'<') {
            self.0.write_all(&rest[..at])?;
            self.0.write_all(b"\\u003c")?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Everything the page's tables show, small enough to parse at once.
#[derive(Serialize)]
struct Index<'a> {
    report: &'a TrainingReport,
    /// Test problems by position, before and after training.
    problems: Vec<ProblemRow<'a>>,
    /// Training and validation attempts, per phase.
    phases: Vec<PhaseRows<'a>>,
    /// Optimizer steps, with the block of their detail.
    steps: Vec<StepEntry>,
    /// Functions in force at the end, then functions called earlier and removed.
    functions: Vec<FunctionEntry<'a>>,
}

#[derive(Serialize)]
struct ProblemRow<'a> {
    index: usize,
    id: &'a str,
    before: Option<&'a AttemptRow>,
    after: Option<&'a AttemptRow>,
    /// Functions offered in the test after training: as journaled, or those in force
    /// at the end for a journal from before offers were recorded.
    offered: Vec<&'a str>,
}

#[derive(Serialize)]
struct PhaseRows<'a> {
    phase: String,
    epoch: Option<u32>,
    rows: Vec<(&'a str, &'a AttemptRow)>,
}

#[derive(Serialize)]
struct StepEntry {
    #[serde(flatten)]
    record: StepRecord,
    /// The `s-N` block of its detail, when the run recorded one.
    detail: Option<String>,
}

#[derive(Serialize)]
struct FunctionEntry<'a> {
    name: &'a str,
    /// The whole function (code, description, schema, and whatever else it carries),
    /// `None` for a function removed before the end.
    function: Option<&'a LearnedFunction>,
    /// Calls per phase, in run order: (phase name, counts).
    calls: Vec<(String, CallCounts)>,
}

impl<'a> Index<'a> {
    fn new(
        report: &'a TrainingReport,
        attempts: &'a Attempts,
        steps: Vec<StepRecord>,
        details: &BTreeMap<u32, String>,
        functions: &'a FunctionSet,
    ) -> Self {
        let phase_rows = |phase: Phase| attempts.range((phase, 0)..=(phase, usize::MAX));
        Self {
            report,
            problems: test_rows(attempts, report),
            phases: phase_list(attempts)
                .into_iter()
                .map(|phase| PhaseRows {
                    phase: phase.name(),
                    epoch: match phase {
                        Phase::Train { epoch } | Phase::Validation { epoch } => Some(epoch),
                        Phase::TestBefore | Phase::TestAfter => None,
                    },
                    rows: phase_rows(phase)
                        .map(|(_, (id, row))| (id.as_str(), row))
                        .collect(),
                })
                .collect(),
            steps: steps
                .into_iter()
                .map(|record| StepEntry {
                    detail: details.get(&record.epoch).cloned(),
                    record,
                })
                .collect(),
            functions: function_entries(attempts, functions),
        }
    }
}

/// The training and validation phases that hold attempts, in run order.
fn phase_list(attempts: &Attempts) -> Vec<Phase> {
    let mut phases: Vec<Phase> = attempts
        .keys()
        .map(|(phase, _)| *phase)
        .filter(|phase| matches!(phase, Phase::Train { .. } | Phase::Validation { .. }))
        .collect();
    phases.dedup();
    phases
}

/// One row per test problem position, pairing the attempt before and after, with
/// what the test after was offered (retrieval may have offered only some functions).
fn test_rows<'a>(attempts: &'a Attempts, report: &'a TrainingReport) -> Vec<ProblemRow<'a>> {
    let mut rows: BTreeMap<usize, ProblemRow<'a>> = BTreeMap::new();
    for phase in [Phase::TestBefore, Phase::TestAfter] {
        for ((_, index), (id, row)) in attempts.range((phase, 0)..=(phase, usize::MAX)) {
            let entry = rows.entry(*index).or_insert_with(|| ProblemRow {
                index: *index,
                id,
                before: None,
                after: None,
                offered: Vec::new(),
            });
            if phase == Phase::TestBefore {
                entry.before = Some(row);
            } else {
                entry.after = Some(row);
                entry.offered = if row.offered.is_empty() {
                    report
                        .functions
                        .iter()
                        .map(|function| function.name.as_str())
                        .collect()
                } else {
                    row.offered.iter().map(String::as_str).collect()
                };
            }
        }
    }
    rows.into_values().collect()
}

/// The functions in force, then those called in some phase but removed since, each
/// with its calls per phase.
fn function_entries<'a>(
    attempts: &'a Attempts,
    functions: &'a FunctionSet,
) -> Vec<FunctionEntry<'a>> {
    let mut calls: BTreeMap<&str, BTreeMap<Phase, CallCounts>> = BTreeMap::new();
    for ((phase, _), (_, row)) in attempts {
        for (name, counts) in &row.calls {
            calls
                .entry(name)
                .or_default()
                .entry(*phase)
                .or_default()
                .merge(*counts);
        }
    }
    let by_name = |per_phase: BTreeMap<Phase, CallCounts>| -> Vec<(String, CallCounts)> {
        per_phase
            .into_iter()
            .map(|(phase, counts)| (phase.name(), counts))
            .collect()
    };
    let mut entries: Vec<FunctionEntry<'a>> = functions
        .iter()
        .map(|function| FunctionEntry {
            name: &function.name,
            function: Some(function),
            calls: by_name(calls.remove(function.name.as_str()).unwrap_or_default()),
        })
        .collect();
    entries.extend(calls.into_iter().map(|(name, calls)| FunctionEntry {
        name,
        function: None,
        calls: by_name(calls),
    }));
    entries
}
