//! What makes learned functions get used, beyond AG2: worked examples checked by
//! running them, proposals called on sample arguments before they are accepted,
//! each function's use shown to the optimizer (and unused ones pruned), and correct
//! training solutions offered as material for new functions.

use std::collections::{BTreeMap, BTreeSet};

use agentopt_core::{Demonstration, DemonstrationCall, LearnedFunction};
use agentopt_llm::{ChatMessage, Role};
use agentopt_sandbox::{CellOutcome, Executor, SandboxError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::state::{RecordedConversation, Scored};

/// The levers, each off by default (AG2's optimizer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedUseOptions {
    /// Ask for worked examples with every added or revised function (an optional
    /// `demonstrations` argument of the action); they are kept only when running
    /// them reproduces the training problem's reference answer. Examples the model
    /// writes anyway are checked the same way whatever this says.
    #[serde(default)]
    pub demonstrations: bool,
    /// Call every proposed function on sample arguments of its declared types in
    /// the sandbox; one that fails with an error no argument excuses (a name not
    /// defined, a module not imported, a wrong call) is rejected with the error.
    #[serde(default)]
    pub execution_checks: bool,
    /// Show each function's calls and successes in the conversations to the
    /// optimizer.
    #[serde(default)]
    pub use_statistics: bool,
    /// Remove a function no conversation called in this many consecutive steps
    /// (counted only over conversations recorded with their calls).
    #[serde(default)]
    pub prune_unused_after: Option<u32>,
    /// Show the code of correct training solutions and ask for a function that
    /// generalises it.
    #[serde(default)]
    pub from_what_worked: bool,
}

/// How one conversation used one learned function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUse {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned normally.
    pub succeeded: u64,
    /// The conversation's code bound the function's name to a version of its own
    /// (a `def`, an import of the same name): it preferred writing its own.
    #[serde(default)]
    pub shadowed: bool,
}

/// The task's answers, for checking worked examples: the reference answer of a
/// training problem and the task's own answer check.
#[async_trait]
pub trait AnswerJudge: Send + Sync {
    /// The reference answer of the training problem whose text is `problem`
    /// (whitespace and case aside), if it is one.
    fn reference_answer(&self, problem: &str) -> Option<String>;

    /// Whether `answer` agrees with `reference` under the task's answer check.
    async fn agrees(&self, answer: &str, reference: &str) -> bool;
}

/// Marks the harness's report line in a demonstration's output.
const CALLS_MARKER: &str = "@@agentopt-demonstration-calls ";

/// Python that defines `function` in a namespace of its own, wraps it to record its
/// calls, runs `solution` there and prints the first call and the call count.
fn demonstration_harness(function: &LearnedFunction, solution: &str) -> String {
    let code = Value::String(function.code.clone());
    let solution = Value::String(solution.to_owned());
    let name = Value::String(function.name.clone());
    let marker = Value::String(CALLS_MARKER.to_owned());
    format!(
        "def __agentopt_demo():\n\
         \x20   import inspect, json\n\
         \x20   ns = {{'__name__': '__demonstration__'}}\n\
         \x20   exec(compile({code}, '<function>', 'exec'), ns)\n\
         \x20   inner = ns[{name}]\n\
         \x20   calls = []\n\
         \x20   def traced(*args, **kwargs):\n\
         \x20       try:\n\
         \x20           bound = dict(inspect.signature(inner).bind(*args, **kwargs).arguments)\n\
         \x20       except Exception:\n\
         \x20           bound = {{'args': list(args), **kwargs}}\n\
         \x20       result = inner(*args, **kwargs)\n\
         \x20       calls.append([bound, str(result)])\n\
         \x20       return result\n\
         \x20   ns[{name}] = traced\n\
         \x20   exec(compile({solution}, '<solution>', 'exec'), ns)\n\
         \x20   print()\n\
         \x20   print({marker} + json.dumps([len(calls), calls[:1]], default=str))\n\
         __agentopt_demo()\n"
    )
}

/// Runs `demonstration` of `function` in the sandbox and keeps it only when its
/// solution calls the function and prints an answer that agrees with the training
/// problem's reference answer under `judge`. The kept example records the call and
/// what the solution printed; `Err` carries the feedback for the optimizer.
///
/// # Errors
/// The sandbox failing (not the example's code failing, which is feedback).
pub async fn verify_demonstration(
    executor: &mut dyn Executor,
    function: &LearnedFunction,
    demonstration: &Demonstration,
    judge: &dyn AnswerJudge,
) -> Result<Result<Demonstration, String>, SandboxError> {
    let Some(reference) = judge.reference_answer(&demonstration.problem) else {
        return Ok(Err(format!(
            "its problem {:?} is not one of the training problems; copy a training \
             problem's text exactly",
            cut(&demonstration.problem, 120)
        )));
    };
    let outcome = executor
        .run_cell(&demonstration_harness(function, &demonstration.solution))
        .await?;
    if let Some(error) = outcome.error_text() {
        return Ok(Err(format!("running its solution fails:\n{error}")));
    }
    let Some((printed, call)) = read_harness_output(&outcome) else {
        return Ok(Err(format!(
            "its solution does not call {}; a demonstration shows the function in use",
            function.name
        )));
    };
    let Some(printed) = printed else {
        return Ok(Err(
            "its solution prints nothing; it must print the answer".to_owned()
        ));
    };
    if !judge.agrees(&printed, &reference).await {
        return Ok(Err(format!(
            "its solution prints {printed:?}, but the answer to that problem is {reference:?}"
        )));
    }
    Ok(Ok(Demonstration {
        answer: printed,
        call: Some(call),
        ..demonstration.clone()
    }))
}

/// The last line the solution printed (if any) and the function's first call;
/// `None` when the function was not called.
fn read_harness_output(outcome: &CellOutcome) -> Option<(Option<String>, DemonstrationCall)> {
    let (printed, report) = outcome.stdout.rsplit_once(CALLS_MARKER)?;
    let report: Value = serde_json::from_str(report.trim()).ok()?;
    if report[0].as_u64().unwrap_or(0) == 0 {
        return None;
    }
    let first = &report[1][0];
    let call = DemonstrationCall {
        arguments: first[0].clone(),
        result: first[1].as_str().unwrap_or_default().to_owned(),
    };
    let last_line = printed
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_owned);
    Some((last_line, call))
}

/// Exceptions no argument value excuses: the code itself is wrong.
const CODE_ERRORS: &[&str] = &[
    "NameError",
    "UnboundLocalError",
    "ImportError",
    "ModuleNotFoundError",
    "AttributeError",
    "SyntaxError",
    "TypeError",
];

/// A value of each declared parameter's JSON type: what an execution check calls a
/// proposed function with.
pub fn sample_arguments(function: &LearnedFunction) -> Map<String, Value> {
    let properties = function.parameters["properties"].as_object();
    properties
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let value = match schema["type"].as_str() {
                Some("number") => json!(2.5),
                Some("string") => json!("12"),
                Some("boolean") => json!(true),
                Some("array") => match schema["items"]["type"].as_str() {
                    Some("string") => json!(["1", "2", "3"]),
                    _ => json!([1, 2, 3]),
                },
                Some("object") => json!({}),
                _ => json!(12),
            };
            (name.clone(), value)
        })
        .collect()
}

/// Calls `function` on [`sample_arguments`]; `Err` (feedback) when it raises one of
/// [`CODE_ERRORS`] or runs too long. A `TypeError` counts only when integers fail
/// too: a parameter taken from an unannotated `def` is declared a string, and code
/// written for numbers is not wrong for that (the 1.5B optimizer's `n % 10` was
/// rejected so).
pub(crate) async fn sample_call_check(
    executor: &mut dyn Executor,
    function: &LearnedFunction,
) -> Result<Result<(), String>, SandboxError> {
    let arguments = sample_arguments(function);
    let outcome = executor.call_function(function, &arguments).await?;
    let Some(error) = outcome.error_text() else {
        return Ok(Ok(()));
    };
    let fatal = match exception_name(&error) {
        Some("TypeError") => {
            let integers = arguments
                .keys()
                .map(|name| (name.clone(), json!(12)))
                .collect();
            let retried = executor.call_function(function, &integers).await?;
            retried.error_text().is_some()
        }
        Some(name) => CODE_ERRORS.contains(&name),
        // A timeout or a crash.
        None => true,
    };
    if !fatal {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "calling {}(**{}) with sample arguments of the declared types fails in the \
         sandbox:\n{error}\nMake the code work for any value of the declared types \
         (import every module it uses inside the function).",
        function.name,
        Value::Object(arguments)
    )))
}

/// The exception class a traceback ends with (`NameError` of `NameError: name …`).
fn exception_name(traceback: &str) -> Option<&str> {
    let last = traceback
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())?;
    let name = last.split(':').next()?.trim();
    let name = name.rsplit('.').next()?;
    let looks_like_class = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && (name.ends_with("Error") || name.ends_with("Exception"));
    looks_like_class.then_some(name)
}

/// Each function's use over `conversations`, for the optimizer's prompt; empty when
/// no conversation was recorded with its calls.
pub(crate) fn use_statistics_text(
    functions: &[LearnedFunction],
    conversations: &[impl Scored],
) -> String {
    let known: Vec<&BTreeMap<String, FunctionUse>> =
        conversations.iter().filter_map(Scored::uses).collect();
    if known.is_empty() || functions.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "How the assistant used the functions of List A in these {} conversations (a \
         function nobody calls does not help: make it the obvious tool for these \
         problems, or remove it):\n",
        known.len()
    );
    for function in functions {
        let uses: Vec<FunctionUse> = known
            .iter()
            .filter_map(|uses| uses.get(&function.name).copied())
            .collect();
        let called: Vec<&FunctionUse> = uses.iter().filter(|used| used.calls > 0).collect();
        let calls: u64 = called.iter().map(|used| used.calls).sum();
        let succeeded: u64 = called.iter().map(|used| used.succeeded).sum();
        text.push_str(&format!(
            "- {}: called in {} of {} conversations ({calls} calls, {succeeded} succeeded)",
            function.name,
            called.len(),
            known.len()
        ));
        let shadowed = uses.iter().filter(|used| used.shadowed).count();
        if shadowed > 0 {
            text.push_str(&format!(
                "; in {shadowed} the assistant wrote or imported its own {} instead",
                function.name
            ));
        }
        text.push('\n');
    }
    text
}

/// The checked worked examples of `functions`, each once: what a merge prompt
/// shows, since it shows no conversation to take a problem from (a function added
/// or revised there must bring its examples again); empty when none has any.
pub(crate) fn demonstrations_text<'a>(
    functions: impl IntoIterator<Item = &'a LearnedFunction>,
) -> String {
    let mut seen = BTreeSet::new();
    let mut lines = String::new();
    for function in functions {
        for example in &function.demonstrations {
            if !seen.insert((&function.name, &example.problem, &example.solution)) {
                continue;
            }
            let shown = json!({
                "problem": example.problem,
                "solution": example.solution,
                "answer": example.answer,
            });
            lines.push_str(&format!("- {}: {shown}\n", function.name));
        }
    }
    if lines.is_empty() {
        return lines;
    }
    format!(
        "Worked examples of these functions, checked by running them (give a function \
         you add or revise its examples again, copied exactly):\n{lines}"
    )
}

/// Most correct solutions shown by [`worked_solutions_text`], and the longest code
/// of each, in characters: material for one function, not a second history.
const WORKED_SOLUTIONS: usize = 3;
const WORKED_SOLUTION_CHARS: usize = 600;

/// The Python of up to three satisfied conversations, with the request to turn a
/// computation they share into a function; empty when none wrote code.
pub(crate) fn worked_solutions_text(conversations: &[RecordedConversation]) -> String {
    let solutions: Vec<(usize, String)> = conversations
        .iter()
        .enumerate()
        .filter(|(_, conversation)| conversation.satisfied)
        .filter_map(|(index, conversation)| {
            let code = python_of(&conversation.messages);
            (!code.is_empty()).then(|| (index, cut(&code, WORKED_SOLUTION_CHARS)))
        })
        .take(WORKED_SOLUTIONS)
        .collect();
    if solutions.is_empty() {
        return String::new();
    }
    let mut text = "Code of correct solutions (their answers were checked right). Generalise \
        a computation they perform into one function with parameters, so that the \
        assistant can call it on similar problems instead of writing it again:\n"
        .to_owned();
    for (index, code) in solutions {
        text.push_str(&format!(
            "Solution of conversation {index}:\n```python\n{code}\n```\n"
        ));
    }
    text
}

/// The Python code blocks the assistant wrote in `messages`, joined.
fn python_of(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .filter(|message| message.role == Role::Assistant)
        .filter_map(|message| message.content.as_deref())
        .flat_map(|text| agentopt_math::extract_code(text, false))
        .filter(|block| {
            matches!(
                block.lang,
                agentopt_math::Lang::Python | agentopt_math::Lang::Untagged
            )
        })
        .map(|block| block.code.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A solution that calls `name`, read off a conversation: the first Python block of
/// the assistant that calls it, else its first tool call of it as
/// `print(name(**arguments))`. What a worked example is bootstrapped from.
pub fn solution_calling(messages: &[ChatMessage], name: &str) -> Option<String> {
    let called = format!("{name}(");
    let assistant = messages.iter().filter(|m| m.role == Role::Assistant);
    let from_code = assistant
        .clone()
        .filter_map(|message| message.content.as_deref())
        .flat_map(|text| agentopt_math::extract_code(text, false))
        .find(|block| {
            matches!(
                block.lang,
                agentopt_math::Lang::Python | agentopt_math::Lang::Untagged
            ) && block.code.contains(&called)
        })
        .map(|block| block.code.trim().to_owned());
    from_code.or_else(|| {
        assistant
            .flat_map(ChatMessage::requested_calls)
            .find(|(_, call)| call.name == name)
            .map(|(_, call)| {
                let arguments = Value::String(call.arguments.clone());
                format!("import json\nprint({name}(**json.loads({arguments})))")
            })
    })
}

/// `text` cut to `limit` characters with a marker.
fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Counts, per function of `trial`, the consecutive steps in which no conversation
/// called it; unchanged when some conversation was recorded without its calls.
pub(crate) fn count_unused_steps(
    unused: &mut BTreeMap<String, u32>,
    trial: &[LearnedFunction],
    conversations: &[impl Scored],
) {
    let Some(uses) = conversations
        .iter()
        .map(Scored::uses)
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    if uses.is_empty() {
        return;
    }
    unused.retain(|name, _| trial.iter().any(|function| &function.name == name));
    for function in trial {
        let called = uses
            .iter()
            .any(|uses| uses.get(&function.name).is_some_and(|used| used.calls > 0));
        let count = unused.entry(function.name.clone()).or_insert(0);
        *count = if called { 0 } else { *count + 1 };
    }
}
