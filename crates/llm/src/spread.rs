//! Spreading calls over replicas of one model (vLLM, SGLang or llama.cpp servers
//! serving the same weights): each call goes to the replica with the fewest calls
//! outstanding, under a cap per replica; a replica that keeps failing is ejected
//! for a cooldown, its calls retried on the others, then probed back with one call.
//!
//! This is the load balancer a GPU cluster's router does (LiteLLM's
//! `least-busy`, Envoy's least-request with outlier ejection), kept inside the
//! client so a list of plain servers needs no router in front of it.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::fallback::{preflight_each, smallest_window};
use crate::{
    ChatModel, ChatRequest, ChatResponse, ClientOptions, ConfigListModel, EndpointCheck,
    EndpointConfig, LlmError, RetryPolicy,
};

/// How the entries of a config list (or repeated base URLs) share the calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// AG2's semantics: every call goes to the first entry that answers, in
    /// order ([`ConfigListModel`]). The default.
    #[default]
    Fallback,
    /// Calls are spread over the entries as replicas ([`SpreadModel`]).
    Spread,
}

impl FromStr for Routing {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "fallback" => Ok(Self::Fallback),
            "spread" => Ok(Self::Spread),
            other => Err(format!(
                "routing {other:?}: expected `fallback` or `spread`"
            )),
        }
    }
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fallback => "fallback",
            Self::Spread => "spread",
        })
    }
}

/// The model over `configs` that `routing` asks for, every entry an
/// [`crate::OpenAiClient`] with `options` (so they share its cache and meter).
///
/// Spread over several replicas, a transient failure is not retried on the
/// replica that failed (its backoff would hold the call while others are free):
/// each replica client makes one attempt, the other replicas are the retries, and
/// `options.retry` times the rounds over all of them
/// ([`SpreadOptions::rounds`] = its `max_attempts`).
///
/// # Errors
/// As [`ConfigListModel::from_configs`] and [`SpreadModel::new`].
pub fn routed_model(
    configs: Vec<EndpointConfig>,
    routing: Routing,
    options: &ClientOptions,
    spread: SpreadOptions,
) -> Result<Arc<dyn ChatModel>, LlmError> {
    if routing == Routing::Fallback || configs.len() < 2 {
        return Ok(Arc::new(ConfigListModel::from_configs(configs, options)?));
    }
    let mut replica_options = options.clone();
    replica_options.retry.max_attempts = 1;
    let spread = spread.retrying_with(options.retry);
    let list = ConfigListModel::from_configs(configs, &replica_options)?;
    Ok(Arc::new(SpreadModel::new(list.entries().to_vec(), spread)?))
}

/// Limits of a [`SpreadModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpreadOptions {
    /// Calls in flight at once on one replica; further calls wait for a slot.
    pub max_in_flight_per_replica: usize,
    /// Failed calls in a row (after the replica's own retries) that eject it.
    pub eject_after_failures: u32,
    /// How long an ejected replica gets no calls before one call probes it.
    pub cooldown: Duration,
    /// Rounds over the replicas a call may take: when every replica failed it
    /// once, the call waits a backoff (`retry`) and tries them all again.
    pub rounds: u32,
    /// The backoff between rounds.
    pub retry: RetryPolicy,
}

impl Default for SpreadOptions {
    fn default() -> Self {
        Self {
            max_in_flight_per_replica: 16,
            eject_after_failures: 3,
            cooldown: Duration::from_secs(30),
            rounds: 1,
            retry: RetryPolicy::default(),
        }
    }
}

impl SpreadOptions {
    /// The defaults with at most `cap` calls in flight per replica.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            max_in_flight_per_replica: cap,
            ..Self::default()
        }
    }

    /// These options retrying a call as `retry` says, over the replicas: each of
    /// its attempts is a round over them (the replicas' own clients then make one
    /// attempt, `max_attempts = 1`, so a failing replica hands the call on at once).
    #[must_use]
    pub fn retrying_with(self, retry: RetryPolicy) -> Self {
        Self {
            rounds: retry.max_attempts.max(1),
            retry,
            ..self
        }
    }
}

/// What the balancer knows of one replica.
#[derive(Debug, Default)]
struct Health {
    in_flight: usize,
    failures_in_a_row: u32,
    /// Set while ejected: no call before this instant, then one probe.
    ejected_until: Option<Instant>,
    /// A probe call is running on an ejected replica.
    probing: bool,
}

/// Where a call goes next.
enum Pick {
    /// This replica (its slot is taken); `true` when the call probes an ejected
    /// replica.
    Replica(usize, bool),
    /// Every replica not yet tried is busy or ejected: wait for a slot to free
    /// or (when given) for a cooldown to end.
    Wait(Option<Instant>),
    /// Every replica was tried, or the untried ones are ejected after a try.
    Exhausted,
}

/// A [`ChatModel`] that spreads calls over replicas of the same model.
///
/// A call goes to the untried replica with the fewest calls outstanding (ties
/// rotate) among those under [`SpreadOptions::max_in_flight_per_replica`]; when
/// all are full it waits for a slot. An endpoint failure (after the replica's
/// own retries) sends the call to another replica; after
/// [`SpreadOptions::eject_after_failures`] in a row the replica is ejected for
/// [`SpreadOptions::cooldown`], then one call probes it (an answer brings it
/// back, a failure ejects it again). A context overflow is the prompt's fault,
/// not the replica's, and is returned at once; so are local refusals (budget,
/// invalid request). When every replica failed a call, it waits a backoff and
/// takes another round, up to [`SpreadOptions::rounds`]. Replicas that share a [`crate::UsageMeter`] count answers
/// and failures per endpoint, so the report shows the share each served.
pub struct SpreadModel {
    replicas: Vec<Arc<dyn ChatModel>>,
    health: Mutex<Vec<Health>>,
    /// Signalled whenever a slot frees or a replica's health changes.
    changed: Notify,
    /// Rotates the tie-break among equally loaded replicas.
    next_start: std::sync::atomic::AtomicUsize,
    options: SpreadOptions,
}

impl std::fmt::Debug for SpreadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let models: Vec<&str> = self.replicas.iter().map(|r| r.model_name()).collect();
        f.debug_struct("SpreadModel")
            .field("replicas", &models)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SpreadModel {
    /// A model spreading calls over `replicas`.
    ///
    /// # Errors
    /// [`LlmError::Config`] when `replicas` is empty or the cap is zero.
    pub fn new(
        replicas: Vec<Arc<dyn ChatModel>>,
        options: SpreadOptions,
    ) -> Result<Self, LlmError> {
        let invalid = |field: &str, message: &str| LlmError::Config {
            source_name: "spread routing".to_owned(),
            field: field.to_owned(),
            message: message.to_owned(),
        };
        if replicas.is_empty() {
            return Err(invalid("(top level)", "no replicas to spread over"));
        }
        if options.max_in_flight_per_replica == 0 {
            return Err(invalid("max_in_flight_per_replica", "must be at least 1"));
        }
        let health = replicas.iter().map(|_| Health::default()).collect();
        Ok(Self {
            replicas,
            health: Mutex::new(health),
            changed: Notify::new(),
            next_start: std::sync::atomic::AtomicUsize::new(0),
            options,
        })
    }

    /// The replicas, in configuration order.
    pub fn replicas(&self) -> &[Arc<dyn ChatModel>] {
        &self.replicas
    }

    /// Whether each replica is ejected now (in configuration order).
    pub fn ejected(&self) -> Vec<bool> {
        self.lock()
            .iter()
            .map(|health| health.ejected_until.is_some())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Health>> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot on the best replica not in `tried`, waiting while all are
    /// full; `None` when no replica is left to try.
    async fn acquire(&self, tried: &[bool]) -> Option<Slot<'_>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.pick(tried, Instant::now()) {
                Pick::Replica(index, probe) => {
                    return Some(Slot {
                        model: self,
                        index,
                        probe,
                    });
                }
                Pick::Exhausted => return None,
                Pick::Wait(Some(deadline)) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                Pick::Wait(None) => notified.await,
            }
        }
    }

    /// The routing decision, under the lock: a probe-ready ejected replica first
    /// (one call), else the least loaded healthy one with a free slot.
    fn pick(&self, tried: &[bool], now: Instant) -> Pick {
        let mut health = self.lock();
        let count = health.len();
        let start = self
            .next_start
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % count;
        let untried = (0..count)
            .map(|offset| (start + offset) % count)
            .filter(|&index| !tried[index]);
        let mut best: Option<usize> = None;
        let mut any_healthy = false;
        let mut next_probe: Option<Instant> = None;
        for index in untried {
            let replica = &health[index];
            match replica.ejected_until {
                Some(until) if until <= now && !replica.probing => {
                    health[index].probing = true;
                    health[index].in_flight += 1;
                    return Pick::Replica(index, true);
                }
                Some(until) => {
                    next_probe = Some(next_probe.map_or(until, |soonest| soonest.min(until)));
                }
                None => {
                    any_healthy = true;
                    let free = replica.in_flight < self.options.max_in_flight_per_replica;
                    if free && best.is_none_or(|b| replica.in_flight < health[b].in_flight) {
                        best = Some(index);
                    }
                }
            }
        }
        if let Some(index) = best {
            health[index].in_flight += 1;
            return Pick::Replica(index, false);
        }
        let tried_any = tried.iter().any(|&was| was);
        match (any_healthy, next_probe) {
            (true, _) => Pick::Wait(None),
            // Everything ejected before this call tried anything: wait for the
            // first cooldown to end and probe (or for a probe to bring one back).
            (false, Some(deadline)) if !tried_any => Pick::Wait(Some(deadline.max(now))),
            _ => Pick::Exhausted,
        }
    }

    /// Records how a call on `index` ended: an answer clears the replica's
    /// failures (and its ejection), an endpoint failure counts towards ejection.
    fn settle(&self, slot: &Slot<'_>, failed: bool) {
        let index = slot.index;
        let mut health = self.lock();
        let replica = &mut health[index];
        if failed {
            replica.failures_in_a_row += 1;
            if slot.probe || replica.failures_in_a_row >= self.options.eject_after_failures {
                replica.ejected_until = Some(Instant::now() + self.options.cooldown);
                replica.failures_in_a_row = 0;
                tracing::warn!(
                    replica = index,
                    cooldown = ?self.options.cooldown,
                    "replica ejected after repeated failures"
                );
            }
        } else {
            if replica.ejected_until.is_some() {
                tracing::info!(replica = index, "ejected replica answered its probe; back");
            }
            replica.failures_in_a_row = 0;
            replica.ejected_until = None;
        }
    }

    /// One round: the call on the best replica, then on each other one it has
    /// not tried while endpoint failures come back.
    async fn one_round(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut tried = vec![false; self.replicas.len()];
        let mut last_error = None;
        while let Some(slot) = self.acquire(&tried).await {
            let index = slot.index;
            tried[index] = true;
            let result = self.replicas[index].chat(request.clone()).await;
            match result {
                Err(error) if error.is_endpoint_failure() && !is_overflow(&error) => {
                    self.settle(&slot, true);
                    tracing::warn!(
                        replica = index,
                        %error,
                        "replica failed the call; trying another"
                    );
                    last_error = Some(error);
                }
                Ok(response) => {
                    self.settle(&slot, false);
                    return Ok(response);
                }
                Err(error) => return Err(error),
            }
            drop(slot);
        }
        Err(last_error.unwrap_or_else(every_replica_ejected))
    }
}

/// A context overflow is the prompt's fault, not the replica's.
fn is_overflow(error: &LlmError) -> bool {
    matches!(error, LlmError::ContextOverflow { .. })
}

fn every_replica_ejected() -> LlmError {
    LlmError::Config {
        source_name: "spread routing".to_owned(),
        field: "(replicas)".to_owned(),
        message: "every replica is ejected".to_owned(),
    }
}

/// One call's slot on a replica; frees it (and wakes waiters) when dropped, so
/// a cancelled call never leaks a slot.
struct Slot<'a> {
    model: &'a SpreadModel,
    index: usize,
    /// The call probes an ejected replica.
    probe: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        {
            let mut health = self.model.lock();
            let replica = &mut health[self.index];
            replica.in_flight -= 1;
            if self.probe {
                // A probe cancelled before it ended leaves the replica ejected,
                // ready for the next probe.
                replica.probing = false;
            }
        }
        self.model.changed.notify_waiters();
    }
}

#[async_trait]
impl ChatModel for SpreadModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut last_error = None;
        for round in 1..=self.options.rounds.max(1) {
            if round > 1 {
                tokio::time::sleep(self.options.retry.delay(round - 1, None)).await;
            }
            match self.one_round(&request).await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_endpoint_failure() && !is_overflow(&error) => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(every_replica_ejected))
    }

    /// The smallest window of the replicas: a prompt sized for it fits whichever
    /// replica answers.
    async fn context_window(&self) -> Result<u32, LlmError> {
        smallest_window(&self.replicas).await
    }

    /// The first replica's model.
    fn model_name(&self) -> &str {
        self.replicas[0].model_name()
    }

    /// Checks every replica: one that cannot answer is a configuration mistake
    /// to fix before the run.
    async fn preflight(&self, within: Duration) -> Result<Vec<EndpointCheck>, LlmError> {
        preflight_each(&self.replicas, within).await
    }
}
