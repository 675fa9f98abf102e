//! The [`ChatModel`] trait that agents and the optimizer depend on.

use std::time::Duration;

use async_trait::async_trait;

use crate::{ChatMessage, ChatRequest, ChatResponse, LlmError, ToolSchema};

/// What a [`ChatModel::preflight`] check found for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCheck {
    /// The endpoint, as [`crate::EndpointConfig::label`] writes it.
    pub endpoint: String,
    /// Its context window in tokens.
    pub context_window: u32,
}

/// A chat model: one completion per call, plus what callers need to size prompts.
///
/// Implementations are cheap to share (`Arc<dyn ChatModel>`) and safe to call
/// concurrently.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Sends one chat completion request.
    ///
    /// # Errors
    /// Any [`LlmError`]: transport/HTTP failures after retries, malformed replies,
    /// budget exhaustion, context overflow.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;

    /// The model's context window in tokens (prompt plus completion). Asked of the
    /// server once where it can tell (llama.cpp `/props`, vLLM `/v1/models`), else
    /// taken from configuration or a table of known models; cached afterwards.
    ///
    /// # Errors
    /// When the server cannot be asked and nothing is configured.
    async fn context_window(&self) -> Result<u32, LlmError>;

    /// The default model name requests go to.
    fn model_name(&self) -> &str;

    /// Checks, before any conversation, what a run needs of this model: every
    /// endpoint behind it is reachable and serves its model, and its context
    /// window is known. Takes at most about `within`: no retry series, so an
    /// unreachable endpoint fails in a moment instead of after the retries of a
    /// first conversation.
    ///
    /// The default checks only the context window; [`crate::OpenAiClient`] and
    /// [`crate::ConfigListModel`] check their endpoints too.
    ///
    /// # Errors
    /// [`LlmError::Preflight`] naming the endpoint and model and what is wrong, or
    /// [`LlmError::Config`] for field `context_window` when the window is unknown
    /// (its message says where to set it).
    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        let context_window = tokio::time::timeout(within, self.context_window())
            .await
            .map_err(|_| LlmError::Preflight {
                endpoint: self.model_name().to_owned(),
                model: self.model_name().to_owned(),
                problem: format!("context window not known within {within:?}"),
            })??;
        Ok(vec![EndpointCheck {
            endpoint: self.model_name().to_owned(),
            context_window,
        }])
    }
}

/// A model that changes how another model's calls go (records them, times
/// them) and nothing else: its context window, name and preflight are the inner
/// model's. Implement this instead of [`ChatModel`], which follows, so no wrapper
/// forwards those by hand.
#[async_trait]
pub trait ChatWrapper: Send + Sync {
    /// The wrapped model.
    fn inner(&self) -> &dyn ChatModel;

    /// Answers `request`, through [`Self::inner`].
    ///
    /// # Errors
    /// What the inner model's call returns.
    async fn wrapped_chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;
}

#[async_trait]
impl<W: ChatWrapper> ChatModel for W {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.wrapped_chat(request).await
    }

    async fn context_window(&self) -> Result<u32, LlmError> {
        self.inner().context_window().await
    }

    fn model_name(&self) -> &str {
        self.inner().model_name()
    }

    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        self.inner().preflight(within).await
    }
}

/// Tokens charged per message for role markers and separators (chat templates add a
/// handful; 8 keeps the estimate on the safe side).
const TOKENS_PER_MESSAGE: usize = 8;

/// A conservative token estimate for a prompt: one token per ASCII digit and one
/// per 3 bytes of other text ([`estimate_text_tokens`]), plus per-message overhead.
/// A prompt whose estimate fits the window fits.
pub fn estimate_prompt_tokens(messages: &[ChatMessage], tools: &[ToolSchema]) -> usize {
    let message_tokens: usize = messages
        .iter()
        .map(|message| {
            let calls = message.requested_calls();
            let call_tokens: usize = calls
                .iter()
                .map(|(_, call)| {
                    estimate_text_tokens(&call.name) + estimate_text_tokens(&call.arguments)
                })
                .sum();
            message.content.as_deref().map_or(0, estimate_text_tokens)
                + message.name.as_deref().map_or(0, estimate_text_tokens)
                + call_tokens
        })
        .sum();
    let tool_tokens: usize = tools
        .iter()
        .map(|tool| serde_json::to_string(tool).map_or(0, |json| estimate_text_tokens(&json)))
        .sum();
    message_tokens + tool_tokens + TOKENS_PER_MESSAGE * (messages.len() + 1)
}

/// At least as many tokens as `text` takes: each ASCII digit one (Qwen's and
/// Llama 2's tokenizers split numbers into single digits; cl100k and Llama 3 into
/// groups of up to three), other text one per 3 bytes (BPE tokenizers average
/// 3.5–4.5 bytes per token on English and code). On the longest optimizer prompt
/// over digit-heavy MATH conversations llama.cpp counted 7,993 Qwen tokens where
/// bytes ÷ 3 alone said 6,186: a quarter of that text was digits.
pub fn estimate_text_tokens(text: &str) -> usize {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    digits + (text.len() - digits).div_ceil(3)
}
