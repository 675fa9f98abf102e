//! The scripted server at the byte level: what a client really receives.

use std::time::Duration;

use agentopt_testkit::{DEFAULT_MODEL, Gate, Reply, ScriptedServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 request with `Connection: close` and returns everything the
/// server sent, or the I/O error that ended the read.
async fn exchange(
    server: &ScriptedServer,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(server.addr()).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await?;
    Ok(String::from_utf8_lossy(&received).into_owned())
}

fn body_of(response: &str) -> Value {
    let (_, body) = response
        .split_once("\r\n\r\n")
        .expect("header/body separator");
    serde_json::from_str(body).expect("JSON body")
}

const CHAT: &str = "/v1/chat/completions";
const ASK: &str = r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;

#[tokio::test]
async fn completions_follow_the_openai_shape_and_requests_are_recorded() -> std::io::Result<()> {
    let server = ScriptedServer::start([
        Reply::text("hello").with_usage(3, 2),
        Reply::tool_call("python", json!({"cell": "1"})),
        Reply::function_call("python", json!({})),
    ])
    .await;
    let text = body_of(&exchange(&server, "POST", CHAT, ASK).await?);
    assert_eq!(
        text["choices"][0]["message"],
        json!({"role": "assistant", "content": "hello"})
    );
    assert_eq!(text["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        text["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    );
    assert_eq!(text["model"], DEFAULT_MODEL);

    let tool = body_of(&exchange(&server, "POST", CHAT, ASK).await?);
    assert_eq!(tool["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        tool["choices"][0]["message"]["tool_calls"][0]["function"],
        json!({"name": "python", "arguments": "{\"cell\":\"1\"}"})
    );
    let function = body_of(&exchange(&server, "POST", CHAT, ASK).await?);
    assert_eq!(
        function["choices"][0]["message"]["function_call"]["name"],
        "python"
    );

    let recorded = server.chat_requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].body["messages"][0]["content"], "hi");
    assert_eq!(recorded[0].header("Authorization"), Some("Bearer k"));
    assert_eq!(server.remaining(), 0);
    Ok(())
}

#[tokio::test]
async fn faults_are_real_on_the_wire() -> std::io::Result<()> {
    let server = ScriptedServer::start([
        Reply::rate_limited(Some(7)),
        Reply::text("abcdefghijklmnopqrstuvwxyz").truncated(),
        Reply::Reset,
        Reply::empty_choices(),
    ])
    .await;
    let limited = exchange(&server, "POST", CHAT, ASK).await?;
    assert!(limited.starts_with("HTTP/1.1 429 "), "{limited}");
    assert!(limited.contains("retry-after: 7\r\n"), "{limited}");

    let truncated = exchange(&server, "POST", CHAT, ASK).await?;
    let (head, body) = truncated.split_once("\r\n\r\n").expect("head");
    let promised: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|length| length.parse().ok())
        .expect("content-length");
    assert!(body.len() < promised, "{} of {promised}", body.len());

    match exchange(&server, "POST", CHAT, ASK).await {
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(received) => assert_eq!(received, "", "a reset sends no response"),
    }

    let empty = body_of(&exchange(&server, "POST", CHAT, ASK).await?);
    assert_eq!(empty["choices"], json!([]));

    let exhausted = exchange(&server, "POST", CHAT, ASK).await?;
    assert!(exhausted.starts_with("HTTP/1.1 410 "), "{exhausted}");
    Ok(())
}

#[tokio::test]
async fn info_endpoints_report_the_context_window() -> std::io::Result<()> {
    let server = ScriptedServer::builder()
        .model("qwen")
        .n_ctx(2048)
        .script([])
        .await;
    let props = body_of(&exchange(&server, "GET", "/props", "").await?);
    assert_eq!(props["default_generation_settings"]["n_ctx"], 2048);
    let models = body_of(&exchange(&server, "GET", "/v1/models", "").await?);
    assert_eq!(
        models["data"][0],
        json!({"id": "qwen", "object": "model", "max_model_len": 2048})
    );
    let health = body_of(&exchange(&server, "GET", "/health", "").await?);
    assert_eq!(health["status"], "ok");
    let unknown = exchange(&server, "GET", "/nope", "").await?;
    assert!(unknown.starts_with("HTTP/1.1 404 "), "{unknown}");

    let no_props = ScriptedServer::builder().without_props().script([]).await;
    assert!(
        exchange(&no_props, "GET", "/props", "")
            .await?
            .starts_with("HTTP/1.1 404 ")
    );
    Ok(())
}

#[tokio::test]
async fn rules_see_the_request_and_held_replies_overlap() -> std::io::Result<()> {
    let gate = Gate::closed();
    let held = gate.clone();
    let server = ScriptedServer::with_rule(move |request| {
        let question = request.body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Reply::text(format!("echo {question}")).gated(&held)
    })
    .await;
    let calls = futures::future::join_all((0..4).map(|_| exchange(&server, "POST", CHAT, ASK)));
    let release = async {
        // Every request is in, none answered: the gate, not a delay, makes them
        // overlap.
        while server.requests().len() < 4 {
            tokio::task::yield_now().await;
        }
        assert!(!gate.is_open());
        gate.open();
    };
    let (responses, ()) = tokio::join!(calls, release);
    for response in responses {
        assert_eq!(
            body_of(&response?)["choices"][0]["message"]["content"],
            "echo hi"
        );
    }
    assert_eq!(server.peak_in_flight(), 4);
    Ok(())
}

#[tokio::test]
async fn a_gated_reply_waits_for_the_gate_and_a_closed_gate_holds_again() -> std::io::Result<()> {
    let gate = Gate::closed();
    let server = ScriptedServer::start([
        Reply::text("first").gated(&gate),
        Reply::text("second").gated(&gate),
    ])
    .await;
    let held = tokio::time::timeout(
        Duration::from_millis(200),
        exchange(&server, "POST", CHAT, ASK),
    )
    .await;
    assert!(held.is_err(), "no answer while the gate is closed");
    gate.open();
    let response = exchange(&server, "POST", CHAT, ASK).await?;
    assert_eq!(
        body_of(&response)["choices"][0]["message"]["content"],
        "second"
    );
    gate.close();
    assert!(!gate.is_open());
    Ok(())
}

#[test]
fn timings_are_scrubbed_at_any_depth() {
    let scrubbed = agentopt_testkit::scrub_timings(serde_json::json!({
        "wall_time": {"secs": 1, "nanos": 5},
        "entries": [{"duration": 0.25, "text": "kept"}, {"elapsed": 3}],
        "turns": 2,
    }));
    assert_eq!(
        scrubbed,
        serde_json::json!({
            "wall_time": "[duration]",
            "entries": [{"duration": "[duration]", "text": "kept"}, {"elapsed": "[duration]"}],
            "turns": 2,
        })
    );
}

#[tokio::test]
async fn the_context_window_is_enforced_with_a_real_tokenizer() -> std::io::Result<()> {
    // "hello world" is 2 tokens in cl100k_base; a 3-digit group is one token.
    assert_eq!(agentopt_testkit::count_tokens("hello world"), 2);
    assert_eq!(agentopt_testkit::count_tokens(&"123".repeat(100)), 100);
    let server = ScriptedServer::builder()
        .n_ctx(512)
        .script([Reply::text("fits"), Reply::text("fits again")])
        .await;
    let body = |text: &str, max_tokens: u64| {
        json!({"model": "m", "max_tokens": max_tokens,
               "messages": [{"role": "user", "content": text}]})
        .to_string()
    };
    let long = "123".repeat(600);
    let refused = exchange(&server, "POST", CHAT, &body(&long, 16)).await?;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let error = &body_of(&refused)["error"];
    assert_eq!(error["code"], "context_length_exceeded");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum context length is 512")),
        "{error}"
    );
    // Prompt and completion together: 100 + 3 + 3 prompt tokens fit alone, not
    // with 500 more to generate.
    let short = "123".repeat(100);
    let too_much = exchange(&server, "POST", CHAT, &body(&short, 500)).await?;
    assert!(too_much.starts_with("HTTP/1.1 400"), "{too_much}");
    let fits = body_of(&exchange(&server, "POST", CHAT, &body(&short, 400)).await?);
    assert_eq!(fits["choices"][0]["message"]["content"], "fits");
    // A refusal does not use up the script.
    assert_eq!(server.remaining(), 1);

    let lenient = ScriptedServer::builder()
        .n_ctx(512)
        .without_context_limit()
        .script([Reply::text("anything")])
        .await;
    let answered = body_of(&exchange(&lenient, "POST", CHAT, &body(&long, 16)).await?);
    assert_eq!(answered["choices"][0]["message"]["content"], "anything");
    Ok(())
}
