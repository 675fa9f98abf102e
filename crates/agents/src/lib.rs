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
//! #               sessions: std::sync::Arc<agentopt_sandbox::SandboxSessions>) {
//! use agentopt_agents::{AssistantAgent, UserProxyAgent};
//! let mut assistant = AssistantAgent::new("assistant", model)
//!     .with_system_message("You are a helpful assistant.");
//! let mut proxy = UserProxyAgent::new("user", sessions);
//! let transcript = proxy.initiate_chat(&mut assistant, "Print 6 * 7 in Python.").await;
//! println!("{:?} after {} messages", transcript.stop_reason, transcript.entries.len());
//! # }
//! ```
//!
//! # Composing your own user proxy
//!
//! A proxy is a [`ConversableAgent`] with its own reply chain. The building blocks
//! are the ones the built-in chain and `agentopt-mathchat`'s proxy use:
//! [`TerminationAndHuman`] (termination, auto-reply limit, human input),
//! [`execute_requested_calls`] + [`call_results`] (run the model's function/tool
//! calls and answer them on the wire), and [`code_blocks`] +
//! [`AgentState::run_cell`] (run its Python in the conversation's sandbox session).
//! This one answers calls with their results and any code with `Result: …`:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use agentopt_agents::{
//!     AgentError, AgentState, ConversableAgent, Lang, Message, ReplyFunction, TerminationAndHuman, Trigger, Turn, call_results, code_blocks,
//!     execute_requested_calls,
//! };
//! use agentopt_sandbox::ExecutorFactory;
//!
//! struct CallsThenCode;
//!
//! #[async_trait::async_trait]
//! impl ReplyFunction for CallsThenCode {
//!     fn name(&self) -> &str {
//!         "calls_then_code"
//!     }
//!
//!     async fn reply(&self, agent: &mut AgentState, sender: &str)
//!         -> Result<Option<Turn>, AgentError> {
//!         if let Some(executions) = execute_requested_calls(agent, sender).await? {
//!             let reply = call_results(&executions, |execution| execution.content.clone());
//!             return Ok(Some(Turn::Reply(reply)));
//!         }
//!         let text = agent.last_message(sender).map(|m| m.text().to_owned());
//!         let Some(blocks) = text.as_deref().and_then(code_blocks) else {
//!             return Ok(None);
//!         };
//!         let mut outputs = Vec::new();
//!         for (_, code) in blocks.into_iter().filter(|(lang, _)| *lang == Lang::Python) {
//!             let outcome = agent.run_cell(&code).await?;
//!             outputs.push(outcome.error_text().unwrap_or(outcome.stdout));
//!         }
//!         Ok(Some(Turn::Reply(Message::user(format!("Result: {}", outputs.join("\n"))))))
//!     }
//! }
//!
//! fn my_proxy(executor: Arc<dyn ExecutorFactory>) -> ConversableAgent {
//!     let mut proxy = ConversableAgent::new("checker")
//!         .with_executor(executor)
//!         .with_max_consecutive_auto_reply(10)
//!         .with_default_auto_reply("Continue.");
//!     proxy.clear_replies();
//!     proxy.register_reply(0, Trigger::Any, Arc::new(TerminationAndHuman));
//!     proxy.register_reply(1, Trigger::Any, Arc::new(CallsThenCode));
//!     proxy
//! }
//! ```

mod agent;
mod code_functions;
mod error;
mod executor;
mod functions;
mod install;
mod message;
mod replay;
mod replies;
mod transcript;

pub use agent::{
    ASSISTANT_SYSTEM_MESSAGE, AgentState, AssistantAgent, ConversableAgent,
    DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY, HumanInput, HumanInputMode, ReplyFunction,
    TerminationPredicate, Trigger, Turn, UserProxyAgent, learned_function_reply,
    strip_traceback_paths,
};
pub use agentopt_core::{FunctionSet, LearnedFunction};
pub use agentopt_math::Lang;
pub use code_functions::{FunctionStyle, code_functions_prompt};
pub use error::AgentError;
pub use functions::{
    FunctionExecution, FunctionImpl, FunctionMap, Signatures, lenient_json, parse_arguments,
    signature,
};
pub use install::{install, install_styled, register_function_pair, remove_function_pair};
pub use message::{Message, ToolResponse};
pub use replay::{Replay, ReplayFailure};
pub use replies::{TerminationAndHuman, call_results, code_blocks, execute_requested_calls};
pub use transcript::{
    CodeExecution, Execution, FailureKind, ReplyWork, StopReason, Transcript, TranscriptEntry,
    TranscriptTotals,
};
