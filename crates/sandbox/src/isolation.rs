//! Turning a [`SandboxPolicy`] into a worker command line: bubblewrap namespaces,
//! an unprivileged uid, a seccomp program, a scrubbed environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::{PythonEnvironment, SandboxError};

/// Where the session's directories appear inside the sandbox.
pub(crate) const WORK_DIR: &str = "/work";
pub(crate) const IO_DIR: &str = "/io";

/// The only variables a worker sees (everything else, API keys included, is dropped).
const WORKER_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", WORK_DIR),
    ("LANG", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("OPENBLAS_NUM_THREADS", "1"),
    ("OMP_NUM_THREADS", "1"),
    ("MPLBACKEND", "Agg"),
];

/// Where the host's session directories appear inside the fork server's sandbox.
pub(crate) const SESSIONS_DIR: &str = "/sessions";

/// Fd numbers the fork server finds its control socket and seccomp program on.
pub(crate) const CONTROL_FD: i32 = 3;
pub(crate) const SECCOMP_FD: i32 = 5;

/// What the fork server keeps to build sessions: new namespaces and mounts
/// (`CAP_SYS_ADMIN`) and a fresh uid per worker. Every session's worker drops all of
/// them before any cell runs.
const ZYGOTE_CAPS: &str = "CAP_SYS_ADMIN,CAP_SETUID,CAP_SETGID";

/// How workers are isolated on this machine; probed once per process.
#[derive(Debug, Clone)]
pub(crate) enum Isolation {
    /// bubblewrap works. As root it runs privileged (no user namespace) and each
    /// session's worker drops to a fresh unprivileged uid, so RLIMIT_NPROC applies;
    /// otherwise it makes a user namespace and the caller's own uid is already
    /// unprivileged.
    Bubblewrap { bwrap: PathBuf, root: bool },
    /// Nothing works; why.
    Unavailable(String),
}

pub(crate) fn isolation() -> &'static Isolation {
    static DETECTED: OnceLock<Isolation> = OnceLock::new();
    DETECTED.get_or_init(detect)
}

fn detect() -> Isolation {
    let bwrap = match std::env::var_os("AGENTOPT_BWRAP") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => find_program("bwrap"),
    };
    let Some(bwrap) = bwrap else {
        return Isolation::Unavailable(
            "bubblewrap (bwrap) is not installed (or not at $AGENTOPT_BWRAP)".to_owned(),
        );
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut probe = std::process::Command::new(&bwrap);
    probe.args(namespace_args(root)).args([
        "--cap-add",
        ZYGOTE_CAPS,
        "--ro-bind",
        "/",
        "/",
        "true",
    ]);
    match probe.output() {
        Ok(out) if out.status.success() => Isolation::Bubblewrap { bwrap, root },
        Ok(out) => Isolation::Unavailable(format!(
            "bwrap cannot create namespaces here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Isolation::Unavailable(format!("running {}: {e}", bwrap.display())),
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn namespace_args(root: bool) -> Vec<&'static str> {
    let mut args = vec![
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ];
    if !root {
        args.extend(["--unshare-user", "--disable-userns"]);
    }
    args
}

/// A fresh uid per worker, so one worker's processes never count against another's
/// RLIMIT_NPROC. Mixes in our pid so parallel test binaries rarely collide.
pub(crate) fn fresh_uid() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 4096;
    0x4000_0000 + ((std::process::id() % 65536) << 12) + n
}

/// The argument vector for bwrap running the fork server (the program is
/// `Isolation::Bubblewrap::bwrap`); `host_sessions` appears at [`SESSIONS_DIR`].
pub(crate) fn bwrap_args(
    environment: &PythonEnvironment,
    root: bool,
    host_sessions: &Path,
    worker_argv: &[OsString],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = namespace_args(root)
        .into_iter()
        .map(OsString::from)
        .collect();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        args.extend(items.iter().map(|i| i.as_ref().to_owned()))
    };
    let mut bound: Vec<PathBuf> = Vec::new();
    for system in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    ] {
        let path = Path::new(system);
        match std::fs::read_link(path) {
            Ok(target) => push(&[&"--symlink", &target, &path]),
            Err(_) if path.is_dir() => {
                push(&[&"--ro-bind", &path, &path]);
                bound.push(path.to_owned());
            }
            Err(_) => {}
        }
    }
    for file in ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"] {
        push(&[&"--ro-bind-try", &file, &file]);
    }
    push(&[&"--proc", &"/proc", &"--dev", &"/dev", &"--tmpfs", &"/tmp"]);
    // The interpreter and venv keep their host paths (pyvenv.cfg points at them), with
    // world-traversable parents even when the host's (/root) are not.
    for tree in [&environment.base_prefix, &environment.venv] {
        if bound.iter().any(|b| tree.starts_with(b)) {
            continue;
        }
        let ancestors: Vec<&Path> = tree
            .ancestors()
            .skip(1)
            .filter(|a| a.parent().is_some())
            .collect();
        for ancestor in ancestors.into_iter().rev() {
            push(&[&"--perms", &"0755", &"--dir", &ancestor]);
        }
        push(&[&"--ro-bind", tree, tree]);
        bound.push(tree.clone());
    }
    push(&[
        &"--bind",
        &host_sessions,
        &SESSIONS_DIR,
        &"--dir",
        &WORK_DIR,
        &"--dir",
        &IO_DIR,
        &"--chdir",
        &"/",
    ]);
    push(&[&"--clearenv"]);
    for (key, value) in WORKER_ENV {
        push(&[&"--setenv", key, value]);
    }
    push(&[&"--cap-add", &ZYGOTE_CAPS, &"--"]);
    args.extend(worker_argv.iter().cloned());
    args
}

/// The scrubbed environment for an unsandboxed worker (still no API keys).
pub(crate) fn worker_env() -> &'static [(&'static str, &'static str)] {
    WORKER_ENV
}

/// Syscalls no cell needs and that widen the kernel attack surface.
const DENIED_SYSCALLS: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_kexec_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
];

/// The seccomp program as raw `sock_filter` bytes, which each session's worker loads
/// itself (after its mounts): socket() for anything but AF_UNIX, and the syscalls
/// above, fail with EACCES.
pub(crate) fn seccomp_program() -> Result<Vec<u8>, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| seccomp_error(&e))?;
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(|e| seccomp_error(&e))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED_SYSCALLS.iter().map(|s| (*s, Vec::new())).collect();
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![not_unix]).map_err(|e| seccomp_error(&e))?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| seccomp_error(&e))?;
    let program = BpfProgram::try_from(filter).map_err(|e| seccomp_error(&e))?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in &program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

fn seccomp_error(error: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::IsolationUnavailable {
        reason: format!("building the seccomp filter: {error}"),
    }
}
