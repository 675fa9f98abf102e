//! One Python worker process and the JSON-lines protocol on its own descriptors.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use crate::isolation::{self, IO_DIR, Isolation, REQUEST_FD, RESPONSE_FD, SECCOMP_FD, WORK_DIR};
use crate::{Protections, PythonEnvironment, SandboxError, SandboxPolicy};

const BOOTSTRAP: &str = include_str!("worker.py");
/// The file name the bootstrap's frames carry (see `format_exception` in worker.py).
const WORKER_FILENAME: &str = "<agentopt-worker>";
/// Bytes of worker stderr kept for diagnostics.
const STDERR_TAIL: usize = 8 * 1024;
/// Longest protocol line accepted (responses carry only a repr and a traceback).
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// What the worker sends once it is ready.
#[derive(Debug, Deserialize)]
struct Ready {
    landlock_abi: Option<u32>,
    rlimits: Vec<String>,
}

/// The worker's answer to one request.
#[derive(Debug, Deserialize)]
pub(crate) struct Response {
    id: u64,
    pub(crate) value: Option<String>,
    pub(crate) error: Option<String>,
}

/// How a request ended, before output is attached.
pub(crate) enum Completion {
    Answered(Response),
    TimedOut,
    Died(String),
}

pub(crate) struct Worker {
    child: Child,
    requests: pipe::Sender,
    responses: BufReader<pipe::Receiver>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    dir: tempfile::TempDir,
    next_id: u64,
    pub(crate) protections: Protections,
}

impl Worker {
    pub(crate) async fn start(
        environment: &PythonEnvironment,
        policy: &SandboxPolicy,
    ) -> Result<Self, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("agentopt-sandbox-")
            .tempdir()
            .map_err(|e| SandboxError::io("creating the session temp dir", e))?;
        let host_work = dir.path().join("work");
        let host_io = dir.path().join("io");
        for sub in [&host_work, &host_io] {
            std::fs::create_dir(sub)
                .map_err(|e| SandboxError::io(format!("creating {}", sub.display()), e))?;
            // The sandboxed uid is not ours when we are root.
            set_mode(sub, 0o777)?;
        }
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
        let (work, io) = if sandboxed {
            (Path::new(WORK_DIR).to_owned(), Path::new(IO_DIR).to_owned())
        } else {
            (host_work.clone(), host_io.clone())
        };
        let config = serde_json::json!({
            "work_dir": work,
            "io_dir": io,
            "preload": policy.preload,
            "own_pid_namespace": sandboxed,
            "cpu_seconds_per_cell": policy.cpu_seconds_per_cell,
            "rlimits": policy.rlimits(),
        });
        let worker_argv: Vec<OsString> = vec![
            environment.interpreter.clone().into(),
            "-I".into(),
            // Unbuffered, so print() and os.write(1, …) keep their relative order.
            "-u".into(),
            "-c".into(),
            // A named code object, so tracebacks can drop the worker's own frames.
            format!("import sys; exec(compile(sys.argv[1], {WORKER_FILENAME:?}, 'exec'))").into(),
            BOOTSTRAP.into(),
            config.to_string().into(),
        ];
        let (request_read, request_write) = pipe_pair()?;
        let (response_read, response_write) = pipe_pair()?;
        let mut protections = Protections {
            scrubbed_env: true,
            ..Protections::default()
        };
        let mut command;
        let seccomp_read = match isolation {
            Isolation::Bubblewrap { bwrap, setpriv } => {
                let uid = setpriv.as_ref().map(|_| isolation::fresh_uid());
                let args = isolation::bwrap_args(
                    environment,
                    setpriv.as_deref().zip(uid),
                    &host_work,
                    &host_io,
                    &worker_argv,
                );
                command = Command::new(bwrap);
                command.args(args);
                protections.namespaces = true;
                protections.seccomp = true;
                // SAFETY: getuid has no preconditions.
                protections.unprivileged_uid =
                    uid.or_else(|| Some(unsafe { libc::getuid() }).filter(|u| *u != 0));
                let program = isolation::seccomp_program()?;
                let (read, write) = pipe_pair()?;
                // The program is far smaller than a pipe buffer, so this cannot block.
                std::io::Write::write_all(&mut std::fs::File::from(write), &program)
                    .map_err(|e| SandboxError::io("writing the seccomp program to its pipe", e))?;
                Some(read)
            }
            Isolation::Unavailable(_) => {
                command = Command::new(&worker_argv[0]);
                command.args(&worker_argv[1..]).current_dir(&host_work);
                None
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
            (request_read.as_raw_fd(), REQUEST_FD),
            (response_write.as_raw_fd(), RESPONSE_FD),
            (
                seccomp_read.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                SECCOMP_FD,
            ),
        ];
        // SAFETY: the closure only calls async-signal-safe functions (fcntl, dup2).
        unsafe {
            command.pre_exec(move || place_fds(&inherited));
        }
        let mut child = command.spawn().map_err(|e| {
            SandboxError::io(
                format!(
                    "starting the python worker {:?}",
                    command.as_std().get_program()
                ),
                e,
            )
        })?;
        drop((request_read, response_write, seccomp_read));
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
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
        let requests = pipe::Sender::from_owned_fd(request_write)
            .map_err(|e| SandboxError::io("request pipe", e))?;
        let responses = pipe::Receiver::from_owned_fd(response_read)
            .map_err(|e| SandboxError::io("response pipe", e))?;
        let mut worker = Self {
            child,
            requests,
            responses: BufReader::new(responses),
            stderr_tail,
            dir,
            next_id: 0,
            protections,
        };
        let line = match tokio::time::timeout(policy.startup_timeout, worker.read_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                return Err(worker
                    .start_failure("the worker exited before it was ready")
                    .await);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(worker
                    .start_failure("the worker did not become ready in time")
                    .await);
            }
        };
        let ready: Ready = serde_json::from_str(&line).map_err(|e| SandboxError::Protocol {
            detail: format!("expected the ready message: {e}"),
            raw: line.clone(),
        })?;
        worker.protections.landlock_abi = ready.landlock_abi;
        worker.protections.rlimits = ready.rlimits;
        Ok(worker)
    }

    async fn start_failure(&mut self, detail: &str) -> SandboxError {
        self.kill().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        SandboxError::WorkerStart {
            detail: detail.to_owned(),
            stderr: self.stderr_text(),
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned())
            .unwrap_or_default()
    }

    async fn read_line(&mut self) -> Result<Option<String>, SandboxError> {
        let mut line = String::new();
        let n = (&mut self.responses)
            .take(MAX_RESPONSE)
            .read_line(&mut line)
            .await
            .map_err(|e| SandboxError::io("reading from the python worker", e))?;
        if n == 0 {
            return Ok(None);
        }
        if !line.ends_with('\n') {
            return Err(SandboxError::Protocol {
                detail: format!("response longer than {MAX_RESPONSE} bytes"),
                raw: line.chars().take(200).collect(),
            });
        }
        Ok(Some(line))
    }

    /// Sends one request and waits for its answer, killing the worker on timeout.
    /// Lines that are not the answer to this request (a cell may write to the
    /// protocol descriptor itself) are skipped; an oversized one ends the worker.
    pub(crate) async fn request(
        &mut self,
        mut request: serde_json::Value,
        timeout: Duration,
    ) -> Completion {
        self.next_id += 1;
        let id = self.next_id;
        request["id"] = id.into();
        let mut text = request.to_string();
        text.push('\n');
        if self.requests.write_all(text.as_bytes()).await.is_err() {
            return Completion::Died(self.death().await);
        }
        let answer = async {
            loop {
                match self.read_line().await {
                    Ok(Some(line)) => {
                        if let Ok(response) = serde_json::from_str::<Response>(&line)
                            && response.id == id
                        {
                            return Ok(Some(response));
                        }
                    }
                    other => return other.map(|_| None),
                }
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Some(response))) => Completion::Answered(response),
            Ok(Ok(None)) => Completion::Died(self.death().await),
            Ok(Err(violation)) => {
                self.kill().await;
                Completion::Died(format!(
                    "the worker broke the protocol and was killed: {violation}"
                ))
            }
            Err(_) => {
                self.kill().await;
                Completion::TimedOut
            }
        }
    }

    /// Describes how the worker ended after its protocol pipe closed.
    async fn death(&mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        match status {
            Ok(Ok(status)) => describe(status),
            _ => {
                self.kill().await;
                "the worker stopped answering and was killed".to_owned()
            }
        }
    }

    /// Kills the whole tree and reaps it.
    pub(crate) async fn kill(&mut self) {
        self.signal_tree();
        let _ = self.child.wait().await;
    }

    /// SIGKILLs bwrap's sandbox init (its child: killing a PID namespace's init from
    /// outside takes every process inside with it; relying on bwrap's parent-death
    /// signal alone can leave the init lingering), then bwrap and its process group
    /// (which holds an unsandboxed worker's children). Synchronous, for `Drop`.
    fn signal_tree(&mut self) {
        let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) else {
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
        let _ = self.child.start_kill();
    }

    /// Reads a capture file, at most `limit` bytes; true when it held more.
    pub(crate) fn captured(&self, stream: &str, limit: usize) -> (String, bool) {
        let path = self.dir.path().join("io").join(stream);
        let Ok(file) = std::fs::File::open(&path) else {
            return (String::new(), false);
        };
        let mut bytes = Vec::with_capacity(limit.min(1 << 16));
        let read = file.take(limit as u64 + 1).read_to_end(&mut bytes);
        if read.is_err() {
            return (String::new(), false);
        }
        let truncated = bytes.len() > limit;
        bytes.truncate(limit);
        (String::from_utf8_lossy(&bytes).into_owned(), truncated)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal_tree();
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!(
            "the worker was killed by signal {signal} ({})",
            signal_name(signal)
        ),
        // bwrap reports a child killed by a signal as exit status 128 + signal.
        (Some(code), None) if code > 128 => {
            format!(
                "the worker was killed by signal {} ({})",
                code - 128,
                signal_name(code - 128)
            )
        }
        (Some(code), None) => format!("the worker exited with status {code}"),
        (None, None) => "the worker ended".to_owned(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGKILL => "SIGKILL",
        libc::SIGXCPU => "SIGXCPU, CPU limit",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io(format!("chmod {}", path.display()), e))
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid two-element array; on success both are new owned fds.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(SandboxError::io(
            "creating a pipe",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child before exec: move each inherited fd to its fixed number without the
/// close-on-exec flag. Two steps so a source already sitting on a target number is safe.
fn place_fds(fds: &[(i32, i32)]) -> std::io::Result<()> {
    let mut moved = [-1i32; 3];
    for (slot, (source, _)) in moved.iter_mut().zip(fds) {
        if *source >= 0 {
            // SAFETY: fcntl on an fd we own in this (forked) process.
            *slot = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 10) };
            if *slot < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    for (copy, (_, target)) in moved.iter().zip(fds) {
        // SAFETY: dup2 onto a fixed small fd number in the child.
        if *copy >= 0 && unsafe { libc::dup2(*copy, *target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
