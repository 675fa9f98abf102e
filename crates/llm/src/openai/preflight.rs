//! The preflight check of one endpoint: reachable, model served, context window
//! known. Each request retries as every later call does (429 with `Retry-After`,
//! 5xx, transport faults, under the client's [`crate::RetryPolicy`]); the whole
//! check is bounded by the caller's `within`.

use serde_json::Value;

use super::{OpenAiClient, error_chain};
use crate::config::ApiType;
use crate::{ChatMessage, ChatModel, ChatRequest, EndpointCheck, LlmError};

/// Caller label of the one-token test request, in the usage report.
const PREFLIGHT_CALLER: &str = "preflight";
/// Longest wait for one GET attempt (model list, server properties).
const GET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
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
        let response = self
            .get_retrying(&format!("{}/models", endpoint.base_url), PREFLIGHT_CALLER)
            .await
            .map_err(|error| {
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

    /// A one-token completion, retried as every call is; metered under `preflight`.
    async fn probe_chat(&self) -> Result<(), LlmError> {
        let request = ChatRequest::new(vec![ChatMessage::user("ping")])
            .with_max_tokens(1)
            .with_caller(PREFLIGHT_CALLER);
        // Not through `chat`: a cached answer would check nothing.
        let style = self.inner.endpoint.call_style;
        let response = self.send(&request, style).await.map_err(|error| {
            self.preflight_error(&format!("a one-token test request failed: {error}"))
        })?;
        if let Some(meter) = self.meter() {
            meter.record(
                &self.inner.label,
                PREFLIGHT_CALLER,
                &response.model,
                response.usage,
            )?;
        }
        Ok(())
    }

    /// `GET url` with the client's retry policy: a 429 (after its `Retry-After`), a
    /// 5xx or a transport fault is tried again, each retry metered under `caller`.
    /// The last response is returned whatever its status once the attempts are
    /// used up; only a transport fault on the last attempt is an error.
    pub(super) async fn get_retrying(
        &self,
        url: &str,
        caller: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let policy = self.inner.options.retry;
        let mut failures = 0;
        loop {
            let timeout = self.inner.options.timeout.min(GET_TIMEOUT);
            let mut request = self.inner.http.get(url).timeout(timeout);
            if let Some(key) = &self.inner.endpoint.api_key {
                request = request.bearer_auth(key.expose());
            }
            let outcome = request.send().await;
            let retry_after = match &outcome {
                Ok(response) if !is_transient_status(response.status()) => return outcome,
                Ok(response) => crate::retry::parse_retry_after(response.headers()),
                Err(_) => None,
            };
            failures += 1;
            if failures >= policy.max_attempts.max(1) {
                return outcome;
            }
            let delay = policy.delay(failures, retry_after);
            tracing::warn!(url, ?delay, "retrying a GET request");
            if let Some(meter) = self.meter()
                && let Err(error) = meter.record_retry(&self.inner.label, caller)
            {
                tracing::warn!(%error, "retry not recorded");
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// 429 or 5xx: worth another try.
fn is_transient_status(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
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
