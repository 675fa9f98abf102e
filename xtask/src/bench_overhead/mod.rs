//! `cargo xtask bench-overhead`: what the orchestration costs on top of the model.
//! The seed's training run (the library's `Trainer` over `MathTask`) runs against
//! the project's scripted server, which answers every call after a fixed latency, at
//! each concurrency asked for, plus one run of many problems; with `--ag2` the seed
//! notebook's own loop (AG2 0.13.4) runs against the same server. Prints a table.
//!
//! - [`scripted`]: the scripted model (assistant with sympy cells, optimizer that
//!   adds functions), for both runs;
//! - [`measure`]: timing wrappers around model, sessions and task;
//! - [`agentopt`]: one measured run, in a child process of its own (its peak RSS);
//! - [`ag2`]: the AG2 venv and driver;
//! - [`table`]: the table and the targets.

pub mod ag2;
pub mod agentopt;
pub mod measure;
pub mod scripted;
pub mod table;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use agentopt_testkit::ScriptedServer;
use anyhow::Context as _;

use self::agentopt::{Measurement, Shape};

/// Flags of `cargo xtask bench-overhead`.
#[derive(Debug, Clone, clap::Args)]
pub struct OverheadArgs {
    /// The scripted server's latency per call, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub latency_ms: u64,
    /// Concurrencies to measure the seed's run at, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10], value_parser = crate::flags::at_least_one)]
    pub concurrency: Vec<usize>,
    /// Training problems per epoch (bundled algebra, first ones).
    #[arg(long, default_value_t = 10, value_parser = crate::flags::at_least_one)]
    pub train_size: usize,
    /// Test problems (bundled algebra, first ones).
    #[arg(long, default_value_t = 10, value_parser = crate::flags::at_least_one)]
    pub test_size: usize,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: u32,
    /// Optimizer actions per step.
    #[arg(long, default_value_t = 3, value_parser = crate::flags::at_least_one)]
    pub actions: usize,
    /// Problems of the scale run (half training, half test, all subjects, 2
    /// epochs); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub scale_problems: usize,
    /// Concurrency of the scale run.
    #[arg(long, default_value_t = 32, value_parser = crate::flags::at_least_one)]
    pub scale_concurrency: usize,
    /// Latency of the scale run, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub scale_latency_ms: u64,
    /// Also run the seed notebook's loop on AG2 0.13.4 (a venv is set up on first
    /// use; needs PyPI once).
    #[arg(long)]
    pub ag2: bool,
    /// Where the runs' directories go (default: `runs/bench-overhead-<time>`).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Run with this xtask binary as it is, even a debug build (default: a debug
    /// build builds xtask in release and reruns the whole benchmark with it, the
    /// scripted server included).
    #[arg(long)]
    pub this_build: bool,
}

/// The hidden child command: one measured run, its [`Measurement`] as JSON on the
/// last line of stdout.
#[derive(Debug, Clone, clap::Args)]
pub struct ChildArgs {
    /// The [`Shape`] as JSON.
    #[arg(long)]
    pub shape: String,
    /// The scripted server.
    #[arg(long)]
    pub base_url: String,
    /// The run directory.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// The CRAFT-layout data directory.
    #[arg(long)]
    pub data: PathBuf,
}

/// Runs the benchmark and prints its table; `workspace` is the repository root.
///
/// # Errors
/// A failed run, the sandbox, the AG2 setup.
pub async fn run(args: &OverheadArgs, workspace: &Path) -> anyhow::Result<()> {
    if cfg!(debug_assertions) && !args.this_build {
        return rerun_in_release(workspace);
    }
    let data = workspace.join("data").join("math-craft");
    let work = args.work_dir.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        workspace.join("runs").join(format!("bench-overhead-{now}"))
    });
    let measured = std::env::current_exe().context("finding the xtask binary")?;
    let mut rows = Vec::new();
    for shape in shapes(args) {
        eprintln!("bench-overhead: {} …", shape.label);
        let row = measure_in_child(&measured, &shape, &data, &work).await?;
        eprintln!(
            "bench-overhead: {} done in {:.1} s",
            shape.label, row.wall_s
        );
        rows.push(row);
    }
    let ag2 = if args.ag2 {
        let seed = seed_shape(args, 1);
        eprintln!("bench-overhead: AG2 0.13.4, the seed notebook's loop …");
        Some(ag2::measure(&seed, &data, workspace, &work).await?)
    } else {
        None
    };
    println!("{}", table::render(&rows, ag2.as_ref()));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("Measured build: {profile}.");
    Ok(())
}

/// Builds xtask in release and runs this same command with it: a debug build's
/// orchestration is several times slower than what users run, and its scripted
/// server (which stands in for a remote model) would spend 0.4 ms of CPU a request
/// on the cores the measured run needs.
fn rerun_in_release(workspace: &Path) -> anyhow::Result<()> {
    eprintln!("bench-overhead: building xtask in release to measure it …");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "--package", "xtask"])
        .current_dir(workspace)
        .status()
        .context("running cargo build --release")?;
    anyhow::ensure!(
        status.success(),
        "cargo build --release -p xtask failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let release = target.join("release").join("xtask");
    let status = std::process::Command::new(&release)
        .args(std::env::args_os().skip(1))
        .arg("--this-build")
        .current_dir(workspace)
        .status()
        .with_context(|| format!("running {}", release.display()))?;
    anyhow::ensure!(
        status.success(),
        "the release bench-overhead failed ({status})"
    );
    Ok(())
}

/// The seed's shape at `concurrency`.
fn seed_shape(args: &OverheadArgs, concurrency: usize) -> Shape {
    Shape {
        label: format!("agentopt, concurrency {concurrency}"),
        train: args.train_size,
        test: args.test_size,
        epochs: args.epochs,
        actions: args.actions,
        concurrency,
        latency_ms: args.latency_ms,
        subject: Some("algebra".to_owned()),
        n_ctx: None,
    }
}

/// Every run the flags ask for, in order.
fn shapes(args: &OverheadArgs) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = args
        .concurrency
        .iter()
        .map(|&concurrency| seed_shape(args, concurrency))
        .collect();
    if args.scale_problems > 0 {
        let half = args.scale_problems.div_ceil(2);
        shapes.push(Shape {
            label: format!(
                "agentopt, {} problems, concurrency {}",
                args.scale_problems, args.scale_concurrency
            ),
            train: half,
            test: args.scale_problems - half,
            epochs: 2,
            actions: args.actions,
            concurrency: args.scale_concurrency,
            latency_ms: args.scale_latency_ms,
            subject: None,
            n_ctx: None,
        });
    }
    shapes
}

/// How often the memory of the measured run's workers is sampled.
const WORKER_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `shape` in a child process (so its peak RSS is the run's alone) against a
/// scripted server in this one, sampling the memory of the processes it starts.
///
/// # Errors
/// The data, the child's start, or a failed run.
pub async fn measure_in_child(
    measured: &Path,
    shape: &Shape,
    data: &Path,
    work: &Path,
) -> anyhow::Result<Measurement> {
    let problems = agentopt::load_problems(shape, data)?;
    let server = ScriptedServer::builder()
        .model(agentopt::MODEL)
        .n_ctx(shape.n_ctx.unwrap_or(1 << 20))
        .rule(scripted::rule(
            agentopt::answers(&problems),
            shape.latency(),
        ))
        .await;
    let run_dir = work.join(format!(
        "c{}-n{}",
        shape.concurrency,
        shape.train + shape.test
    ));
    let mut command = tokio::process::Command::new(measured);
    command
        .arg("bench-overhead-run")
        .arg("--shape")
        .arg(serde_json::to_string(shape)?)
        .arg("--base-url")
        .arg(server.base_url())
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // `output()` would capture stderr too; the run's own messages belong on ours.
    let child = command.spawn().context("starting the measured run")?;
    let pid = child.id().context("the measured run has no pid")?;
    let workers = std::sync::Mutex::new(crate::procmem::TreeMemory::default());
    let sampling = crate::procmem::sample_descendants(pid, WORKER_SAMPLE_EVERY, &workers);
    let (output, ()) = tokio::join!(child.wait_with_output(), sampling);
    let output = output.context("running the measured run")?;
    let what = format!("the measured run `{}`", shape.label);
    let mut measurement: Measurement = last_json_line(&what, &output)?;
    measurement.workers = *agentopt_core::lock(&workers);
    let served = u32::try_from(server.chat_requests().len()).unwrap_or(u32::MAX);
    anyhow::ensure!(
        served == measurement.model_calls,
        "the server answered {served} calls, the run counted {}",
        measurement.model_calls
    );
    measurement.model_calls = served;
    Ok(measurement)
}

/// The JSON value on the last line of a finished child's stdout; a child that
/// failed is an error naming `what`, with its output.
fn last_json_line<T: serde::de::DeserializeOwned>(
    what: &str,
    output: &std::process::Output,
) -> anyhow::Result<T> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("reading the result of {what}: {last:?}"))
}

/// The child: one measured run, its result printed as one JSON line.
///
/// # Errors
/// A bad shape, or a failed run.
pub async fn run_child(args: &ChildArgs) -> anyhow::Result<()> {
    let shape: Shape = serde_json::from_str(&args.shape).context("parsing --shape")?;
    let measurement = agentopt::measure(&shape, &args.data, &args.base_url, &args.run_dir).await?;
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(())
}
