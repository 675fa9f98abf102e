//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).

mod test;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test(args) => test::run(&args),
    }
}
