//! Conversable agents in the style of AG2: a reply-function chain, termination and
//! auto-reply limits, human input, per-peer histories, function calling (tools and
//! legacy `function_call`) with a two-sided function registry, code execution in a
//! sandbox session, JSON transcripts. The reply functions a user proxy is made of
//! ([`TerminationAndHuman`], [`execute_requested_calls`], [`call_results`],
//! [`code_blocks`]) are public, so a task-specific proxy (the MATH one lives in
//! `agentopt-mathchat`) is composed from them.
//!
//! Each conversation owns its agents and (lazily, on the first code) one executor
//! session; only the chat-model client (with its cache and usage meter) is shared,
//! so many conversations run concurrently without seeing each other.
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn agentopt_llm::ChatModel>,
//! #               sessions: std::sync::Arc<agentopt_agents::SandboxSessions>) {
//! use agentopt_agents::{AssistantAgent, UserProxyAgent};
//! let mut assistant = AssistantAgent::new("assistant", model)
//!     .with_system_message("You are a helpful assistant.");
//! let mut proxy = UserProxyAgent::new("user", sessions);
//! let transcript = proxy.initiate_chat(&mut assistant, "Print 6 * 7 in Python.").await;
//! println!("{:?} after {} messages", transcript.stop_reason, transcript.entries.len());
//! # }
//! ```

mod agent;
mod error;
mod executor;
mod functions;
mod message;
mod replies;
mod transcript;

pub use agent::{
    ASSISTANT_SYSTEM_MESSAGE, AgentState, AssistantAgent, ConversableAgent,
    DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY, FunctionUpdate, HumanInput, HumanInputMode, ReplyFunction,
    StdinInput, TerminationPredicate, Trigger, Turn, UserProxyAgent, apply_function_update,
    content_is_terminate, strip_traceback_paths,
};
pub use error::AgentError;
pub use executor::{ExecutorFactory, SandboxSessions};
pub use functions::{
    FunctionExecution, FunctionImpl, FunctionMap, PythonFunction, RustFunction, SignatureUpdate,
    Signatures, lenient_json, parse_arguments,
};
pub use message::{Message, ToolResponse};
pub use replies::{TerminationAndHuman, call_results, code_blocks, execute_requested_calls};
pub use transcript::{
    CodeExecution, Execution, ReplyWork, StopReason, Transcript, TranscriptEntry, TranscriptTotals,
};
