//! Integration tests for agentopt-agents: every model call goes over real HTTP to
//! the scripted OpenAI-compatible server; code runs in real sandbox sessions.

mod code_style;
mod conversable;
mod custom_proxy;
mod registry;
mod state_loss;
mod warm_sessions;

use std::sync::Arc;
use std::time::Duration;

use agentopt_agents::{AssistantAgent, ConversableAgent};
use agentopt_llm::{
    CallStyle, ChatModel, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy,
};
use agentopt_sandbox::{PythonEnvironment, SandboxPolicy, SandboxSessions};
use agentopt_testkit::ScriptedServer;
use serde_json::Value;

/// A real client for the scripted server, in `style`.
fn client(server: &ScriptedServer, style: CallStyle) -> Arc<dyn ChatModel> {
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model")
        .with_call_style(style)
        .with_context_window(4096);
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    match OpenAiClient::new(endpoint, options) {
        Ok(client) => Arc::new(client),
        Err(error) => panic!("client for the scripted server: {error}"),
    }
}

/// The texts `sender` sent in `transcript`, in order.
fn sent_by<'a>(transcript: &'a agentopt_agents::Transcript, sender: &str) -> Vec<&'a str> {
    transcript
        .entries
        .iter()
        .filter(|entry| entry.sender == sender)
        .map(|entry| entry.message.text())
        .collect()
}

/// The seed notebook's assistant.
fn assistant(model: Arc<dyn ChatModel>) -> ConversableAgent {
    AssistantAgent::new("assistant", model)
        .with_system_message("You are a helpful assistant.")
        .into_inner()
}

/// The shared managed Python environment (created once, under a lock).
fn python_environment() -> PythonEnvironment {
    match PythonEnvironment::ensure() {
        Ok(environment) => environment,
        Err(error) => panic!("python environment setup failed: {error}"),
    }
}

/// Fresh sandbox sessions with the default policy (5 s cell timeout) but no
/// preloads, so tests do not wait for packages to import.
fn sessions() -> Arc<SandboxSessions> {
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    Arc::new(SandboxSessions::new(python_environment(), policy))
}

/// `value` serialised and scrubbed of timings.
fn scrubbed(value: &impl serde::Serialize) -> Value {
    match serde_json::to_value(value) {
        Ok(json) => agentopt_testkit::scrub_timings(json),
        Err(error) => panic!("serialising for a snapshot: {error}"),
    }
}
