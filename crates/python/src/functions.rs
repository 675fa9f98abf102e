//! The callables `step()` hands to the executor agent: each runs its own learned
//! code in an isolated sandbox worker (never `exec` in this process) and returns
//! what AG2's `execute_func` would.

use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::learned_function_reply;
use agentopt_sandbox::{
    CellOutcome, Executor, LearnedFunction as Function, Protections, PythonEnvironment,
    PythonSession, SandboxError, SandboxPolicy,
};
use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::errors::{raise, sandbox_error};
use crate::json::{from_json, to_json};
use crate::runtime::wait;

/// One warm sandbox worker, started on first use, shared by an optimizer (which
/// tries proposed functions in it) and the functions it hands out. Each learned
/// function call runs in a fresh namespace, so sharing leaks no state between them.
pub(crate) struct Sandbox {
    policy: SandboxPolicy,
    session: Mutex<Option<PythonSession>>,
}

impl Sandbox {
    /// A sandbox with the default policy, `timeout` per call, and isolation required
    /// unless `allow_unsandboxed`.
    pub(crate) fn new(timeout: Duration, allow_unsandboxed: bool) -> Self {
        Self {
            policy: SandboxPolicy {
                cell_timeout: timeout,
                allow_unsandboxed,
                ..SandboxPolicy::default()
            },
            session: Mutex::new(None),
        }
    }

    /// Runs `request` on the worker. The session is taken out of its slot for the
    /// request and put back after, so a request abandoned halfway (Ctrl-C) drops
    /// the worker with it instead of leaving an unread reply in its pipe.
    async fn with_session<T>(
        &self,
        request: impl AsyncFnOnce(&mut PythonSession) -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let mut slot = self.session.lock().await;
        let mut session = match slot.take() {
            Some(session) => session,
            None => {
                // Creating the venv (first use on a machine) runs pip: blocking.
                let environment = tokio::task::spawn_blocking(PythonEnvironment::ensure)
                    .await
                    .map_err(|error| SandboxError::WorkerStart {
                        detail: format!("preparing the Python environment: {error}"),
                        stderr: String::new(),
                    })??;
                PythonSession::start(&environment, &self.policy).await?
            }
        };
        let result = request(&mut session).await;
        *slot = Some(session);
        result
    }
}

/// The optimizer's view of a shared [`Sandbox`].
pub(crate) struct SharedSandbox(pub(crate) Arc<Sandbox>);

#[async_trait]
impl Executor for SharedSandbox {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        self.0
            .with_session(async |session| session.run_cell(code).await)
            .await
    }

    async fn call_function(
        &mut self,
        function: &Function,
        arguments: &Map<String, Value>,
    ) -> Result<CellOutcome, SandboxError> {
        self.0
            .with_session(async |session| session.call_function(function, arguments).await)
            .await
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        self.0
            .with_session(async |session| session.restart().await)
            .await
    }

    fn protections(&self) -> Protections {
        // A worker is only started by a request; before that nothing protects
        // anything yet, which the empty report says.
        self.0
            .session
            .try_lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(|session| session.protections().clone()))
            .unwrap_or_default()
    }
}

/// A learned function, callable as AG2's executor functions are: `f(**arguments)`
/// returns `"Result of NAME function execution:\n"` followed by what the function
/// printed and its return value (unless None); a raise, timeout or crash in the
/// sandbox raises `agentopt.errors.LearnedFunctionError("Error in executing
/// function:…")`, which AG2 turns into an "Error: …" reply to the model.
#[pyclass(frozen, module = "agentopt")]
pub(crate) struct LearnedFunction {
    function: Arc<Function>,
    sandbox: Arc<Sandbox>,
}

impl LearnedFunction {
    pub(crate) fn new(function: Function, sandbox: Arc<Sandbox>) -> Self {
        Self {
            function: Arc::new(function),
            sandbox,
        }
    }
}

#[pymethods]
impl LearnedFunction {
    /// Runs the function in the sandbox with these keyword arguments.
    #[pyo3(signature = (**arguments))]
    fn __call__(&self, py: Python<'_>, arguments: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
        let arguments = match arguments {
            Some(arguments) => match to_json(arguments.as_any())? {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        let sandbox = Arc::clone(&self.sandbox);
        let function = Arc::clone(&self.function);
        let outcome = wait(py, move || async move {
            sandbox
                .with_session(async |session| session.call_function(&function, &arguments).await)
                .await
        })?
        .map_err(sandbox_error)?;
        learned_function_reply(&self.function.name, &outcome).map_err(|error| {
            raise(
                "LearnedFunctionError",
                format!("Error in executing function:{error}"),
                None,
                None,
            )
        })
    }

    /// The function's name.
    #[getter]
    fn name(&self) -> &str {
        &self.function.name
    }

    /// What the function does, as the assistant model is told.
    #[getter]
    fn description(&self) -> &str {
        &self.function.description
    }

    /// The JSON schema of the arguments (`{"type": "object", "properties": …}`).
    #[getter]
    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.function.parameters)
    }

    /// Allowlisted packages the code imports.
    #[getter]
    fn packages(&self) -> Vec<String> {
        self.function.packages.clone()
    }

    /// The Python source defining the function.
    #[getter]
    fn code(&self) -> &str {
        &self.function.code
    }

    fn __repr__(&self) -> String {
        format!(
            "<agentopt.LearnedFunction {} (sandboxed)>",
            self.function.name
        )
    }
}
