//! Many conversations at once: own agents and sandbox sessions each, one shared
//! client; no conversation sees another's messages.

use std::sync::Arc;

use agentopt_agents::{FunctionImpl, register_function_pair};
use agentopt_llm::{CallStyle, FunctionSchema};
use agentopt_mathchat::{MATH_AGENT_NAME, MathUserProxyAgent};
use agentopt_sandbox::{SandboxPolicy, SandboxSessions, WorkerPool};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer};
use serde_json::{Value, json};

use crate::{client, python_environment};

const CONVERSATIONS: u64 = 100;

/// Conversation `i` asks for `i + i`; every tenth solves it with code, the others
/// with the `add` tool.
fn answer(request: &RecordedRequest) -> Reply {
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let problem = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .find_map(|text| text.split("Problem:\nCompute ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse::<u64>().ok());
    let Some(i) = problem else {
        return Reply::server_error(400);
    };
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_text = last["content"].as_str().unwrap_or("");
    if last_text.starts_with("The result is Correct.") {
        return Reply::text("TERMINATE");
    }
    if messages.len() == 2 {
        return if i % 10 == 0 {
            Reply::text(format!("```python\nprint({i} + {i})\n```"))
        } else {
            Reply::tool_call("add", json!({"a": i, "b": i}))
        };
    }
    Reply::text(format!("Conversation {i}: \\boxed{{{}}}", last_text.trim()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_conversations_do_not_cross_talk() {
    let server = ScriptedServer::with_rule(answer).await;
    let model = client(&server, CallStyle::Tools);
    // Two pre-warmed workers and two live sessions at most: the machine has two
    // cores, and only the code-solving conversations need a worker at all.
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    let pool = match WorkerPool::new(python_environment(), policy, 2) {
        Ok(pool) => Arc::new(pool),
        Err(error) => panic!("worker pool: {error}"),
    };
    let sessions = Arc::new(SandboxSessions::pooled(pool).with_max_live(2));
    let add = FunctionSchema {
        name: "add".to_owned(),
        description: Some("Add two integers.".to_owned()),
        parameters: json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}),
    };
    let tasks = (0..CONVERSATIONS).map(|i| {
        let model = Arc::clone(&model);
        let sessions = Arc::clone(&sessions);
        let add = add.clone();
        tokio::spawn(async move {
            let mut assistant = crate::assistant(model);
            let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions);
            let implementation = FunctionImpl::rust(|arguments| {
                let get = |key: &str| arguments.get(key).and_then(Value::as_u64);
                match (get("a"), get("b")) {
                    (Some(a), Some(b)) => Ok((a + b).to_string()),
                    _ => Err("a and b must be integers".to_owned()),
                }
            });
            register_function_pair(&mut assistant, &mut proxy, add, implementation);
            let problem = format!("Compute {i} + {i} please.");
            let outcome = proxy
                .initiate_chat(&mut assistant, &problem, &(2 * i).to_string())
                .await;
            (i, outcome)
        })
    });
    let results = futures::future::join_all(tasks).await;
    assert_eq!(results.len(), CONVERSATIONS as usize);
    for result in results {
        let (i, outcome) = match result {
            Ok(done) => done,
            Err(error) => panic!("conversation task failed: {error}"),
        };
        assert!(
            outcome.correct,
            "conversation {i}: {:?}",
            outcome.transcript.stop_reason
        );
        assert_eq!(
            outcome.answer,
            Some((2 * i).to_string()),
            "conversation {i}"
        );
        assert_eq!(outcome.turns, 3, "conversation {i}");
        let own = format!("Conversation {i}:");
        for entry in &outcome.transcript.entries {
            let text = entry.message.text();
            if text.starts_with("Conversation ") {
                assert!(text.starts_with(&own), "conversation {i} saw {text:?}");
            }
        }
    }
    assert_eq!(server.chat_requests().len(), 3 * CONVERSATIONS as usize);
}
