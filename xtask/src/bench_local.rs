//! `cargo xtask bench-local`: problems per hour of the embedded model at several
//! concurrencies. For each concurrency N a fresh server with N slots (continuous
//! batching, a full context per slot) answers the same MATH problems, N
//! conversations at a time, with the response cache off; the table shows wall time,
//! problems per hour, generated tokens per second and the server's peak RSS.

use std::sync::Arc;

use crate::sandboxes::MathSandboxes;
use agentopt_llm::{ClientOptions, ConfigListModel};
use agentopt_local::{LocalServer, LocalServerOptions, Progress};
use agentopt_mathchat::{DataFormat, MathTask, MathTaskOptions, Selection};
use agentopt_sandbox::PythonEnvironment;
use agentopt_train::{FunctionSet, Throughput, measure_throughput};
use anyhow::Context as _;

use crate::bench_math::cli::{
    DataSpec, LOCAL_MAX_REPLY_TOKENS, LOCAL_MAX_TURNS, LOCAL_SAMPLING_SEED, LocalModelArg,
};

/// Flags of `cargo xtask bench-local`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchLocalArgs {
    /// Concurrencies to measure, comma-separated; each gets a server with that many
    /// slots.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4], value_parser = crate::flags::at_least_one)]
    pub concurrency: Vec<usize>,
    /// Problems per concurrency (the same ones each time).
    #[arg(long, default_value_t = 8, value_parser = crate::flags::at_least_one)]
    pub problems: usize,
    /// Subject of the bundled test problems.
    #[arg(long, default_value = "algebra")]
    pub subject: String,
    /// Levels to draw from, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub level: Vec<u8>,
    /// Shuffle seed of the problem draw.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Longest assistant reply in tokens (bench-math's local default).
    #[arg(long, default_value_t = LOCAL_MAX_REPLY_TOKENS)]
    pub max_reply_tokens: u32,
    /// Most assistant replies per conversation (bench-math's local default).
    #[arg(long, default_value_t = LOCAL_MAX_TURNS)]
    pub max_turns: u32,
    /// The embedded model.
    #[arg(long, value_enum, default_value_t = LocalModelArg::Qwen1_5b)]
    pub local_model: LocalModelArg,
}

/// One measured row: the pass and the server's peak resident memory.
#[derive(Debug, Clone)]
pub struct Row {
    /// The pass over the problems.
    pub throughput: Throughput,
    /// The server's `VmHWM` in MiB, when it could be read.
    pub peak_rss_mib: Option<u64>,
}

/// Measures every concurrency in turn and prints the table.
///
/// # Errors
/// Bad data, the model or runtime setup, the server or the sandbox.
pub async fn run(args: &BenchLocalArgs, workspace: &std::path::Path) -> anyhow::Result<()> {
    let path = workspace
        .join("data/math-craft")
        .join(format!("{}.jsonl", args.subject));
    let selection = Selection {
        subjects: Vec::new(),
        levels: args.level.clone(),
        count: Some(args.problems),
        shuffle_seed: Some(args.sample_seed),
    };
    let spec = DataSpec {
        path,
        craft_split: None,
        format: DataFormat::Craft,
        selection,
        skip_bad_records: false,
    };
    let problems = crate::data::load_selected(&spec, "test")?;
    let environment = PythonEnvironment::ensure().context("preparing the Python sandbox")?;
    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        let server = LocalServer::start(LocalServerOptions {
            model: args.local_model.model(),
            parallel: concurrency,
            progress: Progress::Quiet,
            ..LocalServerOptions::default()
        })
        .await
        .context("starting the embedded local model")?;
        let options = ClientOptions {
            max_concurrency: concurrency,
            ..ClientOptions::default()
        };
        let model = Arc::new(ConfigListModel::from_configs(
            vec![server.endpoint()],
            &options,
        )?);
        // The sandboxes bench-math gives a run at this concurrency.
        let sandboxes = MathSandboxes::start(&environment, concurrency)?;
        let task = MathTask::new(model, sandboxes.conversations, sandboxes.checker).with_options(
            MathTaskOptions {
                max_reply_tokens: Some(args.max_reply_tokens),
                sampling_seed: Some(LOCAL_SAMPLING_SEED),
                max_turns: Some(args.max_turns),
                ..MathTaskOptions::default()
            },
        );
        eprintln!("concurrency {concurrency}: {} problems …", problems.len());
        let throughput =
            measure_throughput(&task, &problems, &FunctionSet::default(), concurrency).await;
        let peak_rss_mib = server.pid().and_then(peak_rss_mib);
        eprintln!("  done in {:.0} s", throughput.wall.as_secs_f64());
        rows.push(Row {
            throughput,
            peak_rss_mib,
        });
    }
    println!("{}", table(&rows));
    Ok(())
}

/// `VmHWM` of process `pid` in MiB.
fn peak_rss_mib(pid: u32) -> Option<u64> {
    crate::procmem::kib(&pid.to_string(), "status", "VmHWM").map(|kib| kib / 1024)
}

/// The Markdown table of the rows (tokens: prompt and completion, as metered).
pub fn table(rows: &[Row]) -> String {
    let mut text = "| concurrency (slots) | problems | solved | infra errors | wall | problems/hour | tokens/s | server peak RSS |\n\
                    |---:|---:|---:|---:|---:|---:|---:|---:|\n"
        .to_owned();
    for row in rows {
        let run = &row.throughput;
        let rss = row
            .peak_rss_mib
            .map_or_else(|| "?".to_owned(), |mib| format!("{mib} MiB"));
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} s | {:.1} | {:.1} | {rss} |\n",
            run.concurrency,
            run.problems,
            run.solved,
            run.infrastructure,
            run.wall.as_secs_f64(),
            run.problems_per_hour(),
            run.tokens_per_second(),
        ));
    }
    text
}
