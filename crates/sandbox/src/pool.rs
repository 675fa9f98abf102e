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

struct Shared {
    environment: PythonEnvironment,
    policy: SandboxPolicy,
    size: usize,
    ready: Mutex<Vec<Worker>>,
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
    /// Creates the pool and starts filling it in the background (needs a tokio
    /// runtime). Fails early when the policy cannot be met here (no isolation).
    pub fn new(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        size: usize,
    ) -> Result<Self, SandboxError> {
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
                starting: Semaphore::new(size.max(1)),
            }),
        };
        for _ in 0..size {
            pool.refill();
        }
        Ok(pool)
    }

    /// A session on a warm worker when one is ready, else on a worker started now.
    pub async fn session(&self) -> Result<PythonSession, SandboxError> {
        let warm = self
            .shared
            .ready
            .lock()
            .ok()
            .and_then(|mut ready| ready.pop());
        self.refill();
        let worker = match warm {
            Some(worker) => worker,
            None => Worker::start(&self.shared.environment, &self.shared.policy).await?,
        };
        Ok(PythonSession::from_worker(
            self.shared.environment.clone(),
            self.shared.policy.clone(),
            worker,
        ))
    }

    /// Workers ready to hand out right now.
    pub fn ready_count(&self) -> usize {
        self.shared
            .ready
            .lock()
            .map(|ready| ready.len())
            .unwrap_or(0)
    }

    fn refill(&self) {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
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
