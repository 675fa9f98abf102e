//! Integration tests for agentopt-sandbox: normal behaviour and the escape suite.

mod behaviour;
mod escape;
mod setup;

use agentopt_sandbox::{PythonEnvironment, PythonSession, SandboxPolicy};

/// The shared managed environment (created once, under a lock, on first use).
fn python_environment() -> PythonEnvironment {
    match PythonEnvironment::ensure() {
        Ok(environment) => environment,
        Err(e) => panic!("python environment setup failed: {e}"),
    }
}

/// A sandboxed session without preloads (fast to start) and a short timeout.
async fn session() -> PythonSession {
    session_with(SandboxPolicy {
        preload: Vec::new(),
        cell_timeout: std::time::Duration::from_secs(3),
        ..SandboxPolicy::default()
    })
    .await
}

async fn session_with(policy: SandboxPolicy) -> PythonSession {
    match PythonSession::start(&python_environment(), &policy).await {
        Ok(session) => session,
        Err(e) => panic!("session start failed: {e}"),
    }
}
