//! `agentopt.Trainer` and `agentopt.TrainingReport`: agentopt-train's `Trainer` over
//! a task written in Python (an object with `attempt(problem, functions)`, or that
//! callable itself), with progress events sent to a Python callback.

use std::path::PathBuf;
use std::sync::Arc;

use agentopt_llm::ChatMessage;
use agentopt_sandbox::SharedSession;
use agentopt_train::{
    Attempt, Event, FailureKind, InfraError, Observer, Outcome, Problems, Setup, Task,
    TrainerOptions,
};
use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt};
use serde_json::{Value, json};

use crate::client::{ModelClient, usage_summary};
use crate::errors::{config_error, raise, train_error};
use crate::functions::{FunctionSet, Uses, sandbox, take_uses};
use crate::json::from_json;
use crate::optimizer::{DEFAULT_OPTIMIZER_MODEL, history_messages, model_client};
use crate::runtime::wait;

/// One problem: the Python object and its id.
struct PyProblem {
    id: String,
    /// `task.problem_text(problem)`, when the task has it: what retrieval matches
    /// and the test-set overlap check compares.
    text: Option<String>,
    /// `task.reference_answer(problem)`, when the task has it: what bootstrapped
    /// worked examples are checked against.
    reference: Option<String>,
    value: Arc<Py<PyAny>>,
}

/// The Python task behind agentopt-train's `Task`.
struct PythonTask {
    task: Arc<Py<PyAny>>,
    sandbox: SharedSession,
    /// The task has `attempt_calling`, so a call can be forced.
    forces_calls: bool,
}

/// An attempt the task could not judge: not training signal, run again on resume.
fn infrastructure(message: String) -> Attempt {
    Attempt::new(
        Outcome::Infrastructure(InfraError::new(FailureKind::Model, message)),
        Vec::new(),
    )
}

#[async_trait]
impl Task for PythonTask {
    type Problem = PyProblem;

    fn problem_id(&self, problem: &PyProblem) -> String {
        problem.id.clone()
    }

    fn problem_text(&self, problem: &PyProblem) -> Option<String> {
        problem.text.clone()
    }

    fn reference_answer(&self, problem: &PyProblem) -> Option<String> {
        problem.reference.clone()
    }

    async fn attempt(
        &self,
        problem: &PyProblem,
        functions: &agentopt_train::FunctionSet,
    ) -> Attempt {
        self.run(problem, functions, None).await
    }

    /// `task.attempt_calling(problem, functions, name)`, when the task has it.
    async fn attempt_calling(
        &self,
        problem: &PyProblem,
        functions: &agentopt_train::FunctionSet,
        name: &str,
    ) -> Option<Attempt> {
        if !self.forces_calls {
            return None;
        }
        Some(self.run(problem, functions, Some(name.to_owned())).await)
    }
}

impl PythonTask {
    /// Runs `task.attempt` (or `task.attempt_calling` with `calling`) on `problem`.
    async fn run(
        &self,
        problem: &PyProblem,
        functions: &agentopt_train::FunctionSet,
        calling: Option<String>,
    ) -> Attempt {
        let task = Arc::clone(&self.task);
        let value = Arc::clone(&problem.value);
        let functions = FunctionSet::new(functions.clone(), self.sandbox.clone());
        let log = Arc::clone(functions.log());
        // Off the runtime thread: the attempt may call learned functions, which
        // wait on this runtime.
        let mut attempt = tokio::task::spawn_blocking(move || {
            Python::attach(|py| run_attempt(py, &task, &value, functions, calling.as_deref()))
        })
        .await
        .unwrap_or_else(|error| infrastructure(format!("the attempt's thread failed: {error}")));
        let Uses { calls, failures } = take_uses(&log);
        if failures.is_empty() || attempt.outcome.infrastructure().is_some() {
            // The calls the agents made through the set's callables: how the use
            // rate of a Python task is known.
            for (name, counts) in calls {
                attempt.calls.entry(name).or_default().merge(counts);
            }
            return attempt;
        }
        Attempt::new(
            Outcome::Infrastructure(InfraError::new(
                FailureKind::Sandbox,
                format!(
                    "the sandbox failed in a learned-function call (AG2 showed the model an error instead): {}",
                    failures.join("; ")
                ),
            )),
            Vec::new(),
        )
    }
}

/// Calls the Python task; an exception it raises becomes an infrastructure error.
fn run_attempt(
    py: Python<'_>,
    task: &Py<PyAny>,
    problem: &Py<PyAny>,
    functions: FunctionSet,
    calling: Option<&str>,
) -> Attempt {
    let task = task.bind(py);
    let result = Py::new(py, functions).and_then(|functions| {
        if let Some(name) = calling {
            task.call_method1("attempt_calling", (problem, functions, name))
        } else if task.hasattr("attempt")? {
            task.call_method1("attempt", (problem, functions))
        } else {
            task.call1((problem, functions))
        }
    });
    match result.and_then(|returned| read_attempt(&returned)) {
        Ok(attempt) => attempt,
        Err(error) => infrastructure(format!("the task raised {error}")),
    }
}

/// What `attempt()` returned: a bool (solved or not), or a dict with `solved`
/// and optionally `history` (AG2 messages, what the optimizer reads), `answer`,
/// `expected`, `reason`, `tokens`, or `infrastructure` (a message: the attempt
/// failed for reasons outside the agents).
fn read_attempt(returned: &Bound<'_, PyAny>) -> PyResult<Attempt> {
    if returned.is_instance_of::<PyBool>() || returned.is_instance_of::<PyInt>() {
        let solved = returned.is_truthy()?;
        return Ok(Attempt::new(
            Outcome::judged(solved, || "not solved".to_owned()),
            Vec::new(),
        ));
    }
    let Ok(dict) = returned.cast::<PyDict>() else {
        return Err(config_error(
            "attempt()",
            returned.repr().ok().map(|repr| repr.to_string()),
            "attempt() must return a bool or a dict with `solved`",
        ));
    };
    let text = |key: &str| -> PyResult<Option<String>> {
        match dict.get_item(key)? {
            Some(value) if !value.is_none() => Ok(Some(value.str()?.to_string())),
            _ => Ok(None),
        }
    };
    if let Some(message) = text("infrastructure")? {
        return Ok(infrastructure(message));
    }
    let solved = dict
        .get_item("solved")?
        .ok_or_else(|| {
            config_error(
                "attempt()['solved']",
                None,
                "attempt() returned a dict without `solved`",
            )
        })?
        .is_truthy()?;
    let mut history = match dict.get_item("history")? {
        Some(history) if !history.is_none() => history_messages(&history)?,
        _ => Vec::new(),
    };
    let (answer, expected) = (text("answer")?, text("expected")?);
    let reason = text("reason")?;
    if let Some(verdict) = verdict(
        solved,
        [
            ("Reason", &reason),
            ("Feedback", &text("feedback")?),
            ("Answer given", &answer),
            ("Expected answer", &expected),
        ],
    ) {
        history.push(ChatMessage::user(verdict));
    }
    let reason = reason.unwrap_or_else(|| "not solved".to_owned());
    let mut attempt =
        Attempt::new(Outcome::judged(solved, || reason), history).with_answers(answer, expected);
    if let Some(tokens) = dict.get_item("tokens")? {
        attempt.tokens = tokens.extract()?;
    }
    Ok(attempt)
}

/// The judgement the task gave, as the last message of the recorded conversation:
/// the optimizer reads histories only, and an attempt's reason, feedback, answer and
/// expected answer are what it most needs to improve the functions. None when the
/// task gave none of them.
fn verdict<const N: usize>(solved: bool, parts: [(&str, &Option<String>); N]) -> Option<String> {
    let given: Vec<String> = parts
        .iter()
        .filter_map(|(label, value)| value.as_ref().map(|value| format!("{label}: {value}")))
        .collect();
    if given.is_empty() {
        return None;
    }
    Some(format!(
        "Verdict: {}.\n{}",
        if solved { "solved" } else { "not solved" },
        given.join("\n")
    ))
}

/// Sends the trainer's events to a Python callable as dicts.
struct PythonProgress {
    callback: Py<PyAny>,
}

/// `{"event": name, "phase": …, "epoch": …, "phase_name": …}` plus `fields`.
fn phase_event(name: &str, phase: agentopt_train::Phase, fields: Value) -> Value {
    let mut event = serde_json::Map::new();
    event.insert("event".to_owned(), json!(name));
    event.insert("phase_name".to_owned(), json!(phase.name()));
    for source in [serde_json::to_value(phase).unwrap_or_default(), fields] {
        if let Value::Object(map) = source {
            event.extend(map);
        }
    }
    Value::Object(event)
}

fn event_json(event: Event<'_>) -> Value {
    let outcome = |outcome| serde_json::to_value(outcome).unwrap_or_default();
    match event {
        Event::PhaseStarted { phase, total } => {
            phase_event("phase_started", phase, json!({"total": total}))
        }
        Event::Resumed {
            phase,
            outcome: done,
            tokens,
        } => phase_event(
            "resumed",
            phase,
            json!({"outcome": outcome(done), "tokens": tokens}),
        ),
        Event::Finished {
            phase,
            problem_id,
            outcome: done,
            tokens,
        } => phase_event(
            "finished",
            phase,
            json!({"problem_id": problem_id, "outcome": outcome(done), "tokens": tokens}),
        ),
        Event::PhaseFinished { phase } => phase_event("phase_finished", phase, json!({})),
        Event::StepStarted { epoch } => json!({"event": "step_started", "epoch": epoch}),
        Event::StepFinished { step } => json!({
            "event": "step_finished",
            "step": serde_json::to_value(step).unwrap_or_default(),
            "rejected": step.rejected,
        }),
    }
}

impl Observer for PythonProgress {
    fn event(&self, event: Event<'_>) {
        let value = event_json(event);
        Python::attach(|py| {
            let sent = from_json(py, &value).and_then(|dict| self.callback.call1(py, (dict,)));
            // A failing progress callback must not stop the run; Python reports it
            // as an unraisable exception.
            if let Err(error) = sent {
                error.write_unraisable(py, None);
            }
        });
    }
}

/// Options only the trainer takes; the rest are `AgentOptimizer`'s.
const TRAINER_OPTIONS: &[&str] = &[
    "run_dir",
    "epochs",
    "max_actions_per_step",
    "concurrency",
    "progress",
    "max_consecutive_infrastructure_errors",
    "retrieval_k",
    "bootstrap_demonstrations",
    "forced_call_demonstrations",
    "force_call",
    "initial_functions",
];

/// The `initial_functions` option: an `agentopt.FunctionSet` (none when absent).
fn initial_functions(options: &Bound<'_, PyDict>) -> PyResult<agentopt_core::FunctionSet> {
    match options.get_item("initial_functions")? {
        Some(value) if !value.is_none() => match value.cast::<FunctionSet>() {
            Ok(set) => Ok(set.get().inner().clone()),
            Err(_) => Err(config_error(
                "initial_functions",
                value.repr().ok().map(|repr| repr.to_string()),
                "option `initial_functions`: expected an agentopt.FunctionSet",
            )),
        },
        _ => Ok(agentopt_core::FunctionSet::default()),
    }
}

/// Trains the functions of a task written in Python (agentopt-train's `Trainer`):
/// test before → epochs of (attempts, optimizer step) → test after, with a
/// crash-safe run directory that a second `run()` continues.
#[pyclass(frozen, module = "agentopt._agentopt")]
pub(crate) struct Trainer {
    task: Arc<Py<PyAny>>,
    client: ModelClient,
    options: TrainerOptions,
    progress: Option<Py<PyAny>>,
    sandbox: SharedSession,
}

fn trainer_option<'py, T: FromPyObjectOwned<'py>>(
    options: &Bound<'py, PyDict>,
    name: &str,
    expected: &str,
) -> PyResult<Option<T>> {
    match options.get_item(name)? {
        Some(value) if !value.is_none() => value.extract().map(Some).map_err(|_| {
            config_error(
                name,
                value.repr().ok().map(|repr| repr.to_string()),
                format!("option `{name}`: expected {expected}"),
            )
        }),
        _ => Ok(None),
    }
}

/// [`trainer_option`], or `default` when absent.
fn trainer_option_or<'py, T: FromPyObjectOwned<'py>>(
    options: &Bound<'py, PyDict>,
    name: &str,
    expected: &str,
    default: T,
) -> PyResult<T> {
    Ok(trainer_option(options, name, expected)?.unwrap_or(default))
}

#[pymethods]
impl Trainer {
    /// `Trainer(task, llm_config, optimizer_model="gpt-4-1106-preview", *,
    /// run_dir, epochs=2, max_actions_per_step=3, concurrency=1, progress=None,
    /// max_consecutive_infrastructure_errors=3, **AgentOptimizer options)`.
    #[new]
    #[pyo3(signature = (task, llm_config=None, optimizer_model=Some(DEFAULT_OPTIMIZER_MODEL.to_owned()), **options))]
    fn new(
        py: Python<'_>,
        task: Py<PyAny>,
        llm_config: Option<&Bound<'_, PyAny>>,
        optimizer_model: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let trainer_options = PyDict::new(py);
        let optimizer_options = PyDict::new(py);
        for (key, value) in options.into_iter().flat_map(|options| options.iter()) {
            let target = if TRAINER_OPTIONS.contains(&key.extract::<String>()?.as_str()) {
                &trainer_options
            } else {
                &optimizer_options
            };
            target.set_item(key, value)?;
        }
        let (client, extras) = model_client(
            llm_config,
            optimizer_model.as_deref(),
            Some(&optimizer_options),
        )?;
        let sandbox = sandbox(extras.sandbox);
        let run_dir: PathBuf = trainer_option(&trainer_options, "run_dir", "a path")?
            .ok_or_else(|| config_error("run_dir", None, "Trainer needs run_dir=: where the run's journal, checkpoints, functions.json and report go"))?;
        let defaults = TrainerOptions::default();
        // The Python wrapper names the task it adapts.
        let task = task.bind(py);
        let task_name = match task.getattr("task_name") {
            Ok(name) => name.str()?.to_string(),
            Err(_) => task.get_type().name()?.to_string(),
        };
        let task = task.clone().unbind();
        let options = TrainerOptions {
            run_dir,
            epochs: trainer_option_or(&trainer_options, "epochs", "an int", defaults.epochs)?,
            initial_functions: initial_functions(&trainer_options)?,
            max_actions_per_step: trainer_option_or(
                &trainer_options,
                "max_actions_per_step",
                "an int",
                defaults.max_actions_per_step,
            )?,
            concurrency: trainer_option_or(
                &trainer_options,
                "concurrency",
                "an int",
                defaults.concurrency,
            )?,
            significance: extras
                .options
                .validation
                .map_or(defaults.significance, |validation| validation.significance),
            max_consecutive_infrastructure_errors: trainer_option_or(
                &trainer_options,
                "max_consecutive_infrastructure_errors",
                "an int",
                defaults.max_consecutive_infrastructure_errors,
            )?,
            proposal_sandbox: Some(Arc::new(sandbox.clone())),
            setup: Setup {
                task: task_name,
                optimizer_model: optimizer_model.unwrap_or_default(),
                ..Setup::default()
            },
            optimizer: extras.options,
            meter: Some(client.meter.clone()),
            preflight: defaults.preflight,
            retrieval_k: trainer_option(&trainer_options, "retrieval_k", "an int")?,
            bootstrap_demonstrations: trainer_option_or(
                &trainer_options,
                "bootstrap_demonstrations",
                "an int",
                defaults.bootstrap_demonstrations,
            )?,
            forced_call_demonstrations: trainer_option_or(
                &trainer_options,
                "forced_call_demonstrations",
                "a bool",
                defaults.forced_call_demonstrations,
            )?,
            force_call: trainer_option_or(
                &trainer_options,
                "force_call",
                "a bool",
                defaults.force_call,
            )?,
        };
        let progress = trainer_options
            .get_item("progress")?
            .filter(|progress| !progress.is_none())
            .map(Bound::unbind);
        Ok(Self {
            task: Arc::new(task),
            client,
            options,
            progress,
            sandbox,
        })
    }

    /// Runs (or continues, over the same run_dir) the training run and returns its
    /// report. Problem ids come from `task.problem_id(problem)` when the task has
    /// it, else `problem["id"]`, else `str(problem)`.
    #[pyo3(signature = (train, test, validation=None))]
    fn run(
        &self,
        py: Python<'_>,
        train: &Bound<'_, PyAny>,
        test: &Bound<'_, PyAny>,
        validation: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TrainingReport> {
        let problems = Problems {
            train: self.problems(train)?,
            validation: match validation {
                Some(validation) => self.problems(validation)?,
                None => Vec::new(),
            },
            test: self.problems(test)?,
        };
        let task = PythonTask {
            task: Arc::clone(&self.task),
            sandbox: self.sandbox.clone(),
            forces_calls: self.task.bind(py).hasattr("attempt_calling")?,
        };
        let mut trainer = agentopt_train::Trainer::new(
            task,
            Arc::clone(&self.client.model),
            self.options.clone(),
        );
        if let Some(progress) = &self.progress {
            trainer = trainer.with_observer(Arc::new(PythonProgress {
                callback: progress.clone_ref(py),
            }));
        }
        let report =
            wait(py, move || async move { trainer.run(&problems).await })?.map_err(train_error)?;
        // The trained set, when the run got as far as writing it.
        let trained =
            agentopt_core::FunctionSet::load(&self.options.run_dir.join("functions.json"))
                .ok()
                .map(|set| FunctionSet::new(set, self.sandbox.clone()));
        Ok(TrainingReport { report, trained })
    }

    /// The optimizer's model usage so far, in `AgentOptimizer.usage`'s shape.
    #[getter]
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &usage_summary(&self.client))
    }
}

impl Trainer {
    fn problems(&self, problems: &Bound<'_, PyAny>) -> PyResult<Vec<PyProblem>> {
        let task = self.task.bind(problems.py());
        let has_problem_id = task.hasattr("problem_id")?;
        let has_problem_text = task.hasattr("problem_text")?;
        let has_reference = task.hasattr("reference_answer")?;
        problems
            .try_iter()?
            .map(|problem| {
                let problem = problem?;
                let id = if has_problem_id {
                    task.call_method1("problem_id", (&problem,))?
                        .str()?
                        .to_string()
                } else if let Some(id) = problem
                    .cast::<PyDict>()
                    .ok()
                    .map(|dict| dict.get_item("id"))
                    .transpose()?
                    .flatten()
                {
                    id.str()?.to_string()
                } else {
                    problem.str()?.to_string()
                };
                let optional = |present: bool, method: &str| -> PyResult<Option<String>> {
                    if !present {
                        return Ok(None);
                    }
                    Ok(Some(
                        task.call_method1(method, (&problem,))?.str()?.to_string(),
                    ))
                };
                Ok(PyProblem {
                    id,
                    text: optional(has_problem_text, "problem_text")?,
                    reference: optional(has_reference, "reference_answer")?,
                    value: Arc::new(problem.unbind()),
                })
            })
            .collect()
    }
}

/// The report of a training run (also written to the run directory as
/// `report.json` and `report.md`).
#[pyclass(frozen, module = "agentopt._agentopt")]
pub(crate) struct TrainingReport {
    report: agentopt_train::TrainingReport,
    trained: Option<FunctionSet>,
}

impl TrainingReport {
    fn field<'py>(
        &self,
        py: Python<'py>,
        value: impl serde::Serialize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(value)
            .map_err(|e| raise("OptimizerError", e.to_string(), None, None))?;
        from_json(py, &value)
    }
}

#[pymethods]
impl TrainingReport {
    /// Test accuracy before training: `{"correct", "total", "rate", "interval"}`.
    #[getter]
    fn test_before<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.test_before.accuracy)
    }

    /// Test accuracy after training.
    #[getter]
    fn test_after<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.test_after.accuracy)
    }

    /// One dict per training epoch that ran.
    #[getter]
    fn epochs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.epochs)
    }

    /// The functions the agents hold after training, with their use.
    #[getter]
    fn functions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.functions)
    }

    /// The trained functions (`functions.json` of the run directory), ready to
    /// install; None when the run stopped before writing them.
    #[getter]
    fn function_set(&self) -> Option<FunctionSet> {
        self.trained.as_ref().map(FunctionSet::clone_handle)
    }

    /// Exact McNemar p-value of the before/after pairs.
    #[getter]
    fn mcnemar_p(&self) -> f64 {
        self.report.mcnemar_p
    }

    /// Why training ended before its planned epochs (patience), if it did.
    #[getter]
    fn stopped_early(&self) -> Option<String> {
        self.report.stopped_early.clone()
    }

    /// Why the run stopped before its end (infrastructure errors, budget); None
    /// for a finished run. Running again continues it.
    #[getter]
    fn incomplete(&self) -> Option<String> {
        self.report.incomplete.clone()
    }

    /// Attempts stopped by infrastructure, per phase.
    #[getter]
    fn infrastructure<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.infrastructure)
    }

    /// Per phase, the conversations offered a learned function and those that
    /// called it (and whose code shadowed it), for any function and each one.
    #[getter]
    fn use_rates<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report.use_rates)
    }

    /// The whole report as plain dicts and lists (`report.json`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, &self.report)
    }

    /// The report as Markdown (`report.md`).
    fn to_markdown(&self) -> String {
        self.report.to_markdown()
    }

    /// The seed notebook's closing print: functions learned, success rates.
    fn summary(&self) -> String {
        self.report.terminal_summary()
    }

    fn __repr__(&self) -> String {
        format!(
            "<agentopt.TrainingReport test {} -> {}, {} epoch(s){}>",
            self.report.test_before.accuracy.summary(),
            self.report.test_after.accuracy.summary(),
            self.report.epochs.len(),
            if self.report.incomplete.is_some() {
                ", incomplete"
            } else {
                ""
            }
        )
    }
}
