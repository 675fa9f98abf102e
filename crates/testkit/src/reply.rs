//! What the scripted server answers: completions and injected faults.

use std::time::Duration;

use serde_json::{Value, json};

/// A tool call inside a scripted completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// Function name.
    pub name: String,
    /// Arguments as raw text: valid JSON or, to inject a fault, anything else.
    pub arguments: String,
}

/// A successful chat completion to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Assistant text (`null` on the wire when `None`).
    pub content: Option<String>,
    /// `tool_calls` entries (modern style).
    pub tool_calls: Vec<ScriptedCall>,
    /// Legacy `function_call`.
    pub function_call: Option<ScriptedCall>,
    /// `finish_reason`; derived from the calls when `None`.
    pub finish_reason: Option<String>,
    /// Reported `(prompt_tokens, completion_tokens)`; `None` omits `usage`.
    pub usage: Option<(u64, u64)>,
}

/// Usage reported when a completion does not set its own.
pub const DEFAULT_USAGE: (u64, u64) = (10, 5);

impl Completion {
    fn empty() -> Self {
        Self {
            content: None,
            tool_calls: Vec::new(),
            function_call: None,
            finish_reason: None,
            usage: Some(DEFAULT_USAGE),
        }
    }

    /// Sets the reported token usage.
    #[must_use]
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// Omits `usage` from the reply.
    #[must_use]
    pub fn without_usage(mut self) -> Self {
        self.usage = None;
        self
    }

    /// Sets `finish_reason` explicitly.
    #[must_use]
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Adds text content.
    #[must_use]
    pub fn content(mut self, text: impl Into<String>) -> Self {
        self.content = Some(text.into());
        self
    }

    /// The JSON body of this completion; `sequence` numbers ids.
    pub fn to_json(&self, model: &str, sequence: u64) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, call)| {
                    json!({
                        "id": format!("call_{sequence}_{index}"),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
        }
        if let Some(call) = &self.function_call {
            message["function_call"] = json!({"name": call.name, "arguments": call.arguments});
        }
        let finish_reason = self.finish_reason.clone().unwrap_or_else(|| {
            if !self.tool_calls.is_empty() {
                "tool_calls".to_owned()
            } else if self.function_call.is_some() {
                "function_call".to_owned()
            } else {
                "stop".to_owned()
            }
        });
        let mut body = json!({
            "id": format!("chatcmpl-{sequence}"),
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        });
        if let Some((prompt, completion)) = self.usage {
            body["usage"] = json!({
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            });
        }
        body
    }
}

/// One scripted answer to a `POST …/chat/completions`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A well-formed completion.
    Completion(Completion),
    /// Any HTTP status with a body and an optional `Retry-After` (seconds).
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body.
        body: String,
        /// `Retry-After` header value in seconds.
        retry_after: Option<u64>,
    },
    /// HTTP 200 with this exact body (malformed JSON, empty `choices`, …).
    RawOk(String),
    /// Headers promise the full body of the inner reply, but the connection closes
    /// halfway through it.
    Truncated(Box<Reply>),
    /// The connection is reset (TCP RST) without any response.
    Reset,
    /// The inner reply, sent after a delay.
    Delayed(Duration, Box<Reply>),
    /// The inner reply, sent once the gate is open: a test decides when a request
    /// is answered (kill a run while its request is held, then let it through)
    /// instead of betting on a delay.
    Gated(Gate, Box<Reply>),
}

/// A gate that held replies ([`Reply::Gated`]) wait at: open or closed, shared by
/// its clones.
#[derive(Debug, Clone)]
pub struct Gate {
    open: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Gate {
    /// A closed gate.
    pub fn closed() -> Self {
        Self {
            open: std::sync::Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Lets every held and later reply through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Holds later replies again (those already let through are gone).
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Whether replies pass.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Waits until the gate is open.
    pub(crate) async fn pass(&self) {
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.open, &other.open)
    }
}

fn calls(calls: impl IntoIterator<Item = (String, String)>) -> Vec<ScriptedCall> {
    calls
        .into_iter()
        .map(|(name, arguments)| ScriptedCall { name, arguments })
        .collect()
}

impl Reply {
    /// A plain text answer.
    pub fn text(content: impl Into<String>) -> Self {
        Self::Completion(Completion::empty().content(content))
    }

    /// A text answer the token limit cut off (`finish_reason: "length"`).
    pub fn cut_off(content: impl Into<String>) -> Self {
        Self::Completion(Completion::empty().content(content).finish_reason("length"))
    }

    /// One tool call with JSON arguments.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::tool_calls([(name.into(), arguments)])
    }

    /// Several tool calls with JSON arguments.
    pub fn tool_calls(list: impl IntoIterator<Item = (String, Value)>) -> Self {
        Self::Completion(Completion {
            tool_calls: calls(
                list.into_iter()
                    .map(|(name, args)| (name, args.to_string())),
            ),
            ..Completion::empty()
        })
    }

    /// One tool call whose arguments are this raw text (e.g. invalid JSON).
    pub fn tool_call_raw(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::Completion(Completion {
            tool_calls: calls([(name.into(), arguments.into())]),
            ..Completion::empty()
        })
    }

    /// A legacy `function_call` with JSON arguments.
    pub fn function_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::Completion(Completion {
            function_call: calls([(name.into(), arguments.to_string())]).pop(),
            ..Completion::empty()
        })
    }

    /// HTTP 429 with an optional `Retry-After` in seconds.
    pub fn rate_limited(retry_after: Option<u64>) -> Self {
        Self::Status {
            status: 429,
            body: json!({"error": {"message": "rate limited", "type": "rate_limit_error", "param": null, "code": null}}).to_string(),
            retry_after,
        }
    }

    /// An HTTP 5xx (or any status) with an OpenAI-style error body.
    pub fn server_error(status: u16) -> Self {
        Self::Status {
            status,
            body: json!({"error": {"message": "scripted server error", "type": "server_error", "param": null, "code": null}}).to_string(),
            retry_after: None,
        }
    }

    /// HTTP 200 whose body is not JSON.
    pub fn malformed_json() -> Self {
        Self::RawOk("{\"id\": \"chatcmpl-x\", \"choices\": [ this is not json".to_owned())
    }

    /// HTTP 200 with a valid completion envelope but no choices.
    pub fn empty_choices() -> Self {
        Self::RawOk(
            json!({"id": "chatcmpl-empty", "object": "chat.completion", "created": 0, "model": "scripted", "choices": []})
                .to_string(),
        )
    }

    /// This reply, cut off halfway through its body.
    #[must_use]
    pub fn truncated(self) -> Self {
        Self::Truncated(Box::new(self))
    }

    /// This reply, sent after `delay`.
    #[must_use]
    pub fn delayed(self, delay: Duration) -> Self {
        Self::Delayed(delay, Box::new(self))
    }

    /// This reply, sent once `gate` is open.
    #[must_use]
    pub fn gated(self, gate: &Gate) -> Self {
        Self::Gated(gate.clone(), Box::new(self))
    }

    /// Sets the reported usage of a completion reply (other replies are unchanged).
    #[must_use]
    pub fn with_usage(self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        match self {
            Self::Completion(completion) => {
                Self::Completion(completion.usage(prompt_tokens, completion_tokens))
            }
            Self::Delayed(delay, inner) => Self::Delayed(
                delay,
                Box::new(inner.with_usage(prompt_tokens, completion_tokens)),
            ),
            other => other,
        }
    }
}
