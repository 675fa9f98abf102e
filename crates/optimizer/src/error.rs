//! The crate's single error type.

/// Everything that can go wrong in `agentopt-optimizer`. A rejected proposal from the
/// optimizer model is not an error: it is fed back to the model and reported in
/// [`crate::StepOutcome::rejected`].
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// `step()` was called with no conversation recorded for the current trial.
    #[error(
        "step() needs at least one recorded conversation for the current trial; call \
         record_one_conversation first"
    )]
    NothingRecorded,
    /// Validation mode is on but no validation outcome was recorded for the trial.
    #[error(
        "validation mode is on but no validation outcome was recorded for the current \
         trial; call record_validation_outcome first"
    )]
    NothingValidated,
    /// An option has a value the optimizer cannot work with.
    #[error("option `{option}` = {value}: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// The offending value, as text.
        value: String,
        /// Why it is unusable.
        message: String,
    },
    /// The optimizer model failed (transport, HTTP, context overflow, budget, …).
    #[error("optimizer model: {0}")]
    Model(#[from] agentopt_llm::LlmError),
    /// The sandbox used to try proposed functions failed outside a cell.
    #[error("sandbox: {0}")]
    Sandbox(#[from] agentopt_sandbox::SandboxError),
    /// Even with every conversation history left out, the prompt exceeds the budget.
    #[error(
        "the optimizer prompt needs {needed} tokens without any conversation history, \
         but the budget is {budget} tokens (context window {context_window} minus \
         {reserved} reserved for the reply, a rejected reply and its errors)"
    )]
    PromptTooLarge {
        /// Estimated tokens of the prompt without histories.
        needed: usize,
        /// The prompt budget.
        budget: usize,
        /// The model's context window.
        context_window: u32,
        /// Tokens reserved for the reply, a rejected reply and its errors.
        reserved: usize,
    },
    /// A checkpoint or artifact file could not be read or written, or is not what
    /// this build writes (the error names the file, line and version).
    #[error(transparent)]
    File(#[from] agentopt_core::CoreError),
}
