//! AG2's `llm_config` (a dict with `config_list`, or an `autogen.LLMConfig`) read
//! as AG2's `OpenAIWrapper` reads it: top-level keys apply to every entry (an
//! entry's own value wins), the entries serving `optimizer_model` are kept (AG2's
//! `filter_config`), a missing key comes from the environment, and `timeout`,
//! `max_tokens`, `default_headers`, `cache_seed`, `price`, `temperature` and `seed`
//! take effect. Keys that still have no effect are named in a `UserWarning`. Every
//! problem is a `ConfigError` naming the field, raised before any model call.

use std::time::Duration;

use agentopt_llm::{EndpointConfig, LlmError, NamedPrice};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

use crate::errors::{config_error, llm_error};
use crate::json::to_json;
use crate::warnings::warn;

/// One endpoint of the optimizer model and how to call it.
pub(crate) struct Entry {
    /// Where and how to reach it.
    pub(crate) endpoint: EndpointConfig,
    /// `timeout`: limit on one request.
    pub(crate) timeout: Option<Duration>,
    /// `cache_seed`: replies cached on disk under this seed (None: no cache).
    pub(crate) cache_seed: Option<u64>,
    /// `price`: AG2's `[prompt, completion]` dollars per 1000 tokens.
    pub(crate) price: Option<NamedPrice>,
}

/// What the optimizer takes from `llm_config`.
pub(crate) struct OptimizerEndpoint {
    /// The entries serving the optimizer model, tried in this order.
    pub(crate) entries: Vec<Entry>,
    /// `temperature`, when set.
    pub(crate) temperature: Option<f32>,
    /// `max_tokens`: the room kept for (and the limit on) the optimizer's reply.
    pub(crate) max_tokens: Option<u32>,
    /// `seed`: the optimizer's sampling seed.
    pub(crate) seed: Option<i64>,
}

/// Keys the endpoint parser reads itself (`agentopt_llm::config`).
const ENDPOINT_KEYS: &[&str] = &[
    "model",
    "api_key",
    "base_url",
    "api_type",
    "api_version",
    "azure_deployment",
    "call_style",
    "lenient_tool_calls",
    "context_window",
    "default_headers",
];

/// Keys read here, beside [`ENDPOINT_KEYS`].
const READ_KEYS: &[&str] = &[
    "timeout",
    "cache_seed",
    "price",
    "temperature",
    "max_tokens",
    "seed",
    "client_host",
    "num_ctx",
];

/// Values AG2's config entries fill in by default (its Ollama entry's sampling
/// settings): not something the user asked for, so no warning names them.
const AG2_DEFAULTS: &[(&str, &str)] = &[
    ("num_predict", "-1"),
    ("repeat_penalty", "1.1"),
    ("top_k", "40"),
    ("hide_tools", "\"never\""),
];

/// Keys that change nothing about the optimizer's calls: AG2's selection tags,
/// streaming (the reply is read whole either way), agent-side tool lists.
const INERT_KEYS: &[&str] = &["tags", "stream", "tools", "functions", "config_list"];

/// api_types that speak OpenAI's chat-completions dialect, with AG2's default
/// endpoint and key variable for each.
const COMPATIBLE_API_TYPES: &[(&str, &str, Option<&str>)] = &[
    (
        "deepseek",
        "https://api.deepseek.com/v1",
        Some("DEEPSEEK_API_KEY"),
    ),
    (
        "together",
        "https://api.together.xyz/v1",
        Some("TOGETHER_API_KEY"),
    ),
    (
        "groq",
        "https://api.groq.com/openai/v1",
        Some("GROQ_API_KEY"),
    ),
    (
        "cerebras",
        "https://api.cerebras.ai/v1",
        Some("CEREBRAS_API_KEY"),
    ),
    (
        "mistral",
        "https://api.mistral.ai/v1",
        Some("MISTRAL_API_KEY"),
    ),
    ("ollama", "http://localhost:11434/v1", None),
];

/// Reads `llm_config` for the optimizer; see the module docs.
pub(crate) fn optimizer_endpoint(
    llm_config: Option<&Bound<'_, PyAny>>,
    optimizer_model: Option<&str>,
) -> PyResult<OptimizerEndpoint> {
    let config = config_map(llm_config)?;
    let Some(list) = config.get("config_list") else {
        return Err(config_error(
            "llm_config['config_list']",
            None,
            "missing: AgentOptimizer needs a config_list naming the optimizer model",
        ));
    };
    let Value::Array(list) = list else {
        return Err(config_error(
            "llm_config['config_list']",
            Some(list.to_string()),
            "expected a list of endpoint dicts",
        ));
    };
    let mut ignored = unused_keys(&config, "");
    let mut chosen = Vec::new();
    for (index, raw) in list.iter().enumerate() {
        let Value::Object(raw) = raw else {
            return Err(config_error(
                &format!("config_list[{index}]"),
                Some(raw.to_string()),
                "expected an endpoint dict",
            ));
        };
        let model = raw.get("model").and_then(Value::as_str).ok_or_else(|| {
            config_error(
                &format!("config_list[{index}].model"),
                raw.get("model").map(Value::to_string),
                format!("llm_config: field `config_list[{index}].model`: missing or not a string"),
            )
        })?;
        if optimizer_model.is_none_or(|wanted| wanted == model) {
            let mut merged = config.clone();
            merged.remove("config_list");
            merged.extend(raw.clone());
            ignored.extend(unused_keys(raw, &format!("config_list[{index}].")));
            chosen.push((index, merged));
        }
    }
    if chosen.is_empty() {
        return Err(no_entry(list, optimizer_model));
    }
    if !ignored.is_empty() {
        ignored.sort();
        ignored.dedup();
        warn(&format!(
            "agentopt: llm_config keys with no effect on the optimizer's calls: {}",
            ignored.join(", ")
        ));
    }
    let first = &chosen[0];
    let field = |name: &str| request_field(first.0, &config, name);
    let temperature =
        number(&first.1, &field("temperature"), "temperature")?.map(|value| value as f32);
    let max_tokens = integer(&first.1, &field("max_tokens"), "max_tokens")?;
    let seed = integer(&first.1, &field("seed"), "seed")?;
    let entries = chosen
        .into_iter()
        .map(|(index, merged)| read_entry(index, merged, &|name| std::env::var(name).ok()))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(OptimizerEndpoint {
        entries,
        temperature,
        max_tokens,
        seed,
    })
}

/// `llm_config` as a JSON object (an `LLMConfig` is `model_dump()`ed first).
fn config_map(llm_config: Option<&Bound<'_, PyAny>>) -> PyResult<Map<String, Value>> {
    let Some(llm_config) = llm_config.filter(|config| !config.is_none()) else {
        return Err(config_error(
            "llm_config",
            None,
            "llm_config is required for AgentOptimizer: a dict with `config_list`, or an autogen.LLMConfig",
        ));
    };
    let dumped;
    let llm_config = if llm_config.hasattr("model_dump")? {
        dumped = llm_config.call_method0("model_dump")?;
        &dumped
    } else {
        llm_config
    };
    if llm_config.cast::<PyDict>().is_err() {
        return Err(config_error(
            "llm_config",
            Some(llm_config.get_type().name()?.to_string()),
            "llm_config must be a dict with `config_list` or an autogen.LLMConfig",
        ));
    }
    match to_json(llm_config)? {
        Value::Object(map) => Ok(map),
        _ => unreachable!("a dict dumps to a JSON object"),
    }
}

/// Where a request setting of the first entry came from: its own key or the top level.
fn request_field(index: usize, config: &Map<String, Value>, name: &str) -> String {
    let own = config["config_list"][index].get(name).is_some();
    if own {
        format!("config_list[{index}].{name}")
    } else {
        format!("llm_config['{name}']")
    }
}

/// Keys of `map` that agentopt does not read and that hold a value.
fn unused_keys(map: &Map<String, Value>, prefix: &str) -> Vec<String> {
    map.iter()
        .filter(|(key, value)| {
            let key = key.as_str();
            !(ENDPOINT_KEYS.contains(&key)
                || READ_KEYS.contains(&key)
                || INERT_KEYS.contains(&key)
                || unset(value)
                || AG2_DEFAULTS.contains(&(key, value.to_string().as_str())))
        })
        .map(|(key, _)| format!("{prefix}{key}"))
        .collect()
}

/// A value that sets nothing: None, False, an empty string, list or dict.
fn unset(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn number(map: &Map<String, Value>, field: &str, key: &str) -> PyResult<Option<f64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or_else(|| {
            config_error(
                field,
                Some(value.to_string()),
                format!("`{field}`: expected a number"),
            )
        }),
    }
}

fn integer<T: TryFrom<i64>>(
    map: &Map<String, Value>,
    field: &str,
    key: &str,
) -> PyResult<Option<T>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .and_then(|number| T::try_from(number).ok())
            .map(Some)
            .ok_or_else(|| {
                config_error(
                    field,
                    Some(value.to_string()),
                    format!("`{field}`: expected a non-negative integer"),
                )
            }),
    }
}

/// One chosen entry (top-level keys merged in): its endpoint and call settings.
fn read_entry(
    index: usize,
    mut merged: Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> PyResult<Entry> {
    let at = |key: &str| format!("config_list[{index}].{key}");
    normalise_api_type(index, &mut merged, lookup)?;
    // Ollama's context size (AG2 sends it as `num_ctx`) is the window to budget for.
    if merged.get("context_window").is_none_or(Value::is_null)
        && let Some(tokens) = merged.get("num_ctx").cloned()
    {
        merged.insert("context_window".to_owned(), tokens);
    }
    let timeout = number(&merged, &at("timeout"), "timeout")?
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|timeout| !timeout.is_zero())
                .ok_or_else(|| {
                    config_error(
                        &at("timeout"),
                        Some(seconds.to_string()),
                        "expected a positive number of seconds",
                    )
                })
        })
        .transpose()?;
    let cache_seed = integer(&merged, &at("cache_seed"), "cache_seed")?;
    let price = read_price(index, &merged)?;
    merged.retain(|key, _| ENDPOINT_KEYS.contains(&key.as_str()));
    let endpoint = parse_endpoint(index, &Value::Object(merged))?;
    Ok(Entry {
        price: price.map(|(prompt, completion)| NamedPrice {
            model: endpoint.model.clone(),
            prompt_per_million: prompt * 1000.0,
            completion_per_million: completion * 1000.0,
        }),
        endpoint,
        timeout,
        cache_seed,
    })
}

/// AG2's `price`: `[prompt, completion]` dollars per 1000 tokens.
fn read_price(index: usize, map: &Map<String, Value>) -> PyResult<Option<(f64, f64)>> {
    let field = format!("config_list[{index}].price");
    match map.get("price") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_array().map(Vec::as_slice) {
            Some([prompt, completion]) => match (prompt.as_f64(), completion.as_f64()) {
                (Some(prompt), Some(completion)) if prompt >= 0.0 && completion >= 0.0 => {
                    Ok(Some((prompt, completion)))
                }
                _ => Err(price_error(&field, value)),
            },
            _ => Err(price_error(&field, value)),
        },
    }
}

fn price_error(field: &str, value: &Value) -> PyErr {
    config_error(
        field,
        Some(value.to_string()),
        format!("`{field}`: expected [prompt, completion] dollars per 1000 tokens, as AG2"),
    )
}

/// Maps AG2's api_type to the endpoint parser's ("openai" or "azure"), with AG2's
/// defaults: the key from the environment, an OpenAI-compatible service's URL.
fn normalise_api_type(
    index: usize,
    entry: &mut Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> PyResult<()> {
    let api_type = entry
        .get("api_type")
        .and_then(Value::as_str)
        .unwrap_or("openai")
        .to_owned();
    match api_type.as_str() {
        "openai" | "open_ai" => {
            set_default(entry, "api_key", lookup("OPENAI_API_KEY"));
            set_default(entry, "base_url", lookup("OPENAI_BASE_URL"));
        }
        "azure" => {
            set_default(entry, "api_key", lookup("AZURE_OPENAI_API_KEY"));
            set_default(entry, "base_url", lookup("AZURE_OPENAI_ENDPOINT"));
            set_default(entry, "api_version", lookup("OPENAI_API_VERSION"));
        }
        other => {
            let Some((_, url, key)) = COMPATIBLE_API_TYPES
                .iter()
                .find(|(name, ..)| *name == other)
            else {
                let supported: Vec<&str> = ["openai", "azure"]
                    .into_iter()
                    .chain(COMPATIBLE_API_TYPES.iter().map(|(name, ..)| *name))
                    .collect();
                let field = format!("config_list[{index}].api_type");
                return Err(config_error(
                    &field,
                    Some(format!("{other:?}")),
                    format!(
                        "llm_config: field `{field}` = {other:?}: agentopt's optimizer speaks the OpenAI \
                         chat-completions dialect, which {other:?} does not; supported api_types: \
                         {supported:?} (or any OpenAI-compatible server with base_url). \
                         Give the optimizer such an entry and select it with optimizer_model="
                    ),
                ));
            };
            if other == "ollama" {
                let host = entry.get("client_host").and_then(Value::as_str);
                let base = host.map(|host| format!("{}/v1", host.trim_end_matches('/')));
                set_default(entry, "base_url", base);
            }
            set_default(entry, "base_url", Some((*url).to_owned()));
            if let Some(key) = key {
                set_default(entry, "api_key", lookup(key));
            }
            entry.insert("api_type".to_owned(), Value::String("openai".to_owned()));
        }
    }
    Ok(())
}

/// Sets `key` to `value` where the entry has none (AG2's clients read their
/// environment the same way).
fn set_default(entry: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if entry.get(key).is_none_or(Value::is_null)
        && let Some(value) = value.filter(|value| !value.trim().is_empty())
    {
        entry.insert(key.to_owned(), Value::String(value));
    }
}

/// One entry through `agentopt_llm`'s parser, its errors naming `config_list[i].field`.
fn parse_endpoint(index: usize, entry: &Value) -> PyResult<EndpointConfig> {
    let text = Value::Array(vec![entry.clone()]).to_string();
    let mut endpoints = agentopt_llm::config::parse_config_list("llm_config", &text).map_err(
        |error| match error {
            LlmError::Config { field, message, .. } => {
                let name = field.strip_prefix("[0].").unwrap_or(&field);
                let field = format!("config_list[{index}].{name}");
                let value = entry
                    .get(name)
                    .filter(|_| name != "api_key")
                    .map(Value::to_string);
                config_error(
                    &field,
                    value.clone(),
                    format!(
                        "llm_config: field `{field}`{}: {message}",
                        value.map(|v| format!(" = {v}")).unwrap_or_default()
                    ),
                )
            }
            other => llm_error(other),
        },
    )?;
    Ok(endpoints.remove(0))
}

/// The error for a config list with no entry serving `optimizer_model`.
fn no_entry(list: &[Value], optimizer_model: Option<&str>) -> PyErr {
    let models: Vec<&str> = list
        .iter()
        .filter_map(|entry| entry["model"].as_str())
        .collect();
    match optimizer_model {
        Some(model) => config_error(
            "optimizer_model",
            Some(model.to_owned()),
            format!(
                "optimizer_model = {model:?}: no entry of llm_config['config_list'] has this model (models listed: {models:?})"
            ),
        ),
        None => config_error(
            "llm_config['config_list']",
            Some("[]".to_owned()),
            "llm_config['config_list'] is empty",
        ),
    }
}
