//! `cargo xtask bench-math`: the end-to-end MATH benchmark of AgentOptimizer.
//!
//! The pure parts live in their own modules so tests reach them directly:
//! - [`cli`]: flags, presets, endpoint resolution, the saved [`cli::RunConfig`];
//! - [`stats`]: Wilson intervals and the exact McNemar test;
//! - [`report`]: `report.json` and its Markdown and terminal renderings;
//! - [`plot`]: the learning-curve SVG;
//! - [`rundir`]: the run directory, fsync'd JSON-lines logs, atomic JSON files;
//! - [`progress`]: per-phase progress bars or log lines, and the tracing setup;
//! - [`run`]: the run itself (agents, optimizer, local model, sandbox), resumable.

pub mod cli;
mod error;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run;
pub mod rundir;
pub mod stats;

pub use error::BenchError;
