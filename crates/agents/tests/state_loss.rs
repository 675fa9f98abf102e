//! A learned-function call that kills the worker: the model is told, the cells that
//! had completed are run again before the next cell, and replayed cells that fail are
//! reported.

use agentopt_agents::{FunctionSet, LearnedFunction, Transcript, UserProxyAgent, install};
use agentopt_llm::CallStyle;
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::json;

use crate::{client, sessions};

/// `die()`: a learned function that kills its worker.
fn dying_function() -> FunctionSet {
    let code = "def die():\n    import os\n    os._exit(3)\n";
    let die = LearnedFunction::new("die", code).with_description("Ends the worker.");
    FunctionSet::new([die])
}

/// The texts the proxy sent back, in order (tool results as their contents).
fn proxy_replies(transcript: &Transcript) -> Vec<String> {
    transcript
        .entries
        .iter()
        .filter(|entry| entry.sender == "user")
        .map(|entry| {
            let message = &entry.message;
            if message.tool_responses.is_empty() {
                message.text().to_owned()
            } else {
                message
                    .tool_responses
                    .iter()
                    .map(|response| response.content.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        })
        .collect()
}

async fn converse(script: Vec<Reply>) -> Vec<String> {
    let server = ScriptedServer::start(script).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::new("user", sessions());
    if let Err(error) = install(&mut assistant, &mut proxy, &dying_function()) {
        panic!("{error}");
    }
    let transcript = proxy.initiate_chat(&mut assistant, "Go.").await;
    proxy_replies(&transcript)
}

#[tokio::test]
async fn a_function_call_that_kills_the_worker_is_reported_and_state_is_replayed() {
    let replies = converse(vec![
        Reply::text("```python\nvalue = 21\nprint(value)\n```"),
        Reply::tool_call("die", json!({})),
        Reply::text("```python\nprint(value * 2)\n```"),
        Reply::text("TERMINATE"),
    ])
    .await;
    assert!(replies[2].starts_with("Error: "), "{}", replies[2]);
    assert!(
        replies[2].ends_with(
            "The Python session was restarted because this call did not finish: everything \
             defined by earlier code was lost. The earlier cells that succeeded will be run \
             again before the next code runs."
        ),
        "{}",
        replies[2]
    );
    assert_eq!(
        replies[3], "exitcode: 0 (execution succeeded)\nCode output: \n42\n",
        "the definition of `value` was replayed"
    );
}

#[tokio::test]
async fn a_replayed_cell_that_fails_is_reported() {
    let replies = converse(vec![
        // Fails, but defines `y` before it raises: the worker keeps `y`.
        Reply::text("```python\ny = 5\nraise ValueError('after y')\n```"),
        // Completes only thanks to the failed cell's `y`.
        Reply::text("```python\nz = y + 1\nprint(z)\n```"),
        Reply::tool_call("die", json!({})),
        Reply::text("```python\nprint('after')\n```"),
        Reply::text("TERMINATE"),
    ])
    .await;
    assert_eq!(
        replies[2],
        "exitcode: 0 (execution succeeded)\nCode output: \n6\n"
    );
    let after = &replies[4];
    assert!(
        after.starts_with(
            "exitcode: 0 (execution succeeded)\nCode output: \nNote: the Python session had \
             been restarted, so the 1 earlier cell(s) that had succeeded were run again first; \
             1 of them failed this time, so what they defined is missing:\n--- cell 1 ---\n\
             z = y + 1\nprint(z)\n--- error ---\n"
        ),
        "{after}"
    );
    assert!(
        after.contains("NameError: name 'y' is not defined"),
        "{after}"
    );
    assert!(after.ends_with("\nafter\n"), "{after}");
}
