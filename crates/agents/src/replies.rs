//! AG2's built-in reply functions, in their default order.

use agentopt_math::{Lang, extract_code, infer_lang};
use async_trait::async_trait;

use crate::agent::{AgentState, HumanInputMode, ReplyFunction, Turn, strip_traceback_paths};
use crate::functions::FunctionExecution;
use crate::message::ToolResponse;
use crate::transcript::{CodeExecution, Execution, StopReason};
use crate::{AgentError, Message};

/// AG2's `check_termination_and_human_reply`: stops at the auto-reply limit or on a
/// termination message, asks the human when the mode says so, else counts one more
/// automatic reply and lets the chain continue.
///
/// A building block for custom proxies: register it where the termination and
/// auto-reply checks belong in the chain (AG2 puts it before the function-call and
/// code replies). It reads the agent's termination predicate, auto-reply limit and
/// human-input mode, so those builder settings keep working in a custom chain.
/// Registered under the name `check_termination_and_human_reply`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminationAndHuman;

#[async_trait]
impl ReplyFunction for TerminationAndHuman {
    fn name(&self) -> &str {
        "check_termination_and_human_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        let Some(message) = agent.last_message(sender).cloned() else {
            return Ok(None);
        };
        let limit = agent.max_consecutive_auto_reply();
        let at_limit = *agent.auto_reply_count(sender) >= limit;
        let terminating = agent.is_termination(&message);
        let (mode, human) = agent.human();
        let ask = |prompt: String| {
            let human = human.clone();
            async move {
                match human {
                    Some(human) => human.ask(&prompt).await,
                    None => String::new(),
                }
            }
        };
        let stop_prompt = format!(
            "Please give feedback to {sender}. Press enter or type 'exit' to stop the conversation: "
        );
        let mut stop = None;
        let answer = match mode {
            HumanInputMode::Always => {
                let answer = ask(stop_prompt).await;
                if answer.is_empty() && terminating {
                    stop = Some(StopReason::Terminated {
                        agent: agent.name().to_owned(),
                    });
                }
                answer
            }
            HumanInputMode::Never if at_limit => {
                stop = Some(StopReason::MaxAutoReplies {
                    agent: agent.name().to_owned(),
                    limit,
                });
                String::new()
            }
            HumanInputMode::Never if terminating => {
                stop = Some(StopReason::Terminated {
                    agent: agent.name().to_owned(),
                });
                String::new()
            }
            HumanInputMode::Terminate if at_limit || terminating => {
                let prompt = if terminating {
                    stop_prompt
                } else {
                    format!(
                        "Please give feedback to {sender}. Press enter to skip and use auto-reply, or type 'exit' to stop the conversation: "
                    )
                };
                let answer = ask(prompt).await;
                if answer.is_empty() && terminating {
                    stop = Some(StopReason::Terminated {
                        agent: agent.name().to_owned(),
                    });
                }
                answer
            }
            HumanInputMode::Never | HumanInputMode::Terminate => String::new(),
        };
        if answer == "exit" {
            stop = Some(StopReason::HumanExit {
                agent: agent.name().to_owned(),
            });
        }
        if let Some(reason) = stop {
            *agent.auto_reply_count(sender) = 0;
            return Ok(Some(Turn::Stop(reason)));
        }
        if !answer.is_empty() || limit == 0 {
            *agent.auto_reply_count(sender) = 0;
            return Ok(Some(Turn::Reply(human_reply(&message, answer))));
        }
        *agent.auto_reply_count(sender) += 1;
        Ok(None)
    }
}

/// A human's answer; calls the model was waiting on are answered "USER INTERRUPTED"
/// in the tool results, as AG2 does.
fn human_reply(message: &Message, answer: String) -> Message {
    let mut reply = Message::user(answer);
    reply.tool_responses = message
        .tool_calls
        .iter()
        .map(|call| ToolResponse {
            tool_call_id: call.id.clone(),
            content: "USER INTERRUPTED".to_owned(),
        })
        .collect();
    reply
}

/// Executes every call (legacy `function_call` and `tool_calls`) that `sender`'s
/// last message requests, through the agent's function map, and records each in
/// the transcript. `None` when that message requests no call.
///
/// A failing call is not an error: its [`FunctionExecution`] has `success: false`
/// and the error text as `content`, for the model to read. Answer the calls with
/// [`call_results`].
///
/// # Errors
/// Only what ends the chat: the sandbox could not run a learned function at all.
pub async fn execute_requested_calls(
    agent: &mut AgentState,
    sender: &str,
) -> Result<Option<Vec<FunctionExecution>>, AgentError> {
    let Some(message) = agent.last_message(sender).cloned() else {
        return Ok(None);
    };
    if !message.requests_calls() {
        return Ok(None);
    }
    let mut executions = Vec::new();
    if let Some(call) = &message.function_call {
        executions.push(agent.execute_call(call, None).await?);
    }
    for call in &message.tool_calls {
        executions.push(agent.execute_call(&call.function, Some(&call.id)).await?);
    }
    for execution in &executions {
        agent.record_execution(Execution::Function(execution.clone()));
    }
    Ok(Some(executions))
}

/// The reply carrying call results: tool results for `tool_calls` (one per call, by
/// id, as the OpenAI wire format requires), a function result for a legacy call.
/// `content` maps each execution to the text sent back, so a proxy can add its own
/// wording (AG2's MathChat wraps failures in advice).
pub fn call_results(
    executions: &[FunctionExecution],
    content: impl Fn(&FunctionExecution) -> String,
) -> Message {
    match executions {
        [single] if single.call_id.is_none() => {
            Message::function_result(&single.name, content(single))
        }
        _ => Message::tool_results(
            executions
                .iter()
                .map(|execution| ToolResponse {
                    tool_call_id: execution.call_id.clone().unwrap_or_default(),
                    content: content(execution),
                })
                .collect(),
        ),
    }
}

/// AG2's `generate_function_call_reply` and `generate_tool_calls_reply`: runs the
/// requested calls through the function map.
pub(crate) struct FunctionCalls;

#[async_trait]
impl ReplyFunction for FunctionCalls {
    fn name(&self) -> &str {
        "generate_function_call_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        let Some(executions) = execute_requested_calls(agent, sender).await? else {
            return Ok(None);
        };
        Ok(Some(Turn::Reply(call_results(&executions, |execution| {
            execution.content.clone()
        }))))
    }
}

/// The fenced code blocks of a message's text with their languages (an untagged
/// block's language inferred from its code, as AG2 does), or `None` when it has no
/// code: no fenced block at all, or, as AG2 compares the language with
/// `"unknown"`, one block fenced ```` ```unknown ````. Run the Python ones with
/// [`AgentState::run_cell`] and record them with [`AgentState::record_execution`].
///
/// ```
/// use agentopt_agents::{Lang, code_blocks};
///
/// let blocks = code_blocks("Let me check.\n```python\nprint(6 * 7)\n```");
/// assert_eq!(blocks, Some(vec![(Lang::Python, "print(6 * 7)".to_owned())]));
/// assert_eq!(code_blocks("No code here."), None);
/// ```
pub fn code_blocks(text: &str) -> Option<Vec<(Lang, String)>> {
    let blocks = extract_code(text, false);
    if matches!(blocks.as_slice(), [only] if only.lang.as_str() == Lang::Unknown.as_str()) {
        return None;
    }
    let blocks = blocks.into_iter().map(|block| {
        let lang = match block.lang {
            Lang::Untagged => infer_lang(&block.code),
            other => other,
        };
        (lang, block.code)
    });
    Some(blocks.collect())
}

/// AG2's `generate_code_execution_reply`: runs the code blocks of the last message
/// in the executor session and reports `exitcode: N (…)\nCode output: …`.
pub(crate) struct CodeBlocks;

#[async_trait]
impl ReplyFunction for CodeBlocks {
    fn name(&self) -> &str {
        "generate_code_execution_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        if !agent.has_executor() {
            return Ok(None);
        }
        let Some(text) = agent.last_message(sender).and_then(|m| m.content.clone()) else {
            return Ok(None);
        };
        let Some(blocks) = code_blocks(&text) else {
            return Ok(None);
        };
        let mut logs = String::new();
        if let Some(note) = agent
            .restore_lost_state()
            .await?
            .and_then(|replay| replay.failure_note())
        {
            logs.push('\n');
            logs.push_str(&note);
        }
        let mut exit_code = 0;
        for (lang, code) in blocks {
            let (exit, output, sandbox) = if lang == Lang::Python {
                let outcome = agent.run_cell(&code).await?;
                let output = match outcome.error_text() {
                    None => outcome.stdout.clone(),
                    Some(error) => strip_traceback_paths(&error),
                };
                (i32::from(!outcome.succeeded()), output, Some(outcome))
            } else {
                (1, format!("unknown language {lang}"), None)
            };
            agent.record_execution(Execution::Code(CodeExecution {
                lang: lang.to_string(),
                code,
                success: exit == 0,
                output: output.clone(),
                sandbox,
            }));
            logs.push('\n');
            logs.push_str(&output);
            exit_code = exit;
            if exit != 0 {
                break;
            }
        }
        let verdict = if exit_code == 0 {
            "execution succeeded"
        } else {
            "execution failed"
        };
        Ok(Some(Turn::Reply(agent.text_reply(format!(
            "exitcode: {exit_code} ({verdict})\nCode output: {logs}"
        )))))
    }
}

/// AG2's `generate_oai_reply`: asks the agent's model.
pub(crate) struct ModelReply;

#[async_trait]
impl ReplyFunction for ModelReply {
    fn name(&self) -> &str {
        "generate_oai_reply"
    }

    async fn reply(
        &self,
        agent: &mut AgentState,
        sender: &str,
    ) -> Result<Option<Turn>, AgentError> {
        Ok(agent.ask_model(sender).await?.map(Turn::Reply))
    }
}
