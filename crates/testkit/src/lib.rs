//! Test kit: a scripted OpenAI-compatible HTTP server bound to 127.0.0.1, so every
//! crate's tests use the real client over real HTTP with no network.
//!
//! ```no_run
//! # async fn demo() {
//! use agentopt_testkit::{Reply, ScriptedServer};
//! use serde_json::json;
//!
//! let server = ScriptedServer::start([
//!     Reply::rate_limited(Some(1)),
//!     Reply::tool_call("python", json!({"cell": "print(1)"})),
//!     Reply::text("The answer is \\boxed{1}."),
//! ])
//! .await;
//! // point a client at server.base_url() ("http://127.0.0.1:PORT/v1") …
//! assert_eq!(server.requests().len(), 0);
//! # }
//! ```
//!
//! Endpoints:
//! - `POST …/chat/completions` (any prefix, so OpenAI `/v1/…` and Azure
//!   `/openai/deployments/D/…` both work): answered from the script or rule;
//! - `GET /props`: llama.cpp-style `{"n_ctx", "default_generation_settings": {"n_ctx"}}`;
//! - `GET …/models`: `{"data": [{"id": MODEL, "max_model_len": N_CTX}]}` (vLLM style);
//! - `GET /health`: `{"status": "ok"}`.
//!
//! A chat request whose prompt (counted with a real tokenizer, [`prompt_tokens`])
//! plus its `max_tokens` exceeds the server's context window ([`DEFAULT_N_CTX`]
//! unless set) is answered 400 `context_length_exceeded`, as OpenAI and vLLM do,
//! before the script or rule is asked; [`ServerBuilder::without_context_limit`]
//! turns that off.
//!
//! Every request (method, path, headers, body) is recorded for assertions. When the
//! script runs out the server answers HTTP 410 "script exhausted", which no client
//! retries, so a test that makes one call too many fails loudly.

mod http;
mod prompt;
mod reply;
mod snapshot;
mod tokens;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use prompt::{listed_names, prompt_section};
pub use reply::{Completion, DEFAULT_USAGE, Gate, Reply, ScriptedCall};
pub use snapshot::{TIMING_FIELDS, scrub_timings};
pub use tokens::{count_tokens, prompt_tokens};

/// Context window reported by `/props` and `/models` unless set otherwise.
pub const DEFAULT_N_CTX: u32 = 4096;
/// Model name reported in completions unless set otherwise.
pub const DEFAULT_MODEL: &str = "scripted-model";

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string (without `?`), if any.
    pub query: Option<String>,
    /// Headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The body as received (lossy UTF-8).
    pub raw_body: String,
}

impl RecordedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether this is a chat completion call.
    pub fn is_chat(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/chat/completions")
    }
}

/// A rule deciding the reply from the request.
pub type Rule = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

enum Source {
    Script(VecDeque<Reply>),
    Rule(Arc<Rule>),
}

struct State {
    source: Mutex<Source>,
    recorded: Mutex<Vec<RecordedRequest>>,
    model: String,
    n_ctx: u32,
    serve_props: bool,
    report_n_ctx: bool,
    enforce_n_ctx: bool,
    sequence: Mutex<u64>,
    in_flight: Mutex<InFlight>,
    /// Sent to the next GET requests before they are answered normally.
    get_faults: Mutex<VecDeque<Reply>>,
}

#[derive(Default)]
struct InFlight {
    now: usize,
    peak: usize,
}

// A test that panicked while holding a lock must not hide its own failure behind a
// poisoned-lock panic here.
use agentopt_core::lock;

impl State {
    fn next_reply(&self, request: &RecordedRequest) -> Reply {
        if self.enforce_n_ctx
            && let Some(body) = tokens::overflow(&request.body, self.n_ctx)
        {
            return Reply::Status {
                status: 400,
                body,
                retry_after: None,
            };
        }
        let rule = match &mut *lock(&self.source) {
            Source::Script(queue) => {
                return queue.pop_front().unwrap_or_else(|| Reply::Status {
                    status: 410,
                    body: "scripted server: script exhausted".to_owned(),
                    retry_after: None,
                });
            }
            Source::Rule(rule) => Arc::clone(rule),
        };
        rule(request)
    }

    /// Counts a chat request as in flight until the returned guard drops.
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        let mut in_flight = lock(&self.in_flight);
        in_flight.now += 1;
        in_flight.peak = in_flight.peak.max(in_flight.now);
        InFlightGuard(Arc::clone(self))
    }

    fn next_sequence(&self) -> u64 {
        let mut sequence = lock(&self.sequence);
        *sequence += 1;
        *sequence
    }
}

/// Marks one chat request in flight.
struct InFlightGuard(Arc<State>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        lock(&self.0.in_flight).now -= 1;
    }
}

/// Options for [`ScriptedServer`]; start with [`ScriptedServer::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    model: String,
    n_ctx: u32,
    serve_props: bool,
    report_n_ctx: bool,
    get_faults: Vec<Reply>,
    enforce_n_ctx: bool,
}

impl ServerBuilder {
    /// Sends `faults` (statuses, resets, delays …), one each, to the first GET
    /// requests (`…/models`, `/props`, `/health`) before those are answered
    /// normally: a preflight that meets a 429 or a 503.
    #[must_use]
    pub fn get_faults(mut self, faults: impl IntoIterator<Item = Reply>) -> Self {
        self.get_faults.extend(faults);
        self
    }

    /// Model name the server reports.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Context window reported by `/props` and `/models`, and enforced.
    #[must_use]
    pub fn n_ctx(mut self, n_ctx: u32) -> Self {
        self.n_ctx = n_ctx;
        self
    }

    /// Answers `GET /props` with 404, like a server that is not llama.cpp (vLLM).
    #[must_use]
    pub fn without_props(mut self) -> Self {
        self.serve_props = false;
        self
    }

    /// Reports no context window anywhere: `GET /props` answers 404 and `GET …/models`
    /// lists the model without `max_model_len`, like the hosted OpenAI API.
    #[must_use]
    pub fn without_context_window(mut self) -> Self {
        self.serve_props = false;
        self.report_n_ctx = false;
        self
    }

    /// Answers prompts of any length (for tests about what a client does with
    /// prompts it did not size, or with a window it was told wrongly).
    #[must_use]
    pub fn without_context_limit(mut self) -> Self {
        self.enforce_n_ctx = false;
        self
    }

    /// Starts a server that replays `script` in order.
    pub async fn script(self, script: impl IntoIterator<Item = Reply>) -> ScriptedServer {
        self.launch(Source::Script(script.into_iter().collect()))
            .await
    }

    /// Starts a server that answers every chat request with `rule(request)`.
    pub async fn rule(
        self,
        rule: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> ScriptedServer {
        self.launch(Source::Rule(Arc::new(rule))).await
    }

    async fn launch(self, source: Source) -> ScriptedServer {
        // Binding an ephemeral loopback port only fails when the machine is out of
        // sockets; a test kit cannot do anything useful then.
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("testkit: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("testkit: local address");
        let state = Arc::new(State {
            source: Mutex::new(source),
            recorded: Mutex::new(Vec::new()),
            model: self.model,
            n_ctx: self.n_ctx,
            serve_props: self.serve_props,
            report_n_ctx: self.report_n_ctx,
            enforce_n_ctx: self.enforce_n_ctx,
            sequence: Mutex::new(0),
            in_flight: Mutex::new(InFlight::default()),
            get_faults: Mutex::new(self.get_faults.into()),
        });
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(http::serve_connection(stream, Arc::clone(&accept_state)));
            }
        });
        ScriptedServer { addr, state, task }
    }
}

/// A scripted OpenAI-compatible server on 127.0.0.1:ephemeral; stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Options: model name, context window.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            model: DEFAULT_MODEL.to_owned(),
            n_ctx: DEFAULT_N_CTX,
            serve_props: true,
            report_n_ctx: true,
            get_faults: Vec::new(),
            enforce_n_ctx: true,
        }
    }

    /// Starts a server with default options that replays `script` in order.
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> Self {
        Self::builder().script(script).await
    }

    /// Starts a server with default options that answers with `rule(request)`.
    pub async fn with_rule(
        rule: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::builder().rule(rule).await
    }

    /// The OpenAI-style base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server root, `http://127.0.0.1:PORT` (for Azure-style clients).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends replies to the script (no effect on a rule server).
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Source::Script(queue) = &mut *lock(&self.state.source) {
            queue.extend(replies);
        }
    }

    /// Scripted replies not yet used.
    pub fn remaining(&self) -> usize {
        match &*lock(&self.state.source) {
            Source::Script(queue) => queue.len(),
            Source::Rule(_) => 0,
        }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.recorded).clone()
    }

    /// The most chat requests that were ever being answered at the same time.
    pub fn peak_in_flight(&self) -> usize {
        lock(&self.state.in_flight).peak
    }

    /// The chat completion requests received so far.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_chat)
            .collect()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
