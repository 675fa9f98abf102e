//! Integration tests for agentopt-mathchat: problem loading and selection, and the
//! MATH user proxy with every model call over real HTTP to the scripted
//! OpenAI-compatible server and code in real sandbox sessions.

mod answer_checks;
mod concurrency;
mod data;
mod math_proxy;
mod real_model;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::{AssistantAgent, ConversableAgent};
use agentopt_llm::{
    CallStyle, ChatModel, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy,
};
use agentopt_sandbox::{PythonEnvironment, SandboxPolicy, SandboxSessions};
use agentopt_testkit::ScriptedServer;
use serde_json::Value;

/// The workspace root (the bundled data lives under `data/`).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real client for the scripted server, in `style`, without retries.
fn client(server: &ScriptedServer, style: CallStyle) -> Arc<dyn ChatModel> {
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model")
        .with_call_style(style)
        .with_context_window(4096);
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    OpenAiClient::new(endpoint, options)
        .map(|client| Arc::new(client) as Arc<dyn ChatModel>)
        .unwrap_or_else(|error| panic!("client for the scripted server: {error}"))
}

/// The seed notebook's assistant.
fn assistant(model: Arc<dyn ChatModel>) -> ConversableAgent {
    AssistantAgent::new("assistant", model)
        .with_system_message("You are a helpful assistant.")
        .into_inner()
}

/// The shared managed Python environment (created once, under a lock).
fn python_environment() -> PythonEnvironment {
    PythonEnvironment::ensure()
        .unwrap_or_else(|error| panic!("python environment setup failed: {error}"))
}

/// Fresh sandbox sessions with the default policy (5 s cell timeout) and no preloads.
fn sessions() -> Arc<SandboxSessions> {
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    Arc::new(SandboxSessions::new(python_environment(), policy))
}

/// `value` serialised and scrubbed of timings.
fn scrubbed(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value)
        .map(agentopt_testkit::scrub_timings)
        .unwrap_or_else(|error| panic!("serialising for a snapshot: {error}"))
}
