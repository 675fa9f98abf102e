//! The fork server: one sandboxed Python process that has imported the preloads and
//! forks a fresh, isolated session in milliseconds whenever asked.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::process::{Child, Command};

use crate::isolation::{self, CONTROL_FD, IO_DIR, Isolation, SECCOMP_FD, SESSIONS_DIR, WORK_DIR};
use crate::worker::{Worker, pipe_pair, place_fds, register};
use crate::{PythonEnvironment, SandboxError, SandboxPolicy, cgroup, owner};

const BOOTSTRAP: &str = include_str!("worker.py");
/// The file name the bootstrap's frames carry (see `format_exception` in worker.py).
const WORKER_FILENAME: &str = "<agentopt-worker>";
/// Bytes of the fork server's stderr (its sessions' included) kept for diagnostics.
const STDERR_TAIL: usize = 8 * 1024;
/// The prefix of each fork server's host directory in the temp dir (then the owner tag).
const DIR_PREFIX: &str = "agentopt-sandbox-";
/// The largest control message (a session request or the server's answer).
const MAX_MESSAGE: usize = 64 * 1024;

/// The fork server's answer to a session request.
#[derive(Debug, Deserialize)]
struct Forked {
    name: String,
    pid: Option<i32>,
    error: Option<String>,
}

/// A running fork server. Sessions hold it (an `Arc`) so it outlives them; when the
/// last holder drops it, its whole sandbox is killed.
pub(crate) struct ForkServer {
    child: Mutex<Child>,
    /// The control socket; one session request at a time.
    control: tokio::sync::Mutex<AsyncFd<OwnedFd>>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// Holds one directory per session (its io files; unsandboxed, also its work dir).
    sessions: tempfile::TempDir,
    next_session: AtomicU64,
    pub(crate) policy: SandboxPolicy,
    pub(crate) sandboxed: bool,
    /// Sessions get a fresh uid each (we are root and bubblewrap runs privileged).
    fresh_uids: bool,
}

impl std::fmt::Debug for ForkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkServer")
            .field("sandboxed", &self.sandboxed)
            .finish_non_exhaustive()
    }
}

impl ForkServer {
    /// Starts the server and waits until it has imported the preloads. Fails with
    /// [`SandboxError::IsolationUnavailable`] when nothing isolates it, unless the
    /// policy allows running unsandboxed.
    pub(crate) async fn start(
        environment: &PythonEnvironment,
        policy: &SandboxPolicy,
    ) -> Result<Arc<Self>, SandboxError> {
        let isolation = isolation::isolation();
        let sandboxed = matches!(isolation, Isolation::Bubblewrap { .. });
        if let Isolation::Unavailable(reason) = isolation {
            if !policy.allow_unsandboxed {
                return Err(SandboxError::IsolationUnavailable {
                    reason: reason.clone(),
                });
            }
            tracing::warn!(
                "RUNNING UNTRUSTED PYTHON WITHOUT A SANDBOX ({reason}): allow_unsandboxed is set"
            );
            eprintln!(
                "agentopt-sandbox: WARNING: running untrusted Python WITHOUT a sandbox ({reason})"
            );
        }
        let sessions = session_root()?;
        cgroup::sweep_stale();
        let (control, control_child) = control_socket()?;
        let (mut child, fresh_uids) = spawn_server(
            environment,
            policy,
            isolation,
            sessions.path(),
            control_child,
        )?;
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            keep_tail(stderr, Arc::clone(&stderr_tail));
        }
        let server = Self {
            child: Mutex::new(child),
            control: tokio::sync::Mutex::new(control),
            stderr_tail,
            sessions,
            next_session: AtomicU64::new(0),
            policy: policy.clone(),
            sandboxed,
            fresh_uids,
        };
        let ready = tokio::time::timeout(policy.startup_timeout, async {
            let mut control = server.control.lock().await;
            receive(&mut control).await
        })
        .await;
        match ready {
            Ok(Ok((message, _))) if message.contains("\"ready\"") => Ok(Arc::new(server)),
            Ok(Ok(_)) | Ok(Err(_)) => Err(server
                .failure("the fork server exited before it was ready")
                .await),
            Err(_) => Err(server
                .failure("the fork server did not become ready in time")
                .await),
        }
    }

    /// A start failure, with the server's stderr, after killing it.
    pub(crate) async fn failure(&self, detail: &str) -> SandboxError {
        self.signal_tree();
        tokio::time::sleep(Duration::from_millis(20)).await;
        SandboxError::WorkerStart {
            detail: detail.to_owned(),
            stderr: self.stderr_text(),
        }
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned())
            .unwrap_or_default()
    }

    /// Whether the server process still runs.
    pub(crate) fn is_alive(&self) -> bool {
        self.child
            .lock()
            .is_ok_and(|mut child| matches!(child.try_wait(), Ok(None)))
    }

    /// Forks a new session: its host directory, its protocol pipes, its init's pidfd.
    pub(crate) async fn session(self: &Arc<Self>) -> Result<Worker, SandboxError> {
        let name = self
            .next_session
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let dir = self.sessions.path().join(&name);
        for sub in [dir.clone(), dir.join("io")] {
            std::fs::create_dir(&sub)
                .map_err(|e| SandboxError::io(format!("creating {}", sub.display()), e))?;
            // The session's uid is not ours when we are root.
            set_mode(&sub, 0o777)?;
        }
        let uid = self.fresh_uids.then(isolation::fresh_uid);
        let (request_read, request_write) = pipe_pair()?;
        let (response_read, response_write) = pipe_pair()?;
        let message = serde_json::json!({"name": name, "uid": uid}).to_string();
        let (forked, pidfd) = {
            let mut control = self.control.lock().await;
            let fds = [request_read.as_raw_fd(), response_write.as_raw_fd()];
            send(&mut control, message.as_bytes(), &fds).await?;
            loop {
                let (answer, pidfd) = receive(&mut control).await?;
                let forked: Forked =
                    serde_json::from_str(&answer).map_err(|e| SandboxError::Protocol {
                        detail: format!("expected the fork server's answer: {e}"),
                        raw: answer.clone(),
                    })?;
                // The answer to a request whose caller gave up (a cancelled future):
                // dropping its pidfd leaves that session waiting for a go that never
                // comes, and its pipes are already closed, so its init exits.
                if forked.name == name {
                    break (forked, pidfd);
                }
            }
        };
        drop((request_read, response_write));
        let (Some(_), Some(pidfd)) = (forked.pid, pidfd) else {
            return Err(SandboxError::WorkerStart {
                detail: format!(
                    "the fork server could not fork a session: {}",
                    forked.error.unwrap_or_default()
                ),
                stderr: self.stderr_text(),
            });
        };
        Worker::attach(
            Arc::clone(self),
            pidfd,
            request_write,
            response_read,
            dir,
            uid,
        )
        .await
    }

    /// SIGKILLs bubblewrap's sandbox init (its child: killing a PID namespace's init
    /// from outside takes every process inside with it, sessions included), then
    /// bubblewrap and its process group. Synchronous, for `Drop`.
    fn signal_tree(&self) {
        let Ok(mut child) = self.child.lock() else {
            return;
        };
        let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return;
        };
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            // SAFETY: kill on a process our own child created and still parents.
            unsafe {
                libc::kill(child, libc::SIGKILL);
            }
        }
        // SAFETY: killpg on our own child's process group.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
        let _ = child.start_kill();
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        self.signal_tree();
    }
}

/// Spawns the fork server (in bubblewrap when `isolation` has it) with its control
/// socket and seccomp program on their fixed descriptors; true when its sessions get
/// fresh uids.
fn spawn_server(
    environment: &PythonEnvironment,
    policy: &SandboxPolicy,
    isolation: &Isolation,
    sessions: &Path,
    control_child: OwnedFd,
) -> Result<(Child, bool), SandboxError> {
    let (seccomp_read, fresh_uids, mut command) = match isolation {
        Isolation::Bubblewrap { bwrap, root } => {
            let program = isolation::seccomp_program()?;
            let (read, write) = pipe_pair()?;
            // The program is far smaller than a pipe buffer, so this cannot block.
            std::io::Write::write_all(&mut std::fs::File::from(write), &program)
                .map_err(|e| SandboxError::io("writing the seccomp program to its pipe", e))?;
            let argv = server_argv(environment, policy, Path::new(SESSIONS_DIR), true);
            let mut command = Command::new(bwrap);
            command.args(isolation::bwrap_args(environment, *root, sessions, &argv));
            (Some(read), *root, command)
        }
        Isolation::Unavailable(_) => {
            let argv = server_argv(environment, policy, sessions, false);
            let mut command = Command::new(&argv[0]);
            command.args(&argv[1..]).current_dir(sessions);
            (None, false, command)
        }
    };
    command.env_clear();
    command.envs(isolation::worker_env().iter().copied());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command.kill_on_drop(true).process_group(0);
    let inherited = [
        (control_child.as_raw_fd(), CONTROL_FD),
        (
            seccomp_read.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            SECCOMP_FD,
        ),
    ];
    // SAFETY: the closure only calls async-signal-safe functions (fcntl, dup2).
    unsafe {
        command.pre_exec(move || place_fds(&inherited));
    }
    let child = command.spawn().map_err(|e| {
        SandboxError::io(
            format!(
                "starting the python fork server {:?}",
                command.as_std().get_program()
            ),
            e,
        )
    })?;
    Ok((child, fresh_uids))
}

/// The interpreter command line running worker.py as the fork server.
fn server_argv(
    environment: &PythonEnvironment,
    policy: &SandboxPolicy,
    sessions: &Path,
    sandboxed: bool,
) -> Vec<OsString> {
    let (work, io) = if sandboxed {
        (PathBuf::from(WORK_DIR), PathBuf::from(IO_DIR))
    } else {
        (PathBuf::new(), PathBuf::new())
    };
    let config = serde_json::json!({
        "work_dir": work,
        "io_dir": io,
        "sessions_dir": sessions,
        "preload": policy.preload,
        "warm_up": policy.warm_up,
        "own_namespaces": sandboxed,
        "workspace_limit": policy.workspace_limit,
        "cpu_seconds_per_cell": policy.cpu_seconds_per_cell,
        "rlimits": policy.rlimits(),
    });
    vec![
        environment.interpreter.clone().into(),
        "-I".into(),
        // Unbuffered, so print() and os.write(1, …) keep their relative order.
        "-u".into(),
        "-c".into(),
        // A named code object, so tracebacks can drop the worker's own frames.
        format!("import sys; exec(compile(sys.argv[1], {WORKER_FILENAME:?}, 'exec'))").into(),
        BOOTSTRAP.into(),
        config.to_string().into(),
    ]
}

/// This server's directory, named with our owner tag, after removing the directories
/// of servers whose owner was killed before it could clean up.
fn session_root() -> Result<tempfile::TempDir, SandboxError> {
    let parent = session_parent();
    for place in [parent.clone(), std::env::temp_dir()] {
        owner::sweep(&place, DIR_PREFIX, |stale| {
            if let Err(e) = std::fs::remove_dir_all(stale) {
                tracing::warn!("could not remove {}: {e}", stale.display());
            }
        });
    }
    let root = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", owner::tag()))
        .tempdir_in(&parent)
        .map_err(|e| SandboxError::io("creating the sandbox's session dir", e))?;
    set_mode(root.path(), 0o755)?;
    Ok(root)
}

/// A memory filesystem with room to spare when the machine has one (every cell's
/// output is written to and read back from the session's capture files, and on a
/// disk filesystem truncating and rewriting them costs a journal update per cell,
/// measured at 0.1–0.4 ms), else the temp dir; an explicit `TMPDIR` wins.
fn session_parent() -> PathBuf {
    const SHM: &str = "/dev/shm";
    const SHM_MIN_FREE: u64 = 1 << 30;
    if std::env::var_os("TMPDIR").is_none() && free_bytes(Path::new(SHM)) >= SHM_MIN_FREE {
        return PathBuf::from(SHM);
    }
    std::env::temp_dir()
}

/// Bytes free for us under `dir`, 0 when it is not a writable directory.
fn free_bytes(dir: &Path) -> u64 {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: a NUL-terminated path; access only reads it.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return 0;
    }
    // SAFETY: statvfs fills the zeroed struct it is given.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    stat.f_bavail.saturating_mul(stat.f_frsize)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io(format!("chmod {}", path.display()), e))
}

fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if let Ok(mut kept) = tail.lock() {
                kept.extend_from_slice(&chunk[..n]);
                let excess = kept.len().saturating_sub(STDERR_TAIL);
                kept.drain(..excess);
            }
        }
    });
}

/// A non-blocking SOCK_SEQPACKET pair: ours, and the server's (close-on-exec until
/// `place_fds` moves it to [`CONTROL_FD`]).
fn control_socket() -> Result<(AsyncFd<OwnedFd>, OwnedFd), SandboxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid two-element array; on success both are new owned fds.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(SandboxError::io(
            "creating the fork server's control socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        libc::fcntl(ours.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
    }
    let ours = register(
        ours,
        Interest::READABLE | Interest::WRITABLE,
        "the control socket",
    )?;
    Ok((ours, theirs))
}

/// A message header for one data buffer and one control buffer; the pointers are
/// valid while both buffers are.
fn message_header(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is a valid, empty one.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = control.len() as _;
    header
}

/// Sends one message with descriptors attached (SCM_RIGHTS).
async fn send(
    control: &mut AsyncFd<OwnedFd>,
    message: &[u8],
    fds: &[RawFd],
) -> Result<(), SandboxError> {
    let space = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let mut buffer = vec![0u8; unsafe { libc::CMSG_SPACE(space) } as usize];
    loop {
        let mut guard = control
            .writable_mut()
            .await
            .map_err(|e| SandboxError::io("waiting on the control socket", e))?;
        let sent = guard.try_io(|fd| {
            let mut iov = libc::iovec {
                iov_base: message.as_ptr() as *mut libc::c_void,
                iov_len: message.len(),
            };
            let header = message_header(&mut iov, &mut buffer);
            // SAFETY: the header's pointers outlive the call, and the control buffer has
            // CMSG_SPACE(space) bytes for one cmsg.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&header);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(space) as _;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr(),
                    libc::CMSG_DATA(cmsg).cast(),
                    fds.len(),
                );
                match libc::sendmsg(fd.as_raw_fd(), &header, libc::MSG_NOSIGNAL) {
                    -1 => Err(std::io::Error::last_os_error()),
                    _ => Ok(()),
                }
            }
        });
        match sent {
            Ok(result) => {
                return result.map_err(|e| SandboxError::io("sending to the fork server", e));
            }
            Err(_would_block) => continue,
        }
    }
}

/// Receives one message and the descriptor attached to it, if any.
async fn receive(
    control: &mut AsyncFd<OwnedFd>,
) -> Result<(String, Option<OwnedFd>), SandboxError> {
    let mut data = vec![0u8; MAX_MESSAGE];
    // SAFETY: CMSG_SPACE only computes a size.
    let mut buffer = vec![0u8; unsafe { libc::CMSG_SPACE(4 * 4) } as usize];
    loop {
        let mut guard = control
            .readable_mut()
            .await
            .map_err(|e| SandboxError::io("waiting on the control socket", e))?;
        let received = guard.try_io(|fd| {
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            let mut header = message_header(&mut iov, &mut buffer);
            // SAFETY: as in `send`; the kernel writes at most the lengths given.
            unsafe {
                let n = libc::recvmsg(fd.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC);
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut passed = None;
                let cmsg = libc::CMSG_FIRSTHDR(&header);
                if !cmsg.is_null()
                    && (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_RIGHTS
                {
                    let raw: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    passed = Some(OwnedFd::from_raw_fd(raw));
                }
                Ok((n as usize, passed))
            }
        });
        match received {
            Ok(Ok((0, _))) => {
                return Err(SandboxError::io(
                    "reading from the fork server",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            Ok(Ok((n, passed))) => {
                return Ok((String::from_utf8_lossy(&data[..n]).into_owned(), passed));
            }
            Ok(Err(e)) => return Err(SandboxError::io("reading from the fork server", e)),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_is_zero_unless_a_writable_directory() {
        assert_eq!(free_bytes(Path::new("/nonexistent/agentopt")), 0);
        let file = tempfile::NamedTempFile::new().expect("temp file");
        assert_eq!(free_bytes(file.path()), 0, "a file is not a directory");
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(free_bytes(dir.path()) > 0);
    }

    #[test]
    fn sessions_go_to_a_directory_with_room() {
        assert!(free_bytes(&session_parent()) > 0);
    }
}
