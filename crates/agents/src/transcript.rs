//! Conversation transcripts: every message with the executions and model usage that
//! produced it, serialisable to JSON and kept after the chat ends.

use std::time::Duration;

use agentopt_llm::Usage;
use agentopt_sandbox::CellOutcome;
use serde::{Deserialize, Serialize};

use crate::Message;
use crate::functions::FunctionExecution;

/// One code block the executor ran (or refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeExecution {
    /// Language of the block (`python`, or what the fence said).
    pub lang: String,
    /// The code as it was run (after any rewriting, e.g. the auto-print rule).
    pub code: String,
    /// Whether the agent counted it as a success.
    pub success: bool,
    /// The text that went back to the model for this block.
    pub output: String,
    /// The sandbox outcome; `None` when the block was not run (unknown language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<CellOutcome>,
}

/// Something an agent executed while producing a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Execution {
    /// A code block.
    Code(CodeExecution),
    /// A function or tool call.
    Function(FunctionExecution),
}

impl Execution {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        match self {
            Self::Code(code) => code.success,
            Self::Function(function) => function.success,
        }
    }
}

/// What an agent did to produce one reply: model calls and executions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyWork {
    /// Model calls made.
    pub model_calls: u32,
    /// Tokens the model calls used (cached replies count zero).
    pub usage: Usage,
    /// Code blocks and function calls executed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<Execution>,
    /// Wall time spent producing the reply.
    pub duration: Duration,
}

impl ReplyWork {
    fn absorb(&mut self, other: &Self) {
        self.model_calls += other.model_calls;
        self.usage.prompt_tokens += other.usage.prompt_tokens;
        self.usage.completion_tokens += other.usage.completion_tokens;
        self.duration += other.duration;
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Who sent it.
    pub sender: String,
    /// Who received it.
    pub recipient: String,
    /// The message.
    pub message: Message,
    /// What the sender did to produce it (empty for the opening message).
    pub work: ReplyWork,
    /// Time since the chat started when it was sent.
    pub elapsed: Duration,
}

/// Why a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// `agent` received a termination message.
    Terminated {
        /// The agent that stopped.
        agent: String,
    },
    /// `agent` reached its limit of consecutive automatic replies.
    MaxAutoReplies {
        /// The agent that stopped.
        agent: String,
        /// The limit.
        limit: u32,
    },
    /// A human told `agent` to stop.
    HumanExit {
        /// The agent that stopped.
        agent: String,
    },
    /// A reply function ended the chat, for this reason.
    Ended {
        /// The agent that stopped.
        agent: String,
        /// Why.
        detail: String,
    },
    /// The model or the sandbox failed; the message says how.
    Error {
        /// The agent that failed.
        agent: String,
        /// What failed (model, malformed reply, budget, sandbox …).
        #[serde(default)]
        kind: FailureKind,
        /// The error.
        message: String,
    },
}

/// What kind of failure ended a chat or an attempt, from the chat to the training
/// report: lets a caller tell an outage (worth a retry; never training signal)
/// from what the agents did. Ordered as the report lists them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The model call failed after the client's retries (HTTP, transport, timeout,
    /// a refused request).
    #[default]
    Model,
    /// The model server answered, but not with a readable reply.
    MalformedReply,
    /// The sandbox could not start or talk to a Python worker (outside the agents'
    /// code).
    Sandbox,
    /// The answer checker could not decide whether the answer is right.
    CheckerUndecided,
    /// The spending budget is used up; a training run stops.
    Budget,
    /// The conversation no longer fits the model's context window (the agents'
    /// failure, not infrastructure).
    ContextOverflow,
    /// Anything else (no executor, a function refused at registration …).
    Other,
}

/// Totals over a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptTotals {
    /// Messages exchanged, the opening one included.
    pub messages: usize,
    /// Model calls.
    pub model_calls: u32,
    /// Tokens used.
    pub usage: Usage,
    /// Executions that failed (code errors, function-call errors).
    pub failed_executions: usize,
    /// Executions in all.
    pub executions: usize,
}

/// A whole conversation between two agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The agent that opened the chat.
    pub initiator: String,
    /// The other agent.
    pub recipient: String,
    /// Messages in order.
    pub entries: Vec<TranscriptEntry>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Totals.
    pub totals: TranscriptTotals,
    /// Wall time of the whole chat.
    pub wall_time: Duration,
}

impl Transcript {
    pub(crate) fn new(
        initiator: String,
        recipient: String,
        entries: Vec<TranscriptEntry>,
        unsent_work: &ReplyWork,
        stop_reason: StopReason,
        wall_time: Duration,
    ) -> Self {
        let mut work = ReplyWork::default();
        let mut totals = TranscriptTotals {
            messages: entries.len(),
            ..TranscriptTotals::default()
        };
        let all_work = entries
            .iter()
            .map(|entry| &entry.work)
            .chain(std::iter::once(unsent_work));
        for entry_work in all_work {
            work.absorb(entry_work);
            totals.executions += entry_work.executions.len();
            totals.failed_executions += entry_work
                .executions
                .iter()
                .filter(|execution| !execution.succeeded())
                .count();
        }
        totals.model_calls = work.model_calls;
        totals.usage = work.usage;
        Self {
            initiator,
            recipient,
            entries,
            stop_reason,
            totals,
            wall_time,
        }
    }

    /// The chat as `agent` keeps it in its history with the other agent, as the
    /// chat messages a model request of `agent` would hold (each message as that
    /// agent saw it, tool results split out).
    pub fn history_of(&self, agent: &str) -> Vec<agentopt_llm::ChatMessage> {
        self.entries
            .iter()
            .filter(|entry| entry.sender == agent || entry.recipient == agent)
            .flat_map(|entry| {
                entry
                    .message
                    .as_seen_by(entry.sender == agent, &entry.sender)
                    .to_chat_messages()
            })
            .collect()
    }

    /// The transcript as pretty JSON.
    ///
    /// # Errors
    /// Never in practice (all fields serialise); kept for `serde_json`'s signature.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}
