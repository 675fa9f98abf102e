//! Rust errors → the exception classes of `agentopt.errors` (defined in Python so
//! `ConfigError` can also be a `ValueError`). Each carries the Rust error's message
//! and, where the error names one, the offending `field` and `value`.

use agentopt_core::{CoreError, IoError};
use agentopt_llm::LlmError;
use agentopt_optimizer::OptimizerError;
use agentopt_sandbox::SandboxError;
use agentopt_train::TrainError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// An exception of class `class` from `agentopt.errors`.
pub(crate) fn raise(
    class: &str,
    message: String,
    field: Option<String>,
    value: Option<String>,
) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let kwargs = PyDict::new(py);
            kwargs.set_item("field", field)?;
            kwargs.set_item("value", value)?;
            let instance = py
                .import("agentopt.errors")?
                .getattr(class)?
                .call((message,), Some(&kwargs))?;
            Ok(PyErr::from_value(instance))
        };
        build().unwrap_or_else(|import_failed| import_failed)
    })
}

/// A `ConfigError` (also a `ValueError`) naming the field and its value.
pub(crate) fn config_error(
    field: &str,
    value: Option<String>,
    message: impl Into<String>,
) -> PyErr {
    raise("ConfigError", message.into(), Some(field.to_owned()), value)
}

/// A model-side failure; configuration problems become `ConfigError`.
pub(crate) fn llm_error(error: LlmError) -> PyErr {
    match &error {
        LlmError::Config { field, .. } => {
            raise("ConfigError", error.to_string(), Some(field.clone()), None)
        }
        LlmError::ConfigSyntax { .. }
        | LlmError::ConfigRead { .. }
        | LlmError::NoMatchingEndpoint { .. } => {
            raise("ConfigError", error.to_string(), None, None)
        }
        _ => raise("ModelError", error.to_string(), None, None),
    }
}

/// A sandbox failure outside the learned code itself (start, protocol, setup).
/// A missing isolation names what to install and the Python keyword that opts out.
pub(crate) fn sandbox_error(error: SandboxError) -> PyErr {
    let message = match &error {
        SandboxError::IsolationUnavailable { reason } => format!(
            "no sandbox isolation is available ({reason}); refusing to run LLM-written code. \
             Install bubblewrap and allow unprivileged user namespaces \
             (agentopt.check_sandbox() says what is missing here), or pass \
             allow_unsandboxed=True to run it with rlimits, Landlock and seccomp only"
        ),
        SandboxError::PackageNotAllowed { package } => format!(
            "package `{package}` is not on the sandbox allowlist {:?} (packages=)",
            agentopt_sandbox::PACKAGE_ALLOWLIST
        ),
        _ => error.to_string(),
    };
    raise("SandboxError", message, None, None)
}

/// An optimizer failure, by kind: options → `ConfigError`, model → `ModelError`,
/// sandbox → `SandboxError`, checkpoint and artifact files → `CheckpointError`,
/// the rest (nothing recorded, prompt too large) → `OptimizerError`.
pub(crate) fn optimizer_error(error: OptimizerError) -> PyErr {
    let message = error.to_string();
    match error {
        OptimizerError::InvalidOption { option, value, .. } => {
            raise("ConfigError", message, Some(option.to_owned()), Some(value))
        }
        OptimizerError::Model(inner) => llm_error(inner),
        OptimizerError::Sandbox(inner) => sandbox_error(inner),
        OptimizerError::File(inner) => {
            let (CoreError::Io(IoError { path, .. })
            | CoreError::Format { path, .. }
            | CoreError::UnsupportedVersion { path, .. }
            | CoreError::InvalidFunction { path, .. }) = &inner;
            raise(
                "CheckpointError",
                message,
                None,
                Some(path.display().to_string()),
            )
        }
        _ => raise("OptimizerError", message, None, None),
    }
}

/// A run, checkpoint or artifact file error: `CheckpointError` with the path as
/// `value`.
pub(crate) fn core_error(error: &CoreError) -> PyErr {
    let (CoreError::Io(IoError { path, .. })
    | CoreError::Format { path, .. }
    | CoreError::UnsupportedVersion { path, .. }
    | CoreError::InvalidFunction { path, .. }) = error;
    raise(
        "CheckpointError",
        error.to_string(),
        None,
        Some(path.display().to_string()),
    )
}

/// A training run's failure: bad options and problem ids → `ConfigError`, run files
/// (and a run directory holding other problems or in use by another process) →
/// `CheckpointError`, the rest by their source.
pub(crate) fn train_error(error: TrainError) -> PyErr {
    let message = error.to_string();
    match error {
        TrainError::File(inner) => core_error(&inner),
        TrainError::Preflight(_) => raise("ModelError", message, None, None),
        TrainError::Plot(_) => raise("AgentOptError", message, None, None),
        TrainError::Optimizer(inner) => optimizer_error(inner),
        TrainError::Sandbox(inner) => sandbox_error(inner),
        TrainError::InvalidOption { option, value, .. } => {
            raise("ConfigError", message, Some(option.to_owned()), Some(value))
        }
        TrainError::DuplicateProblemId { set, id, .. } => {
            raise("ConfigError", message, Some(set.to_owned()), Some(id))
        }
        TrainError::TestProblemInTraining { test_id, .. } => raise(
            "ConfigError",
            message,
            Some("test".to_owned()),
            Some(test_id),
        ),
        TrainError::ProblemChanged { path, .. } | TrainError::RunDirInUse { path, .. } => raise(
            "CheckpointError",
            message,
            None,
            Some(path.display().to_string()),
        ),
    }
}
