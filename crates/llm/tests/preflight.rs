//! Preflight: reachable, model served, context window known — fast and named.

use std::time::{Duration, Instant};

use agentopt_llm::{
    ApiKey, ChatModel, ConfigListModel, EndpointCheck, EndpointConfig, LlmError, OpenAiClient,
};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::fast_options;

const WITHIN: Duration = Duration::from_secs(5);

fn client_for(endpoint: EndpointConfig) -> OpenAiClient {
    OpenAiClient::new(endpoint, fast_options()).expect("valid endpoint")
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
    let azure = EndpointConfig::azure(
        server.root_url(),
        "gpt-4o-mini",
        ApiKey::new("k1234"),
        "2024-06-01",
    );
    assert_eq!(
        outcome(&client_for(azure), WITHIN).await,
        format!("ok gpt-4o-mini @ {} ctx=128000", server.root_url())
    );
    let requests = server.chat_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["max_tokens"], 1);

    let failing = ScriptedServer::start([Reply::server_error(404)]).await;
    let azure = EndpointConfig::azure(
        failing.root_url(),
        "gpt-4o-mini",
        ApiKey::new("k1234"),
        "2024-06-01",
    );
    let message = outcome(&client_for(azure), WITHIN).await;
    assert!(
        message.contains("a one-token test request failed: "),
        "{message}"
    );
    assert_eq!(failing.chat_requests().len(), 1, "no retries at preflight");
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
