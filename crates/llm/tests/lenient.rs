//! Lenient tool-call recovery: a table of contents and what they become.

use agentopt_llm::{
    CallStyle, ChatMessage, ChatModel, ClientOptions, EndpointConfig, FinishReason, FunctionSchema,
    OpenAiClient, ToolSchema, recover_tool_calls,
};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::json;

use crate::{ask, fast_options};

fn offered() -> Vec<ToolSchema> {
    ["python", "calculator"]
        .into_iter()
        .map(|name| {
            FunctionSchema {
                name: name.to_owned(),
                description: None,
                parameters: json!({"type": "object"}),
            }
            .into()
        })
        .collect()
}

/// Recovered calls as `name(arguments)` joined by `; `, then ` | content: …`.
fn recovered(content: &str, style: CallStyle) -> String {
    let mut message = ChatMessage::assistant(content);
    let changed = recover_tool_calls(&mut message, &offered(), style);
    let calls: Vec<String> = message
        .requested_calls()
        .iter()
        .map(|(_, call)| format!("{}({})", call.name, call.arguments))
        .collect();
    format!(
        "changed={changed} calls=[{}] | content: {:?}",
        calls.join("; "),
        message.content
    )
}

fn check(content: &str, expected: &str) {
    assert_eq!(
        recovered(content, CallStyle::Tools),
        expected,
        "content: {content}"
    );
}

#[test]
fn lenient_recovery_table() {
    check(
        "<tool_call>\n{\"name\": \"python\", \"arguments\": {\"cell\": \"print(1)\"}}\n</tool_call>",
        r#"changed=true calls=[python({"cell":"print(1)"})] | content: None"#,
    );
    check(
        "Let me compute.\n```json\n{\"name\": \"calculator\", \"arguments\": \"{\\\"expr\\\": \\\"2+2\\\"}\"}\n```\nDone.",
        r#"changed=true calls=[calculator({"expr":"2+2"})] | content: Some("Let me compute.\n\nDone.")"#,
    );
    check(
        "```\n{\"name\": \"python\", \"parameters\": {\"cell\": \"x\"}}\n```",
        r#"changed=true calls=[python({"cell":"x"})] | content: None"#,
    );
    check(
        "<tool_call>{\"name\": \"python\", \"arguments\": {\"cell\": \"a\"}}</tool_call>\n<tool_call>{\"name\": \"calculator\", \"arguments\": {}}</tool_call>",
        r#"changed=true calls=[python({"cell":"a"}); calculator({})] | content: None"#,
    );
    check(
        "```json\n{\"name\": \"python\"}\n```",
        r#"changed=true calls=[python({})] | content: None"#,
    );
    // Not offered, not a call, not JSON, other languages: stays content.
    check(
        "<tool_call>{\"name\": \"shell\", \"arguments\": {}}</tool_call>",
        r#"changed=false calls=[] | content: Some("<tool_call>{\"name\": \"shell\", \"arguments\": {}}</tool_call>")"#,
    );
    check(
        "```json\n{\"answer\": 4}\n```",
        r#"changed=false calls=[] | content: Some("```json\n{\"answer\": 4}\n```")"#,
    );
    check(
        "```python\nprint(2+2)\n```",
        r#"changed=false calls=[] | content: Some("```python\nprint(2+2)\n```")"#,
    );
    check(
        "<tool_call>{\"name\": \"python\", \"arguments\": {broken</tool_call>",
        r#"changed=false calls=[] | content: Some("<tool_call>{\"name\": \"python\", \"arguments\": {broken</tool_call>")"#,
    );
    check(
        "```json\n{\"name\": \"python\", \"arguments\": \"not an object\"}\n```",
        r#"changed=false calls=[] | content: Some("```json\n{\"name\": \"python\", \"arguments\": \"not an object\"}\n```")"#,
    );
    check(
        "The answer is \\boxed{4}.",
        r#"changed=false calls=[] | content: Some("The answer is \\boxed{4}.")"#,
    );
    // A closing fence is never mistaken for an opening one.
    check(
        "```python\nx = 1\n```\ntext\n```json\n{\"name\": \"python\", \"arguments\": {\"cell\": \"x\"}}\n```",
        r#"changed=true calls=[python({"cell":"x"})] | content: Some("```python\nx = 1\n```\ntext")"#,
    );
}

#[test]
fn legacy_style_recovers_the_first_call_as_function_call() {
    assert_eq!(
        recovered(
            "<tool_call>{\"name\": \"python\", \"arguments\": {\"cell\": \"a\"}}</tool_call>",
            CallStyle::Functions
        ),
        r#"changed=true calls=[python({"cell":"a"})] | content: None"#
    );
}

#[test]
fn structured_calls_or_no_offer_leave_the_message_alone() {
    let text = "<tool_call>{\"name\": \"python\", \"arguments\": {}}</tool_call>";
    let mut no_offer = ChatMessage::assistant(text);
    assert!(!recover_tool_calls(&mut no_offer, &[], CallStyle::Tools));
    let mut already = ChatMessage::assistant(text);
    already.function_call = Some(agentopt_llm::FunctionCall {
        name: "python".to_owned(),
        arguments: "{}".to_owned(),
    });
    assert!(!recover_tool_calls(
        &mut already,
        &offered(),
        CallStyle::Tools
    ));
}

#[tokio::test]
async fn local_endpoints_recover_calls_end_to_end() -> anyhow::Result<()> {
    let text = "I'll run it.\n```json\n{\"name\": \"python\", \"arguments\": {\"cell\": \"print(6*7)\"}}\n```";
    let server = ScriptedServer::start([Reply::text(text), Reply::text(text)]).await;
    let options = ClientOptions { ..fast_options() };
    let local = OpenAiClient::new(
        EndpointConfig::local(server.base_url(), "qwen"),
        options.clone(),
    )?;
    let response = local.chat(ask("6*7?").with_tools(offered())).await?;
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.message.tool_calls[0].function.name, "python");
    assert_eq!(response.message.content.as_deref(), Some("I'll run it."));

    let strict = OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "qwen"),
        options,
    )?;
    let response = strict.chat(ask("6*7?").with_tools(offered())).await?;
    assert!(response.message.tool_calls.is_empty());
    assert_eq!(response.message.content.as_deref(), Some(text));
    Ok(())
}
