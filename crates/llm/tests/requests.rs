//! Request shapes on the wire (tools vs legacy functions, Azure routing) and reply
//! parsing (text, tool calls, function calls, invalid arguments).

use agentopt_llm::{
    ApiKey, CallStyle, ChatMessage, ChatModel, ChatRequest, EndpointConfig, FinishReason,
    FunctionCall, FunctionSchema, LlmError, OpenAiClient, ResponseFormat, ToolCall, ToolChoice,
    ToolSchema,
};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::json;

use crate::{ask, client, fast_options};

fn python_tool() -> ToolSchema {
    FunctionSchema {
        name: "python".to_owned(),
        description: Some("Run Python code and return stdout.".to_owned()),
        parameters: json!({"type": "object", "properties": {"cell": {"type": "string"}}, "required": ["cell"]}),
    }
    .into()
}

/// A conversation with every role and both call styles in its history.
fn history_request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are a math assistant."),
        ChatMessage::user("What is 2+2?").with_name("user_proxy"),
        ChatMessage::assistant_tool_calls(vec![ToolCall {
            id: "call_1".to_owned(),
            function: FunctionCall {
                name: "python".to_owned(),
                arguments: r#"{"cell": "print(2+2)"}"#.to_owned(),
            },
        }]),
        ChatMessage::tool("call_1", "4"),
        ChatMessage::assistant_function_call(FunctionCall {
            name: "python".to_owned(),
            arguments: r#"{"cell": "print(3)"}"#.to_owned(),
        }),
        ChatMessage::function("python", "3"),
    ])
    .with_tools([python_tool()])
    .with_tool_choice(ToolChoice::Auto)
    .with_temperature(0.0)
    .with_max_tokens(256)
    .with_seed(42)
    .with_caller("assistant")
}

#[tokio::test]
async fn tools_style_request_shape() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("4")]).await;
    client(&server).chat(history_request()).await?;
    let requests = server.chat_requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    insta::assert_json_snapshot!(requests[0].body);
    Ok(())
}

#[tokio::test]
async fn functions_style_request_shape() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("4")]).await;
    let request = history_request()
        .with_call_style(CallStyle::Functions)
        .with_tool_choice(ToolChoice::Function("python".to_owned()));
    client(&server).chat(request).await?;
    insta::assert_json_snapshot!(server.chat_requests()[0].body);
    Ok(())
}

#[tokio::test]
async fn endpoint_call_style_applies_without_override() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("ok")]).await;
    let endpoint =
        EndpointConfig::compatible(server.base_url(), "m").with_call_style(CallStyle::Functions);
    let client = OpenAiClient::new(endpoint, fast_options())?;
    client.chat(ask("hi").with_tools([python_tool()])).await?;
    let body = &server.chat_requests()[0].body;
    assert!(
        body.get("functions").is_some() && body.get("tools").is_none(),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn no_tools_sends_no_tool_fields() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("ok")]).await;
    client(&server).chat(ask("hi")).await?;
    insta::assert_json_snapshot!(server.chat_requests()[0].body, @r#"
    {
      "messages": [
        {
          "content": "hi",
          "role": "user"
        }
      ],
      "model": "test-model"
    }
    "#);
    Ok(())
}

#[tokio::test]
async fn azure_routes_by_deployment_and_api_version() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("ok")]).await;
    let endpoint = EndpointConfig::azure(
        server.root_url(),
        "prod-4o",
        ApiKey::new("azure-secret-1"),
        "2024-06-01",
    );
    OpenAiClient::new(endpoint, fast_options())?
        .chat(ask("hi"))
        .await?;
    let request = &server.chat_requests()[0];
    assert_eq!(request.path, "/openai/deployments/prod-4o/chat/completions");
    assert_eq!(request.query.as_deref(), Some("api-version=2024-06-01"));
    assert_eq!(request.header("api-key"), Some("azure-secret-1"));
    Ok(())
}

#[tokio::test]
async fn openai_sends_bearer_key() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("ok")]).await;
    let endpoint = EndpointConfig {
        base_url: server.base_url(),
        ..EndpointConfig::openai("gpt-4o", ApiKey::new("sk-test-abcdefghijkl"))
    };
    OpenAiClient::new(endpoint, fast_options())?
        .chat(ask("hi"))
        .await?;
    assert_eq!(
        server.chat_requests()[0].header("authorization"),
        Some("Bearer sk-test-abcdefghijkl")
    );
    Ok(())
}

#[tokio::test]
async fn replies_are_parsed_in_both_styles() -> anyhow::Result<()> {
    let server = ScriptedServer::start([
        Reply::text("The answer is 4.").with_usage(120, 7),
        Reply::tool_call("python", json!({"cell": "print(1)"})),
        Reply::function_call("python", json!({"cell": "print(2)"})),
    ])
    .await;
    let client = client(&server);

    let text = client.chat(ask("q")).await?;
    assert_eq!(text.message.content.as_deref(), Some("The answer is 4."));
    assert_eq!(text.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        (text.usage.prompt_tokens, text.usage.completion_tokens),
        (120, 7)
    );
    assert_eq!(text.model, agentopt_testkit::DEFAULT_MODEL);

    let tool = client.chat(ask("q")).await?;
    assert_eq!(tool.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(tool.message.tool_calls.len(), 1);
    assert_eq!(
        tool.message.tool_calls[0].function.parse_arguments()?["cell"],
        "print(1)"
    );

    let function = client.chat(ask("q")).await?;
    assert_eq!(function.finish_reason, Some(FinishReason::FunctionCall));
    let call = function
        .message
        .function_call
        .as_ref()
        .expect("function call");
    assert_eq!(
        (call.name.as_str(), call.parse_arguments()?["cell"].as_str()),
        ("python", Some("print(2)"))
    );
    assert_eq!(function.message.requested_calls().len(), 1);
    Ok(())
}

#[tokio::test]
async fn invalid_tool_arguments_are_kept_raw_and_reported_on_parse() -> anyhow::Result<()> {
    let server =
        ScriptedServer::start([Reply::tool_call_raw("python", "{\"cell\": print(1)")]).await;
    let response = client(&server).chat(ask("q")).await?;
    let call = &response.message.tool_calls[0].function;
    assert_eq!(call.arguments, "{\"cell\": print(1)");
    match call.parse_arguments() {
        Err(LlmError::InvalidToolArguments {
            function,
            arguments,
            ..
        }) => {
            assert_eq!(
                (function.as_str(), arguments.as_str()),
                ("python", "{\"cell\": print(1)")
            );
        }
        other => panic!("expected invalid arguments, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn invalid_history_is_refused_before_sending() -> anyhow::Result<()> {
    let server = ScriptedServer::start([]).await;
    let mut orphan = ChatMessage::tool("x", "4");
    orphan.tool_call_id = None;
    let error = client(&server)
        .chat(ChatRequest::new(vec![orphan]))
        .await
        .expect_err("no id");
    assert_eq!(
        error.to_string(),
        "invalid request: messages[0] (Tool) needs `tool_call_id`"
    );
    let error = client(&server)
        .chat(ChatRequest::new(vec![]))
        .await
        .expect_err("empty");
    assert_eq!(error.to_string(), "invalid request: no messages");
    assert!(server.requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn response_format_goes_on_the_wire() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text(r#"{"a": 1}"#)]).await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let request = ask("q").with_response_format(ResponseFormat::JsonSchema {
        name: "numbers".to_owned(),
        schema: schema.clone(),
    });
    client(&server).chat(request).await?;
    assert_eq!(
        server.chat_requests()[0].body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}})
    );
    Ok(())
}

#[tokio::test]
async fn default_headers_go_with_every_request() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::text("ok")]).await;
    let text = json!([{
        "model": "gpt-4o",
        "base_url": server.base_url(),
        "default_headers": {"X-Gateway-Tenant": "team-a"},
    }])
    .to_string();
    let endpoint = agentopt_llm::config::parse_config_list("OAI_CONFIG_LIST", &text)?.remove(0);
    OpenAiClient::new(endpoint, fast_options())?
        .chat(ask("hi"))
        .await?;
    assert_eq!(
        server.chat_requests()[0].header("x-gateway-tenant"),
        Some("team-a")
    );
    let bad = json!([{"model": "m", "default_headers": {"X-Count": 3}}]).to_string();
    let error = agentopt_llm::config::parse_config_list("OAI_CONFIG_LIST", &bad)
        .expect_err("a number is not a header value");
    assert!(error.to_string().contains("[0].default_headers"), "{error}");
    Ok(())
}
