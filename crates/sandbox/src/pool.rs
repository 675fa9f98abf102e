//! A pool of pre-warmed workers, so a new conversation does not pay for the interpreter
//! start and the preload imports (≈ 0.5 s for sympy).

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::worker::Worker;
use crate::{PythonEnvironment, PythonSession, SandboxError, SandboxPolicy};

/// Keeps up to `size` started workers ready; [`WorkerPool::session`] hands one out and
/// starts a replacement in the background.
pub struct WorkerPool {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    environment: PythonEnvironment,
    policy: SandboxPolicy,
    size: usize,
    ready: Mutex<Vec<Worker>>,
    runtime: tokio::runtime::Handle,
    /// Bounds the workers being started at once to the pool size.
    starting: Semaphore,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("size", &self.shared.size)
            .field("ready", &self.ready_count())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Creates the pool and starts filling it in the background on the current tokio
    /// runtime. Fails early when called outside one, or when the policy cannot be met
    /// here (no isolation).
    pub fn new(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        size: usize,
    ) -> Result<Self, SandboxError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| SandboxError::WorkerStart {
                detail: format!("WorkerPool::new needs a tokio runtime: {e}"),
                stderr: String::new(),
            })?;
        if let crate::isolation::Isolation::Unavailable(reason) = crate::isolation::isolation()
            && !policy.allow_unsandboxed
        {
            return Err(SandboxError::IsolationUnavailable {
                reason: reason.clone(),
            });
        }
        let pool = Self {
            shared: Arc::new(Shared {
                environment,
                policy,
                size,
                ready: Mutex::new(Vec::with_capacity(size)),
                runtime,
                starting: Semaphore::new(size.max(1)),
            }),
        };
        for _ in 0..size {
            Shared::refill(&pool.shared);
        }
        Ok(pool)
    }

    /// A session on a warm worker when one is ready, else on a worker started now.
    /// The session's restarts after a timeout or crash also draw from this pool.
    pub async fn session(&self) -> Result<PythonSession, SandboxError> {
        let worker = self.shared.take().await?;
        Ok(PythonSession::from_pool(Arc::clone(&self.shared), worker))
    }

    /// Workers ready to hand out right now.
    pub fn ready_count(&self) -> usize {
        self.shared
            .ready
            .lock()
            .map(|ready| ready.len())
            .unwrap_or(0)
    }
}

impl Shared {
    pub(crate) fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// A ready worker, or one started now; either way a replacement is started.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Worker, SandboxError> {
        let warm = self.ready.lock().ok().and_then(|mut ready| ready.pop());
        Self::refill(self);
        match warm {
            Some(worker) => Ok(worker),
            None => Worker::start(&self.environment, &self.policy).await,
        }
    }

    fn refill(self: &Arc<Self>) {
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            let Ok(_permit) = shared.starting.acquire().await else {
                return;
            };
            if shared
                .ready
                .lock()
                .map(|r| r.len() >= shared.size)
                .unwrap_or(true)
            {
                return;
            }
            match Worker::start(&shared.environment, &shared.policy).await {
                Ok(worker) => {
                    if let Ok(mut ready) = shared.ready.lock()
                        && ready.len() < shared.size
                    {
                        ready.push(worker);
                    }
                }
                Err(e) => tracing::warn!("could not pre-start a python worker: {e}"),
            }
        });
    }
}
