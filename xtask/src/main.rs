//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).

mod test;

use clap::{CommandFactory, FromArgMatches, Subcommand};
use xtask::{bench_local, bench_math, bench_overhead, bench_report, bench_scale, compare_runs};

#[derive(clap::Parser)]
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
    /// What the orchestration costs on top of the model: the seed's training run
    /// against a scripted server at a fixed latency (optionally AG2's loop too).
    BenchOverhead(bench_overhead::OverheadArgs),
    /// How agentopt scales: problems/hour over 1-8 model replicas (`spread`), a
    /// failing replica, orchestrator memory up to 10,000 problems, and optimizer
    /// prompts all at once vs partitioned; prints tables.
    BenchScale(bench_scale::ScaleArgs),
    /// One measured run of `bench-overhead`, in a process of its own.
    #[command(hide = true)]
    BenchOverheadRun(bench_overhead::ChildArgs),
    /// The seed notebook's loop with AG2 0.13.4's own AgentOptimizer and with
    /// agentopt's (Python package), same AG2 agents, same scripted server: prints
    /// wall time, model calls and problems solved (a benchmark, not a test).
    BenchPython(BenchPythonArgs),
    /// Rebuilds `report.html` of a run directory from its files (an older run's too)
    /// and prints its path.
    Report {
        /// The run directory (holding `report.json` and the journal).
        run_dir: std::path::PathBuf,
        /// Also save a PNG of the page's top (summary, curve, first problems) here,
        /// taken by headless Chromium.
        #[arg(long)]
        screenshot: Option<std::path::PathBuf>,
    },
    /// Size of `report.html` and its opening time in headless Chromium, for
    /// synthetic runs of several sizes, printed as a table.
    BenchReport(bench_report::BenchReportArgs),
    /// The arms of an experiment side by side (accuracy under both checks, use rate
    /// of learned functions, worked examples, tokens, wall time) and each arm's
    /// test after training paired with the first arm's (exact McNemar).
    CompareRuns(compare_runs::CompareRunsArgs),
    /// Builds the `agentopt` Python package for publishing: the release abi3
    /// manylinux wheel and the sdist, into `dist/`.
    Wheel,
}

/// `cargo xtask wheel`: maturin (installed into `target/python-venv`) builds
/// `dist/agentopt-VERSION-cp39-abi3-manylinux_*.whl` and the sdist.
fn wheel() -> anyhow::Result<()> {
    let root = test::workspace_root();
    let maturin = test::python_venv_with(&root, &["maturin==1.16.0"])?.join("bin/maturin");
    let dist = root.join("dist");
    test::step(
        "build the agentopt wheel and sdist",
        &root,
        &maturin.to_string_lossy(),
        &[
            "build",
            "--release",
            "--sdist",
            "-m",
            "crates/python/Cargo.toml",
            "--out",
            &dist.to_string_lossy(),
        ],
    )
}

#[derive(clap::Args)]
struct BenchPythonArgs {
    /// Problems in the train and in the test set (the seed notebook: 10).
    #[arg(long, default_value_t = 10)]
    problems: u32,
    /// Training epochs (the seed notebook: 10).
    #[arg(long, default_value_t = 3)]
    epochs: u32,
    /// Actions the optimizer may take per step (the seed notebook: 3).
    #[arg(long, default_value_t = 3)]
    max_actions_per_step: u32,
    /// Cargo profile of the agentopt wheel (`release` measures what users get).
    #[arg(long, default_value = "release")]
    profile: String,
}

fn bench_python(args: &BenchPythonArgs) -> anyhow::Result<()> {
    let root = test::workspace_root();
    let tooling = test::prepare_python(&root, &args.profile)?;
    test::step_with_env(
        "seed loop: AG2's AgentOptimizer vs agentopt's",
        &root,
        &tooling.python.to_string_lossy(),
        &[
            "crates/python/tests/bench_seed_loop.py",
            "--problems",
            &args.problems.to_string(),
            "--epochs",
            &args.epochs.to_string(),
            "--max-actions-per-step",
            &args.max_actions_per_step.to_string(),
        ],
        &[(
            "AGENTOPT_SCRIPTED_SERVER",
            tooling.scripted_server.as_os_str(),
        )],
    )
}

/// `cargo xtask report`: rebuilds the page, and screenshots it when asked.
fn report(run_dir: &std::path::Path, screenshot: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use xtask::browser;
    let page = agentopt_train::write_report_html(run_dir)?;
    println!("{}", page.display());
    if let Some(out) = screenshot {
        let chromium = browser::chromium()
            .context("Chromium is not installed (Debian: apt-get install -y chromium)")?;
        browser::screenshot(
            &chromium,
            &browser::file_url(&page, "")?,
            out,
            (1400, 1500),
            0.75,
        )?;
        println!("{}", out.display());
    }
    Ok(())
}

/// Runs the command; an error is printed as its message and causes, never with a
/// backtrace (`RUST_BACKTRACE=1` in the environment is for panics, not for a bad
/// flag or data file).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_owned();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Test(args) => test::run(&args),
        Command::BenchPython(args) => bench_python(&args),
        Command::Report {
            run_dir,
            screenshot,
        } => report(&run_dir, screenshot.as_deref()),
        Command::BenchReport(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_report::run(&args))
        }
        Command::CompareRuns(args) => compare_runs::run(&args),
        Command::Wheel => wheel(),
        Command::BenchMath(mut args) => {
            if let Some(("bench-math", given)) = matches.subcommand() {
                args.run_shaping_flags = bench_math::cli::run_shaping_flags(given);
            }
            tokio::runtime::Runtime::new()?.block_on(bench_math::run::run(&args, &workspace))
        }
        Command::BenchLocal(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_local::run(&args, &workspace))
        }
        Command::BenchOverhead(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_overhead::run(&args, &workspace))
        }
        Command::BenchScale(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_scale::run(&args, &workspace))
        }
        Command::BenchOverheadRun(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_overhead::run_child(&args))
        }
    }
}
