//! Every injected fault is either retried to success or surfaced as a clear error.

use std::time::{Duration, Instant};

use agentopt_llm::{ChatModel, ClientOptions, EndpointConfig, LlmError, OpenAiClient, RetryPolicy};
use agentopt_testkit::{Gate, Reply, ScriptedServer};

use crate::{ask, client, client_with, fast_options};

/// Runs one request against a server scripted with `faults` followed by a good
/// reply; returns the answer text and how many chat requests the server saw.
async fn recover_from(faults: Vec<Reply>) -> (String, usize) {
    let server = ScriptedServer::start(faults.into_iter().chain([Reply::text("recovered")])).await;
    let response = client(&server)
        .chat(ask("q"))
        .await
        .expect("retried to success");
    (
        response.message.content.unwrap_or_default(),
        server.chat_requests().len(),
    )
}

/// Each case's faults are retried to success, one request per fault plus one.
async fn all_recover(cases: Vec<(&str, Vec<Reply>)>) {
    for (name, faults) in cases {
        let expected_requests = faults.len() + 1;
        assert_eq!(
            recover_from(faults).await,
            ("recovered".to_owned(), expected_requests),
            "{name}"
        );
    }
}

#[tokio::test]
async fn transient_faults_are_retried() {
    let cases: Vec<(&str, Vec<Reply>)> = vec![
        ("429", vec![Reply::rate_limited(None)]),
        ("500", vec![Reply::server_error(500)]),
        (
            "503 twice",
            vec![Reply::server_error(503), Reply::server_error(503)],
        ),
        ("connection reset", vec![Reply::Reset]),
        ("truncated body", vec![Reply::text("cut short").truncated()]),
        (
            "502 then reset",
            vec![Reply::server_error(502), Reply::Reset],
        ),
    ];
    all_recover(cases).await;
}

#[tokio::test]
async fn retry_after_is_honoured() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::rate_limited(Some(1)), Reply::text("ok")]).await;
    let started = Instant::now();
    client(&server).chat(ask("q")).await?;
    // The backoff alone would wait at most 5 ms; only Retry-After explains a second.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_max_attempts() {
    let server = ScriptedServer::with_rule(|_| Reply::server_error(503)).await;
    let error = client(&server)
        .chat(ask("q"))
        .await
        .expect_err("never succeeds");
    match &error {
        LlmError::Http {
            status,
            attempts,
            body,
            ..
        } => {
            assert_eq!((*status, *attempts), (503, 3));
            assert!(body.contains("scripted server error"), "{body}");
        }
        other => panic!("expected HTTP error, got {other}"),
    }
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = ScriptedServer::start([Reply::Status {
        status: 400,
        body: r#"{"error": {"message": "bad field", "type": "invalid_request_error", "param": null, "code": null}}"#
            .to_owned(),
        retry_after: None,
    }])
    .await;
    let error = client(&server).chat(ask("q")).await.expect_err("400");
    assert!(
        matches!(
            error,
            LlmError::Http {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test]
async fn context_overflow_is_recognised() {
    let server = ScriptedServer::start([Reply::Status {
        status: 400,
        body: r#"{"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error"}}"#.to_owned(),
        retry_after: None,
    }])
    .await;
    let error = client(&server).chat(ask("q")).await.expect_err("overflow");
    assert!(matches!(error, LlmError::ContextOverflow { .. }), "{error}");
}

#[tokio::test]
async fn slow_replies_time_out_and_retry() -> anyhow::Result<()> {
    // A reply held at a gate that never opens is slow on any machine; the retry's
    // reply is immediate, and the timeout leaves a loaded debug build ample time
    // for it (a 200 ms bound once made this test depend on the machine's load).
    let never = Gate::closed();
    let options = ClientOptions {
        timeout: Duration::from_secs(2),
        ..fast_options()
    };
    let server = ScriptedServer::start([
        Reply::text("too late").gated(&never),
        Reply::text("in time"),
    ])
    .await;
    let response = client_with(&server, options).chat(ask("q")).await?;
    assert_eq!(response.message.content.as_deref(), Some("in time"));

    // Every attempt held: the timeout ends each, however short it is.
    let held = never.clone();
    let always_slow = ScriptedServer::with_rule(move |_| Reply::text("late").gated(&held)).await;
    let options = ClientOptions {
        timeout: Duration::from_millis(100),
        ..fast_options()
    };
    let error = client_with(&always_slow, options)
        .chat(ask("q"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(error, LlmError::Timeout { attempts: 3, .. }),
        "{error}"
    );
    assert!(!never.is_open());
    Ok(())
}

#[tokio::test]
async fn malformed_replies_are_retried() {
    let cases: Vec<(&str, Vec<Reply>)> = vec![
        ("invalid JSON", vec![Reply::malformed_json()]),
        ("empty choices", vec![Reply::empty_choices()]),
        (
            "invalid JSON then empty choices",
            vec![Reply::malformed_json(), Reply::empty_choices()],
        ),
        (
            "malformed and transient mixed",
            vec![
                Reply::malformed_json(),
                Reply::server_error(503),
                Reply::empty_choices(),
                Reply::text("cut").truncated(),
            ],
        ),
    ];
    all_recover(cases).await;
}

#[tokio::test]
async fn persistent_malformed_json_gives_up_with_the_raw_body() {
    let server = ScriptedServer::with_rule(|_| Reply::malformed_json()).await;
    let error = client(&server).chat(ask("q")).await.expect_err("malformed");
    match &error {
        LlmError::MalformedResponse { body, attempts, .. } => {
            assert!(body.contains("this is not json"), "{body}");
            assert_eq!(*attempts, 3, "fast_options allow 3 malformed replies");
        }
        other => panic!("expected malformed response, got {other}"),
    }
    assert!(error.to_string().contains("after 3 attempt(s)"), "{error}");
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test]
async fn persistent_empty_choices_is_a_clear_error() {
    let server = ScriptedServer::with_rule(|_| Reply::empty_choices()).await;
    let error = client(&server)
        .chat(ask("q"))
        .await
        .expect_err("no choices");
    match &error {
        LlmError::MalformedResponse { message, body, .. } => {
            assert_eq!(message, "reply has no choices");
            assert!(body.contains("chatcmpl-empty"), "{body}");
        }
        other => panic!("expected malformed response, got {other}"),
    }
    assert_eq!(server.chat_requests().len(), 3);
}

#[tokio::test]
async fn malformed_replies_have_their_own_retry_count() {
    // Two transient faults and two malformed replies: neither count reaches its limit
    // (3 transient, 3 malformed), so the call succeeds after four failures in all,
    // more than either limit alone.
    let (answer, requests) = recover_from(vec![
        Reply::server_error(500),
        Reply::malformed_json(),
        Reply::server_error(502),
        Reply::empty_choices(),
    ])
    .await;
    assert_eq!((answer.as_str(), requests), ("recovered", 5));
    let server = ScriptedServer::start([Reply::malformed_json()]).await;
    let options = ClientOptions {
        retry: RetryPolicy {
            max_malformed_attempts: 1,
            ..fast_options().retry
        },
        ..fast_options()
    };
    let error = client_with(&server, options)
        .chat(ask("q"))
        .await
        .expect_err("no malformed retries");
    assert!(
        matches!(error, LlmError::MalformedResponse { attempts: 1, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn refused_connections_are_retried_then_reported() -> anyhow::Result<()> {
    // Bind and drop to get a port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = EndpointConfig::compatible(format!("http://127.0.0.1:{port}/v1"), "m");
    let error = OpenAiClient::new(endpoint, fast_options())?
        .chat(ask("q"))
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, LlmError::Transport { attempts: 3, .. }),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn script_exhaustion_is_reported_not_retried() {
    let server = ScriptedServer::start([]).await;
    let error = client(&server).chat(ask("q")).await.expect_err("exhausted");
    assert!(error.to_string().contains("script exhausted"), "{error}");
    assert_eq!(server.chat_requests().len(), 1);
}

#[tokio::test]
async fn concurrency_limit_is_shared_by_clones() {
    // Replies are held until two requests are in: the peak is exactly the limit
    // because the test waits for it, not because 50 ms delays happened to overlap.
    let gate = Gate::closed();
    let held = gate.clone();
    let server = ScriptedServer::with_rule(move |_| Reply::text("ok").gated(&held)).await;
    let options = ClientOptions {
        max_concurrency: 2,
        retry: RetryPolicy::none(),
        ..fast_options()
    };
    let client = client_with(&server, options);
    let calls = futures::future::join_all((0..8).map(|index| {
        let clone = client.clone();
        async move { clone.chat(ask(&format!("q{index}"))).await }
    }));
    let release = async {
        while server.chat_requests().len() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A third request would come now if the limit let it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            server.chat_requests().len(),
            2,
            "the limit holds the others back"
        );
        gate.open();
    };
    let (results, ()) = tokio::join!(calls, release);
    for result in results {
        result.expect("all succeed");
    }
    assert_eq!(server.chat_requests().len(), 8);
    assert_eq!(server.peak_in_flight(), 2);
}

#[test]
fn backoff_grows_with_jitter_and_caps() {
    let policy = RetryPolicy {
        max_attempts: 10,
        max_malformed_attempts: 2,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1_000),
        max_retry_after: Duration::from_secs(3),
    };
    // (attempt, Retry-After, lowest allowed, highest allowed)
    let cases = [
        (1, None, 50, 100),
        (2, None, 100, 200),
        (3, None, 200, 400),
        (5, None, 500, 1_000),
        (30, None, 500, 1_000),
        (1, Some(2_000), 2_000, 2_000),
        (4, Some(60_000), 3_000, 3_000),
    ];
    for (attempt, retry_after, low, high) in cases {
        for _ in 0..50 {
            let delay = policy.delay(attempt, retry_after.map(Duration::from_millis));
            assert!(
                Duration::from_millis(low) <= delay && delay <= Duration::from_millis(high),
                "attempt {attempt}, retry-after {retry_after:?}: {delay:?}"
            );
        }
    }
}

#[tokio::test]
async fn retried_faults_are_metered_per_caller_and_endpoint() -> anyhow::Result<()> {
    let server = ScriptedServer::start([
        Reply::server_error(503),
        Reply::malformed_json(),
        Reply::text("ok"),
    ])
    .await;
    let meter = agentopt_llm::UsageMeter::new(agentopt_llm::PriceTable::new());
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model");
    let label = endpoint.label();
    let options = ClientOptions {
        meter: Some(meter.clone()),
        ..fast_options()
    };
    OpenAiClient::new(endpoint, options)?
        .chat(ask("q").with_caller("assistant"))
        .await?;
    let report = meter.report();
    assert_eq!((report.total.calls, report.total.retries), (1, 2));
    assert_eq!(report.by_caller["assistant"].retries, 2);
    assert_eq!(report.by_endpoint[&label].retries, 2);
    Ok(())
}

/// A completion whose content is `content_json`, a JSON string literal as the
/// server wrote it.
fn raw_completion(content_json: &str) -> Reply {
    Reply::RawOk(format!(
        "{{\"id\": \"c1\", \"object\": \"chat.completion\", \"created\": 0, \"model\": \"m\", \
         \"choices\": [{{\"index\": 0, \"message\": {{\"role\": \"assistant\", \"content\": \
         {content_json}}}, \"finish_reason\": \"stop\"}}], \
         \"usage\": {{\"prompt_tokens\": 3, \"completion_tokens\": 2, \"total_tokens\": 5}}}}"
    ))
}

#[tokio::test]
async fn a_lone_surrogate_escape_is_read_as_the_replacement_character() {
    // Valid JSON that no Rust string holds: once a malformed reply on every try (and,
    // as an infrastructure error, on every resume).
    let server = ScriptedServer::start([
        raw_completion(r#""a\ud800b \ud83d\ude00 \\ud800 \udc00\"""#),
        raw_completion(r#""x\ud800""#),
    ])
    .await;
    let model = client(&server);
    let first = model.chat(ask("q")).await.expect("read");
    assert_eq!(
        first.message.content.as_deref(),
        Some("a\u{fffd}b \u{1f600} \\ud800 \u{fffd}\""),
        "a pair stays, an escaped backslash is no escape"
    );
    assert_eq!(first.usage.completion_tokens, 2);
    let second = model.chat(ask("q")).await.expect("read");
    assert_eq!(second.message.content.as_deref(), Some("x\u{fffd}"));
    assert_eq!(server.chat_requests().len(), 2, "no retry needed");
}
