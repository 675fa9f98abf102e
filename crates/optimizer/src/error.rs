//! The crate's single error type.

use std::path::PathBuf;

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
    /// A checkpoint or artifact file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint or artifact file is not the JSON we wrote.
    #[error("{path}:{line}:{column}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when not a syntax error).
        line: usize,
        /// 1-based column of the problem (0 when not a syntax error).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint or artifact file has a format version this build cannot read.
    #[error("{path}: format `{format}` version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The format name found in the file.
        format: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A function in a loaded artifact does not pass the static checks.
    #[error("{path}: function `{name}`: {message}")]
    InvalidArtifactFunction {
        /// The artifact file.
        path: PathBuf,
        /// The function's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

impl OptimizerError {
    pub(crate) fn format(path: &std::path::Path, error: &serde_json::Error) -> Self {
        Self::Format {
            path: path.to_path_buf(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        }
    }
}
