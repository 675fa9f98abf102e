//! Endpoint configuration: from code, from the environment, or from an AG2
//! `OAI_CONFIG_LIST`. API keys live in [`ApiKey`], which never prints its value.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::{CallStyle, LlmError};

/// Public OpenAI API base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Azure OpenAI API version used when none is configured.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-06-01";

/// An API key. `Debug` and `Display` print `***`; only [`ApiKey::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The secret itself, for the `Authorization` / `api-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which wire dialect an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiType {
    /// OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp): `base_url`
    /// + `/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// Azure OpenAI: `endpoint/openai/deployments/D/chat/completions?api-version=V`,
    /// `api-key` header.
    Azure,
}

/// Everything needed to reach one model.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Model name sent in requests (for Azure: informational; the deployment routes).
    pub model: String,
    /// Wire dialect.
    pub api_type: ApiType,
    /// Base URL: `…/v1` for OpenAI-style servers, the resource endpoint for Azure.
    pub base_url: String,
    /// API key, if the server needs one.
    pub api_key: Option<ApiKey>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Azure deployment name (defaults to `model`).
    pub deployment: Option<String>,
    /// How tools go on the wire for this endpoint.
    pub call_style: CallStyle,
    /// Recover tool calls written as text (Qwen `<tool_call>` tags, ```json blocks).
    pub lenient_tool_calls: bool,
    /// Context window in tokens, when known without asking the server.
    pub context_window: Option<u32>,
    /// Extra HTTP headers sent with every request to this endpoint (AG2's
    /// `default_headers`: gateways, organisation ids, tracing).
    pub default_headers: Vec<(String, String)>,
}

impl EndpointConfig {
    /// The public OpenAI API.
    pub fn openai(model: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            api_key: Some(api_key),
            ..Self::compatible(OPENAI_BASE_URL, model)
        }
    }

    /// Any OpenAI-compatible server at `base_url` (e.g. `http://127.0.0.1:8080/v1`).
    pub fn compatible(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            api_type: ApiType::OpenAi,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: None,
            api_version: None,
            deployment: None,
            call_style: CallStyle::Tools,
            lenient_tool_calls: false,
            context_window: None,
            default_headers: Vec::new(),
        }
    }

    /// A local llama.cpp-style server: OpenAI-compatible, lenient tool calls on.
    pub fn local(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            lenient_tool_calls: true,
            ..Self::compatible(base_url, model)
        }
    }

    /// Azure OpenAI at `endpoint` (`https://NAME.openai.azure.com`).
    pub fn azure(
        endpoint: impl Into<String>,
        deployment: impl Into<String>,
        api_key: ApiKey,
        api_version: impl Into<String>,
    ) -> Self {
        let deployment = deployment.into();
        Self {
            model: deployment.clone(),
            api_type: ApiType::Azure,
            base_url: endpoint.into().trim_end_matches('/').to_owned(),
            api_key: Some(api_key),
            api_version: Some(api_version.into()),
            deployment: Some(deployment),
            call_style: CallStyle::Tools,
            lenient_tool_calls: false,
            context_window: None,
            default_headers: Vec::new(),
        }
    }

    /// Sets the call style.
    #[must_use]
    pub fn with_call_style(mut self, style: CallStyle) -> Self {
        self.call_style = style;
        self
    }

    /// Turns lenient tool-call recovery on or off.
    #[must_use]
    pub fn with_lenient_tool_calls(mut self, lenient: bool) -> Self {
        self.lenient_tool_calls = lenient;
        self
    }

    /// Sets the context window so the server is not asked.
    #[must_use]
    pub fn with_context_window(mut self, tokens: u32) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// From the process environment; see [`EndpointConfig::from_env_lookup`].
    ///
    /// # Errors
    /// As [`EndpointConfig::from_env_lookup`].
    pub fn from_env(model: &str) -> Result<Self, LlmError> {
        Self::from_env_lookup(model, |name| std::env::var(name).ok())
    }

    /// From environment variables read through `lookup`: Azure when both
    /// `AZURE_OPENAI_API_KEY` and `AZURE_OPENAI_ENDPOINT` are set (with
    /// `AZURE_OPENAI_API_VERSION`, `AZURE_OPENAI_DEPLOYMENT` defaulting to
    /// [`DEFAULT_AZURE_API_VERSION`] and `model`), else OpenAI with `OPENAI_API_KEY`
    /// and `OPENAI_BASE_URL` (default [`OPENAI_BASE_URL`]).
    ///
    /// # Errors
    /// [`LlmError::Config`] naming the variable when no key is set or a value is unusable.
    pub fn from_env_lookup(
        model: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let config = match (get("AZURE_OPENAI_API_KEY"), get("AZURE_OPENAI_ENDPOINT")) {
            (Some(key), Some(endpoint)) => {
                let deployment = get("AZURE_OPENAI_DEPLOYMENT").unwrap_or_else(|| model.to_owned());
                let version = get("AZURE_OPENAI_API_VERSION")
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
                Self {
                    model: model.to_owned(),
                    ..Self::azure(endpoint, deployment, ApiKey::new(key), version)
                }
            }
            _ => {
                let key = get("OPENAI_API_KEY").ok_or_else(|| LlmError::Config {
                    source_name: "environment".to_owned(),
                    field: "OPENAI_API_KEY".to_owned(),
                    message: "not set (nor AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT)"
                        .to_owned(),
                })?;
                let base = get("OPENAI_BASE_URL").unwrap_or_else(|| OPENAI_BASE_URL.to_owned());
                Self {
                    api_key: Some(ApiKey::new(key)),
                    ..Self::compatible(base, model)
                }
            }
        };
        config.validate("environment", "")?;
        Ok(config)
    }

    /// Checks that the URL and key can go into an HTTP request.
    ///
    /// # Errors
    /// [`LlmError::Config`] naming `source_name` and the field (prefixed by `at`).
    pub fn validate(&self, source_name: &str, at: &str) -> Result<(), LlmError> {
        let error = |field: &str, message: String| LlmError::Config {
            source_name: source_name.to_owned(),
            field: format!("{at}{field}"),
            message,
        };
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(error(
                "base_url",
                format!("{:?} is not an http(s) URL", self.base_url),
            ));
        }
        if let Some(key) = &self.api_key
            && !key
                .expose()
                .bytes()
                .all(|byte| (0x21..0x7f).contains(&byte))
        {
            return Err(error(
                "api_key",
                "contains whitespace or non-ASCII characters".to_owned(),
            ));
        }
        if self.model.trim().is_empty() {
            return Err(error("model", "is empty".to_owned()));
        }
        for (name, value) in &self.default_headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(error(
                    "default_headers",
                    format!("header {name:?} is not a valid HTTP header name and value"),
                ));
            }
        }
        Ok(())
    }

    /// How reports name this endpoint: `model @ base_url`.
    pub fn label(&self) -> String {
        format!("{} @ {}", self.model, self.base_url)
    }

    /// The secrets of this endpoint, for [`redact`].
    pub fn secrets(&self) -> Vec<&str> {
        self.api_key.iter().map(ApiKey::expose).collect()
    }
}

/// Replaces every occurrence of the given secrets, and anything shaped like an
/// OpenAI key (`sk-…`), with `***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut redacted = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        redacted = redacted.replace(secret, "***");
    }
    let mut out = String::with_capacity(redacted.len());
    let mut rest = redacted.as_str();
    while let Some(start) = rest.find("sk-") {
        out.push_str(&rest[..start]);
        let token_end = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(rest.len(), |end| start + end);
        if token_end - start >= 12 {
            out.push_str("sk-***");
        } else {
            out.push_str(&rest[start..token_end]);
        }
        rest = &rest[token_end..];
    }
    out.push_str(rest);
    out
}

/// Loads an AG2 `OAI_CONFIG_LIST` the way AG2's `config_list_from_json` does: if
/// the environment variable `env_or_file` is set, its value is the JSON itself or a
/// path to it; otherwise `env_or_file` is a file path. Entries whose `model` is not
/// in `model_filter` are dropped (an empty filter keeps all).
///
/// # Errors
/// [`LlmError::ConfigRead`], [`LlmError::ConfigSyntax`] (with line and column),
/// [`LlmError::Config`] naming the entry and field, or
/// [`LlmError::NoMatchingEndpoint`] when the filter leaves nothing.
pub fn load_config_list(
    env_or_file: &str,
    model_filter: &[&str],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<EndpointConfig>, LlmError> {
    let (source_name, text) = match lookup(env_or_file) {
        // JSON (a list, or an object, which the parser then refuses by name) rather
        // than a path.
        Some(value) if value.trim_start().starts_with(['[', '{']) => {
            (format!("${env_or_file}"), value)
        }
        Some(path) => (path.clone(), read_file(Path::new(&path))?),
        None => (env_or_file.to_owned(), read_file(Path::new(env_or_file))?),
    };
    let configs = parse_config_list(&source_name, &text)?;
    let kept: Vec<EndpointConfig> = configs
        .into_iter()
        .filter(|config| model_filter.is_empty() || model_filter.contains(&config.model.as_str()))
        .collect();
    if kept.is_empty() {
        return Err(LlmError::NoMatchingEndpoint {
            source_name,
            filter: model_filter
                .iter()
                .map(|model| (*model).to_owned())
                .collect(),
        });
    }
    Ok(kept)
}

fn read_file(path: &Path) -> Result<String, LlmError> {
    std::fs::read_to_string(path).map_err(|source| LlmError::ConfigRead {
        path: path.to_owned(),
        source,
    })
}

/// Parses the JSON text of an `OAI_CONFIG_LIST`; `source_name` names it in errors.
///
/// # Errors
/// As [`load_config_list`], without the filter.
pub fn parse_config_list(source_name: &str, text: &str) -> Result<Vec<EndpointConfig>, LlmError> {
    let value: Value = serde_json::from_str(text).map_err(|error| LlmError::ConfigSyntax {
        source_name: source_name.to_owned(),
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })?;
    let entries = match value {
        Value::Array(entries) => entries,
        other => {
            let hint = if other.is_object() {
                " (got one object: wrap it in [ ])"
            } else {
                ""
            };
            return Err(LlmError::Config {
                source_name: source_name.to_owned(),
                field: "(top level)".to_owned(),
                message: format!("expected a JSON list of endpoint objects{hint}"),
            });
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_entry(source_name, index, entry))
        .collect()
}

fn parse_entry(source_name: &str, index: usize, entry: &Value) -> Result<EndpointConfig, LlmError> {
    let at = format!("[{index}].");
    let error = |field: &str, message: String| LlmError::Config {
        source_name: source_name.to_owned(),
        field: format!("{at}{field}"),
        message,
    };
    let Value::Object(map) = entry else {
        return Err(error("", "expected an object".to_owned()));
    };
    let string = |field: &str| -> Result<Option<String>, LlmError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(error(
                field,
                format!("expected a string, got {}", kind(other)),
            )),
        }
    };
    let model = string("model")?.ok_or_else(|| error("model", "missing".to_owned()))?;
    let api_key = string("api_key")?.map(ApiKey::new);
    let base_url = string("base_url")?;
    let api_version = string("api_version")?;
    let api_type = match string("api_type")?.as_deref() {
        None | Some("openai" | "open_ai") => ApiType::OpenAi,
        Some("azure") => ApiType::Azure,
        Some(other) => {
            return Err(error(
                "api_type",
                format!("unsupported {other:?} (expected \"openai\" or \"azure\")"),
            ));
        }
    };
    let mut config = match api_type {
        ApiType::OpenAi => EndpointConfig {
            api_key,
            ..EndpointConfig::compatible(
                base_url.unwrap_or_else(|| OPENAI_BASE_URL.to_owned()),
                model,
            )
        },
        ApiType::Azure => {
            let endpoint = base_url
                .ok_or_else(|| error("base_url", "required for api_type \"azure\"".to_owned()))?;
            let key = api_key
                .ok_or_else(|| error("api_key", "required for api_type \"azure\"".to_owned()))?;
            let deployment = string("azure_deployment")?.unwrap_or_else(|| model.clone());
            EndpointConfig {
                model: model.clone(),
                ..EndpointConfig::azure(
                    endpoint,
                    deployment,
                    key,
                    api_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                )
            }
        }
    };
    if api_type == ApiType::OpenAi {
        config.api_version = api_version;
    }
    if let Some(style) = string("call_style")? {
        config.call_style = match style.as_str() {
            "tools" => CallStyle::Tools,
            "functions" => CallStyle::Functions,
            other => {
                return Err(error(
                    "call_style",
                    format!("unsupported {other:?} (expected \"tools\" or \"functions\")"),
                ));
            }
        };
    }
    match map.get("lenient_tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(lenient)) => config.lenient_tool_calls = *lenient,
        Some(other) => {
            return Err(error(
                "lenient_tool_calls",
                format!("expected a boolean, got {}", kind(other)),
            ));
        }
    }
    match map.get("context_window") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let tokens = value
                .as_u64()
                .and_then(|tokens| u32::try_from(tokens).ok())
                .ok_or_else(|| {
                    error(
                        "context_window",
                        format!("expected a positive integer, got {value}"),
                    )
                })?;
            config.context_window = Some(tokens);
        }
    }
    config.default_headers = parse_headers(map.get("default_headers"))
        .map_err(|message| error("default_headers", message))?;
    config.validate(source_name, &at)?;
    Ok(config)
}

/// `default_headers`: an object of header names to string values.
fn parse_headers(value: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("expected an object, got {}", kind(other))),
    };
    map.iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name.clone(), text.clone())),
            other => Err(format!(
                "header {name:?}: expected a string, got {}",
                kind(other)
            )),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
