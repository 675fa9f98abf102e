//! Preflight: reachable, model served, context window known — fast and named.

use std::time::{Duration, Instant};

use agentopt_llm::{
    ApiKey, ChatModel, ClientOptions, ConfigListModel, EndpointCheck, EndpointConfig, LlmError,
    OpenAiClient, PriceTable, UsageMeter,
};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::fast_options;

const WITHIN: Duration = Duration::from_secs(5);

fn client_for(endpoint: EndpointConfig) -> OpenAiClient {
    OpenAiClient::new(endpoint, fast_options()).expect("valid endpoint")
}

/// An Azure endpoint (which lists no models) of `gpt-4o-mini` at `server`.
fn azure_at(server: &ScriptedServer) -> EndpointConfig {
    EndpointConfig::azure(
        server.root_url(),
        "gpt-4o-mini",
        ApiKey::new("k1234"),
        "2024-06-01",
    )
}

/// The preflight outcome as one line: `ok <label> ctx=N` or the error message.
async fn outcome(model: &dyn ChatModel, within: Duration) -> String {
    match model.preflight(within).await {
        Ok(checks) => checks
            .iter()
            .map(
                |EndpointCheck {
                     endpoint,
                     context_window,
                 }| format!("ok {endpoint} ctx={context_window}"),
            )
            .collect::<Vec<_>>()
            .join("; "),
        Err(error) => format!("error: {error}"),
    }
}

#[tokio::test]
async fn a_served_model_with_a_known_window_passes_without_a_chat_request() {
    let server = ScriptedServer::builder()
        .model("qwen")
        .n_ctx(8192)
        .script([])
        .await;
    let client = client_for(EndpointConfig::local(server.base_url(), "qwen"));
    assert_eq!(
        outcome(&client, WITHIN).await,
        format!("ok qwen @ {} ctx=8192", server.base_url())
    );
    assert!(server.chat_requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_at_once_naming_it() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let client = client_for(EndpointConfig::compatible(&base_url, "qwen"));
    let started = Instant::now();
    let error = client.preflight(WITHIN).await.expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, LlmError::Preflight { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "preflight of model \"qwen\" at {base_url} failed: unreachable"
        )),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_bound() -> anyhow::Result<()> {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base_url = format!("http://{}/v1", silent.local_addr()?);
    let client = client_for(EndpointConfig::compatible(&base_url, "qwen"));
    let started = Instant::now();
    let error = client
        .preflight(Duration::from_millis(300))
        .await
        .expect_err("silent");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        format!("preflight of model \"qwen\" at {base_url} failed: no answer within 300ms")
    );
    Ok(())
}

#[tokio::test]
async fn a_model_the_server_does_not_serve_is_named_with_what_it_serves() {
    let server = ScriptedServer::builder()
        .model("qwen2.5-coder")
        .script([])
        .await;
    let client = client_for(EndpointConfig::compatible(server.base_url(), "gpt-4o"));
    assert_eq!(
        outcome(&client, WITHIN).await,
        format!(
            "error: preflight of model \"gpt-4o\" at {} failed: the model is not served; the server lists \"qwen2.5-coder\"",
            server.base_url()
        )
    );
}

#[tokio::test]
async fn an_unknown_context_window_names_the_field_and_flag_that_set_it() {
    let server = ScriptedServer::builder()
        .model("mystery")
        .without_context_window()
        .script([])
        .await;
    let client = client_for(EndpointConfig::compatible(server.base_url(), "mystery"));
    let error = client.preflight(WITHIN).await.expect_err("unknown window");
    assert!(
        matches!(error, LlmError::Config { ref field, .. } if field == "context_window"),
        "{error}"
    );
    let message = error.to_string();
    for needle in [
        "\"mystery\"",
        "`context_window` field",
        "--context-window",
        &server.base_url(),
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // The configured window makes the same endpoint pass.
    let configured =
        EndpointConfig::compatible(server.base_url(), "mystery").with_context_window(2048);
    assert_eq!(
        outcome(&client_for(configured), WITHIN).await,
        format!("ok mystery @ {} ctx=2048", server.base_url())
    );
}

#[tokio::test]
async fn a_server_without_a_model_list_gets_one_single_token_request() {
    // Azure lists no models at `…/models`: the check sends one tiny completion.
    let server = ScriptedServer::start([Reply::text("p")]).await;
    let azure = azure_at(&server);
    assert_eq!(
        outcome(&client_for(azure), WITHIN).await,
        format!("ok gpt-4o-mini @ {} ctx=128000", server.root_url())
    );
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["max_tokens"], 1);

    let failing = ScriptedServer::start([Reply::server_error(404)]).await;
    let azure = azure_at(&failing);
    let message = outcome(&client_for(azure), WITHIN).await;
    assert!(
        message.contains("a one-token test request failed: "),
        "{message}"
    );
    assert_eq!(failing.chat_requests().len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn a_config_list_fails_on_its_first_bad_entry() -> anyhow::Result<()> {
    let good = ScriptedServer::builder().model("m").script([]).await;
    let wrong_model = ScriptedServer::builder().model("other").script([]).await;
    let model = ConfigListModel::new(vec![
        std::sync::Arc::new(client_for(EndpointConfig::compatible(good.base_url(), "m"))),
        std::sync::Arc::new(client_for(EndpointConfig::compatible(
            wrong_model.base_url(),
            "m",
        ))),
    ])?;
    let message = outcome(&model, WITHIN).await;
    assert!(
        message.starts_with(&format!(
            "error: preflight of model \"m\" at {}",
            wrong_model.base_url()
        )),
        "{message}"
    );
    Ok(())
}

/// A client of `server`'s model that meters into `meter`.
fn metered_client(endpoint: EndpointConfig, meter: &UsageMeter) -> OpenAiClient {
    let options = ClientOptions {
        meter: Some(meter.clone()),
        ..fast_options()
    };
    OpenAiClient::new(endpoint, options).expect("valid endpoint")
}

#[tokio::test]
async fn the_model_list_is_retried_after_a_429_and_a_503() {
    // The 429 asks for a one-second wait, which the check honours.
    let server = ScriptedServer::builder()
        .model("qwen")
        .get_faults([Reply::rate_limited(Some(1)), Reply::server_error(503)])
        .script([])
        .await;
    let meter = UsageMeter::new(PriceTable::new());
    let client = metered_client(
        EndpointConfig::compatible(server.base_url(), "qwen"),
        &meter,
    );
    let started = Instant::now();
    assert_eq!(
        outcome(&client, WITHIN).await,
        format!("ok qwen @ {} ctx=4096", server.base_url())
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let models_requests = server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/models"))
        .count();
    assert_eq!(models_requests, 3, "429, 503, then the list");
    assert_eq!(meter.report().by_caller["preflight"].retries, 2);
}

#[tokio::test]
async fn a_connection_reset_at_preflight_is_retried() {
    let server = ScriptedServer::builder()
        .model("qwen")
        .get_faults([Reply::Reset])
        .script([])
        .await;
    let client = client_for(EndpointConfig::compatible(server.base_url(), "qwen"));
    assert_eq!(
        outcome(&client, WITHIN).await,
        format!("ok qwen @ {} ctx=4096", server.base_url())
    );
}

#[tokio::test]
async fn the_one_token_request_is_retried_like_any_call_and_metered() {
    let server = ScriptedServer::start([
        Reply::rate_limited(Some(0)),
        Reply::server_error(503),
        Reply::text("p"),
    ])
    .await;
    let meter = UsageMeter::new(PriceTable::new());
    let azure = azure_at(&server);
    assert_eq!(
        outcome(&metered_client(azure, &meter), WITHIN).await,
        format!("ok gpt-4o-mini @ {} ctx=128000", server.root_url())
    );
    assert_eq!(server.chat_requests().len(), 3);
    let preflight = meter.report().by_caller["preflight"];
    assert_eq!(
        (preflight.calls, preflight.retries),
        (1, 2),
        "{preflight:?}"
    );
}

#[tokio::test]
async fn a_server_that_keeps_failing_fails_the_check_after_the_policy_s_attempts() {
    let server = ScriptedServer::builder()
        .model("qwen")
        .get_faults((0..10).map(|_| Reply::server_error(503)))
        .script([
            Reply::server_error(503),
            Reply::server_error(503),
            Reply::server_error(503),
        ])
        .await;
    let client = client_for(EndpointConfig::compatible(server.base_url(), "qwen"));
    let message = outcome(&client, WITHIN).await;
    assert!(
        message.contains("a one-token test request failed: "),
        "{message}"
    );
    assert!(message.contains("503"), "{message}");
    let models_requests = server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/models"))
        .count();
    assert_eq!(models_requests, 3, "fast_options allow 3 attempts");
}
