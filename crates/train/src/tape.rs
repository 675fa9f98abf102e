//! What each optimizer step was shown and answered: the optimizer's model is
//! wrapped in a [`TapedModel`] that keeps every request and reply of the step in
//! progress, and the trainer writes them, with the step's decision, to
//! `step_details.jsonl` ([`StepDetail`]) for the HTML report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, EndpointCheck, FinishReason, LlmError,
};
use agentopt_optimizer::StepOutcome;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One request to the optimizer's model and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerExchange {
    /// The messages sent (the step prompt, and a rejected reply with its feedback on
    /// a retry).
    pub messages: Vec<ChatMessage>,
    /// The reply, when the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ChatMessage>,
    /// Why the model stopped, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The error, when the call failed after its retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One optimizer step in full, as stored in `step_details.jsonl`: what
/// [`crate::StepRecord`] counts, with the prompts, replies, actions and reasons. A
/// later line for the same epoch supersedes an earlier one (a step re-run on resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDetail {
    /// The epoch whose conversations the step read.
    pub epoch: u32,
    /// Every call to the optimizer's model during the step, in order.
    pub exchanges: Vec<OptimizerExchange>,
    /// What the step decided: accepted and rejected actions (with the errors fed
    /// back), scores, the function set after it. `None` when the step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<StepOutcome>,
    /// Why the step was skipped, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The exchanges recorded since the last [`Tape::take`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Tape(Arc<Mutex<Vec<OptimizerExchange>>>);

impl Tape {
    /// Everything recorded so far; the tape starts empty again.
    pub(crate) fn take(&self) -> Vec<OptimizerExchange> {
        std::mem::take(&mut *agentopt_core::lock(&self.0))
    }

    fn push(&self, exchange: OptimizerExchange) {
        agentopt_core::lock(&self.0).push(exchange);
    }
}

/// A model that records every chat on a [`Tape`] and otherwise is `inner`.
pub(crate) struct TapedModel {
    inner: Arc<dyn ChatModel>,
    tape: Tape,
}

impl TapedModel {
    /// `inner`, recording on `tape`.
    pub(crate) fn new(inner: Arc<dyn ChatModel>, tape: Tape) -> Self {
        Self { inner, tape }
    }
}

#[async_trait]
impl ChatModel for TapedModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let messages = request.messages.clone();
        let result = self.inner.chat(request).await;
        self.tape.push(OptimizerExchange {
            messages,
            reply: result
                .as_ref()
                .ok()
                .map(|response| response.message.clone()),
            finish_reason: result
                .as_ref()
                .ok()
                .and_then(|response| response.finish_reason),
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    async fn context_window(&self) -> Result<u32, LlmError> {
        self.inner.context_window().await
    }

    fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        self.inner.preflight(within).await
    }
}
