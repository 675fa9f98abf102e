//! `ActionFormat::JsonSchema`: actions as one schema-constrained JSON object per reply,
//! for models that answer tool prompts in prose.

use agentopt_optimizer::{
    ActionFormat, JSON_PARAMETERS_FIELD, OptimizerOptions, TERMINATE_ACTION, action_schema,
};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::{Value, json};

use crate::{add_sum, messages, optimizer, prompt_of, record, sandbox};

fn json_options() -> OptimizerOptions {
    OptimizerOptions {
        action_format: ActionFormat::JsonSchema,
        ..OptimizerOptions::default()
    }
}

/// A reply stating `(tool, arguments)` as a JSON action, with the parameter schemas
/// as a map under `parameters` (as the action schema asks) instead of `arguments`.
fn json_action((tool, mut arguments): (String, Value)) -> Reply {
    if let Some(Value::String(schema)) = arguments
        .as_object_mut()
        .and_then(|arguments| arguments.remove("arguments"))
    {
        arguments[JSON_PARAMETERS_FIELD] = serde_json::from_str(&schema).unwrap_or(Value::Null);
    }
    Reply::text(json!({"action": tool, "arguments": arguments}).to_string())
}

/// A server whose optimizer adds `sum_two`, then ends the step.
async fn add_then_terminate() -> ScriptedServer {
    crate::server([
        json_action(add_sum("sum_two")),
        Reply::text(json!({"action": TERMINATE_ACTION}).to_string()),
    ])
    .await
}

#[tokio::test]
async fn json_actions_apply_and_terminate_ends_the_step() -> anyhow::Result<()> {
    let server = add_then_terminate().await;
    let mut optimizer =
        optimizer(&server, 3, json_options()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.functions.len(), 1);
    assert_eq!(outcome.functions[0].name, "sum_two");
    assert!(outcome.terminated);

    let requests = server.chat_requests();
    assert_eq!(requests.len(), 2);
    let body = &requests[0].body;
    assert!(body.get("tools").is_none(), "no tools offered: {body}");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        action_schema(&[], true)
    );
    // The prompt lists the three functions, whatever List B holds.
    let prompt = prompt_of(&requests[0]);
    for name in ["add_function", "revise_function", "remove_function"] {
        assert!(prompt.contains(&format!("\"name\":\"{name}\"")), "{name}");
    }
    assert!(prompt.ends_with(&format!("{{\"action\": \"{TERMINATE_ACTION}\"}}.\n")));
    // The second request shows List B with the added function, and may now revise
    // or remove it.
    assert!(prompt_of(&requests[1]).contains("after taking 1 actions"));
    assert_eq!(
        requests[1].body["response_format"]["json_schema"]["schema"],
        action_schema(&outcome.functions, true)
    );
    Ok(())
}

#[tokio::test]
async fn prose_and_invalid_actions_are_retried_with_the_error_from_the_user() -> anyhow::Result<()>
{
    let broken = (
        "add_function".to_owned(),
        json!({"name": "half", "description": "d", "arguments": "{}", "packages": "",
               "code": "def half(:\n    pass\n"}),
    );
    let server = crate::server([
        Reply::text("I would add a function that sums numbers."),
        json_action(broken),
        json_action(add_sum("sum_two")),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 1, json_options()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.functions.len(), 1, "the third reply is applied");
    assert_eq!(outcome.rejected.len(), 2);
    assert!(
        outcome.rejected[0].errors[0]
            .as_deref()
            .is_some_and(|error| error.contains("not one JSON object")),
        "{:?}",
        outcome.rejected[0]
    );

    let requests = server.chat_requests();
    assert_eq!(requests.len(), 3);
    for (attempt, retry) in requests[1..].iter().enumerate() {
        let retry = messages(retry);
        assert_eq!(retry.len(), 3, "prompt, rejected reply, error");
        assert_eq!(retry[1]["role"], "assistant");
        assert_eq!(retry[2]["role"], "user");
        assert!(
            retry[2]["content"]
                .as_str()
                .is_some_and(|text| text.starts_with("Rejected: ")
                    && text.ends_with(&format!("(attempt {} of 4)", attempt + 1))),
            "numbered, so a repeated reply still gets a fresh request: {}",
            retry[2]
        );
    }
    assert!(
        messages(&requests[2])[2]["content"]
            .as_str()
            .is_some_and(|text| text.contains("does not parse as Python")),
        "the second retry carries the syntax error: {:?}",
        messages(&requests[2])[2]
    );
    Ok(())
}

#[test]
fn action_schema_offers_add_and_terminate_on_an_empty_list() {
    insta::assert_json_snapshot!(action_schema(&[], true));
}

#[tokio::test]
async fn action_schema_limits_revise_and_remove_to_list_b() -> anyhow::Result<()> {
    let server = crate::server([json_action(add_sum("sum_two"))]).await;
    let mut optimizer = optimizer(&server, 1, json_options());
    record(&mut optimizer, &[false]);
    let functions = optimizer.step().await?.functions;
    let schema = action_schema(&functions, true);
    let choices = schema["anyOf"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&Value> = choices
        .iter()
        .map(|choice| &choice["properties"]["action"]["const"])
        .collect();
    assert_eq!(
        actions,
        [
            "add_function",
            "revise_function",
            "remove_function",
            TERMINATE_ACTION
        ]
    );
    for choice in &choices[1..3] {
        assert_eq!(
            choice["properties"]["arguments"]["properties"]["name"]["enum"],
            json!(["sum_two"])
        );
    }
    Ok(())
}

#[test]
fn options_saved_before_the_format_existed_read_as_tool_calls() -> anyhow::Result<()> {
    let mut saved = serde_json::to_value(OptimizerOptions::default())?;
    saved
        .as_object_mut()
        .map(|options| options.remove("action_format"));
    let options: OptimizerOptions = serde_json::from_value(saved)?;
    assert_eq!(options.action_format, ActionFormat::ToolCalls);
    Ok(())
}

#[tokio::test]
async fn require_action_withholds_the_end_until_the_first_action() -> anyhow::Result<()> {
    // JSON format: no TERMINATE in the first schema, back once an action is applied.
    let server = add_then_terminate().await;
    let options = OptimizerOptions {
        require_action: true,
        ..json_options()
    };
    let mut json_optimizer = optimizer(&server, 3, options);
    record(&mut json_optimizer, &[false]);
    let outcome = json_optimizer.step().await?;
    let requests = server.chat_requests();
    assert_eq!(
        requests[0].body["response_format"]["json_schema"]["schema"],
        action_schema(&[], false)
    );
    assert_eq!(
        requests[1].body["response_format"]["json_schema"]["schema"],
        action_schema(&outcome.functions, true)
    );

    // Tool calls: `required` first, then `auto`.
    let server = crate::server([
        Reply::tool_calls([add_sum("sum_two")]),
        Reply::text("TERMINATE"),
    ])
    .await;
    let options = OptimizerOptions {
        require_action: true,
        ..OptimizerOptions::default()
    };
    let mut tools_optimizer = optimizer(&server, 3, options);
    record(&mut tools_optimizer, &[false]);
    tools_optimizer.step().await?;
    let choices: Vec<Value> = server
        .chat_requests()
        .iter()
        .map(|request| request.body["tool_choice"].clone())
        .collect();
    assert_eq!(choices, [json!("required"), json!("auto")]);
    Ok(())
}

/// A reply the token limit cut off: half a JSON action.
fn cut_off_reply() -> Reply {
    Reply::cut_off("{\"action\": \"add_function\", \"arguments\": {\"code\": \"def f(")
}

#[tokio::test]
async fn a_reply_cut_off_by_the_token_limit_is_retried_with_more_room() -> anyhow::Result<()> {
    let server = crate::server([
        cut_off_reply(),
        cut_off_reply(),
        cut_off_reply(),
        json_action(add_sum("sum_two")),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 1, json_options()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.functions.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected.len(), 3);
    assert_eq!(
        outcome.rejected[0].errors,
        vec![Some(
            "your reply was cut off at the 768-token limit before it was complete".to_owned()
        )]
    );
    let requests = server.chat_requests();
    let limits: Vec<u64> = requests
        .iter()
        .filter_map(|request| request.body["max_tokens"].as_u64())
        .collect();
    // Doubled while the 8k context leaves room beside the prompt.
    let fourth: Vec<agentopt_llm::ChatMessage> =
        serde_json::from_value(requests[3].body["messages"].clone())?;
    let room = 8192 - agentopt_llm::estimate_prompt_tokens(&fourth, &[]) as u64;
    assert_eq!(limits, vec![768, 1536, 3072, 6144.min(room)]);
    // The retry carries the prompt and the request for a shorter reply, not the cut
    // reply.
    let retry = messages(&requests[1]);
    assert_eq!(retry.len(), 2);
    assert_eq!(
        retry[1]["content"],
        "Rejected: your reply was cut off at the 768-token limit before it was complete \
         (attempt 1 of 4). Reply again with one complete action that is shorter: shorter \
         code and description, no comments, no explanation around it."
    );
    Ok(())
}

#[tokio::test]
async fn a_parameter_map_that_does_not_fit_the_def_is_taken_from_the_def() -> anyhow::Result<()> {
    // What the 1.5B optimizer wrote in the default local run: the schema's own words.
    let schema_words = json!({
        "type": {"type": "string", "description": "The type of the expression."},
        "name": {"type": "string", "description": "The name of the expression"},
        "description": {"type": "string", "description": "The expression to simplify."},
    });
    let code = "def simplify_expression(expression, times: int = 2, scale=1.5):\n    \
                return str(expression) * times\n";
    let action = json!({
        "action": "add_function",
        "arguments": {
            "name": "simplify_expression",
            "description": "Simplify an expression.",
            "packages": "",
            "code": code,
            "parameters": schema_words,
        },
    });
    let server = crate::server([
        Reply::text(action.to_string()),
        Reply::text(json!({"action": TERMINATE_ACTION}).to_string()),
    ])
    .await;
    let mut optimizer =
        optimizer(&server, 3, json_options()).with_executor(Box::new(sandbox().await));
    record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    let parameters = &outcome.functions[0].parameters;
    assert_eq!(parameters["required"], json!(["expression"]));
    let types: Vec<(&String, &Value)> = parameters["properties"]
        .as_object()
        .map(|properties| properties.iter().map(|(k, v)| (k, &v["type"])).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        [
            (&"expression".to_owned(), &json!("string")),
            (&"scale".to_owned(), &json!("number")),
            (&"times".to_owned(), &json!("integer")),
        ],
        "typed from the annotation, the default, else string"
    );
    Ok(())
}
