//! API keys never appear in Debug output, errors or logs.

use agentopt_llm::config::{parse_config_list, redact};
use agentopt_llm::{ApiKey, ChatModel, ClientOptions, EndpointConfig, OpenAiClient};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{ask, fast_options};

const SECRET: &str = "sk-proj-SuperSecretValue0123456789";

#[test]
fn debug_and_display_hide_keys() -> anyhow::Result<()> {
    let key = ApiKey::new(SECRET);
    assert_eq!(format!("{key:?} {key}"), "ApiKey(***) ***");
    let endpoint = EndpointConfig::openai("gpt-4o", key);
    assert!(!format!("{endpoint:?}").contains("SuperSecret"));
    let configs = parse_config_list(
        "list",
        &format!(r#"[{{"model": "m", "api_key": "{SECRET}"}}]"#),
    )?;
    assert!(!format!("{configs:?}").contains("SuperSecret"));
    let client = OpenAiClient::new(endpoint, ClientOptions::default())?;
    assert!(!format!("{client:?}").contains("SuperSecret"));
    Ok(())
}

#[tokio::test]
async fn server_errors_echoing_the_key_are_redacted() -> anyhow::Result<()> {
    let server = ScriptedServer::start([Reply::Status {
        status: 401,
        body: format!(r#"{{"error": {{"message": "Incorrect API key provided: {SECRET}. Also sk-otherkey123456789 is wrong.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}}}"#),
        retry_after: None,
    }])
    .await;
    let endpoint = EndpointConfig {
        base_url: server.base_url(),
        ..EndpointConfig::openai("gpt-4o", ApiKey::new(SECRET))
    };
    let error = OpenAiClient::new(endpoint, fast_options())?
        .chat(ask("hi"))
        .await
        .expect_err("401");
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("SuperSecret") && !shown.contains("otherkey"),
        "{shown}"
    );
    assert!(shown.contains("Incorrect API key provided: ***"), "{shown}");
    Ok(())
}

#[test]
fn redact_table() {
    let check = |text: &str, expected: &str| {
        assert_eq!(redact(text, &["my-azure-key"]), expected, "{text}")
    };
    check("key my-azure-key here", "key *** here");
    check("Bearer sk-abcdefghijklmnop.", "Bearer sk-***.");
    check("task-list and sk-short stay", "task-list and sk-short stay");
    check("", "");
}
