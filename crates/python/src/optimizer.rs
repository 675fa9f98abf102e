//! `agentopt.AgentOptimizer`: ag2 0.13.4's `AgentOptimizer` API, signature for
//! signature, over `agentopt_optimizer::AgentOptimizer`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::Message;
use agentopt_llm::{Budget, ChatMessage, ChatModel, LlmError, NamedPrice, Routing};
use agentopt_optimizer::{
    ActionFormat, AgentOptimizer as Core, OptimizerError, OptimizerOptions, StepOutcome,
    ValidationOptions,
};
use agentopt_sandbox::SharedSession;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::client::{EntryRouting, ModelClient, build_client, usage_summary};
use crate::config::{OptimizerEndpoint, optimizer_endpoint};
use crate::errors::{config_error, optimizer_error, raise};
use crate::functions::{
    FunctionSet, SandboxSettings, UseLog, checked_packages, registrations, sandbox,
    timeout_from_seconds,
};
use crate::json::{from_json, to_json};
use crate::runtime::wait;

/// The keyword options `resume` accepts: those a checkpoint does not save.
const RESUME_OPTIONS: &[&str] = &[
    "context_window",
    "function_timeout",
    "allow_unsandboxed",
    "packages",
    "budget_usd",
    "prices",
];

/// AG2's default optimizer model.
pub(crate) const DEFAULT_OPTIMIZER_MODEL: &str = "gpt-4-1106-preview";

/// AG2's limit on one learned-function call (`execute_function`'s default).
pub(crate) const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(600);

/// Learns the Python functions an AG2 agent pair may call (AG2's AgentOptimizer,
/// with validated actions, bounded prompts, roll-back, early stop, checkpoints and a
/// sandbox for the learned code).
#[pyclass(frozen, module = "agentopt._agentopt")]
pub(crate) struct AgentOptimizer {
    core: Arc<Mutex<Core>>,
    sandbox: SharedSession,
    client: ModelClient,
    /// Where its callables log their calls and sandbox failures (read by no one:
    /// outside a Trainer, the exception a call raises is the report).
    log: UseLog,
    last_step: std::sync::Mutex<Option<StepOutcome>>,
}

/// The keyword options beyond AG2's, read from `**options`.
pub(crate) struct Extras {
    pub(crate) options: OptimizerOptions,
    context_window: Option<u32>,
    pub(crate) sandbox: SandboxSettings,
    prices: Vec<NamedPrice>,
    budget: Budget,
    routing: EntryRouting,
}

fn option_value(value: &Bound<'_, PyAny>) -> Option<String> {
    value.repr().ok().map(|repr| repr.to_string())
}

fn extract<'py, T: FromPyObjectOwned<'py>>(
    name: &str,
    value: &Bound<'py, PyAny>,
    expected: &str,
) -> PyResult<T> {
    value.extract::<T>().map_err(|_| {
        config_error(
            name,
            option_value(value),
            format!("option `{name}`: expected {expected}"),
        )
    })
}

fn optional<'py, T: FromPyObjectOwned<'py>>(
    name: &str,
    value: &Bound<'py, PyAny>,
    expected: &str,
) -> PyResult<Option<T>> {
    if value.is_none() {
        return Ok(None);
    }
    extract(name, value, expected).map(Some)
}

/// `prices={"model": (prompt, completion)}`, dollars per 1000 tokens as AG2's `price`.
fn read_prices(value: &Bound<'_, PyAny>) -> PyResult<Vec<NamedPrice>> {
    let expected = "a dict of model name to (prompt, completion) dollars per 1000 tokens";
    let prices: std::collections::BTreeMap<String, (f64, f64)> =
        extract("prices", value, expected)?;
    prices
        .into_iter()
        .map(|(model, (prompt, completion))| {
            if prompt < 0.0 || completion < 0.0 || !(prompt + completion).is_finite() {
                return Err(config_error(
                    &format!("prices[{model:?}]"),
                    Some(format!("({prompt}, {completion})")),
                    format!("option `prices`: {expected}"),
                ));
            }
            Ok(NamedPrice {
                model,
                prompt_per_million: prompt * 1000.0,
                completion_per_million: completion * 1000.0,
            })
        })
        .collect()
}

/// The options that concern the sandbox and the model client, not the optimizer;
/// `false` when `name` is not one.
fn read_environment_option(
    extras: &mut Extras,
    name: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let settings = &mut extras.sandbox;
    match name {
        "function_timeout" => {
            let seconds: f64 = extract(name, value, "a number of seconds")?;
            settings.timeout = timeout_from_seconds(name, seconds)?;
        }
        "allow_unsandboxed" => settings.allow_unsandboxed = extract(name, value, "a bool")?,
        "packages" => {
            let packages: Vec<String> = extract(name, value, "a list of package names")?;
            settings.packages = checked_packages(&packages)?;
        }
        "routing" => {
            extras.routing.routing = extract::<String>(name, value, "a str")?
                .parse()
                .map_err(|error: String| config_error(name, option_value(value), error))?;
        }
        "replica_cap" => {
            let cap: Option<usize> = optional(name, value, "an int of at least 1 or None")?;
            if cap == Some(0) {
                return Err(config_error(
                    name,
                    option_value(value),
                    "option `replica_cap`: expected an int of at least 1 or None",
                ));
            }
            extras.routing.replica_cap = cap;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reads the keyword options; an unknown name or a wrong type is a `ConfigError`.
fn read_extras(
    options: Option<&Bound<'_, PyDict>>,
    endpoint: &OptimizerEndpoint,
) -> PyResult<Extras> {
    let defaults = OptimizerOptions::default();
    let mut extras = Extras {
        options: OptimizerOptions {
            temperature: endpoint.temperature,
            seed: endpoint.seed,
            reply_room_tokens: endpoint.max_tokens.unwrap_or(defaults.reply_room_tokens),
            ..defaults
        },
        context_window: None,
        sandbox: SandboxSettings::new(DEFAULT_FUNCTION_TIMEOUT),
        prices: Vec::new(),
        budget: Budget::default(),
        routing: EntryRouting::default(),
    };
    let Some(options) = options else {
        return Ok(extras);
    };
    for (key, value) in options.iter() {
        let name: String = key.extract()?;
        if read_environment_option(&mut extras, &name, &value)? {
            continue;
        }
        let target = &mut extras.options;
        match name.as_str() {
            "patience" => target.patience = optional(&name, &value, "an int or None")?,
            "max_retries" => target.max_retries = extract(&name, &value, "an int")?,
            "reply_room_tokens" => target.reply_room_tokens = extract(&name, &value, "an int")?,
            "max_prompt_tokens" => {
                target.max_prompt_tokens = optional(&name, &value, "an int or None")?
            }
            "max_tool_output_chars" => {
                target.max_tool_output_chars = extract(&name, &value, "an int")?
            }
            "validation_significance" => {
                target.validation = optional(&name, &value, "a float in (0, 1) or None")?
                    .map(|significance| ValidationOptions { significance });
            }
            "checkpoint" => {
                target.checkpoint = optional::<PathBuf>(&name, &value, "a path or None")?
            }
            "temperature" => target.temperature = optional(&name, &value, "a float or None")?,
            "seed" => target.seed = optional(&name, &value, "an int or None")?,
            "require_action" => target.require_action = extract(&name, &value, "a bool")?,
            "action_format" => {
                target.action_format = match extract::<String>(&name, &value, "a str")?.as_str() {
                    "tool_calls" => ActionFormat::ToolCalls,
                    "json_schema" => ActionFormat::JsonSchema,
                    _ => {
                        return Err(config_error(
                            &name,
                            option_value(&value),
                            "option `action_format`: expected \"tool_calls\" or \"json_schema\"",
                        ));
                    }
                };
            }
            "demonstrations" => {
                target.learned_use.demonstrations = extract(&name, &value, "a bool")?;
            }
            "execution_checks" => {
                target.learned_use.execution_checks = extract(&name, &value, "a bool")?;
            }
            "use_statistics" => {
                target.learned_use.use_statistics = extract(&name, &value, "a bool")?;
            }
            "prune_unused_after" => {
                target.learned_use.prune_unused_after = optional(&name, &value, "an int or None")?;
            }
            "from_what_worked" => {
                target.learned_use.from_what_worked = extract(&name, &value, "a bool")?;
            }
            "context_window" => extras.context_window = optional(&name, &value, "an int or None")?,
            "budget_usd" => {
                extras.budget.max_cost_usd = optional(&name, &value, "a number of dollars or None")?
            }
            "prices" => extras.prices = read_prices(&value)?,
            _ => {
                return Err(config_error(
                    &name,
                    None,
                    format!("unknown option `{name}` (see help(agentopt.AgentOptimizer))"),
                ));
            }
        }
    }
    if let Some(cap) = extras.routing.replica_cap
        && extras.routing.routing != Routing::Spread
    {
        return Err(config_error(
            "replica_cap",
            Some(cap.to_string()),
            "option `replica_cap` caps each entry of routing=\"spread\"; add routing=\"spread\"",
        ));
    }
    Ok(extras)
}

/// The optimizer model's client, from `llm_config`, and the options.
pub(crate) fn model_client(
    llm_config: Option<&Bound<'_, PyAny>>,
    optimizer_model: Option<&str>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(ModelClient, Extras)> {
    let endpoint = optimizer_endpoint(llm_config, optimizer_model)?;
    let extras = read_extras(options, &endpoint)?;
    let client = build_client(
        endpoint,
        extras.context_window,
        &extras.prices,
        extras.budget,
        extras.routing,
    )?;
    Ok((client, extras))
}

/// AG2 message dicts → chat messages. AG2's keys are read (role, content, name,
/// function_call, tool_calls, tool_responses); content that is not text (a
/// multimodal list) is kept as its JSON text.
pub(crate) fn history_messages(history: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    let Value::Array(entries) = to_json(history)? else {
        return Err(config_error(
            "conversation_history",
            option_value(history),
            "conversation_history must be a list of message dicts",
        ));
    };
    let mut messages = Vec::new();
    for (index, mut entry) in entries.into_iter().enumerate() {
        if let Some(content) = entry.get_mut("content")
            && !(content.is_string() || content.is_null())
        {
            *content = Value::String(content.to_string());
        }
        let message: Message = serde_json::from_value(entry.clone()).map_err(|error| {
            config_error(
                &format!("conversation_history[{index}]"),
                Some(entry.to_string()),
                format!("conversation_history[{index}]: not an AG2 message: {error}"),
            )
        })?;
        messages.extend(message.to_chat_messages());
    }
    Ok(messages)
}

impl AgentOptimizer {
    /// The optimizer `make` builds from the model client and options, trying
    /// proposals in a sandbox it shares with the functions it hands out.
    fn build(
        llm_config: Option<&Bound<'_, PyAny>>,
        optimizer_model: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
        make: impl FnOnce(Arc<dyn ChatModel>, OptimizerOptions) -> Result<Core, OptimizerError>,
    ) -> PyResult<Self> {
        let (client, extras) = model_client(llm_config, optimizer_model.as_deref(), options)?;
        let sandbox = sandbox(extras.sandbox);
        let core = make(Arc::clone(&client.model), extras.options)
            .map_err(optimizer_error)?
            .with_executor(Box::new(sandbox.clone()));
        Ok(Self {
            core: Arc::new(Mutex::new(core)),
            sandbox,
            client,
            log: UseLog::default(),
            last_step: std::sync::Mutex::new(None),
        })
    }

    fn lock_step(&self) -> std::sync::MutexGuard<'_, Option<StepOutcome>> {
        agentopt_core::lock(&self.last_step)
    }
}

#[pymethods]
impl AgentOptimizer {
    /// `AgentOptimizer(max_actions_per_step, llm_config=None,
    /// optimizer_model="gpt-4-1106-preview", **options)`; see the package docs for
    /// the options.
    #[new]
    #[pyo3(signature = (max_actions_per_step, llm_config=None, optimizer_model=Some(DEFAULT_OPTIMIZER_MODEL.to_owned()), **options))]
    fn new(
        max_actions_per_step: usize,
        llm_config: Option<&Bound<'_, PyAny>>,
        optimizer_model: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Self::build(llm_config, optimizer_model, options, |model, options| {
            Core::new(max_actions_per_step, model, options)
        })
    }

    /// Continues from a checkpoint written with `checkpoint=PATH`, with the optimizer
    /// options saved in it (only `context_window`, `function_timeout` and
    /// `allow_unsandboxed` may be given again); the next `step()` sends what an
    /// uninterrupted run would have. `registrations_in_force()` then gives the
    /// functions in force, to install on fresh agents.
    #[classmethod]
    #[pyo3(signature = (checkpoint, llm_config=None, optimizer_model=Some(DEFAULT_OPTIMIZER_MODEL.to_owned()), **options))]
    fn resume(
        _class: &Bound<'_, PyType>,
        checkpoint: PathBuf,
        llm_config: Option<&Bound<'_, PyAny>>,
        optimizer_model: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        if let Some(options) = options {
            for key in options.keys() {
                let name: String = key.extract()?;
                if !RESUME_OPTIONS.contains(&name.as_str()) {
                    return Err(config_error(
                        &name,
                        None,
                        format!(
                            "option `{name}`: resume() takes the optimizer options saved in the checkpoint; only {RESUME_OPTIONS:?} may be given"
                        ),
                    ));
                }
            }
        }
        Self::build(llm_config, optimizer_model, options, |model, _options| {
            Core::resume(&checkpoint, model)
        })
    }

    /// Records one conversation held with the functions in force and whether the
    /// user was satisfied. `is_satisfied=None` counts as not satisfied (AG2 asked on
    /// stdin, which blocks an unattended run; a conversation without a verdict did
    /// not satisfy anyone). Any truthy value counts as satisfied.
    #[pyo3(signature = (conversation_history, is_satisfied=None))]
    fn record_one_conversation(
        &self,
        py: Python<'_>,
        conversation_history: &Bound<'_, PyAny>,
        is_satisfied: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let history = history_messages(conversation_history)?;
        let satisfied = match is_satisfied {
            Some(value) => value.is_truthy()?,
            None => false,
        };
        let core = Arc::clone(&self.core);
        wait(py, move || async move {
            core.lock()
                .await
                .record_one_conversation(history, satisfied)
        })?
        .map_err(optimizer_error)
    }

    /// Records the functions in force's outcome on one held-out validation problem
    /// (only with `validation_significance=`).
    fn record_validation_outcome(
        &self,
        py: Python<'_>,
        problem_id: String,
        is_satisfied: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let satisfied = is_satisfied.is_truthy()?;
        let core = Arc::clone(&self.core);
        wait(py, move || async move {
            core.lock()
                .await
                .record_validation_outcome(problem_id, satisfied)
        })?
        .map_err(optimizer_error)
    }

    /// One training step: returns `(register_for_llm, register_for_executor)` in
    /// AG2's shapes: the list to pass item by item to
    /// `assistant.update_function_signature(**item)` (removals first, then every
    /// function in force) and the name → callable map for
    /// `user_proxy.register_function(function_map=...)` (None removes).
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let core = Arc::clone(&self.core);
        let lessons = Arc::clone(&self.client.lessons);
        let outcome = wait(py, move || async move {
            let mut core = core.lock().await;
            loop {
                let learned_before = lessons.count();
                match core.step().await {
                    // A step commits only at its end: after the window was learned
                    // from this overflow, running it again sends prompts that fit.
                    Err(OptimizerError::Model(LlmError::ContextOverflow { .. }))
                        if lessons.count() > learned_before => {}
                    result => return result,
                }
            }
        })?
        .map_err(optimizer_error)?;
        let result = registrations(
            py,
            &outcome.changes.removed,
            outcome.functions.functions(),
            &self.sandbox,
            &self.log,
        )?;
        *self.lock_step() = Some(outcome);
        Ok(result)
    }

    /// Forgets everything learned (functions, conversations, scores).
    fn reset_optimizer(&self, py: Python<'_>) -> PyResult<()> {
        let core = Arc::clone(&self.core);
        wait(py, move || async move { core.lock().await.reset() })?.map_err(optimizer_error)?;
        *self.lock_step() = None;
        Ok(())
    }

    /// `(register_for_llm, register_for_executor)` for the functions in force,
    /// without removals: what fresh agents need (after `resume`, say).
    fn registrations_in_force<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let core = Arc::clone(&self.core);
        let functions = wait(py, move || async move {
            core.lock().await.trial_functions().to_vec()
        })?;
        registrations(py, &[], &functions, &self.sandbox, &self.log)
    }

    /// The last step's report as a dict (accepted, improved, trial_performance,
    /// best_performance, should_stop, actions, rejected, prompts, functions, …);
    /// None before the first step.
    #[getter]
    fn last_step<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let outcome = self.lock_step().clone();
        outcome
            .map(|outcome| {
                let value = serde_json::to_value(outcome)
                    .map_err(|e| raise("OptimizerError", e.to_string(), None, None))?;
                from_json(py, &value)
            })
            .transpose()
    }

    /// True when the last step ran out of `patience`: stop training.
    #[getter]
    fn should_stop(&self) -> bool {
        self.lock_step()
            .as_ref()
            .is_some_and(|outcome| outcome.should_stop)
    }

    /// Function additions, revisions and removals per step (saved in a checkpoint).
    #[getter]
    fn max_actions_per_step(&self, py: Python<'_>) -> PyResult<usize> {
        let core = Arc::clone(&self.core);
        wait(py, move || async move {
            core.lock().await.max_actions_per_step()
        })
    }

    /// The best score so far (None before the first step).
    #[getter]
    fn best_performance(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let core = Arc::clone(&self.core);
        wait(
            py,
            move || async move { core.lock().await.best_performance() },
        )
    }

    /// The optimizer's own model usage in AG2's `gather_usage_summary` shape:
    /// `{"usage_including_cached_inference": {...}, "usage_excluding_cached_inference":
    /// {...}}`, each `{"total_cost": dollars, MODEL: {"cost", "prompt_tokens",
    /// "completion_tokens", "total_tokens"}}`, plus agentopt's `calls`, `retries`,
    /// `failed_calls` and `cached_calls`.
    #[getter]
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &usage_summary(&self.client))
    }

    /// Writes the best function list as a portable JSON artifact (what
    /// `FunctionSet.load` reads) and returns it as a `FunctionSet`.
    fn export_artifact(&self, py: Python<'_>, path: PathBuf) -> PyResult<FunctionSet> {
        let core = Arc::clone(&self.core);
        let artifact = wait(py, move || async move {
            core.lock().await.export_artifact(&path)
        })?
        .map_err(optimizer_error)?;
        Ok(FunctionSet::new(artifact, self.sandbox.clone()))
    }
}
