//! The optimizer prompt (AG2's sections and wording, typos fixed), the three tools it
//! offers, and the budget that keeps the prompt inside the model's context window.

use agentopt_llm::{
    ChatMessage, FunctionSchema, Role, ToolSchema, estimate_prompt_tokens, estimate_text_tokens,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::{FailedTrial, RecordedConversation};
use agentopt_core::LearnedFunction;

/// Name of the tool that adds a function.
pub const ADD_FUNCTION: &str = "add_function";
/// Name of the tool that revises a function.
pub const REVISE_FUNCTION: &str = "revise_function";
/// Name of the tool that removes a function.
pub const REMOVE_FUNCTION: &str = "remove_function";

/// Bytes per estimated token, as in [`estimate_prompt_tokens`].
const BYTES_PER_TOKEN: usize = 3;

fn add_or_revise_tool(name: &str, verb: &str) -> ToolSchema {
    let string = |description: &str| json!({"type": "string", "description": description});
    FunctionSchema {
        name: name.to_owned(),
        description: Some(format!(
            "{verb} a function in the context of the conversation. Necessary Python \
             packages must be declared. The name of the function MUST be the same with \
             the function name in the code you generated."
        )),
        parameters: json!({
            "type": "object",
            "properties": {
                "name": string("The name of the function in the code implementation."),
                "description": string("A short description of the function."),
                "arguments": string(
                    "JSON schema of arguments encoded as a string. Please note that the \
                     JSON schema only supports specific types including string, integer, \
                     object, array, boolean. (do not have float type) For example: { \
                     \"url\": { \"type\": \"string\", \"description\": \"The URL\", }}. \
                     Please avoid the error 'array schema missing items' when using array \
                     type."
                ),
                "packages": string(
                    "A list of package names imported by the function, and that need to \
                     be installed with pip prior to invoking the function. This solves \
                     ModuleNotFoundError. It should be string, not list."
                ),
                "code": string(
                    "The implementation in Python, including the function declaration \
                     `def NAME(...)` whose parameters are the names in `arguments`."
                ),
            },
            "required": ["name", "description", "arguments", "packages", "code"],
        }),
    }
    .into()
}

/// The optional `demonstrations` argument of `add_function` / `revise_function`.
fn demonstrations_schema() -> Value {
    json!({
        "type": "array",
        "description": "One or two worked examples of the function in use: a training \
            problem from the conversations (its text copied exactly), a short Python \
            solution that calls the function and prints the answer, and the answer. An \
            example is kept only if running its solution gives the problem's correct \
            answer.",
        "items": {
            "type": "object",
            "properties": {
                "problem": {"type": "string"},
                "solution": {"type": "string"},
                "answer": {"type": "string"},
            },
            "required": ["problem", "solution", "answer"],
        },
        "maxItems": 2,
    })
}

/// [`optimizer_tools`], with the optional `demonstrations` argument on adding and
/// revising when `demonstrations` is set (else exactly AG2's tools).
pub fn optimizer_tools_asking(demonstrations: bool) -> Vec<ToolSchema> {
    let mut tools = optimizer_tools();
    if demonstrations {
        for tool in &mut tools {
            let ToolSchema::Function { function } = tool;
            if function.name != REMOVE_FUNCTION {
                function.parameters["properties"]["demonstrations"] = demonstrations_schema();
            }
        }
    }
    tools
}

/// The three tools offered to the optimizer model: `add_function`, `revise_function`
/// (all-string `name`, `description`, `arguments`, `packages`, `code`) and
/// `remove_function` (`name`).
pub fn optimizer_tools() -> Vec<ToolSchema> {
    vec![
        add_or_revise_tool(ADD_FUNCTION, "Add"),
        add_or_revise_tool(REVISE_FUNCTION, "Revise"),
        FunctionSchema {
            name: REMOVE_FUNCTION.to_owned(),
            description: Some(
                "Remove one function in the context of the conversation. Once remove one \
                 function, the assistant will not use this function in future conversation."
                    .to_owned(),
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "The name of the function in the code implementation.",
                    },
                },
                "required": ["name"],
            }),
        }
        .into(),
    ]
}

/// A function the optimizer prompt shows as one worth adding, and the problems it
/// helps with. AG2's (the default) is `evaluate_expression` for "MATH problems"; a
/// task of another kind should show a function of its own kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptExample {
    /// What the problems are, as the sentence "…added in solving {task}, …" reads.
    pub task: String,
    /// The example function.
    pub function: LearnedFunction,
}

impl Default for PromptExample {
    fn default() -> Self {
        Self {
            task: "MATH problems".to_owned(),
            function: LearnedFunction::new(
                "evaluate_expression",
                "from sympy import sympify, SympifyError\n\ndef evaluate_expression(expression):\n    try:\n        result = sympify(expression)\n        if result.is_number:\n            result = float(result)\n        else:\n            result = str(result)\n        return result\n    except SympifyError as e:\n        return str(e)",
            )
            .with_description("Evaluate arithmetic or mathematical expressions provided as strings.")
            .with_parameters(serde_json::json!({
                "type": "object",
                "properties": {"expression": {
                    "type": "string",
                    "description": "The mathematical expression to evaluate.",
                }},
            }))
            .with_packages(["sympy"]),
        }
    }
}

/// The example as AG2 writes it: the function's five elements in AG2's order,
/// indented by four spaces.
#[derive(Serialize)]
struct ExampleForm<'a> {
    name: &'a str,
    description: &'a str,
    arguments: ExampleArguments<'a>,
    packages: String,
    code: &'a str,
}

/// Each argument's schema with `type` and `description` first, as AG2 writes them
/// (a JSON map would sort `description` first).
struct ExampleArguments<'a>(&'a Value);

impl Serialize for ExampleArguments<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let Value::Object(arguments) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(arguments.len()))?;
        for (name, schema) in arguments {
            map.serialize_entry(name, &SchemaFirstKeys(schema))?;
        }
        map.end()
    }
}

/// A schema object with `type`, then `description`, then the other keys.
struct SchemaFirstKeys<'a>(&'a Value);

impl Serialize for SchemaFirstKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let Value::Object(schema) = self.0 else {
            return self.0.serialize(serializer);
        };
        let first = ["type", "description"];
        let mut map = serializer.serialize_map(Some(schema.len()))?;
        for key in first {
            if let Some(value) = schema.get(key) {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in schema
            .iter()
            .filter(|(key, _)| !first.contains(&key.as_str()))
        {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// AG2's role text with `example` in it (byte-identical to AG2's for the default).
pub(crate) fn role_text(example: &PromptExample) -> String {
    let function = &example.function;
    let form = ExampleForm {
        name: &function.name,
        description: &function.description,
        arguments: ExampleArguments(
            function
                .parameters
                .get("properties")
                .unwrap_or(&function.parameters),
        ),
        packages: function.packages.join(" "),
        code: &function.code,
    };
    let mut json = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut json, formatter);
    let _ = form.serialize(&mut serializer);
    format!(
        "{ROLE_HEAD}Below is an example of a function that potentially deserves to be added \
         in solving {}, which can be used to solve a higher-level question:\n{}\n{ROLE_TAIL}",
        example.task,
        String::from_utf8_lossy(&json)
    )
}

/// AG2's role text up to its example function.
const ROLE_HEAD: &str = r#"You are a function optimizer. Your task is to maintain a list of functions for the assistant according to the existing function list and conversation history that happens between the assistant and the user.
You can perform one of the following four actions to manipulate the function list using the functions you have:
1. Revise one existing function (using revise_function).
2. Remove one existing function (using remove_function).
3. Add one new function (using add_function).
4. Directly return "TERMINATE" to me if no more actions are needed for the current function list.

Below are the principles that you need to follow for taking these four actions.
(1) Revise one existing function:
1. Pay more attention to the failed tasks and corresponding error information, and optimize the function used in these tasks according to the conversation history if needed.
2. A failed function call can occur due to incorrect input arguments (missing arguments) or an incorrect function code implementation. You should focus more on the function code implementation and make it easy to get success function call.
3. Do not revise the function that you think works well and plays a critical role in solving the problems according to the conversation history. Only making revisions if needed.
4. Sometimes, a NameError may occur. To fix this error, you can either revise the name of the function in the code implementation or revise the name of the function call to make these two names consistent.
(2) Remove one existing function:
1. Only remove the function that you think is not needed anymore in future tasks.
(3) Add one new function:
1. The added function should be general enough to be used in future tasks. For instance, if you encounter a problem that this function can solve, or one step of it, you can use the generated function directly instead of starting from scratch
2. The added new function should solve a higher-level question that encompasses the original query and extend the code's functionality to make it more versatile and widely applicable.
3. Replace specific strings or variable names with general variables to enhance the tool's applicability to various queries. All names used inside the function should be passed in as arguments.
"#;

/// The rest of AG2's role text, after the example.
const ROLE_TAIL: &str = r#"(4) Directly return "TERMINATE":
If you think there is no need to perform any other actions for the current function list since the current list is optimal more actions will harm the performance in future tasks. Please directly reply to me with "TERMINATE".

One function signature includes the following five elements:
1. Function name
2. Function description
3. JSON schema of arguments encoded as a string
4. A list of package names imported by the function packages
5. The code implementation
"#;

/// How the optimizer model states its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionFormat {
    /// AG2's way: the three tools are offered; a reply without a tool call ends the
    /// step.
    #[default]
    ToolCalls,
    /// The prompt lists the three functions and asks for one JSON object,
    /// `{"action": NAME, "arguments": {...}}` or `{"action": "TERMINATE"}`, and the
    /// request constrains the reply with [`action_schema`]. For models that answer
    /// tool prompts in prose (small local ones): llama.cpp turns the schema into a
    /// sampling grammar, so every reply is a well-formed action.
    JsonSchema,
}

impl std::str::FromStr for ActionFormat {
    type Err = String;

    /// `tool-calls` or `json-schema` (command-line spelling).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tool-calls" => Ok(Self::ToolCalls),
            "json-schema" => Ok(Self::JsonSchema),
            _ => Err(format!(
                "unknown action format {text:?}; expected tool-calls or json-schema"
            )),
        }
    }
}

/// The `action` value that ends a step in [`ActionFormat::JsonSchema`].
pub const TERMINATE_ACTION: &str = "TERMINATE";

/// Where [`ActionFormat::JsonSchema`] takes the argument schema of an added or
/// revised function: a map, not AG2's JSON string, so the grammar shapes it too;
/// named so that it sorts after `code` (the grammar keeps keys in order), and the
/// model writes the parameters of a `def` it has already written.
pub const JSON_PARAMETERS_FIELD: &str = "parameters";

/// The three functions as [`ActionFormat::JsonSchema`] lists them in the prompt;
/// `parameters` (see [`JSON_PARAMETERS_FIELD`]) replaces `arguments`.
fn json_action_functions(demonstrations: bool) -> Vec<FunctionSchema> {
    optimizer_tools_asking(demonstrations)
        .into_iter()
        .map(|tool| {
            let mut function = tool.function().clone();
            let parameters = &mut function.parameters;
            let properties = parameters["properties"].as_object_mut();
            if let Some(properties) = properties
                && properties.remove("arguments").is_some()
            {
                properties.insert(
                    JSON_PARAMETERS_FIELD.to_owned(),
                    json!({
                        "type": "object",
                        "description": "Each parameter of the `def` in `code`, by name: its \
                            JSON type (string, integer, number, boolean or array) and what \
                            it is. For example: {\"expression\": {\"type\": \"string\", \
                            \"description\": \"The expression to evaluate.\"}}",
                    }),
                );
                let mut required = json!([
                    "name",
                    "description",
                    "packages",
                    "code",
                    JSON_PARAMETERS_FIELD
                ]);
                // The grammar makes a small model write what is required, and only
                // that: asked for, an example is required.
                if demonstrations && let Some(required) = required.as_array_mut() {
                    required.push(json!("demonstrations"));
                }
                parameters["required"] = required;
            }
            function
        })
        .collect()
}

/// The grammar of [`JSON_PARAMETERS_FIELD`]: each parameter's JSON type and
/// description (`items` for arrays).
fn parameter_map_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "type": {"enum": ["string", "integer", "number", "boolean", "array"]},
                "description": {"type": "string"},
                "items": {
                    "type": "object",
                    "properties": {"type": {"enum": ["string", "integer", "number", "boolean"]}},
                    "required": ["type"],
                },
            },
            "required": ["type", "description"],
        },
    })
}

/// The JSON Schema of one reply in [`ActionFormat::JsonSchema`] with `functions` as
/// List B: one of [`json_action_functions`] with its arguments, where `add_function`
/// takes an identifier and `revise_function` / `remove_function` (only offered when
/// List B is not empty) take one of List B's names; or, when `may_terminate`,
/// `TERMINATE`.
pub fn action_schema(functions: &[LearnedFunction], may_terminate: bool) -> Value {
    action_schema_asking(functions, may_terminate, false)
}

/// [`action_schema`], where adding and revising also require worked examples when
/// `demonstrations` is set.
pub fn action_schema_asking(
    functions: &[LearnedFunction],
    may_terminate: bool,
    demonstrations: bool,
) -> Value {
    let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    let mut choices: Vec<Value> = json_action_functions(demonstrations)
        .into_iter()
        .filter(|function| function.name == ADD_FUNCTION || !names.is_empty())
        .map(|mut function| {
            let properties = &mut function.parameters["properties"];
            if function.name == ADD_FUNCTION {
                properties["name"]["pattern"] = json!("^[A-Za-z_][A-Za-z0-9_]*$");
            } else {
                properties["name"]["enum"] = json!(names);
            }
            if let Some(parameters) = properties.get_mut(JSON_PARAMETERS_FIELD) {
                *parameters = parameter_map_schema();
            }
            json!({
                "type": "object",
                "properties": {
                    "action": {"const": function.name},
                    "arguments": function.parameters,
                },
                "required": ["action", "arguments"],
            })
        })
        .collect();
    if may_terminate {
        choices.push(json!({
            "type": "object",
            "properties": {"action": {"const": TERMINATE_ACTION}},
            "required": ["action"],
        }));
    }
    json!({"anyOf": choices})
}

/// What [`ActionFormat::JsonSchema`] appends to the prompt in place of offered tools
/// (the same text whatever List B holds, so the budget's fixed part is fixed).
pub(crate) fn json_action_instruction(demonstrations: bool) -> String {
    format!(
        "The functions you know:\n{}\nTake an action by replying with one JSON object and \
         nothing else: {{\"action\": FUNCTION NAME, \"arguments\": {{...the function's \
         arguments...}}}}, or {{\"action\": \"{TERMINATE_ACTION}\"}}.\n",
        serde_json::to_string(&json_action_functions(demonstrations)).unwrap_or_default()
    )
}

const CLOSING: &str = "According to the information I provide, please take one of four actions to manipulate list B using the functions you know.
Instead of returning TERMINATE directly or taking no action, you should try your best to optimize the function list. Only take no action if you really think the current list is optimal, as more actions will harm performance in future tasks.
Even adding a general function that can substitute the assistant's repeated suggestions of Python code with the same functionality could also be helpful.
";

/// Tokens kept for the validation errors sent back with a rejected reply.
pub(crate) const FEEDBACK_TOKENS: u32 = 384;

/// Limits that keep the prompt bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PromptBudget {
    /// The model's context window.
    pub(crate) context_window: u32,
    /// Most tokens (as estimated by [`estimate_prompt_tokens`]) the prompt, tools
    /// included, may take.
    pub(crate) max_prompt_tokens: usize,
    /// Longest tool or function output kept whole in a history, in characters; longer
    /// outputs keep their head and tail around a cut marker.
    pub(crate) max_tool_output_chars: usize,
    /// Tools offered, or the functions listed in the prompt: both take room.
    pub(crate) action_format: ActionFormat,
    /// The add and revise actions ask for worked examples (a larger schema).
    pub(crate) asks_demonstrations: bool,
}

/// What went into one prompt and what was cut to fit the budget.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromptReport {
    /// The token budget.
    pub budget_tokens: usize,
    /// Estimated tokens of the prompt, tools included.
    pub prompt_tokens: usize,
    /// Conversations (by index) shown whole, tool-output cuts aside.
    pub conversations_full: Vec<usize>,
    /// Conversations shown shortened to their first and last messages.
    pub conversations_condensed: Vec<usize>,
    /// Conversations left out.
    pub conversations_omitted: Vec<usize>,
    /// Tool or function outputs cut with a marker.
    pub tool_outputs_cut: usize,
    /// Failure-experience entries (the lowest scores) left out.
    pub failures_omitted: usize,
}

/// Everything the prompt shows.
#[derive(Clone, Copy)]
pub(crate) struct PromptInputs<'a> {
    /// The role text with the example ([`role_text`]).
    pub(crate) role: &'a str,
    /// Sections beyond AG2's (function use, solutions to generalise), before the
    /// closing request; empty for AG2's prompt.
    pub(crate) extra: &'a str,
    pub(crate) best: &'a [LearnedFunction],
    pub(crate) incumbent: &'a [LearnedFunction],
    pub(crate) actions_taken: usize,
    pub(crate) failures: &'a [FailedTrial],
    pub(crate) conversations: &'a [RecordedConversation],
}

pub(crate) fn functions_text(functions: &[LearnedFunction]) -> String {
    let forms: Vec<_> = functions.iter().map(crate::function::prompt_form).collect();
    serde_json::to_string(&forms).unwrap_or_default()
}

fn failure_text(failures: &[FailedTrial]) -> String {
    if failures.is_empty() {
        return "\n".to_owned();
    }
    let mut text = "We also provide more examples for different functions and their corresponding \
                    performance (0-1, the share of satisfied conversations).\n The following function signatures are arranged in \
                    ascending order based on their performance, where higher performance \
                    indicate better quality.\n"
        .to_owned();
    text.push_str(&failure_entries(failures));
    text
}

/// Each failure's list and score, as AG2's prompt shows them.
pub(crate) fn failure_entries(failures: &[FailedTrial]) -> String {
    failures
        .iter()
        .map(|failure| {
            format!(
                "Function: \n{}\nPerformance: \n{}\n",
                functions_text(&failure.functions),
                failure.performance
            )
        })
        .collect()
}

/// The text `render` makes of the highest-scored failures (the end of the
/// ascending list) that fit `share` bytes, and how many were left out.
pub(crate) fn failures_within(
    failures: &[FailedTrial],
    share: usize,
    render: impl Fn(&[FailedTrial]) -> String,
) -> (String, usize) {
    let mut kept = failures.len();
    let mut text = render(failures);
    while kept > 0 && cost(&text) > share {
        kept -= 1;
        text = render(&failures[failures.len() - kept..]);
    }
    (text, failures.len() - kept)
}

/// What `text` takes of a budget counted in bytes: its estimated tokens, in bytes
/// (a digit, a token of its own, weighs three).
pub(crate) fn cost(text: &str) -> usize {
    estimate_text_tokens(text) * BYTES_PER_TOKEN
}

/// The bytes a quarter of `budget`'s prompt tokens hold: what the failure
/// experience may take of a merge prompt.
pub(crate) fn quarter_of_budget_bytes(budget: &PromptBudget) -> usize {
    budget.max_prompt_tokens * BYTES_PER_TOKEN / 4
}

const STATISTICS_HEADER: &str = "The following table shows the statistical information for \
    solving each task in each conversation and indicates, whether the result is satisfied by \
    the users. 1 represents satisfied. 0 represents not satisfied.\n";

/// One row of the statistics table.
fn statistics_row(index: usize, conversation: &RecordedConversation) -> String {
    format!(
        "{{\"Conversation {index}\": {}}}\n",
        u8::from(conversation.satisfied)
    )
}

/// AG2's statistics table: a row per conversation.
fn full_statistics(conversations: &[RecordedConversation]) -> String {
    if conversations.is_empty() {
        return "\n".to_owned();
    }
    let rows = conversations.iter().enumerate();
    let rows: String = rows.map(|(index, c)| statistics_row(index, c)).collect();
    format!("{STATISTICS_HEADER}{rows}")
}

/// The table when the full one does not fit: the rows of the conversations shown,
/// then one line counting the outcomes of the others.
fn compact_statistics(conversations: &[RecordedConversation], shown: &[usize]) -> String {
    let mut text = STATISTICS_HEADER.to_owned();
    for &index in shown {
        text.push_str(&statistics_row(index, &conversations[index]));
    }
    let others = || {
        (0..conversations.len())
            .filter(|index| !shown.contains(index))
            .map(|index| &conversations[index])
    };
    let satisfied = others().filter(|c| c.satisfied).count();
    let unsatisfied = others().count() - satisfied;
    text.push_str(&format!(
        "{{\"The other {} conversations\": \"{satisfied} satisfied (1), {unsatisfied} not \
         satisfied (0); not listed one by one to fit the prompt\"}}\n",
        satisfied + unsatisfied
    ));
    text
}

/// The parts of the prompt that vary with the budget.
#[derive(Default)]
struct Sections<'a> {
    failures: &'a str,
    statistics: &'a str,
    shown: usize,
    note: &'a str,
    history: &'a str,
}

fn assemble(inputs: &PromptInputs<'_>, budget: &PromptBudget, sections: &Sections<'_>) -> String {
    let Sections {
        failures,
        statistics,
        shown,
        note,
        history,
    } = sections;
    let role = inputs.role;
    let extra = match inputs.extra {
        "" => String::new(),
        text => format!("{text}\n"),
    };
    format!(
        "{role}\nBelow are the signatures of the current functions:\nList A: {}.\n\
         The following list are the function signatures that you have after taking {} \
         actions to manipulate List A:\nList B: {}.\n\n{failures}\n\nHere are {shown} \
         conversation histories of solving {shown} tasks using List A.{note}\nHistory:\n\
         {history}\n\n{statistics}\n\n{extra}{CLOSING}{}",
        functions_text(inputs.best),
        inputs.actions_taken,
        functions_text(inputs.incumbent),
        match budget.action_format {
            ActionFormat::ToolCalls => String::new(),
            ActionFormat::JsonSchema => json_action_instruction(budget.asks_demonstrations),
        },
    )
}

pub(crate) fn tokens(prompt: &str, budget: &PromptBudget) -> usize {
    let tools = match budget.action_format {
        ActionFormat::ToolCalls => optimizer_tools_asking(budget.asks_demonstrations),
        ActionFormat::JsonSchema => Vec::new(),
    };
    estimate_prompt_tokens(&[ChatMessage::user(prompt)], &tools)
}

/// Keeps the head and tail of `text` around a marker when it is longer than `limit`
/// characters.
pub(crate) fn cut_middle(text: &str, limit: usize) -> Option<String> {
    let length = text.chars().count();
    if length <= limit {
        return None;
    }
    let head: String = text.chars().take(limit / 2).collect();
    let tail: String = text.chars().skip(length - (limit - limit / 2)).collect();
    Some(format!(
        "{head}\n[... {} characters cut by agentopt ...]\n{tail}",
        length - limit
    ))
}

/// A conversation with long tool outputs cut; returns how many were cut.
fn cut_tool_outputs(messages: &[ChatMessage], limit: usize) -> (Vec<ChatMessage>, usize) {
    let mut cut = 0;
    let messages = messages
        .iter()
        .map(|message| {
            let mut message = message.clone();
            if matches!(message.role, Role::Tool | Role::Function)
                && let Some(shorter) = message
                    .content
                    .as_deref()
                    .and_then(|c| cut_middle(c, limit))
            {
                message.content = Some(shorter);
                cut += 1;
            }
            message
        })
        .collect();
    (messages, cut)
}

/// `{"Conversation i":[…]}` with each message's fields in wire order (role first).
fn conversation_text(index: usize, messages: &[String]) -> String {
    format!("{{\"Conversation {index}\":[{}]}}", messages.join(","))
}

fn message_texts(messages: &[ChatMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| serde_json::to_string(message).unwrap_or_default())
        .collect()
}

/// The first and last messages around a marker, each cut to `limit` characters.
fn condensed_text(index: usize, messages: &[ChatMessage], limit: usize) -> String {
    let shorten = |message: &ChatMessage| {
        let mut message = message.clone();
        if let Some(shorter) = message
            .content
            .as_deref()
            .and_then(|c| cut_middle(c, limit))
        {
            message.content = Some(shorter);
        }
        message
    };
    let mut texts = Vec::new();
    if let Some(first) = messages.first() {
        texts.extend(message_texts(&[shorten(first)]));
    }
    if messages.len() > 2 {
        texts.push(format!(
            "\"[... {} messages cut by agentopt ...]\"",
            messages.len() - 2
        ));
    }
    if messages.len() > 1
        && let Some(last) = messages.last()
    {
        texts.extend(message_texts(&[shorten(last)]));
    }
    conversation_text(index, &texts)
}

/// Failures first, alternating with successes, so a tight budget still shows both.
fn balanced_order(conversations: &[RecordedConversation]) -> Vec<usize> {
    let (failed, satisfied): (Vec<usize>, Vec<usize>) =
        (0..conversations.len()).partition(|&index| !conversations[index].satisfied);
    let mut order = Vec::with_capacity(conversations.len());
    for position in 0..failed.len().max(satisfied.len()) {
        order.extend(failed.get(position));
        order.extend(satisfied.get(position));
    }
    order
}

/// The most bytes List B may take in the prompt: a third of what the fixed text
/// leaves, so List A and List B together never take more than two thirds and the
/// failure experience and histories always keep room.
pub(crate) fn max_list_bytes(budget: &PromptBudget, role: &str) -> usize {
    let empty = PromptInputs {
        role,
        extra: "",
        best: &[],
        incumbent: &[],
        actions_taken: 0,
        failures: &[],
        conversations: &[],
    };
    let bare = tokens(&assemble(&empty, budget, &Sections::default()), budget);
    budget.max_prompt_tokens.saturating_sub(bare) * BYTES_PER_TOKEN / 3
}

/// How many bytes `functions` take when shown as List A or List B.
pub(crate) fn list_bytes(functions: &[LearnedFunction]) -> usize {
    functions_text(functions).len()
}

/// Builds the prompt within `budget`; returns it with what was cut.
///
/// What the fixed text leaves is shared out in turn: the failure experience takes at
/// most a quarter, the statistics table at most a quarter of the rest (else it lists
/// only the conversations shown and counts the others in one line), and histories
/// fill what remains.
pub(crate) fn build_prompt(
    inputs: &PromptInputs<'_>,
    budget: &PromptBudget,
) -> Result<(String, PromptReport), usize> {
    let mut report = PromptReport {
        budget_tokens: budget.max_prompt_tokens,
        ..PromptReport::default()
    };
    let bare_tokens = tokens(&assemble(inputs, budget, &Sections::default()), budget);
    if bare_tokens > budget.max_prompt_tokens {
        return Err(bare_tokens);
    }
    let mut spare_bytes = (budget.max_prompt_tokens - bare_tokens) * BYTES_PER_TOKEN;

    let (failures, omitted) = failures_within(inputs.failures, spare_bytes / 4, failure_text);
    report.failures_omitted = omitted;
    spare_bytes = spare_bytes.saturating_sub(cost(&failures));
    // Room for the note about what was left out (its digits vary).
    let note_room = 160;
    spare_bytes = spare_bytes.saturating_sub(note_room);

    let full_table = full_statistics(inputs.conversations);
    let table_fits = cost(&full_table) <= spare_bytes / 4;
    spare_bytes = if table_fits {
        spare_bytes - cost(&full_table)
    } else {
        // The header and the count line of the compact table; rows are paid for
        // with the conversation they belong to.
        let empty_table = compact_statistics(inputs.conversations, &[]);
        spare_bytes.saturating_sub(cost(&empty_table) + 16)
    };
    let chosen = choose_histories(inputs, budget, spare_bytes, !table_fits, &mut report);
    let shown: Vec<usize> = chosen.iter().map(|(index, _)| *index).collect();
    let statistics = if table_fits {
        full_table
    } else {
        compact_statistics(inputs.conversations, &shown)
    };
    let history: Vec<String> = chosen.into_iter().map(|(_, text)| text).collect();
    let note =
        if report.conversations_condensed.is_empty() && report.conversations_omitted.is_empty() {
            String::new()
        } else {
            format!(
                " To fit the prompt, {} of them are shortened and {} more are left out.",
                report.conversations_condensed.len(),
                report.conversations_omitted.len()
            )
        };
    let sections = Sections {
        failures: &failures,
        statistics: &statistics,
        shown: history.len(),
        note: &note,
        history: &history.join("\n"),
    };
    let prompt = assemble(inputs, budget, &sections);
    report.prompt_tokens = tokens(&prompt, budget);
    Ok((prompt, report))
}

/// The histories shown, in index order, within `spare_bytes`: failures and successes
/// alternating, each whole (tool outputs cut), else condensed, else left out. With
/// `pay_rows`, a shown conversation also pays for its row of the statistics table.
fn choose_histories(
    inputs: &PromptInputs<'_>,
    budget: &PromptBudget,
    mut spare_bytes: usize,
    pay_rows: bool,
    report: &mut PromptReport,
) -> Vec<(usize, String)> {
    let condensed_limit = budget.max_tool_output_chars.min(1000);
    let mut chosen: Vec<(usize, String)> = Vec::new();
    for index in balanced_order(inputs.conversations) {
        let conversation = &inputs.conversations[index];
        let row = if pay_rows {
            cost(&statistics_row(index, conversation))
        } else {
            0
        };
        let (messages, cut) =
            cut_tool_outputs(&conversation.messages, budget.max_tool_output_chars);
        let full = conversation_text(index, &message_texts(&messages));
        let full_cost = cost(&full);
        if full_cost + row < spare_bytes {
            spare_bytes -= full_cost + row + 1;
            report.tool_outputs_cut += cut;
            report.conversations_full.push(index);
            chosen.push((index, full));
            continue;
        }
        let condensed = condensed_text(index, &messages, condensed_limit);
        let condensed_cost = cost(&condensed);
        if condensed_cost + row < spare_bytes {
            spare_bytes -= condensed_cost + row + 1;
            report.conversations_condensed.push(index);
            chosen.push((index, condensed));
        } else {
            report.conversations_omitted.push(index);
        }
    }
    chosen.sort_by_key(|(index, _)| *index);
    report.conversations_full.sort_unstable();
    report.conversations_condensed.sort_unstable();
    report.conversations_omitted.sort_unstable();
    chosen
}
