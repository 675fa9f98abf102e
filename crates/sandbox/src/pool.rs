//! Warm sessions on demand: a fork server that has imported the preloads, and a few
//! sessions forked ahead of time, so a conversation's first cell runs at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::worker::Worker;
use crate::zygote::ForkServer;
use crate::{PythonEnvironment, PythonSession, SandboxError, SandboxPolicy};

/// The longest a fork ahead waits for the pool's sessions to be between requests.
const REFILL_PATIENCE: Duration = Duration::from_millis(100);

/// Keeps up to `size` sessions forked and ready; [`WorkerPool::session`] hands one
/// out, and a replacement is forked in the background once its first request has
/// answered and no request of the pool's sessions is running (a fork and its
/// warm-up take CPU that concurrent cells would wait for). Every session is a fresh
/// fork of the same warm server: its own namespaces, uid, workspace and cgroups,
/// nothing left from any earlier session.
pub struct WorkerPool {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    environment: PythonEnvironment,
    policy: SandboxPolicy,
    size: usize,
    /// The fork server, started on first use and again if it died; shared with the
    /// pool's siblings ([`WorkerPool::sibling`]).
    server: Arc<ServerSlot>,
    ready: Mutex<Vec<Worker>>,
    /// Bounds the sessions being forked ahead at once to the pool size.
    forking: Semaphore,
    /// Requests running in the pool's sessions, and a signal when none is.
    running: AtomicUsize,
    quiet: Notify,
}

/// Where a pool keeps its fork server.
type ServerSlot = tokio::sync::Mutex<Option<Arc<ForkServer>>>;

/// Counts one request running in a pool's session while it lives.
pub(crate) struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
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
    /// Creates the pool and starts the fork server and `size` sessions in the
    /// background on the current tokio runtime. Fails early when called outside one,
    /// or when the policy cannot be met here (no isolation).
    pub fn new(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        size: usize,
    ) -> Result<Self, SandboxError> {
        Self::started(environment, policy, size, Arc::default())
    }

    /// A pool of `size` sessions under `policy`, started now as [`Self::new`] starts
    /// one, that forks from this pool's server when `policy` gives its sessions the
    /// same as this pool's (it may differ in timeouts and output cap, as a run's
    /// answer checks beside its conversations): one interpreter with the preloads in
    /// memory and one boot instead of two. Else it gets a server of its own.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn sibling(&self, policy: SandboxPolicy, size: usize) -> Result<Self, SandboxError> {
        let server = if self.shared.policy.forks_alike(&policy) {
            Arc::clone(&self.shared.server)
        } else {
            Arc::default()
        };
        Self::started(self.shared.environment.clone(), policy, size, server)
    }

    fn started(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        size: usize,
        server: Arc<ServerSlot>,
    ) -> Result<Self, SandboxError> {
        tokio::runtime::Handle::try_current().map_err(|e| SandboxError::WorkerStart {
            detail: format!("a warm WorkerPool needs a tokio runtime: {e}"),
            stderr: String::new(),
        })?;
        if let crate::isolation::Isolation::Unavailable(reason) = crate::isolation::isolation()
            && !policy.allow_unsandboxed
        {
            return Err(SandboxError::IsolationUnavailable {
                reason: reason.clone(),
            });
        }
        let pool = Self::on(environment, policy, size, server);
        Shared::refill(&pool.shared);
        Ok(pool)
    }

    /// A pool that starts nothing until the first [`Self::session`] call (so it can be
    /// built outside a tokio runtime); that call starts the fork server.
    pub fn lazy(environment: PythonEnvironment, policy: SandboxPolicy, size: usize) -> Self {
        Self::on(environment, policy, size, Arc::default())
    }

    fn on(
        environment: PythonEnvironment,
        policy: SandboxPolicy,
        size: usize,
        server: Arc<ServerSlot>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                environment,
                policy,
                size,
                server,
                ready: Mutex::new(Vec::with_capacity(size)),
                forking: Semaphore::new(size.max(1)),
                running: AtomicUsize::new(0),
                quiet: Notify::new(),
            }),
        }
    }

    /// A session on a ready fork when there is one, else on one forked now.
    /// The session's restarts after a timeout or crash also draw from this pool.
    pub async fn session(&self) -> Result<PythonSession, SandboxError> {
        let worker = self.shared.take().await?;
        Ok(PythonSession::from_pool(Arc::clone(&self.shared), worker))
    }

    /// Sessions ready to hand out right now.
    pub fn ready_count(&self) -> usize {
        self.shared
            .ready
            .lock()
            .map(|ready| ready.len())
            .unwrap_or(0)
    }

    /// The policy every session of this pool runs under.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.shared.policy
    }
}

impl Shared {
    pub(crate) fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// The running fork server, started now if there is none (or it died).
    async fn server(&self) -> Result<Arc<ForkServer>, SandboxError> {
        let mut server = self.server.lock().await;
        if let Some(running) = server.as_ref().filter(|s| s.is_alive()) {
            return Ok(Arc::clone(running));
        }
        let started = ForkServer::start(&self.environment, &self.policy).await?;
        *server = Some(Arc::clone(&started));
        Ok(started)
    }

    /// A ready session, or one forked now. The caller owes the pool a replacement
    /// ([`Self::refill`]) once the session's first request has answered: a fork
    /// copies the server's page tables (about a millisecond of CPU), and forked at
    /// once it would compete with exactly that first cell.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Worker, SandboxError> {
        let warm = self.ready.lock().ok().and_then(|mut ready| {
            // A ready session may have died meanwhile (its server was killed).
            ready.retain(Worker::is_alive);
            ready.pop()
        });
        match warm {
            Some(worker) => Ok(worker),
            None => self.server().await?.session().await,
        }
    }

    /// Marks a request of one of the pool's sessions as running until dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(Arc::clone(self))
    }

    /// Until no request of the pool's sessions runs, or [`REFILL_PATIENCE`] passed.
    async fn until_quiet(&self) {
        let deadline = Instant::now() + REFILL_PATIENCE;
        loop {
            // Created before the check, so a notification in between is not lost.
            let quiet = self.quiet.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline.into(), quiet)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Forks sessions in the background until `size` are ready (nothing outside a
    /// tokio runtime, as when a session is dropped after its runtime has ended).
    pub(crate) fn refill(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            shared.until_quiet().await;
            let Ok(_permit) = shared.forking.acquire().await else {
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
            let forked = match shared.server().await {
                Ok(server) => server.session().await,
                Err(e) => Err(e),
            };
            match forked {
                Ok(worker) => {
                    let short = shared.ready.lock().is_ok_and(|mut ready| {
                        if ready.len() < shared.size {
                            ready.push(worker);
                        }
                        ready.len() < shared.size
                    });
                    if short {
                        Shared::refill(&shared);
                    }
                }
                Err(e) => tracing::warn!("could not fork a python session ahead: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn siblings_that_differ_only_in_host_limits_share_a_fork_server() {
        let environment = match PythonEnvironment::ensure() {
            Ok(environment) => environment,
            Err(e) => panic!("python environment setup failed: {e}"),
        };
        let base = SandboxPolicy {
            preload: Vec::new(),
            warm_up: String::new(),
            ..SandboxPolicy::default()
        };
        let checks = SandboxPolicy {
            cell_timeout: Duration::from_secs(1),
            function_timeout: Duration::from_secs(30),
            output_limit: 10,
            ..base.clone()
        };
        let other = SandboxPolicy {
            max_open_files: 128,
            ..base.clone()
        };
        let server = async |pool: Result<WorkerPool, SandboxError>| {
            let pool = pool.unwrap_or_else(|e| panic!("pool start failed: {e}"));
            let started = pool.shared.server().await;
            started.unwrap_or_else(|e| panic!("fork server start failed: {e}"))
        };
        let pool = WorkerPool::new(environment, base, 1);
        let pool = pool.unwrap_or_else(|e| panic!("pool start failed: {e}"));
        let first = server(pool.sibling(checks, 1)).await;
        let own = pool.shared.server().await;
        assert!(own.is_ok_and(|own| Arc::ptr_eq(&own, &first)));
        assert!(!Arc::ptr_eq(&first, &server(pool.sibling(other, 1)).await));
    }
}
