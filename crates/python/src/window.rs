//! A context window for every endpoint AG2 accepts: where neither the server, the
//! config nor the table of known models gives one, a stated default
//! ([`DEFAULT_CONTEXT_WINDOW`]) with a `UserWarning`, and the real limit learned from
//! the server's context-overflow error when one comes (AG2 does not size prompts,
//! so it never refuses such an endpoint; neither may agentopt).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use agentopt_llm::{ChatModel, ChatRequest, ChatResponse, EndpointCheck, LlmError};
use async_trait::async_trait;

use crate::warnings::warn;

/// The window assumed for an endpoint that does not tell its own: what most
/// hosted chat models of the last years offer at least. A smaller real limit is
/// learned from the first overflow error.
pub(crate) const DEFAULT_CONTEXT_WINDOW: u32 = 32_768;

/// The smallest window an overflow may teach (below it no optimizer prompt fits).
const SMALLEST_LEARNED_WINDOW: u32 = 2_048;

/// How many times learning a smaller window happened, across one model's entries:
/// a step that failed on an overflow is worth running again only after it grew.
#[derive(Debug, Default)]
pub(crate) struct WindowLessons(AtomicU64);

impl WindowLessons {
    /// The count now.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One endpoint's model, with the fallback and learned context window.
pub(crate) struct WindowedModel {
    inner: Arc<dyn ChatModel>,
    /// 0 while nothing was learned.
    learned: AtomicU32,
    warned: AtomicBool,
    lessons: Arc<WindowLessons>,
}

impl WindowedModel {
    /// `inner`, its lessons counted in `lessons`.
    pub(crate) fn new(inner: Arc<dyn ChatModel>, lessons: Arc<WindowLessons>) -> Self {
        Self {
            inner,
            learned: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            lessons,
        }
    }

    /// The inner model's window, or the default (warned once) when it has none.
    async fn known_or_default(&self) -> Result<u32, LlmError> {
        match self.inner.context_window().await {
            Err(LlmError::Config { field, .. }) if field == "context_window" => {
                if !self.warned.swap(true, Ordering::AcqRel) {
                    warn(&format!(
                        "agentopt: model {:?} does not report its context window and is not in \
                         agentopt's table of known models; assuming {DEFAULT_CONTEXT_WINDOW} tokens \
                         (a smaller limit is learned from the server's first context-overflow \
                         error). Pass context_window=N to set it.",
                        self.inner.model_name()
                    ));
                }
                Ok(DEFAULT_CONTEXT_WINDOW)
            }
            other => other,
        }
    }

    /// Learns the limit an overflow error states (or half the window in use when
    /// it states none).
    async fn learn_from_overflow(&self, body: &str) {
        let current = match self.learned.load(Ordering::Acquire) {
            0 => self
                .known_or_default()
                .await
                .unwrap_or(DEFAULT_CONTEXT_WINDOW),
            learned => learned,
        };
        let stated = stated_limit(body).filter(|limit| *limit < current);
        let limit = stated
            .unwrap_or(current / 2)
            .max(SMALLEST_LEARNED_WINDOW)
            .min(current);
        if limit >= current {
            return;
        }
        self.learned.store(limit, Ordering::Release);
        self.lessons.0.fetch_add(1, Ordering::AcqRel);
        warn(&format!(
            "agentopt: model {:?} refused a prompt as too long for its context window; \
             {} {limit} tokens from now on",
            self.inner.model_name(),
            if stated.is_some() {
                "the server states"
            } else {
                "assuming"
            }
        ));
    }
}

/// The token limit an overflow error body states: OpenAI's and vLLM's "maximum
/// context length is N tokens", llama.cpp's `"n_ctx": N`.
fn stated_limit(body: &str) -> Option<u32> {
    let number_after = |marker: &str| {
        let start = body.find(marker)? + marker.len();
        let digits: String = body[start..]
            .trim_start_matches([' ', '"', ':'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u32>().ok().filter(|limit| *limit > 0)
    };
    number_after("maximum context length is")
        .or_else(|| number_after("\"n_ctx\""))
        .or_else(|| number_after("context window of"))
}

#[async_trait]
impl ChatModel for WindowedModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let result = self.inner.chat(request).await;
        if let Err(LlmError::ContextOverflow { body, .. }) = &result {
            self.learn_from_overflow(body).await;
        }
        result
    }

    async fn context_window(&self) -> Result<u32, LlmError> {
        match self.learned.load(Ordering::Acquire) {
            0 => self.known_or_default().await,
            learned => Ok(learned),
        }
    }

    fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    /// The inner checks; an unknown window is not a failure here either.
    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        match self.inner.preflight(within).await {
            Err(LlmError::Config { field, .. }) if field == "context_window" => {
                Ok(vec![EndpointCheck {
                    endpoint: self.inner.model_name().to_owned(),
                    context_window: self.known_or_default().await?,
                }])
            }
            other => other,
        }
    }
}
