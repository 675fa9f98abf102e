//! The training run: test before → epochs of (training attempts, validation
//! attempts, optimizer step, new functions) → test after → artifact and report.
//!
//! Everything the run learns is on disk before it moves on ([`crate::RunDir`]), so a
//! run over a directory that holds part of a run continues it: recorded attempts
//! are read back instead of re-run (except infrastructure errors, which run again),
//! and the optimizer restarts from its copy after the last finished step and is given
//! the epoch's attempts again, in problem order.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentopt_core::files::{
    JsonLines, for_each_json_line, read_json_line_at, read_json_lines, write_atomic,
    write_json_atomic,
};
use agentopt_core::{Demonstration, FunctionSet, Provenance, lock};
use agentopt_llm::{ChatModel, SpendEntry, UsageMeter, UsageReport, UsageTotals};
use agentopt_optimizer::{
    Action, AgentOptimizer, AnswerJudge, FunctionUse, OptimizerError, OptimizerOptions,
    StepOutcome, ValidationOptions, solution_calling,
};
use agentopt_sandbox::{Executor, ExecutorFactory, SandboxError};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::FailureKind;
use crate::claim::Claim;
use crate::journal::{
    ConversationRecord, DemonstrationCounts, ForcedCallRecord, Phase, PhaseRecord, RoleUsage,
    RunDir, StepRecord,
};
use crate::progress::{Event, NoProgress, Observer};
use crate::report::{Setup, TrainingReport};
use crate::retrieval::retrieve;
use crate::tape::{Tape, TapedModel};
use crate::task::Task;
use crate::{TrainError, report};

/// The problems of a run. Validation problems, when there are any, switch the
/// optimizer to validation mode (a trial is kept only when it solves significantly
/// more of them).
#[derive(Debug, Clone)]
pub struct Problems<P> {
    /// Solved every epoch; their conversations teach the optimizer.
    pub train: Vec<P>,
    /// Held out, solved every epoch by each trial (validation mode).
    pub validation: Vec<P>,
    /// Solved before and after training.
    pub test: Vec<P>,
}

/// How a [`Trainer`] runs. Serializable as a run's configuration: what exists only
/// at run time (the run directory, meter, proposal sandbox and the report's setup)
/// is left out and set when the run starts.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainerOptions {
    /// Where the journal, checkpoints, artifact and report go; a directory holding
    /// part of a run is continued.
    #[serde(skip)]
    pub run_dir: PathBuf,
    /// Training epochs; 0 (with [`Self::initial_functions`]): no training, the
    /// test after runs with the initial functions.
    pub epochs: u32,
    /// The functions training starts from (an earlier run's `functions.json`, or a
    /// set to evaluate with `epochs: 0`); the test before runs without any, as
    /// always. Empty: none, as AG2.
    #[serde(default, skip_serializing_if = "FunctionSet::is_empty")]
    pub initial_functions: FunctionSet,
    /// Optimizer actions allowed per step (at least 1).
    pub max_actions_per_step: usize,
    /// Attempts run at once (at least 1). Results do not depend on it: the
    /// optimizer is given each phase's attempts in problem order.
    pub concurrency: usize,
    /// The optimizer's options; `checkpoint` is set by the trainer.
    pub optimizer: OptimizerOptions,
    /// Significance level of validation mode (used when there are validation
    /// problems).
    pub significance: f64,
    /// The meter the task's and the optimizer's clients share: phase spend in the
    /// report. `None`: no spend is reported.
    #[serde(skip)]
    pub meter: Option<UsageMeter>,
    /// Sessions in which proposed functions are tried once before they are
    /// accepted. `None`: only static checks.
    #[serde(skip)]
    pub proposal_sandbox: Option<Arc<dyn ExecutorFactory>>,
    /// After this many infrastructure errors in a row, a phase stops starting new
    /// attempts (an outage should not burn through the whole set).
    pub max_consecutive_infrastructure_errors: usize,
    /// How long each model's check before the first attempt may take (`None`: no
    /// check).
    pub preflight: Option<Duration>,
    /// Give each function up to this many worked examples read off correct
    /// training conversations that called it, verified like the optimizer's
    /// (DSPy-style bootstrapping); 0: none.
    pub bootstrap_demonstrations: usize,
    /// After each step, give each function that has no worked example one, from a
    /// conversation on the training problem most like it (BM25) whose first reply
    /// is made to call it ([`Task::attempt_calling`]), kept when the answer passes
    /// the task's check and the example verifies. A 1.5B optimizer's own examples
    /// name problems it made up, and its assistant calls nothing it has not seen
    /// called; the extra conversations count as the step's spend.
    pub forced_call_demonstrations: bool,
    /// Make every attempt call the offered function most relevant to its problem
    /// (BM25, sharing a word with it): its first reply is started with the call
    /// ([`Task::attempt_calling`]; a task that cannot force one runs
    /// [`Task::attempt`]). The design change of the plan: the system, not the
    /// model, decides that a function applies; the model writes its arguments.
    pub force_call: bool,
    /// Offer each problem at most this many functions, the most relevant among
    /// those sharing a word with it (BM25 of the problem's text,
    /// [`Task::problem_text`], against each function's name, description and
    /// examples; [`crate::retrieve`]); `None`: all of them, as AG2.
    pub retrieval_k: Option<usize>,
    /// What the report says about the run; the trainer adds the problem counts,
    /// epochs, actions per step and the task's own rows ([`Task::report_settings`]).
    #[serde(skip)]
    pub setup: Setup,
}

impl Default for TrainerOptions {
    fn default() -> Self {
        Self {
            run_dir: PathBuf::from("runs/train"),
            epochs: 2,
            initial_functions: FunctionSet::default(),
            max_actions_per_step: 3,
            concurrency: 1,
            optimizer: OptimizerOptions::default(),
            significance: 0.05,
            meter: None,
            proposal_sandbox: None,
            max_consecutive_infrastructure_errors: 3,
            preflight: Some(Duration::from_secs(15)),
            retrieval_k: None,
            bootstrap_demonstrations: 0,
            forced_call_demonstrations: false,
            force_call: false,
            setup: Setup::default(),
        }
    }
}

impl std::fmt::Debug for TrainerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainerOptions")
            .field("run_dir", &self.run_dir)
            .field("epochs", &self.epochs)
            .field("max_actions_per_step", &self.max_actions_per_step)
            .field("concurrency", &self.concurrency)
            .field("optimizer", &self.optimizer)
            .finish_non_exhaustive()
    }
}

impl TrainerOptions {
    fn check(&self) -> Result<(), TrainError> {
        let invalid = |option, value: String, message: &str| TrainError::InvalidOption {
            option,
            value,
            message: message.to_owned(),
        };
        if self.epochs == 0 && self.initial_functions.is_empty() {
            return Err(invalid(
                "epochs",
                "0".into(),
                "train for at least one epoch (0 only tests initial functions, and none were given)",
            ));
        }
        if self.max_actions_per_step == 0 {
            return Err(invalid(
                "max_actions_per_step",
                "0".into(),
                "allow at least one action",
            ));
        }
        if self.retrieval_k == Some(0) {
            return Err(invalid(
                "retrieval_k",
                "0".into(),
                "offer at least one function",
            ));
        }
        if self.concurrency == 0 {
            return Err(invalid(
                "concurrency",
                "0".into(),
                "run at least one attempt at a time",
            ));
        }
        if !(self.significance > 0.0 && self.significance < 1.0) {
            return Err(invalid(
                "significance",
                self.significance.to_string(),
                "must be in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// Trains the functions of a [`Task`]'s agents.
pub struct Trainer<T: Task> {
    /// Shared with the optimizer's answer judge, which checks worked examples.
    task: Arc<T>,
    optimizer_model: Arc<dyn ChatModel>,
    options: TrainerOptions,
    observer: Arc<dyn Observer>,
    /// The models passed their check: a front end's [`Trainer::check`] followed by
    /// [`Trainer::run`] asks the servers once.
    preflighted: AtomicBool,
    /// The run directory's lock and spend journal, held for the trainer's life.
    claim: Mutex<Claim>,
}

impl<T: Task> Trainer<T> {
    /// A trainer for `task` whose functions are proposed by `optimizer_model`.
    pub fn new(task: T, optimizer_model: Arc<dyn ChatModel>, options: TrainerOptions) -> Self {
        Self {
            task: Arc::new(task),
            optimizer_model,
            options,
            observer: Arc::new(NoProgress),
            preflighted: AtomicBool::new(false),
            claim: Mutex::new(Claim::default()),
        }
    }

    /// Sends progress events to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The task.
    pub fn task(&self) -> &T {
        &self.task
    }

    /// Runs (or continues) the training run and returns its report, which is also
    /// written to the run directory. A run stopped by infrastructure errors or the
    /// budget returns a report marked incomplete; running again continues it.
    ///
    /// # Errors
    /// Bad options or problem ids (before any model call), run-directory I/O, a
    /// failed optimizer step.
    pub async fn run(&self, problems: &Problems<T::Problem>) -> Result<TrainingReport, TrainError> {
        self.check(problems).await?;
        RunDir::open(&self.options.run_dir)?;
        // A fresh run's directory exists from here on: lock it, journal the spend.
        self.claim_run_dir()?;
        let mut run = Run::open(self, problems)?;
        run.execute().await
    }

    /// Claims the run directory for this process (see [`Claim::claim`]).
    fn claim_run_dir(&self) -> Result<(), TrainError> {
        lock(&self.claim).claim(&self.options.run_dir, self.options.meter.as_ref())
    }

    /// Everything [`Self::run`] checks before it writes or runs anything: the
    /// options, unique problem ids, the run directory when it exists (no other
    /// process on it, journals that read; its recorded spend counts against the
    /// budget), and (with [`TrainerOptions::preflight`]) the optimizer's and the
    /// task's models. A front end that writes files of its own calls this first, so
    /// bad input leaves nothing behind. The trainer keeps the run directory's lock
    /// from here on, until it is dropped.
    ///
    /// # Errors
    /// [`TrainError::InvalidOption`], [`TrainError::DuplicateProblemId`],
    /// [`TrainError::TestProblemInTraining`], [`TrainError::RunDirInUse`],
    /// [`TrainError::File`], [`TrainError::Preflight`].
    pub async fn check(&self, problems: &Problems<T::Problem>) -> Result<(), TrainError> {
        self.options.check()?;
        for (set, list) in [
            ("train", &problems.train),
            ("validation", &problems.validation),
            ("test", &problems.test),
        ] {
            self.check_unique_ids(set, list)?;
        }
        self.check_test_not_trained_on(problems)?;
        self.claim_run_dir()?;
        self.preflight().await
    }

    /// Checks the optimizer's and the task's models before anything runs.
    async fn preflight(&self) -> Result<(), TrainError> {
        let Some(within) = self.options.preflight else {
            return Ok(());
        };
        if self.preflighted.load(Ordering::Acquire) {
            return Ok(());
        }
        let models = std::iter::once(Arc::clone(&self.optimizer_model)).chain(self.task.models());
        for model in models {
            model
                .preflight(within)
                .await
                .map_err(TrainError::Preflight)?;
        }
        self.preflighted.store(true, Ordering::Release);
        Ok(())
    }

    /// Refuses a test problem whose text ([`Task::problem_text`], case and
    /// whitespace aside) is that of a training or validation problem.
    fn check_test_not_trained_on(&self, problems: &Problems<T::Problem>) -> Result<(), TrainError> {
        let mut seen: HashMap<String, (&'static str, &T::Problem)> = HashMap::new();
        for (set, list) in [
            ("train", &problems.train),
            ("validation", &problems.validation),
        ] {
            for problem in list {
                if let Some(text) = self.task.problem_text(problem) {
                    seen.entry(normalized_text(&text)).or_insert((set, problem));
                }
            }
        }
        for problem in &problems.test {
            let Some(text) = self.task.problem_text(problem) else {
                continue;
            };
            if let Some(&(set, other)) = seen.get(&normalized_text(&text)) {
                return Err(TrainError::TestProblemInTraining {
                    test_id: self.task.problem_id(problem),
                    set,
                    other_id: self.task.problem_id(other),
                });
            }
        }
        Ok(())
    }

    fn check_unique_ids(
        &self,
        set: &'static str,
        problems: &[T::Problem],
    ) -> Result<(), TrainError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, problem) in problems.iter().enumerate() {
            let id = self.task.problem_id(problem);
            if let Some(&first) = seen.get(&id) {
                return Err(TrainError::DuplicateProblemId {
                    set,
                    id,
                    first,
                    second: index,
                });
            }
            seen.insert(id, index);
        }
        Ok(())
    }
}

/// The report's rows for the learned-function-use levers that are on.
fn lever_settings(options: &TrainerOptions) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let optimizer = &options.optimizer.learned_use;
    if optimizer.demonstrations {
        rows.push(("worked examples asked for".to_owned(), "on".to_owned()));
    }
    if options.bootstrap_demonstrations > 0 {
        let per = format!("up to {} per function", options.bootstrap_demonstrations);
        rows.push(("bootstrapped examples".to_owned(), per));
    }
    if options.forced_call_demonstrations {
        let how = "one per function without one, from a forced call".to_owned();
        rows.push(("forced-call examples".to_owned(), how));
    }
    if options.force_call {
        let how = "the most relevant offered function, in every attempt".to_owned();
        rows.push(("forced call".to_owned(), how));
    }
    if let Some(k) = options.retrieval_k {
        rows.push((
            "retrieval".to_owned(),
            format!("top {k} functions per problem"),
        ));
    }
    for (on, name) in [
        (optimizer.execution_checks, "execution checks"),
        (optimizer.use_statistics, "use statistics"),
        (optimizer.from_what_worked, "functions from what worked"),
    ] {
        if on {
            rows.push((name.to_owned(), "on".to_owned()));
        }
    }
    if let Some(steps) = optimizer.prune_unused_after {
        rows.push(("prune unused after".to_owned(), format!("{steps} steps")));
    }
    rows
}

/// Worked examples kept and rejected in a step: bootstrapped ones (`bootstrapped`:
/// kept, rejected) and those the optimizer wrote with its actions.
fn demonstration_counts(
    outcome: &StepOutcome,
    bootstrapped: (usize, usize),
) -> DemonstrationCounts {
    let written: usize = outcome
        .actions
        .iter()
        .map(|action| match action {
            Action::Add(function) | Action::Revise(function) => function.demonstrations.len(),
            Action::Remove(_) => 0,
        })
        .sum();
    let refused = outcome
        .rejected
        .iter()
        .flat_map(|rejected| rejected.errors.iter().flatten())
        .filter(|error| error.starts_with("demonstration "))
        .count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    DemonstrationCounts {
        kept: count(written + bootstrapped.0),
        rejected: count(refused + bootstrapped.1),
    }
}

/// The task's answers as the optimizer's [`AnswerJudge`]: the reference answers of
/// the training problems, by normalized text, and the task's answer check.
struct TaskJudge<T: Task> {
    task: Arc<T>,
    references: HashMap<String, String>,
}

impl<T: Task> TaskJudge<T> {
    fn new(task: Arc<T>, training: &[T::Problem]) -> Self {
        let references = training
            .iter()
            .filter_map(|problem| {
                let text = task.problem_text(problem)?;
                Some((normalized_text(&text), task.reference_answer(problem)?))
            })
            .collect();
        Self { task, references }
    }
}

#[async_trait::async_trait]
impl<T: Task> AnswerJudge for TaskJudge<T> {
    fn reference_answer(&self, problem: &str) -> Option<String> {
        self.references.get(&normalized_text(problem)).cloned()
    }

    async fn agrees(&self, answer: &str, reference: &str) -> bool {
        self.task.answers_agree(answer, reference).await
    }
}

/// `text` lower-cased with runs of whitespace made one space: two copies of a
/// problem that differ only in layout are the same problem.
pub(crate) fn normalized_text(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The attempts of one phase that count, and what stopped it early.
struct PhaseResult {
    /// Solved or failed attempts, in problem order (infrastructure errors left out).
    records: Vec<Recorded>,
    /// Why the phase did not finish cleanly, if it did not.
    stop: Option<String>,
}

/// One run in progress: its journal, records and optimizer.
struct Run<'a, T: Task> {
    trainer: &'a Trainer<T>,
    problems: &'a Problems<T::Problem>,
    dir: RunDir,
    transcripts: JsonLines,
    steps: JsonLines,
    phases: JsonLines,
    step_details: JsonLines,
    /// Opened only with [`TrainerOptions::forced_call_demonstrations`]: a run
    /// without it has no such file.
    forced_calls: Option<JsonLines>,
    /// The optimizer model's requests and replies in the step in progress.
    tape: Tape,
    /// The latest record of each (phase, index), without its conversation (which
    /// stays in `transcripts.jsonl`, read back when the optimizer needs it: memory
    /// does not grow with the conversations of a run).
    recorded: HashMap<(Phase, usize), Recorded>,
}

/// A journaled attempt as the run keeps it in memory.
#[derive(Clone)]
struct Recorded {
    /// The record, its history and transcript left out.
    record: ConversationRecord,
    /// Where its line starts in `transcripts.jsonl`.
    offset: u64,
}

impl Recorded {
    fn new(mut record: ConversationRecord, offset: u64) -> Self {
        record.attempt.history = Vec::new();
        record.attempt.transcript = None;
        Self { record, offset }
    }
}

impl<'a, T: Task> Run<'a, T> {
    fn open(
        trainer: &'a Trainer<T>,
        problems: &'a Problems<T::Problem>,
    ) -> Result<Self, TrainError> {
        let dir = RunDir::open(&trainer.options.run_dir)?;
        let mut recorded = HashMap::new();
        for_each_json_line(
            &dir.transcripts_path(),
            |offset, record: ConversationRecord| {
                let key = (record.phase, record.index);
                recorded.insert(key, Recorded::new(record, offset));
                Ok::<_, TrainError>(())
            },
        )?;
        Ok(Self {
            transcripts: JsonLines::open(&dir.transcripts_path())?,
            steps: JsonLines::open(&dir.steps_path())?,
            phases: JsonLines::open(&dir.phases_path())?,
            step_details: JsonLines::open(&dir.step_details_path())?,
            forced_calls: trainer
                .options
                .forced_call_demonstrations
                .then(|| JsonLines::open(&dir.forced_calls_path()))
                .transpose()?,
            tape: Tape::new(dir.step_tape_path()),
            trainer,
            problems,
            dir,
            recorded,
        })
    }

    fn options(&self) -> &TrainerOptions {
        &self.trainer.options
    }

    async fn execute(&mut self) -> Result<TrainingReport, TrainError> {
        let done_steps: Vec<StepRecord> = read_json_lines(&self.dir.steps_path())?;
        // A skipped step changed nothing: continue from the last step that ran.
        let resume_from = done_steps
            .iter()
            .rev()
            .find(|step| step.skipped.is_none())
            .map(|step| step.epoch);
        let mut optimizer = self.optimizer(resume_from)?;
        // The proposal sandbox is needed from the first step on: it starts while the
        // test before training runs instead of delaying it.
        let mut proposal_session = self
            .options()
            .proposal_sandbox
            .clone()
            .map(|sessions| tokio::spawn(async move { sessions.start().await }));
        let mut functions = FunctionSet::new(optimizer.trial_functions().iter().cloned());
        let test = &self.problems.test;
        if let Some(stop) = self
            .phase(Phase::TestBefore, test, &FunctionSet::default())
            .await?
            .stop
        {
            return self.finish(&functions, None, Some(stop));
        }
        // Epochs whose step was skipped after that point are in the optimizer's
        // trial, as they were in the run that skipped them.
        for step in done_steps
            .iter()
            .filter(|step| Some(step.epoch) > resume_from)
        {
            self.epoch(step.epoch, &functions, &mut optimizer).await?;
        }
        let mut stopped_early = None;
        let mut epoch = done_steps.last().map_or(1, |step| step.epoch + 1);
        if let Some(last) = done_steps.last().filter(|step| step.should_stop) {
            stopped_early = Some(stop_message(last.epoch, self.options().optimizer.patience));
            epoch = self.options().epochs + 1;
        }
        while epoch <= self.options().epochs {
            if let Some(stop) = self.epoch(epoch, &functions, &mut optimizer).await? {
                return self.finish(&functions, stopped_early, Some(stop));
            }
            attach_proposal_session(&mut optimizer, &mut proposal_session).await?;
            match self.step(epoch, &mut optimizer).await? {
                StepResult::Done(step) => {
                    functions = step.functions.clone();
                    if step.should_stop {
                        stopped_early =
                            Some(stop_message(epoch, self.options().optimizer.patience));
                        break;
                    }
                }
                StepResult::Skipped => {}
                StepResult::Stop(reason) => {
                    return self.finish(&functions, stopped_early, Some(reason));
                }
            }
            epoch += 1;
        }
        let stop = self.phase(Phase::TestAfter, test, &functions).await?.stop;
        let steps = optimizer.steps_taken();
        let provenance = Provenance::exported_now(
            format!("agentopt-train {}", env!("CARGO_PKG_VERSION")),
            self.trainer.optimizer_model.model_name(),
            optimizer.best_performance(),
            steps,
        );
        functions
            .clone()
            .with_provenance(provenance)
            .save(&self.dir.functions_path())?;
        self.finish(&functions, stopped_early, stop)
    }

    /// The training (and validation) attempts of one epoch, given to the optimizer
    /// when every one of them counts; otherwise why the run stops here.
    async fn epoch(
        &mut self,
        epoch: u32,
        functions: &FunctionSet,
        optimizer: &mut AgentOptimizer,
    ) -> Result<Option<String>, TrainError> {
        let train = self
            .phase(Phase::Train { epoch }, &self.problems.train, functions)
            .await?;
        if train.stop.is_some() {
            return Ok(train.stop);
        }
        let validation = if self.problems.validation.is_empty() {
            None
        } else {
            let phase = Phase::Validation { epoch };
            let result = self
                .phase(phase, &self.problems.validation, functions)
                .await?;
            if result.stop.is_some() {
                return Ok(result.stop);
            }
            Some(result.records)
        };
        for record in train.records {
            let record = self.read_back(&record)?;
            let mut uses: BTreeMap<String, FunctionUse> = record
                .attempt
                .calls
                .iter()
                .map(|(name, counts)| {
                    let used = FunctionUse {
                        calls: counts.calls,
                        succeeded: counts.succeeded,
                        shadowed: false,
                    };
                    (name.clone(), used)
                })
                .collect();
            for name in &record.attempt.shadowed {
                uses.entry(name.clone()).or_default().shadowed = true;
            }
            optimizer.record_conversation_with_uses(
                record.attempt.history,
                record.attempt.outcome.is_solved(),
                uses,
            )?;
        }
        for Recorded { record, .. } in validation.into_iter().flatten() {
            optimizer
                .record_validation_outcome(record.problem_id, record.attempt.outcome.is_solved())?;
        }
        Ok(None)
    }

    /// The whole of `recorded` (its conversation included), read back from
    /// `transcripts.jsonl`.
    fn read_back(&self, recorded: &Recorded) -> Result<ConversationRecord, TrainError> {
        Ok(read_json_line_at(
            &self.dir.transcripts_path(),
            recorded.offset,
        )?)
    }

    /// The optimizer step after `epoch`, journaled with a copy of the checkpoint.
    async fn step(
        &mut self,
        epoch: u32,
        optimizer: &mut AgentOptimizer,
    ) -> Result<StepResult, TrainError> {
        let mut mark = self.mark();
        self.trainer.observer.event(Event::StepStarted { epoch });
        // Calls of an earlier step that failed before its record belong to no step.
        self.tape.clear()?;
        let bootstrapped = self.bootstrap_demonstrations(epoch, optimizer).await?;
        let mut outcome = match optimizer.step().await {
            Ok(outcome) => outcome,
            Err(OptimizerError::Model(error)) => {
                self.record_spend(&format!("step {epoch}"), &mut mark)?;
                return self.skip_step(epoch, optimizer, &error);
            }
            Err(error) => return Err(error.into()),
        };
        let forced = self.forced_call_demonstrations(epoch, optimizer).await?;
        if forced.0 > 0 {
            outcome.functions = FunctionSet::new(optimizer.trial_functions().iter().cloned());
        }
        let bootstrapped = (bootstrapped.0 + forced.0, bootstrapped.1 + forced.1);
        // The live checkpoint now holds the state after this step; keep a copy to
        // resume from.
        let live = self.dir.optimizer_checkpoint_path();
        let checkpoint = std::fs::read(&live)
            .map_err(agentopt_core::io_error("read", &live))
            .map_err(agentopt_core::CoreError::from)?;
        write_atomic(&self.dir.checkpoint_path(epoch), &checkpoint)?;
        let step = StepRecord {
            epoch,
            kept: outcome.accepted,
            actions: u32::try_from(outcome.actions.len()).unwrap_or(u32::MAX),
            functions_after: outcome
                .functions
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            rejected: u32::try_from(outcome.rejected.len()).unwrap_or(u32::MAX),
            should_stop: outcome.should_stop,
            skipped: None,
            pruned: outcome.pruned.clone(),
            demonstrations: demonstration_counts(&outcome, bootstrapped),
            partitions: u32::try_from(outcome.partitions.len()).unwrap_or(u32::MAX),
        };
        tracing::info!(
            epoch,
            kept = step.kept,
            actions = step.actions,
            trial_performance = outcome.trial_performance,
            best_performance = outcome.best_performance,
            rejected = outcome.rejected.len(),
            "optimizer step finished"
        );
        self.record_spend(&format!("step {epoch}"), &mut mark)?;
        // The detail first: a kill between the two lines re-runs the step, whose
        // later detail line supersedes this one.
        self.tape
            .write_detail(&mut self.step_details, epoch, Some(&outcome), None)?;
        self.steps.append(&step)?;
        self.trainer
            .observer
            .event(Event::StepFinished { step: &step });
        Ok(StepResult::Done(Box::new(outcome)))
    }

    /// A step whose optimizer model failed after its retries: recorded as skipped
    /// with its reason (the trial and its conversations stay for the next step), or,
    /// when the budget is used up, the end of the run.
    fn skip_step(
        &mut self,
        epoch: u32,
        optimizer: &AgentOptimizer,
        error: &agentopt_llm::LlmError,
    ) -> Result<StepResult, TrainError> {
        if matches!(error, agentopt_llm::LlmError::BudgetExceeded { .. }) {
            return Ok(StepResult::Stop(format!(
                "the budget is used up in the optimizer step after epoch {epoch} ({error}); \
                 raise it and run again on {} to continue",
                self.dir.root().display()
            )));
        }
        tracing::warn!(epoch, %error, "optimizer step failed; skipped, training goes on");
        let step = StepRecord {
            epoch,
            kept: false,
            actions: 0,
            functions_after: optimizer
                .trial_functions()
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            rejected: 0,
            should_stop: false,
            skipped: Some(error.to_string()),
            pruned: Vec::new(),
            demonstrations: DemonstrationCounts::default(),
            partitions: 0,
        };
        self.tape
            .write_detail(&mut self.step_details, epoch, None, step.skipped.as_deref())?;
        self.steps.append(&step)?;
        self.trainer
            .observer
            .event(Event::StepFinished { step: &step });
        Ok(StepResult::Skipped)
    }

    /// With [`TrainerOptions::bootstrap_demonstrations`], gives each trial function
    /// worked examples read off the epoch's correct training conversations that
    /// called it (verified in the proposal sandbox). Returns (kept, rejected).
    async fn bootstrap_demonstrations(
        &self,
        epoch: u32,
        optimizer: &mut AgentOptimizer,
    ) -> Result<(usize, usize), TrainError> {
        let keep = self.options().bootstrap_demonstrations;
        if keep == 0 {
            return Ok((0, 0));
        }
        let names: Vec<String> = optimizer
            .trial_functions()
            .iter()
            .map(|function| function.name.clone())
            .collect();
        let (mut kept, mut rejected) = (0, 0);
        for name in names {
            let mut candidates = Vec::new();
            let called = (0..self.problems.train.len())
                .filter_map(|index| self.recorded.get(&(Phase::Train { epoch }, index)))
                .filter(|recorded| {
                    let attempt = &recorded.record.attempt;
                    let calls = attempt.calls.get(&name);
                    attempt.outcome.is_solved() && calls.is_some_and(|c| c.succeeded > 0)
                });
            for recorded in called {
                let problem = &self.problems.train[recorded.record.index];
                let history = self.read_back(recorded)?.attempt.history;
                if let (Some(problem), Some(solution)) = (
                    self.trainer.task.problem_text(problem),
                    solution_calling(&history, &name),
                ) {
                    candidates.push(Demonstration {
                        problem,
                        solution,
                        answer: String::new(),
                        call: None,
                    });
                }
            }
            let (added, refused) = optimizer
                .bootstrap_demonstrations(&name, candidates, keep)
                .await?;
            kept += added;
            rejected += refused;
        }
        Ok((kept, rejected))
    }

    /// With [`TrainerOptions::forced_call_demonstrations`], gives each function in
    /// force that has no worked example one from a forced-call conversation on the
    /// training problem most like it. Returns (kept, rejected); a conversation
    /// that fails, or a task that cannot force a call, gives none.
    async fn forced_call_demonstrations(
        &mut self,
        epoch: u32,
        optimizer: &mut AgentOptimizer,
    ) -> Result<(usize, usize), TrainError> {
        if self.forced_calls.is_none() {
            return Ok((0, 0));
        }
        let task = &self.trainer.task;
        let texts: Vec<String> = self
            .problems
            .train
            .iter()
            .map(|problem| task.problem_text(problem).unwrap_or_default())
            .collect();
        let functions = FunctionSet::new(optimizer.trial_functions().iter().cloned());
        let (mut kept, mut rejected) = (0, 0);
        for function in functions.functions() {
            if !function.demonstrations.is_empty() {
                continue;
            }
            let Some(index) = crate::retrieval::most_similar(function, &texts) else {
                continue;
            };
            let problem = &self.problems.train[index];
            let name = &function.name;
            let Some(attempt) = task.attempt_calling(problem, &functions, name).await else {
                continue;
            };
            let solution =
                solution_calling(&attempt.history, name).filter(|_| attempt.outcome.is_solved());
            let added = match solution {
                Some(solution) => {
                    let candidate = Demonstration {
                        problem: texts[index].clone(),
                        solution,
                        answer: String::new(),
                        call: None,
                    };
                    optimizer
                        .bootstrap_demonstrations(name, vec![candidate], 1)
                        .await?
                        .0
                }
                None => 0,
            };
            kept += added;
            rejected += 1 - added;
            let record = ForcedCallRecord {
                epoch,
                function: name.clone(),
                index,
                problem_id: task.problem_id(problem),
                kept: added > 0,
                attempt,
            };
            if let Some(journal) = self.forced_calls.as_mut() {
                journal.append(&record)?;
            }
        }
        Ok((kept, rejected))
    }

    /// A fresh optimizer, or the one saved after the step of `last_epoch`.
    fn optimizer(&self, last_epoch: Option<u32>) -> Result<AgentOptimizer, TrainError> {
        let trainer = self.trainer;
        let mut options = self.options().optimizer.clone();
        options.checkpoint = Some(self.dir.optimizer_checkpoint_path());
        if !self.problems.validation.is_empty() {
            options.validation = Some(ValidationOptions {
                significance: self.options().significance,
            });
        }
        let model: Arc<dyn ChatModel> = Arc::new(TapedModel::new(
            Arc::clone(&trainer.optimizer_model),
            self.tape.clone(),
        ));
        let optimizer = match last_epoch {
            Some(epoch) => {
                let path = self.dir.checkpoint_path(epoch);
                tracing::info!(checkpoint = %path.display(), "resuming the optimizer");
                AgentOptimizer::resume_with_options(&path, model, options)?
            }
            None => AgentOptimizer::new(self.options().max_actions_per_step, model, options)?
                .with_functions(&self.options().initial_functions),
        };
        let judge = TaskJudge::new(Arc::clone(&trainer.task), &self.problems.train);
        Ok(optimizer.with_answer_judge(Arc::new(judge)))
    }

    /// Runs the attempts of one phase (reusing those recorded, re-running
    /// infrastructure errors) and returns those that count, in problem order.
    async fn phase(
        &mut self,
        phase: Phase,
        problems: &'a [T::Problem],
        functions: &FunctionSet,
    ) -> Result<PhaseResult, TrainError> {
        let mut mark = self.mark();
        let observer = Arc::clone(&self.trainer.observer);
        observer.event(Event::PhaseStarted {
            phase,
            total: problems.len(),
        });
        let pending = self.pending(phase, problems)?;
        let stop = self
            .run_attempts(phase, problems, pending, functions, &mut mark)
            .await?;
        observer.event(Event::PhaseFinished { phase });
        let records = (0..problems.len())
            .filter_map(|index| self.recorded.get(&(phase, index)))
            .filter(|recorded| recorded.record.attempt.outcome.infrastructure().is_none())
            .cloned()
            .collect();
        Ok(PhaseResult { records, stop })
    }

    /// Indices of `problems` to run: not recorded, or recorded as an infrastructure
    /// error. Reports the recorded ones to the observer.
    fn pending(&self, phase: Phase, problems: &[T::Problem]) -> Result<Vec<usize>, TrainError> {
        let mut pending = Vec::new();
        for (index, problem) in problems.iter().enumerate() {
            let id = self.trainer.task.problem_id(problem);
            match self
                .recorded
                .get(&(phase, index))
                .map(|recorded| &recorded.record)
            {
                Some(record) if record.problem_id != id => {
                    return Err(TrainError::ProblemChanged {
                        path: self.dir.transcripts_path(),
                        phase,
                        index,
                        recorded: record.problem_id.clone(),
                        now: id,
                    });
                }
                Some(record) if record.attempt.outcome.infrastructure().is_none() => {
                    self.trainer.observer.event(Event::Resumed {
                        phase,
                        outcome: &record.attempt.outcome,
                        tokens: record.attempt.tokens,
                    });
                }
                _ => pending.push(index),
            }
        }
        Ok(pending)
    }

    /// Runs `pending` attempts, `concurrency` at a time, journaling each as it
    /// finishes. Returns why the phase stopped early or left errors to re-run.
    async fn run_attempts(
        &mut self,
        phase: Phase,
        problems: &'a [T::Problem],
        pending: Vec<usize>,
        functions: &FunctionSet,
        mark: &mut SpendMark,
    ) -> Result<Option<String>, TrainError> {
        let task = &self.trainer.task;
        let retrieval_k = self.options().retrieval_k;
        let force_call = self.options().force_call;
        let mut finished = futures::stream::iter(pending.into_iter().map(|index| {
            let problem = &problems[index];
            let text = task.problem_text(problem);
            let offered = match (retrieval_k, &text) {
                (Some(k), Some(text)) => retrieve(functions, text, k),
                _ => functions.clone(),
            };
            // The most relevant offered function, when the call is to be forced.
            let forced = text.filter(|_| force_call).and_then(|text| {
                let top = retrieve(&offered, &text, 1);
                top.names().first().map(|name| (*name).to_owned())
            });
            async move {
                let made = match &forced {
                    Some(name) => task.attempt_calling(problem, &offered, name).await,
                    None => None,
                };
                let attempt = match made {
                    Some(attempt) => attempt,
                    None => task.attempt(problem, &offered).await,
                };
                (index, attempt, offered)
            }
        }))
        .buffer_unordered(self.options().concurrency);
        let mut errors = InfraTally::default();
        while let Some((index, attempt, offered)) = finished.next().await {
            let record = ConversationRecord {
                phase,
                index,
                problem_id: task.problem_id(&problems[index]),
                offered: offered.names().into_iter().map(str::to_owned).collect(),
                attempt,
            };
            // The spend first: a kill between the two lines re-runs the attempt and
            // counts its spend twice — it was spent twice — rather than not at all.
            self.record_spend(&phase.name(), mark)?;
            let offset = self.transcripts.append_line(&record)?;
            let outcome = &record.attempt.outcome;
            self.trainer.observer.event(Event::Finished {
                phase,
                problem_id: &record.problem_id,
                outcome,
                tokens: record.attempt.tokens,
            });
            errors.count(outcome.infrastructure().map(|error| error.kind));
            self.recorded
                .insert((phase, index), Recorded::new(record, offset));
            if errors.budget
                || errors.consecutive >= self.options().max_consecutive_infrastructure_errors
            {
                break;
            }
        }
        Ok(errors.stop_reason(phase, self.dir.root()))
    }

    /// Now, and what has been spent so far.
    fn mark(&self) -> SpendMark {
        SpendMark {
            at: Instant::now(),
            spent: self.spent(),
        }
    }

    /// Appends the time and spend since `mark` to `phases.jsonl` under `name`, and
    /// moves `mark` to now. The report sums a phase's lines.
    fn record_spend(&mut self, name: &str, mark: &mut SpendMark) -> Result<(), TrainError> {
        let now = self.mark();
        let deltas = |now: &BTreeMap<String, UsageTotals>,
                      before: &BTreeMap<String, UsageTotals>| {
            now.iter()
                .filter_map(|(name, totals)| {
                    let earlier = before.get(name).copied().unwrap_or_default();
                    RoleUsage::delta(name, totals, &earlier)
                })
                .collect()
        };
        self.phases.append(&PhaseRecord {
            phase: name.to_owned(),
            seconds: now.at.duration_since(mark.at).as_secs_f64(),
            usage: deltas(&now.spent.by_caller, &mark.spent.by_caller),
            endpoints: deltas(&now.spent.by_endpoint, &mark.spent.by_endpoint),
        })?;
        *mark = now;
        Ok(())
    }

    fn spent(&self) -> UsageReport {
        self.options()
            .meter
            .as_ref()
            .map(UsageMeter::report)
            .unwrap_or_default()
    }

    /// Builds the report from what is on disk and writes `report.json` and `report.md`.
    fn finish(
        &self,
        functions: &FunctionSet,
        stopped_early: Option<String>,
        incomplete: Option<String>,
    ) -> Result<TrainingReport, TrainError> {
        let steps: Vec<StepRecord> = read_json_lines(&self.dir.steps_path())?;
        let phases: Vec<PhaseRecord> = read_json_lines(&self.dir.phases_path())?;
        let spend: Vec<SpendEntry> = read_json_lines(&self.dir.spend_path())?;
        let mut setup = self.options().setup.clone();
        setup.train_problems = self.problems.train.len();
        setup.test_problems = self.problems.test.len();
        setup.epochs = self.options().epochs;
        setup.max_actions_per_step =
            u32::try_from(self.options().max_actions_per_step).unwrap_or(u32::MAX);
        let mut settings = self.trainer.task.report_settings();
        settings.extend(lever_settings(self.options()));
        let initial = self.options().initial_functions.names().join(", ");
        if !initial.is_empty() {
            settings.push(("initial functions".to_owned(), initial));
        }
        settings.append(&mut setup.settings);
        setup.settings = settings;
        let records: BTreeMap<(Phase, usize), &ConversationRecord> = self
            .recorded
            .iter()
            .map(|(key, recorded)| (*key, &recorded.record))
            .collect();
        let report = report::build(report::Inputs {
            setup,
            records: &records,
            steps: &steps,
            phases: &phases,
            spend: &spend,
            functions,
            stopped_early,
            incomplete,
        });
        write_json_atomic(&self.dir.report_json_path(), &report)?;
        write_atomic(&self.dir.report_md_path(), report.to_markdown().as_bytes())?;
        write_atomic(
            &self.dir.learning_curve_path(),
            crate::html::learning_curve_svg(&report)?.as_bytes(),
        )?;
        crate::html::write(&self.dir, &report, functions)?;
        Ok(report)
    }
}

/// What an optimizer step came to.
enum StepResult {
    /// It ran; the functions in force changed as it says.
    Done(Box<StepOutcome>),
    /// Its model failed; nothing changed.
    Skipped,
    /// The run stops here, for this reason.
    Stop(String),
}

/// A point in a run: when, and the spend so far.
struct SpendMark {
    at: Instant,
    spent: UsageReport,
}

/// Infrastructure errors of a phase as its attempts finish.
#[derive(Default)]
struct InfraTally {
    /// Errors in a row (a solved or failed attempt resets it).
    consecutive: usize,
    total: usize,
    budget: bool,
}

impl InfraTally {
    fn count(&mut self, error: Option<FailureKind>) {
        match error {
            Some(kind) => {
                self.consecutive += 1;
                self.total += 1;
                self.budget |= kind == FailureKind::Budget;
            }
            None => self.consecutive = 0,
        }
    }

    fn stop_reason(&self, phase: Phase, run_dir: &std::path::Path) -> Option<String> {
        if self.budget {
            return Some(format!(
                "the budget is used up during {phase}; raise it and run again on {} to continue",
                run_dir.display()
            ));
        }
        (self.total > 0).then(|| {
            format!(
                "{} infrastructure error(s) during {phase} (see the report); nothing was \
                 recorded for them: run again on {} to re-run them",
                self.total,
                run_dir.display()
            )
        })
    }
}

/// A proposal-sandbox session being started in the background.
type StartingSession = tokio::task::JoinHandle<Result<Box<dyn Executor>, SandboxError>>;

/// Gives `optimizer` the proposal session once it has started (the first time only).
async fn attach_proposal_session(
    optimizer: &mut AgentOptimizer,
    starting: &mut Option<StartingSession>,
) -> Result<(), TrainError> {
    if let Some(starting) = starting.take() {
        let session = starting.await.map_err(|error| SandboxError::WorkerStart {
            detail: format!("the task starting the proposal sandbox ended: {error}"),
            stderr: String::new(),
        })??;
        optimizer.set_executor(session);
    }
    Ok(())
}

fn stop_message(epoch: u32, patience: Option<u32>) -> String {
    format!(
        "after epoch {epoch}: {} steps in a row without beating the best training accuracy",
        patience.unwrap_or(0)
    )
}
