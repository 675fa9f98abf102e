//! What the page embeds: one compact view per conversation (loaded by the page only
//! when opened) and one small row per attempt for the tables and filters.

use std::collections::{BTreeMap, BTreeSet};

use agentopt_agents::{Execution, Message, StopReason, TranscriptEntry};
use agentopt_llm::{ChatMessage, FunctionCall, Role, ToolCall};
use serde::Serialize;

use crate::CallCounts;
use crate::journal::ConversationRecord;
use crate::task::Outcome;

/// One conversation as the page shows it: the verdict and every message with what
/// was executed to produce it. The attempt's `history` is left out where the
/// transcript holds the same messages, and sandbox outcomes where the execution's
/// output (what went back to the model) says it.
#[derive(Serialize)]
pub(super) struct ConversationView<'a> {
    phase: String,
    problem_id: &'a str,
    outcome: &'a Outcome,
    answer: Option<&'a str>,
    expected: Option<&'a str>,
    tokens: u64,
    calls: &'a BTreeMap<String, CallCounts>,
    checks: &'a BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<&'a StopReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    messages: Vec<MessageView<'a>>,
}

impl<'a> ConversationView<'a> {
    pub(super) fn new(record: &'a ConversationRecord) -> Self {
        let attempt = &record.attempt;
        let transcript = attempt.transcript.as_ref();
        let messages = match transcript {
            Some(transcript) => transcript.entries.iter().map(MessageView::entry).collect(),
            None => attempt.history.iter().map(MessageView::chat).collect(),
        };
        Self {
            phase: record.phase.name(),
            problem_id: &record.problem_id,
            outcome: &attempt.outcome,
            answer: attempt.answer.as_deref(),
            expected: attempt.expected.as_deref(),
            tokens: attempt.tokens,
            calls: &attempt.calls,
            checks: &attempt.checks,
            stop_reason: transcript.map(|transcript| &transcript.stop_reason),
            wall_seconds: transcript.map(|transcript| transcript.wall_time.as_secs_f64()),
            messages,
        }
    }
}

/// One message: who sent it, its text and calls, and what its sender executed.
#[derive(Serialize)]
struct MessageView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    calls: Vec<&'a FunctionCall>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    executions: Vec<ExecutionView<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    tokens: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl<'a> MessageView<'a> {
    fn entry(entry: &'a TranscriptEntry) -> Self {
        let message: &Message = &entry.message;
        Self {
            sender: Some(&entry.sender),
            recipient: Some(&entry.recipient),
            role: message.role,
            name: message.name.as_deref(),
            content: message.content.as_deref(),
            calls: requested(&message.tool_calls, message.function_call.as_ref()),
            executions: entry
                .work
                .executions
                .iter()
                .map(ExecutionView::new)
                .collect(),
            tokens: entry.work.usage.prompt_tokens + entry.work.usage.completion_tokens,
        }
    }

    fn chat(message: &'a ChatMessage) -> Self {
        Self {
            sender: None,
            recipient: None,
            role: message.role,
            name: message.name.as_deref(),
            content: message.content.as_deref(),
            calls: requested(&message.tool_calls, message.function_call.as_ref()),
            executions: Vec::new(),
            tokens: 0,
        }
    }
}

/// The calls a message requests: its tool calls, or its legacy function call.
fn requested<'a>(
    tool_calls: &'a [ToolCall],
    function_call: Option<&'a FunctionCall>,
) -> Vec<&'a FunctionCall> {
    tool_calls
        .iter()
        .map(|call| &call.function)
        .chain(function_call)
        .collect()
}

/// A code block or function call, with what went back to the model.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ExecutionView<'a> {
    Code {
        lang: &'a str,
        code: &'a str,
        output: &'a str,
        success: bool,
    },
    Function {
        name: &'a str,
        arguments: &'a str,
        output: &'a str,
        success: bool,
    },
}

impl<'a> ExecutionView<'a> {
    fn new(execution: &'a Execution) -> Self {
        match execution {
            Execution::Code(code) => Self::Code {
                lang: &code.lang,
                code: &code.code,
                output: &code.output,
                success: code.success,
            },
            Execution::Function(call) => Self::Function {
                name: &call.name,
                arguments: &call.arguments,
                output: &call.content,
                success: call.success,
            },
        }
    }
}

/// One attempt in the page's tables: enough to filter and to show a row, and the
/// id of the block holding its conversation.
#[derive(Debug, Clone, Serialize)]
pub(super) struct AttemptRow {
    /// `c-N`: the embedded conversation.
    pub(super) block: String,
    /// `solved`, `failed` or `infrastructure`.
    pub(super) status: &'static str,
    /// Why it failed, or the infrastructure error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expected: Option<String>,
    pub(super) tokens: u64,
    /// Learned-function calls, per name.
    pub(super) calls: BTreeMap<String, CallCounts>,
    /// Learned functions its code shadowed with versions of its own.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub(super) shadowed: BTreeSet<String>,
    /// The learned functions the attempt was offered, as journaled (empty in journals
    /// from before offers were recorded); the problem row shows them.
    #[serde(skip)]
    pub(super) offered: Vec<String>,
}

impl AttemptRow {
    pub(super) fn new(record: &ConversationRecord, block: String) -> Self {
        let attempt = &record.attempt;
        let (status, reason) = match &attempt.outcome {
            Outcome::Solved => ("solved", None),
            Outcome::Failed { reason } => ("failed", Some(reason.clone())),
            Outcome::Infrastructure(error) => (
                "infrastructure",
                Some(format!("{:?}: {}", error.kind, error.message)),
            ),
        };
        Self {
            block,
            status,
            reason,
            answer: attempt.answer.clone(),
            expected: attempt.expected.clone(),
            tokens: attempt.tokens,
            calls: attempt.calls.clone(),
            shadowed: attempt.shadowed.clone(),
            offered: record.offered.clone(),
        }
    }
}
