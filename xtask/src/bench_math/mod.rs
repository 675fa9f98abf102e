//! `cargo xtask bench-math`: the end-to-end MATH benchmark of AgentOptimizer, a
//! front end over `agentopt-train` (the training run) and `agentopt-mathchat` (the
//! MATH task):
//! - [`cli`]: flags, presets, endpoint resolution, the saved [`cli::RunConfig`];
//! - [`rundir`]: `config.json`, written once every check passed;
//! - [`run`]: models, sandbox and the trainer wired as the flags say;
//! - [`progress`]: per-phase progress bars or log lines, and the tracing setup;
//! - [`plot`]: the learning-curve SVG.

pub mod cli;
mod error;
pub mod plot;
pub mod progress;
pub mod run;
pub mod rundir;

pub use error::BenchError;
