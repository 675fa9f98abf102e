//! Sessions: a warm worker that keeps its globals between cells.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentopt_core::LearnedFunction;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::pool::Shared;
use crate::worker::{Completion, Worker};
use crate::zygote::ForkServer;
use crate::{Executor, Protections, PythonEnvironment, SandboxError, SandboxPolicy};

/// How a cell or function call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CellStatus {
    /// Ran to the end.
    Completed,
    /// Raised; the traceback (host paths stripped) and exception line.
    Raised {
        /// `Traceback (most recent call last): …` text.
        traceback: String,
    },
    /// Hit the wall-clock timeout; the worker was killed.
    TimedOut,
    /// The worker died (segfault, CPU limit, …).
    Crashed {
        /// How it died, e.g. "the worker was killed by signal 11 (SIGSEGV)".
        reason: String,
    },
}

/// What one cell or learned-function call produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellOutcome {
    /// Everything written to fd 1 (print, `os.write(1, …)`, C extensions), capped.
    pub stdout: String,
    /// Everything written to fd 2, capped.
    pub stderr: String,
    /// How it ended.
    pub status: CellStatus,
    /// The value: `repr` of a cell's trailing expression, `str` of a function's result.
    pub value: Option<String>,
    /// stdout or stderr held more than [`SandboxPolicy::output_limit`] bytes.
    pub truncated: bool,
    /// Wall-clock time of the request, round trip included.
    pub duration: Duration,
    /// This request killed the worker: everything defined so far is gone.
    pub state_lost: bool,
    /// This request ran in a worker restarted after earlier state was lost; earlier
    /// definitions are not there.
    pub state_reset_before: bool,
    /// Calls the code made of the learned functions defined in the session
    /// ([`PythonSession::define_functions`]), per name. Reported by the worker, so as
    /// trustworthy as the rest of the outcome; empty after a timeout or crash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code_calls: BTreeMap<String, CallCounts>,
    /// Learned functions the code shadowed: it rebound their names (its own `def`, an
    /// import of the same name, an assignment, a `del`), so its later calls reach its
    /// own and are not counted. Why an offered function went unused.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub shadowed: BTreeSet<String>,
}

/// How often a learned function was called, and how many of the calls worked
/// (returned normally): the one call count from the worker to the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CallCountsOnDisk")]
pub struct CallCounts {
    /// Calls.
    pub calls: u64,
    /// Calls that returned without error.
    pub succeeded: u64,
}

impl CallCounts {
    /// Counts one call.
    pub fn add(&mut self, succeeded: bool) {
        self.calls += 1;
        self.succeeded += u64::from(succeeded);
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: CallCounts) {
        self.calls += other.calls;
        self.succeeded += other.succeeded;
    }
}

/// What [`CallCounts`] reads: its own fields, or the `[ok, failed]` pair the worker
/// reports (and transcripts journaled before the two counts were one type hold).
#[derive(Deserialize)]
#[serde(untagged)]
enum CallCountsOnDisk {
    Counts { calls: u64, succeeded: u64 },
    OkFailed(u64, u64),
}

impl From<CallCountsOnDisk> for CallCounts {
    fn from(read: CallCountsOnDisk) -> Self {
        match read {
            CallCountsOnDisk::Counts { calls, succeeded } => Self { calls, succeeded },
            CallCountsOnDisk::OkFailed(ok, failed) => Self {
                calls: ok + failed,
                succeeded: ok,
            },
        }
    }
}

impl CellOutcome {
    /// True when the code ran to the end without raising.
    pub fn succeeded(&self) -> bool {
        self.status == CellStatus::Completed
    }

    /// True when the wall-clock timeout fired.
    pub fn timed_out(&self) -> bool {
        self.status == CellStatus::TimedOut
    }

    /// The traceback or death description, when the cell did not complete.
    pub fn error_text(&self) -> Option<String> {
        match &self.status {
            CellStatus::Completed => None,
            CellStatus::Raised { traceback } => Some(traceback.clone()),
            CellStatus::TimedOut => {
                Some("Timeout: the code ran too long and was stopped".to_owned())
            }
            CellStatus::Crashed { reason } => Some(reason.clone()),
        }
    }
}

/// Where a session gets a new worker after a restart.
enum WorkerSource {
    /// Its own fork server.
    Direct(Arc<ForkServer>),
    Pool(Arc<Shared>),
}

impl WorkerSource {
    fn policy(&self) -> &SandboxPolicy {
        match self {
            Self::Direct(server) => &server.policy,
            Self::Pool(shared) => shared.policy(),
        }
    }

    async fn worker(&self) -> Result<Worker, SandboxError> {
        match self {
            Self::Direct(server) => server.session().await,
            Self::Pool(shared) => shared.take().await,
        }
    }
}

/// One warm, sandboxed Python worker that keeps its globals between cells.
pub struct PythonSession {
    source: WorkerSource,
    worker: Option<Worker>,
    protections: Protections,
    state_lost: bool,
    /// Functions defined for cells; defined again in every fresh worker.
    defined: Vec<LearnedFunction>,
    /// A worker was taken from a pool whose replacement is not forked yet: that
    /// waits until the worker's first request has answered (see `Shared::take`).
    owes_refill: bool,
}

impl std::fmt::Debug for PythonSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonSession")
            .field("protections", &self.protections)
            .field("alive", &self.worker.is_some())
            .finish_non_exhaustive()
    }
}

impl PythonSession {
    /// Starts a fork server of its own (preloading [`SandboxPolicy::preload`]) and a
    /// session forked from it; restarts fork again from the same server. Fails with
    /// [`SandboxError::IsolationUnavailable`] when nothing isolates it, unless the
    /// policy allows running unsandboxed. Many sessions: use a [`crate::WorkerPool`].
    pub async fn start(
        environment: &PythonEnvironment,
        policy: &SandboxPolicy,
    ) -> Result<Self, SandboxError> {
        let source = WorkerSource::Direct(ForkServer::start(environment, policy).await?);
        let worker = source.worker().await?;
        Ok(Self::with_worker(source, worker))
    }

    pub(crate) fn from_pool(shared: Arc<Shared>, worker: Worker) -> Self {
        Self::with_worker(WorkerSource::Pool(shared), worker)
    }

    fn with_worker(source: WorkerSource, worker: Worker) -> Self {
        Self {
            owes_refill: matches!(source, WorkerSource::Pool(_)),
            source,
            protections: worker.protections.clone(),
            worker: Some(worker),
            state_lost: false,
            defined: Vec::new(),
        }
    }

    /// The policy this session runs under.
    pub fn policy(&self) -> &SandboxPolicy {
        self.source.policy()
    }

    /// Runs one cell. Globals persist across cells; a trailing expression's `repr`
    /// comes back as [`CellOutcome::value`].
    pub async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        let timeout = self.policy().cell_timeout;
        self.request(serde_json::json!({"op": "exec", "code": code}), timeout)
            .await
    }

    /// Executes `function.code` in a fresh namespace (never the session's globals, so
    /// each call runs exactly that function's code) and calls `name(**arguments)`,
    /// under [`SandboxPolicy::function_timeout`]. The result comes back as AG2 shows
    /// it: printed (`str`), not `repr`.
    pub async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<CellOutcome, SandboxError> {
        let timeout = self.policy().function_timeout;
        self.request(
            serde_json::json!({
                "op": "call",
                "name": function.name,
                "code": function.code,
                "args": arguments,
            }),
            timeout,
        )
        .await
    }

    /// Defines `functions` in the session's globals, each from its own code run in a
    /// namespace of its own (as [`Self::call_function`] runs it), so cells can call
    /// them and share nothing else with them; cells' calls are counted in
    /// [`CellOutcome::code_calls`]. The session remembers them: a worker started after
    /// a timeout, crash or [`Self::restart`] gets them again before its first
    /// request. A function whose code fails is left out and its traceback is the
    /// outcome's error; the others are defined.
    pub async fn define_functions(
        &mut self,
        functions: &[LearnedFunction],
    ) -> Result<CellOutcome, SandboxError> {
        self.defined = functions.to_vec();
        let timeout = self.policy().cell_timeout;
        self.request(definitions(functions), timeout).await
    }

    /// Kills the worker and starts a fresh one.
    pub async fn restart(&mut self) -> Result<(), SandboxError> {
        if let Some(mut worker) = self.worker.take() {
            worker.kill().await;
        }
        self.worker = Some(self.fresh_worker().await?);
        Ok(())
    }

    /// The protections this session's worker runs under.
    pub fn protections(&self) -> &Protections {
        &self.protections
    }

    async fn request(
        &mut self,
        request: serde_json::Value,
        timeout: Duration,
    ) -> Result<CellOutcome, SandboxError> {
        let state_reset_before = std::mem::take(&mut self.state_lost);
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => self.fresh_worker().await?,
        };
        self.protections = worker.protections.clone();
        let running = match &self.source {
            WorkerSource::Pool(shared) => Some(shared.running()),
            WorkerSource::Direct(_) => None,
        };
        let started = Instant::now();
        let completion = worker.request(request, timeout).await;
        let duration = started.elapsed();
        drop(running);
        self.refill();
        let (stdout, stdout_cut) = worker.captured(true, self.policy().output_limit);
        let (stderr, stderr_cut) = worker.captured(false, self.policy().output_limit);
        let (status, value, code_calls, shadowed) = match completion {
            Completion::Answered(response) => {
                let status = match response.error {
                    Some(traceback) => CellStatus::Raised { traceback },
                    None => CellStatus::Completed,
                };
                (status, response.value, response.calls, response.shadowed)
            }
            Completion::TimedOut => (CellStatus::TimedOut, None, BTreeMap::new(), BTreeSet::new()),
            Completion::Died(reason) => (
                CellStatus::Crashed { reason },
                None,
                BTreeMap::new(),
                BTreeSet::new(),
            ),
        };
        let state_lost = matches!(status, CellStatus::TimedOut | CellStatus::Crashed { .. });
        if state_lost {
            worker.kill().await;
            self.state_lost = true;
        } else {
            self.worker = Some(worker);
        }
        Ok(CellOutcome {
            stdout,
            stderr,
            status,
            value,
            truncated: stdout_cut || stderr_cut,
            duration,
            state_lost,
            state_reset_before,
            code_calls,
            shadowed,
        })
    }

    /// Has the pool fork the replacement this session owes it, if any.
    fn refill(&mut self) {
        if let (WorkerSource::Pool(shared), true) = (&self.source, self.owes_refill) {
            self.owes_refill = false;
            Shared::refill(shared);
        }
    }

    /// A new worker, with the session's functions defined (a definition that raises
    /// now raised the same way when first defined, and was reported then; one that
    /// hangs or crashes the worker leaves a plain worker, where calls fail by name).
    async fn fresh_worker(&mut self) -> Result<Worker, SandboxError> {
        self.owes_refill = matches!(self.source, WorkerSource::Pool(_));
        let mut worker = self.source.worker().await?;
        if !self.defined.is_empty() {
            let timeout = self.policy().cell_timeout;
            if !matches!(
                worker.request(definitions(&self.defined), timeout).await,
                Completion::Answered(_)
            ) {
                worker.kill().await;
                worker = self.source.worker().await?;
            }
        }
        Ok(worker)
    }
}

impl Drop for PythonSession {
    fn drop(&mut self) {
        self.refill();
    }
}

/// The worker request that defines `functions`.
fn definitions(functions: &[LearnedFunction]) -> serde_json::Value {
    let functions: Vec<_> = functions
        .iter()
        .map(|function| serde_json::json!({"name": function.name, "code": function.code}))
        .collect();
    serde_json::json!({"op": "define", "functions": functions})
}

#[async_trait]
impl Executor for PythonSession {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        PythonSession::run_cell(self, code).await
    }

    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<CellOutcome, SandboxError> {
        PythonSession::call_function(self, function, arguments).await
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        PythonSession::restart(self).await
    }

    async fn define_functions(
        &mut self,
        functions: &[LearnedFunction],
    ) -> Result<CellOutcome, SandboxError> {
        PythonSession::define_functions(self, functions).await
    }

    fn protections(&self) -> Protections {
        self.protections.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::CallCounts;

    #[test]
    fn call_counts_read_their_fields_and_the_workers_ok_failed_pair() {
        let counts = |json: &str| serde_json::from_str::<CallCounts>(json).expect("reads");
        let expected = CallCounts {
            calls: 3,
            succeeded: 2,
        };
        assert_eq!(counts(r#"{"calls": 3, "succeeded": 2}"#), expected);
        assert_eq!(counts("[2, 1]"), expected);
        assert_eq!(
            serde_json::to_string(&expected).expect("writes"),
            r#"{"calls":3,"succeeded":2}"#
        );
    }
}
