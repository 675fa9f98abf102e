//! The callables `step()` hands to the executor agent: each runs its own learned
//! code in an isolated sandbox worker (never `exec` in this process) and returns
//! what AG2's `execute_func` would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::{learned_function_reply, signature};
use agentopt_sandbox::{
    CallCounts, EnvironmentOptions, LearnedFunction as Function, PACKAGE_ALLOWLIST, SandboxPolicy,
    SharedSession, allowlisted_package,
};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use serde_json::{Map, Value};

use crate::errors::{config_error, core_error, raise, sandbox_error};
use crate::json::{from_json, to_json};
use crate::runtime::wait;

/// The Python options that shape a sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SandboxSettings {
    /// `function_timeout`: the limit on one call.
    pub(crate) timeout: Duration,
    /// `allow_unsandboxed`: run without namespaces where bubblewrap cannot.
    pub(crate) allow_unsandboxed: bool,
    /// `packages`: allowlisted packages installed into the sandbox's venv (outside
    /// the sandbox, which has no network) beside sympy and numpy.
    pub(crate) packages: Vec<String>,
}

impl SandboxSettings {
    /// Isolation required, no extra packages, `timeout` per call.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            allow_unsandboxed: false,
            packages: Vec::new(),
        }
    }
}

/// `packages=`, each checked against the sandbox allowlist.
pub(crate) fn checked_packages(packages: &[String]) -> PyResult<Vec<String>> {
    packages
        .iter()
        .map(|package| {
            allowlisted_package(package).map_err(|_| {
                config_error(
                    "packages",
                    Some(format!("{package:?}")),
                    format!(
                        "option `packages`: {package:?} is not on the sandbox allowlist {PACKAGE_ALLOWLIST:?}"
                    ),
                )
            })
        })
        .collect()
}

/// The one sandbox session an optimizer, trainer or function set shares with the
/// functions it hands out, under `settings`.
pub(crate) fn sandbox(settings: SandboxSettings) -> SharedSession {
    SharedSession::new(SandboxPolicy {
        cell_timeout: settings.timeout,
        allow_unsandboxed: settings.allow_unsandboxed,
        ..SandboxPolicy::default()
    })
    .with_environment(EnvironmentOptions {
        extra_packages: settings.packages,
        ..EnvironmentOptions::default()
    })
}

/// A learned function, callable as AG2's executor functions are: `f(**arguments)`
/// returns `"Result of NAME function execution:\n"` followed by what the function
/// printed and its return value (unless None); a raise, timeout or crash in the
/// sandbox raises `agentopt.errors.LearnedFunctionError("Error in executing
/// function:…")`, which AG2 turns into an "Error: …" reply to the model.
#[pyclass(frozen, module = "agentopt._agentopt")]
pub(crate) struct LearnedFunction {
    function: Arc<Function>,
    sandbox: SharedSession,
    log: UseLog,
}

/// What the callables of one set met: the calls made of each function (how a
/// trainer knows a Python task's agents used it), and sandbox failures (not the
/// learned code's own errors: AG2 turns any exception into a reply to the model, so
/// a trainer reads them here to count the attempt as an infrastructure failure, not
/// a wrong answer).
#[derive(Debug, Default)]
pub(crate) struct Uses {
    pub(crate) calls: BTreeMap<String, CallCounts>,
    pub(crate) failures: Vec<String>,
}

/// A set's [`Uses`], shared by its callables.
pub(crate) type UseLog = Arc<std::sync::Mutex<Uses>>;

/// Takes what `log` holds.
pub(crate) fn take_uses(log: &UseLog) -> Uses {
    std::mem::take(&mut *lock(log))
}

fn lock(log: &UseLog) -> std::sync::MutexGuard<'_, Uses> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LearnedFunction {
    pub(crate) fn new(function: Function, sandbox: SharedSession, log: UseLog) -> Self {
        Self {
            function: Arc::new(function),
            sandbox,
            log,
        }
    }

    /// Counts one call, and the sandbox failure that ended it, if any.
    fn count(&self, succeeded: bool, failure: Option<String>) {
        let mut uses = lock(&self.log);
        let name = &self.function.name;
        uses.calls.entry(name.clone()).or_default().add(succeeded);
        uses.failures
            .extend(failure.map(|error| format!("{name}: {error}")));
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
        .map_err(|error| {
            self.count(false, Some(error.to_string()));
            sandbox_error(error)
        })?;
        self.count(outcome.succeeded(), None);
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

    /// Its verified worked examples: dicts with `problem`, `solution`, `answer`.
    #[getter]
    fn demonstrations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let examples = serde_json::to_value(&self.function.demonstrations)
            .map_err(|error| pyo3::exceptions::PyValueError::new_err(error.to_string()))?;
        from_json(py, &examples)
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
    log: &UseLog,
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
        let callable = LearnedFunction::new(function.clone(), sandbox.clone(), Arc::clone(log));
        for_executor.set_item(&function.name, Py::new(py, callable)?)?;
    }
    PyTuple::new(py, [for_llm.into_any(), for_executor.into_any()])
}

/// A set of learned functions (a trained `functions.json`), ready to install into
/// AG2 agents; its callables run in one sandbox worker of their own.
#[pyclass(frozen, module = "agentopt._agentopt")]
pub(crate) struct FunctionSet {
    set: agentopt_core::FunctionSet,
    sandbox: SharedSession,
    log: UseLog,
}

impl FunctionSet {
    /// The functions, without their sandbox.
    pub(crate) fn inner(&self) -> &agentopt_core::FunctionSet {
        &self.set
    }

    pub(crate) fn new(set: agentopt_core::FunctionSet, sandbox: SharedSession) -> Self {
        Self {
            set,
            sandbox,
            log: UseLog::default(),
        }
    }

    /// Another handle on the same set, sandbox and log.
    pub(crate) fn clone_handle(&self) -> Self {
        Self {
            set: self.set.clone(),
            sandbox: self.sandbox.clone(),
            log: Arc::clone(&self.log),
        }
    }

    /// The log its callables write their calls and sandbox failures to.
    pub(crate) fn log(&self) -> &UseLog {
        &self.log
    }

    fn callable(&self, function: &Function) -> LearnedFunction {
        LearnedFunction::new(
            function.clone(),
            self.sandbox.clone(),
            Arc::clone(&self.log),
        )
    }
}

#[pymethods]
impl FunctionSet {
    /// Loads a function-set artifact (`functions.json` of a training run, or
    /// `AgentOptimizer.export_artifact`).
    #[classmethod]
    #[pyo3(signature = (path, *, function_timeout=600.0, allow_unsandboxed=false, packages=Vec::new()))]
    fn load(
        _class: &Bound<'_, PyType>,
        path: PathBuf,
        function_timeout: f64,
        allow_unsandboxed: bool,
        packages: Vec<String>,
    ) -> PyResult<Self> {
        let settings = SandboxSettings {
            timeout: timeout_from_seconds("function_timeout", function_timeout)?,
            allow_unsandboxed,
            packages: checked_packages(&packages)?,
        };
        let set = agentopt_core::FunctionSet::load(&path).map_err(|e| core_error(&e))?;
        Ok(Self::new(set, sandbox(settings)))
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
            .map(|function| Py::new(py, self.callable(function)))
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
            .map(|function| self.callable(function))
            .ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    /// `(register_for_llm, register_for_executor)` in `AgentOptimizer.step()`'s
    /// shapes, for agents that should hold exactly this set.
    fn registrations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        registrations(py, &[], self.set.functions(), &self.sandbox, &self.log)
    }

    fn __repr__(&self) -> String {
        format!("<agentopt.FunctionSet {:?}>", self.set.names())
    }
}
