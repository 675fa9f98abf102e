//! The generic conversable agent: code execution, human input, limits, errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use agentopt_agents::{
    ConversableAgent, HumanInput, HumanInputMode, Message, ReplyFunction, StopReason, Trigger,
    Turn, UserProxyAgent,
};
use agentopt_llm::CallStyle;
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{client, scrubbed, sessions};

#[tokio::test]
async fn user_proxy_runs_code_blocks_in_a_warm_session() {
    let server = ScriptedServer::start([
        Reply::text("```python\nvalue = 21\nprint(value)\n```"),
        Reply::text("```python\nprint(value * 2)\n```"),
        Reply::text("```sh\necho hi\n```"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::new("user", sessions());
    let transcript = proxy.initiate_chat(&mut assistant, "Compute.").await;
    assert_eq!(
        crate::sent_by(&transcript, "user"),
        [
            "Compute.",
            "exitcode: 0 (execution succeeded)\nCode output: \n21\n",
            "exitcode: 0 (execution succeeded)\nCode output: \n42\n",
            "exitcode: 1 (execution failed)\nCode output: \nunknown language sh",
        ]
    );
    let requests = server.chat_requests();
    let last = &requests[3].body["messages"];
    assert_eq!(last[0]["role"], "system");
    assert_eq!(last[0]["content"], "You are a helpful assistant.");
    assert_eq!(last[1]["content"], "Compute.");
    insta::assert_json_snapshot!("generic_code_execution", scrubbed(&transcript));
}

/// Answers from a queue; records the prompts it was shown.
struct ScriptedHuman {
    answers: Mutex<VecDeque<String>>,
    prompts: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl HumanInput for ScriptedHuman {
    async fn ask(&self, prompt: &str) -> String {
        if let Ok(mut prompts) = self.prompts.lock() {
            prompts.push(prompt.to_owned());
        }
        self.answers
            .lock()
            .ok()
            .and_then(|mut answers| answers.pop_front())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn human_input_on_termination() {
    let server = ScriptedServer::start([
        Reply::text("Done. TERMINATE"),
        Reply::text("Checked again. TERMINATE"),
    ])
    .await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let human = Arc::new(ScriptedHuman {
        answers: Mutex::new(VecDeque::from(["please double-check".to_owned()])),
        prompts: Mutex::new(Vec::new()),
    });
    let mut proxy = UserProxyAgent::without_code("user").configure(|agent| {
        agent
            .with_termination(|message| message.text().contains("TERMINATE"))
            .with_human_input(HumanInputMode::Terminate, human.clone())
    });
    let transcript = proxy.initiate_chat(&mut assistant, "Solve it.").await;
    assert_eq!(transcript.entries[2].message.text(), "please double-check");
    assert_eq!(
        transcript.stop_reason,
        StopReason::Terminated {
            agent: "user".to_owned()
        }
    );
    let prompts = human.prompts.lock().map(|p| p.clone()).unwrap_or_default();
    assert_eq!(
        prompts,
        [
            "Please give feedback to assistant. Press enter or type 'exit' to stop the conversation: ",
            "Please give feedback to assistant. Press enter or type 'exit' to stop the conversation: ",
        ]
    );
}

#[tokio::test]
async fn human_exit_in_always_mode() {
    let server = ScriptedServer::start([Reply::text("Hello")]).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let human = Arc::new(ScriptedHuman {
        answers: Mutex::new(VecDeque::from(["exit".to_owned()])),
        prompts: Mutex::new(Vec::new()),
    });
    let mut proxy = UserProxyAgent::without_code("user")
        .configure(|agent| agent.with_human_input(HumanInputMode::Always, human));
    let transcript = proxy.initiate_chat(&mut assistant, "Hi").await;
    assert_eq!(
        transcript.stop_reason,
        StopReason::HumanExit {
            agent: "user".to_owned()
        }
    );
}

#[tokio::test]
async fn auto_reply_limit_and_default_reply() {
    let server =
        ScriptedServer::start([Reply::text("one"), Reply::text("two"), Reply::text("three")]).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::without_code("user").configure(|agent| {
        agent
            .with_max_consecutive_auto_reply(2)
            .with_default_auto_reply("go on")
    });
    let transcript = proxy.initiate_chat(&mut assistant, "start").await;
    let texts: Vec<&str> = transcript
        .entries
        .iter()
        .map(|e| e.message.text())
        .collect();
    assert_eq!(texts, ["start", "one", "go on", "two", "go on", "three"]);
    assert_eq!(
        transcript.stop_reason,
        StopReason::MaxAutoReplies {
            agent: "user".to_owned(),
            limit: 2
        }
    );
    assert_eq!(transcript.totals.model_calls, 3);
    assert_eq!(transcript.totals.usage.total_tokens(), 45);
}

#[tokio::test]
async fn model_errors_end_the_chat_without_a_crash() {
    let server = ScriptedServer::start([Reply::text("fine"), Reply::server_error(400)]).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::without_code("user");
    let transcript = proxy.initiate_chat(&mut assistant, "start").await;
    assert!(matches!(
        &transcript.stop_reason,
        StopReason::Error { agent, message, .. } if agent == "assistant" && message.contains("HTTP 400")
    ));
    assert_eq!(transcript.entries.len(), 3);
    assert_eq!(
        assistant.history("user").len(),
        3,
        "history survives the error"
    );
}

/// A custom reply function registered first answers before the default chain.
struct Echo;

#[async_trait::async_trait]
impl ReplyFunction for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    async fn reply(
        &self,
        agent: &mut agentopt_agents::AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, agentopt_agents::AgentError> {
        let text = agent.last_message(sender).map(|m| m.text().to_owned());
        Ok(text.map(|text| {
            if text == "stop" {
                Turn::Stop(StopReason::Ended {
                    agent: agent.name().to_owned(),
                    detail: "asked to stop".to_owned(),
                })
            } else {
                Turn::Reply(Message::user(format!("echo: {text}")))
            }
        }))
    }
}

#[tokio::test]
async fn registered_reply_functions_run_in_position_order() {
    let server = ScriptedServer::start([Reply::text("hello"), Reply::text("stop")]).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = ConversableAgent::new("user");
    proxy.register_reply(0, Trigger::Agent("assistant".to_owned()), Arc::new(Echo));
    assert_eq!(proxy.reply_names()[0], "echo");
    let transcript = proxy.initiate_chat(&mut assistant, "start").await;
    assert_eq!(transcript.entries[2].message.text(), "echo: hello");
    assert!(matches!(transcript.stop_reason, StopReason::Ended { .. }));
    assert_eq!(proxy.remove_reply("echo"), 1);
}

#[tokio::test]
async fn a_human_answer_interrupts_pending_tool_calls() {
    let server = ScriptedServer::start([
        Reply::tool_call("slow", serde_json::json!({})),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let human = Arc::new(ScriptedHuman {
        answers: Mutex::new(VecDeque::from(["skip that".to_owned()])),
        prompts: Mutex::new(Vec::new()),
    });
    let mut proxy = UserProxyAgent::without_code("user")
        .configure(|agent| agent.with_human_input(HumanInputMode::Always, human));
    let transcript = proxy.initiate_chat(&mut assistant, "go").await;
    assert_eq!(transcript.entries[2].message.text(), "skip that");
    let second = &server.chat_requests()[1].body["messages"];
    assert_eq!(second[3]["role"], "tool");
    assert_eq!(second[3]["content"], "USER INTERRUPTED");
    assert_eq!(second[4]["role"], "user");
    assert_eq!(second[4]["content"], "skip that");
}

/// AG2 compares a lone block's language with "unknown", so a block fenced
/// ```` ```unknown ```` is no code (the default reply), while ```` ```Unknown ```` (the
/// comparison is exact) and an `unknown` block beside another are code.
#[tokio::test]
async fn a_lone_block_fenced_unknown_is_no_code_as_in_ag2() {
    let server = ScriptedServer::start([
        Reply::text("```unknown\nnot code\n```"),
        Reply::text("```Unknown\nnot code\n```"),
        Reply::text("```unknown\nnot code\n```\n```python\nprint(1)\n```"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::new("user", sessions())
        .configure(|agent| agent.with_default_auto_reply("no code"));
    let transcript = proxy.initiate_chat(&mut assistant, "start").await;
    assert_eq!(
        crate::sent_by(&transcript, "user")[1..],
        [
            "no code",
            "exitcode: 1 (execution failed)\nCode output: \nunknown language Unknown",
            "exitcode: 1 (execution failed)\nCode output: \nunknown language unknown",
        ]
    );
}
