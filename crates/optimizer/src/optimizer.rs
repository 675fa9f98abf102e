//! [`AgentOptimizer`]: records conversations, rolls back to the best function list,
//! asks the optimizer model for actions, validates them and checkpoints every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, FinishReason, ResponseFormat, ToolChoice,
    estimate_prompt_tokens,
};
use agentopt_sandbox::Executor;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use crate::action::{Action, CallLimits, Proposal, Verdict, read_reply, validate_calls};
use crate::checkpoint::{CheckpointFiles, LineReader, directory_of};
use crate::learned_use::{
    AnswerJudge, FunctionUse, LearnedUseOptions, count_unused_steps, demonstrations_text,
    use_statistics_text, verify_demonstration, worked_solutions_text,
};
use crate::partition::{
    MergeSide, PartitionReport, Partitioning, group_report, merge_prompt, plan_groups,
    prompt_too_large,
};
use crate::prompt::{
    ActionFormat, FEEDBACK_TOKENS, PromptBudget, PromptExample, PromptInputs, PromptReport,
    action_schema_asking, build_prompt, cut_middle, max_list_bytes, optimizer_tools_asking,
    role_text,
};
use crate::state::{
    FailedTrial, OptimizerState, Record, RecordedConversation, Scored, StoredConversation,
};
use crate::stats::PairedComparison;
use agentopt_core::{Demonstration, FunctionDiff, FunctionSet, LearnedFunction, Provenance};

use crate::OptimizerError;

/// Settings of an [`AgentOptimizer`] beyond AG2's; saved in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerOptions {
    /// Report `should_stop` after this many consecutive steps without beating the best
    /// score; `None` never stops.
    pub patience: Option<u32>,
    /// Times a rejected proposal is retried with the validation error fed back; at
    /// most [`MAX_RETRIES_LIMIT`].
    pub max_retries: u32,
    /// Tokens of the context window kept free for the optimizer's reply (also its
    /// `max_tokens`). The prompt budget is the context window minus twice this (the
    /// reply, and a rejected reply kept for a retry) minus room for validation errors.
    pub reply_room_tokens: u32,
    /// A prompt budget tighter than the context window minus the reply room.
    pub max_prompt_tokens: Option<usize>,
    /// Longest tool output kept whole in a history, in characters.
    pub max_tool_output_chars: usize,
    /// Decide keep/roll-back on a held-out validation batch instead of the training
    /// mean.
    pub validation: Option<ValidationOptions>,
    /// Where to checkpoint: a snapshot at this path, written at every step and
    /// reset, and a journal beside it (`x.json` → `x.journal.jsonl`) with one line per
    /// record; `None`: no checkpoints.
    pub checkpoint: Option<PathBuf>,
    /// Sampling temperature for the optimizer model.
    pub temperature: Option<f32>,
    /// Sampling seed for the optimizer model.
    pub seed: Option<i64>,
    /// How the optimizer model states its actions (checkpoints from before this
    /// option read as AG2's tool calls).
    #[serde(default)]
    pub action_format: ActionFormat,
    /// The first reply of each step must be an action: `tool_choice: required`, or no
    /// `TERMINATE` in the action schema. Small models otherwise end most steps at
    /// once; AG2's prompt asks for an action but leaves the choice (default: off).
    #[serde(default)]
    pub require_action: bool,
    /// The example function the prompt shows (AG2's MATH example by default): a task
    /// of another kind trains better with an example of its own kind.
    #[serde(default)]
    pub example: PromptExample,
    /// Packages learned functions may import, a subset of the sandbox allowlist
    /// (`None`: the whole allowlist, as before). Checked by [`AgentOptimizer::new`].
    #[serde(default)]
    pub allowed_packages: Option<Vec<String>>,
    /// What makes the learned functions get used, beyond AG2 (all off by default;
    /// checkpoints from before read as off).
    #[serde(default)]
    pub learned_use: LearnedUseOptions,
    /// When a step's conversations are split into groups that each fit a prompt
    /// whole, stepped one group at a time and merged (default: when they do not
    /// all fit one prompt).
    #[serde(default)]
    pub partitioning: Partitioning,
}

impl Default for OptimizerOptions {
    fn default() -> Self {
        Self {
            patience: None,
            max_retries: 3,
            reply_room_tokens: 768,
            max_prompt_tokens: None,
            max_tool_output_chars: 2000,
            validation: None,
            checkpoint: None,
            temperature: None,
            seed: None,
            action_format: ActionFormat::ToolCalls,
            require_action: false,
            example: PromptExample::default(),
            allowed_packages: None,
            learned_use: LearnedUseOptions::default(),
            partitioning: Partitioning::default(),
        }
    }
}

/// Validation mode: the trial list replaces the best only when it solves
/// significantly more of the same held-out problems (exact one-sided sign test on the
/// discordant pairs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationOptions {
    /// Significance level, in (0, 1).
    pub significance: f64,
}

/// A reply whose calls were rejected, with the error sent back for each call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedProposal {
    /// The tool calls' names and raw arguments.
    pub calls: Vec<(String, String)>,
    /// The validation error of each call (`None` for a call that was valid).
    pub errors: Vec<Option<String>>,
}

impl RejectedProposal {
    /// A whole reply rejected for `error`, recorded as its text (it held no valid call).
    fn reply(reply: &ChatMessage, error: String) -> Self {
        Self {
            calls: vec![(
                "(reply)".to_owned(),
                reply.content.clone().unwrap_or_default(),
            )],
            errors: vec![Some(error)],
        }
    }
}

/// What one [`AgentOptimizer::step`] decided and what the agents must change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// What changes for the agents, from the previous trial list to the new one:
    /// install [`Self::functions`] (`agentopt_agents::install`).
    pub changes: FunctionDiff,
    /// The trial list became the best (otherwise it was rolled back).
    pub accepted: bool,
    /// The trial list beat the best score (ties are accepted but do not count).
    pub improved: bool,
    /// The trial's training score (mean outcome).
    pub trial_performance: f64,
    /// The best score after this step.
    pub best_performance: f64,
    /// The paired validation comparison, in validation mode after the first step.
    pub validation: Option<PairedComparison>,
    /// `patience` steps in a row without beating the best: stop training.
    pub should_stop: bool,
    /// Actions applied to List B, in order.
    pub actions: Vec<Action>,
    /// Replies rejected by validation (each retried with the errors).
    pub rejected: Vec<RejectedProposal>,
    /// The model answered without tool calls (TERMINATE) and the loop stopped.
    pub terminated: bool,
    /// The budget report of every prompt sent.
    pub prompts: Vec<PromptReport>,
    /// The function list now in force (the next trial).
    pub functions: FunctionSet,
    /// Functions removed because no conversation called them for
    /// [`LearnedUseOptions::prune_unused_after`] steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// With a partitioned step, each group in order (its conversations, outcomes
    /// and actions); empty when one prompt showed every conversation. The group
    /// steps' actions come first in [`Self::actions`], then the merges'.
    #[serde(default)]
    pub partitions: Vec<PartitionReport>,
}

/// What one action loop did.
#[derive(Debug, Default)]
struct Round {
    actions: Vec<Action>,
    rejected: Vec<RejectedProposal>,
    terminated: bool,
    prompts: Vec<PromptReport>,
}

impl Round {
    /// Adds `other`'s actions, rejections and prompts after this round's.
    fn absorb(&mut self, other: Round) {
        self.actions.extend(other.actions);
        self.rejected.extend(other.rejected);
        self.prompts.extend(other.prompts);
    }
}

/// Builds a round's prompt from List B and the actions taken so far.
type PromptFn<'a> = dyn Fn(&[LearnedFunction], usize) -> Result<(String, PromptReport), OptimizerError>
    + Send
    + Sync
    + 'a;

/// Learns the Python functions an agent may call (AG2's AgentOptimizer, with
/// validation, early stop, bounded prompts and resume).
pub struct AgentOptimizer {
    max_actions_per_step: usize,
    model: Arc<dyn ChatModel>,
    options: OptimizerOptions,
    /// Shared by a partitioned step's concurrent group loops (each proposal's try
    /// holds it).
    executor: tokio::sync::Mutex<Option<Box<dyn Executor>>>,
    /// Checks worked examples against the task's answers; without one, examples
    /// cannot be verified and are dropped.
    judge: Option<Arc<dyn AnswerJudge>>,
    state: OptimizerState,
    files: Option<CheckpointFiles>,
    /// Where the journals that hold stored conversations' messages are: the
    /// checkpoint's directory.
    records_dir: Option<PathBuf>,
}

/// Group steps of a partitioned step in progress at once: how many groups'
/// conversations are in memory together (the model client's own cap decides how
/// many of their calls are in flight).
const GROUPS_AT_ONCE: usize = 32;

impl std::fmt::Debug for AgentOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptimizer")
            .field("max_actions_per_step", &self.max_actions_per_step)
            .field("model", &self.model.model_name())
            .field("options", &self.options)
            .field(
                "sandbox",
                &self
                    .executor
                    .try_lock()
                    .map(|executor| executor.is_some())
                    .ok(),
            )
            .finish_non_exhaustive()
    }
}

/// Most retries of a rejected proposal per round: each is a model call, and the
/// attempt count (`max_retries + 1`) must not overflow.
pub const MAX_RETRIES_LIMIT: u32 = 100;

fn check_options(options: &OptimizerOptions) -> Result<(), OptimizerError> {
    for package in options.allowed_packages.iter().flatten() {
        if agentopt_sandbox::allowlisted_package(package).is_err() {
            return Err(OptimizerError::InvalidOption {
                option: "allowed_packages",
                value: package.clone(),
                message: format!(
                    "not on the sandbox allowlist {:?}; the sandbox can import nothing else",
                    agentopt_sandbox::PACKAGE_ALLOWLIST
                ),
            });
        }
    }
    if options.max_retries > MAX_RETRIES_LIMIT {
        return Err(OptimizerError::InvalidOption {
            option: "max_retries",
            value: options.max_retries.to_string(),
            message: format!("must be at most {MAX_RETRIES_LIMIT}"),
        });
    }
    if let Some(validation) = &options.validation
        && !(validation.significance > 0.0 && validation.significance < 1.0)
    {
        return Err(OptimizerError::InvalidOption {
            option: "validation.significance",
            value: validation.significance.to_string(),
            message: "must lie strictly between 0 and 1".to_owned(),
        });
    }
    if options.max_tool_output_chars < 100 {
        return Err(OptimizerError::InvalidOption {
            option: "max_tool_output_chars",
            value: options.max_tool_output_chars.to_string(),
            message: "must be at least 100 so cut outputs stay readable".to_owned(),
        });
    }
    Ok(())
}

fn mean_outcome(conversations: &[impl Scored]) -> f64 {
    let satisfied = conversations.iter().filter(|c| c.satisfied()).count();
    satisfied as f64 / conversations.len() as f64
}

impl AgentOptimizer {
    /// An optimizer applying at most `max_actions_per_step` actions per step, asking
    /// `model`.
    ///
    /// # Errors
    /// [`OptimizerError::InvalidOption`] for an unusable option.
    pub fn new(
        max_actions_per_step: usize,
        model: Arc<dyn ChatModel>,
        options: OptimizerOptions,
    ) -> Result<Self, OptimizerError> {
        check_options(&options)?;
        Ok(Self {
            max_actions_per_step,
            model,
            files: options.checkpoint.as_deref().map(CheckpointFiles::new),
            records_dir: options.checkpoint.as_deref().map(directory_of),
            options,
            executor: tokio::sync::Mutex::new(None),
            judge: None,
            state: OptimizerState::default(),
        })
    }

    /// Continues from the checkpoint at `path` with the options saved in it; later
    /// checkpoints go to `path`. The next step sends the same prompt an uninterrupted
    /// run would have sent.
    ///
    /// # Errors
    /// Reading or parsing the checkpoint, or an unusable saved option.
    pub fn resume(path: &Path, model: Arc<dyn ChatModel>) -> Result<Self, OptimizerError> {
        let (checkpoint, files) = CheckpointFiles::load(path)?;
        let options = OptimizerOptions {
            checkpoint: Some(path.to_path_buf()),
            ..checkpoint.options
        };
        let mut optimizer = Self::new(checkpoint.max_actions_per_step, model, options)?;
        optimizer.state = checkpoint.state;
        optimizer.files = Some(files);
        Ok(optimizer)
    }

    /// As [`Self::resume`], with other options (a longer patience, say); options that
    /// shape the prompt change what the next step sends. Checkpoints go where
    /// `options.checkpoint` says (to `path`, they continue its journal).
    ///
    /// # Errors
    /// Reading or parsing the checkpoint, or an unusable option.
    pub fn resume_with_options(
        path: &Path,
        model: Arc<dyn ChatModel>,
        options: OptimizerOptions,
    ) -> Result<Self, OptimizerError> {
        let (checkpoint, files) = CheckpointFiles::load(path)?;
        let continues_here = options.checkpoint.as_deref() == Some(path);
        let mut optimizer = Self::new(checkpoint.max_actions_per_step, model, options)?;
        optimizer.state = checkpoint.state;
        if continues_here {
            optimizer.files = Some(files);
            return Ok(optimizer);
        }
        // The loaded journal's lines stay readable under their names after
        // this optimizer's first snapshot elsewhere supersedes it.
        files.keep_journal_for(&optimizer.state)?;
        let loaded_dir = directory_of(path);
        match &optimizer.records_dir {
            // Checkpoints go to another directory: the conversations come along.
            Some(directory) if *directory != loaded_dir => {
                let reader = LineReader {
                    files: None,
                    directory: Some(&loaded_dir),
                };
                let state = &mut optimizer.state;
                load_inline(&reader, &mut state.trial_conversations)?;
                load_inline(&reader, &mut state.best_conversations)?;
            }
            _ => optimizer.records_dir = Some(loaded_dir),
        }
        Ok(optimizer)
    }

    /// Starts from `functions` (a `functions.json` of an earlier run, say) instead
    /// of none: they are in force, and the best list, until a step says otherwise.
    #[must_use]
    pub fn with_functions(mut self, functions: &FunctionSet) -> Self {
        self.state.trial_functions = functions.functions().to_vec();
        self.state.best_functions = functions.functions().to_vec();
        self
    }

    /// The options in force.
    pub fn options(&self) -> &OptimizerOptions {
        &self.options
    }

    /// Tries every proposed function in this sandbox before accepting it.
    #[must_use]
    pub fn with_executor(mut self, executor: Box<dyn Executor>) -> Self {
        *self.executor.get_mut() = Some(executor);
        self
    }

    /// Verifies worked examples with `judge` (see [`verify_demonstration`]).
    #[must_use]
    pub fn with_answer_judge(mut self, judge: Arc<dyn AnswerJudge>) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Tries every proposed function in this sandbox from now on (for a session
    /// started after the optimizer, see [`Self::with_executor`]).
    pub fn set_executor(&mut self, executor: Box<dyn Executor>) {
        *self.executor.get_mut() = Some(executor);
    }

    /// Records one conversation held with the current (trial) functions and whether
    /// the user was satisfied. All or nothing: when the checkpoint cannot be written,
    /// nothing is recorded, and calling again records the conversation once.
    ///
    /// # Errors
    /// Writing the checkpoint.
    pub fn record_one_conversation(
        &mut self,
        history: Vec<ChatMessage>,
        satisfied: bool,
    ) -> Result<(), OptimizerError> {
        self.record(Record::Conversation(RecordedConversation {
            messages: history,
            satisfied,
            uses: None,
        }))
    }

    /// As [`Self::record_one_conversation`], with the learned functions the
    /// conversation called: what use statistics and pruning count.
    ///
    /// # Errors
    /// Writing the checkpoint.
    pub fn record_conversation_with_uses(
        &mut self,
        history: Vec<ChatMessage>,
        satisfied: bool,
        uses: BTreeMap<String, FunctionUse>,
    ) -> Result<(), OptimizerError> {
        self.record(Record::Conversation(RecordedConversation {
            messages: history,
            satisfied,
            uses: Some(uses),
        }))
    }

    /// Records the trial functions' outcome on one held-out validation problem
    /// (validation mode); all or nothing, as [`Self::record_one_conversation`].
    ///
    /// # Errors
    /// Writing the checkpoint.
    pub fn record_validation_outcome(
        &mut self,
        problem_id: impl Into<String>,
        satisfied: bool,
    ) -> Result<(), OptimizerError> {
        self.record(Record::Validation {
            problem_id: problem_id.into(),
            satisfied,
        })
    }

    /// Persists `record` (a journal line, or a first snapshot), then applies it
    /// (a conversation's messages stay in its journal line).
    fn record(&mut self, record: Record) -> Result<(), OptimizerError> {
        let Some(files) = &mut self.files else {
            record.apply(&mut self.state, None);
            return Ok(());
        };
        let at = files.append(&record)?;
        if at.is_none() {
            let mut next = self.state.clone();
            record.clone().apply(&mut next, None);
            self.write_snapshot(&next)?;
        }
        record.apply(&mut self.state, at);
        Ok(())
    }

    /// Reads what the step needs of `stored`: the conversations, messages included.
    fn load(
        &self,
        stored: &[StoredConversation],
    ) -> Result<Vec<RecordedConversation>, OptimizerError> {
        stored.iter().map(|one| self.load_one(one)).collect()
    }

    fn load_one(
        &self,
        stored: &StoredConversation,
    ) -> Result<RecordedConversation, OptimizerError> {
        let reader = LineReader {
            files: self.files.as_ref(),
            directory: self.records_dir.as_deref(),
        };
        read_stored(&reader, stored)
    }

    /// Forgets everything learned: functions, conversations, scores, failures.
    ///
    /// # Errors
    /// Writing the checkpoint (nothing is forgotten then).
    pub fn reset(&mut self) -> Result<(), OptimizerError> {
        let empty = OptimizerState::default();
        self.write_snapshot(&empty)?;
        self.state = empty;
        Ok(())
    }

    /// The best function list so far.
    pub fn best_functions(&self) -> &[LearnedFunction] {
        &self.state.best_functions
    }

    /// The function list in force now (what the agents have).
    pub fn trial_functions(&self) -> &[LearnedFunction] {
        &self.state.trial_functions
    }

    /// Function additions, revisions and removals allowed per step.
    pub fn max_actions_per_step(&self) -> usize {
        self.max_actions_per_step
    }

    /// The best score so far; `None` before the first step.
    pub fn best_performance(&self) -> Option<f64> {
        self.state.best_performance
    }

    /// The conversations the best list was scored on (what the prompt's histories
    /// are drawn from), read back from the checkpoint's journals when checkpoints
    /// are on.
    ///
    /// # Errors
    /// Reading a journal.
    pub fn best_conversations(&self) -> Result<Vec<RecordedConversation>, OptimizerError> {
        self.load(&self.state.best_conversations)
    }

    /// The rolled-back lists since the last acceptance, ascending by score.
    pub fn failure_experience(&self) -> &[FailedTrial] {
        &self.state.failures
    }

    /// Steps taken since creation or the last reset.
    pub fn steps_taken(&self) -> u64 {
        self.state.steps_taken
    }

    /// The best function list, with its provenance, ready to save as the artifact.
    pub fn artifact(&self) -> FunctionSet {
        FunctionSet::new(self.state.best_functions.iter().cloned()).with_provenance(
            Provenance::exported_now(
                format!("agentopt-optimizer {}", env!("CARGO_PKG_VERSION")),
                self.model.model_name(),
                self.state.best_performance,
                self.state.steps_taken,
            ),
        )
    }

    /// Writes [`Self::artifact`] to `path`.
    ///
    /// # Errors
    /// Writing the file.
    pub fn export_artifact(&self, path: &Path) -> Result<FunctionSet, OptimizerError> {
        let artifact = self.artifact();
        artifact.save(path)?;
        Ok(artifact)
    }

    /// Writes `state` as the checkpoint snapshot, when checkpoints are on.
    fn write_snapshot(&mut self, state: &OptimizerState) -> Result<(), OptimizerError> {
        match &mut self.files {
            Some(files) => files.write_snapshot(self.max_actions_per_step, &self.options, state),
            None => Ok(()),
        }
    }

    /// Verifies `candidates` (worked examples read off correct conversations, see
    /// [`crate::solution_calling`]) of the trial function `name` in the sandbox with
    /// the answer judge and gives it those that pass, up to `keep` examples in all
    /// (an example of a problem it already has is skipped). Returns how many were
    /// kept and how many rejected; nothing happens without a sandbox and a judge.
    ///
    /// # Errors
    /// The sandbox failing, writing the checkpoint.
    pub async fn bootstrap_demonstrations(
        &mut self,
        name: &str,
        candidates: Vec<Demonstration>,
        keep: usize,
    ) -> Result<(usize, usize), OptimizerError> {
        let executor = self.executor.get_mut().as_deref_mut();
        let (Some(executor), Some(judge)) = (executor, self.judge.clone()) else {
            return Ok((0, 0));
        };
        let Some(function) = self.state.trial_functions.iter().find(|f| f.name == name) else {
            return Ok((0, 0));
        };
        let function = function.clone();
        let mut examples = function.demonstrations.clone();
        let mut rejected = 0;
        for candidate in candidates {
            if examples.len() >= keep {
                break;
            }
            let known = |example: &Demonstration| {
                example
                    .problem
                    .split_whitespace()
                    .eq(candidate.problem.split_whitespace())
            };
            if examples.iter().any(known) {
                continue;
            }
            match verify_demonstration(executor, &function, &candidate, judge.as_ref()).await? {
                Ok(example) => examples.push(example),
                Err(feedback) => {
                    rejected += 1;
                    tracing::info!(function = name, %feedback, "bootstrapped example rejected");
                }
            }
        }
        let kept = examples.len() - function.demonstrations.len();
        if kept > 0 {
            // Changed in place, not in a copy of the state, and changed back when
            // the snapshot cannot be written.
            set_demonstrations(&mut self.state, name, &examples);
            let state = std::mem::take(&mut self.state);
            let written = self.write_snapshot(&state);
            self.state = state;
            if let Err(error) = written {
                set_demonstrations(&mut self.state, name, &function.demonstrations);
                return Err(error);
            }
        }
        Ok((kept, rejected))
    }

    async fn prompt_budget(&self) -> Result<PromptBudget, OptimizerError> {
        let context_window = self.model.context_window().await?;
        let reply_room = self.options.reply_room_tokens;
        let reserved = reply_room.saturating_mul(2).saturating_add(FEEDBACK_TOKENS);
        let Some(available) = context_window.checked_sub(reserved).filter(|t| *t > 0) else {
            return Err(OptimizerError::InvalidOption {
                option: "reply_room_tokens",
                value: reply_room.to_string(),
                message: format!(
                    "leaves no room for a prompt in a {context_window}-token context window"
                ),
            });
        };
        let available = available as usize;
        Ok(PromptBudget {
            context_window,
            max_prompt_tokens: self
                .options
                .max_prompt_tokens
                .map_or(available, |m| m.min(available)),
            max_tool_output_chars: self.options.max_tool_output_chars,
            action_format: self.options.action_format,
            asks_demonstrations: self.options.learned_use.demonstrations,
        })
    }

    /// The prompt's sections beyond AG2's that [`LearnedUseOptions`] asks for, over
    /// the `conversations` the prompt shows: each function of `best` by its use, and
    /// correct solutions to generalise.
    fn learned_use_text(
        &self,
        best: &[LearnedFunction],
        conversations: &[RecordedConversation],
    ) -> String {
        let options = &self.options.learned_use;
        let mut text = String::new();
        if options.use_statistics {
            text.push_str(&use_statistics_text(best, conversations));
        }
        if options.from_what_worked {
            text.push_str(&worked_solutions_text(conversations));
        }
        text
    }

    /// Takes the functions of `incumbent` that no conversation called in
    /// [`LearnedUseOptions::prune_unused_after`] steps out of it; returns their names.
    fn prune_unused(
        &self,
        next: &OptimizerState,
        incumbent: &mut Vec<LearnedFunction>,
    ) -> Vec<String> {
        let Some(limit) = self.options.learned_use.prune_unused_after else {
            return Vec::new();
        };
        let unused = |function: &LearnedFunction| {
            next.unused_steps
                .get(&function.name)
                .is_some_and(|&steps| steps >= limit)
        };
        let pruned: Vec<String> = incumbent
            .iter()
            .filter(|function| unused(function))
            .map(|function| function.name.clone())
            .collect();
        incumbent.retain(|function| !unused(function));
        if !pruned.is_empty() {
            tracing::info!(?pruned, limit, "unused functions pruned");
        }
        pruned
    }

    /// The request for `messages`, with room for a reply of `max_tokens`; `must_act`
    /// withholds the way to end the step.
    fn request(
        &self,
        messages: Vec<ChatMessage>,
        incumbent: &[LearnedFunction],
        must_act: bool,
        max_tokens: u32,
    ) -> ChatRequest {
        let request = ChatRequest::new(messages);
        let mut request = match self.options.action_format {
            ActionFormat::ToolCalls => request
                .with_tools(optimizer_tools_asking(
                    self.options.learned_use.demonstrations,
                ))
                .with_tool_choice(if must_act {
                    ToolChoice::Required
                } else {
                    ToolChoice::Auto
                }),
            ActionFormat::JsonSchema => request.with_response_format(ResponseFormat::JsonSchema {
                name: "optimizer_action".to_owned(),
                schema: action_schema_asking(
                    incumbent,
                    !must_act,
                    self.options.learned_use.demonstrations,
                ),
            }),
        }
        .with_max_tokens(max_tokens)
        .with_caller("optimizer");
        request.temperature = self.options.temperature;
        request.seed = self.options.seed;
        request
    }

    /// One training step: scores the trial, keeps it or rolls back to the best list,
    /// asks the optimizer model for up to `max_actions_per_step` validated actions and
    /// returns what the agents must change. Nothing changes when it fails.
    ///
    /// # Errors
    /// [`OptimizerError::NothingRecorded`] before any conversation was recorded for the
    /// trial, [`OptimizerError::NothingValidated`] likewise in validation mode, model
    /// and sandbox failures, a prompt that cannot fit, and checkpoint writes.
    pub async fn step(&mut self) -> Result<StepOutcome, OptimizerError> {
        if self.state.trial_conversations.is_empty() {
            return Err(OptimizerError::NothingRecorded);
        }
        if self.options.validation.is_some() && self.state.trial_validation.is_empty() {
            return Err(OptimizerError::NothingValidated);
        }
        // The next state is built beside this one without the recorded
        // conversations: the step reads them where they are, and they move (not a
        // copy) at the end, after the last await, so a step that fails or is
        // dropped half-way changes nothing.
        let mut next = self.state.without_conversations();
        let (mut outcome, previous_trial) = self.score_trial(&mut next);
        let scored = if outcome.accepted {
            &self.state.trial_conversations
        } else {
            &self.state.best_conversations
        };
        self.propose_next(&next, scored, &mut outcome, previous_trial)
            .await
            .map(|incumbent| next.trial_functions = incumbent)?;
        let kept = if outcome.accepted {
            &mut self.state.trial_conversations
        } else {
            &mut self.state.best_conversations
        };
        next.best_conversations = std::mem::take(kept);
        // Written before it is adopted: a failed write leaves the step undone.
        if let Err(error) = self.write_snapshot(&next) {
            let kept = if outcome.accepted {
                &mut self.state.trial_conversations
            } else {
                &mut self.state.best_conversations
            };
            *kept = next.best_conversations;
            return Err(error);
        }
        self.state = next;
        Ok(outcome)
    }

    /// Scores the trial's conversations into `next` (the state without its
    /// conversations) and keeps the trial or rolls back to the best list: returns
    /// the outcome so far and the trial list.
    fn score_trial(&self, next: &mut OptimizerState) -> (StepOutcome, Vec<LearnedFunction>) {
        let trial = &self.state.trial_conversations;
        let trial_performance = mean_outcome(trial);
        let validation = match (&self.options.validation, next.best_performance) {
            (Some(options), Some(_)) => Some(PairedComparison::new(
                &next.best_validation,
                &next.trial_validation,
                options.significance,
            )),
            _ => None,
        };
        let (accepted, improved) = match (&validation, next.best_performance) {
            (_, None) => (true, true),
            (Some(comparison), Some(_)) => {
                let better = comparison.trial_is_better();
                (better, better)
            }
            (None, Some(best)) => (trial_performance >= best, trial_performance > best),
        };
        let previous_trial = std::mem::take(&mut next.trial_functions);
        count_unused_steps(&mut next.unused_steps, &previous_trial, trial);
        let trial_validation = std::mem::take(&mut next.trial_validation);
        if accepted {
            next.failures.clear();
            next.best_functions.clone_from(&previous_trial);
            next.best_validation = trial_validation;
            next.best_performance = Some(trial_performance);
        } else {
            next.failures.push(FailedTrial {
                functions: previous_trial.clone(),
                performance: trial_performance,
            });
            next.failures
                .sort_by(|a, b| a.performance.total_cmp(&b.performance));
        }
        next.steps_without_improvement = if improved {
            0
        } else {
            next.steps_without_improvement + 1
        };
        next.steps_taken += 1;
        tracing::info!(
            step = next.steps_taken,
            trial_performance,
            accepted,
            improved,
            "optimizer step: trial scored"
        );
        let outcome = StepOutcome {
            changes: FunctionDiff::default(),
            accepted,
            improved,
            trial_performance,
            best_performance: next.best_performance.unwrap_or(trial_performance),
            validation,
            should_stop: self
                .options
                .patience
                .is_some_and(|patience| next.steps_without_improvement >= patience),
            actions: Vec::new(),
            rejected: Vec::new(),
            terminated: false,
            prompts: Vec::new(),
            functions: FunctionSet::default(),
            pruned: Vec::new(),
            partitions: Vec::new(),
        };
        (outcome, previous_trial)
    }

    /// Asks the optimizer model for the next trial list from `next`'s best list,
    /// scored on the `scored` conversations; fills in `outcome` and returns the list.
    async fn propose_next(
        &self,
        next: &OptimizerState,
        scored: &[StoredConversation],
        outcome: &mut StepOutcome,
        previous_trial: Vec<LearnedFunction>,
    ) -> Result<Vec<LearnedFunction>, OptimizerError> {
        let budget = self.prompt_budget().await?;
        let mut incumbent = next.best_functions.clone();
        outcome.pruned = self.prune_unused(next, &mut incumbent);
        let mut round = Round::default();
        outcome.partitions = self
            .propose(next, scored, &budget, &mut incumbent, &mut round)
            .await?;
        outcome.actions = round.actions;
        outcome.rejected = round.rejected;
        outcome.terminated = round.terminated;
        outcome.prompts = round.prompts;

        outcome.functions = FunctionSet::new(incumbent.iter().cloned());
        outcome.changes = FunctionSet::new(previous_trial).diff(&outcome.functions);
        Ok(incumbent)
    }

    /// Turns `incumbent` (the best list, less what was pruned) into the next trial:
    /// one action loop over every conversation when one prompt shows them all whole
    /// (or partitioning is off), else one loop per group, each from `incumbent` with
    /// the learned-use sections of its own conversations, and merges of the groups'
    /// lists; returns the groups (empty without partitions). The `scored`
    /// conversations (the best list's) are read from disk a group at a time.
    async fn propose(
        &self,
        next: &OptimizerState,
        scored: &[StoredConversation],
        budget: &PromptBudget,
        incumbent: &mut Vec<LearnedFunction>,
        round: &mut Round,
    ) -> Result<Vec<PartitionReport>, OptimizerError> {
        let role = role_text(&self.options.example);
        let start = incumbent.clone();
        let extra_for = |conversations: &[RecordedConversation]| {
            self.learned_use_text(&next.best_functions, conversations)
        };
        let inputs = PromptInputs {
            role: &role,
            extra: "",
            best: &next.best_functions,
            incumbent: &start,
            actions_taken: 0,
            failures: &next.failures,
            conversations: &[],
        };
        let stored = scored;
        let load = |index: usize| self.load_one(&stored[index]);
        let groups = plan_groups(
            self.options.partitioning,
            &inputs,
            stored.len(),
            &load,
            &extra_for,
            budget,
        )?;
        let Some(groups) = groups.filter(|groups| groups.len() > 1) else {
            let conversations = self.load(stored)?;
            let extra = extra_for(&conversations);
            let prompt = |list: &[LearnedFunction], taken: usize| {
                step_prompt(&role, &extra, next, &conversations, list, taken, budget)
            };
            self.action_loop(&prompt, &conversations, budget, incumbent, round)
                .await?;
            return Ok(Vec::new());
        };
        // The groups' loops run at once (their model calls spread over the
        // replicas), at most GROUPS_AT_ONCE of them holding their conversations;
        // each is a pure function of its group, so the results, taken in group
        // order, do not depend on which answered first.
        let loops = futures::stream::iter(groups).map(|range| {
            let (role, start, extra_for) = (&role, &start, &extra_for);
            async move {
                let conversations = self.load(&stored[range.clone()])?;
                let extra = extra_for(&conversations);
                let prompt = |list: &[LearnedFunction], taken: usize| {
                    step_prompt(role, &extra, next, &conversations, list, taken, budget)
                };
                let mut functions = start.clone();
                let mut group = Round::default();
                self.action_loop(&prompt, &conversations, budget, &mut functions, &mut group)
                    .await?;
                Ok::<_, OptimizerError>((range, functions, group))
            }
        });
        let finished: Vec<_> = loops.buffered(GROUPS_AT_ONCE).try_collect().await?;
        let all_terminated = finished.iter().all(|(_, _, group)| group.terminated);
        let (mut candidates, mut reports) = (Vec::new(), Vec::new());
        for (range, functions, group) in finished {
            reports.push(group_report(stored, range, group.actions.len()));
            round.absorb(group);
            candidates.push(functions);
        }
        let candidates = candidates.into_iter().zip(&reports).collect();
        *incumbent = self
            .merge(next, scored, budget, &start, candidates, round)
            .await?;
        round.terminated = all_terminated;
        Ok(reports)
    }

    /// Merges the groups' candidate lists one at a time into the first that
    /// changed anything (a candidate equal to `start`, the list every group began
    /// from, adds nothing). Merge proposals pass the same checks as the groups'.
    async fn merge(
        &self,
        next: &OptimizerState,
        scored: &[StoredConversation],
        budget: &PromptBudget,
        start: &[LearnedFunction],
        candidates: Vec<(Vec<LearnedFunction>, &PartitionReport)>,
        round: &mut Round,
    ) -> Result<Vec<LearnedFunction>, OptimizerError> {
        let mut changed = candidates
            .into_iter()
            .filter(|(functions, _)| functions.as_slice() != start);
        let Some((mut merged, first)) = changed.next() else {
            return Ok(start.to_vec());
        };
        let statistics = if self.options.learned_use.use_statistics {
            use_statistics_text(&next.best_functions, scored)
        } else {
            String::new()
        };
        let mut merged_groups = vec![first.clone()];
        for (candidate, report) in changed {
            let candidate_groups = [report.clone()];
            let prompt = |list: &[LearnedFunction], taken: usize| {
                let mut extra = statistics.clone();
                if budget.asks_demonstrations {
                    extra.push_str(&demonstrations_text(list.iter().chain(&candidate)));
                }
                let merged_side = MergeSide {
                    functions: list,
                    groups: &merged_groups,
                };
                let candidate_side = MergeSide {
                    functions: &candidate,
                    groups: &candidate_groups,
                };
                merge_prompt(
                    &next.best_functions,
                    &next.failures,
                    &merged_side,
                    &candidate_side,
                    taken,
                    &extra,
                    budget,
                )
                .map_err(|needed| prompt_too_large(needed, budget))
            };
            let mut merge_round = Round::default();
            let merged_in = self
                .action_loop(&prompt, &[], budget, &mut merged, &mut merge_round)
                .await;
            round.absorb(merge_round);
            // Two full lists beside List A can outgrow the prompt: the merge stops
            // with what it has (every action in it validated) rather than fail the
            // step.
            if let Err(OptimizerError::PromptTooLarge { needed, .. }) = merged_in {
                tracing::warn!(
                    needed,
                    budget = budget.max_prompt_tokens,
                    "merge prompt does not fit; the remaining candidates are not merged"
                );
                break;
            }
            merged_in?;
            merged_groups.push(report.clone());
        }
        Ok(merged)
    }

    /// Asks for actions until `max_actions_per_step` are applied, the model stops
    /// calling tools, or every round is used. Proposals are tried on the arguments of
    /// `conversations`, the ones `prompt` shows (the best list's, after a roll-back
    /// too), so an error's "failing conversation N" is the prompt's "Conversation N".
    async fn action_loop(
        &self,
        prompt: &PromptFn<'_>,
        conversations: &[RecordedConversation],
        budget: &PromptBudget,
        incumbent: &mut Vec<LearnedFunction>,
        outcome: &mut Round,
    ) -> Result<(), OptimizerError> {
        let role = role_text(&self.options.example);
        for _round in 0..self.max_actions_per_step {
            let room = self.max_actions_per_step - outcome.actions.len();
            if room == 0 {
                break;
            }
            let (prompt, report) = prompt(incumbent, outcome.actions.len())?;
            outcome.prompts.push(report);
            let must_act = self.options.require_action && outcome.actions.is_empty();
            let prompt_message = ChatMessage::user(prompt);
            let mut messages = vec![prompt_message.clone()];
            let attempts = self.options.max_retries + 1;
            let mut max_tokens = self.options.reply_room_tokens;
            for attempt in 1..=attempts {
                // Numbering the attempt keeps a retry from being byte-identical to
                // the last one when the model repeats itself: a cached reply would
                // come back and the retry would be wasted.
                let attempt_note = format!(" (attempt {attempt} of {attempts})");
                let response = self
                    .model
                    .chat(self.request(messages.clone(), incumbent, must_act, max_tokens))
                    .await?;
                let reply = response.message;
                if response.finish_reason == Some(FinishReason::Length) {
                    let (rejected, retry) = cut_off(&reply, max_tokens, &attempt_note);
                    outcome.rejected.push(rejected);
                    messages = vec![prompt_message.clone(), retry];
                    let next = self.request(messages.clone(), incumbent, must_act, 0);
                    max_tokens = widened_reply_room(max_tokens, budget.context_window, &next);
                    continue;
                }
                let (rejected, feedback) = match read_reply(&reply, self.options.action_format) {
                    Proposal::Terminate => {
                        tracing::info!(reply = ?reply.content, "optimizer ended the step");
                        outcome.terminated = true;
                        return Ok(());
                    }
                    Proposal::Unreadable(error) => {
                        unreadable_feedback(&reply, error, &attempt_note)
                    }
                    Proposal::Calls(calls) => {
                        if calls.len() > room {
                            tracing::warn!(
                                proposed = calls.len(),
                                applied_at_most = room,
                                "optimizer reply holds more tool calls than actions left; the rest are ignored"
                            );
                        }
                        let considered: Vec<_> =
                            calls.iter().take(room).map(|(_, call)| call).collect();
                        let limits = CallLimits {
                            max_list_bytes: max_list_bytes(budget, &role),
                            allowed_packages: self.options.allowed_packages.as_deref(),
                            execution_checks: self.options.learned_use.execution_checks,
                            judge: self.judge.as_deref(),
                            last_attempt: attempt == attempts,
                        };
                        let mut executor = self.executor.lock().await;
                        let verdict = validate_calls(
                            &considered,
                            incumbent,
                            &limits,
                            executor.as_deref_mut(),
                            conversations,
                        )
                        .await?;
                        drop(executor);
                        let errors = match verdict {
                            Verdict::Accepted(actions) => {
                                for action in actions {
                                    action.apply(incumbent);
                                    outcome.actions.push(action);
                                }
                                break;
                            }
                            Verdict::Rejected(errors) => errors,
                        };
                        rejection_feedback(&reply, &calls, errors, room, &attempt_note)
                    }
                };
                outcome.rejected.push(rejected);
                // Only the latest rejected exchange is kept, so a retry never
                // outgrows the budget.
                messages = vec![prompt_message.clone(), reply];
                messages.extend(feedback);
            }
        }
        Ok(())
    }
}

/// Gives the trial function `name` of `state` these worked examples.
fn set_demonstrations(state: &mut OptimizerState, name: &str, examples: &[Demonstration]) {
    for slot in state.trial_functions.iter_mut().filter(|f| f.name == name) {
        slot.demonstrations = examples.to_vec();
    }
}

/// The conversation `stored` describes, its messages read through `reader` when
/// they are on disk.
fn read_stored(
    reader: &LineReader<'_>,
    stored: &StoredConversation,
) -> Result<RecordedConversation, OptimizerError> {
    match &stored.at {
        Some(at) => reader.read(at),
        None => Ok(RecordedConversation {
            messages: stored.messages.clone(),
            satisfied: stored.satisfied,
            uses: stored.uses.clone(),
        }),
    }
}

/// Reads the messages of every conversation of `stored` into memory.
fn load_inline(
    reader: &LineReader<'_>,
    stored: &mut [StoredConversation],
) -> Result<(), OptimizerError> {
    for one in stored.iter_mut().filter(|one| one.at.is_some()) {
        *one = StoredConversation::new(read_stored(reader, one)?, None);
    }
    Ok(())
}

/// The prompt of one round of a step over `conversations`, with its budget report.
fn step_prompt(
    role: &str,
    extra: &str,
    next: &OptimizerState,
    conversations: &[RecordedConversation],
    incumbent: &[LearnedFunction],
    actions_taken: usize,
    budget: &PromptBudget,
) -> Result<(String, PromptReport), OptimizerError> {
    let inputs = PromptInputs {
        role,
        extra,
        best: &next.best_functions,
        incumbent,
        actions_taken,
        failures: &next.failures,
        conversations,
    };
    let (prompt, report) =
        build_prompt(&inputs, budget).map_err(|needed| prompt_too_large(needed, budget))?;
    tracing::info!(
        budget = report.budget_tokens,
        prompt_tokens = report.prompt_tokens,
        condensed = ?report.conversations_condensed,
        omitted = ?report.conversations_omitted,
        tool_outputs_cut = report.tool_outputs_cut,
        failures_omitted = report.failures_omitted,
        "optimizer prompt built"
    );
    Ok((prompt, report))
}

/// A reply that is no action: rejected, and told why as a user message.
fn unreadable_feedback(
    reply: &ChatMessage,
    error: String,
    attempt_note: &str,
) -> (RejectedProposal, Vec<ChatMessage>) {
    tracing::info!(%error, "optimizer reply is no action; retrying with the error");
    let feedback = vec![ChatMessage::user(format!(
        "Rejected: {error}{attempt_note}"
    ))];
    let rejected = RejectedProposal::reply(reply, error);
    (rejected, feedback)
}

/// A reply whose calls were rejected: one answer per call (its error, or why it was
/// not applied), as tool results, or as one user message for a JSON action.
fn rejection_feedback(
    reply: &ChatMessage,
    calls: &[(Option<String>, agentopt_llm::FunctionCall)],
    errors: Vec<Option<String>>,
    room: usize,
    attempt_note: &str,
) -> (RejectedProposal, Vec<ChatMessage>) {
    // Expected with weak models and answered by a retry: not a warning (the step's
    // outcome counts the rejections).
    tracing::info!(
        ?errors,
        "optimizer proposal rejected; retrying with the errors"
    );
    // Errors share the feedback room (tracebacks can be long).
    let limit = (FEEDBACK_TOKENS as usize * 3 / calls.len()).max(200);
    let texts = (0..calls.len()).map(|index| {
        let text = match errors.get(index) {
            Some(Some(error)) => format!("Rejected: {error}{attempt_note}"),
            Some(None) => "Not applied: another call in this reply was rejected; send it again with the fixes.".to_owned(),
            None => format!("Not applied: at most {room} more action(s) are allowed in this step."),
        };
        cut_middle(&text, limit).unwrap_or(text)
    });
    // Tool calls get tool results; a JSON action gets its errors from the user, as no
    // tools were offered.
    let feedback: Vec<ChatMessage> = if reply.requested_calls().is_empty() {
        vec![ChatMessage::user(texts.collect::<Vec<_>>().join("\n"))]
    } else {
        texts
            .zip(calls)
            .map(|(text, (id, call))| match id {
                Some(id) => ChatMessage::tool(id.clone(), text),
                None => ChatMessage::function(call.name.clone(), text),
            })
            .collect()
    };
    let rejected = RejectedProposal {
        calls: calls
            .iter()
            .map(|(_, call)| (call.name.clone(), call.arguments.clone()))
            .collect(),
        errors,
    };
    (rejected, feedback)
}

/// What the model is told when its reply hit the token limit: without the cut
/// reply (it would take the room the retry needs), asking for a shorter one.
const CUT_OFF_ADVICE: &str = "Reply again with one complete action that is shorter: \
    shorter code and description, no comments, no explanation around it.";

/// The rejection of a reply the `max_tokens` limit cut off, and the message that
/// asks for the retry.
fn cut_off(
    reply: &ChatMessage,
    max_tokens: u32,
    attempt_note: &str,
) -> (RejectedProposal, ChatMessage) {
    let error =
        format!("your reply was cut off at the {max_tokens}-token limit before it was complete");
    tracing::info!(
        max_tokens,
        "optimizer reply cut off by the token limit; retrying with more room"
    );
    let retry = ChatMessage::user(format!("Rejected: {error}{attempt_note}. {CUT_OFF_ADVICE}"));
    let rejected = RejectedProposal::reply(reply, error);
    (rejected, retry)
}

/// `max_tokens` for the retry of a reply that was cut off at `last`: twice as much,
/// as far as the context window leaves room beside `next`'s prompt (estimated
/// conservatively), never less than `last`. The prompt budget keeps twice the reply
/// room free, so the first doubling always fits.
fn widened_reply_room(last: u32, context_window: u32, next: &ChatRequest) -> u32 {
    let prompt = estimate_prompt_tokens(&next.messages, &next.tools);
    let left = u32::try_from((context_window as usize).saturating_sub(prompt)).unwrap_or(u32::MAX);
    last.saturating_mul(2).min(left).max(last)
}
