//! Messages agents exchange, and their OpenAI form.

use agentopt_llm::{ChatMessage, FunctionCall, Role, ToolCall};
use serde::{Deserialize, Serialize};

/// The result of one tool call, answering the `tool_calls` entry with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResponse {
    /// The id of the tool call answered.
    pub tool_call_id: String,
    /// What the function returned, or the "Error: …" text.
    pub content: String,
}

/// One message between two agents (AG2's message dict).
///
/// `role` is the author's role as the model sees it: text from a model-backed agent
/// is [`Role::Assistant`], text from any other agent [`Role::User`], function and
/// tool results [`Role::Function`] / [`Role::Tool`]. Each agent's history stores the
/// message from its own point of view (see [`Message::as_seen_by`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Author role.
    pub role: Role,
    /// Text; `None` for a message that only calls functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Speaker name, or the function name of a [`Role::Function`] result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A legacy function call requested by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// Tool calls requested by the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Results of tool calls (a [`Role::Tool`] message carries one per call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_responses: Vec<ToolResponse>,
}

impl Message {
    fn with_role(role: Role, content: Option<String>) -> Self {
        Self {
            role,
            content,
            name: None,
            function_call: None,
            tool_calls: Vec::new(),
            tool_responses: Vec::new(),
        }
    }

    /// A plain text message from a user-side agent.
    pub fn user(content: impl Into<String>) -> Self {
        Self::with_role(Role::User, Some(content.into()))
    }

    /// A plain text message from a model-backed agent.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::with_role(Role::Assistant, Some(content.into()))
    }

    /// The result of a legacy function call.
    pub fn function_result(name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::with_role(Role::Function, Some(content.into()))
        }
    }

    /// The results of a message's tool calls; `content` joins them (as AG2 does).
    pub fn tool_results(responses: Vec<ToolResponse>) -> Self {
        let joined = responses
            .iter()
            .map(|response| response.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        Self {
            tool_responses: responses,
            ..Self::with_role(Role::Tool, Some(joined))
        }
    }

    /// A model reply, as the chat model returned it.
    pub fn from_model(message: ChatMessage) -> Self {
        Self {
            role: Role::Assistant,
            content: message.content,
            name: None,
            function_call: message.function_call,
            tool_calls: message.tool_calls,
            tool_responses: Vec::new(),
        }
    }

    /// The text, or `""` when there is none.
    pub fn text(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }

    /// Whether the message asks for a function or tool call.
    pub fn requests_calls(&self) -> bool {
        self.function_call.is_some() || !self.tool_calls.is_empty()
    }

    /// This message as stored in an agent's history: what the agent itself wrote is
    /// `assistant`, what it received is `user`; function/tool results keep their role
    /// and messages with calls are always `assistant` (only those may carry calls).
    #[must_use]
    pub fn as_seen_by(&self, own: bool, speaker: &str) -> Self {
        let role = match self.role {
            Role::Function | Role::Tool | Role::System => self.role,
            _ if self.requests_calls() => Role::Assistant,
            _ if own => Role::Assistant,
            _ => Role::User,
        };
        let name = match role {
            Role::Function => self.name.clone(),
            Role::User | Role::Assistant => Some(speaker.to_owned()),
            Role::Tool | Role::System => None,
        };
        Self {
            role,
            name,
            ..self.clone()
        }
    }

    /// The OpenAI messages this history entry becomes: its tool results (one tool
    /// message each), then the message itself unless it is a tool-result message.
    pub fn to_chat_messages(&self) -> Vec<ChatMessage> {
        let mut messages: Vec<ChatMessage> = self
            .tool_responses
            .iter()
            .map(|response| ChatMessage::tool(&response.tool_call_id, &response.content))
            .collect();
        match self.role {
            Role::Tool => {}
            Role::Function => messages.push(ChatMessage::function(
                self.name.clone().unwrap_or_default(),
                self.text(),
            )),
            role => messages.push(ChatMessage {
                role,
                content: if self.requests_calls() {
                    self.content.clone()
                } else {
                    Some(self.text().to_owned())
                },
                name: self.name.clone(),
                tool_calls: self.tool_calls.clone(),
                function_call: self.function_call.clone(),
                tool_call_id: None,
            }),
        }
        messages
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::user(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::user(text)
    }
}
