//! The chat-model boundary: a [`ChatModel`] trait, OpenAI / Azure / OpenAI-compatible
//! providers over async-openai, retries, a response cache, usage and cost metering,
//! lenient tool-call recovery. The embedded local model and the choice of endpoints
//! live in `agentopt-local`.
//!
//! The only crate that talks to model servers. async-openai types never leave the
//! `openai` module; everything public is this crate's own serde types.

mod cache;
pub mod config;
mod error;
mod fallback;
mod lenient;
mod model;
mod openai;
mod retry;
mod spread;
mod types;
mod usage;

pub use cache::{CacheStats, ResponseCache};
pub use config::{ApiKey, ApiType, EndpointConfig};
pub use error::LlmError;
pub use fallback::ConfigListModel;
pub use lenient::recover_tool_calls;
pub use model::{
    ChatModel, ChatWrapper, EndpointCheck, estimate_prompt_tokens, estimate_text_tokens,
};
pub use openai::{ClientOptions, OpenAiClient};
pub use retry::RetryPolicy;
pub use spread::{Routing, SpreadModel, SpreadOptions, routed_model};
pub use types::{
    CallStyle, ChatMessage, ChatRequest, ChatResponse, DEFAULT_CALLER, FinishReason, FunctionCall,
    FunctionSchema, ResponseFormat, Role, ToolCall, ToolChoice, ToolSchema, Usage,
};
pub use usage::{
    Budget, ModelPrice, NamedPrice, PriceTable, SpendEntry, SpendEvent, SpendLedger, UsageMeter,
    UsageReport, UsageTotals,
};
