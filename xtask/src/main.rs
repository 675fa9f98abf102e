//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).

mod test;

use clap::{Parser, Subcommand};
use xtask::{bench_local, bench_math};

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
    /// Problems per hour of the embedded local model at several concurrencies
    /// (parallel server slots), printed as a table.
    BenchLocal(bench_local::BenchLocalArgs),
}

fn main() -> anyhow::Result<()> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_owned();
    match Cli::parse().command {
        Command::Test(args) => test::run(&args),
        Command::BenchMath(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_math::run::run(&args, &workspace))
        }
        Command::BenchLocal(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_local::run(&args, &workspace))
        }
    }
}
