//! Conversable agents in the style of AG2: a reply-function chain, termination and
//! auto-reply limits, human input, per-peer histories, function calling (tools and
//! legacy `function_call`) with a two-sided function registry, code execution in a
//! sandbox session, JSON transcripts — and the seed notebook's
//! [`MathUserProxyAgent`].
//!
//! Each conversation owns its agents and (lazily, on the first code) one executor
//! session; only the chat-model client (with its cache and usage meter) is shared,
//! so many conversations run concurrently without seeing each other.
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn agentopt_llm::ChatModel>,
//! #               sessions: std::sync::Arc<agentopt_agents::SandboxSessions>) {
//! use agentopt_agents::{AssistantAgent, MathUserProxyAgent, MATH_AGENT_NAME};
//! let mut assistant = AssistantAgent::new("assistant", model)
//!     .with_system_message("You are a helpful assistant.");
//! let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions);
//! let outcome = proxy.initiate_chat(&mut assistant, "What is 6 * 7?", "42").await;
//! println!("correct: {}, answer: {:?}", outcome.correct, outcome.answer);
//! # }
//! ```

mod agent;
mod error;
mod executor;
mod functions;
mod install;
mod math_proxy;
mod message;
mod replies;
mod symbolic;
mod transcript;

pub use agent::{
    ASSISTANT_SYSTEM_MESSAGE, AgentState, AssistantAgent, ConversableAgent,
    DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY, HumanInput, HumanInputMode, ReplyFunction, StdinInput,
    TerminationPredicate, Trigger, Turn, UserProxyAgent, content_is_terminate,
    learned_function_reply, strip_traceback_paths,
};
pub use agentopt_core::{FunctionDiff, FunctionSet, LearnedFunction};
pub use error::AgentError;
pub use executor::{ExecutorFactory, SandboxSessions};
pub use functions::{
    FunctionExecution, FunctionImpl, FunctionMap, RustFunction, Signatures, lenient_json,
    parse_arguments, signature,
};
pub use install::{apply_diff, install, register_function_pair, remove_function_pair};
pub use math_proxy::{
    MATH_AGENT_NAME, MATH_DEFAULT_REPLY, MATH_MAX_CONSECUTIVE_AUTO_REPLY, MATH_PROMPT,
    MAX_FUNCTION_CALL_TRIALS, MAX_INVALID_QUERIES_PER_STEP, MAX_OUTPUT_CHARS, MathOutcome,
    MathUserProxyAgent, add_print_to_last_line, is_termination_msg_mathchat,
};
pub use message::{Message, ToolResponse};
pub use symbolic::SandboxSymbolicChecker;
pub use transcript::{
    CodeExecution, Execution, FailureKind, ReplyWork, StopReason, Transcript, TranscriptEntry,
    TranscriptTotals,
};
