//! Where a conversation's code runs: a factory of [`Executor`] sessions, started
//! lazily on the first code or learned-function call, one per conversation.

use std::sync::Arc;

use agentopt_sandbox::{
    CellOutcome, Executor, LearnedFunction, Protections, PythonEnvironment, PythonSession,
    SandboxError, SandboxPolicy, WorkerPool,
};
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

enum Source {
    Fresh(Box<(PythonEnvironment, SandboxPolicy)>),
    Pool(Arc<WorkerPool>),
}

/// Sandboxed [`PythonSession`]s, started fresh or taken from a [`WorkerPool`],
/// optionally capped in how many are alive at once (a conversation waits for a slot
/// before its first code runs).
pub struct SandboxSessions {
    source: Source,
    live: Option<Arc<Semaphore>>,
}

impl std::fmt::Debug for SandboxSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSessions")
            .field("pooled", &matches!(self.source, Source::Pool(_)))
            .field(
                "free_slots",
                &self.live.as_ref().map(|live| live.available_permits()),
            )
            .finish()
    }
}

impl SandboxSessions {
    /// Starts a new worker for every session.
    pub fn new(environment: PythonEnvironment, policy: SandboxPolicy) -> Self {
        Self {
            source: Source::Fresh(Box::new((environment, policy))),
            live: None,
        }
    }

    /// Takes pre-warmed workers from `pool`.
    pub fn pooled(pool: Arc<WorkerPool>) -> Self {
        Self {
            source: Source::Pool(pool),
            live: None,
        }
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
        let session = match &self.source {
            Source::Fresh(fresh) => PythonSession::start(&fresh.0, &fresh.1).await?,
            Source::Pool(pool) => pool.session().await?,
        };
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

    /// The conversation's session, started now if needed.
    pub(crate) async fn session(&mut self) -> Result<&mut Box<dyn Executor>, SandboxError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => self.factory.start().await?,
        };
        Ok(self.session.insert(session))
    }

    /// Ends the conversation's session (its state and its slot).
    pub(crate) fn release(&mut self) {
        self.session = None;
    }
}
