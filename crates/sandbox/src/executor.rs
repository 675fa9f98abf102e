//! The boundary of where code runs: the [`Executor`] trait, [`ExecutorFactory`]
//! (one session per conversation) with its sandboxed implementation
//! [`SandboxSessions`], and [`SharedSession`], one lazily started session shared by
//! several users (each call in a fresh namespace).

use std::sync::Arc;

use agentopt_core::LearnedFunction;
use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::{
    CellOutcome, EnvironmentOptions, Protections, PythonEnvironment, PythonSession, SandboxError,
    SandboxPolicy, WorkerPool,
};

/// Sessions [`SandboxSessions::new`] keeps forked ahead: enough that a conversation
/// rarely waits for a fork, few enough to cost nothing while idle.
const SESSIONS_AHEAD: usize = 2;

/// Runs Python code somewhere. Implement it to plug in your own executor.
#[async_trait]
pub trait Executor: Send {
    /// Runs one cell; its globals persist for later cells.
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError>;

    /// Runs `function.code` in a fresh namespace and calls `name(**arguments)`; the
    /// result's `str` is [`CellOutcome::value`].
    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<CellOutcome, SandboxError>;

    /// Drops all state: the next cell starts from empty globals.
    async fn restart(&mut self) -> Result<(), SandboxError>;

    /// Makes `functions` callable from cells for the rest of the session (each
    /// defined in a namespace of its own, bound under its name in the globals; calls
    /// counted in [`CellOutcome::code_calls`]). An executor that runs no Python
    /// cannot: the default says so.
    ///
    /// # Errors
    /// [`SandboxError::FunctionsUnsupported`] by default.
    async fn define_functions(
        &mut self,
        functions: &[LearnedFunction],
    ) -> Result<CellOutcome, SandboxError> {
        let _ = functions;
        Err(SandboxError::FunctionsUnsupported)
    }

    /// The protections the code actually runs under.
    fn protections(&self) -> Protections;
}

/// Starts executor sessions. Shared by many conversations; each conversation holds
/// one session at most, from its first code execution to the end of the chat.
#[async_trait]
pub trait ExecutorFactory: Send + Sync {
    /// A fresh session with empty state.
    ///
    /// # Errors
    /// Whatever prevented the session from starting.
    async fn start(&self) -> Result<Box<dyn Executor>, SandboxError>;
}

/// Sandboxed [`PythonSession`]s, each a fresh fork of a warm fork server (sympy and
/// numpy already imported) taken from a [`WorkerPool`], optionally capped in how many
/// are alive at once (a conversation waits for a slot before its first code runs).
pub struct SandboxSessions {
    pool: Arc<WorkerPool>,
    live: Option<Arc<Semaphore>>,
}

impl std::fmt::Debug for SandboxSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSessions")
            .field("pool", &self.pool)
            .field(
                "free_slots",
                &self.live.as_ref().map(|live| live.available_permits()),
            )
            .finish()
    }
}

impl SandboxSessions {
    /// Warm sessions under `policy`: the fork server starts with the first session
    /// asked for (so this needs no tokio runtime), and a few sessions are kept
    /// forked ahead from then on.
    pub fn new(environment: PythonEnvironment, policy: SandboxPolicy) -> Self {
        Self::pooled(Arc::new(WorkerPool::lazy(
            environment,
            policy,
            SESSIONS_AHEAD,
        )))
    }

    /// Warm sessions under `policy`, started now: the fork server boots in the
    /// background at once and `ahead` sessions are kept forked from then on (size it
    /// to the conversations run at once, so none waits for a fork). Call it inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`SandboxError::WorkerStart`] outside a tokio runtime;
    /// [`SandboxError::IsolationUnavailable`] when the policy cannot be met here.
    pub fn warm(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        ahead: usize,
    ) -> Result<Self, SandboxError> {
        Ok(Self::pooled(Arc::new(WorkerPool::new(
            environment,
            policy,
            ahead.max(1),
        )?)))
    }

    /// Warm sessions under `policy` (started now, `ahead` kept forked, as
    /// [`Self::warm`]) on these sessions' fork server when `policy` differs from
    /// theirs only in timeouts or output cap, else on a server of its own; without
    /// this one's limit on live sessions.
    ///
    /// # Errors
    /// As [`Self::warm`].
    pub fn sibling(&self, policy: SandboxPolicy, ahead: usize) -> Result<Self, SandboxError> {
        Ok(Self::pooled(Arc::new(
            self.pool.sibling(policy, ahead.max(1))?,
        )))
    }

    /// Takes sessions from `pool`.
    pub fn pooled(pool: Arc<WorkerPool>) -> Self {
        Self { pool, live: None }
    }

    /// Allows at most `sessions` alive at once (at least one).
    #[must_use]
    pub fn with_max_live(mut self, sessions: usize) -> Self {
        self.live = Some(Arc::new(Semaphore::new(sessions.max(1))));
        self
    }
}

#[async_trait]
impl ExecutorFactory for SandboxSessions {
    async fn start(&self) -> Result<Box<dyn Executor>, SandboxError> {
        let permit = match &self.live {
            Some(live) => Some(Arc::clone(live).acquire_owned().await.map_err(|_| {
                SandboxError::WorkerStart {
                    detail: "the session limit was closed".to_owned(),
                    stderr: String::new(),
                }
            })?),
            None => None,
        };
        let session = self.pool.session().await?;
        Ok(Box::new(LimitedSession {
            session,
            _slot: permit,
        }))
    }
}

/// A session holding its slot under the live-session limit until dropped.
struct LimitedSession {
    session: PythonSession,
    _slot: Option<OwnedSemaphorePermit>,
}

#[async_trait]
impl Executor for LimitedSession {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        self.session.run_cell(code).await
    }

    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &Map<String, Value>,
    ) -> Result<CellOutcome, SandboxError> {
        self.session.call_function(function, arguments).await
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        self.session.restart().await
    }

    async fn define_functions(
        &mut self,
        functions: &[LearnedFunction],
    ) -> Result<CellOutcome, SandboxError> {
        self.session.define_functions(functions).await
    }

    fn protections(&self) -> Protections {
        self.session.protections().clone()
    }
}

/// One warm sandbox session, started on first use and shared by every clone (an
/// optimizer trying proposed functions and the functions it hands out). Each
/// learned-function call runs in a fresh namespace, so sharing leaks no state
/// between them. As an [`ExecutorFactory`] it hands out itself.
#[derive(Clone)]
pub struct SharedSession {
    policy: SandboxPolicy,
    environment: EnvironmentOptions,
    session: Arc<Mutex<Option<PythonSession>>>,
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSession")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SharedSession {
    /// A session under `policy`, started (with the default Python environment) by
    /// its first request.
    pub fn new(policy: SandboxPolicy) -> Self {
        Self {
            policy,
            environment: EnvironmentOptions::default(),
            session: Arc::new(Mutex::new(None)),
        }
    }

    /// The same, its session started in the environment `options` describe
    /// (extra allowlisted packages, another home or interpreter).
    #[must_use]
    pub fn with_environment(mut self, options: EnvironmentOptions) -> Self {
        self.environment = options;
        self
    }

    /// Runs `request` on the session. The session is taken out of its slot for the
    /// request and put back after, so a request abandoned halfway (Ctrl-C) drops
    /// the worker with it instead of leaving an unread reply in its pipe.
    ///
    /// # Errors
    /// Whatever prevented the session from starting, or the request's error.
    pub async fn with_session<T>(
        &self,
        request: impl AsyncFnOnce(&mut PythonSession) -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let mut slot = self.session.lock().await;
        let mut session = match slot.take() {
            Some(session) => session,
            None => {
                // Creating the venv (first use on a machine) runs pip: blocking.
                let options = self.environment.clone();
                let environment =
                    tokio::task::spawn_blocking(move || PythonEnvironment::ensure_with(&options))
                        .await
                        .map_err(|error| SandboxError::WorkerStart {
                            detail: format!("preparing the Python environment: {error}"),
                            stderr: String::new(),
                        })??;
                PythonSession::start(&environment, &self.policy).await?
            }
        };
        let result = request(&mut session).await;
        *slot = Some(session);
        result
    }
}

#[async_trait]
impl Executor for SharedSession {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        self.with_session(async |session| session.run_cell(code).await)
            .await
    }

    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &Map<String, Value>,
    ) -> Result<CellOutcome, SandboxError> {
        self.with_session(async |session| session.call_function(function, arguments).await)
            .await
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        self.with_session(async |session| session.restart().await)
            .await
    }

    fn protections(&self) -> Protections {
        // A worker is only started by a request; before that nothing protects
        // anything yet, which the empty report says.
        self.session
            .try_lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(|session| session.protections().clone()))
            .unwrap_or_default()
    }
}

#[async_trait]
impl ExecutorFactory for SharedSession {
    async fn start(&self) -> Result<Box<dyn Executor>, SandboxError> {
        Ok(Box::new(self.clone()))
    }
}
