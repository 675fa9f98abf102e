//! `cargo xtask bench-scale`: how agentopt scales past one model server, one
//! prompt and a thousand problems, against scripted servers at a fixed latency.
//! Prints five tables:
//!
//! - [`replicas`]: problems per hour over 1, 2, 4, 8 replicas at the same
//!   per-replica cap (`spread` routing), and with one replica failing half its
//!   calls;
//! - memory: the orchestrator's peak RSS for MATH training runs at several
//!   concurrencies, and one run of 10,000 problems, with the memory of their
//!   Python workers ([`crate::procmem`]);
//! - [`partition`]: optimizer calls and prompt tokens for one step over 10, 100,
//!   1,000 records, all at once vs partitioned;
//! - [`quality`]: what reading every record is worth (held-out accuracy of a
//!   scripted optimizer's set), all at once vs partitioned.

pub mod partition;
pub mod quality;
pub mod replicas;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bench_overhead::agentopt::{Measurement, Shape};
use crate::bench_overhead::measure_in_child;

/// Flags of `cargo xtask bench-scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Latency of every replica's answer, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Calls in flight at once on one replica (the same for every replica).
    #[arg(long, default_value_t = 4)]
    pub replica_cap: usize,
    /// Replica counts to measure, comma-separated; `0` skips these rows.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8])]
    pub replicas: Vec<usize>,
    /// Model turns per problem in the throughput rows.
    #[arg(long, default_value_t = 4)]
    pub turns: usize,
    /// About how long each throughput row runs, in seconds.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Concurrencies of the memory rows (MATH training runs), comma-separated;
    /// `0` skips them.
    #[arg(long, value_delimiter = ',', default_values_t = [32, 128, 256])]
    pub memory_concurrency: Vec<usize>,
    /// Problems of each memory row (half training, half test, one epoch).
    #[arg(long, default_value_t = 1000)]
    pub memory_problems: usize,
    /// Problems of the large run (at most the bundled 10,701); 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    pub large_problems: usize,
    /// Training records of the partition rows, comma-separated; `0` skips them.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    pub records: Vec<usize>,
    /// Training records of the quality rows (all at once vs partitioned),
    /// comma-separated; `0` skips them.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    pub quality_records: Vec<usize>,
    /// Where the runs' directories go (default: `runs/bench-scale-<time>`).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// The bundled test problems: the large run trains on the rest of its problems.
const BUNDLED_TEST_PROBLEMS: usize = 3200;
/// The context window the memory rows' optimizer sees (the local model's).
const MEMORY_N_CTX: u32 = 8192;
/// The scripted MATH model's latency in the memory rows, in milliseconds.
const MEMORY_LATENCY_MS: u64 = 10;

/// Runs the benchmark and prints its tables; `workspace` is the repository root.
///
/// # Errors
/// A failed run, the sandbox, the data.
pub async fn run(args: &ScaleArgs, workspace: &Path) -> anyhow::Result<()> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("bench-scale ({profile} build)\n");
    let rows = replicas::measure(args).await?;
    if !rows.is_empty() {
        println!("{}", replicas::render(args, &rows));
    }
    let partition_rows = partition::measure(&args.records).await?;
    if !partition_rows.is_empty() {
        println!("{}", partition::render(&partition_rows));
    }
    let quality_rows = quality::measure(&args.quality_records).await?;
    if !quality_rows.is_empty() {
        println!("{}", quality::render(&quality_rows));
    }
    let memory = memory_rows(args, workspace).await?;
    if !memory.is_empty() {
        println!("{}", render_memory(&memory));
    }
    Ok(())
}

/// The MATH training runs, each in a child process of its own (its peak RSS).
async fn memory_rows(args: &ScaleArgs, workspace: &Path) -> anyhow::Result<Vec<Measurement>> {
    let data = workspace.join("data").join("math-craft");
    let work = args.work_dir.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        workspace.join("runs").join(format!("bench-scale-{now}"))
    });
    let measured = std::env::current_exe()?;
    let mut shapes: Vec<Shape> = args
        .memory_concurrency
        .iter()
        .filter(|&&concurrency| concurrency > 0)
        .map(|&concurrency| memory_shape(args.memory_problems, concurrency))
        .collect();
    if args.large_problems > 0 {
        shapes.push(memory_shape(args.large_problems, 32));
    }
    let mut rows = Vec::new();
    for shape in shapes {
        eprintln!("bench-scale: {} …", shape.label);
        let row = measure_in_child(&measured, &shape, &data, &work).await?;
        eprintln!(
            "bench-scale: {} done in {:.0} s, peak RSS {:.1} MiB",
            shape.label, row.wall_s, row.peak_rss_mib
        );
        rows.push(row);
    }
    Ok(rows)
}

/// A one-epoch MATH run of `problems` (test first, up to the bundled test set,
/// the rest training) at `concurrency`, with an 8k optimizer window.
fn memory_shape(problems: usize, concurrency: usize) -> Shape {
    let test = (problems / 2).min(BUNDLED_TEST_PROBLEMS);
    Shape {
        label: format!("{problems} problems, concurrency {concurrency}"),
        train: problems - test,
        test,
        epochs: 1,
        actions: 3,
        concurrency,
        latency_ms: MEMORY_LATENCY_MS,
        subject: None,
        n_ctx: Some(MEMORY_N_CTX),
    }
}

fn render_memory(rows: &[Measurement]) -> String {
    let mut table = format!(
        "Memory: MATH training runs (one epoch: test, train, step, test), scripted model \
         at {MEMORY_LATENCY_MS} ms, sandboxes on this machine; the Python workers are the \
         run's child processes, summed at the sample (1 s) where their PSS peaked\n\n\
         | run | conversations | model calls | wall | problems/hour | orchestrator peak RSS | worker processes | workers' RSS (sum) | workers' PSS (sum) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let problems = row.shape.train + row.shape.test;
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} s | {:.0} | {:.1} MiB | {} | {:.0} MiB | {:.0} MiB |\n",
            row.shape.label,
            row.conversations,
            row.model_calls,
            row.wall_s,
            problems as f64 / row.wall_s * 3600.0,
            row.peak_rss_mib,
            row.workers.processes,
            row.workers.rss_mib,
            row.workers.pss_mib,
        ));
    }
    table.push_str("\nTarget: a 10,000-problem run under 150 MiB.\n");
    table
}
