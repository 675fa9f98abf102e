//! MATH as a task of its own: the problem sets (CRAFT, Hendrycks MATH, MATH-500,
//! GSM8K) and a deterministic [`Selection`] of them, the seed notebook's
//! [`MathUserProxyAgent`] (poses a problem, runs the assistant's Python in a warm
//! sandbox session, checks its `\boxed{}` answer), and [`SandboxSymbolicChecker`],
//! which asks sympy in the sandbox about answers that need algebra.
//!
//! Built only on the public API of `agentopt-agents`: a proxy for another task is
//! composed the same way.
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn agentopt_llm::ChatModel>,
//! #               sessions: std::sync::Arc<agentopt_sandbox::SandboxSessions>)
//! #               -> Result<(), agentopt_mathchat::MathChatError> {
//! use agentopt_agents::AssistantAgent;
//! use agentopt_mathchat::{DataFormat, MATH_AGENT_NAME, MathUserProxyAgent, Selection, load};
//!
//! let problems = load("data/math-craft/algebra.jsonl".as_ref(), DataFormat::Auto)?;
//! let selection = Selection { count: Some(1), ..Selection::default() };
//! let problem = &selection.apply(problems, "test")?[0];
//! let mut assistant = AssistantAgent::new("assistant", model)
//!     .with_system_message("You are a helpful assistant.");
//! let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions);
//! let outcome = proxy.initiate_chat(&mut assistant, &problem.question, &problem.answer).await;
//! println!("correct: {}, answer: {:?}", outcome.correct, outcome.answer);
//! # Ok(())
//! # }
//! ```

mod answer_check;
mod checker;
mod data;
mod error;
mod proxy;
mod task;

pub use answer_check::{AnswerCheck, exact_match};
pub use checker::SandboxSymbolicChecker;
pub use data::{
    DataFormat, LoadOptions, Loaded, MATH_SUBJECTS, Problem, Selection, load, load_with,
    subject_key,
};
pub use error::MathChatError;
pub use proxy::{
    MATH_AGENT_NAME, MATH_DEFAULT_REPLY, MATH_MAX_CONSECUTIVE_AUTO_REPLY, MATH_PROMPT,
    MAX_FUNCTION_CALL_TRIALS, MAX_INVALID_QUERIES_PER_STEP, MAX_OUTPUT_CHARS, MathOutcome,
    MathUserProxyAgent, add_print_to_last_line, is_termination_msg_mathchat,
};
pub use task::{ASSISTANT_NAME, ASSISTANT_SYSTEM_MESSAGE, MathTask, MathTaskOptions};
