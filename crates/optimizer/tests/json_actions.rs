//! `ActionFormat::JsonSchema`: actions as one schema-constrained JSON object per reply,
//! for models that answer tool prompts in prose.

use agentopt_optimizer::{
    ActionFormat, OptimizerOptions, TERMINATE_ACTION, action_schema, optimizer_tools,
};
use agentopt_testkit::Reply;
use serde_json::{Value, json};

use crate::{add_sum, messages, optimizer, prompt_of, record, sandbox};

fn json_options() -> OptimizerOptions {
    OptimizerOptions {
        action_format: ActionFormat::JsonSchema,
        ..OptimizerOptions::default()
    }
}

/// A reply stating `(tool, arguments)` as a JSON action.
fn json_action((tool, arguments): (String, Value)) -> Reply {
    Reply::text(json!({"action": tool, "arguments": arguments}).to_string())
}

#[tokio::test]
async fn json_actions_apply_and_terminate_ends_the_step() -> anyhow::Result<()> {
    let server = crate::server([
        json_action(add_sum("sum_two")),
        Reply::text(json!({"action": TERMINATE_ACTION}).to_string()),
    ])
    .await;
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
        action_schema()
    );
    // The prompt lists the three functions the tools would have carried.
    let prompt = prompt_of(&requests[0]);
    for tool in optimizer_tools() {
        assert!(prompt.contains(&serde_json::to_string(tool.function())?));
    }
    assert!(prompt.ends_with(&format!("{{\"action\": \"{TERMINATE_ACTION}\"}}.\n")));
    // The second prompt shows List B with the added function.
    assert!(prompt_of(&requests[1]).contains("after taking 1 actions"));
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
    for retry in &requests[1..] {
        let retry = messages(retry);
        assert_eq!(retry.len(), 3, "prompt, rejected reply, error");
        assert_eq!(retry[1]["role"], "assistant");
        assert_eq!(retry[2]["role"], "user");
        assert!(
            retry[2]["content"]
                .as_str()
                .is_some_and(|text| text.starts_with("Rejected: "))
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
fn action_schema_offers_each_tool_and_terminate() {
    insta::assert_json_snapshot!(action_schema());
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
