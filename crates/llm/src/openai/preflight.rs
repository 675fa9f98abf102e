//! The preflight check of one endpoint: reachable, model served, context window
//! known. One request per question, no retry series: its time is bounded by the
//! caller's `within`.

use serde_json::Value;

use super::{OpenAiClient, error_chain, to_wire};
use crate::config::ApiType;
use crate::{ChatMessage, ChatModel, ChatRequest, EndpointCheck, LlmError, Usage};

/// Caller label of the one-token test request, in the usage report.
const PREFLIGHT_CALLER: &str = "preflight";
/// Served models named in a "not served" error before the list is cut short.
const MODELS_SHOWN: usize = 10;

impl OpenAiClient {
    /// Reachability, the model, then the context window.
    pub(super) async fn check_endpoint(&self) -> Result<EndpointCheck, LlmError> {
        self.check_model_served().await?;
        let context_window = self.context_window().await?;
        Ok(EndpointCheck {
            endpoint: self.inner.label.clone(),
            context_window,
        })
    }

    /// [`LlmError::Preflight`] for this endpoint.
    pub(super) fn preflight_error(&self, problem: &str) -> LlmError {
        LlmError::Preflight {
            endpoint: self.inner.endpoint.base_url.clone(),
            model: self.inner.endpoint.model.clone(),
            problem: self.redact(problem),
        }
    }

    /// Asks `GET …/models` whether the model is served; a server that does not
    /// list its models (Azure, some proxies) gets a one-token chat request instead.
    async fn check_model_served(&self) -> Result<(), LlmError> {
        let endpoint = &self.inner.endpoint;
        if endpoint.api_type == ApiType::Azure {
            return self.probe_chat().await;
        }
        let mut request = self.inner.http.get(format!("{}/models", endpoint.base_url));
        if let Some(key) = &endpoint.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|error| {
            self.preflight_error(&format!("unreachable: {}", error_chain(&error)))
        })?;
        let status = response.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            let body = response.text().await.unwrap_or_default();
            return Err(self.preflight_error(&format!(
                "the server refused the API key (HTTP {}): {body}",
                status.as_u16()
            )));
        }
        let served = if status.is_success() {
            response.json::<Value>().await.ok().and_then(served_models)
        } else {
            None
        };
        match served {
            Some(models) if models.contains(&endpoint.model) => Ok(()),
            Some(models) => Err(self.preflight_error(&format!(
                "the model is not served; the server lists {}",
                shown(&models)
            ))),
            None => self.probe_chat().await,
        }
    }

    /// One attempt of a one-token completion; metered under `preflight`.
    async fn probe_chat(&self) -> Result<(), LlmError> {
        let endpoint = &self.inner.endpoint;
        let request = ChatRequest::new(vec![ChatMessage::user("ping")])
            .with_max_tokens(1)
            .with_caller(PREFLIGHT_CALLER);
        let wire_request = to_wire(&request, &endpoint.model, endpoint.call_style)?;
        let response = self.attempt(wire_request).await.map_err(|(error, _)| {
            self.preflight_error(&format!("a one-token test request failed: {error}"))
        })?;
        if let (Some(meter), Some(usage)) = (self.meter(), response.usage.as_ref()) {
            let usage = Usage {
                prompt_tokens: u64::from(usage.prompt_tokens),
                completion_tokens: u64::from(usage.completion_tokens),
            };
            meter.record(&self.inner.label, PREFLIGHT_CALLER, &response.model, usage);
        }
        Ok(())
    }
}

/// The model ids of an OpenAI-style `{"data": [{"id": …}, …]}` list.
fn served_models(list: Value) -> Option<Vec<String>> {
    let models = list
        .get("data")?
        .as_array()?
        .iter()
        .filter_map(|model| model.get("id")?.as_str().map(str::to_owned))
        .collect();
    Some(models)
}

fn shown(models: &[String]) -> String {
    let mut text = models
        .iter()
        .take(MODELS_SHOWN)
        .map(|model| format!("{model:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if models.len() > MODELS_SHOWN {
        text.push_str(&format!(" and {} more", models.len() - MODELS_SHOWN));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}
