//! What a session is allowed to do, and what protections it actually got.

use std::time::Duration;

/// The rlimits a worker applies to itself, by Python `resource` name.
const RLIMIT_NAMES: [&str; 5] = [
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_FSIZE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
];

/// The default preload: sympy plus the submodules it imports lazily on the first
/// `solve`, `integrate`, `simplify` or `limit` (≈ 150 ms a conversation would
/// otherwise pay inside its cells).
pub const SYMPY_PRELOAD: &[&str] = &[
    "sympy",
    "sympy.assumptions.wrapper",
    "sympy.combinatorics",
    "sympy.integrals.heurisch",
    "sympy.integrals.manualintegrate",
    "sympy.integrals.risch",
    "sympy.physics.units",
    "sympy.sets.setexpr",
    "sympy.tensor.tensor",
];

/// The default warm-up: sympy arithmetic, printing and a trailing expression, as
/// MathChat cells use them (skipped where sympy was not preloaded).
pub const SYMPY_WARM_UP: &str = "\
import sys
if 'sympy' in sys.modules:
    from sympy import Rational, Symbol, sqrt, simplify
    x = Symbol('x')
    print(simplify(Rational(1, 3) * x + sqrt(2) * x), [x**2, Rational(7, 2)])
    x + 1
";

/// Limits and options for one sandboxed Python session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Wall-clock limit for one cell, enforced from Rust by killing the session's
    /// whole process tree.
    pub cell_timeout: Duration,
    /// Wall-clock limit for one learned-function call (AG2 gives function execution
    /// 600 s), enforced as [`Self::cell_timeout`] is.
    pub function_timeout: Duration,
    /// How long a new worker may take to start (including preloads) before it is killed.
    pub startup_timeout: Duration,
    /// Bytes of stdout and of stderr returned per cell; the rest is dropped and
    /// [`crate::CellOutcome::truncated`] is set.
    pub output_limit: usize,
    /// RLIMIT_FSIZE: the most any file (output capture included) may grow to.
    pub file_size_limit: u64,
    /// RLIMIT_AS: address-space limit of each sandboxed process, in bytes.
    pub memory_limit: u64,
    /// Memory all of a session's processes together may use, its workspace files
    /// included (a cgroup cap, where the host offers one; see [`Protections`]).
    pub session_memory_limit: u64,
    /// Bytes a session may store in its `/work` and `/tmp` together (a tmpfs of this
    /// size, private to the session and gone with it).
    pub workspace_limit: u64,
    /// CPU seconds one cell may use (RLIMIT_CPU backstop behind the wall-clock timeout).
    pub cpu_seconds_per_cell: u64,
    /// Processes and threads a session may have: RLIMIT_NPROC of its uid and, where
    /// the host offers one, a cgroup cap on the whole session.
    pub max_processes: u64,
    /// RLIMIT_NOFILE: open file descriptors per process.
    pub max_open_files: u64,
    /// Modules imported when a worker starts, so cells do not pay for them.
    pub preload: Vec<String>,
    /// A cell run once by the fork server after the preloads and once by every
    /// session while it waits to be handed out, each time in a namespace of its own:
    /// what it touches is initialised, and its pages copied into the session, before
    /// a conversation's first cell, which then does not pay for them (a first sympy
    /// cell measured 1.45 ms without, 0.9 ms with). Errors are ignored.
    pub warm_up: String,
    /// Run without any isolation when none is available. Off by default; when used,
    /// every session start logs a loud warning.
    pub allow_unsandboxed: bool,
}

impl SandboxPolicy {
    /// Whether sessions under `other` get what sessions under this policy get: equal
    /// but for the limits the host alone applies per request (timeouts, output cap),
    /// so one fork server can serve both.
    pub(crate) fn forks_alike(&self, other: &Self) -> bool {
        let host_side = |policy: &Self| Self {
            cell_timeout: Duration::ZERO,
            function_timeout: Duration::ZERO,
            startup_timeout: Duration::ZERO,
            output_limit: 0,
            ..policy.clone()
        };
        host_side(self) == host_side(other)
    }

    /// The rlimits the worker sets, hard and soft alike (CPU is handled per cell).
    pub(crate) fn rlimits(&self) -> serde_json::Map<String, serde_json::Value> {
        let values = [
            self.memory_limit,
            0,
            self.file_size_limit,
            self.max_open_files,
            self.max_processes,
        ];
        RLIMIT_NAMES
            .iter()
            .zip(values)
            .map(|(name, value)| ((*name).to_owned(), value.into()))
            .collect()
    }
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            cell_timeout: Duration::from_secs(5),
            function_timeout: Duration::from_secs(600),
            startup_timeout: Duration::from_secs(30),
            output_limit: 64 * 1024,
            file_size_limit: 64 * 1024 * 1024,
            memory_limit: 2 * 1024 * 1024 * 1024,
            session_memory_limit: 2 * 1024 * 1024 * 1024,
            workspace_limit: 256 * 1024 * 1024,
            cpu_seconds_per_cell: 10,
            max_processes: 64,
            max_open_files: 256,
            preload: SYMPY_PRELOAD.iter().map(|m| (*m).to_owned()).collect(),
            warm_up: SYMPY_WARM_UP.to_owned(),
            allow_unsandboxed: false,
        }
    }
}

/// The protections a running session actually has (reported, not assumed).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Protections {
    /// New user (when not root), PID, network, mount, IPC and UTS namespaces via
    /// bubblewrap; the file-system view holds only the system, the venv and temp dirs.
    pub namespaces: bool,
    /// The uid the code runs as outside any user namespace, when it is not root's.
    pub unprivileged_uid: Option<u32>,
    /// The Landlock ABI version enforced inside the worker (read-only everywhere,
    /// read-write only in the session's temp dirs; TCP denied from ABI 4).
    pub landlock_abi: Option<u32>,
    /// A seccomp filter denying non-Unix sockets and kernel-attack-surface syscalls.
    pub seccomp: bool,
    /// The rlimits the worker applied to itself (names such as `RLIMIT_AS`).
    pub rlimits: Vec<String>,
    /// The environment was cleared down to a fixed list (no API keys).
    pub scrubbed_env: bool,
    /// Bytes the session may store in `/work` and `/tmp` together (its own tmpfs).
    pub workspace_cap: Option<u64>,
    /// Memory cap on the session's processes together (a cgroup).
    pub memory_cap: Option<u64>,
    /// Cap on the session's processes and threads together (a cgroup).
    pub process_cap: Option<u64>,
    /// Why a whole-session cap above is missing, one line each (for example: no
    /// cgroup v1 memory controller on this host).
    pub missing: Vec<String>,
}

impl Protections {
    /// Whether every isolation layer is active: namespaces, an unprivileged uid,
    /// Landlock, seccomp, all rlimits, a scrubbed environment and a capped workspace.
    /// The cgroup caps depend on the host and are reported apart ([`Self::missing`]).
    pub fn is_fully_isolated(&self) -> bool {
        self.workspace_cap.is_some()
            && self.namespaces
            && self.unprivileged_uid.is_some()
            && self.landlock_abi.is_some()
            && self.seccomp
            && self.rlimits.len() == RLIMIT_NAMES.len()
            && self.scrubbed_env
    }
}
