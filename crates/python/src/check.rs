//! `agentopt.check_sandbox()`: starts a sandbox worker the way a run would and says
//! what isolation it got, or why none, and what to install or enable.

use std::path::Path;
use std::time::Duration;

use agentopt_sandbox::{Executor, SandboxError};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::functions::{SandboxSettings, sandbox};
use crate::json::from_json;
use crate::runtime::wait;

/// What to do about a missing piece, by what [`on_path`] and the kernel say.
fn advice() -> Vec<String> {
    let mut advice = Vec::new();
    if !on_path("bwrap") {
        advice.push(
            "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install bubblewrap)"
                .to_owned(),
        );
    }
    let knob = Path::new("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    if std::fs::read_to_string(knob).is_ok_and(|value| value.trim() == "1") {
        advice.push(
            "allow unprivileged user namespaces: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
                .to_owned(),
        );
    }
    if std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|value| value.trim() == "0")
    {
        advice.push(
            "enable user namespaces: sudo sysctl -w user.max_user_namespaces=15000".to_owned(),
        );
    }
    advice
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The report of one trial start.
fn report(outcome: Result<agentopt_sandbox::Protections, SandboxError>) -> Value {
    let advice = advice();
    match outcome {
        Ok(protections) => json!({
            "isolated": protections.is_fully_isolated(),
            "protections": protections,
            "problem": Value::Null,
            "advice": advice,
        }),
        Err(error) => {
            let mut advice = advice;
            if matches!(
                error,
                SandboxError::PythonNotFound { .. } | SandboxError::SetupCommand { .. }
            ) {
                advice.push(
                    "the first run builds a venv with sympy and numpy from PyPI: Python's venv module \
                     (Debian/Ubuntu: python3-venv) and network access are needed once"
                        .to_owned(),
                );
            }
            if matches!(error, SandboxError::IsolationUnavailable { .. }) {
                advice.push(
                    "or pass allow_unsandboxed=True to run learned code with rlimits, Landlock and seccomp only"
                        .to_owned(),
                );
            }
            json!({
                "isolated": false,
                "protections": Value::Null,
                "problem": error.to_string(),
                "advice": advice,
            })
        }
    }
}

/// `check_sandbox(allow_unsandboxed=False)`: a dict with `isolated` (every layer
/// active), `protections` (what the worker has), `problem` (why it did not start)
/// and `advice` (what to install or enable).
#[pyfunction]
#[pyo3(signature = (allow_unsandboxed=false))]
pub(crate) fn check_sandbox(py: Python<'_>, allow_unsandboxed: bool) -> PyResult<Py<PyAny>> {
    let mut executor = sandbox(SandboxSettings {
        allow_unsandboxed,
        ..SandboxSettings::new(Duration::from_secs(60))
    });
    let outcome = wait(py, move || async move {
        executor.run_cell("print(1)").await?;
        Ok::<_, SandboxError>(executor.protections())
    })?;
    Ok(from_json(py, &report(outcome))?.unbind())
}
