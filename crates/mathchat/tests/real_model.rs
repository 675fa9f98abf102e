//! The MathUserProxyAgent against the real embedded local model (run by
//! `cargo xtask test`, which prepares the model and runtime first).

use std::sync::Arc;

use agentopt_agents::StopReason;
use agentopt_llm::{ChatModel, ClientOptions, EndpointConfig, OpenAiClient};
use agentopt_local::{LocalModel, LocalServer, LocalServerOptions};
use agentopt_mathchat::{MATH_AGENT_NAME, MathUserProxyAgent};

use crate::{assistant, sessions};

#[tokio::test]
#[ignore = "real model: run by cargo xtask test"]
async fn real_model_math_conversation_runs_to_an_end() {
    let server = match LocalServer::start(LocalServerOptions {
        model: LocalModel::QwenCoder0_5B,
        context_size: Some(8192),
        ..LocalServerOptions::default()
    })
    .await
    {
        Ok(server) => server,
        Err(error) => panic!("local server: {error}"),
    };
    let endpoint = EndpointConfig::local(server.base_url(), server.model_name());
    let model: Arc<dyn ChatModel> = match OpenAiClient::new(endpoint, ClientOptions::default()) {
        Ok(client) => Arc::new(client),
        Err(error) => panic!("client: {error}"),
    };
    let mut assistant = assistant(model);
    let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions());
    let outcome = proxy
        .initiate_chat(&mut assistant, "What is $3 + 4$?", "7")
        .await;
    println!("{}", outcome.transcript.to_json().unwrap_or_default());
    assert!(
        !matches!(outcome.transcript.stop_reason, StopReason::Error { .. }),
        "{:?}",
        outcome.transcript.stop_reason
    );
    assert!(outcome.transcript.totals.model_calls >= 1);
    assert!(outcome.transcript.totals.usage.total_tokens() > 0);
}
