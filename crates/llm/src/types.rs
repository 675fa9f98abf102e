//! Provider-neutral chat types: the boundary every other crate sees.
//!
//! Field names follow the OpenAI wire format (and AG2's message dicts) so that the
//! serde form of a [`ChatMessage`] reads like the JSON an AG2 user knows.

use serde::{Deserialize, Serialize};

use crate::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human (or user proxy) side.
    User,
    /// The model's own turns.
    Assistant,
    /// A tool result answering a `tool_calls` entry (matched by `tool_call_id`).
    Tool,
    /// A legacy function result answering a `function_call` (matched by `name`).
    Function,
}

/// A function invocation requested by the model: its name and its arguments as the
/// raw JSON text the model wrote (which may be invalid JSON; see
/// [`FunctionCall::parse_arguments`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Name of the function to call.
    pub name: String,
    /// Arguments as raw JSON text, exactly as the model produced them.
    pub arguments: String,
}

impl FunctionCall {
    /// Parses [`Self::arguments`] as a JSON object; an empty string counts as `{}`.
    ///
    /// # Errors
    /// [`LlmError::InvalidToolArguments`] naming the function and keeping the raw text
    /// when the arguments are not a JSON object.
    pub fn parse_arguments(&self) -> Result<serde_json::Map<String, serde_json::Value>, LlmError> {
        let invalid = |message: String| LlmError::InvalidToolArguments {
            function: self.name.clone(),
            arguments: self.arguments.clone(),
            message,
        };
        if self.arguments.trim().is_empty() {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_str::<serde_json::Value>(&self.arguments) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(other) => Err(invalid(format!("expected a JSON object, got {other}"))),
            Err(error) => Err(invalid(error.to_string())),
        }
    }
}

/// One entry of an assistant message's `tool_calls`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolCall {
    /// Identifier the tool result must echo in `tool_call_id`.
    pub id: String,
    /// The function to call.
    pub function: FunctionCall,
}

/// One chat message, in any role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Text content; `None` for an assistant turn that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Speaker name (user/assistant/system) or function name (function role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls requested by an assistant message (`tools` style).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Function call requested by an assistant message (legacy `functions` style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// For a tool-role message: the id of the tool call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn with_role(role: Role, content: Option<String>) -> Self {
        Self {
            role,
            content,
            name: None,
            tool_calls: Vec::new(),
            function_call: None,
            tool_call_id: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::with_role(Role::System, Some(content.into()))
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::with_role(Role::User, Some(content.into()))
    }

    /// A plain-text assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::with_role(Role::Assistant, Some(content.into()))
    }

    /// An assistant message that requests tool calls (no text).
    pub fn assistant_tool_calls(tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::with_role(Role::Assistant, None)
        }
    }

    /// An assistant message that requests a legacy function call (no text).
    pub fn assistant_function_call(call: FunctionCall) -> Self {
        Self {
            function_call: Some(call),
            ..Self::with_role(Role::Assistant, None)
        }
    }

    /// A tool result answering the tool call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::with_role(Role::Tool, Some(content.into()))
        }
    }

    /// A legacy function result for the function `name`.
    pub fn function(name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::with_role(Role::Function, Some(content.into()))
        }
    }

    /// Sets the speaker name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Every call this message requests, in either style: `tool_calls` entries with
    /// their ids, then the legacy `function_call` with no id.
    pub fn requested_calls(&self) -> Vec<(Option<&str>, &FunctionCall)> {
        self.tool_calls
            .iter()
            .map(|call| (Some(call.id.as_str()), &call.function))
            .chain(self.function_call.iter().map(|call| (None, call)))
            .collect()
    }
}

/// The description of a function the model may call: name, description and a
/// JSON-Schema object for its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSchema {
    /// Function name (what the model writes in a call).
    pub name: String,
    /// What the function does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    pub parameters: serde_json::Value,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// A tool offered to the model; serialized as `{"type": "function", "function": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToolSchema {
    /// A callable function.
    Function {
        /// The function's schema.
        function: FunctionSchema,
    },
}

impl ToolSchema {
    /// The function behind this tool.
    pub fn function(&self) -> &FunctionSchema {
        match self {
            Self::Function { function } => function,
        }
    }
}

impl From<FunctionSchema> for ToolSchema {
    fn from(function: FunctionSchema) -> Self {
        Self::Function { function }
    }
}

/// How offered tools go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStyle {
    /// Modern `tools` / `tool_choice`; replies carry `tool_calls`.
    #[default]
    Tools,
    /// Legacy `functions` / `function_call`; replies carry `function_call`.
    Functions,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call some tool (mapped to `auto` in the legacy style, which
    /// has no such mode).
    Required,
    /// The model must call this function.
    Function(String),
}

/// A constraint on the shape of the reply's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object (OpenAI's "JSON mode").
    JsonObject,
    /// A JSON value matching `schema` (OpenAI's Structured Outputs; llama.cpp turns
    /// the schema into a sampling grammar, so even small models comply).
    JsonSchema {
        /// Name of the format (`a-z`, `A-Z`, `0-9`, `_`, `-`; at most 64).
        name: String,
        /// The JSON Schema the reply must match.
        schema: serde_json::Value,
    },
}

/// A chat completion request in provider-neutral form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Tools offered to the model (empty: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSchema>,
    /// Overrides the endpoint's call style for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_style: Option<CallStyle>,
    /// Tool choice; `None` leaves the server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Constrains the reply's text; `None`: free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed (honoured by OpenAI and llama.cpp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Overrides the endpoint's model name for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Who is asking ("assistant", "optimizer", …), for usage accounting only: it never
    /// reaches the server and is not part of the cache key.
    #[serde(default = "default_caller")]
    pub caller: String,
}

/// Caller label used when a request names none.
pub const DEFAULT_CALLER: &str = "default";

fn default_caller() -> String {
    DEFAULT_CALLER.to_owned()
}

impl ChatRequest {
    /// A request with these messages and default options.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            tools: Vec::new(),
            call_style: None,
            tool_choice: None,
            response_format: None,
            temperature: None,
            max_tokens: None,
            seed: None,
            stop: Vec::new(),
            model: None,
            caller: default_caller(),
        }
    }

    /// Sets the caller label used for usage accounting.
    #[must_use]
    pub fn with_caller(mut self, caller: impl Into<String>) -> Self {
        self.caller = caller.into();
        self
    }

    /// Offers these tools.
    #[must_use]
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = ToolSchema>) -> Self {
        self.tools = tools.into_iter().collect();
        self
    }

    /// Sets the sampling temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the generated-token limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the sampling seed.
    #[must_use]
    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Forces the call style for this request.
    #[must_use]
    pub fn with_call_style(mut self, style: CallStyle) -> Self {
        self.call_style = Some(style);
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Constrains the reply's text.
    #[must_use]
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Hit `max_tokens` or the context window.
    Length,
    /// The model requested tool calls.
    ToolCalls,
    /// The model requested a legacy function call.
    FunctionCall,
    /// Output withheld by a content filter.
    ContentFilter,
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A chat completion reply in provider-neutral form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant message (first choice).
    pub message: ChatMessage,
    /// Why generation stopped, when the server said.
    pub finish_reason: Option<FinishReason>,
    /// Token usage reported by the server (zero when it reported none).
    pub usage: Usage,
    /// Model name the server reported.
    pub model: String,
    /// Whether this reply came from the response cache (no tokens spent).
    #[serde(default)]
    pub cached: bool,
    /// The endpoint that answered, as [`crate::EndpointConfig::label`] writes it;
    /// behind a [`crate::ConfigListModel`], the entry of the list that answered.
    /// Not stored in the response cache: a cache hit names the endpoint it was
    /// asked through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}
