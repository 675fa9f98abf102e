//! Sandboxed Python execution: warm, stateful, isolated workers for code an LLM wrote.
//!
//! The only crate that runs untrusted code. A [`PythonSession`] is one worker
//! process that keeps its globals between cells (as a notebook does). Every session
//! is forked, in milliseconds, from a fork server that has already imported sympy;
//! a [`WorkerPool`] keeps sessions forked ahead so a conversation's first cell runs at
//! once. Each session has its own PID, mount and network namespaces, uid, size-capped
//! workspace and (where the host offers them) memory and process cgroups, and runs
//! under Landlock, a seccomp filter and rlimits with a scrubbed environment;
//! [`Protections`] reports what is active.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentopt_sandbox::SandboxError> {
//! use agentopt_sandbox::{PythonEnvironment, PythonSession, SandboxPolicy};
//! let environment = PythonEnvironment::ensure()?; // idempotent, creates the venv once
//! let mut session = PythonSession::start(&environment, &SandboxPolicy::default()).await?;
//! session.run_cell("x = 6 * 7").await?;
//! let outcome = session.run_cell("print(x)").await?;
//! assert_eq!(outcome.stdout, "42\n");
//! # Ok(()) }
//! ```

mod cgroup;
mod environment;
mod error;
mod executor;
mod isolation;
mod owner;
mod policy;
mod pool;
mod probe;
mod session;
mod worker;
mod zygote;

pub use agentopt_core::LearnedFunction;
pub use environment::{
    BASE_PACKAGES, EnvironmentOptions, PACKAGE_ALLOWLIST, PythonEnvironment, allowlisted_package,
    default_home,
};
pub use error::SandboxError;
pub use executor::{Executor, ExecutorFactory, SandboxSessions, SharedSession};
pub use policy::{Protections, SYMPY_PRELOAD, SYMPY_WARM_UP, SandboxPolicy};
pub use pool::WorkerPool;
pub use session::{CallCounts, CellOutcome, CellStatus, PythonSession};
