//! Where a conversation's code runs: a factory of [`Executor`] sessions, started
//! lazily on the first code or learned-function call, one per conversation.

use std::sync::Arc;

use agentopt_sandbox::{
    CellOutcome, Executor, LearnedFunction, Protections, PythonEnvironment, PythonSession,
    SandboxError, SandboxPolicy, WorkerPool,
};

/// Sessions [`SandboxSessions::new`] keeps forked ahead: enough that a conversation
/// rarely waits for a fork, few enough to cost nothing while idle.
const SESSIONS_AHEAD: usize = 2;
use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// An agent's executor: the factory plus the session of the current conversation,
/// started on first use.
pub(crate) struct ExecutorSlot {
    factory: Arc<dyn ExecutorFactory>,
    session: Option<Box<dyn Executor>>,
}

impl ExecutorSlot {
    pub(crate) fn new(factory: Arc<dyn ExecutorFactory>) -> Self {
        Self {
            factory,
            session: None,
        }
    }

    /// The conversation's session, started now if needed, with `defined` defined
    /// in it for code (a definition that raises is logged; cells calling that
    /// function then fail with a `NameError` the model sees).
    pub(crate) async fn session(
        &mut self,
        defined: &[LearnedFunction],
    ) -> Result<&mut Box<dyn Executor>, SandboxError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => {
                let mut session = self.factory.start().await?;
                if !defined.is_empty() {
                    let outcome = session.define_functions(defined).await?;
                    if let Some(error) = outcome.error_text() {
                        tracing::warn!("defining learned functions for code: {error}");
                    }
                }
                session
            }
        };
        Ok(self.session.insert(session))
    }

    /// Ends the conversation's session (its state and its slot).
    pub(crate) fn release(&mut self) {
        self.session = None;
    }
}
