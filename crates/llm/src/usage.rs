//! Token and cost accounting per model and per caller label, with an optional budget
//! and an optional [`SpendLedger`] that keeps every metered event durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::{LlmError, Usage};

/// Price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// Dollars per million prompt tokens.
    pub prompt_per_million: f64,
    /// Dollars per million completion tokens.
    pub completion_per_million: f64,
}

/// A model's price as a person writes it: `MODEL=PROMPT:COMPLETION` in US dollars
/// per million tokens (`gpt-4o-mini=0.15:0.6`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NamedPrice {
    /// Model name (exact, or the longest prefix, as [`PriceTable`] matches).
    pub model: String,
    /// US dollars per million prompt tokens.
    pub prompt_per_million: f64,
    /// US dollars per million completion tokens.
    pub completion_per_million: f64,
}

impl std::str::FromStr for NamedPrice {
    type Err = String;

    /// Parses `MODEL=PROMPT:COMPLETION`; the error quotes the text and says what is
    /// wrong with it.
    fn from_str(text: &str) -> Result<Self, String> {
        let (model, prices) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected MODEL=PROMPT:COMPLETION"))?;
        let (prompt, completion) = prices
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected PROMPT:COMPLETION after `=`"))?;
        let number = |value: &str| {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|price| price.is_finite() && *price >= 0.0)
                .ok_or_else(|| format!("{text:?}: {value:?} is not a non-negative number"))
        };
        if model.trim().is_empty() {
            return Err(format!("{text:?}: the model name is empty"));
        }
        Ok(Self {
            model: model.trim().to_owned(),
            prompt_per_million: number(prompt)?,
            completion_per_million: number(completion)?,
        })
    }
}

/// Prices by model name. A model matches an entry with its exact name or, failing
/// that, the longest entry that is a prefix of it (`gpt-4o` prices
/// `gpt-4o-2024-08-06`). Unknown models cost nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    prices: HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table (everything free, e.g. local models).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table of `prices`.
    pub fn from_prices(prices: &[NamedPrice]) -> Self {
        prices.iter().fold(Self::new(), |table, price| {
            table.with(
                price.model.clone(),
                price.prompt_per_million,
                price.completion_per_million,
            )
        })
    }

    /// Adds or replaces a model's price.
    #[must_use]
    pub fn with(
        mut self,
        model: impl Into<String>,
        prompt_per_million: f64,
        completion_per_million: f64,
    ) -> Self {
        self.prices.insert(
            model.into(),
            ModelPrice {
                prompt_per_million,
                completion_per_million,
            },
        );
        self
    }

    /// The price that applies to `model`.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        self.prices.get(model).copied().or_else(|| {
            self.prices
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, price)| *price)
        })
    }

    /// Cost in dollars of `usage` on `model`.
    pub fn cost(&self, model: &str, usage: Usage) -> f64 {
        self.price(model).map_or(0.0, |price| {
            (usage.prompt_tokens as f64 * price.prompt_per_million
                + usage.completion_tokens as f64 * price.completion_per_million)
                / 1e6
        })
    }
}

/// Spending limits; calls stop once one is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Maximum total cost in dollars.
    pub max_cost_usd: Option<f64>,
    /// Maximum total tokens (prompt plus completion), useful for free local models.
    pub max_tokens: Option<u64>,
}

/// Totals for one model, caller or endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageTotals {
    /// Completed (uncached) calls.
    pub calls: u64,
    /// Calls the endpoint failed after its retries (no tokens counted; never
    /// counted per model, since no model answered).
    pub failed_calls: u64,
    /// Attempts that failed and were retried (HTTP 429/5xx, transport faults,
    /// malformed replies): faults absorbed before an answer or a failure.
    pub retries: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in dollars.
    pub cost_usd: f64,
}

impl UsageTotals {
    fn add(&mut self, event: &SpendEvent) {
        match event {
            SpendEvent::Answered {
                prompt_tokens,
                completion_tokens,
                cost_usd,
                ..
            } => {
                self.calls += 1;
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
                self.cost_usd += cost_usd;
            }
            SpendEvent::Failed => self.failed_calls += 1,
            SpendEvent::Retried => self.retries += 1,
        }
    }

    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A snapshot of everything metered so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageReport {
    /// Totals per model name.
    pub by_model: BTreeMap<String, UsageTotals>,
    /// Totals per caller label.
    pub by_caller: BTreeMap<String, UsageTotals>,
    /// Totals per endpoint ([`crate::EndpointConfig::label`]): with a config list,
    /// how often each entry answered and failed.
    pub by_endpoint: BTreeMap<String, UsageTotals>,
    /// Grand total.
    pub total: UsageTotals,
}

impl UsageReport {
    /// The totals of `entries` (a ledger read back).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a SpendEntry>) -> Self {
        let mut report = Self::default();
        for entry in entries {
            report.add(entry);
        }
        report
    }

    /// Counts one event: per caller, endpoint and in the grand total, and per model
    /// when a model answered.
    fn add(&mut self, entry: &SpendEntry) {
        if let SpendEvent::Answered { model, .. } = &entry.event {
            self.by_model
                .entry(model.clone())
                .or_default()
                .add(&entry.event);
        }
        for totals in [
            self.by_caller.entry(entry.caller.clone()).or_default(),
            self.by_endpoint.entry(entry.endpoint.clone()).or_default(),
            &mut self.total,
        ] {
            totals.add(&entry.event);
        }
    }
}

/// One metered event of one call: what a [`SpendLedger`] stores, and what
/// [`UsageMeter::restore`] reads back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpendEntry {
    /// The caller label (`assistant`, `optimizer`, `preflight`, …).
    pub caller: String,
    /// The endpoint's label ([`crate::EndpointConfig::label`]).
    pub endpoint: String,
    /// What happened.
    #[serde(flatten)]
    pub event: SpendEvent,
}

/// What a metered event was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SpendEvent {
    /// The endpoint answered (an uncached call).
    Answered {
        /// The model that answered.
        model: String,
        /// Prompt tokens.
        prompt_tokens: u64,
        /// Completion tokens.
        completion_tokens: u64,
        /// Cost in US dollars, at the prices of the process that made the call.
        cost_usd: f64,
    },
    /// The call failed after its retries.
    Failed,
    /// One failed attempt that is being retried.
    Retried,
}

/// Where a meter writes each event before the call's result is used, so spend
/// survives a kill (a training run's journal).
pub trait SpendLedger: Send + Sync + std::fmt::Debug {
    /// Stores `entry` durably.
    ///
    /// # Errors
    /// What kept it from being stored (the call then fails: spend that is not
    /// recorded could overrun the budget of a resumed run).
    fn append(&self, entry: &SpendEntry) -> Result<(), String>;
}

#[derive(Debug)]
struct MeterState {
    prices: PriceTable,
    budget: Budget,
    report: UsageReport,
    ledger: Option<std::sync::Arc<dyn SpendLedger>>,
}

/// Shared usage meter: clones count into the same totals, so one meter can serve
/// every client of a run. Cached replies are not metered (they cost nothing).
#[derive(Debug, Clone)]
pub struct UsageMeter {
    state: Arc<Mutex<MeterState>>,
}

impl UsageMeter {
    /// A meter with these prices and no budget.
    pub fn new(prices: PriceTable) -> Self {
        Self {
            state: Arc::new(Mutex::new(MeterState {
                prices,
                budget: Budget::default(),
                report: UsageReport::default(),
                ledger: None,
            })),
        }
    }

    /// Sets the budget.
    #[must_use]
    pub fn with_budget(self, budget: Budget) -> Self {
        self.lock().budget = budget;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        agentopt_core::lock(&self.state)
    }

    /// Fails once the budget is used up; called before every request.
    ///
    /// # Errors
    /// [`LlmError::BudgetExceeded`] with what was spent and the limit.
    pub fn check_budget(&self) -> Result<(), LlmError> {
        let state = self.lock();
        let total = state.report.total;
        let over_cost = state
            .budget
            .max_cost_usd
            .filter(|limit| total.cost_usd >= *limit)
            .map(|limit| format!("${limit:.4}"));
        let over_tokens = state
            .budget
            .max_tokens
            .filter(|limit| total.total_tokens() >= *limit)
            .map(|limit| format!("{limit} tokens"));
        match over_cost.or(over_tokens) {
            Some(limit) => Err(LlmError::BudgetExceeded {
                spent_usd: total.cost_usd,
                spent_tokens: total.total_tokens(),
                limit,
            }),
            None => Ok(()),
        }
    }

    /// Writes every later event to `ledger` before it counts (replacing any earlier
    /// ledger).
    pub fn set_ledger(&self, ledger: std::sync::Arc<dyn SpendLedger>) {
        self.lock().ledger = Some(ledger);
    }

    /// Adds events recorded earlier (by another process of the same run, read back
    /// from its ledger) to the totals, so the budget covers them; they are not
    /// written to the ledger again.
    pub fn restore<'a>(&self, entries: impl IntoIterator<Item = &'a SpendEntry>) {
        let mut state = self.lock();
        for entry in entries {
            state.report.add(entry);
        }
    }

    /// Records one completed call of `caller` answered by `endpoint`; returns its
    /// cost in dollars.
    ///
    /// # Errors
    /// [`LlmError::SpendNotRecorded`] when the ledger could not store it.
    pub fn record(
        &self,
        endpoint: &str,
        caller: &str,
        model: &str,
        usage: Usage,
    ) -> Result<f64, LlmError> {
        let cost = self.lock().prices.cost(model, usage);
        let event = SpendEvent::Answered {
            model: model.to_owned(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_usd: cost,
        };
        self.count(endpoint, caller, event)?;
        Ok(cost)
    }

    /// Records one call of `caller` that `endpoint` failed after its retries.
    ///
    /// # Errors
    /// [`LlmError::SpendNotRecorded`] when the ledger could not store it.
    pub fn record_failure(&self, endpoint: &str, caller: &str) -> Result<(), LlmError> {
        self.count(endpoint, caller, SpendEvent::Failed)
    }

    /// Records one failed attempt of `caller` at `endpoint` that is being retried.
    ///
    /// # Errors
    /// [`LlmError::SpendNotRecorded`] when the ledger could not store it.
    pub fn record_retry(&self, endpoint: &str, caller: &str) -> Result<(), LlmError> {
        self.count(endpoint, caller, SpendEvent::Retried)
    }

    /// Writes the event to the ledger, then adds it to the totals (under one lock,
    /// so the ledger's order is the meter's).
    fn count(&self, endpoint: &str, caller: &str, event: SpendEvent) -> Result<(), LlmError> {
        let entry = SpendEntry {
            caller: caller.to_owned(),
            endpoint: endpoint.to_owned(),
            event,
        };
        let mut state = self.lock();
        if let Some(ledger) = &state.ledger {
            ledger
                .append(&entry)
                .map_err(|message| LlmError::SpendNotRecorded { message })?;
        }
        state.report.add(&entry);
        Ok(())
    }

    /// Totals so far.
    pub fn report(&self) -> UsageReport {
        self.lock().report.clone()
    }
}
