//! What each optimizer step was shown and answered: the optimizer's model is
//! wrapped in a [`TapedModel`] that records every request and reply of the step in
//! progress, and the trainer writes them, with the step's decision, to
//! `step_details.jsonl` ([`StepDetail`]) for the HTML report. A partitioned step
//! over thousands of conversations makes thousands of calls, each carrying a whole
//! prompt: the exchanges go to a file as they come (`step_tape.jsonl`) and the
//! step's line is streamed from it, so memory holds one exchange at a time.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentopt_core::CoreError;
use agentopt_core::files::JsonLines;

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatWrapper, FinishReason, LlmError,
};
use agentopt_optimizer::StepOutcome;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One request to the optimizer's model and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerExchange {
    /// The messages sent (the step prompt, and a rejected reply with its feedback on
    /// a retry).
    pub messages: Vec<ChatMessage>,
    /// The reply, when the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ChatMessage>,
    /// Why the model stopped, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The error, when the call failed after its retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One optimizer step in full, as stored in `step_details.jsonl`: what
/// [`crate::StepRecord`] counts, with the prompts, replies, actions and reasons. A
/// later line for the same epoch supersedes an earlier one (a step re-run on resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDetail {
    /// The epoch whose conversations the step read.
    pub epoch: u32,
    /// Every call to the optimizer's model during the step, in order.
    pub exchanges: Vec<OptimizerExchange>,
    /// What the step decided: accepted and rejected actions (with the errors fed
    /// back), scores, the function set after it. `None` when the step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<StepOutcome>,
    /// Why the step was skipped, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The exchanges recorded since the last [`Tape::clear`], one JSON line each in
/// a file.
#[derive(Debug, Clone)]
pub(crate) struct Tape(Arc<Mutex<TapeFile>>);

#[derive(Debug)]
struct TapeFile {
    path: PathBuf,
    /// Open for appending once something was recorded.
    file: Option<File>,
    /// The first exchange that could not be recorded, reported when the step's
    /// line is written (the model call itself went on).
    failed: Option<std::io::Error>,
}

impl Tape {
    /// A tape recording to `path` (emptied first).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(Arc::new(Mutex::new(TapeFile {
            path,
            file: None,
            failed: None,
        })))
    }

    /// Forgets what was recorded (the calls of a step that failed before its line).
    ///
    /// # Errors
    /// Emptying the file.
    pub(crate) fn clear(&self) -> Result<(), CoreError> {
        let mut tape = agentopt_core::lock(&self.0);
        tape.failed = None;
        tape.file = None;
        match std::fs::remove_file(&tape.path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(agentopt_core::io_error("remove", &tape.path)(error).into())
            }
            _ => Ok(()),
        }
    }

    fn push(&self, exchange: &OptimizerExchange) {
        let mut tape = agentopt_core::lock(&self.0);
        if tape.failed.is_some() {
            return;
        }
        let written = serde_json::to_vec(exchange)
            .map_err(std::io::Error::from)
            .and_then(|mut line| {
                line.push(b'\n');
                let file = match tape.file.take() {
                    Some(file) => file,
                    None => std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&tape.path)?,
                };
                (&file).write_all(&line)?;
                tape.file = Some(file);
                Ok(())
            });
        tape.failed = written.err();
    }

    /// Appends the step's [`StepDetail`] line to `details`, its exchanges
    /// streamed from the tape, and clears the tape.
    ///
    /// # Errors
    /// An exchange that could not be recorded; reading the tape or writing the
    /// line.
    pub(crate) fn write_detail(
        &self,
        details: &mut JsonLines,
        epoch: u32,
        outcome: Option<&StepOutcome>,
        skipped: Option<&str>,
    ) -> Result<(), CoreError> {
        let path = {
            let mut tape = agentopt_core::lock(&self.0);
            if let Some(error) = tape.failed.take() {
                return Err(
                    agentopt_core::io_error("record the step's calls in", &tape.path)(error).into(),
                );
            }
            tape.file = None;
            tape.path.clone()
        };
        details.append_with(|out| {
            write!(out, "{{\"epoch\":{epoch},\"exchanges\":[")?;
            copy_lines(&path, out)?;
            out.write_all(b"]")?;
            if let Some(outcome) = outcome {
                out.write_all(b",\"outcome\":")?;
                serde_json::to_writer(&mut *out, outcome)?;
            }
            if let Some(skipped) = skipped {
                out.write_all(b",\"skipped\":")?;
                serde_json::to_writer(&mut *out, skipped)?;
            }
            out.write_all(b"}")
        })?;
        self.clear()
    }
}

/// Writes the lines of the file at `path` (none when it is missing) to `out`,
/// separated by commas: the elements of a JSON array.
fn copy_lines(path: &Path, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for (index, line) in BufReader::new(file).lines().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        out.write_all(line?.as_bytes())?;
    }
    Ok(())
}

/// A model that records every chat on a [`Tape`] and otherwise is `inner`.
pub(crate) struct TapedModel {
    inner: Arc<dyn ChatModel>,
    tape: Tape,
}

impl TapedModel {
    /// `inner`, recording on `tape`.
    pub(crate) fn new(inner: Arc<dyn ChatModel>, tape: Tape) -> Self {
        Self { inner, tape }
    }
}

#[async_trait]
impl ChatWrapper for TapedModel {
    fn inner(&self) -> &dyn ChatModel {
        self.inner.as_ref()
    }

    async fn wrapped_chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let messages = request.messages.clone();
        let result = self.inner.chat(request).await;
        self.tape.push(&OptimizerExchange {
            messages,
            reply: result
                .as_ref()
                .ok()
                .map(|response| response.message.clone()),
            finish_reason: result
                .as_ref()
                .ok()
                .and_then(|response| response.finish_reason),
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }
}
