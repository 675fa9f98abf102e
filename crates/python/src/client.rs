//! The optimizer model's client from the `llm_config` entries: one OpenAI-dialect
//! client per entry (its own timeout and response cache), each with a context
//! window that never refuses an endpoint ([`crate::window`]), tried in order
//! (AG2's fallback) or spread over as replicas (`routing="spread"`), all counted
//! by one usage meter (cost from AG2's `price` and `prices=`, stopped by
//! `budget_usd=`).

use std::path::PathBuf;
use std::sync::Arc;

use agentopt_llm::{
    Budget, CacheStats, ChatModel, ClientOptions, ConfigListModel, NamedPrice, OpenAiClient,
    PriceTable, ResponseCache, Routing, SpreadModel, SpreadOptions, UsageMeter,
};
use pyo3::prelude::*;
use serde_json::{Map, Value, json};

use crate::config::OptimizerEndpoint;
use crate::errors::llm_error;
use crate::window::{WindowLessons, WindowedModel};

/// How the calls share the entries: `routing=` and `replica_cap=`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EntryRouting {
    /// AG2's fallback (the default), or spread over the entries as replicas.
    pub(crate) routing: Routing,
    /// With `spread`: calls in flight at once on one entry (default: the
    /// balancer's).
    pub(crate) replica_cap: Option<usize>,
}

/// The optimizer model and what watches it.
pub(crate) struct ModelClient {
    /// The entries, tried in order.
    pub(crate) model: Arc<dyn ChatModel>,
    /// Usage and cost of every call (and the budget).
    pub(crate) meter: UsageMeter,
    /// Counts context windows learned from overflow errors.
    pub(crate) lessons: Arc<WindowLessons>,
    /// The response caches in use (`cache_seed`).
    caches: Vec<ResponseCache>,
}

impl ModelClient {
    /// Cache hits and misses over every entry's cache.
    pub(crate) fn cache_stats(&self) -> CacheStats {
        self.caches
            .iter()
            .map(ResponseCache::stats)
            .fold(CacheStats::default(), |total, stats| CacheStats {
                hits: total.hits + stats.hits,
                misses: total.misses + stats.misses,
            })
    }
}

/// Where `cache_seed` replies go: beside AG2's own `.cache/<seed>` (its format is
/// AG2's; agentopt keeps its own entries).
fn cache_dir(seed: u64) -> PathBuf {
    PathBuf::from(".cache")
        .join("agentopt")
        .join(seed.to_string())
}

/// Builds the client; `context_window` (the option) overrides every entry's,
/// `prices` add to the entries' own `price`.
pub(crate) fn build_client(
    endpoint: OptimizerEndpoint,
    context_window: Option<u32>,
    prices: &[NamedPrice],
    budget: Budget,
    routing: EntryRouting,
) -> PyResult<ModelClient> {
    let spread = routing.routing == Routing::Spread && endpoint.entries.len() > 1;
    let entry_prices: Vec<NamedPrice> = endpoint
        .entries
        .iter()
        .filter_map(|entry| entry.price.clone())
        .chain(prices.iter().cloned())
        .collect();
    let meter = UsageMeter::new(PriceTable::from_prices(&entry_prices)).with_budget(budget);
    let lessons = Arc::new(WindowLessons::default());
    let mut caches = Vec::new();
    let mut models: Vec<Arc<dyn ChatModel>> = Vec::new();
    for entry in endpoint.entries {
        let mut options = ClientOptions {
            meter: Some(meter.clone()),
            ..ClientOptions::default()
        };
        if let Some(timeout) = entry.timeout {
            options.timeout = timeout;
        }
        if spread {
            // The balancer retries over the entries (see `retrying_with`).
            options.retry.max_attempts = 1;
        }
        if let Some(seed) = entry.cache_seed {
            let cache = ResponseCache::open(cache_dir(seed), seed).map_err(llm_error)?;
            caches.push(cache.clone());
            options.cache = Some(cache);
        }
        let config = match context_window {
            Some(tokens) => entry.endpoint.with_context_window(tokens),
            None => entry.endpoint,
        };
        let client = OpenAiClient::new(config, options).map_err(llm_error)?;
        models.push(Arc::new(WindowedModel::new(
            Arc::new(client),
            Arc::clone(&lessons),
        )));
    }
    let model: Arc<dyn ChatModel> = if spread {
        let defaults = SpreadOptions::default();
        let cap = routing
            .replica_cap
            .unwrap_or(defaults.max_in_flight_per_replica);
        let options = SpreadOptions::with_cap(cap).retrying_with(ClientOptions::default().retry);
        Arc::new(SpreadModel::new(models, options).map_err(llm_error)?)
    } else {
        Arc::new(ConfigListModel::new(models).map_err(llm_error)?)
    };
    Ok(ModelClient {
        model,
        meter,
        lessons,
        caches,
    })
}

/// The client's usage in AG2's `gather_usage_summary` shape (see
/// `AgentOptimizer.usage`). Cached replies cost nothing and are not metered, so
/// both summaries hold the calls that reached a server; `cached_calls` counts the rest.
pub(crate) fn usage_summary(client: &ModelClient) -> Value {
    let report = client.meter.report();
    let mut summary = Map::new();
    summary.insert("total_cost".to_owned(), json!(report.total.cost_usd));
    for (model, totals) in &report.by_model {
        summary.insert(
            model.clone(),
            json!({
                "cost": totals.cost_usd,
                "prompt_tokens": totals.prompt_tokens,
                "completion_tokens": totals.completion_tokens,
                "total_tokens": totals.total_tokens(),
            }),
        );
    }
    let summary = Value::Object(summary);
    json!({
        "usage_including_cached_inference": summary,
        "usage_excluding_cached_inference": summary,
        "calls": report.total.calls,
        "retries": report.total.retries,
        "failed_calls": report.total.failed_calls,
        "cached_calls": client.cache_stats().hits,
    })
}
