//! `cargo xtask bench-math`: the end-to-end MATH benchmark of AgentOptimizer, a
//! front end over `agentopt-train` (the training run) and `agentopt-mathchat` (the
//! MATH task):
//! - [`cli`]: flags, presets, endpoint resolution, the saved [`cli::RunConfig`];
//! - [`rundir`]: `config.json`, written once every check passed;
//! - [`run`]: models, sandbox and the trainer wired as the flags say;
//! - [`progress`]: per-phase progress bars or log lines, and the tracing setup.
//!
//! The trainer writes the report's renderings (`report.md`, `learning_curve.svg`,
//! `report.html`).

pub mod cli;
mod error;
pub mod progress;
pub mod run;
pub mod rundir;

pub use error::BenchError;
