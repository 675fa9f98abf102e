//! Integration tests for agentopt-llm: the real async-openai client over real HTTP
//! against the scripted server from agentopt-testkit.

mod cache;
mod config;
mod context;
mod fallback;
mod faults;
mod lenient;
mod preflight;
mod redaction;
mod requests;
mod spread;
mod usage;

use std::time::Duration;

use agentopt_llm::{
    ChatMessage, ChatRequest, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy,
};
use agentopt_testkit::ScriptedServer;

/// Options with millisecond backoff so retry tests run fast.
fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            max_malformed_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// A compatible-endpoint client for `server` with `options`.
fn client_with(server: &ScriptedServer, options: ClientOptions) -> OpenAiClient {
    OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "test-model"),
        options,
    )
    .expect("valid endpoint")
}

/// A compatible-endpoint client for `server` with [`fast_options`].
fn client(server: &ScriptedServer) -> OpenAiClient {
    client_with(server, fast_options())
}

/// A one-message request.
fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user(text)])
}
