//! The seed notebook's `MathUserProxyAgent`: poses a MATH problem, runs the
//! assistant's Python in a warm sandbox session, executes its function calls, and
//! checks its `\boxed{}` answer.

use std::sync::{Arc, Mutex, MutexGuard};

use agentopt_agents::{
    AgentError, AgentState, CodeExecution, ConversableAgent, Execution, Message, ReplyFunction,
    StopReason, TerminationAndHuman, ToolResponse, Transcript, Trigger, Turn, call_results,
    code_blocks, execute_requested_calls, strip_traceback_paths,
};
use agentopt_math::{AnswerVerdict, Lang, SymbolicChecker, check_answer, extract_code, get_answer};
use agentopt_sandbox::{CellStatus, ExecutorFactory};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::answer_check::{AnswerCheck, exact_match};

/// The seed's `PROMPTS`: the problem text is appended to it.
pub const MATH_PROMPT: &str = r#"Let's solve a math problem.
Query requirements:
You should always use the 'print' function for the output and use fractions/radical forms instead of decimals.
You can use packages like sympy to help you.
You must follow the formats below to write your code:
```python
# your code
```
If some packages are missing, you could also suggest a code to install the corresponding package.

Please follow this process:
1. Solve the problem step by step (do not over-divide the steps).
2. Take out any queries that can be asked through Python code (for example, any calculations or equations that can be calculated) and functions you know in the context of this conversation.

Please
(1) do not mix suggested Python codes and function calls in one step.
(2) You MUST remember that you don’t have a function named "python" available.

You must follow the formats below to write your Python code:
```python
# your code
```

3. Wait for me to give the results or wait for the executed results of the function call.
4. Continue if you think the result is correct. If the result is invalid or unexpected, please correct your query or reasoning.

After all the queries are run and you get the answer, put the answer in \boxed{}.

Problem:
"#;

/// The seed's `DEFAULT_REPLY`, sent when the assistant's message has no code.
pub const MATH_DEFAULT_REPLY: &str = "Continue. Please keep solving the problem until you need to query. (If you get to the answer, put it in \\boxed{}.)";

/// The seed's `MAX_CONSECUTIVE_AUTO_REPLY`.
pub const MATH_MAX_CONSECUTIVE_AUTO_REPLY: u32 = 15;

/// The seed's default agent name.
pub const MATH_AGENT_NAME: &str = "MathChatAgent";

/// Failed function-call replies in a row after which the assistant is told to stop.
pub const MAX_FUNCTION_CALL_TRIALS: u32 = 3;

/// AG2's `max_invalid_q_per_step` default in the seed.
pub const MAX_INVALID_QUERIES_PER_STEP: u32 = 3;

/// Longest execution output passed back (characters).
pub const MAX_OUTPUT_CHARS: usize = 2000;

const CORRECT_REPLY: &str = "The result is Correct. Please reply me with TERMINATE.";
const REVISE_PROMPT: &str = concat!(
    "You may make a wrong function call (It may due the arguments you provided doesn't fit the function arguments like missing required positional argument). ",
    "                    If you think this error occurs due to you make a wrong function arguments input and you could make it success, please try to call this function again using the correct arguments. ",
    "                    Otherwise, the error may be caused by the function itself. Please directly reply me with TERMINATE. We need to terminate the conversation. ",
);
const NO_OUTPUT_PRINT: &str = "No output found. Make sure you print the results.";
const NO_OUTPUT: &str = "No output found.";
const TOO_LONG: &str = "Your requested query response is too long. You might have made a mistake. Please revise your reasoning and query.";
const SAME_AS_LAST: &str =
    "\nYour query or result is same from the last, please try a new approach.";
const REVISIT: &str = "Please revisit the problem statement and your reasoning. If you think this step is correct, solve it yourself and continue the next step. Otherwise, correct this step.";
const NOT_EXECUTED: &str = "Not executed: the final answer was already checked.";
const UNKNOWN_LANGUAGE: &str = "Error: Unknown language.";
const TIMEOUT: &str = "Error: Timeout";

/// The seed's termination rule: the content contains `TERMINATE`, or it has no
/// Python block and a non-empty `\boxed{}` answer.
pub fn is_termination_msg_mathchat(message: &Message) -> bool {
    let Some(text) = message.content.as_deref() else {
        return false;
    };
    text.trim_end().contains("TERMINATE") || final_answer(text).is_some()
}

/// The `\boxed{}` answer of a message without Python code, if non-empty.
fn final_answer(text: &str) -> Option<&str> {
    let has_python = extract_code(text, false)
        .iter()
        .any(|block| block.lang == Lang::Python);
    get_answer(text).filter(|answer| !has_python && !answer.is_empty())
}

/// AG2's `_add_print_to_last_line`: wraps the last line in `print(…)` unless the
/// code prints already or the last line is an assignment (has `=`) or indented by a
/// tab. Also leaves indented, blank and comment last lines alone, which AG2 would
/// turn into syntax errors.
pub fn add_print_to_last_line(code: &str) -> String {
    if code.contains("print(") {
        return code.to_owned();
    }
    let mut lines: Vec<&str> = code.lines().collect();
    let Some(last) = lines.pop() else {
        return code.to_owned();
    };
    let trimmed = last.trim();
    if last.contains('\t')
        || last.contains('=')
        || last.starts_with(char::is_whitespace)
        || trimmed.is_empty()
        || trimmed.starts_with('#')
    {
        return code.to_owned();
    }
    let wrapped = format!("print({last})");
    lines.push(&wrapped);
    lines.join("\n")
}

#[derive(Default)]
struct MathState {
    reference: String,
    checker: Option<Arc<dyn SymbolicChecker>>,
    answer_check: AnswerCheck,
    verdict: Option<AnswerVerdict>,
    exact: Option<bool>,
    last_answer: Option<String>,
    trials_left: u32,
    end_after_failures: bool,
    last_reply: Option<String>,
    invalid_in_step: u32,
    max_invalid_per_step: u32,
}

impl MathState {
    fn reset(&mut self, reference: &str) {
        *self = Self {
            reference: reference.to_owned(),
            checker: self.checker.take(),
            answer_check: self.answer_check,
            max_invalid_per_step: self.max_invalid_per_step,
            trials_left: MAX_FUNCTION_CALL_TRIALS,
            ..Self::default()
        };
    }
}

type Shared = Arc<Mutex<MathState>>;

fn lock(shared: &Shared) -> MutexGuard<'_, MathState> {
    agentopt_core::lock(shared)
}

/// The outcome of one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathOutcome {
    /// Whether the assistant's final answer matched the reference under the proxy's
    /// [`AnswerCheck`].
    pub correct: bool,
    /// How the symbolic check judged the last final answer (`None`: no final answer
    /// was given). An undecided verdict whose checker failed is an infrastructure
    /// failure, not a wrong answer.
    #[serde(skip)]
    pub verdict: Option<AnswerVerdict>,
    /// Whether the last final answer is exactly the reference (AG2's rule; `None`: no
    /// final answer was given).
    #[serde(default)]
    pub exact: Option<bool>,
    /// The last `\boxed{}` answer the assistant gave outside a code message.
    pub answer: Option<String>,
    /// The reference answer.
    pub reference: String,
    /// Replies the assistant made (model turns).
    pub turns: usize,
    /// Failed executions (code errors, failed function calls), plus one when the
    /// chat ended on a model or sandbox error.
    pub errors: usize,
    /// The whole conversation.
    pub transcript: Transcript,
}

/// The seed's `MathUserProxyAgent`. Derefs to its [`ConversableAgent`] (for
/// `register_function`, `history`, …).
///
/// Reply chain, in order: final-result check, termination (and human) check,
/// function-call reply, code-execution reply; the default auto reply after that.
pub struct MathUserProxyAgent {
    agent: ConversableAgent,
    shared: Shared,
}

impl std::fmt::Debug for MathUserProxyAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MathUserProxyAgent")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl MathUserProxyAgent {
    /// A math proxy named `name`, running code and learned functions in sessions
    /// from `executor` (its cell timeout should be the seed's 5 s, the
    /// [`agentopt_sandbox::SandboxPolicy`] default).
    pub fn new(name: impl Into<String>, executor: Arc<dyn ExecutorFactory>) -> Self {
        let shared: Shared = Arc::new(Mutex::new(MathState {
            max_invalid_per_step: MAX_INVALID_QUERIES_PER_STEP,
            trials_left: MAX_FUNCTION_CALL_TRIALS,
            ..MathState::default()
        }));
        let mut agent = ConversableAgent::new(name)
            .with_executor(executor)
            .with_termination(is_termination_msg_mathchat)
            .with_max_consecutive_auto_reply(MATH_MAX_CONSECUTIVE_AUTO_REPLY)
            .with_default_auto_reply(MATH_DEFAULT_REPLY);
        agent.clear_replies();
        let chain: [Arc<dyn ReplyFunction>; 4] = [
            Arc::new(FinalResult(Arc::clone(&shared))),
            Arc::new(TerminationAndHuman),
            Arc::new(MathFunctionCalls(Arc::clone(&shared))),
            Arc::new(MathCode(Arc::clone(&shared))),
        ];
        for (position, function) in chain.into_iter().enumerate() {
            agent.register_reply(position, Trigger::Any, function);
        }
        Self { agent, shared }
    }

    /// Also checks answers that need algebra with `checker`.
    #[must_use]
    pub fn with_symbolic_checker(self, checker: Arc<dyn SymbolicChecker>) -> Self {
        lock(&self.shared).checker = Some(checker);
        self
    }

    /// Decides correctness (the "Correct" reply and [`MathOutcome::correct`]) with
    /// `check`; the symbolic check by default. Both checks are computed either way.
    #[must_use]
    pub fn with_answer_check(self, check: AnswerCheck) -> Self {
        lock(&self.shared).answer_check = check;
        self
    }

    /// Sets how many failed query steps are allowed before the "revisit" message.
    #[must_use]
    pub fn with_max_invalid_queries_per_step(self, limit: u32) -> Self {
        lock(&self.shared).max_invalid_per_step = limit;
        self
    }

    /// Poses `problem` to `assistant` and runs the chat; `answer` is the reference.
    /// The histories stay readable on both agents afterwards.
    pub async fn initiate_chat(
        &mut self,
        assistant: &mut ConversableAgent,
        problem: &str,
        answer: &str,
    ) -> MathOutcome {
        lock(&self.shared).reset(answer);
        let prompt = format!("{MATH_PROMPT}{problem}");
        let transcript = self.agent.initiate_chat(assistant, prompt).await;
        let (verdict, exact, check, extracted) = {
            let state = lock(&self.shared);
            let answer = state.last_answer.clone();
            (
                state.verdict.clone(),
                state.exact,
                state.answer_check,
                answer,
            )
        };
        let turns = transcript
            .entries
            .iter()
            .filter(|entry| entry.sender == assistant.name())
            .count();
        let errors = transcript.totals.failed_executions
            + usize::from(matches!(transcript.stop_reason, StopReason::Error { .. }));
        MathOutcome {
            correct: verdict
                .as_ref()
                .zip(exact)
                .is_some_and(|(verdict, exact)| check.accepts(verdict, exact)),
            verdict,
            exact,
            answer: extracted,
            reference: answer.to_owned(),
            turns,
            errors,
            transcript,
        }
    }
}

impl std::ops::Deref for MathUserProxyAgent {
    type Target = ConversableAgent;
    fn deref(&self) -> &ConversableAgent {
        &self.agent
    }
}

impl std::ops::DerefMut for MathUserProxyAgent {
    fn deref_mut(&mut self) -> &mut ConversableAgent {
        &mut self.agent
    }
}

/// The seed's `_check_final_result`: a message without Python and with a boxed
/// answer is checked against the reference, both ways; the proxy's [`AnswerCheck`]
/// decides whether it is answered "Correct".
struct FinalResult(Shared);

#[async_trait]
impl ReplyFunction for FinalResult {
    fn name(&self) -> &str {
        "check_final_result"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        let Some(message) = agent.last_message(sender).cloned() else {
            return Ok(None);
        };
        let Some(candidate) = final_answer(message.text()) else {
            return Ok(None);
        };
        let (reference, checker) = {
            let state = lock(&self.0);
            (state.reference.clone(), state.checker.clone())
        };
        let verdict = check_answer(candidate, &reference, checker.as_deref()).await;
        let exact = exact_match(candidate, &reference);
        let mut state = lock(&self.0);
        let correct = state.answer_check.accepts(&verdict, exact);
        state.verdict = Some(verdict);
        state.exact = Some(exact);
        state.last_answer = Some(candidate.to_owned());
        // Tool calls sent along with the answer must still be answered on the wire.
        let mut reply = Message::user(CORRECT_REPLY);
        reply.tool_responses = message
            .tool_calls
            .iter()
            .map(|call| ToolResponse {
                tool_call_id: call.id.clone(),
                content: NOT_EXECUTED.to_owned(),
            })
            .collect();
        Ok(correct.then_some(Turn::Reply(reply)))
    }
}

/// The seed's `generate_function_call_reply`, for legacy calls and tool calls: a
/// failure counter that counts down; after three failures in a row the assistant is
/// told to terminate, and the chat ends at its next message.
struct MathFunctionCalls(Shared);

#[async_trait]
impl ReplyFunction for MathFunctionCalls {
    fn name(&self) -> &str {
        "generate_function_call_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        if lock(&self.0).end_after_failures {
            return Ok(Some(Turn::Stop(StopReason::Ended {
                agent: agent.name().to_owned(),
                detail: format!("function calls failed {MAX_FUNCTION_CALL_TRIALS} times in a row"),
            })));
        }
        let Some(executions) = execute_requested_calls(agent, sender).await? else {
            return Ok(None);
        };
        let mut state = lock(&self.0);
        if executions.iter().all(|execution| execution.success) {
            state.trials_left = MAX_FUNCTION_CALL_TRIALS;
            return Ok(Some(Turn::Reply(call_results(&executions, |execution| {
                execution.content.clone()
            }))));
        }
        state.trials_left = state.trials_left.saturating_sub(1);
        let exhausted = state.trials_left == 0;
        if exhausted {
            state.trials_left = MAX_FUNCTION_CALL_TRIALS;
            state.end_after_failures = true;
        }
        let wrap = |error: &str| {
            if exhausted {
                format!(
                    "The func is executed failed many times. {error}. Please directly reply me with TERMINATE. We need to terminate the conversation."
                )
            } else {
                format!("The func is executed failed.{error}{REVISE_PROMPT}")
            }
        };
        let reply = match executions.as_slice() {
            // The seed answers a failed legacy call with plain text.
            [single] if single.call_id.is_none() => Message::user(wrap(&single.content)),
            // Tool calls must each be answered by a tool result.
            _ => call_results(&executions, |execution| {
                if execution.success {
                    execution.content.clone()
                } else {
                    wrap(&execution.content)
                }
            }),
        };
        Ok(Some(Turn::Reply(reply)))
    }
}

/// AG2's `_generate_math_reply`: runs the Python blocks in the warm session.
struct MathCode(Shared);

#[async_trait]
impl ReplyFunction for MathCode {
    fn name(&self) -> &str {
        "generate_math_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        let Some(text) = agent.last_message(sender).and_then(|m| m.content.clone()) else {
            return Ok(None);
        };
        let Some(blocks) = code_blocks(&text) else {
            return Ok(None);
        };
        let mut reply = String::new();
        let mut all_success = true;
        for (lang, code) in blocks {
            let execution = if lang == Lang::Python {
                self.execute_python(agent, &code).await?
            } else {
                CodeExecution {
                    lang: lang.to_string(),
                    code,
                    success: false,
                    output: UNKNOWN_LANGUAGE.to_owned(),
                    sandbox: None,
                }
            };
            reply.push_str(&execution.output);
            reply.push('\n');
            all_success &= execution.success;
            agent.record_execution(Execution::Code(execution));
        }
        let mut reply = reply.trim().to_owned();
        let mut state = lock(&self.0);
        if state.last_reply.as_deref() == Some(reply.as_str()) {
            reply.push_str(SAME_AS_LAST);
            return Ok(Some(Turn::Reply(Message::user(reply))));
        }
        state.last_reply = Some(reply.clone());
        if !all_success {
            state.invalid_in_step += 1;
            if state.invalid_in_step > state.max_invalid_per_step {
                state.invalid_in_step = 0;
                reply = REVISIT.to_owned();
            }
        }
        Ok(Some(Turn::Reply(Message::user(reply))))
    }
}

impl MathCode {
    /// AG2's `execute_one_python_code`, on a warm session: earlier cells are not
    /// re-run, except to rebuild the state after a timeout or crash killed the worker.
    async fn execute_python(
        &self,
        agent: &mut AgentState,
        code: &str,
    ) -> Result<CodeExecution, AgentError> {
        let code = add_print_to_last_line(&code.replace("; ", "\n").replace(';', "\n"));
        let replay = agent.restore_lost_state().await?;
        let outcome = agent.run_cell(&code).await?;
        let (mut output, mut success) = match &outcome.status {
            CellStatus::Completed if outcome.stdout.is_empty() => {
                if code.contains("print") {
                    (NO_OUTPUT.to_owned(), true)
                } else {
                    (NO_OUTPUT_PRINT.to_owned(), false)
                }
            }
            CellStatus::Completed => (outcome.stdout.clone(), true),
            CellStatus::TimedOut => (TIMEOUT.to_owned(), false),
            CellStatus::Raised { traceback } => (
                format!("Error: {}", strip_traceback_paths(traceback)),
                false,
            ),
            CellStatus::Crashed { reason } => (format!("Error: {reason}"), false),
        };
        if output.chars().count() > MAX_OUTPUT_CHARS {
            output = TOO_LONG.to_owned();
            success = false;
        }
        if let Some(note) = replay.and_then(|replay| replay.failure_note()) {
            output = format!("{note}\n{output}");
        }
        Ok(CodeExecution {
            lang: "python".to_owned(),
            code,
            success,
            output,
            sandbox: Some(outcome),
        })
    }
}
