//! One session forked by the fork server, and the JSON-lines protocol on its pipes.
//!
//! The host does not take a worker's word that a request has ended: an answer counts
//! only once the worker's single thread is blocked in the cell loop's own read of
//! the next request (same syscall, same stack pointer as when it became ready) with
//! no other process left in the session; and a worker that used CPU time while idle
//! is killed before the next request.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

use crate::cgroup::SessionCgroups;
use crate::probe::Probe;
use crate::session::CallCounts;
use crate::zygote::ForkServer;
use crate::{Protections, SandboxError};

/// The descriptor the worker reads requests from (see worker.py).
const REQUEST_FD: u64 = 3;
/// Longest protocol line accepted (responses carry only a value and a traceback).
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;
/// How long a worker back in its loop may keep extra threads or processes before the
/// session is ended for it.
const LEFTOVER_GRACE: Duration = Duration::from_millis(200);
/// How far from where it was first seen the loop's own read may sit: glibc's paths
/// for one and for several threads differ by a few dozen bytes, while a read made by
/// cell code is nested kilobytes deeper (under `exec` and the cell's frames).
const STACK_SLACK: u64 = 256;
/// How long the host keeps looking, without sleeping, whether an answered worker is
/// back in its loop; then how often it looks.
const QUIESCENCE_SPIN: Duration = Duration::from_micros(200);
const QUIESCENCE_POLL: Duration = Duration::from_millis(1);
/// Tasks of an idle session: its init and the worker's main thread.
const SESSION_TASKS: u64 = 2;

/// What the worker sends once it is ready.
#[derive(Debug, Deserialize)]
struct Ready {
    landlock_abi: Option<u32>,
    rlimits: Vec<String>,
    seccomp: bool,
}

/// A line on the response pipe: an answer, or the session init's report of the
/// worker's death.
#[derive(Debug, Deserialize)]
pub(crate) struct Response {
    id: Option<u64>,
    pub(crate) value: Option<String>,
    pub(crate) error: Option<String>,
    /// Calls of defined learned functions made by the request's code, per name.
    #[serde(default)]
    pub(crate) calls: BTreeMap<String, CallCounts>,
    /// Learned functions whose names the request's code rebound.
    #[serde(default)]
    pub(crate) shadowed: BTreeSet<String>,
    died: Option<String>,
}

/// How a request ended, before output is attached.
pub(crate) enum Completion {
    Answered(Response),
    TimedOut,
    Died(String),
}

/// What the host sees of a session between a request's answer and the next request.
enum Quiet {
    /// The only thread blocked in the loop's read, no other process.
    Idle,
    /// Still running (or blocked somewhere else).
    Busy,
    /// Back in the loop, but with threads or processes left over.
    Leftovers(String),
}

pub(crate) struct Worker {
    server: Arc<ForkServer>,
    requests: pipe::Sender,
    responses: BufReader<pipe::Receiver>,
    pidfd: Option<AsyncFd<OwnedFd>>,
    init_pid: i32,
    worker_pid: i32,
    cgroups: SessionCgroups,
    dir: PathBuf,
    next_id: u64,
    /// A request was sent and its answer not yet accepted.
    in_flight: bool,
    /// Where the loop's own read sits; `None` where `/proc/<pid>/syscall` cannot be
    /// read (the end-of-request check is then missing, and reported so).
    base: Option<u64>,
    idle_cpu_ns: u64,
    /// The worker's files read around every request (opened once it is known).
    probes: Probes,
    pub(crate) protections: Protections,
}

impl Worker {
    /// Takes over a session the fork server has just forked: puts its init into the
    /// session's cgroups, lets it start the worker and waits until that is ready.
    pub(crate) async fn attach(
        server: Arc<ForkServer>,
        pidfd: OwnedFd,
        request_write: OwnedFd,
        response_read: OwnedFd,
        dir: PathBuf,
        uid: Option<u32>,
    ) -> Result<Self, SandboxError> {
        let init_pid = pid_of(&pidfd)?;
        let policy = server.policy.clone();
        let (cgroups, caps) =
            SessionCgroups::create(policy.session_memory_limit, policy.max_processes);
        let pidfd = register(pidfd, Interest::READABLE, "a session's pidfd")?;
        let mut worker = Self {
            requests: pipe::Sender::from_owned_fd(request_write)
                .map_err(|e| SandboxError::io("request pipe", e))?,
            responses: BufReader::new(
                pipe::Receiver::from_owned_fd(response_read)
                    .map_err(|e| SandboxError::io("response pipe", e))?,
            ),
            pidfd: Some(pidfd),
            init_pid,
            worker_pid: 0,
            cgroups,
            dir,
            next_id: 0,
            in_flight: false,
            base: None,
            idle_cpu_ns: 0,
            probes: Probes::default(),
            protections: Protections {
                scrubbed_env: true,
                namespaces: server.sandboxed,
                workspace_cap: server.sandboxed.then_some(policy.workspace_limit),
                memory_cap: caps.memory,
                process_cap: caps.processes,
                missing: caps.missing,
                // SAFETY: getuid has no preconditions.
                unprivileged_uid: uid
                    .or_else(|| Some(unsafe { libc::getuid() }).filter(|u| *u != 0)),
                ..Protections::default()
            },
            server,
        };
        if !worker.server.sandboxed {
            worker
                .protections
                .missing
                .push("no workspace cap: unsandboxed, the work dir is a host dir".to_owned());
        }
        if let Err(detail) = worker.cgroups.add(init_pid) {
            worker.kill().await;
            return Err(SandboxError::WorkerStart {
                detail,
                stderr: String::new(),
            });
        }
        let started = tokio::time::timeout(policy.startup_timeout, worker.handshake()).await;
        match started {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(detail)) => Err(worker.start_failure(&detail).await),
            Err(_) => Err(worker
                .start_failure("the session did not become ready in time")
                .await),
        }
    }

    /// Says go, reads the ready message and finds where the worker waits for requests.
    async fn handshake(&mut self) -> Result<(), String> {
        self.requests
            .write_all(b"go\n")
            .await
            .map_err(|e| format!("the session init is gone: {e}"))?;
        let line = match self.read_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Err("the session exited before it was ready".to_owned()),
            Err(e) => return Err(e.to_string()),
        };
        let ready: Ready = serde_json::from_str(&line)
            .map_err(|e| format!("expected the ready message ({e}): {line:?}"))?;
        self.protections.landlock_abi = ready.landlock_abi;
        self.protections.rlimits = ready.rlimits;
        self.protections.seccomp = ready.seccomp;
        self.worker_pid = children(self.init_pid)
            .first()
            .copied()
            .ok_or("the session's worker is gone")?;
        self.probes = Probes::open(self.worker_pid, &self.dir);
        loop {
            match self.probes.blocked_reading_requests() {
                Ok(Some(sp)) => self.base = Some(sp),
                Ok(None) if self.probes.cpu_ns().is_some() => {
                    tokio::time::sleep(QUIESCENCE_POLL).await;
                    continue;
                }
                Ok(None) => return Err("the session's worker ended after it was ready".to_owned()),
                Err(e) => self.protections.missing.push(format!(
                    "no check that a request has ended before its answer is accepted: {e}"
                )),
            }
            self.idle_cpu_ns = self.probes.cpu_ns().unwrap_or_default();
            return Ok(());
        }
    }

    async fn start_failure(&mut self, detail: &str) -> SandboxError {
        self.kill().await;
        SandboxError::WorkerStart {
            detail: detail.to_owned(),
            stderr: self.server.stderr_text(),
        }
    }

    /// Whether the session still runs (a pre-forked one may have been killed).
    pub(crate) fn is_alive(&self) -> bool {
        let Some(pidfd) = &self.pidfd else {
            return false;
        };
        let mut poll = libc::pollfd {
            fd: pidfd.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut poll, 1, 0) == 0 }
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

    /// Sends one request and waits for its answer, killing the session on timeout.
    /// Lines that are not an answer to this request are skipped; an oversized one, a
    /// second answer, or code still running after the answer ends the session.
    pub(crate) async fn request(
        &mut self,
        mut request: serde_json::Value,
        timeout: Duration,
    ) -> Completion {
        // A worker that is gone is found out by the request itself.
        if self
            .probes
            .cpu_ns()
            .is_some_and(|ns| ns != self.idle_cpu_ns)
        {
            self.kill().await;
            return Completion::Died(
                "code of an earlier cell kept running after that cell had ended (a thread, \
                 timer or signal handler); the session was ended"
                    .to_owned(),
            );
        }
        self.next_id += 1;
        let id = self.next_id;
        request["id"] = id.into();
        let mut text = request.to_string();
        text.push('\n');
        self.in_flight = true;
        if self.requests.write_all(text.as_bytes()).await.is_err() {
            return Completion::Died(self.death(None).await);
        }
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline.into(), self.answer(id)).await {
            Ok(Ok(response)) => {
                self.in_flight = false;
                Completion::Answered(response)
            }
            Ok(Err(death)) => {
                let reason = self.death(Some(death)).await;
                Completion::Died(reason)
            }
            Err(_) => {
                self.kill().await;
                Completion::TimedOut
            }
        }
    }

    /// The answer to request `id`, accepted only once the worker is idle in its loop;
    /// `Err` says why the session is over.
    async fn answer(&mut self, id: u64) -> Result<Response, String> {
        let response = loop {
            match self.read_line().await {
                Ok(Some(line)) => match serde_json::from_str::<Response>(&line) {
                    Ok(response) if response.died.is_some() => {
                        return Err(response.died.unwrap_or_default());
                    }
                    Ok(response) if response.id == Some(id) => break response,
                    _ => {}
                },
                Ok(None) => return Err(String::new()),
                Err(violation) => {
                    return Err(format!("the worker broke the protocol: {violation}"));
                }
            }
        };
        let mut leftovers_since = None;
        let spin_started = Instant::now();
        loop {
            match self.quiet() {
                Quiet::Idle => break,
                Quiet::Busy => leftovers_since = None,
                Quiet::Leftovers(what) => {
                    let since = *leftovers_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > LEFTOVER_GRACE {
                        return Err(format!(
                            "the cell left {what} running; the session was ended"
                        ));
                    }
                    self.kill_leftovers();
                }
            }
            // The worker is usually back in its read within microseconds, unless it
            // waits for a CPU: look again soon, and leave the CPU to it meanwhile.
            if spin_started.elapsed() < QUIESCENCE_SPIN {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(QUIESCENCE_POLL).await;
            }
        }
        // Idle in the loop: every byte the worker wrote is in the pipe by now.
        if self.more_to_read() {
            return Err(
                "the cell wrote its own answer to the protocol channel; the session was ended"
                    .to_owned(),
            );
        }
        self.idle_cpu_ns = self.probes.cpu_ns().unwrap_or_default();
        Ok(response)
    }

    /// Whether the response pipe holds anything beyond the line just read.
    fn more_to_read(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.responses.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let readable =
            unsafe { libc::poll(&mut poll, 1, 0) } > 0 && poll.revents & libc::POLLIN != 0;
        readable || !self.responses.buffer().is_empty()
    }

    fn quiet(&self) -> Quiet {
        let at_base = match self.base {
            Some(base) => self
                .probes
                .blocked_reading_requests()
                .is_ok_and(|sp| sp.is_some_and(|sp| sp.abs_diff(base) <= STACK_SLACK)),
            None => true,
        };
        if !at_base {
            return Quiet::Busy;
        }
        // One read instead of walking /proc: the session's init and the worker's one
        // thread are all its cgroup holds when nothing was left behind (escaped and
        // zombie tasks count there too; anything else takes the walk below).
        if self.cgroups.tasks() == Some(SESSION_TASKS) {
            return Quiet::Idle;
        }
        let threads = std::fs::read_dir(format!("/proc/{}/task", self.worker_pid))
            .map(|tasks| tasks.count())
            .unwrap_or(0);
        if threads > 1 {
            return Quiet::Leftovers(format!("{} thread(s)", threads - 1));
        }
        let processes = self.leftover_processes();
        if !processes.is_empty() {
            return Quiet::Leftovers(format!("{} process(es)", processes.len()));
        }
        Quiet::Idle
    }

    /// Every process of the session but its init and worker.
    fn leftover_processes(&self) -> Vec<i32> {
        let mut found = Vec::new();
        let mut queue = vec![self.init_pid];
        while let Some(pid) = queue.pop() {
            for child in children(pid) {
                // Zombies hold nothing; their parent reaps them later.
                if child != self.worker_pid && !is_zombie(child) {
                    found.push(child);
                }
                queue.push(child);
            }
        }
        found
    }

    fn kill_leftovers(&self) {
        for pid in self.leftover_processes() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Describes how the session ended, after its worker was heard dying (or not).
    async fn death(&mut self, reported: Option<String>) -> String {
        let out_of_memory = self.cgroups.out_of_memory();
        self.kill().await;
        let reason = reported
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "the worker ended".to_owned());
        if out_of_memory {
            format!(
                "{reason}: the session ran out of memory (cap {} bytes)",
                self.server.policy.session_memory_limit
            )
        } else {
            reason
        }
    }

    /// Kills every process of the session and waits until its init is gone.
    pub(crate) async fn kill(&mut self) {
        self.signal();
        if let Some(pidfd) = &self.pidfd {
            let _ = tokio::time::timeout(Duration::from_secs(2), pidfd.readable()).await;
        }
    }

    /// SIGKILLs the session's processes now, without waiting for them to exit.
    fn signal(&self) {
        let pidfd = self.pidfd.as_ref().map(|pidfd| pidfd.get_ref().as_raw_fd());
        send_kill(pidfd, [self.worker_pid, self.init_pid], &self.cgroups);
    }

    /// The request's output on fd 1 (`stdout`) or fd 2, at most `limit` bytes; true
    /// when there was more.
    pub(crate) fn captured(&self, stdout: bool, limit: usize) -> (String, bool) {
        let probe = if stdout {
            &self.probes.stdout
        } else {
            &self.probes.stderr
        };
        let Ok(mut bytes) = probe.bytes(limit.saturating_add(1)) else {
            return (String::new(), false);
        };
        let truncated = bytes.len() > limit;
        bytes.truncate(limit);
        (String::from_utf8_lossy(&bytes).into_owned(), truncated)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Mid-request (its future dropped), a cell may be running: stop it now. An
        // idle worker ends by itself when its request pipe closes (with this drop),
        // at the lowest priority, so its exit (milliseconds of address-space
        // teardown) takes no CPU a conversation wants; it is killed if it has not
        // ended within IDLE_EXIT_GRACE.
        if self.in_flight {
            self.signal();
        }
        reap(Teardown {
            pidfd: self.pidfd.take().map(AsyncFd::into_inner),
            pids: [self.worker_pid, self.init_pid],
            cgroups: std::mem::take(&mut self.cgroups),
            dir: std::mem::take(&mut self.dir),
        });
    }
}

/// How long an idle dropped session gets to exit on its own (its worker reads the
/// end of its requests) before it is killed.
const IDLE_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Everything a dropped session leaves to end: its processes, cgroups and files.
struct Teardown {
    pidfd: Option<OwnedFd>,
    /// The worker and the session init.
    pids: [i32; 2],
    cgroups: SessionCgroups,
    dir: PathBuf,
}

impl Teardown {
    /// Whether the session's init exited within `timeout` (no pidfd: it cannot tell).
    fn exited_within(&self, timeout: Duration) -> bool {
        let Some(pidfd) = &self.pidfd else {
            return false;
        };
        let mut poll = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, millis) > 0 }
    }

    fn signal(&self) {
        let pidfd = self.pidfd.as_ref().map(AsRawFd::as_raw_fd);
        send_kill(pidfd, self.pids, &self.cgroups);
    }

    /// Waits for the session to exit, then removes its cgroups (possible once the
    /// last process is gone) and its files.
    fn finish(self) {
        if !self.exited_within(IDLE_EXIT_GRACE) {
            self.signal();
            self.exited_within(Duration::from_secs(5));
        }
        self.cgroups.kill_all();
        self.cgroups.remove();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Hands `teardown` to the process's reaper thread, which finishes each session on
/// a thread of its own (so a drop costs its caller no thread start); where that
/// thread cannot run, the caller signals and a thread of its own finishes.
fn reap(teardown: Teardown) {
    static REAPER: OnceLock<Option<Mutex<mpsc::Sender<Teardown>>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Teardown>();
        let spawned = std::thread::Builder::new()
            .name("agentopt-reaper".to_owned())
            .spawn(move || {
                for teardown in receiver {
                    finish_elsewhere(teardown);
                }
            });
        spawned.ok().map(|_| Mutex::new(sender))
    });
    let unsent = match reaper {
        Some(sender) => match sender.lock() {
            Ok(sender) => sender.send(teardown).err().map(|e| e.0),
            Err(_) => Some(teardown),
        },
        None => Some(teardown),
    };
    if let Some(teardown) = unsent {
        teardown.signal();
        finish_elsewhere(teardown);
    }
}

fn finish_elsewhere(teardown: Teardown) {
    let _ = std::thread::Builder::new()
        .name("agentopt-session-end".to_owned())
        .spawn(move || teardown.finish());
}

/// SIGKILLs a session's init (which takes its PID namespace with it), its worker and
/// anything left in its cgroups; it does not wait for them to exit.
fn send_kill(pidfd: Option<i32>, [worker_pid, init_pid]: [i32; 2], cgroups: &SessionCgroups) {
    if let Some(pidfd) = pidfd {
        // SAFETY: pidfd_send_signal on an open pidfd; no other pointers.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    for pid in [worker_pid, -init_pid] {
        if pid != 0 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    cgroups.signal_all();
}

/// The pid (in our namespace) a pidfd refers to, from its fdinfo.
fn pid_of(pidfd: &OwnedFd) -> Result<i32, SandboxError> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let info = std::fs::read_to_string(&path).map_err(|e| SandboxError::io(&path, e))?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
        .filter(|pid: &i32| *pid > 0)
        .ok_or_else(|| SandboxError::Protocol {
            detail: "a session pidfd without a live pid".to_owned(),
            raw: info.clone(),
        })
}

/// The children of every thread of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// The worker's files the host reads around every request (before the worker is
/// known, probes of no file: they read as gone).
#[derive(Debug, Default)]
struct Probes {
    syscall: Probe,
    schedstat: Probe,
    stat: Probe,
    stdout: Probe,
    stderr: Probe,
}

impl Probes {
    fn open(worker_pid: i32, dir: &std::path::Path) -> Self {
        let process = |file: &str| Probe::open(format!("/proc/{worker_pid}/{file}"));
        let capture = |name: &str| Probe::open(dir.join("io").join(name).display().to_string());
        Self {
            syscall: process("syscall"),
            schedstat: process("schedstat"),
            stat: process("stat"),
            stdout: capture("stdout"),
            stderr: capture("stderr"),
        }
    }

    /// The worker's stack pointer when it is blocked in `read` on the request fd,
    /// `None` when it is not (or is gone); `Err` when its syscall cannot be read here
    /// (permissions, a kernel without the file).
    fn blocked_reading_requests(&self) -> Result<Option<u64>, String> {
        let text = match self.syscall.text() {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", self.syscall.path())),
        };
        let field = |index: usize| {
            let field: &str = text.split_whitespace().nth(index)?;
            u64::from_str_radix(field.trim_start_matches("0x"), 16).ok()
        };
        let number: Option<i64> = text.split_whitespace().next().and_then(|n| n.parse().ok());
        if number != Some(libc::SYS_read) || field(1) != Some(REQUEST_FD) {
            return Ok(None);
        }
        Ok(field(7))
    }

    /// CPU time the worker has used, in nanoseconds (schedstat), else in clock
    /// ticks; `None` when it is gone.
    fn cpu_ns(&self) -> Option<u64> {
        if let Some(ns) = self
            .schedstat
            .text()
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
        {
            return Some(ns);
        }
        let stat = self.stat.text().ok()?;
        let (_, after) = stat.rsplit_once(')')?;
        Some(
            after
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum(),
        )
    }
}

/// Registers a descriptor with the tokio reactor for the `interest` given.
pub(crate) fn register(
    fd: OwnedFd,
    interest: Interest,
    what: &str,
) -> Result<AsyncFd<OwnedFd>, SandboxError> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same
    // for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(fd, interest) }
        .map_err(|e| SandboxError::io(format!("registering {what}"), e.into()))
}

pub(crate) fn pipe_pair() -> Result<(OwnedFd, OwnedFd), SandboxError> {
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
pub(crate) fn place_fds(fds: &[(i32, i32)]) -> std::io::Result<()> {
    let mut moved = [-1i32; 4];
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
