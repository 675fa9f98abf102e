//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).

mod test;

use clap::{Parser, Subcommand};
use xtask::{bench_math, bench_overhead};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "agentopt project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The project's test command: installs what the tests need, then runs
    /// rustfmt, clippy and every test (real-model tests included).
    Test(test::TestArgs),
    /// The end-to-end MATH benchmark: test, train with AgentOptimizer, test again,
    /// report (offline on the embedded local model unless an endpoint is configured).
    BenchMath(Box<bench_math::cli::BenchArgs>),
    /// What the orchestration costs on top of the model: the seed's training run
    /// against a scripted server at a fixed latency (optionally AG2's loop too).
    BenchOverhead(bench_overhead::OverheadArgs),
    /// One measured run of `bench-overhead`, in a process of its own.
    #[command(hide = true)]
    BenchOverheadRun(bench_overhead::ChildArgs),
}

/// The repository root.
fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_owned()
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test(args) => test::run(&args),
        Command::BenchMath(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_math::run::run(&args, &workspace()))
        }
        Command::BenchOverhead(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_overhead::run(&args, &workspace()))
        }
        Command::BenchOverheadRun(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_overhead::run_child(&args))
        }
    }
}
