//! AG2's `llm_config` (a dict with `config_list`, or an `autogen.LLMConfig`) → the
//! endpoint the optimizer model is reached at. Every problem is a `ConfigError`
//! naming the field, raised before any model call.

use agentopt_llm::{EndpointConfig, LlmError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use crate::errors::{config_error, llm_error};
use crate::json::to_json;

/// What the optimizer takes from `llm_config`.
pub(crate) struct OptimizerEndpoint {
    /// The entries serving the optimizer model, tried in this order.
    pub(crate) endpoints: Vec<EndpointConfig>,
    /// `llm_config["temperature"]`, when set.
    pub(crate) temperature: Option<f32>,
}

/// Reads `llm_config` as AG2 does: an `LLMConfig` is `model_dump()`ed; the entries
/// of `config_list` whose `model` is `optimizer_model` are kept (all of them when it
/// is `None`), to be tried in order.
pub(crate) fn optimizer_endpoint(
    llm_config: Option<&Bound<'_, PyAny>>,
    optimizer_model: Option<&str>,
) -> PyResult<OptimizerEndpoint> {
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
    let Ok(dict) = llm_config.cast::<PyDict>() else {
        return Err(config_error(
            "llm_config",
            Some(llm_config.get_type().name()?.to_string()),
            "llm_config must be a dict with `config_list` or an autogen.LLMConfig",
        ));
    };
    let temperature = match dict.get_item("temperature")? {
        Some(value) if !value.is_none() => Some(value.extract::<f32>().map_err(|_| {
            config_error(
                "llm_config['temperature']",
                value.repr().ok().map(|repr| repr.to_string()),
                "expected a number",
            )
        })?),
        _ => None,
    };
    let Some(config_list) = dict.get_item("config_list")? else {
        return Err(config_error(
            "llm_config['config_list']",
            None,
            "missing: AgentOptimizer needs a config_list naming the optimizer model",
        ));
    };
    let entries = to_json(&config_list)?;
    let endpoints = parse_entries(&entries)?;
    let endpoints = select(endpoints, optimizer_model)?;
    Ok(OptimizerEndpoint {
        endpoints,
        temperature,
    })
}

/// Parses the entries, naming a bad field as `config_list[i].field`.
fn parse_entries(entries: &Value) -> PyResult<Vec<EndpointConfig>> {
    if !entries.is_array() {
        return Err(config_error(
            "llm_config['config_list']",
            Some(entries.to_string()),
            "expected a list of endpoint dicts",
        ));
    }
    let endpoints = agentopt_llm::config::parse_config_list("llm_config", &entries.to_string())
        .map_err(|error| match error {
            LlmError::Config { field, message, .. } => {
                let field = format!("config_list{field}");
                let value = value_at(entries, &field);
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
        })?;
    for (index, endpoint) in endpoints.iter().enumerate() {
        endpoint
            .validate("llm_config", &format!("config_list[{index}]."))
            .map_err(llm_error)?;
    }
    Ok(endpoints)
}

/// The value at `config_list[i].field` (secrets withheld), for the error message.
fn value_at(entries: &Value, field: &str) -> Option<String> {
    let rest = field.strip_prefix("config_list[")?;
    let (index, name) = rest.split_once("].")?;
    let value = entries.get(index.parse::<usize>().ok()?)?.get(name)?;
    if name == "api_key" {
        return None;
    }
    Some(value.to_string())
}

/// The endpoints serving `optimizer_model` (AG2's `filter_config`), in order.
fn select(
    endpoints: Vec<EndpointConfig>,
    optimizer_model: Option<&str>,
) -> PyResult<Vec<EndpointConfig>> {
    let models: Vec<String> = endpoints.iter().map(|e| e.model.clone()).collect();
    let chosen: Vec<EndpointConfig> = endpoints
        .into_iter()
        .filter(|endpoint| optimizer_model.is_none_or(|model| endpoint.model == model))
        .collect();
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    Err(match optimizer_model {
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
    })
}
