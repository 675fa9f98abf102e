//! Assistant-reply prefill: the request ends with the start of the reply as an
//! assistant message, which servers such as llama.cpp continue. A small model asked
//! for Python answers in prose in most first replies; begun with ```` ```python ````
//! it writes code (8 of 8 first replies against 2 of 8, docs/bench-math).

use serde::{Deserialize, Serialize};

/// The text every reply of an agent (or only its first) starts with. Off by
/// default: AG2 sends no such message, and not every server continues one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyPrefill {
    /// The start of the reply, e.g. ```` "```python\n" ````.
    pub text: String,
    /// Prefill every reply; `false`: only the first reply to each peer (later
    /// replies must be free to answer without code, e.g. with the final
    /// `\boxed{}`).
    #[serde(default)]
    pub every_reply: bool,
}

impl ReplyPrefill {
    /// Prefills only the first reply with `text`.
    pub fn first_reply(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            every_reply: false,
        }
    }

    /// Whether a reply that follows `earlier_replies` of this agent is prefilled.
    pub fn applies(&self, earlier_replies: usize) -> bool {
        !self.text.is_empty() && (self.every_reply || earlier_replies == 0)
    }

    /// The reply text as the model meant it: the prefill, then what the server
    /// returned after it (a server that repeats the prefill is not doubled).
    pub fn complete(&self, continuation: &str) -> String {
        if continuation.starts_with(&self.text) {
            continuation.to_owned()
        } else {
            format!("{}{continuation}", self.text)
        }
    }
}
