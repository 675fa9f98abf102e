//! Every validation rule rejects a bad proposal, and the retry carries the error.

use agentopt_llm::{ChatMessage, FunctionCall, ToolCall};
use agentopt_optimizer::{AgentOptimizer, OptimizerOptions, StepOutcome};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::{Value, json};

use crate::{add_sum, function_call, messages, optimizer, record, remove, sandbox};

/// Runs one step whose first reply is `bad` and whose retry answers TERMINATE, then
/// checks the rejection and the feedback the retry carried.
async fn check(bad: Reply, expected: &str) {
    let server = crate::server([bad, Reply::text("TERMINATE")]).await;
    let mut optimizer = optimizer(&server, 2, OptimizerOptions::default());
    let outcome = step_with_sandbox(&mut optimizer, &[true]).await;
    assert_rejected_then_retried(&server, &outcome, expected);
}

async fn step_with_sandbox(optimizer: &mut AgentOptimizer, outcomes: &[bool]) -> StepOutcome {
    record(optimizer, outcomes);
    match optimizer.step().await {
        Ok(outcome) => outcome,
        Err(error) => panic!("step: {error}"),
    }
}

fn assert_rejected_then_retried(server: &ScriptedServer, outcome: &StepOutcome, expected: &str) {
    let Some(rejected) = outcome.rejected.first() else {
        panic!("nothing rejected; actions: {:?}", outcome.actions);
    };
    let errors: Vec<&str> = rejected
        .errors
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert!(
        errors.iter().any(|error| error.contains(expected)),
        "expected {expected:?} in {errors:?}"
    );
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 2, "one retry after the rejection");
    let retry = messages(&requests[1]);
    // The retry repeats the prompt, the rejected reply and a tool result per call.
    assert_eq!(retry[1]["role"], "assistant");
    let feedback: Vec<&str> = retry[2..]
        .iter()
        .filter(|message| message["role"] == "tool")
        .filter_map(|message| message["content"].as_str())
        .collect();
    assert!(
        feedback
            .iter()
            .any(|text| text.starts_with("Rejected: ") && text.contains(expected)),
        "expected {expected:?} in the feedback {feedback:?}"
    );
    assert!(
        outcome.functions.is_empty(),
        "nothing applied: {:?}",
        outcome.functions
    );
}

fn add_with(arguments: Value) -> Reply {
    Reply::tool_call("add_function", arguments)
}

fn sum_fields() -> Value {
    add_sum("sum_numbers").1
}

fn with(field: &str, value: &str) -> Reply {
    let mut arguments = sum_fields();
    arguments[field] = Value::String(value.to_owned());
    add_with(arguments)
}

#[tokio::test]
async fn tool_call_arguments_must_be_json() {
    check(
        Reply::tool_call_raw("add_function", "{\"name\": \"f\", "),
        "not a JSON object",
    )
    .await;
}

#[tokio::test]
async fn arguments_schema_must_be_json() {
    check(
        with("arguments", "{\"a\": {\"type\": "),
        "`arguments` is not valid JSON",
    )
    .await;
}

#[tokio::test]
async fn schema_properties_must_be_parameters() {
    check(
        with(
            "arguments",
            &json!({"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}})
                .to_string(),
        ),
        "which the code's function does not take",
    )
    .await;
}

#[tokio::test]
async fn every_parameter_needs_a_schema() {
    check(
        with("arguments", &json!({"a": {"type": "integer"}}).to_string()),
        "[\"b\"] of the code are not in `arguments`",
    )
    .await;
}

#[tokio::test]
async fn schema_types_are_restricted() {
    check(
        with(
            "arguments",
            &json!({"a": {"type": "float"}, "b": {"type": "integer"}}).to_string(),
        ),
        "has type \"float\"",
    )
    .await;
    check(
        with(
            "arguments",
            &json!({"a": {"type": "array"}, "b": {"type": "integer"}}).to_string(),
        ),
        "array schema missing \"items\"",
    )
    .await;
}

#[tokio::test]
async fn name_must_be_an_identifier() {
    check(with("name", "2fast"), "not a valid Python identifier").await;
    check(with("name", "lambda"), "is a Python keyword").await;
}

#[tokio::test]
async fn a_name_that_would_shadow_a_builtin_is_refused_with_the_reason() {
    // Defined in the assistant's session (code style), `print` would turn every
    // later cell's output into "No output found".
    check(
        add_with(add_sum("print").1),
        "name \"print\" is a Python builtin; a function under that name would shadow it",
    )
    .await;
    for name in ["len", "sum", "abs", "exit", "ExceptionGroup"] {
        check(add_with(add_sum(name).1), "is a Python builtin").await;
    }
    check(add_with(add_sum("__builtins__").1), "special (dunder) name").await;
    check(add_with(add_sum("__name__").1), "special (dunder) name").await;
}

#[test]
fn check_function_refuses_builtin_names_too() {
    let function =
        agentopt_core::LearnedFunction::new("print", "def print(text):\n    return text\n")
            .with_parameters(json!({"type": "object", "properties": {"text": {"type": "string"}}}));
    let error = agentopt_optimizer::check_function(&function).expect_err("shadows print");
    assert!(error.contains("is a Python builtin"), "{error}");
    let fine = agentopt_core::LearnedFunction::new(
        "print_table",
        "def print_table(text):\n    return text\n",
    )
    .with_parameters(json!({"type": "object", "properties": {"text": {"type": "string"}}}));
    assert_eq!(agentopt_optimizer::check_function(&fine), Ok(()));
}

#[tokio::test]
async fn name_must_be_unique() {
    check(
        Reply::tool_calls([add_sum("twice"), add_sum("twice")]),
        "already has a function",
    )
    .await;
}

#[tokio::test]
async fn code_must_parse() {
    check(
        with("code", "def sum_numbers(a, b):\n    return a +\n"),
        "does not parse as Python",
    )
    .await;
}

#[tokio::test]
async fn code_must_define_the_named_function() {
    check(
        with("code", "def total(a, b):\n    return a + b\n"),
        "must define the function at top level as `def sum_numbers(...)`",
    )
    .await;
}

#[tokio::test]
async fn packages_must_be_allowlisted() {
    check(
        with("packages", "sympy requests"),
        "package \"requests\" is not allowed",
    )
    .await;
}

#[tokio::test]
async fn removal_and_revision_need_an_existing_function() {
    check(
        Reply::tool_call(remove("ghost").0, remove("ghost").1),
        "cannot remove `ghost`",
    )
    .await;
    let revise = function_call(
        "revise_function",
        "ghost",
        &["a"],
        "def ghost(a):\n    return a\n",
    );
    check(
        Reply::tool_call(revise.0, revise.1),
        "cannot revise `ghost`",
    )
    .await;
}

#[tokio::test]
async fn unknown_tools_are_rejected_by_name() {
    for arguments in [
        json!({"name": "f"}),
        json!({"old": "f", "new": "g"}),
        json!({}),
    ] {
        check(
            Reply::tool_call("rename_function", arguments),
            "unknown tool `rename_function`; use add_function, revise_function or remove_function",
        )
        .await;
    }
}

#[tokio::test]
async fn a_function_that_crashes_when_defined_is_rejected_in_the_sandbox() {
    let crashing = function_call(
        "add_function",
        "sum_numbers",
        &["a", "b"],
        "import json\nCONFIG = json.loads('not json')\n\ndef sum_numbers(a, b):\n    return a + b\n",
    );
    let server = crate::server([
        Reply::tool_call(crashing.0, crashing.1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 1, OptimizerOptions::default()).with_executor(Box::new(sandbox().await));
    let outcome = step_with_sandbox(&mut optimizer, &[true]).await;
    assert_rejected_then_retried(&server, &outcome, "fails when it is defined in the sandbox");
    assert_rejected_then_retried(&server, &outcome, "JSONDecodeError");
}

#[tokio::test]
async fn a_revision_is_called_with_the_arguments_of_a_failing_conversation() -> anyhow::Result<()> {
    let divide = |code: &str, tool: &str| function_call(tool, "ratio", &["a", "b"], code);
    let first = divide("def ratio(a, b):\n    return a / b\n", "add_function");
    let broken = divide("def ratio(a, b):\n    return a // b\n", "revise_function");
    let fixed = divide(
        "def ratio(a, b):\n    return None if b == 0 else a / b\n",
        "revise_function",
    );
    let server = crate::server([
        Reply::tool_call(first.0, first.1),
        Reply::tool_call(broken.0, broken.1),
        Reply::tool_call(fixed.0, fixed.1),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 1, OptimizerOptions::default()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    optimizer.step().await?;

    // A failing conversation called ratio(a=1, b=0).
    let failing = ratio_by_zero("ZeroDivisionError: division by zero");
    optimizer.record_one_conversation(failing, false)?;
    let outcome = optimizer.step().await?;
    let error = only_error(&outcome);
    assert!(
        error.contains("calling ratio(**{\"a\":1,\"b\":0})"),
        "{error}"
    );
    assert!(error.contains("ZeroDivisionError"), "{error}");
    assert!(outcome.functions[0].code.contains("b == 0"));
    Ok(())
}

#[tokio::test]
async fn retries_stop_after_the_limit() -> anyhow::Result<()> {
    let bad = with("name", "2fast");
    let server = crate::server(std::iter::repeat_n(bad, 4)).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.rejected.len(), 4, "the first try and 3 retries");
    assert_eq!(server.chat_requests().len(), 4);
    // Each retry carries the prompt and only the latest rejected exchange.
    let last = server
        .chat_requests()
        .pop()
        .map(|request| messages(&request).len());
    assert_eq!(last, Some(3));
    assert!(outcome.functions.is_empty());
    Ok(())
}

#[tokio::test]
async fn standard_library_packages_are_dropped_and_full_schemas_accepted() -> anyhow::Result<()> {
    let mut arguments = sum_fields();
    arguments["packages"] = json!("math, sympy");
    arguments["arguments"] = json!(
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}).to_string()
    );
    let server = crate::server([add_with(arguments)]).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let outcome = optimizer.step().await?;
    let function = &outcome.functions[0];
    assert_eq!(function.packages, ["sympy"]);
    assert_eq!(function.parameters["required"], json!(["a", "b"]));
    Ok(())
}

/// The schema `sum_numbers` ends up with when its `arguments` are written as `written`.
async fn schema_from(written: Value) -> Result<Value, String> {
    let mut arguments = sum_fields();
    arguments["arguments"] = json!(written.to_string());
    // The same reply to the first try and every retry of a rejected one.
    let server = crate::server(std::iter::repeat_n(add_with(arguments), 4)).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let outcome = optimizer.step().await.map_err(|e| e.to_string())?;
    match outcome.functions.first() {
        Some(function) => Ok(function.parameters.clone()),
        None => Err(format!("{:?}", outcome.rejected)),
    }
}

#[tokio::test]
async fn schemas_wrapped_the_ways_small_models_wrap_them_are_unwrapped() {
    let properties = json!({"a": {"type": "integer"}, "b": {"type": "integer"}});
    let object = json!({"type": "object", "properties": properties});
    let definition = json!({"name": "sum_numbers", "description": "Adds.", "parameters": object});
    let expected = json!({"type": "object", "properties": properties, "required": ["a", "b"]});
    for written in [
        properties.clone(),
        object.clone(),
        // The 1.5B optimizer's habit, measured in the default local run.
        definition.clone(),
        json!({"name": "sum_numbers", "parameters": properties}),
        json!({"type": "function", "function": definition}),
    ] {
        assert_eq!(
            schema_from(written.clone()).await,
            Ok(expected.clone()),
            "{written}"
        );
    }
    // A wrapper around the wrong parameters is still refused, naming the parameters.
    let wrong = json!({"name": "sum_numbers", "parameters": {"x": {"type": "integer"}}});
    let refused = schema_from(wrong).await.expect_err("wrong parameters");
    assert!(refused.contains("are not in `arguments`"), "{refused}");
}

/// The function `sum_numbers` is accepted with `packages` = `given`, and keeps
/// `expected` (standard-library modules dropped).
async fn check_packages(given: Value, expected: &[&str]) {
    let mut arguments = sum_fields();
    if given == Value::Bool(false) {
        arguments
            .as_object_mut()
            .map(|fields| fields.remove("packages"));
    } else {
        arguments["packages"] = given;
    }
    let server = crate::server([add_with(arguments)]).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    let outcome = step_with_sandbox(&mut optimizer, &[true]).await;
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    assert_eq!(outcome.functions[0].packages, expected);
}

#[tokio::test]
async fn no_packages_in_any_form_and_every_standard_module_are_accepted() {
    // `false` stands for a call without the field.
    for none in [
        Value::Null,
        json!([]),
        json!(""),
        json!("none"),
        json!(" None "),
        json!("null"),
        Value::Bool(false),
    ] {
        check_packages(none, &[]).await;
    }
    let standard = "typing datetime heapq bisect dataclasses enum itertools collections.abc";
    check_packages(json!(standard), &[]).await;
    check_packages(json!(format!("{standard} sympy")), &["sympy"]).await;
    check_packages(json!(["typing", "sympy numpy"]), &["sympy", "numpy"]).await;
}

#[tokio::test]
async fn packages_of_another_kind_are_refused_naming_the_field() {
    check(
        add_with({
            let mut arguments = sum_fields();
            arguments["packages"] = json!(7);
            arguments
        }),
        "`packages` must be a string of package names",
    )
    .await;
}

/// A conversation that called `ratio(a=1, b=0)`, which returned `output`.
fn ratio_by_zero(output: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::user("What is 1 / 0?"),
        ChatMessage::assistant_tool_calls(vec![ToolCall {
            id: "call_7".to_owned(),
            function: FunctionCall {
                name: "ratio".to_owned(),
                arguments: json!({"a": 1, "b": 0}).to_string(),
            },
        }]),
        ChatMessage::tool("call_7", output),
    ]
}

/// The one validation error of a step.
fn only_error(outcome: &StepOutcome) -> &str {
    let errors: Vec<&String> = outcome
        .rejected
        .iter()
        .flat_map(|r| r.errors.iter().flatten())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0]
}

#[tokio::test]
async fn after_a_roll_back_errors_cite_the_conversation_the_prompt_shows() -> anyhow::Result<()> {
    let ratio = |code: &str, tool: &str| function_call(tool, "ratio", &["a", "b"], code);
    let safe = ratio(
        "def ratio(a, b):\n    return None if b == 0 else a / b\n",
        "add_function",
    );
    let broken = ratio("def ratio(a, b):\n    return a // b\n", "revise_function");
    let server = crate::server([
        Reply::tool_call(safe.0, safe.1),
        Reply::text("TERMINATE"),
        Reply::tool_call(broken.0, broken.1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 1, OptimizerOptions::default()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    optimizer.step().await?; // adds `ratio`
    // Scored 2/3 with `ratio`: accepted; the call by zero is conversation 2.
    record(&mut optimizer, &[true, true]);
    optimizer.record_one_conversation(ratio_by_zero("None"), false)?;
    optimizer.step().await?;
    // Scored 0: rolled back. Here the call by zero is conversation 1 of the trial.
    record(&mut optimizer, &[false]);
    optimizer.record_one_conversation(ratio_by_zero("None"), false)?;
    let outcome = optimizer.step().await?;
    assert!(!outcome.accepted);

    let prompt = crate::prompt_of(&server.chat_requests()[2]);
    assert!(
        prompt.contains("{\"Conversation 2\":[{\"role\":\"user\",\"content\":\"What is 1 / 0?\"}"),
        "{prompt}"
    );
    let error = only_error(&outcome);
    assert!(
        error.contains("with the arguments from failing conversation 2 fails"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn the_package_allow_list_is_a_parameter_within_the_sandbox_s() -> anyhow::Result<()> {
    let numpy_function = Reply::tool_call(
        "add_function",
        serde_json::json!({
            "name": "mean",
            "description": "Mean of numbers.",
            "arguments": serde_json::json!({"values": {"type": "array", "items": {"type": "number"}}}).to_string(),
            "packages": "numpy",
            "code": "import numpy\n\ndef mean(values):\n    return float(numpy.mean(values))\n",
        }),
    );
    let server = crate::server([numpy_function, Reply::text("TERMINATE")]).await;
    let options = OptimizerOptions {
        allowed_packages: Some(vec!["sympy".to_owned()]),
        max_retries: 1,
        ..OptimizerOptions::default()
    };
    let mut optimizer = crate::optimizer(&server, 1, options);
    crate::record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert!(outcome.actions.is_empty());
    let error = outcome.rejected[0].errors[0].clone().unwrap_or_default();
    assert!(
        error.contains("\"numpy\" is not allowed") && error.contains("[\"sympy\"]"),
        "{error}"
    );

    // A package the sandbox cannot import is refused when the options are checked.
    let options = OptimizerOptions {
        allowed_packages: Some(vec!["requests".to_owned()]),
        ..OptimizerOptions::default()
    };
    let error = agentopt_optimizer::AgentOptimizer::new(1, crate::client(&server), options)
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("allowed_packages") && error.contains("requests"),
        "{error}"
    );
    Ok(())
}
