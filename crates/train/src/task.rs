//! What a user implements: one problem, run with the current functions.

use std::collections::{BTreeMap, BTreeSet};

use agentopt_agents::{Execution, FailureKind, StopReason, Transcript};
use agentopt_core::FunctionSet;
use agentopt_sandbox::CallCounts;
use std::sync::Arc;

use agentopt_llm::{ChatMessage, ChatModel};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A kind of problem agents are trained on (MATH, your tickets, your tables …).
///
/// The [`crate::Trainer`] calls [`Task::attempt`] for every problem of every phase,
/// up to `concurrency` at once, each time with the function set in force.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    /// One problem.
    type Problem: Send + Sync;

    /// A stable id for `problem`, unique within its set: the journal checks it on
    /// resume, and before/after outcomes are paired by it.
    fn problem_id(&self, problem: &Self::Problem) -> String;

    /// The text the agents are given for `problem`, when there is one. The trainer
    /// refuses a run whose test problem has the text of a training or validation
    /// problem (case and whitespace aside), and matches the text against learned
    /// functions when it offers only the most relevant ones. `None` (the default):
    /// neither applies.
    fn problem_text(&self, _problem: &Self::Problem) -> Option<String> {
        None
    }

    /// The reference answer of `problem`, when the task has one: a worked example of
    /// a learned function on a training problem is kept only when running it gives
    /// an answer that agrees with this. `None` (the default): examples cannot be
    /// checked and are not kept.
    fn reference_answer(&self, _problem: &Self::Problem) -> Option<String> {
        None
    }

    /// Whether `answer` agrees with `reference` under the task's answer check (used
    /// on worked examples). By default: the same text, case and whitespace aside.
    async fn answers_agree(&self, answer: &str, reference: &str) -> bool {
        crate::trainer::normalized_text(answer) == crate::trainer::normalized_text(reference)
    }

    /// Runs `problem` with `functions` installed on fresh agents and says what
    /// happened. Failures of the model, the sandbox or the checker are returned as
    /// [`Outcome::Infrastructure`], never as a wrong answer.
    async fn attempt(&self, problem: &Self::Problem, functions: &FunctionSet) -> Attempt;

    /// Runs `problem` like [`Task::attempt`], except that the assistant's first reply
    /// is made to start with a call of the learned function `name` (MATH: the reply
    /// is prefilled up to ```` ```python\nprint(name( ````): how the trainer gets a
    /// worked example of a function the assistant would not call on its own
    /// ([`crate::TrainerOptions::forced_call_demonstrations`]). `None` (the
    /// default): the task cannot force a call.
    async fn attempt_calling(
        &self,
        _problem: &Self::Problem,
        _functions: &FunctionSet,
        _name: &str,
    ) -> Option<Attempt> {
        None
    }

    /// The task's own settings worth stating beside the result, as (name, value)
    /// rows of the report's setup (MATH: the function style, the answer check that
    /// drove training). None by default.
    fn report_settings(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The models the task's agents call, checked (reachable, model served,
    /// context window known) before the run's first attempt. None by default.
    fn models(&self) -> Vec<Arc<dyn ChatModel>> {
        Vec::new()
    }
}

/// What one attempt at a problem produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Solved, failed, or stopped by infrastructure.
    pub outcome: Outcome,
    /// The conversation as the assistant saw it: what the optimizer reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ChatMessage>,
    /// The answer the agents gave, if the task has one.
    #[serde(default)]
    pub answer: Option<String>,
    /// The reference answer, if the task has one.
    #[serde(default)]
    pub expected: Option<String>,
    /// Calls of learned functions, per name: as tools and from code alike.
    #[serde(default)]
    pub calls: BTreeMap<String, CallCounts>,
    /// Learned functions the conversation's code shadowed: it bound their names to
    /// its own (a `def`, an import of the same name), so it ran its own version.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub shadowed: BTreeSet<String>,
    /// Model tokens spent (prompt + completion).
    #[serde(default)]
    pub tokens: u64,
    /// Verdicts of answer checks other than the one that decided `outcome`, by the
    /// check's name (MATH: `exact` beside `symbolic`, or the reverse): the report
    /// shows the test accuracy under each beside the main one. A check that could not
    /// decide is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, bool>,
    /// The whole conversation, when the task ran agentopt agents.
    #[serde(default)]
    pub transcript: Option<Transcript>,
}

impl Attempt {
    /// An attempt with `outcome` and the assistant's `history`, nothing else known.
    pub fn new(outcome: Outcome, history: Vec<ChatMessage>) -> Self {
        Self {
            outcome,
            history,
            answer: None,
            expected: None,
            calls: BTreeMap::new(),
            shadowed: BTreeSet::new(),
            tokens: 0,
            checks: BTreeMap::new(),
            transcript: None,
        }
    }

    /// An attempt read off an agentopt conversation: the learned-function calls (tool
    /// calls, and calls made from code blocks), the functions its code shadowed and
    /// the tokens come from `transcript`, and a chat that ended on an infrastructure
    /// failure becomes [`Outcome::Infrastructure`] whatever `judged` says.
    pub fn from_transcript(
        judged: Outcome,
        history: Vec<ChatMessage>,
        transcript: Transcript,
    ) -> Self {
        let mut calls: BTreeMap<String, CallCounts> = BTreeMap::new();
        let mut shadowed = BTreeSet::new();
        for execution in transcript
            .entries
            .iter()
            .flat_map(|entry| &entry.work.executions)
        {
            match execution {
                Execution::Function(call) => {
                    calls
                        .entry(call.name.clone())
                        .or_default()
                        .add(call.success);
                }
                Execution::Code(code) => {
                    if let Some(outcome) = &code.sandbox {
                        for (name, counts) in &outcome.code_calls {
                            calls.entry(name.clone()).or_default().merge(*counts);
                        }
                        shadowed.extend(outcome.shadowed.iter().cloned());
                    }
                }
            }
        }
        let usage = transcript.totals.usage;
        Self {
            outcome: Outcome::from_stop_reason(&transcript.stop_reason).unwrap_or(judged),
            history,
            answer: None,
            expected: None,
            calls,
            shadowed,
            tokens: usage.prompt_tokens + usage.completion_tokens,
            checks: BTreeMap::new(),
            transcript: Some(transcript),
        }
    }

    /// Sets the answer and the reference.
    #[must_use]
    pub fn with_answers(mut self, answer: Option<String>, expected: Option<String>) -> Self {
        self.answer = answer;
        self.expected = expected;
        self
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The task's checker accepted the result.
    Solved,
    /// The agents finished and the checker rejected the result.
    Failed {
        /// Why, for people (the wrong answer, the limit hit …).
        reason: String,
    },
    /// Something outside the agents' control stopped the attempt: not training
    /// signal.
    Infrastructure(InfraError),
}

impl Outcome {
    /// [`Outcome::Solved`] when `solved`, else [`Outcome::Failed`] with `reason`.
    pub fn judged(solved: bool, reason: impl FnOnce() -> String) -> Self {
        if solved {
            Self::Solved
        } else {
            Self::Failed { reason: reason() }
        }
    }

    /// The outcome a chat's end imposes, if any: infrastructure failures become
    /// [`Outcome::Infrastructure`]; a conversation that outgrew the context window
    /// is the agents' failure.
    pub fn from_stop_reason(reason: &StopReason) -> Option<Self> {
        let StopReason::Error { kind, message, .. } = reason else {
            return None;
        };
        let infra = |kind| Some(Self::Infrastructure(InfraError::new(kind, message.clone())));
        match kind {
            FailureKind::ContextOverflow => Some(Self::Failed {
                reason: format!("the conversation outgrew the context window: {message}"),
            }),
            // What the agents could not classify is counted as the model's failure.
            FailureKind::Other => infra(FailureKind::Model),
            kind => infra(*kind),
        }
    }

    /// Solved.
    pub fn is_solved(&self) -> bool {
        matches!(self, Self::Solved)
    }

    /// Stopped by infrastructure.
    pub fn infrastructure(&self) -> Option<&InfraError> {
        match self {
            Self::Infrastructure(error) => Some(error),
            _ => None,
        }
    }
}

/// An infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraError {
    /// What failed.
    pub kind: FailureKind,
    /// The error, as the failing part reported it.
    pub message: String,
}

impl InfraError {
    /// An error of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
