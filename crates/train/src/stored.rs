//! How an [`Attempt`] is stored in `transcripts.jsonl`: the assistant's history
//! repeats the transcript's messages, so a history message whose (long) text is a
//! transcript entry's text refers to that entry instead of holding a second copy (a
//! 5 MB reply is stored once, not twice). Reading resolves the references; records
//! written before this form read as they are.

use std::collections::{BTreeMap, HashMap};

use agentopt_agents::Transcript;
use agentopt_llm::ChatMessage;
use agentopt_sandbox::CallCounts;
use serde::{Deserialize, Serialize};

use crate::task::{Attempt, Outcome};

/// Texts shorter than this stay in the history (a reference would not save much
/// and the line stays readable).
const SHARED_TEXT_MIN_BYTES: usize = 1024;

/// [`Attempt`] as stored; see the module documentation.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredAttempt {
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<StoredMessage>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    calls: BTreeMap<String, CallCounts>,
    #[serde(default)]
    tokens: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<String, bool>,
    #[serde(default)]
    transcript: Option<Transcript>,
}

/// A history message; its text is transcript entry `content_of_entry`'s when set.
#[derive(Serialize, Deserialize)]
struct StoredMessage {
    #[serde(flatten)]
    message: ChatMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_of_entry: Option<usize>,
}

impl From<Attempt> for StoredAttempt {
    fn from(attempt: Attempt) -> Self {
        let entries: HashMap<&str, usize> = attempt
            .transcript
            .iter()
            .flat_map(|transcript| transcript.entries.iter().enumerate())
            .filter_map(|(index, entry)| Some((entry.message.content.as_deref()?, index)))
            .filter(|(text, _)| text.len() >= SHARED_TEXT_MIN_BYTES)
            .collect();
        let history = attempt
            .history
            .into_iter()
            .map(|mut message| {
                let shared = message
                    .content
                    .as_deref()
                    .and_then(|text| entries.get(text).copied());
                if shared.is_some() {
                    message.content = None;
                }
                StoredMessage {
                    message,
                    content_of_entry: shared,
                }
            })
            .collect();
        Self {
            outcome: attempt.outcome,
            history,
            answer: attempt.answer,
            expected: attempt.expected,
            calls: attempt.calls,
            tokens: attempt.tokens,
            checks: attempt.checks,
            transcript: attempt.transcript,
        }
    }
}

impl TryFrom<StoredAttempt> for Attempt {
    type Error = String;

    fn try_from(stored: StoredAttempt) -> Result<Self, String> {
        let entry_text = |index: usize| {
            stored
                .transcript
                .as_ref()
                .and_then(|transcript| transcript.entries.get(index))
                .and_then(|entry| entry.message.content.clone())
                .ok_or_else(|| {
                    format!("history refers to transcript entry {index}, which has no text")
                })
        };
        let history = stored
            .history
            .into_iter()
            .map(
                |StoredMessage {
                     mut message,
                     content_of_entry,
                 }| {
                    if let Some(index) = content_of_entry {
                        message.content = Some(entry_text(index)?);
                    }
                    Ok(message)
                },
            )
            .collect::<Result<_, String>>()?;
        Ok(Self {
            outcome: stored.outcome,
            history,
            answer: stored.answer,
            expected: stored.expected,
            calls: stored.calls,
            tokens: stored.tokens,
            checks: stored.checks,
            transcript: stored.transcript,
        })
    }
}
