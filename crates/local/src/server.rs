//! Running a llama.cpp server on 127.0.0.1 under supervision.
//!
//! Process invariants:
//! - the server runs in its own process group, so Ctrl-C at a terminal reaches only
//!   us, and stopping kills the whole group;
//! - it gets `PR_SET_PDEATHSIG = SIGKILL` for the supervisor thread that spawned it,
//!   which lives exactly as long as the server: if our process dies in any way
//!   (Ctrl-C, SIGKILL, panic), the kernel kills the server;
//! - dropping [`LocalServer`] kills the group and reaps it before returning.
//!
//! Restart policy: after it was once healthy, a server that exits on its own is
//! restarted on the same port after [`RestartPolicy::delay`], at most
//! [`RestartPolicy::max_restarts`] times per [`RestartPolicy::window`]; then the
//! supervisor gives up and [`LocalServer::wait_healthy`] reports why. Requests made
//! while it restarts fail to connect (or get 503 while the model loads), which the
//! client's retries absorb.

use agentopt_core::io_error;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cache::LocalCache;
use crate::progress::Progress;
use agentopt_pyenv::tail_lines;

use crate::LocalError;
use crate::python::PythonEnv;
use crate::spec::LocalModel;

/// The server script run by the managed venv's Python.
const SERVE_SCRIPT: &str = include_str!("serve.py");
/// Lines of server log kept in errors.
const LOG_TAIL_LINES: usize = 40;
/// Bytes read from the end of the log to find those lines.
const LOG_TAIL_BYTES: u64 = 64 * 1024;
/// How many ports [`LocalServer::launch_on_free_port`] tries.
pub const PORT_ATTEMPTS: u32 = 3;
/// Pause between health probes.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// How a dead server is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Most restarts within one `window`; one more death and the supervisor gives up.
    pub max_restarts: u32,
    /// The sliding window restarts are counted in.
    pub window: Duration,
    /// Pause before each restart.
    pub delay: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            window: Duration::from_secs(300),
            delay: Duration::from_secs(1),
        }
    }
}

/// Slots of the embedded server by default: requests it decodes together (and
/// `bench-math`'s local concurrency). Two, from `cargo xtask bench-local` and a decode
/// probe on 2 shared cores (docs/bench-math/measurements.md): batched decoding of 2–4
/// streams gave more tokens per second than one stream, whole short conversations
/// showed no consistent difference, and 2 slots cost 240 MiB more RSS than 1 where 4
/// cost 700 MiB.
pub const DEFAULT_PARALLEL: usize = 2;

/// What [`LocalServer::start`] serves and how.
#[derive(Clone, Debug)]
pub struct LocalServerOptions {
    /// The model to serve.
    pub model: LocalModel,
    /// Context size per slot in tokens; `None` takes the model's default (8192).
    pub context_size: Option<u32>,
    /// Slots: requests decoded together (continuous batching), each with its own
    /// `context_size` of KV cache (about 28 KiB per token for the 1.5B model).
    pub parallel: usize,
    /// Inference threads; `None` takes the available cores.
    pub threads: Option<usize>,
    /// How long to wait for `GET /health` to answer 200.
    pub health_timeout: Duration,
    /// What to do when the server dies.
    pub restart: RestartPolicy,
    /// Progress output for download, assembly, runtime install and start.
    pub progress: Progress,
    /// Cache to use; `None` takes [`LocalCache::from_env`].
    pub cache: Option<LocalCache>,
}

impl Default for LocalServerOptions {
    fn default() -> Self {
        Self {
            model: LocalModel::default(),
            context_size: None,
            parallel: DEFAULT_PARALLEL,
            threads: None,
            health_timeout: Duration::from_secs(180),
            restart: RestartPolicy::default(),
            progress: Progress::default(),
            cache: None,
        }
    }
}

/// Any llama.cpp-compatible server command to supervise (what
/// [`LocalServer::start`] builds for the embedded runtime).
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments; they must make it listen on 127.0.0.1:`port`.
    pub args: Vec<OsString>,
    /// The port it listens on.
    pub port: u16,
    /// The model name to send in requests.
    pub model_name: String,
    /// Where its stdout and stderr go (truncated at launch, removed on drop).
    pub log_path: PathBuf,
    /// How long to wait for `GET /health` to answer 200.
    pub health_timeout: Duration,
    /// What to do when it dies.
    pub restart: RestartPolicy,
}

/// A running, supervised local model server; dropping it stops the server.
#[derive(Debug)]
pub struct LocalServer {
    shared: Arc<Shared>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    root_url: String,
    base_url: String,
    model_name: String,
    context_window: u32,
    log_path: PathBuf,
    http: reqwest::Client,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// The server process (and group) id while it runs.
    pid: Option<u32>,
    restarts: u32,
    last_exit: Option<String>,
    /// The supervisor has returned: no server runs and none will.
    ended: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not yet healthy once: an exit is a start failure, not restarted.
    Starting,
    /// Healthy once: an exit is restarted per the policy.
    Running,
    /// Being dropped: an exit is expected.
    Stopping,
}

impl LocalServer {
    /// Obtains the model and runtime if needed (see [`prepare`](crate::prepare)),
    /// starts the server on a free loopback port and waits until it is healthy.
    pub async fn start(options: LocalServerOptions) -> Result<Self, LocalError> {
        let cache = match options.cache {
            Some(cache) => cache,
            None => LocalCache::from_env()?,
        };
        let prepared = cache.prepare(options.model, options.progress).await?;
        let script = write_serve_script(&cache)?;
        let spec = options.model.spec();
        let context = options.context_size.unwrap_or(spec.default_context);
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let command_on = |port: u16| ServerCommand {
            program: prepared.python.python(),
            args: vec![
                "-I".into(),
                script.clone().into(),
                "--model".into(),
                prepared.model_path.clone().into(),
                "--alias".into(),
                spec.id.into(),
                "--port".into(),
                port.to_string().into(),
                "--ctx".into(),
                context.to_string().into(),
                "--parallel".into(),
                options.parallel.max(1).to_string().into(),
                "--threads".into(),
                threads.to_string().into(),
            ],
            port,
            model_name: spec.id.to_owned(),
            log_path: cache.log_dir().join(format!("{}-{port}.log", spec.id)),
            health_timeout: options.health_timeout,
            restart: options.restart,
        };
        Self::launch_on_free_port(command_on, options.progress).await
    }

    /// Launches `command_on(port)` on a free loopback port. The port is free when
    /// chosen but another process may take it before the server binds it; if the
    /// server then exits and the port is indeed taken, it retries on a new port (at
    /// most [`PORT_ATTEMPTS`] ports in all).
    pub async fn launch_on_free_port(
        mut command_on: impl FnMut(u16) -> ServerCommand,
        progress: Progress,
    ) -> Result<Self, LocalError> {
        let mut attempt = 1;
        loop {
            let port = free_loopback_port()?;
            match Self::launch(command_on(port), progress).await {
                Err(LocalError::ServerExited { .. })
                    if attempt < PORT_ATTEMPTS && !is_port_free(port) =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts `command` under supervision, waits until `GET /health` answers 200 and
    /// reads the context window from `GET /props`.
    pub async fn launch(command: ServerCommand, progress: Progress) -> Result<Self, LocalError> {
        let step = progress.spinner(&format!(
            "starting the local model server ({})",
            command.model_name
        ));
        if let Some(dir) = command.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&command.log_path)
            .map_err(io_error("create", &command.log_path))?;
        let root_url = format!("http://127.0.0.1:{}", command.port);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Starting,
                pid: None,
                restarts: 0,
                last_exit: None,
                ended: false,
            }),
            changed: Condvar::new(),
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|error| LocalError::ServerQuery {
                url: root_url.clone(),
                message: format!("could not build an HTTP client: {error}"),
                body: String::new(),
            })?;
        let supervisor = {
            let shared = Arc::clone(&shared);
            let supervised = command.clone();
            std::thread::Builder::new()
                .name(format!("agentopt-local-server-{}", command.port))
                .spawn(move || supervise(&supervised, &log, &shared))
                .map_err(io_error("start a supervisor thread for", &command.program))?
        };
        let mut server = Self {
            shared,
            supervisor: Some(supervisor),
            base_url: format!("{root_url}/v1"),
            root_url,
            model_name: command.model_name,
            context_window: 0,
            log_path: command.log_path,
            http,
        };
        // On error `server` is dropped here, which kills whatever was started.
        server.wait_healthy(command.health_timeout).await?;
        server.context_window = server.fetch_context_window().await?;
        server.shared.lock().phase = Phase::Running;
        step.finish();
        Ok(server)
    }

    /// The OpenAI-compatible base URL, e.g. `http://127.0.0.1:40123/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model name to put in requests.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The server's context size in tokens, as it reported in `GET /props`.
    pub fn context_window(&self) -> u32 {
        self.context_window
    }

    /// The endpoint to hand to [`agentopt_llm::OpenAiClient`]: this server, its model name
    /// and context window, with lenient tool-call recovery on (small local models
    /// often write tool calls as text).
    pub fn endpoint(&self) -> agentopt_llm::EndpointConfig {
        agentopt_llm::EndpointConfig::local(self.base_url.clone(), self.model_name.clone())
            .with_context_window(self.context_window)
    }

    /// The server's process id while it runs (`None` between a death and its restart).
    pub fn pid(&self) -> Option<u32> {
        self.shared.lock().pid
    }

    /// How often the server has been restarted after dying.
    pub fn restarts(&self) -> u32 {
        self.shared.lock().restarts
    }

    /// Where the server's stdout and stderr go.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// Waits until `GET /health` answers 200 (e.g. after a restart); fails at once,
    /// with the server's log tail, if it is dead for good.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), LocalError> {
        let health_url = format!("{}/health", self.root_url);
        let started = Instant::now();
        loop {
            if let Some(error) = self.ended_error() {
                return Err(error);
            }
            let last_answer = match self
                .http
                .get(&health_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    format!("{status} {body}")
                }
                Err(error) => error.to_string(),
            };
            if started.elapsed() >= timeout {
                return Err(LocalError::HealthTimeout {
                    url: self.base_url.clone(),
                    waited: started.elapsed(),
                    last_answer,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    fn ended_error(&self) -> Option<LocalError> {
        let state = self.shared.lock();
        if !state.ended {
            return None;
        }
        let status = state
            .last_exit
            .clone()
            .unwrap_or_else(|| "unknown".to_owned());
        let (phase, restarts) = (state.phase, state.restarts);
        drop(state);
        let log_tail = self.log_tail();
        Some(match phase {
            Phase::Starting => LocalError::ServerExited {
                url: self.base_url.clone(),
                status,
                log_tail,
            },
            Phase::Running | Phase::Stopping => LocalError::ServerGaveUp {
                url: self.base_url.clone(),
                restarts,
                status,
                log_tail,
            },
        })
    }

    async fn fetch_context_window(&self) -> Result<u32, LocalError> {
        let url = format!("{}/props", self.root_url);
        let http_error = |message: String, body: &str| LocalError::ServerQuery {
            url: url.clone(),
            message,
            body: body.to_owned(),
        };
        let response = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|error| http_error(error.to_string(), ""))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| http_error(error.to_string(), ""))?;
        if !status.is_success() {
            return Err(http_error(format!("status {status}"), &body));
        }
        let props: serde_json::Value = serde_json::from_str(&body)
            .map_err(|error| http_error(format!("invalid JSON: {error}"), &body))?;
        props
            .pointer("/default_generation_settings/n_ctx")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n_ctx| u32::try_from(n_ctx).ok())
            .ok_or_else(|| http_error("no default_generation_settings.n_ctx".to_owned(), &body))
    }

    fn log_tail(&self) -> String {
        read_log_tail(&self.log_path)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Stopping;
            if let Some(pid) = state.pid {
                kill_group(pid);
            }
            self.shared.changed.notify_all();
        }
        if let Some(supervisor) = self.supervisor.take() {
            // The supervisor only waits for the killed child; a panic there has
            // nothing left for us to clean up.
            let _ = supervisor.join();
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a
        // single field assignment.
        agentopt_core::lock(&self.state)
    }
}

/// The supervisor thread: spawns the server, waits for it, restarts it per policy.
/// The server's death signal is tied to this thread, which outlives the server.
fn supervise(command: &ServerCommand, log: &File, shared: &Shared) {
    let mut recent_restarts: VecDeque<Instant> = VecDeque::new();
    loop {
        let mut child = {
            let mut state = shared.lock();
            if state.phase == Phase::Stopping {
                break;
            }
            match spawn_server(command, log) {
                Ok(child) => {
                    state.pid = Some(child.id());
                    child
                }
                Err(error) => {
                    state.last_exit = Some(format!(
                        "could not start {}: {error}",
                        command.program.display()
                    ));
                    break;
                }
            }
        };
        let exit = child.wait().map_or_else(
            |error| format!("wait failed: {error}"),
            |status| status.to_string(),
        );
        let mut state = shared.lock();
        if let Some(pid) = state.pid.take() {
            // Anything the server itself started dies with it.
            kill_group(pid);
        }
        state.last_exit = Some(exit);
        if state.phase != Phase::Running {
            break;
        }
        let now = Instant::now();
        recent_restarts.retain(|at| now.duration_since(*at) < command.restart.window);
        if recent_restarts.len() >= command.restart.max_restarts as usize {
            break;
        }
        recent_restarts.push_back(now);
        state.restarts += 1;
        shared.changed.notify_all();
        let (state, _) = shared
            .changed
            .wait_timeout_while(state, command.restart.delay, |state| {
                state.phase != Phase::Stopping
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(state);
    }
    shared.lock().ended = true;
    shared.changed.notify_all();
}

fn spawn_server(command: &ServerCommand, log: &File) -> std::io::Result<Child> {
    let mut process = std::process::Command::new(&command.program);
    process
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
        // SAFETY: runs in the child between fork and exec and makes only
        // async-signal-safe calls (prctl, getppid, _exit); it allocates nothing.
        unsafe {
            process.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                // If we died before prctl took effect, nobody would kill the server.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    process.spawn()
}

/// Kills the process group led by `pid` (the server and anything it started).
fn kill_group(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg only sends a signal; the group is the server's own, created
        // by `process_group(0)` and not yet reaped by us, so the id is not reused.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_loopback_port() -> Result<u16, LocalError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_error("bind", "127.0.0.1:0"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(io_error("read the address of", "127.0.0.1:0"))
        .map_err(LocalError::from)
}

fn is_port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The last lines of a log file (reading at most its last 64 KiB).
fn read_log_tail(path: &std::path::Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map_or(0, |meta| meta.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    tail_lines(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES)
}

/// Writes the server script into the runtime folder (atomically, so concurrent starts
/// never run a half-written one) and returns its path.
fn write_serve_script(cache: &LocalCache) -> Result<PathBuf, LocalError> {
    let dir = cache.runtime_dir();
    let path = dir.join("serve.py");
    if std::fs::read_to_string(&path).is_ok_and(|current| current == SERVE_SCRIPT) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
    agentopt_core::files::write_atomic(&path, SERVE_SCRIPT.as_bytes())
        .map_err(|error| io_error("write", &path)(std::io::Error::other(error.to_string())))?;
    Ok(path)
}

/// A model and runtime ready to serve.
pub(crate) struct Prepared {
    pub(crate) model_path: PathBuf,
    pub(crate) python: PythonEnv,
}

impl LocalCache {
    /// Obtains the model and the server runtime (each at most once).
    pub(crate) async fn prepare(
        &self,
        model: LocalModel,
        progress: Progress,
    ) -> Result<Prepared, LocalError> {
        let model_path = self.ensure_model(model, progress).await?;
        let python = PythonEnv::ensure(self, progress).await?;
        python.ensure_server_runtime(progress).await?;
        Ok(Prepared { model_path, python })
    }
}
