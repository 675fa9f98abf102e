//! A user proxy composed only from the crate's public building blocks, against the
//! scripted server: calls answered on the wire, code run in the sandbox, the
//! termination and auto-reply checks of the agent's own settings.

use std::sync::Arc;

use agentopt_agents::{
    AgentError, AgentState, ConversableAgent, FunctionImpl, Lang, Message, ReplyFunction,
    StopReason, TerminationAndHuman, Trigger, Turn, call_results, code_blocks,
    execute_requested_calls, register_function_pair,
};
use agentopt_llm::{CallStyle, FunctionSchema};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::{Value, json};

use crate::{assistant, client, sessions};

/// Answers calls with their results (failures prefixed), Python blocks with
/// `Result: <output>`; anything else falls through to the default auto reply.
struct CallsThenCode;

#[async_trait::async_trait]
impl ReplyFunction for CallsThenCode {
    fn name(&self) -> &str {
        "calls_then_code"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        if let Some(executions) = execute_requested_calls(agent, sender).await? {
            let reply = call_results(&executions, |execution| {
                if execution.success {
                    execution.content.clone()
                } else {
                    format!("Failed: {}", execution.content)
                }
            });
            return Ok(Some(Turn::Reply(reply)));
        }
        let text = agent.last_message(sender).map(|m| m.text().to_owned());
        let Some(blocks) = text.as_deref().and_then(code_blocks) else {
            return Ok(None);
        };
        let mut outputs = Vec::new();
        for (_, code) in blocks.into_iter().filter(|(lang, _)| *lang == Lang::Python) {
            let outcome = agent.run_cell(&code).await?;
            outputs.push(outcome.error_text().unwrap_or(outcome.stdout));
        }
        let reply = format!("Result: {}", outputs.join("\n").trim());
        Ok(Some(Turn::Reply(Message::user(reply))))
    }
}

/// The custom proxy, with `add` registered on both agents.
fn proxy_and_add(assistant: &mut ConversableAgent, auto_replies: u32) -> ConversableAgent {
    let mut proxy = ConversableAgent::new("checker")
        .with_executor(sessions())
        .with_max_consecutive_auto_reply(auto_replies)
        .with_default_auto_reply("Continue.");
    proxy.clear_replies();
    assert!(proxy.reply_names().is_empty());
    proxy.register_reply(0, Trigger::Any, Arc::new(TerminationAndHuman));
    proxy.register_reply(1, Trigger::Any, Arc::new(CallsThenCode));
    let add = FunctionSchema {
        name: "add".to_owned(),
        description: Some("Add two integers.".to_owned()),
        parameters: json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}),
    };
    let implementation = FunctionImpl::rust(|arguments| {
        let get = |key: &str| arguments.get(key).and_then(Value::as_i64);
        match (get("a"), get("b")) {
            (Some(a), Some(b)) => Ok((a + b).to_string()),
            _ => Err("a and b must be integers".to_owned()),
        }
    });
    register_function_pair(assistant, &mut proxy, add, implementation);
    proxy
}

#[tokio::test]
async fn a_proxy_built_from_public_blocks_runs_calls_code_and_termination() {
    let server = ScriptedServer::start([
        Reply::tool_call("add", json!({"a": 2, "b": 3})),
        Reply::tool_call("add", json!({"a": "two"})),
        Reply::text("Now double it:\n```python\nprint(5 * 2)\n```"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = assistant(client(&server, CallStyle::Tools));
    let mut proxy = proxy_and_add(&mut assistant, 10);
    assert_eq!(
        proxy.reply_names(),
        ["check_termination_and_human_reply", "calls_then_code"]
    );
    let transcript = proxy
        .initiate_chat(&mut assistant, "Add 2 and 3, then double.")
        .await;
    assert_eq!(
        transcript.stop_reason,
        StopReason::Terminated {
            agent: "checker".to_owned()
        }
    );
    let requests = server.chat_requests();
    let tool_result = |request: usize, index: usize| {
        let message = &requests[request].body["messages"][index];
        (message["role"].clone(), message["content"].clone())
    };
    assert_eq!(tool_result(1, 3), (json!("tool"), json!("5")));
    let (role, failed) = tool_result(2, 5);
    assert_eq!(role, json!("tool"));
    assert!(
        failed
            .as_str()
            .is_some_and(|text| text.starts_with("Failed: ")),
        "{failed}"
    );
    let last_reply = &requests[3].body["messages"][7];
    assert_eq!(last_reply["content"], "Result: 10");
    assert_eq!(transcript.totals.failed_executions, 1);
}

#[tokio::test]
async fn a_custom_chain_keeps_the_agents_auto_reply_limit() {
    let server =
        ScriptedServer::start([Reply::text("Thinking."), Reply::text("Still thinking.")]).await;
    let mut assistant = assistant(client(&server, CallStyle::Tools));
    let mut proxy = proxy_and_add(&mut assistant, 1);
    let transcript = proxy.initiate_chat(&mut assistant, "Take your time.").await;
    assert_eq!(transcript.entries[2].message.text(), "Continue.");
    assert_eq!(
        transcript.stop_reason,
        StopReason::MaxAutoReplies {
            agent: "checker".to_owned(),
            limit: 1
        }
    );
    assert_eq!(server.remaining(), 0);
}
