//! The benchmark run: test before training → epochs of (training conversations,
//! optimizer step, new functions for the agents) → test after training → report.
//!
//! Everything the run learns is on disk before it moves on (see [`super::rundir`]),
//! so `--resume` continues after a kill: finished conversations are read back
//! instead of re-run, and the optimizer restarts from its copy after the last
//! finished step and is given the epoch's conversations again, in problem order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agentopt_agents::{
    AssistantAgent, ExecutorFactory, MATH_AGENT_NAME, MathOutcome, MathUserProxyAgent, Message,
    SandboxSessions, SandboxSymbolicChecker, StopReason, Transcript, install,
};
use agentopt_llm::local::{LocalServer, LocalServerOptions};
use agentopt_llm::{
    Budget, ChatModel, ChatRequest, ClientOptions, EndpointConfig, OpenAiClient, PriceTable,
    ResponseCache, UsageMeter, UsageReport,
};
use agentopt_optimizer::{
    AgentOptimizer, FunctionSet, LearnedFunction, OptimizerOptions, Provenance, ValidationOptions,
};
use agentopt_sandbox::{PythonEnvironment, PythonSession, SandboxPolicy};
use anyhow::{Context as _, bail};
use futures::StreamExt as _;

use super::cli::{BenchArgs, Endpoints, RunConfig, resolve_endpoints, run_config};
use super::data::{self, Problem};
use super::plot::write_learning_curve;
use super::progress::{Progress, init_tracing};
use super::report::{
    Accuracy, CallCounts, EpochResult, FunctionUsage, PhaseTime, ProblemOutcome, REPORT_VERSION,
    Report, RoleUsage, Setup, TestResult, pair_outcomes,
};
use super::rundir::{
    ConversationRecord, JsonLines, Phase, PhaseRecord, RunDir, StepRecord, read_json_lines,
    write_atomic, write_json_atomic,
};

/// The assistant's name (and its caller label in the usage report).
pub const ASSISTANT_NAME: &str = "assistant";

/// The assistant's system message in the seed notebook.
pub const ASSISTANT_SYSTEM_MESSAGE: &str = "You are a helpful assistant.";

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The report written there.
    pub report: Report,
}

/// Runs (or resumes) a benchmark as the flags say; `workspace` is the repository
/// root (bundled data and default directories).
///
/// # Errors
/// Bad flags or data, an unreachable model, sandbox failures, run-directory I/O.
pub async fn run(args: &BenchArgs, workspace: &Path) -> anyhow::Result<RunOutcome> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let endpoints = resolve_endpoints(args, |name| std::env::var(name).ok(), &cwd)?;
    let (run, config) = if args.resume {
        let root = args
            .run_dir
            .as_deref()
            .context("--resume needs --run-dir")?;
        let (run, config): (RunDir, RunConfig) = RunDir::open(root)?;
        let models = endpoints.model_names();
        if models != (config.model.clone(), config.optimizer_model.clone()) {
            bail!(
                "{} was run with model {:?} and optimizer model {:?}, but the endpoint now \
                 configured serves {:?} and {:?}; pass the same endpoint settings to resume",
                root.display(),
                config.model,
                config.optimizer_model,
                models.0,
                models.1
            );
        }
        let shaping_flags = args.data.is_some()
            || args.train_data.is_some()
            || args.test_data.is_some()
            || !args.subject.is_empty()
            || !args.level.is_empty()
            || args.train_size.is_some()
            || args.test_size.is_some()
            || args.sample_seed.is_some()
            || args.preset.is_some()
            || args.epochs.is_some()
            || args.max_actions_per_step.is_some()
            || args.patience.is_some()
            || args.validation_size != 0;
        if shaping_flags {
            eprintln!(
                "warning: data and training flags are ignored on --resume; {} decides them",
                run.config_path().display()
            );
        }
        let mut config = config;
        // Spending limits and parallelism may change on resume; results do not
        // depend on them.
        config.budget_usd = args.budget_usd.or(config.budget_usd);
        config.budget_tokens = args.budget_tokens.or(config.budget_tokens);
        if !args.prices.is_empty() {
            config.prices.clone_from(&args.prices);
        }
        config.concurrency = args.concurrency.unwrap_or(config.concurrency).max(1);
        (run, config)
    } else {
        let config = run_config(args, &endpoints, workspace);
        let root = args.run_dir.clone().unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            workspace.join("runs").join(format!("bench-math-{now}"))
        });
        (RunDir::create(&root, &config)?, config)
    };
    let progress = Progress::new(args.quiet);
    init_tracing(&run.log_path(), &progress)?;
    tracing::info!(run_dir = %run.root().display(), resume = args.resume, "bench-math starting");
    let bench = async {
        Bench::start(run.clone(), config, endpoints, progress)
            .await?
            .execute()
            .await
    };
    // Everything finished is already on disk; dropping the run stops the local
    // model server and the sandboxes.
    let report = tokio::select! {
        report = bench => report?,
        _ = tokio::signal::ctrl_c() => bail!(
            "interrupted; nothing recorded is lost. Continue with: cargo xtask bench-math \
             --resume --run-dir {}",
            run.root().display()
        ),
    };
    println!("{}", report.terminal_summary());
    println!("Run directory: {}", run.root().display());
    Ok(RunOutcome {
        run_dir: run.root().to_owned(),
        report,
    })
}

/// Problems of a run, selected once.
struct ProblemSets {
    train: Vec<Problem>,
    validation: Vec<Problem>,
    test: Vec<Problem>,
}

impl ProblemSets {
    fn load(config: &RunConfig) -> anyhow::Result<Self> {
        let mut train = config.train.selection.apply(
            data::load(&config.train.path, config.train.format)?,
            "train",
        )?;
        let validation = train.split_off(train.len() - config.validation_size.min(train.len()));
        let test = config
            .test
            .selection
            .apply(data::load(&config.test.path, config.test.format)?, "test")?;
        Ok(Self {
            train,
            validation,
            test,
        })
    }
}

/// A running benchmark: models, sandbox, optimizer and the records so far.
struct Bench {
    run: RunDir,
    config: RunConfig,
    problems: ProblemSets,
    solver: Solver,
    optimizer_model: Arc<dyn ChatModel>,
    meter: UsageMeter,
    progress: Progress,
    transcripts: JsonLines,
    steps: JsonLines,
    phases: JsonLines,
    recorded: HashMap<(Phase, usize), ConversationRecord>,
    /// Phases with a line in `phases.jsonl` already.
    finished_phases: HashSet<String>,
    environment: PythonEnvironment,
    policy: SandboxPolicy,
    /// Keeps the embedded model's server alive for the run.
    _local_server: Option<LocalServer>,
}

impl Bench {
    async fn start(
        run: RunDir,
        config: RunConfig,
        endpoints: Endpoints,
        progress: Progress,
    ) -> anyhow::Result<Self> {
        let problems = ProblemSets::load(&config)?;
        tracing::info!(
            train = problems.train.len(),
            validation = problems.validation.len(),
            test = problems.test.len(),
            "problems selected"
        );
        let (agent_endpoint, optimizer_endpoint, local_server) = match endpoints {
            Endpoints::Remote(remote) => (remote.agent, remote.optimizer, None),
            Endpoints::Local(model) => {
                let server = LocalServer::start(LocalServerOptions {
                    model: model.model(),
                    progress: if progress.shows_bars() {
                        agentopt_llm::local::Progress::Show
                    } else {
                        agentopt_llm::local::Progress::Quiet
                    },
                    ..LocalServerOptions::default()
                })
                .await
                .context("starting the embedded local model")?;
                let endpoint = server.endpoint();
                (endpoint.clone(), endpoint, Some(server))
            }
        };
        let prices = config
            .prices
            .iter()
            .fold(PriceTable::new(), |table, price| {
                table.with(
                    price.model.clone(),
                    price.prompt_per_million,
                    price.completion_per_million,
                )
            });
        let meter = UsageMeter::new(prices).with_budget(Budget {
            max_cost_usd: config.budget_usd,
            max_tokens: config.budget_tokens,
        });
        let cache = if config.cache {
            Some(ResponseCache::open(&config.cache_dir, 0)?)
        } else {
            None
        };
        let client = |endpoint: EndpointConfig| -> anyhow::Result<Arc<dyn ChatModel>> {
            let options = ClientOptions {
                max_concurrency: config.concurrency,
                cache: cache.clone(),
                meter: Some(meter.clone()),
                ..ClientOptions::default()
            };
            Ok(Arc::new(OpenAiClient::new(endpoint, options)?))
        };
        let agent_model = client(agent_endpoint)?;
        let optimizer_model = client(optimizer_endpoint)?;

        let environment = PythonEnvironment::ensure().context("preparing the Python sandbox")?;
        let policy = SandboxPolicy::default();
        let sessions: Arc<dyn ExecutorFactory> = Arc::new(
            SandboxSessions::new(environment.clone(), policy.clone())
                .with_max_live(config.concurrency),
        );
        // The checker keeps one session of its own for the whole run; taken from the
        // conversations' capped factory it would hold one of their slots forever, and
        // a conversation waiting on its answer check could wait for itself.
        let checker_sessions: Arc<dyn ExecutorFactory> =
            Arc::new(SandboxSessions::new(environment.clone(), policy.clone()));
        let solver = Solver {
            max_reply_tokens: config.max_reply_tokens,
            sampling_seed: config.sampling_seed,
            max_turns: config.max_turns,
            model: agent_model,
            checker: Arc::new(SandboxSymbolicChecker::new(checker_sessions)),
            sessions,
        };

        let mut recorded = HashMap::new();
        for record in read_json_lines::<ConversationRecord>(&run.transcripts_path())? {
            recorded.insert((record.phase, record.index), record);
        }
        let finished_phases = read_json_lines::<PhaseRecord>(&run.phases_path())?
            .into_iter()
            .map(|record| record.phase)
            .collect();
        Ok(Self {
            finished_phases,
            transcripts: JsonLines::open(&run.transcripts_path())?,
            steps: JsonLines::open(&run.steps_path())?,
            phases: JsonLines::open(&run.phases_path())?,
            run,
            config,
            problems,
            solver,
            optimizer_model,
            meter,
            progress,
            recorded,
            environment,
            policy,
            _local_server: local_server,
        })
    }

    async fn execute(mut self) -> anyhow::Result<Report> {
        let done_steps: Vec<StepRecord> = read_json_lines(&self.run.steps_path())?;
        let mut optimizer = self
            .optimizer(done_steps.last().map(|step| step.epoch))
            .await?;

        let test = self.problems.test.clone();
        let before = self
            .phase(Phase::TestBefore, "test before training", &test, &[])
            .await?;

        let mut stopped_early = None;
        let mut epoch = done_steps.last().map_or(1, |step| step.epoch + 1);
        if let Some(last) = done_steps.last().filter(|step| step.should_stop) {
            stopped_early = Some(stop_message(last.epoch, self.config.patience));
            epoch = self.config.epochs + 1;
        }
        while epoch <= self.config.epochs {
            let functions = optimizer.trial_functions().to_vec();
            let train = self.problems.train.clone();
            let records = self
                .phase(
                    Phase::Train { epoch },
                    &format!("epoch {epoch}"),
                    &train,
                    &functions,
                )
                .await?;
            for record in records {
                optimizer.record_one_conversation(record.history, record.correct)?;
            }
            if !self.problems.validation.is_empty() {
                let validation = self.problems.validation.clone();
                let records = self
                    .phase(
                        Phase::Validation { epoch },
                        &format!("validation {epoch}"),
                        &validation,
                        &functions,
                    )
                    .await?;
                for record in records {
                    optimizer.record_validation_outcome(record.problem_id, record.correct)?;
                }
            }

            let started = Instant::now();
            let spent_before = self.meter.report();
            let display = self.progress.step(&format!("step {epoch}"));
            let outcome = optimizer
                .step()
                .await
                .with_context(|| format!("optimizer step after epoch {epoch}"))?;
            // The live checkpoint now holds the state after this step; keep a copy
            // to resume from.
            let checkpoint = std::fs::read(self.run.optimizer_checkpoint_path())
                .context("reading the optimizer checkpoint")?;
            write_atomic(&self.run.checkpoint_path(epoch), &checkpoint)?;
            let step = StepRecord {
                epoch,
                kept: outcome.accepted,
                actions: u32::try_from(outcome.actions.len()).unwrap_or(u32::MAX),
                functions_after: outcome
                    .functions
                    .iter()
                    .map(|function| function.name.clone())
                    .collect(),
                should_stop: outcome.should_stop,
            };
            tracing::info!(
                epoch,
                kept = step.kept,
                actions = step.actions,
                functions = ?step.functions_after,
                trial_performance = outcome.trial_performance,
                best_performance = outcome.best_performance,
                rejected = outcome.rejected.len(),
                "optimizer step finished"
            );
            self.steps.append(&step)?;
            display.finish(&step_summary(&step, outcome.rejected.len()));
            self.finish_phase(&format!("step {epoch}"), started, &spent_before)?;
            if step.should_stop {
                stopped_early = Some(stop_message(epoch, self.config.patience));
                break;
            }
            epoch += 1;
        }

        let functions = optimizer.trial_functions().to_vec();
        let after = self
            .phase(Phase::TestAfter, "test after training", &test, &functions)
            .await?;

        let artifact = FunctionSet::new(functions.iter().cloned()).with_provenance(Provenance {
            producer: format!("agentopt xtask bench-math {}", env!("CARGO_PKG_VERSION")),
            optimizer_model: self.config.optimizer_model.clone(),
            performance: None,
            steps: optimizer.steps_taken(),
            exported_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        });
        artifact
            .save(&self.run.functions_path())
            .context("writing functions.json")?;

        let report = self.report(&before, &after, &functions, stopped_early)?;
        write_json_atomic(&self.run.report_json_path(), &report)?;
        write_atomic(&self.run.report_md_path(), report.to_markdown().as_bytes())?;
        write_learning_curve(&report, &self.run.plot_path())?;
        Ok(report)
    }

    /// A fresh optimizer, or the one saved after the step of `last_epoch`.
    async fn optimizer(&self, last_epoch: Option<u32>) -> anyhow::Result<AgentOptimizer> {
        let options = OptimizerOptions {
            patience: self.config.patience,
            validation: (self.config.validation_size > 0).then_some(ValidationOptions {
                significance: self.config.significance,
            }),
            checkpoint: Some(self.run.optimizer_checkpoint_path()),
            action_format: self.config.optimizer_actions,
            require_action: self.config.require_action,
            seed: self.config.sampling_seed,
            ..OptimizerOptions::default()
        };
        let model = Arc::clone(&self.optimizer_model);
        let optimizer = match last_epoch {
            Some(epoch) => {
                let path = self.run.checkpoint_path(epoch);
                tracing::info!(checkpoint = %path.display(), "resuming the optimizer");
                AgentOptimizer::resume_with_options(&path, model, options)?
            }
            None => AgentOptimizer::new(
                usize::try_from(self.config.max_actions_per_step).unwrap_or(usize::MAX),
                model,
                options,
            )?,
        };
        // Proposed functions are tried once in a sandbox before they are accepted.
        let session = PythonSession::start(&self.environment, &self.policy)
            .await
            .context("starting the sandbox that checks proposed functions")?;
        Ok(optimizer.with_executor(Box::new(session)))
    }

    /// Runs the conversations of one phase (reusing those already recorded) and
    /// returns their records in problem order.
    async fn phase(
        &mut self,
        phase: Phase,
        name: &str,
        problems: &[Problem],
        functions: &[LearnedFunction],
    ) -> anyhow::Result<Vec<ConversationRecord>> {
        let started = Instant::now();
        let spent_before = self.meter.report();
        let mut display = self.progress.phase(name, problems.len() as u64);
        let mut records: Vec<Option<ConversationRecord>> = vec![None; problems.len()];
        let mut pending = Vec::new();
        for (index, problem) in problems.iter().enumerate() {
            match self.recorded.get(&(phase, index)) {
                Some(record) if record.problem_id == problem.id => {
                    display.resumed(record.correct, record_tokens(record));
                    records[index] = Some(record.clone());
                }
                Some(record) => bail!(
                    "{}: {phase} problem {index} was {} but is now {}; the data changed \
                     since the run started",
                    self.run.transcripts_path().display(),
                    record.problem_id,
                    problem.id
                ),
                None => pending.push(index),
            }
        }
        let nothing_to_do = pending.is_empty() && self.finished_phases.contains(name);
        let solver = &self.solver;
        let mut finished = futures::stream::iter(pending.into_iter().map(|index| {
            let problem = &problems[index];
            async move { (index, solver.solve(problem, functions).await) }
        }))
        .buffer_unordered(self.config.concurrency);
        while let Some((index, solved)) = finished.next().await {
            let problem = &problems[index];
            let (outcome, history) =
                solved.with_context(|| format!("{phase}: problem {}", problem.id))?;
            if matches!(outcome.transcript.stop_reason, StopReason::Error { .. })
                && let Err(exhausted) = self.meter.check_budget()
            {
                // Not recorded: the conversation was cut short by the budget, not
                // failed by the agents.
                bail!(
                    "{exhausted}. Raise --budget-usd / --budget-tokens and continue with: \
                     cargo xtask bench-math --resume --run-dir {}",
                    self.run.root().display()
                );
            }
            let record = ConversationRecord {
                phase,
                index,
                problem_id: problem.id.clone(),
                correct: outcome.correct,
                answer: outcome.answer.clone(),
                reference: outcome.reference.clone(),
                history,
                transcript: serde_json::to_value(&outcome.transcript)
                    .context("serialising a transcript")?,
            };
            self.transcripts.append(&record)?;
            display.record(
                record.correct,
                outcome.usage.prompt_tokens + outcome.usage.completion_tokens,
            );
            self.recorded.insert((phase, index), record.clone());
            records[index] = Some(record);
        }
        drop(finished);
        display.finish();
        if !nothing_to_do {
            self.finish_phase(name, started, &spent_before)?;
        }
        Ok(records.into_iter().flatten().collect())
    }

    /// Appends the phase's time and spend to `phases.jsonl`.
    fn finish_phase(
        &mut self,
        name: &str,
        started: Instant,
        spent_before: &UsageReport,
    ) -> anyhow::Result<()> {
        let spent_after = self.meter.report();
        let usage = spent_after
            .by_caller
            .iter()
            .map(|(role, totals)| {
                let before = spent_before
                    .by_caller
                    .get(role)
                    .copied()
                    .unwrap_or_default();
                RoleUsage {
                    role: role.clone(),
                    calls: totals.calls - before.calls,
                    prompt_tokens: totals.prompt_tokens - before.prompt_tokens,
                    completion_tokens: totals.completion_tokens - before.completion_tokens,
                    cost_usd: totals.cost_usd - before.cost_usd,
                }
            })
            .filter(|usage| usage.calls > 0)
            .collect();
        self.phases.append(&PhaseRecord {
            phase: name.to_owned(),
            seconds: started.elapsed().as_secs_f64(),
            usage,
        })?;
        self.finished_phases.insert(name.to_owned());
        Ok(())
    }

    /// Builds the report from what is on disk (so a resumed run reports the same
    /// as an uninterrupted one, timings and spend aside).
    fn report(
        &self,
        before: &[ConversationRecord],
        after: &[ConversationRecord],
        functions: &[LearnedFunction],
        stopped_early: Option<String>,
    ) -> anyhow::Result<Report> {
        let outcomes = |records: &[ConversationRecord]| {
            TestResult::from_outcomes(
                records
                    .iter()
                    .map(|record| ProblemOutcome {
                        id: record.problem_id.clone(),
                        correct: record.correct,
                    })
                    .collect(),
            )
        };
        let test_before = outcomes(before);
        let test_after = outcomes(after);
        let paired = pair_outcomes(&test_before, &test_after);

        let steps: Vec<StepRecord> = read_json_lines(&self.run.steps_path())?;
        let mut epochs = Vec::new();
        for step in &steps {
            let records: Vec<&ConversationRecord> = (0..self.problems.train.len())
                .filter_map(|index| {
                    self.recorded
                        .get(&(Phase::Train { epoch: step.epoch }, index))
                })
                .collect();
            let correct = records.iter().filter(|record| record.correct).count() as u64;
            epochs.push(EpochResult {
                epoch: step.epoch,
                accuracy: Accuracy::new(correct, records.len() as u64),
                kept: step.kept,
                actions: step.actions,
                functions_after: step.functions_after.clone(),
            });
        }

        let mut training_calls: BTreeMap<String, CallCounts> = BTreeMap::new();
        let mut test_calls: BTreeMap<String, CallCounts> = BTreeMap::new();
        for record in self.recorded.values() {
            let counts = match record.phase {
                Phase::Train { .. } => &mut training_calls,
                Phase::TestAfter => &mut test_calls,
                Phase::TestBefore | Phase::Validation { .. } => continue,
            };
            count_function_calls(record, counts)?;
        }
        let learned = functions
            .iter()
            .map(|function| FunctionUsage {
                name: function.name.clone(),
                description: function.description.clone(),
                training: training_calls
                    .get(&function.name)
                    .copied()
                    .unwrap_or_default(),
                test_after: test_calls.get(&function.name).copied().unwrap_or_default(),
            })
            .collect();

        let phase_records: Vec<PhaseRecord> = read_json_lines(&self.run.phases_path())?;
        // A phase continued on --resume has one line per process that worked on it:
        // its time and spend are the sums.
        let mut phases: Vec<PhaseTime> = Vec::new();
        let mut usage: BTreeMap<String, RoleUsage> = BTreeMap::new();
        for record in &phase_records {
            match phases.iter_mut().find(|phase| phase.phase == record.phase) {
                Some(phase) => phase.seconds += record.seconds,
                None => phases.push(PhaseTime {
                    phase: record.phase.clone(),
                    seconds: record.seconds,
                }),
            }
            for spent in &record.usage {
                let total = usage
                    .entry(spent.role.clone())
                    .or_insert_with(|| RoleUsage {
                        role: spent.role.clone(),
                        calls: 0,
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        cost_usd: 0.0,
                    });
                total.calls += spent.calls;
                total.prompt_tokens += spent.prompt_tokens;
                total.completion_tokens += spent.completion_tokens;
                total.cost_usd += spent.cost_usd;
            }
        }

        let config = &self.config;
        Ok(Report {
            version: REPORT_VERSION,
            setup: Setup {
                model: config.model.clone(),
                optimizer_model: config.optimizer_model.clone(),
                endpoint: config.endpoint.to_string(),
                data: format!(
                    "{} (train), {} (test)",
                    config.train.path.display(),
                    config.test.path.display()
                ),
                selection: config.train.selection.to_string(),
                train_problems: self.problems.train.len(),
                test_problems: self.problems.test.len(),
                epochs: config.epochs,
                max_actions_per_step: config.max_actions_per_step,
            },
            mcnemar_p: paired.mcnemar_exact_p(),
            paired,
            test_before,
            test_after,
            epochs,
            functions: learned,
            usage: usage.into_values().collect(),
            phases,
            stopped_early,
        })
    }
}

fn stop_message(epoch: u32, patience: Option<u32>) -> String {
    format!(
        "after epoch {epoch}: {} steps in a row without beating the best training accuracy",
        patience.unwrap_or(0)
    )
}

/// Tokens of a recorded conversation (for progress counts).
fn record_tokens(record: &ConversationRecord) -> u64 {
    let usage = &record.transcript["totals"]["usage"];
    let field = |name: &str| usage[name].as_u64().unwrap_or(0);
    field("prompt_tokens") + field("completion_tokens")
}

/// Adds the learned-function calls of one conversation to `counts`.
fn count_function_calls(
    record: &ConversationRecord,
    counts: &mut BTreeMap<String, CallCounts>,
) -> anyhow::Result<()> {
    let transcript: Transcript =
        serde_json::from_value(record.transcript.clone()).with_context(|| {
            format!(
                "reading the transcript of {} ({})",
                record.problem_id, record.phase
            )
        })?;
    for entry in &transcript.entries {
        for execution in &entry.work.executions {
            if let agentopt_agents::Execution::Function(call) = execution {
                let count = counts.entry(call.name.clone()).or_default();
                count.calls += 1;
                count.succeeded += u64::from(call.success);
            }
        }
    }
    Ok(())
}

/// Builds the agents of one conversation and runs it.
struct Solver {
    model: Arc<dyn ChatModel>,
    max_reply_tokens: Option<u32>,
    sampling_seed: Option<i64>,
    max_turns: Option<u32>,
    sessions: Arc<dyn ExecutorFactory>,
    checker: Arc<SandboxSymbolicChecker>,
}

impl Solver {
    /// Solves `problem` with fresh agents holding `functions`; returns the outcome
    /// and the conversation as the assistant saw it.
    async fn solve(
        &self,
        problem: &Problem,
        functions: &[LearnedFunction],
    ) -> anyhow::Result<(MathOutcome, Vec<agentopt_llm::ChatMessage>)> {
        let template = ChatRequest {
            max_tokens: self.max_reply_tokens,
            seed: self.sampling_seed,
            ..ChatRequest::new(Vec::new()).with_caller(ASSISTANT_NAME)
        };
        let mut assistant = AssistantAgent::new(ASSISTANT_NAME, Arc::clone(&self.model))
            .with_system_message(ASSISTANT_SYSTEM_MESSAGE)
            .configure(|agent| {
                let agent = agent.with_request_template(template);
                match self.max_turns {
                    Some(turns) => agent.with_max_consecutive_auto_reply(turns),
                    None => agent,
                }
            })
            .into_inner();
        let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, Arc::clone(&self.sessions))
            .with_symbolic_checker(self.checker.clone());
        install(
            &mut assistant,
            &mut proxy,
            &FunctionSet::new(functions.iter().cloned()),
        )?;
        let outcome = proxy
            .initiate_chat(&mut assistant, &problem.question, &problem.answer)
            .await;
        let history = assistant
            .history(proxy.name())
            .iter()
            .flat_map(Message::to_chat_messages)
            .collect();
        Ok((outcome, history))
    }
}

/// `kept the trial · 1 action (2 rejected) · functions: solve, simplify`.
fn step_summary(step: &StepRecord, rejected: usize) -> String {
    let decision = if step.kept {
        "kept the trial"
    } else {
        "rolled back to the best"
    };
    let plural = if step.actions == 1 { "" } else { "s" };
    let rejected = if rejected == 0 {
        String::new()
    } else {
        format!(" ({rejected} rejected)")
    };
    let functions = if step.functions_after.is_empty() {
        "none".to_owned()
    } else {
        step.functions_after.join(", ")
    };
    format!(
        "{decision} · {} action{plural}{rejected} · functions: {functions}",
        step.actions
    )
}

#[cfg(test)]
mod tests {
    use super::{StepRecord, step_summary};

    #[test]
    fn step_summaries() {
        let step = |kept, actions, functions: &[&str]| StepRecord {
            epoch: 1,
            kept,
            actions,
            functions_after: functions.iter().map(|name| (*name).to_owned()).collect(),
            should_stop: false,
        };
        for (record, rejected, text) in [
            (
                step(true, 1, &["solve"]),
                0,
                "kept the trial · 1 action · functions: solve",
            ),
            (
                step(false, 0, &[]),
                2,
                "rolled back to the best · 0 actions (2 rejected) · functions: none",
            ),
        ] {
            assert_eq!(step_summary(&record, rejected), text);
        }
    }
}
