//! AG2's config-list semantics: the entries of an `OAI_CONFIG_LIST` are tried in
//! order, and a call that one entry fails (after its own retries) goes to the next.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    ChatModel, ChatRequest, ChatResponse, ClientOptions, EndpointCheck, EndpointConfig, LlmError,
    OpenAiClient,
};

/// A [`ChatModel`] over the entries of a config list, tried in order per call.
///
/// An entry's endpoint failure ([`LlmError::is_endpoint_failure`]: HTTP error,
/// transport, timeout, malformed reply, context overflow — after that entry's
/// retries) hands the call to the next entry; the last entry's error is returned
/// when all fail. Local refusals (budget, invalid request) are returned at once.
/// [`ChatResponse::endpoint`] names the entry that answered, and a shared
/// [`crate::UsageMeter`] counts answers and failures per entry
/// ([`crate::UsageReport::by_endpoint`]).
#[derive(Clone)]
pub struct ConfigListModel {
    entries: Vec<Arc<dyn ChatModel>>,
}

impl std::fmt::Debug for ConfigListModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let models: Vec<&str> = self
            .entries
            .iter()
            .map(|entry| entry.model_name())
            .collect();
        f.debug_struct("ConfigListModel")
            .field("entries", &models)
            .finish()
    }
}

impl ConfigListModel {
    /// A model over `entries`, tried in this order.
    ///
    /// # Errors
    /// [`LlmError::Config`] when `entries` is empty.
    pub fn new(entries: Vec<Arc<dyn ChatModel>>) -> Result<Self, LlmError> {
        if entries.is_empty() {
            return Err(no_entries());
        }
        Ok(Self { entries })
    }

    /// One [`OpenAiClient`] per config (e.g. from
    /// [`crate::config::load_config_list`]), all with `options`: clones share its
    /// cache and meter; each entry has its own concurrency limit.
    ///
    /// # Errors
    /// As [`OpenAiClient::new`] for the first unusable entry, or as
    /// [`ConfigListModel::new`] when `configs` is empty.
    pub fn from_configs(
        configs: Vec<EndpointConfig>,
        options: &ClientOptions,
    ) -> Result<Self, LlmError> {
        let entries = configs
            .into_iter()
            .map(|config| {
                OpenAiClient::new(config, options.clone())
                    .map(|client| Arc::new(client) as Arc<dyn ChatModel>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(entries)
    }

    /// The entries, in the order they are tried.
    pub fn entries(&self) -> &[Arc<dyn ChatModel>] {
        &self.entries
    }
}

fn no_entries() -> LlmError {
    LlmError::Config {
        source_name: "config list".to_owned(),
        field: "(top level)".to_owned(),
        message: "no entries to try".to_owned(),
    }
}

#[async_trait]
impl ChatModel for ConfigListModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let (last, earlier) = self.entries.split_last().ok_or_else(no_entries)?;
        for (index, entry) in earlier.iter().enumerate() {
            match entry.chat(request.clone()).await {
                Err(error) if error.is_endpoint_failure() => {
                    tracing::warn!(
                        entry = index,
                        model = entry.model_name(),
                        %error,
                        "config-list entry failed; trying the next one"
                    );
                }
                result => return result,
            }
        }
        last.chat(request).await
    }

    /// The smallest window of the entries: a prompt sized for it fits whichever
    /// entry answers.
    async fn context_window(&self) -> Result<u32, LlmError> {
        smallest_window(&self.entries).await
    }

    /// The first entry's model.
    fn model_name(&self) -> &str {
        self.entries[0].model_name()
    }

    /// Checks every entry, in order, each within `within`: a fallback entry that
    /// cannot answer is a configuration mistake to fix before the run, not after
    /// the first entry fails.
    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        preflight_each(&self.entries, within).await
    }
}

/// The smallest context window of `models`: a prompt sized for it fits whichever
/// answers.
pub(crate) async fn smallest_window(models: &[Arc<dyn ChatModel>]) -> Result<u32, LlmError> {
    let mut smallest = u32::MAX;
    for model in models {
        smallest = smallest.min(model.context_window().await?);
    }
    Ok(smallest)
}

/// Every model's preflight checks, in order.
pub(crate) async fn preflight_each(
    models: &[Arc<dyn ChatModel>],
    within: Duration,
) -> Result<Vec<EndpointCheck>, LlmError> {
    let mut checks = Vec::with_capacity(models.len());
    for model in models {
        checks.extend(model.preflight(within).await?);
    }
    Ok(checks)
}
