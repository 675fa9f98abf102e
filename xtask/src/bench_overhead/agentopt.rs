//! One measured agentopt run: the library's [`Trainer`] over [`MathTask`] against a
//! scripted server, instrumented by [`super::measure`]; run in a process of its own
//! so its peak RSS is the orchestrator's alone (the Python workers are other
//! processes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentopt_llm::{ChatModel, ClientOptions, EndpointConfig, OpenAiClient};
use agentopt_mathchat::{DataFormat, MathTask, Problem, Selection};
use agentopt_sandbox::{ExecutorFactory, PythonEnvironment};
use agentopt_train::{Problems, Trainer, TrainerOptions};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::measure::{PhaseCounter, Recorder, TimedModel, TimedSessions, TimedTask};
use crate::sandboxes::MathSandboxes;

/// The model name the scripted server serves.
pub const MODEL: &str = "scripted-model";

/// What one run solves, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shape {
    /// What the table calls it.
    pub label: String,
    /// Training problems per epoch.
    pub train: usize,
    /// Test problems (before and after training).
    pub test: usize,
    /// Training epochs.
    pub epochs: u32,
    /// Optimizer actions per step.
    pub actions: usize,
    /// Attempts at once.
    pub concurrency: usize,
    /// The server's latency per call, in milliseconds.
    pub latency_ms: u64,
    /// Subject of the bundled data (`None`: all subjects).
    pub subject: Option<String>,
    /// The server's context window (`None`: 1M tokens, so no prompt is ever cut).
    #[serde(default)]
    pub n_ctx: Option<u32>,
}

impl Shape {
    /// The server's latency per call.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// The shape's problems from the CRAFT-layout directory `data` (test problems in
/// `SUBJECT.jsonl`, training problems in `train/SUBJECT.jsonl`): the first ones in
/// file order, as the seed notebook takes them.
///
/// # Errors
/// Unreadable data, or fewer problems than the shape asks for.
pub fn load_problems(shape: &Shape, data: &Path) -> anyhow::Result<Problems<Problem>> {
    let select = |dir: &Path, count, split| -> anyhow::Result<Vec<Problem>> {
        let mut all = Vec::new();
        for file in subject_files(dir, shape.subject.as_deref())? {
            all.extend(agentopt_mathchat::load(&file, DataFormat::Auto)?);
        }
        let selection = Selection {
            count: Some(count),
            ..Selection::default()
        };
        Ok(selection.apply(all, split)?)
    };
    Ok(Problems {
        train: select(&data.join("train"), shape.train, "train")?,
        validation: Vec::new(),
        test: select(data, shape.test, "test")?,
    })
}

/// `dir/SUBJECT.jsonl`, or every `*.jsonl` directly in `dir` (sorted) without a
/// subject.
fn subject_files(dir: &Path, subject: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(subject) = subject {
        return Ok(vec![dir.join(format!("{subject}.jsonl"))]);
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path
            .extension()
            .is_some_and(|extension| extension == "jsonl")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reference answers by problem text, for the scripted assistant.
pub fn answers(problems: &Problems<Problem>) -> HashMap<String, String> {
    problems
        .train
        .iter()
        .chain(&problems.test)
        .map(|problem| (problem.question.trim().to_owned(), problem.answer.clone()))
        .collect()
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// The run's shape.
    pub shape: Shape,
    /// Conversations run.
    pub conversations: usize,
    /// Wall time of the training run.
    pub wall_s: f64,
    /// Model calls (conversations and optimizer).
    pub model_calls: u32,
    /// The longest chain of dependent calls: per phase the most calls of one
    /// conversation, plus every optimizer call.
    pub critical_path_calls: u32,
    /// Median over conversations of (wall − model wait) / model calls.
    pub overhead_per_turn_ms: f64,
    /// The same without the time spent getting the sandbox session and in its cells.
    pub orchestration_per_turn_ms: f64,
    /// Session asked for → first cell answered, median and 99th percentile.
    pub first_cell_p50_ms: f64,
    /// See `first_cell_p50_ms`.
    pub first_cell_p99_ms: f64,
    /// The orchestrating process's peak RSS (`VmHWM`).
    pub peak_rss_mib: f64,
    /// The processes it started (the Python workers), sampled by the parent
    /// while it ran.
    #[serde(default)]
    pub workers: crate::procmem::TreeMemory,
}

/// Runs the shape's training run against the server at `base_url` and measures it.
/// Call it in a process of its own: the peak RSS is this process's.
///
/// # Errors
/// Bad data, the sandbox, or a failed training run.
pub async fn measure(
    shape: &Shape,
    data: &Path,
    base_url: &str,
    run_dir: &Path,
) -> anyhow::Result<Measurement> {
    let problems = load_problems(shape, data)?;
    let recorder = Arc::new(Recorder::default());
    let endpoint = EndpointConfig::compatible(base_url, MODEL);
    let options = ClientOptions {
        max_concurrency: shape.concurrency.max(1),
        ..ClientOptions::default()
    };
    let client: Arc<dyn ChatModel> = Arc::new(OpenAiClient::new(endpoint, options)?);
    let model: Arc<dyn ChatModel> = Arc::new(TimedModel::new(client, Arc::clone(&recorder)));
    // The sandbox's start is part of the run (as AG2's imports are part of its loop).
    let started = Instant::now();
    let trainer = trainer(shape, run_dir, model, &recorder)?;
    let report = trainer.run(&problems).await?;
    let wall = started.elapsed();
    if let Some(reason) = report.incomplete {
        anyhow::bail!("the measured run is incomplete: {reason}");
    }
    Ok(summarise(shape, &recorder, wall, peak_rss_mib()?))
}

fn trainer(
    shape: &Shape,
    run_dir: &Path,
    model: Arc<dyn ChatModel>,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Trainer<TimedTask<MathTask>>> {
    let environment = PythonEnvironment::ensure().context("preparing the Python sandbox")?;
    let sandboxes = MathSandboxes::start(&environment, shape.concurrency)?;
    let conversations: Arc<dyn ExecutorFactory> = Arc::new(TimedSessions::new(
        sandboxes.conversations,
        Arc::clone(recorder),
    ));
    let task = MathTask::new(Arc::clone(&model), conversations, sandboxes.checker);
    let options = TrainerOptions {
        run_dir: run_dir.to_owned(),
        epochs: shape.epochs,
        max_actions_per_step: shape.actions,
        concurrency: shape.concurrency,
        proposal_sandbox: Some(sandboxes.proposals),
        preflight: None,
        ..TrainerOptions::default()
    };
    Ok(
        Trainer::new(TimedTask::new(task, Arc::clone(recorder)), model, options)
            .with_observer(Arc::new(PhaseCounter(Arc::clone(recorder)))),
    )
}

fn summarise(shape: &Shape, recorder: &Recorder, wall: Duration, peak_rss_mib: f64) -> Measurement {
    let attempts = recorder.attempts();
    let optimizer_calls = recorder.optimizer_calls();
    let mut longest: HashMap<usize, u32> = HashMap::new();
    for attempt in &attempts {
        let phase = longest.entry(attempt.phase).or_default();
        *phase = (*phase).max(attempt.model_calls);
    }
    let per_turn = |exclude_python: bool| -> Vec<f64> {
        attempts
            .iter()
            .filter(|attempt| attempt.model_calls > 0)
            .map(|attempt| {
                let mut rest = attempt.wall.saturating_sub(attempt.model_wait);
                if exclude_python {
                    rest = rest.saturating_sub(attempt.python);
                }
                millis(rest) / f64::from(attempt.model_calls)
            })
            .collect()
    };
    let first_cells: Vec<f64> = recorder.first_cells().into_iter().map(millis).collect();
    Measurement {
        shape: shape.clone(),
        conversations: attempts.len(),
        wall_s: wall.as_secs_f64(),
        model_calls: attempts.iter().map(|a| a.model_calls).sum::<u32>() + optimizer_calls,
        critical_path_calls: longest.values().sum::<u32>() + optimizer_calls,
        overhead_per_turn_ms: percentile(per_turn(false), 0.5),
        orchestration_per_turn_ms: percentile(per_turn(true), 0.5),
        first_cell_p50_ms: percentile(first_cells.clone(), 0.5),
        first_cell_p99_ms: percentile(first_cells, 0.99),
        peak_rss_mib,
        workers: crate::procmem::TreeMemory::default(),
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The `q` quantile (nearest rank) of `values`; NaN when there are none.
pub fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// This process's peak resident set (`VmHWM` in `/proc/self/status`), in MiB.
fn peak_rss_mib() -> anyhow::Result<f64> {
    let kib =
        crate::procmem::kib("self", "status", "VmHWM").context("no VmHWM in /proc/self/status")?;
    Ok(kib as f64 / 1024.0)
}
