//! Integration tests for agentopt-optimizer: every LLM call goes over real HTTP to the
//! scripted server from agentopt-testkit; proposed functions run in a real sandbox.

mod json_actions;
mod partition;
mod persistence;
mod prompt;
mod stats;
mod training;
mod validation;

use std::sync::Arc;

use agentopt_llm::{
    ChatMessage, ChatModel, ClientOptions, EndpointConfig, FunctionCall, OpenAiClient, RetryPolicy,
    ToolCall,
};
use agentopt_optimizer::{AgentOptimizer, OptimizerOptions};
use agentopt_sandbox::{PythonEnvironment, PythonSession, SandboxPolicy};
use agentopt_testkit::{RecordedRequest, ScriptedServer};
use serde_json::{Value, json};

/// A scripted server replaying `script`, reporting an 8k context window (the local
/// model's default).
async fn server(script: impl IntoIterator<Item = agentopt_testkit::Reply>) -> ScriptedServer {
    ScriptedServer::builder().n_ctx(8192).script(script).await
}

/// A real client for the scripted server, without retries.
fn client(server: &ScriptedServer) -> Arc<dyn ChatModel> {
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model");
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        ..ClientOptions::default()
    };
    match OpenAiClient::new(endpoint, options) {
        Ok(client) => Arc::new(client),
        Err(error) => panic!("client for the scripted server: {error}"),
    }
}

/// An optimizer talking to `server`.
fn optimizer(
    server: &ScriptedServer,
    max_actions: usize,
    options: OptimizerOptions,
) -> AgentOptimizer {
    match AgentOptimizer::new(max_actions, client(server), options) {
        Ok(optimizer) => optimizer,
        Err(error) => panic!("optimizer: {error}"),
    }
}

/// A sandboxed session without preloads.
async fn sandbox() -> PythonSession {
    let environment = match PythonEnvironment::ensure() {
        Ok(environment) => environment,
        Err(error) => panic!("python environment: {error}"),
    };
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    match PythonSession::start(&environment, &policy).await {
        Ok(session) => session,
        Err(error) => panic!("sandbox session: {error}"),
    }
}

/// The arguments of an `add_function` / `revise_function` call.
fn function_call(tool: &str, name: &str, parameters: &[&str], code: &str) -> (String, Value) {
    let properties: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|parameter| {
            (
                (*parameter).to_owned(),
                json!({"type": "integer", "description": format!("the {parameter}")}),
            )
        })
        .collect();
    (
        tool.to_owned(),
        json!({
            "name": name,
            "description": format!("{name} of its arguments"),
            "arguments": Value::Object(properties).to_string(),
            "packages": "",
            "code": code,
        }),
    )
}

/// `add_function` for `def NAME(a, b): return a + b`.
fn add_sum(name: &str) -> (String, Value) {
    function_call(
        "add_function",
        name,
        &["a", "b"],
        &format!("def {name}(a, b):\n    return a + b\n"),
    )
}

/// `remove_function` for `name`.
fn remove(name: &str) -> (String, Value) {
    ("remove_function".to_owned(), json!({"name": name}))
}

/// A small MATH-style conversation: problem, a call of `sum_numbers`, its result, the
/// answer.
fn conversation(problem: &str, answer: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::user(format!("Let's solve a math problem. {problem}")),
        ChatMessage::assistant_tool_calls(vec![ToolCall {
            id: "call_0".to_owned(),
            function: FunctionCall {
                name: "sum_numbers".to_owned(),
                arguments: json!({"a": 2, "b": 3}).to_string(),
            },
        }]),
        ChatMessage::tool("call_0", "5"),
        ChatMessage::assistant(format!("The answer is \\boxed{{{answer}}}.")),
    ]
}

/// Records conversations with these outcomes.
fn record(optimizer: &mut AgentOptimizer, outcomes: &[bool]) {
    for (index, satisfied) in outcomes.iter().enumerate() {
        let history = conversation(&format!("What is {index} + 5?"), &format!("{}", index + 5));
        if let Err(error) = optimizer.record_one_conversation(history, *satisfied) {
            panic!("record: {error}");
        }
    }
}

/// The message list a chat request sent.
fn messages(request: &RecordedRequest) -> &Vec<Value> {
    match request.body["messages"].as_array() {
        Some(messages) => messages,
        None => panic!("request without messages: {}", request.raw_body),
    }
}

/// The optimizer prompt (first message) of a chat request.
fn prompt_of(request: &RecordedRequest) -> String {
    messages(request)[0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
