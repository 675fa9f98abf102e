//! Which endpoints a program talks to, by AG2's and agentopt's precedence: explicit
//! base URLs, then an AG2 `OAI_CONFIG_LIST` (variable or file; every matching
//! entry), then `OPENAI_*` / `AZURE_OPENAI_*` variables, then the embedded local
//! model. Several
//! entries are tried in order (AG2) or spread over as replicas, as
//! [`EndpointRequest::routing`] says. Keys are read from the environment only and
//! never recorded.

use std::path::Path;

use serde::{Deserialize, Serialize};

use agentopt_llm::config::{DEFAULT_AZURE_API_VERSION, load_config_list};
use agentopt_llm::{ApiKey, EndpointConfig, Routing};

use crate::{LocalError, LocalModel};

/// Default name of the AG2 config list (environment variable or file).
pub const OAI_CONFIG_LIST: &str = "OAI_CONFIG_LIST";

/// What the user asked for (command-line flags or keyword arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRequest {
    /// OpenAI-compatible base URLs (replicas of one model when several), or the
    /// Azure resource endpoint with `azure`.
    pub base_urls: Vec<String>,
    /// How several endpoints share the calls.
    pub routing: Routing,
    /// `base_url` is Azure OpenAI.
    pub azure: bool,
    /// Environment variable holding the key for `base_url`.
    pub api_key_env: Option<String>,
    /// Azure `api-version` for `base_url`.
    pub api_version: Option<String>,
    /// The agents' model (also the config-list filter).
    pub model: Option<String>,
    /// The optimizer's model (default: `model`).
    pub optimizer_model: Option<String>,
    /// The config list's variable or file (default [`OAI_CONFIG_LIST`], used when
    /// set or present).
    pub oai_config_list: Option<String>,
    /// Model used with a key from the environment when `model` is not given.
    pub default_remote_model: String,
    /// The embedded model used when nothing else is configured.
    pub local_model: LocalModel,
}

/// The endpoints chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoints {
    /// Servers already running somewhere.
    Remote(Box<RemoteEndpoints>),
    /// Start the embedded local model; both roles use it.
    Local(LocalModel),
}

/// Servers that are already running somewhere: for each role, one entry or
/// several, routed as [`RemoteEndpoints::routing`] says.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEndpoints {
    /// How several entries share the calls.
    pub routing: Routing,
    /// For the agents; never empty.
    pub agent: Vec<EndpointConfig>,
    /// For the optimizer; never empty.
    pub optimizer: Vec<EndpointConfig>,
    /// Where they came from.
    pub source: EndpointSource,
}

/// Which source was used; recordable without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum EndpointSource {
    /// An explicit base URL.
    Flags {
        /// Base URL.
        base_url: String,
    },
    /// An AG2 config list.
    ConfigList {
        /// Variable or file it came from.
        from: String,
        /// Base URL of the first entry.
        base_url: String,
    },
    /// `OPENAI_*` / `AZURE_OPENAI_*` variables.
    Environment {
        /// Base URL.
        base_url: String,
    },
    /// The embedded local model.
    Local {
        /// Which one.
        model: LocalModel,
    },
}

impl std::fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flags { base_url } => write!(f, "{base_url} (flags)"),
            Self::ConfigList { from, base_url } => write!(f, "{base_url} (from {from})"),
            Self::Environment { base_url } => write!(f, "{base_url} (environment)"),
            Self::Local { model } => write!(
                f,
                "embedded local model {} (llama.cpp on 127.0.0.1)",
                model.spec().id
            ),
        }
    }
}

/// Conversations run at once on a remote endpoint by default.
pub const DEFAULT_REMOTE_CONCURRENCY: usize = 4;

impl Endpoints {
    /// How many conversations to run at once by default: one per slot of the
    /// embedded server ([`crate::DEFAULT_PARALLEL`]), else
    /// [`DEFAULT_REMOTE_CONCURRENCY`].
    pub fn default_concurrency(&self) -> usize {
        match self {
            Self::Remote(_) => DEFAULT_REMOTE_CONCURRENCY,
            Self::Local(_) => crate::DEFAULT_PARALLEL,
        }
    }

    /// How several endpoints share the calls (the embedded model is one).
    pub fn routing(&self) -> Routing {
        match self {
            Self::Remote(remote) => remote.routing,
            Self::Local(_) => Routing::Fallback,
        }
    }

    /// Where the endpoints came from.
    pub fn source(&self) -> EndpointSource {
        match self {
            Self::Remote(remote) => remote.source.clone(),
            Self::Local(model) => EndpointSource::Local { model: *model },
        }
    }

    /// (agent model, optimizer model) names, of the first entries.
    pub fn model_names(&self) -> (String, String) {
        match self {
            Self::Remote(remote) => (
                remote.agent[0].model.clone(),
                remote.optimizer[0].model.clone(),
            ),
            Self::Local(model) => {
                let id = model.spec().id.to_owned();
                (id.clone(), id)
            }
        }
    }
}

/// Chooses the endpoints for `request`; `lookup` reads environment variables and
/// `cwd` is where a config list named by a relative path is looked for.
///
/// # Errors
/// [`LocalError::Config`] and the config-list errors ([`LocalError::Llm`]), naming the variable, file,
/// entry or field.
pub fn resolve_endpoints(
    request: &EndpointRequest,
    lookup: impl Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Endpoints, LocalError> {
    let env = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    if !request.base_urls.is_empty() {
        return explicit(request, &env).map(Endpoints::Remote);
    }
    let list_name = request
        .oai_config_list
        .as_deref()
        .unwrap_or(OAI_CONFIG_LIST);
    let list_given = request.oai_config_list.is_some()
        || env(list_name).is_some()
        || cwd.join(list_name).is_file();
    if list_given {
        return config_list(request, list_name, &env, cwd).map(Endpoints::Remote);
    }
    let has_openai = env("OPENAI_API_KEY").is_some();
    let has_azure = env("AZURE_OPENAI_API_KEY").is_some() && env("AZURE_OPENAI_ENDPOINT").is_some();
    if has_openai || has_azure {
        let model = request
            .model
            .as_deref()
            .unwrap_or(&request.default_remote_model);
        let agent = EndpointConfig::from_env_lookup(model, &lookup)?;
        let optimizer = with_model(&agent, request.optimizer_model.as_deref());
        return Ok(Endpoints::Remote(Box::new(RemoteEndpoints {
            routing: request.routing,
            source: EndpointSource::Environment {
                base_url: agent.base_url.clone(),
            },
            agent: vec![agent],
            optimizer: vec![optimizer],
        })));
    }
    Ok(Endpoints::Local(request.local_model))
}

/// Explicit base URLs, each with the key from the named variable.
fn explicit(
    request: &EndpointRequest,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Box<RemoteEndpoints>, LocalError> {
    let key = request
        .api_key_env
        .as_deref()
        .map(|name| {
            env(name)
                .map(ApiKey::new)
                .ok_or_else(|| LocalError::Config {
                    source_name: "--api-key-env".to_owned(),
                    field: name.to_owned(),
                    message: "environment variable not set".to_owned(),
                })
        })
        .transpose()?;
    let agent = request
        .base_urls
        .iter()
        .map(|base_url| explicit_entry(request, base_url, key.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let optimizer = agent
        .iter()
        .map(|entry| with_model(entry, request.optimizer_model.as_deref()))
        .collect();
    Ok(Box::new(RemoteEndpoints {
        routing: request.routing,
        source: EndpointSource::Flags {
            base_url: agent[0].base_url.clone(),
        },
        agent,
        optimizer,
    }))
}

/// The agents' endpoint at one explicit base URL.
fn explicit_entry(
    request: &EndpointRequest,
    base_url: &str,
    key: Option<ApiKey>,
) -> Result<EndpointConfig, LocalError> {
    let model = request
        .model
        .clone()
        .unwrap_or_else(|| request.default_remote_model.clone());
    let agent = if request.azure {
        let key = key.ok_or_else(|| LocalError::Config {
            source_name: "flags".to_owned(),
            field: "--api-key-env".to_owned(),
            message: "Azure needs a key".to_owned(),
        })?;
        let version = request
            .api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
        EndpointConfig::azure(base_url.to_owned(), model, key, version)
    } else {
        EndpointConfig {
            api_key: key,
            ..EndpointConfig::compatible(base_url.to_owned(), model)
        }
    };
    agent.validate("flags", "")?;
    Ok(agent)
}

/// Every entry of the config list that matches the model (AG2 tries them in order
/// when one fails); the optimizer's entries match its model, else the first agent
/// entry serves it under that name.
fn config_list(
    request: &EndpointRequest,
    list_name: &str,
    env: &impl Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Box<RemoteEndpoints>, LocalError> {
    let file_lookup = |name: &str| {
        env(name).map(|value| {
            if value.trim_start().starts_with('[') || Path::new(&value).is_absolute() {
                value
            } else {
                cwd.join(value).to_string_lossy().into_owned()
            }
        })
    };
    let list_path = if Path::new(list_name).is_absolute() || env(list_name).is_some() {
        list_name.to_owned()
    } else {
        cwd.join(list_name).to_string_lossy().into_owned()
    };
    let filter: Vec<&str> = request.model.as_deref().into_iter().collect();
    let agent = load_config_list(&list_path, &filter, file_lookup)?;
    let optimizer = match request.optimizer_model.as_deref() {
        Some(name) => load_config_list(&list_path, &[name], file_lookup)
            .unwrap_or_else(|_| vec![with_model(&agent[0], Some(name))]),
        None => agent.clone(),
    };
    Ok(Box::new(RemoteEndpoints {
        routing: request.routing,
        source: EndpointSource::ConfigList {
            from: list_name.to_owned(),
            base_url: agent[0].base_url.clone(),
        },
        agent,
        optimizer,
    }))
}

/// `endpoint` with another model (for Azure: another deployment).
fn with_model(endpoint: &EndpointConfig, model: Option<&str>) -> EndpointConfig {
    let mut other = endpoint.clone();
    if let Some(model) = model {
        model.clone_into(&mut other.model);
        if other.deployment.is_some() {
            other.deployment = Some(model.to_owned());
        }
    }
    other
}
