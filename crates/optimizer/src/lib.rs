//! AgentOptimizer: an optimizer LLM reads conversations and their outcomes and adds,
//! revises or removes the Python functions an agent may call, with roll-back to the
//! best function set and early stop.
//!
//! Reproduces AG2's `AgentOptimizer` (prompt sections, the three tools, roll-back with
//! a failure experience) and goes beyond it: every proposed function is validated
//! (identifier, `def name(...)`, schema matching the parameters, allowlisted packages,
//! one sandboxed run) with errors fed back to the model; the prompt stays inside the
//! model's context window at any epoch; training can stop early or decide on a
//! held-out validation batch; the whole state is checkpointed after every change; the
//! trained set exports to a portable JSON artifact.

mod action;
mod checkpoint;
mod error;
mod function;
mod names;
mod optimizer;
mod partition;
mod prompt;
mod state;
mod stats;
mod stdlib;

pub use action::Action;
pub use agentopt_core::{FunctionDiff, FunctionSet, LearnedFunction, Provenance};
pub use error::OptimizerError;
pub use function::check_function;
pub use optimizer::{
    AgentOptimizer, MAX_RETRIES_LIMIT, OptimizerOptions, RejectedProposal, StepOutcome,
    ValidationOptions,
};
pub use partition::{PartitionReport, Partitioning};
pub use prompt::{
    ADD_FUNCTION, ActionFormat, JSON_PARAMETERS_FIELD, PromptExample, PromptReport,
    REMOVE_FUNCTION, REVISE_FUNCTION, TERMINATE_ACTION, action_schema, optimizer_tools,
};
pub use state::{FailedTrial, RecordedConversation};
pub use stats::{
    Interval, PairedComparison, PairedCounts, Z_95, binomial_upper_tail, wilson_interval,
};
