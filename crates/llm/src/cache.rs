//! On-disk response cache keyed by everything that determines the answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    CallStyle, ChatMessage, ChatRequest, ChatResponse, LlmError, ResponseFormat, ToolChoice,
    ToolSchema,
};

/// Bumped whenever the key or the stored format changes, so old entries miss.
const FORMAT_VERSION: u32 = 1;

/// The parts of a request that determine the answer. The base URL is left out on
/// purpose: a local server gets a new port every run, and the same model with the
/// same prompt must still hit. The caller label is left out too.
#[derive(Serialize)]
struct KeyMaterial<'a> {
    format: u32,
    cache_seed: u64,
    model: &'a str,
    messages: &'a [ChatMessage],
    tools: &'a [ToolSchema],
    call_style: CallStyle,
    tool_choice: &'a Option<ToolChoice>,
    // Skipped when absent so keys of requests without it stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: &'a Option<ResponseFormat>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    seed: Option<i64>,
    stop: &'a [String],
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from disk.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
}

#[derive(Debug)]
struct CacheState {
    dir: PathBuf,
    seed: u64,
    enabled: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A directory of cached replies, one JSON file per key (AG2's `cache_seed`
/// idea: a different seed gives a separate cache). Writes go to a temporary file
/// in the same directory and are renamed into place, so readers never see a partial
/// entry and concurrent writers of the same key simply replace each other with
/// equal content. Clones share counters and the on/off switch.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    state: Arc<CacheState>,
}

impl ResponseCache {
    /// A cache in `dir` (created if missing) with this seed.
    ///
    /// # Errors
    /// [`LlmError::Cache`] when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>, seed: u64) -> Result<Self, LlmError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| LlmError::Cache {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            state: Arc::new(CacheState {
                dir,
                seed,
                enabled: AtomicBool::new(true),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        })
    }

    /// Turns lookups and stores on or off (for every clone).
    pub fn set_enabled(&self, enabled: bool) {
        self.state.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Whether the cache is in use.
    pub fn is_enabled(&self) -> bool {
        self.state.enabled.load(Ordering::Relaxed)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// Hit and miss counts so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.state.hits.load(Ordering::Relaxed),
            misses: self.state.misses.load(Ordering::Relaxed),
        }
    }

    /// The hex SHA-256 key of `request` sent to `model` in `style`.
    pub fn key(&self, model: &str, style: CallStyle, request: &ChatRequest) -> String {
        let material = KeyMaterial {
            format: FORMAT_VERSION,
            cache_seed: self.state.seed,
            model,
            messages: &request.messages,
            tools: &request.tools,
            call_style: style,
            tool_choice: &request.tool_choice,
            response_format: &request.response_format,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            seed: request.seed,
            stop: &request.stop,
        };
        // Serializing plain data with string keys cannot fail.
        let bytes = serde_json::to_vec(&material).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.state.dir.join(format!("{key}.json"))
    }

    /// The cached reply for `key`, counting a hit or a miss. An unreadable or
    /// corrupt entry counts as a miss and is overwritten by the next store.
    pub fn get(&self, key: &str) -> Option<ChatResponse> {
        if !self.is_enabled() {
            return None;
        }
        let found = std::fs::read(self.path(key))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ChatResponse>(&bytes).ok());
        let counter = if found.is_some() {
            &self.state.hits
        } else {
            &self.state.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `response` under `key` atomically.
    ///
    /// # Errors
    /// [`LlmError::Cache`] when the entry cannot be written.
    pub fn put(&self, key: &str, response: &ChatResponse) -> Result<(), LlmError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let path = self.path(key);
        let io_error = |source: std::io::Error| LlmError::Cache {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec(response).map_err(|error| io_error(error.into()))?;
        agentopt_core::files::write_atomic(&path, &bytes).map_err(|error| match error {
            agentopt_core::CoreError::Io(agentopt_core::IoError { source, .. }) => io_error(source),
            other => io_error(std::io::Error::other(other.to_string())),
        })
    }
}
