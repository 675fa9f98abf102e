//! The chat-model boundary: a [`ChatModel`] trait, OpenAI / Azure / OpenAI-compatible
//! providers over async-openai, retries, a response cache, usage and cost metering,
//! lenient tool-call recovery and the embedded local llama.cpp model.
//!
//! The only crate that talks to model servers. async-openai types never leave the
//! `openai` module; everything public is this crate's own serde types.

mod error;
mod model;
mod types;

pub use error::LlmError;
pub use model::{ChatModel, estimate_prompt_tokens};
pub use types::{
    CallStyle, ChatMessage, ChatRequest, ChatResponse, DEFAULT_CALLER, FinishReason, FunctionCall,
    FunctionSchema, Role, ToolCall, ToolChoice, ToolSchema, Usage,
};
