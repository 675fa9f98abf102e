//! agentopt: train LLM agents without touching model weights.
//!
//! The AgentOptimizer idea ("functions as learnable weights", ICML 2024): an assistant
//! solves training problems with a user proxy that runs its Python; an optimizer LLM
//! reads the conversations and their outcomes and adds, revises or removes the Python
//! functions the agent may call. This facade re-exports the workspace's crates.

pub use agentopt_agents as agents;
pub use agentopt_llm as llm;
pub use agentopt_local as local;
pub use agentopt_math as math;
pub use agentopt_mathchat as mathchat;
pub use agentopt_optimizer as optimizer;
pub use agentopt_sandbox as sandbox;
pub use agentopt_train as train;

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
