//! The OpenAI-dialect provider (OpenAI, Azure OpenAI, any OpenAI-compatible server)
//! over async-openai. async-openai types stay in this module.
//!
//! async-openai's own transport retries and hides response headers, so the client is
//! built with a custom tower service (`middleware` feature): it performs the HTTP
//! call with our reqwest client and turns every non-success status into an
//! [`HttpFailure`] that keeps the status, the raw body and `Retry-After`. Retries,
//! timeouts and the concurrency limit are then ours, around each `create` call.

mod preflight;

use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::{AzureConfig, Config, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat as wire;
use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use crate::config::{ApiType, EndpointConfig, redact};
use crate::lenient::{recover_tool_calls, recovered_finish_reason};
use crate::{
    CallStyle, ChatMessage, ChatModel, ChatRequest, ChatResponse, EndpointCheck, FinishReason,
    FunctionCall, LlmError, ResponseCache, ResponseFormat, RetryPolicy, Role, ToolCall, ToolChoice,
    Usage, UsageMeter,
};

/// Transport settings and shared services for an [`OpenAiClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Retry timing for transient failures.
    pub retry: RetryPolicy,
    /// Limit on one attempt, from sending to the last byte of the reply.
    pub timeout: Duration,
    /// Requests in flight at once to this endpoint, across all clones.
    pub max_concurrency: usize,
    /// Response cache, if any.
    pub cache: Option<ResponseCache>,
    /// Usage meter (and budget), if any.
    pub meter: Option<UsageMeter>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(600),
            max_concurrency: 16,
            cache: None,
            meter: None,
        }
    }
}

/// A non-success HTTP reply, as seen by our transport service.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}")]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

struct Inner {
    endpoint: EndpointConfig,
    client: Client<Box<dyn Config>>,
    http: reqwest::Client,
    permits: Semaphore,
    options: ClientOptions,
    context_window: OnceCell<u32>,
    /// [`EndpointConfig::label`], computed once: it names every answer and meter entry.
    label: String,
}

/// A [`ChatModel`] speaking the OpenAI chat-completions dialect. Cheap to clone;
/// clones share the connection pool, the concurrency limit, the cache and the meter.
#[derive(Clone)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("endpoint", &self.inner.endpoint)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for `endpoint`.
    ///
    /// # Errors
    /// [`LlmError::Config`] when the endpoint is unusable (bad URL or key),
    /// [`LlmError::InvalidRequest`] when the HTTP client cannot be built.
    pub fn new(endpoint: EndpointConfig, options: ClientOptions) -> Result<Self, LlmError> {
        endpoint.validate("endpoint", "")?;
        let http = reqwest::Client::builder()
            .default_headers(header_map(&endpoint.default_headers))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(options.max_concurrency.max(1))
            .build()
            .map_err(|error| LlmError::InvalidRequest(format!("HTTP client: {error}")))?;
        let key = endpoint
            .api_key
            .as_ref()
            .map_or("", |key| key.expose())
            .to_owned();
        let config: Box<dyn Config> = match endpoint.api_type {
            ApiType::OpenAi => Box::new(
                OpenAIConfig::new()
                    .with_api_base(endpoint.base_url.clone())
                    .with_api_key(key),
            ),
            ApiType::Azure => Box::new(
                AzureConfig::new()
                    .with_api_base(endpoint.base_url.clone())
                    .with_api_key(key)
                    .with_deployment_id(
                        endpoint
                            .deployment
                            .clone()
                            .unwrap_or_else(|| endpoint.model.clone()),
                    )
                    .with_api_version(endpoint.api_version.clone().unwrap_or_default()),
            ),
        };
        let transport = http.clone();
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = transport.clone();
            async move {
                let request = factory.build().await?;
                let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
                if response.status().is_success() {
                    return Ok(response);
                }
                let status = response.status().as_u16();
                let retry_after = crate::retry::parse_retry_after(response.headers());
                let body = response.text().await.map_err(OpenAIError::Reqwest)?;
                Err(OpenAIError::Boxed(Box::new(HttpFailure {
                    status,
                    retry_after,
                    body,
                })))
            }
        });
        let client = Client::with_config(config)
            .with_http_client(http.clone())
            .with_http_service(service);
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(options.max_concurrency.max(1)),
                label: endpoint.label(),
                endpoint,
                client,
                http,
                options,
                context_window: OnceCell::new(),
            }),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &EndpointConfig {
        &self.inner.endpoint
    }

    /// The response cache, if any.
    pub fn cache(&self) -> Option<&ResponseCache> {
        self.inner.options.cache.as_ref()
    }

    /// The usage meter, if any.
    pub fn meter(&self) -> Option<&UsageMeter> {
        self.inner.options.meter.as_ref()
    }

    fn redact(&self, text: &str) -> String {
        redact(text, &self.inner.endpoint.secrets())
    }

    /// One HTTP attempt, mapped to our error type (attempt count filled in later).
    async fn attempt(
        &self,
        request: wire::CreateChatCompletionRequest,
    ) -> Result<wire::CreateChatCompletionResponse, (LlmError, Option<Duration>)> {
        let inner = &self.inner;
        let endpoint = inner.endpoint.base_url.clone();
        let Ok(_permit) = inner.permits.acquire().await else {
            return Err((
                LlmError::InvalidRequest("client is shutting down".to_owned()),
                None,
            ));
        };
        let chat = inner.client.chat();
        let result = match tokio::time::timeout(inner.options.timeout, chat.create(request)).await {
            Ok(result) => result,
            Err(_) => {
                return Err((
                    LlmError::Timeout {
                        endpoint,
                        timeout: inner.options.timeout,
                        attempts: 1,
                    },
                    None,
                ));
            }
        };
        match result {
            // A lone UTF-16 surrogate escape (`\ud800`) is valid JSON but no Rust
            // string: read the reply with U+FFFD in its place rather than fail it on
            // every try (and on every resume).
            Err(OpenAIError::JSONDeserialize(error, body)) => without_lone_surrogates(&body)
                .and_then(|repaired| serde_json::from_str(&repaired).ok())
                .ok_or_else(|| self.map_error(OpenAIError::JSONDeserialize(error, body))),
            other => other.map_err(|error| self.map_error(error)),
        }
    }

    fn map_error(&self, error: OpenAIError) -> (LlmError, Option<Duration>) {
        let endpoint = self.inner.endpoint.base_url.clone();
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
                Ok(failure) => {
                    let body = self.redact(&failure.body);
                    let error = if failure.status == 400 && mentions_context_overflow(&body) {
                        LlmError::ContextOverflow { endpoint, body }
                    } else {
                        LlmError::Http {
                            endpoint,
                            status: failure.status,
                            attempts: 1,
                            body,
                        }
                    };
                    (error, failure.retry_after)
                }
                Err(other) => (self.transport(other.to_string()), None),
            },
            OpenAIError::Reqwest(error) if error.is_timeout() => (
                LlmError::Timeout {
                    endpoint,
                    timeout: self.inner.options.timeout,
                    attempts: 1,
                },
                None,
            ),
            OpenAIError::Reqwest(error) => (self.transport(error_chain(&error)), None),
            OpenAIError::JSONDeserialize(error, body) => (
                LlmError::MalformedResponse {
                    endpoint,
                    attempts: 1,
                    message: error.to_string(),
                    body: self.redact(&body),
                },
                None,
            ),
            OpenAIError::ApiError(api) => (
                LlmError::Http {
                    endpoint,
                    status: api.status_code.as_u16(),
                    attempts: 1,
                    body: self.redact(&api.api_error.to_string()),
                },
                None,
            ),
            OpenAIError::InvalidArgument(message) => (LlmError::InvalidRequest(message), None),
            other => (self.transport(other.to_string()), None),
        }
    }

    fn transport(&self, message: String) -> LlmError {
        LlmError::Transport {
            endpoint: self.inner.endpoint.base_url.clone(),
            attempts: 1,
            message: self.redact(&message),
        }
    }

    /// Sends with retries; returns the reply converted to our types. Transient
    /// failures and malformed replies are retried, each against its own limit
    /// (see [`RetryPolicy`]); `attempts` in the final error counts both.
    async fn send(
        &self,
        request: &ChatRequest,
        style: CallStyle,
    ) -> Result<ChatResponse, LlmError> {
        let wire_request = to_wire(request, &self.inner.endpoint.model, style)?;
        let policy = self.inner.options.retry;
        let mut attempt = 1;
        let (mut transient, mut malformed) = (0, 0);
        loop {
            let outcome = match self.attempt(wire_request.clone()).await {
                Ok(response) => self.read_reply(response).map_err(|error| (error, None)),
                Err(failure) => Err(failure),
            };
            let (error, retry_after) = match outcome {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let (failures, limit) = if error.is_malformed() {
                malformed += 1;
                (malformed, policy.max_malformed_attempts)
            } else if error.is_transient() {
                transient += 1;
                (transient, policy.max_attempts)
            } else {
                return Err(with_attempts(error, attempt));
            };
            if failures >= limit.max(1) {
                return Err(with_attempts(error, attempt));
            }
            let delay = policy.delay(failures, retry_after);
            tracing::warn!(attempt, ?delay, %error, "retrying chat completion");
            if let Some(meter) = &self.inner.options.meter {
                // A retry costs nothing: one the ledger cannot take is not worth
                // failing the call for.
                if let Err(error) = meter.record_retry(&self.inner.label, &request.caller) {
                    tracing::warn!(%error, "retry not recorded");
                }
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    // Legacy `function_call` replies are part of what we support.
    #[allow(deprecated)]
    fn read_reply(
        &self,
        response: wire::CreateChatCompletionResponse,
    ) -> Result<ChatResponse, LlmError> {
        let Some(choice) = response.choices.first() else {
            return Err(LlmError::MalformedResponse {
                endpoint: self.inner.endpoint.base_url.clone(),
                attempts: 1,
                message: "reply has no choices".to_owned(),
                body: self.redact(&serde_json::to_string(&response).unwrap_or_default()),
            });
        };
        let tool_calls = choice
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|call| match call {
                wire::ChatCompletionMessageToolCalls::Function(call) => ToolCall {
                    id: call.id.clone(),
                    function: FunctionCall {
                        name: call.function.name.clone(),
                        arguments: call.function.arguments.clone(),
                    },
                },
                wire::ChatCompletionMessageToolCalls::Custom(call) => ToolCall {
                    id: call.id.clone(),
                    function: FunctionCall {
                        name: call.custom_tool.name.clone(),
                        arguments: call.custom_tool.input.clone(),
                    },
                },
            })
            .collect();
        let message = ChatMessage {
            role: Role::Assistant,
            content: choice.message.content.clone(),
            name: None,
            tool_calls,
            function_call: choice
                .message
                .function_call
                .as_ref()
                .map(|call| FunctionCall {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                }),
            tool_call_id: None,
        };
        Ok(ChatResponse {
            message,
            finish_reason: choice.finish_reason.map(|reason| match reason {
                wire::FinishReason::Stop => FinishReason::Stop,
                wire::FinishReason::Length => FinishReason::Length,
                wire::FinishReason::ToolCalls => FinishReason::ToolCalls,
                wire::FinishReason::ContentFilter => FinishReason::ContentFilter,
                wire::FinishReason::FunctionCall => FinishReason::FunctionCall,
            }),
            usage: response
                .usage
                .as_ref()
                .map_or_else(Usage::default, |usage| Usage {
                    prompt_tokens: u64::from(usage.prompt_tokens),
                    completion_tokens: u64::from(usage.completion_tokens),
                }),
            model: response.model.clone(),
            cached: false,
            endpoint: None,
        })
    }

    /// Asks the server: llama.cpp `GET /props`, then vLLM-style `GET …/models`.
    async fn query_context_window(&self) -> Option<u32> {
        let endpoint = &self.inner.endpoint;
        if endpoint.api_type == ApiType::Azure {
            return None;
        }
        let root = endpoint.base_url.trim_end_matches("/v1");
        let props = self.get_json(&format!("{root}/props")).await;
        let from_props = props.as_ref().and_then(|props| {
            props
                .pointer("/default_generation_settings/n_ctx")
                .or_else(|| props.get("n_ctx"))
                .and_then(Value::as_u64)
        });
        let tokens = match from_props {
            Some(tokens) => Some(tokens),
            None => self
                .get_json(&format!("{}/models", endpoint.base_url))
                .await
                .and_then(|models| {
                    models
                        .get("data")?
                        .as_array()?
                        .iter()
                        .find(|model| {
                            model.get("id").and_then(Value::as_str) == Some(&endpoint.model)
                        })?
                        .get("max_model_len")?
                        .as_u64()
                }),
        };
        tokens
            .and_then(|tokens| u32::try_from(tokens).ok())
            .filter(|tokens| *tokens > 0)
    }

    async fn get_json(&self, url: &str) -> Option<Value> {
        let response = self.get_retrying(url, "context window").await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }
}

#[async_trait]
impl ChatModel for OpenAiClient {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let endpoint = &self.inner.endpoint;
        let style = request.call_style.unwrap_or(endpoint.call_style);
        let model = request
            .model
            .clone()
            .unwrap_or_else(|| endpoint.model.clone());
        let cache = self.inner.options.cache.as_ref();
        let key = cache.map(|cache| cache.key(&model, style, &request));
        let cached = cache
            .zip(key.as_deref())
            .and_then(|(cache, key)| cache.get(key));
        let mut response = match cached {
            Some(response) => ChatResponse {
                cached: true,
                ..response
            },
            None => {
                let meter = self.inner.options.meter.as_ref();
                if let Some(meter) = meter {
                    meter.check_budget()?;
                }
                let response = match self.send(&request, style).await {
                    Ok(response) => response,
                    Err(error) => {
                        if let Some(meter) = meter.filter(|_| error.is_endpoint_failure())
                            && let Err(ledger) =
                                meter.record_failure(&self.inner.label, &request.caller)
                        {
                            tracing::warn!(error = %ledger, "failure not recorded");
                        }
                        return Err(error);
                    }
                };
                if let Some(meter) = meter {
                    // On disk before the answer is used: a kill from here on
                    // cannot lose what this call cost.
                    meter.record(
                        &self.inner.label,
                        &request.caller,
                        &response.model,
                        response.usage,
                    )?;
                }
                // A cache that cannot be written costs a future call, not this answer.
                if let (Some(cache), Some(key)) = (cache, key.as_deref())
                    && let Err(error) = cache.put(key, &response)
                {
                    tracing::warn!(%error, "response not cached");
                }
                response
            }
        };
        response.endpoint = Some(self.inner.label.clone());
        if endpoint.lenient_tool_calls
            && recover_tool_calls(&mut response.message, &request.tools, style)
        {
            response.finish_reason = Some(recovered_finish_reason(style));
        }
        Ok(response)
    }

    async fn context_window(&self) -> Result<u32, LlmError> {
        let endpoint = &self.inner.endpoint;
        self.inner
            .context_window
            .get_or_try_init(|| async {
                if let Some(tokens) = endpoint.context_window {
                    return Ok(tokens);
                }
                if let Some(tokens) = self.query_context_window().await {
                    return Ok(tokens);
                }
                known_context_window(&endpoint.model).ok_or_else(|| LlmError::Config {
                    source_name: endpoint.base_url.clone(),
                    field: "context_window".to_owned(),
                    message: format!(
                        "the server does not report it and model {:?} is not in the table of known models; \
                         set it with the `context_window` field of this endpoint's OAI_CONFIG_LIST entry \
                         (bench-math: --context-window)",
                        endpoint.model
                    ),
                })
            })
            .await
            .copied()
    }

    fn model_name(&self) -> &str {
        &self.inner.endpoint.model
    }

    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        match tokio::time::timeout(within, self.check_endpoint()).await {
            Ok(check) => Ok(vec![check?]),
            Err(_) => Err(self.preflight_error(&format!("no answer within {within:?}"))),
        }
    }
}

/// Context windows of well-known hosted models, by name prefix (longest wins).
const KNOWN_CONTEXT_WINDOWS: &[(&str, u32)] = &[
    ("gpt-3.5-turbo", 16_385),
    ("gpt-4", 8_192),
    ("gpt-4-32k", 32_768),
    ("gpt-4-turbo", 128_000),
    ("gpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
];

fn known_context_window(model: &str) -> Option<u32> {
    KNOWN_CONTEXT_WINDOWS
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, tokens)| *tokens)
}

/// The endpoint's extra headers ([`EndpointConfig::validate`] checked them).
fn header_map(headers: &[(String, String)]) -> reqwest::header::HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).ok()?,
                reqwest::header::HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

fn mentions_context_overflow(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("context_length_exceeded")
        || body.contains("exceed_context_size")
        || body.contains("maximum context length")
        || (body.contains("context") && body.contains("exceed"))
}

/// `json` with every `\uXXXX` escape of a lone UTF-16 surrogate replaced by
/// `\ufffd`; `None` when it holds none.
fn without_lone_surrogates(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let unit_at = |at: usize| {
        json.get(at..at + 6)
            .and_then(|escape| escape.strip_prefix("\\u"))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let is_high = |unit: u16| (0xD800..=0xDBFF).contains(&unit);
    let is_low = |unit: u16| (0xDC00..=0xDFFF).contains(&unit);
    let mut out = String::with_capacity(json.len());
    let (mut copied, mut at) = (0, 0);
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'\\') {
        let escape = at + offset;
        at = match unit_at(escape) {
            Some(high) if is_high(high) && unit_at(escape + 6).is_some_and(is_low) => escape + 12,
            Some(unit) if is_high(unit) || is_low(unit) => {
                out.push_str(&json[copied..escape]);
                out.push_str("\\ufffd");
                copied = escape + 6;
                escape + 6
            }
            // Any other escape (`\\`, `\"`, `\u0041`): skip the escaped character.
            _ => escape + 2,
        };
        at = at.min(bytes.len());
    }
    (copied > 0).then(|| {
        out.push_str(&json[copied..]);
        out
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn with_attempts(error: LlmError, attempts: u32) -> LlmError {
    match error {
        LlmError::Http {
            endpoint,
            status,
            body,
            ..
        } => LlmError::Http {
            endpoint,
            status,
            attempts,
            body,
        },
        LlmError::Transport {
            endpoint, message, ..
        } => LlmError::Transport {
            endpoint,
            attempts,
            message,
        },
        LlmError::Timeout {
            endpoint, timeout, ..
        } => LlmError::Timeout {
            endpoint,
            timeout,
            attempts,
        },
        LlmError::MalformedResponse {
            endpoint,
            message,
            body,
            ..
        } => LlmError::MalformedResponse {
            endpoint,
            attempts,
            message,
            body,
        },
        other => other,
    }
}

// `max_tokens`, `seed` and legacy `functions` are deprecated by OpenAI but are what
// llama.cpp, vLLM and older deployments understand.
#[allow(deprecated)]
fn to_wire(
    request: &ChatRequest,
    default_model: &str,
    style: CallStyle,
) -> Result<wire::CreateChatCompletionRequest, LlmError> {
    if request.messages.is_empty() {
        return Err(LlmError::InvalidRequest("no messages".to_owned()));
    }
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| message_to_wire(index, message))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wire_request = wire::CreateChatCompletionRequest {
        messages,
        model: request
            .model
            .clone()
            .unwrap_or_else(|| default_model.to_owned()),
        temperature: request.temperature,
        max_tokens: request.max_tokens,
        seed: request.seed,
        stop: (!request.stop.is_empty())
            .then(|| wire::StopConfiguration::StringArray(request.stop.clone())),
        response_format: request.response_format.as_ref().map(|format| match format {
            ResponseFormat::JsonObject => wire::ResponseFormat::JsonObject,
            ResponseFormat::JsonSchema { name, schema } => wire::ResponseFormat::JsonSchema {
                json_schema: wire::ResponseFormatJsonSchema {
                    description: None,
                    name: name.clone(),
                    schema: schema.clone(),
                    strict: None,
                },
            },
        }),
        ..Default::default()
    };
    if request.tools.is_empty() {
        return Ok(wire_request);
    }
    match style {
        CallStyle::Tools => {
            wire_request.tools = Some(
                request
                    .tools
                    .iter()
                    .map(|tool| {
                        let function = tool.function();
                        wire::ChatCompletionTools::Function(wire::ChatCompletionTool {
                            function: wire::FunctionObject {
                                name: function.name.clone(),
                                description: function.description.clone(),
                                parameters: Some(function.parameters.clone()),
                                strict: None,
                            },
                        })
                    })
                    .collect(),
            );
            wire_request.tool_choice = request.tool_choice.as_ref().map(|choice| match choice {
                ToolChoice::Auto => {
                    wire::ChatCompletionToolChoiceOption::Mode(wire::ToolChoiceOptions::Auto)
                }
                ToolChoice::None => {
                    wire::ChatCompletionToolChoiceOption::Mode(wire::ToolChoiceOptions::None)
                }
                ToolChoice::Required => {
                    wire::ChatCompletionToolChoiceOption::Mode(wire::ToolChoiceOptions::Required)
                }
                ToolChoice::Function(name) => wire::ChatCompletionToolChoiceOption::Function(
                    wire::ChatCompletionNamedToolChoice {
                        function: wire::FunctionName { name: name.clone() },
                    },
                ),
            });
        }
        CallStyle::Functions => {
            wire_request.functions = Some(
                request
                    .tools
                    .iter()
                    .map(|tool| {
                        let function = tool.function();
                        wire::ChatCompletionFunctions {
                            name: function.name.clone(),
                            description: function.description.clone(),
                            parameters: function.parameters.clone(),
                        }
                    })
                    .collect(),
            );
            wire_request.function_call = request.tool_choice.as_ref().map(|choice| match choice {
                ToolChoice::Auto | ToolChoice::Required => wire::ChatCompletionFunctionCall::Auto,
                ToolChoice::None => wire::ChatCompletionFunctionCall::None,
                ToolChoice::Function(name) => {
                    wire::ChatCompletionFunctionCall::Function { name: name.clone() }
                }
            });
        }
    }
    Ok(wire_request)
}

// Legacy `function_call` history must round-trip.
#[allow(deprecated)]
fn message_to_wire(
    index: usize,
    message: &ChatMessage,
) -> Result<wire::ChatCompletionRequestMessage, LlmError> {
    let text = || message.content.clone().unwrap_or_default();
    let missing = |field: &str| {
        LlmError::InvalidRequest(format!(
            "messages[{index}] ({:?}) needs `{field}`",
            message.role
        ))
    };
    Ok(match message.role {
        Role::System => {
            wire::ChatCompletionRequestMessage::System(wire::ChatCompletionRequestSystemMessage {
                content: wire::ChatCompletionRequestSystemMessageContent::Text(text()),
                name: message.name.clone(),
            })
        }
        Role::User => {
            wire::ChatCompletionRequestMessage::User(wire::ChatCompletionRequestUserMessage {
                content: wire::ChatCompletionRequestUserMessageContent::Text(text()),
                name: message.name.clone(),
            })
        }
        Role::Assistant => wire::ChatCompletionRequestMessage::Assistant(
            wire::ChatCompletionRequestAssistantMessage {
                content: message
                    .content
                    .clone()
                    .map(wire::ChatCompletionRequestAssistantMessageContent::Text),
                name: message.name.clone(),
                tool_calls: (!message.tool_calls.is_empty()).then(|| {
                    message
                        .tool_calls
                        .iter()
                        .map(|call| {
                            wire::ChatCompletionMessageToolCalls::Function(
                                wire::ChatCompletionMessageToolCall {
                                    id: call.id.clone(),
                                    function: wire::FunctionCall {
                                        name: call.function.name.clone(),
                                        arguments: call.function.arguments.clone(),
                                    },
                                },
                            )
                        })
                        .collect()
                }),
                function_call: message
                    .function_call
                    .as_ref()
                    .map(|call| wire::FunctionCall {
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    }),
                ..Default::default()
            },
        ),
        Role::Tool => {
            wire::ChatCompletionRequestMessage::Tool(wire::ChatCompletionRequestToolMessage {
                content: wire::ChatCompletionRequestToolMessageContent::Text(text()),
                tool_call_id: message
                    .tool_call_id
                    .clone()
                    .ok_or_else(|| missing("tool_call_id"))?,
            })
        }
        Role::Function => wire::ChatCompletionRequestMessage::Function(
            wire::ChatCompletionRequestFunctionMessage {
                content: message.content.clone(),
                name: message.name.clone().ok_or_else(|| missing("name"))?,
            },
        ),
    })
}
