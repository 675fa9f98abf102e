//! The callables `step()` hands to the executor agent: each runs its own learned
//! code in an isolated sandbox worker (never `exec` in this process) and returns
//! what AG2's `execute_func` would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::{learned_function_reply, signature};
use agentopt_sandbox::{LearnedFunction as Function, SandboxPolicy, SharedSession};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use serde_json::{Map, Value};

use crate::errors::{config_error, core_error, raise, sandbox_error};
use crate::json::{from_json, to_json};
use crate::runtime::wait;

/// The one sandbox session an optimizer or function set shares with the functions
/// it hands out: the default policy, `timeout` per call, and isolation required
/// unless `allow_unsandboxed`.
pub(crate) fn sandbox(timeout: Duration, allow_unsandboxed: bool) -> SharedSession {
    SharedSession::new(SandboxPolicy {
        cell_timeout: timeout,
        allow_unsandboxed,
        ..SandboxPolicy::default()
    })
}

/// A learned function, callable as AG2's executor functions are: `f(**arguments)`
/// returns `"Result of NAME function execution:\n"` followed by what the function
/// printed and its return value (unless None); a raise, timeout or crash in the
/// sandbox raises `agentopt.errors.LearnedFunctionError("Error in executing
/// function:…")`, which AG2 turns into an "Error: …" reply to the model.
#[pyclass(frozen, module = "agentopt")]
pub(crate) struct LearnedFunction {
    function: Arc<Function>,
    sandbox: SharedSession,
}

impl LearnedFunction {
    pub(crate) fn new(function: Function, sandbox: SharedSession) -> Self {
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
        let sandbox = self.sandbox.clone();
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

/// `seconds` as a per-call timeout; `option` names it in the error.
pub(crate) fn timeout_from_seconds(option: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| {
            config_error(
                option,
                Some(seconds.to_string()),
                format!("option `{option}`: expected a positive number of seconds"),
            )
        })
}

/// `(register_for_llm, register_for_executor)` in AG2's shapes for `removed` names
/// and the `functions` in force, their callables running in `sandbox`.
pub(crate) fn registrations<'py>(
    py: Python<'py>,
    removed: &[String],
    functions: &[Function],
    sandbox: &SharedSession,
) -> PyResult<Bound<'py, PyTuple>> {
    let for_llm = PyList::empty(py);
    let for_executor = PyDict::new(py);
    for name in removed {
        // The name itself: AG2's `update_function_signature(is_remove=True)`
        // compares it with each function's name (AG2's optimizer passed
        // `{"name": NAME}`, so its removals never happened).
        let item = PyDict::new(py);
        item.set_item("func_sig", name)?;
        item.set_item("is_remove", true)?;
        for_llm.append(item)?;
        for_executor.set_item(name, py.None())?;
    }
    for function in functions {
        let item = PyDict::new(py);
        let signature = serde_json::to_value(signature(function)).unwrap_or_default();
        item.set_item("func_sig", from_json(py, &signature)?)?;
        item.set_item("is_remove", false)?;
        for_llm.append(item)?;
        let callable = LearnedFunction::new(function.clone(), sandbox.clone());
        for_executor.set_item(&function.name, Py::new(py, callable)?)?;
    }
    PyTuple::new(py, [for_llm.into_any(), for_executor.into_any()])
}

/// A set of learned functions (a trained `functions.json`), ready to install into
/// AG2 agents; its callables run in one sandbox worker of their own.
#[pyclass(frozen, module = "agentopt")]
pub(crate) struct FunctionSet {
    set: agentopt_core::FunctionSet,
    sandbox: SharedSession,
}

impl FunctionSet {
    pub(crate) fn new(set: agentopt_core::FunctionSet, sandbox: SharedSession) -> Self {
        Self { set, sandbox }
    }
}

#[pymethods]
impl FunctionSet {
    /// Loads a function-set artifact (`functions.json` of a training run, or
    /// `AgentOptimizer.export_artifact`).
    #[classmethod]
    #[pyo3(signature = (path, *, function_timeout=5.0, allow_unsandboxed=false))]
    fn load(
        _class: &Bound<'_, PyType>,
        path: PathBuf,
        function_timeout: f64,
        allow_unsandboxed: bool,
    ) -> PyResult<Self> {
        let timeout = timeout_from_seconds("function_timeout", function_timeout)?;
        let set = agentopt_core::FunctionSet::load(&path).map_err(|e| core_error(&e))?;
        Ok(Self::new(set, sandbox(timeout, allow_unsandboxed)))
    }

    /// Writes the set as an artifact.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.set.save(&path).map_err(|e| core_error(&e))
    }

    /// The functions' names, in order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.set.names().into_iter().map(str::to_owned).collect()
    }

    /// The functions, as sandboxed callables.
    #[getter]
    fn functions(&self, py: Python<'_>) -> PyResult<Vec<Py<LearnedFunction>>> {
        self.set
            .functions()
            .iter()
            .map(|function| {
                Py::new(
                    py,
                    LearnedFunction::new(function.clone(), self.sandbox.clone()),
                )
            })
            .collect()
    }

    fn __len__(&self) -> usize {
        self.set.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.set.get(name).is_some()
    }

    fn __getitem__(&self, name: &str) -> PyResult<LearnedFunction> {
        self.set
            .get(name)
            .map(|function| LearnedFunction::new(function.clone(), self.sandbox.clone()))
            .ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    /// `(register_for_llm, register_for_executor)` in `AgentOptimizer.step()`'s
    /// shapes, for agents that should hold exactly this set.
    fn registrations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        registrations(py, &[], self.set.functions(), &self.sandbox)
    }

    /// Installs the set into AG2 agents: every signature into `assistant`
    /// (`update_function_signature`), every callable into `executor`
    /// (`register_function`; the assistant itself when no executor is given).
    #[pyo3(signature = (assistant, executor=None))]
    fn install(
        &self,
        py: Python<'_>,
        assistant: &Bound<'_, PyAny>,
        executor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let lists = registrations(py, &[], self.set.functions(), &self.sandbox)?;
        for item in lists.get_item(0)?.try_iter()? {
            let item = item?;
            assistant.call_method(
                "update_function_signature",
                (),
                Some(item.cast::<PyDict>()?),
            )?;
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("function_map", lists.get_item(1)?)?;
        executor
            .unwrap_or(assistant)
            .call_method("register_function", (), Some(&kwargs))?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<agentopt.FunctionSet {:?}>", self.set.names())
    }
}
