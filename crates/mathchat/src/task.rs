//! MATH as a [`Task`]: one problem is one seed-notebook conversation between a
//! fresh assistant holding the functions and a fresh [`MathUserProxyAgent`].

use std::sync::Arc;

use agentopt_agents::{
    AssistantAgent, DemonstrationPlacement, FunctionStyle, Message, ReplyPrefill,
    demonstrations_prompt, install_styled,
};
use agentopt_core::FunctionSet;
use agentopt_llm::{ChatModel, ChatRequest};
use agentopt_math::{AnswerVerdict, UndecidedReason};
use agentopt_sandbox::ExecutorFactory;
use agentopt_train::{Attempt, FailureKind, InfraError, Outcome, Task};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    AnswerCheck, MATH_AGENT_NAME, MathOutcome, MathUserProxyAgent, Problem, SandboxSymbolicChecker,
};

/// The assistant's name (and its caller label in the usage report).
pub const ASSISTANT_NAME: &str = "assistant";

/// The assistant's system message in the seed notebook.
pub const ASSISTANT_SYSTEM_MESSAGE: &str = "You are a helpful assistant.";

/// Bounds on the assistant and how it gets the learned functions; the default
/// (all `None`, tools) is the seed's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MathTaskOptions {
    /// How the learned functions reach the assistant: as tools (AG2), callable from
    /// its code blocks, or both.
    pub function_style: FunctionStyle,
    /// The answer check that decides solved or not (and so drives training); the
    /// other one is reported beside it in [`Attempt::checks`].
    pub answer_check: AnswerCheck,
    /// `max_tokens` of each assistant reply.
    pub max_reply_tokens: Option<u32>,
    /// Sampling seed sent with every assistant request.
    pub sampling_seed: Option<i64>,
    /// The assistant's consecutive auto-reply limit.
    pub max_turns: Option<u32>,
    /// The start of the assistant's replies (e.g. ```` ```python ```` so that a small
    /// model writes code); `None`: AG2's request.
    pub reply_prefill: Option<ReplyPrefill>,
    /// Texts that end an assistant reply (the request's `stop`), e.g.
    /// ```` ```output ````: a small model writes the output it imagines after its
    /// code and answers from it; stopped there, it waits for the real output.
    /// Empty: AG2's request.
    pub reply_stop: Vec<String>,
    /// Where the functions' worked examples go (off: AG2's messages).
    pub demonstrations: DemonstrationPlacement,
}

/// The MATH task: the seed notebook's agents, answers checked with strings,
/// numbers and sympy.
pub struct MathTask {
    model: Arc<dyn ChatModel>,
    sessions: Arc<dyn ExecutorFactory>,
    checker: Arc<SandboxSymbolicChecker>,
    options: MathTaskOptions,
}

impl MathTask {
    /// Conversations ask `model` and run code in `sessions`; the symbolic checker
    /// keeps a session of its own from `checker_sessions` (taken from a capped
    /// `sessions`, a conversation waiting on its answer check could wait for itself).
    pub fn new(
        model: Arc<dyn ChatModel>,
        sessions: Arc<dyn ExecutorFactory>,
        checker_sessions: Arc<dyn ExecutorFactory>,
    ) -> Self {
        Self {
            model,
            sessions,
            checker: Arc::new(SandboxSymbolicChecker::new(checker_sessions)),
            options: MathTaskOptions::default(),
        }
    }

    /// Bounds the assistant.
    #[must_use]
    pub fn with_options(mut self, options: MathTaskOptions) -> Self {
        self.options = options;
        self
    }

    /// A fresh assistant as the seed builds it, with the bounds applied,
    /// `examples` after its system message and its replies started by `prefill`.
    fn assistant(&self, examples: &str, prefill: Option<ReplyPrefill>) -> AssistantAgent {
        let template = ChatRequest {
            max_tokens: self.options.max_reply_tokens,
            seed: self.options.sampling_seed,
            stop: self.options.reply_stop.clone(),
            ..ChatRequest::new(Vec::new()).with_caller(ASSISTANT_NAME)
        };
        let max_turns = self.options.max_turns;
        let system_message = if examples.is_empty() {
            ASSISTANT_SYSTEM_MESSAGE.to_owned()
        } else {
            format!("{ASSISTANT_SYSTEM_MESSAGE}\n\n{examples}")
        };
        AssistantAgent::new(ASSISTANT_NAME, Arc::clone(&self.model))
            .with_system_message(system_message)
            .configure(|agent| {
                let agent = agent
                    .with_request_template(template)
                    .with_reply_prefill(prefill);
                match max_turns {
                    Some(turns) => agent.with_max_consecutive_auto_reply(turns),
                    None => agent,
                }
            })
    }
}

#[async_trait]
impl Task for MathTask {
    type Problem = Problem;

    fn problem_id(&self, problem: &Problem) -> String {
        problem.id.clone()
    }

    fn problem_text(&self, problem: &Problem) -> Option<String> {
        Some(problem.question.clone())
    }

    fn reference_answer(&self, problem: &Problem) -> Option<String> {
        Some(problem.answer.clone())
    }

    /// The check that drives training ([`AnswerCheck::accepts`]); a printed answer
    /// is taken as it is or boxed.
    async fn answers_agree(&self, answer: &str, reference: &str) -> bool {
        let answer = agentopt_math::get_answer(answer).unwrap_or(answer).trim();
        let checker: &dyn agentopt_math::SymbolicChecker = &*self.checker;
        let verdict = agentopt_math::check_answer(answer, reference, Some(checker)).await;
        let exact = crate::exact_match(answer, reference);
        self.options.answer_check.accepts(&verdict, exact)
    }

    fn report_settings(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            (
                "function style".to_owned(),
                self.options.function_style.to_string(),
            ),
            (
                "answer check (drives training)".to_owned(),
                self.options.answer_check.to_string(),
            ),
        ];
        if let Some(prefill) = &self.options.reply_prefill {
            let scope = if prefill.every_reply {
                "every reply"
            } else {
                "first reply"
            };
            rows.push((
                "reply prefill".to_owned(),
                format!("{:?} ({scope})", prefill.text),
            ));
        }
        if !self.options.reply_stop.is_empty() {
            rows.push((
                "reply stops at".to_owned(),
                format!("{:?}", self.options.reply_stop),
            ));
        }
        if self.options.demonstrations != DemonstrationPlacement::Off {
            let placement = self.options.demonstrations.to_string();
            rows.push(("worked examples shown".to_owned(), placement));
        }
        rows
    }

    async fn attempt(&self, problem: &Problem, functions: &FunctionSet) -> Attempt {
        let prefill = self.options.reply_prefill.clone();
        self.converse(problem, functions, prefill).await
    }

    /// In the code styles, the first reply is prefilled up to the call,
    /// ```` ```python\nprint(name( ````: the model only writes the arguments and
    /// what follows. As tools there is no call to start, and `None`.
    async fn attempt_calling(
        &self,
        problem: &Problem,
        functions: &FunctionSet,
        name: &str,
    ) -> Option<Attempt> {
        if self.options.function_style == FunctionStyle::Tools {
            return None;
        }
        let prefill = ReplyPrefill::first_reply(format!("```python\nprint({name}("));
        Some(self.converse(problem, functions, Some(prefill)).await)
    }
}

impl MathTask {
    /// One seed-notebook conversation on `problem` with `functions` installed and
    /// the assistant's replies started by `prefill`.
    async fn converse(
        &self,
        problem: &Problem,
        functions: &FunctionSet,
        prefill: Option<ReplyPrefill>,
    ) -> Attempt {
        let style = self.options.function_style;
        let examples = match self.options.demonstrations {
            DemonstrationPlacement::Off => String::new(),
            _ => demonstrations_prompt(functions.functions(), style),
        };
        let (in_system, in_first_message) = match self.options.demonstrations {
            DemonstrationPlacement::SystemMessage => (examples.as_str(), ""),
            DemonstrationPlacement::FirstMessage => ("", examples.as_str()),
            DemonstrationPlacement::Off => ("", ""),
        };
        let mut assistant = self.assistant(in_system, prefill);
        let check = self.options.answer_check;
        let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, Arc::clone(&self.sessions))
            .with_symbolic_checker(self.checker.clone())
            .with_answer_check(check)
            .with_examples(in_first_message);
        if let Err(error) = install_styled(&mut assistant, &mut proxy, functions, style) {
            let error = InfraError::new(FailureKind::Sandbox, error.to_string());
            return Attempt::new(Outcome::Infrastructure(error), Vec::new());
        }
        let outcome = proxy
            .initiate_chat(&mut assistant, &problem.question, &problem.answer)
            .await;
        let history = assistant
            .history(proxy.name())
            .iter()
            .flat_map(Message::to_chat_messages)
            .collect();
        let judged = judge(&outcome, check);
        let other = verdict(&outcome, check.other()).map(|verdict| verdict.is_solved());
        let answers = (outcome.answer.clone(), Some(outcome.reference.clone()));
        let mut attempt = Attempt::from_transcript(judged, history, outcome.transcript)
            .with_answers(answers.0, answers.1);
        attempt
            .checks
            .extend(other.map(|solved| (check.other().to_string(), solved)));
        attempt
    }
}

/// Solved, failed, or — when the symbolic checker itself failed on the final answer
/// it was to decide — an infrastructure error.
fn judge(outcome: &MathOutcome, check: AnswerCheck) -> Outcome {
    verdict(outcome, check).unwrap_or_else(Outcome::Infrastructure)
}

/// `check`'s verdict on the outcome's final answer; `Err` when the symbolic checker
/// failed on it.
fn verdict(outcome: &MathOutcome, check: AnswerCheck) -> Result<Outcome, InfraError> {
    let (Some(verdict), Some(exact)) = (&outcome.verdict, outcome.exact) else {
        return Ok(Outcome::Failed {
            reason: "no final \\boxed{} answer".to_owned(),
        });
    };
    if let (
        AnswerCheck::Symbolic,
        AnswerVerdict::Undecided(UndecidedReason::CheckerFailed(reason)),
    ) = (check, verdict)
    {
        return Err(InfraError::new(
            FailureKind::CheckerUndecided,
            reason.clone(),
        ));
    }
    Ok(Outcome::judged(check.accepts(verdict, exact), || {
        format!(
            "answered {:?}, expected {:?}",
            outcome.answer.as_deref().unwrap_or_default(),
            outcome.reference
        )
    }))
}
