//! Context-window discovery: configuration, llama.cpp /props, vLLM /models, table.

use agentopt_llm::{
    ApiKey, ChatModel, EndpointConfig, LlmError, OpenAiClient, estimate_prompt_tokens,
};
use agentopt_testkit::ScriptedServer;

use crate::fast_options;

#[tokio::test]
async fn context_window_sources() -> anyhow::Result<()> {
    let llama = ScriptedServer::builder().n_ctx(8192).script([]).await;
    let client = OpenAiClient::new(
        EndpointConfig::local(llama.base_url(), "qwen"),
        fast_options(),
    )?;
    assert_eq!(client.context_window().await?, 8192);
    assert_eq!(client.context_window().await?, 8192);
    assert_eq!(llama.requests().len(), 1, "asked once, then remembered");
    assert_eq!(llama.requests()[0].path, "/props");

    let vllm = ScriptedServer::builder()
        .model("qwen")
        .n_ctx(32_768)
        .without_props()
        .script([])
        .await;
    let client = OpenAiClient::new(
        EndpointConfig::compatible(vllm.base_url(), "qwen"),
        fast_options(),
    )?;
    assert_eq!(client.context_window().await?, 32_768);

    let configured = EndpointConfig::compatible(llama.base_url(), "qwen").with_context_window(2048);
    assert_eq!(
        OpenAiClient::new(configured, fast_options())?
            .context_window()
            .await?,
        2048
    );

    let azure = EndpointConfig::azure(
        llama.root_url(),
        "gpt-4o-mini",
        ApiKey::new("k1234"),
        "2024-06-01",
    );
    assert_eq!(
        OpenAiClient::new(azure, fast_options())?
            .context_window()
            .await?,
        128_000
    );

    let unknown = ScriptedServer::builder().without_props().script([]).await;
    let client = OpenAiClient::new(
        EndpointConfig::compatible(unknown.base_url(), "mystery"),
        fast_options(),
    )?;
    let error = client.context_window().await.expect_err("unknown");
    assert!(
        matches!(error, LlmError::Config { ref field, .. } if field == "context_window"),
        "{error}"
    );
    Ok(())
}

#[test]
fn prompt_estimate_is_conservative() {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
    let estimate = estimate_prompt_tokens(&[agentopt_llm::ChatMessage::user(text.clone())], &[]);
    // English runs about 4.5 bytes per token; the estimate must not be below that.
    assert!(estimate >= text.len() / 4, "{estimate}");
    assert!(estimate <= text.len() / 2, "{estimate}");
}
