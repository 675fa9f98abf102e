//! Turning the optimizer model's tool calls into validated actions on List B.

use agentopt_llm::{ChatMessage, FunctionCall};
use agentopt_sandbox::Executor;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::function::{
    Parameters, check_name, check_packages, defined_parameters, normalise_schema, packages_field,
};
use crate::learned_use::{AnswerJudge, sample_call_check, verify_demonstration};
use crate::prompt::{
    ADD_FUNCTION, ActionFormat, JSON_PARAMETERS_FIELD, REMOVE_FUNCTION, REVISE_FUNCTION,
    TERMINATE_ACTION, list_bytes,
};
use crate::state::RecordedConversation;
use agentopt_core::{Demonstration, LearnedFunction};

use crate::OptimizerError;

/// One accepted change to the incumbent function list (List B).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "function", rename_all = "snake_case")]
pub enum Action {
    /// `add_function`: a new function.
    Add(LearnedFunction),
    /// `revise_function`: a new version of an existing function.
    Revise(LearnedFunction),
    /// `remove_function`: the function with this name goes.
    Remove(String),
}

impl Action {
    /// The same action on `function` (an add stays an add); a removal is unchanged.
    fn with_function(self, function: LearnedFunction) -> Self {
        match self {
            Self::Add(_) => Self::Add(function),
            Self::Revise(_) => Self::Revise(function),
            Self::Remove(name) => Self::Remove(name),
        }
    }

    /// Applies this action to `functions`; a revised function keeps its position.
    pub(crate) fn apply(&self, functions: &mut Vec<LearnedFunction>) {
        match self {
            Self::Add(function) => functions.push(function.clone()),
            Self::Revise(function) => {
                if let Some(slot) = functions.iter_mut().find(|f| f.name == function.name) {
                    *slot = function.clone();
                }
            }
            Self::Remove(name) => functions.retain(|function| function.name != *name),
        }
    }
}

/// What one optimizer reply proposes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Proposal {
    /// End the step: no tool call, or `TERMINATE` in [`ActionFormat::JsonSchema`].
    Terminate,
    /// These calls, with the tool-call id where the reply has one.
    Calls(Vec<(Option<String>, FunctionCall)>),
    /// A reply in [`ActionFormat::JsonSchema`] that is no action; the error goes back to
    /// the model.
    Unreadable(String),
}

/// Reads the actions `reply` proposes. Tool calls count in either format, so a model
/// that calls tools anyway is understood.
pub(crate) fn read_reply(reply: &ChatMessage, format: ActionFormat) -> Proposal {
    let calls = reply.requested_calls();
    if !calls.is_empty() {
        return Proposal::Calls(
            calls
                .into_iter()
                .map(|(id, call)| (id.map(str::to_owned), call.clone()))
                .collect(),
        );
    }
    if format == ActionFormat::ToolCalls {
        return Proposal::Terminate;
    }
    let text = reply.content.as_deref().unwrap_or_default().trim();
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            return Proposal::Unreadable(format!(
                "the reply must be one JSON object with an \"action\"; got {other}"
            ));
        }
        Err(error) => {
            return Proposal::Unreadable(format!(
                "the reply is not one JSON object ({error}); reply with {{\"action\": \
                 FUNCTION NAME, \"arguments\": {{...}}}} or {{\"action\": \"{TERMINATE_ACTION}\"}}"
            ));
        }
    };
    let Some(Value::String(action)) = object.get("action") else {
        return Proposal::Unreadable("the reply's `action` is missing or not a string".to_owned());
    };
    if action == TERMINATE_ACTION {
        return Proposal::Terminate;
    }
    match object.get("arguments") {
        Some(Value::Object(arguments)) => {
            // The tools carry the parameter schemas as AG2's `arguments` JSON string,
            // which is what validation reads.
            let mut arguments = arguments.clone();
            if let Some(parameters) = arguments.remove(JSON_PARAMETERS_FIELD) {
                let parameters = fitted_to_def(&arguments, parameters);
                arguments.insert(
                    "arguments".to_owned(),
                    Value::String(parameters.to_string()),
                );
            }
            Proposal::Calls(vec![(
                None,
                FunctionCall {
                    name: action.clone(),
                    arguments: Value::Object(arguments).to_string(),
                },
            )])
        }
        _ => Proposal::Unreadable(format!(
            "the reply's `arguments` for `{action}` is missing or not a JSON object"
        )),
    }
}

/// A JSON action's `parameters` map, made to fit the `def` in its `code` when it names
/// other parameters: the grammar shapes every entry but cannot know the names, and a
/// small model fills the map with the schema's own words (`type`, `name`,
/// `description`) — four refusals a step in the default local run, retries included.
/// The `def`'s parameters keep the model's entry where it wrote one, else get the type
/// their annotation or default names. A map that fits, or code without the `def`, is
/// left as written for validation to judge.
fn fitted_to_def(arguments: &Map<String, Value>, parameters: Value) -> Value {
    let (Some(Value::String(name)), Some(Value::String(code)), Value::Object(written)) =
        (arguments.get("name"), arguments.get("code"), &parameters)
    else {
        return parameters;
    };
    let Ok(Parameters { named: defined, .. }) = defined_parameters(name, code) else {
        return parameters;
    };
    let fits = defined.len() == written.len()
        && defined
            .keys()
            .all(|parameter| written.contains_key(parameter));
    if fits {
        return parameters;
    }
    tracing::info!(
        function = name.as_str(),
        written = ?written.keys().collect::<Vec<_>>(),
        "the action's parameter map does not fit the code's def; taken from the def"
    );
    let fitted = defined.into_iter().map(|(parameter, json_type)| {
        let entry = written.get(&parameter).cloned().unwrap_or_else(
            || serde_json::json!({"type": json_type, "description": format!("`{parameter}`")}),
        );
        (parameter, entry)
    });
    Value::Object(fitted.collect())
}

fn string_field(arguments: &Map<String, Value>, field: &str) -> Result<String, String> {
    match arguments.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!("`{field}` must be a string; got {other}")),
        None => Err(format!("`{field}` is missing")),
    }
}

/// Checks one call against `functions` (List B with this reply's earlier calls applied)
/// without running anything.
fn static_check(
    call: &FunctionCall,
    functions: &[LearnedFunction],
    allowed_packages: Option<&[String]>,
) -> Result<(Action, Option<Parameters>), String> {
    // The tool first: a call of an unknown tool is answered by naming it, whatever
    // its arguments hold.
    if ![ADD_FUNCTION, REVISE_FUNCTION, REMOVE_FUNCTION].contains(&call.name.as_str()) {
        return Err(format!(
            "unknown tool `{}`; use {ADD_FUNCTION}, {REVISE_FUNCTION} or {REMOVE_FUNCTION}",
            call.name
        ));
    }
    let arguments = call
        .parse_arguments()
        .map_err(|error| format!("the tool-call arguments are not a JSON object: {error}"))?;
    let name = string_field(&arguments, "name")?;
    let exists = functions.iter().any(|function| function.name == name);
    if call.name != REMOVE_FUNCTION {
        let checked = check_add_or_revise(call.name == ADD_FUNCTION, name, exists, &arguments)?;
        if let (Action::Add(function) | Action::Revise(function), _) = &checked {
            check_packages(&function.packages, allowed_packages)?;
        }
        return Ok(checked);
    }
    if !exists {
        return Err(format!(
            "cannot remove `{name}`: List B has no such function (it has {:?})",
            functions
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
        ));
    }
    Ok((Action::Remove(name), None))
}

/// `add_function` (`adding`) or `revise_function` of `name`, which List B holds or
/// not (`exists`).
fn check_add_or_revise(
    adding: bool,
    name: String,
    exists: bool,
    arguments: &Map<String, Value>,
) -> Result<(Action, Option<Parameters>), String> {
    check_name(&name)?;
    if adding && exists {
        return Err(format!(
            "cannot add `{name}`: List B already has a function with that name; \
             use revise_function to change it"
        ));
    }
    if !adding && !exists {
        return Err(format!(
            "cannot revise `{name}`: List B has no such function; use add_function"
        ));
    }
    let description = string_field(arguments, "description")?;
    let schema_text = string_field(arguments, "arguments")?;
    let packages = packages_field(arguments.get("packages"))?;
    let code = string_field(arguments, "code")?;
    let schema_value: Value = serde_json::from_str(schema_text.trim()).map_err(|error| {
        format!("`arguments` is not valid JSON: {error}; it was {schema_text:?}")
    })?;
    let parameters = defined_parameters(&name, &code)?;
    let schema = normalise_schema(&schema_value, &parameters)?;
    let function = LearnedFunction {
        name,
        description,
        parameters: schema,
        packages,
        code,
        demonstrations: demonstrations_field(arguments.get("demonstrations"))?,
    };
    let action = if adding {
        Action::Add(function)
    } else {
        Action::Revise(function)
    };
    Ok((action, Some(parameters)))
}

/// The optional `demonstrations` argument: worked examples with `problem`,
/// `solution` and `answer` (a number is taken as its text).
fn demonstrations_field(value: Option<&Value>) -> Result<Vec<Demonstration>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("`demonstrations` must be a list; got {other}")),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = |name: &str| match &item[name] {
                Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
                Value::Number(number) => Ok(number.to_string()),
                other => Err(format!(
                    "demonstration {}: `{name}` must be a non-empty string; got {other}",
                    index + 1
                )),
            };
            Ok(Demonstration {
                problem: field("problem")?,
                solution: field("solution")?,
                answer: field("answer")?,
                call: None,
            })
        })
        .collect()
}

/// The action keeps List B within its share of the prompt.
fn fits_prompt(
    checked: (Action, Option<Parameters>),
    functions: &[LearnedFunction],
    max_list_bytes: usize,
) -> Result<(Action, Option<Parameters>), String> {
    if matches!(checked.0, Action::Remove(_)) {
        return Ok(checked);
    }
    let mut after = functions.to_vec();
    checked.0.apply(&mut after);
    let bytes = list_bytes(&after);
    if bytes > max_list_bytes {
        return Err(format!(
            "with this change List B would take {bytes} characters of the prompt, more \
             than the {max_list_bytes} that fit the model's context window; shorten the \
             code or description, or remove a function first"
        ));
    }
    Ok(checked)
}

/// Arguments of a call to `name` in a failing conversation, when they fit the new
/// parameters.
fn failing_call_arguments(
    name: &str,
    parameters: &Parameters,
    conversations: &[RecordedConversation],
) -> Option<(usize, Map<String, Value>)> {
    conversations
        .iter()
        .enumerate()
        .filter(|(_, conversation)| !conversation.satisfied)
        .flat_map(|(index, conversation)| {
            conversation
                .messages
                .iter()
                .flat_map(ChatMessage::requested_calls)
                .filter(|(_, call)| call.name == name)
                .filter_map(move |(_, call)| call.parse_arguments().ok().map(|args| (index, args)))
        })
        .find(|(_, arguments)| {
            parameters
                .required
                .iter()
                .all(|p| arguments.contains_key(p))
                && (parameters.takes_any_keyword
                    || arguments
                        .keys()
                        .all(|key| parameters.named.contains_key(key)))
        })
}

/// Runs the function once in the sandbox: its definition, then a call with arguments
/// from a failing conversation when one called it.
async fn sandbox_check(
    executor: &mut dyn Executor,
    function: &LearnedFunction,
    parameters: &Parameters,
    conversations: &[RecordedConversation],
) -> Result<Result<(), String>, OptimizerError> {
    // The definition runs in a throwaway namespace so the session's globals stay clean.
    let code = Value::String(function.code.clone());
    let definition = executor
        .run_cell(&format!(
            "exec(compile({code}, {}, 'exec'), {{'__name__': '__learned__'}})",
            Value::String(format!("<{}>", function.name))
        ))
        .await?;
    if let Some(error) = definition.error_text() {
        return Ok(Err(format!(
            "the code fails when it is defined in the sandbox:\n{error}"
        )));
    }
    let Some((conversation, arguments)) =
        failing_call_arguments(&function.name, parameters, conversations)
    else {
        return Ok(Ok(()));
    };
    let call = executor.call_function(function, &arguments).await?;
    Ok(match call.error_text() {
        Some(error) => Err(format!(
            "calling {}(**{}) with the arguments from failing conversation {conversation} \
             fails in the sandbox:\n{error}",
            function.name,
            Value::Object(arguments)
        )),
        None => Ok(()),
    })
}

/// The checks that run the proposal in the sandbox (without one, examples are
/// dropped: nothing could verify them).
async fn run_checks(
    action: Action,
    parameters: Option<Parameters>,
    executor: Option<&mut (dyn Executor + '_)>,
    limits: &CallLimits<'_>,
    conversations: &[RecordedConversation],
) -> Result<Result<Action, String>, OptimizerError> {
    let (Action::Add(mut function) | Action::Revise(mut function)) = action.clone() else {
        return Ok(Ok(action));
    };
    let (Some(parameters), Some(executor)) = (parameters, executor) else {
        function.demonstrations.clear();
        return Ok(Ok(action.with_function(function)));
    };
    if let Err(error) = sandbox_check(executor, &function, &parameters, conversations).await? {
        return Ok(Err(error));
    }
    if limits.execution_checks
        && let Err(error) = sample_call_check(executor, &function).await?
    {
        return Ok(Err(error));
    }
    let Some(judge) = limits.judge else {
        if !function.demonstrations.is_empty() {
            tracing::warn!(function = %function.name, "no answer judge: worked examples dropped");
        }
        function.demonstrations.clear();
        return Ok(Ok(action.with_function(function)));
    };
    let mut verified = Vec::with_capacity(function.demonstrations.len());
    for (index, example) in function.demonstrations.iter().enumerate() {
        match verify_demonstration(executor, &function, example, judge).await? {
            Ok(example) => verified.push(example),
            Err(feedback) if limits.last_attempt => tracing::info!(
                function = %function.name,
                %feedback,
                "worked example dropped on the last attempt; the function is kept without it"
            ),
            Err(feedback) => {
                return Ok(Err(format!(
                    "demonstration {} is rejected: {feedback}",
                    index + 1
                )));
            }
        }
    }
    function.demonstrations = verified;
    Ok(Ok(action.with_function(function)))
}

/// What a proposal must stay within besides its own rules.
pub(crate) struct CallLimits<'a> {
    /// List B's share of the prompt, in bytes.
    pub(crate) max_list_bytes: usize,
    /// The packages learned functions may import (`None`: the sandbox allowlist).
    pub(crate) allowed_packages: Option<&'a [String]>,
    /// Call a proposal on sample arguments of its declared types too.
    pub(crate) execution_checks: bool,
    /// Verifies worked examples; without it they are dropped.
    pub(crate) judge: Option<&'a dyn AnswerJudge>,
    /// The step's last try at this action: a function that passes its own checks
    /// is kept without the worked examples that fail theirs (a 1.5B optimizer
    /// rarely writes one that reproduces a training answer, and rejecting the
    /// function for it left every step of the first ablation arm with nothing;
    /// correct conversations can still give it verified ones).
    pub(crate) last_attempt: bool,
}

/// The verdict on one reply: every call's action, or the error for each call.
pub(crate) enum Verdict {
    /// All calls are valid; apply these in order.
    Accepted(Vec<Action>),
    /// Some call is invalid: the message for each call (`None` for a valid one).
    Rejected(Vec<Option<String>>),
}

/// Validates the calls of one reply in order, each against List B with the earlier
/// calls applied; List B may not outgrow `max_list_bytes` of the prompt.
pub(crate) async fn validate_calls(
    calls: &[&FunctionCall],
    incumbent: &[LearnedFunction],
    limits: &CallLimits<'_>,
    mut executor: Option<&mut (dyn Executor + '_)>,
    conversations: &[RecordedConversation],
) -> Result<Verdict, OptimizerError> {
    let mut scratch = incumbent.to_vec();
    let mut actions = Vec::new();
    let mut errors = Vec::new();
    for call in calls {
        let checked = match static_check(call, &scratch, limits.allowed_packages)
            .and_then(|checked| fits_prompt(checked, &scratch, limits.max_list_bytes))
        {
            Ok((action, parameters)) => {
                run_checks(
                    action,
                    parameters,
                    executor.as_deref_mut(),
                    limits,
                    conversations,
                )
                .await?
            }
            Err(error) => Err(error),
        };
        match checked {
            Ok(action) => {
                action.apply(&mut scratch);
                actions.push(action);
                errors.push(None);
            }
            Err(error) => errors.push(Some(error)),
        }
    }
    Ok(if errors.iter().all(Option::is_none) {
        Verdict::Accepted(actions)
    } else {
        Verdict::Rejected(errors)
    })
}
