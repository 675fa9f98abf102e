//! Faults mixed into normal replies (issue 15's fault-injection run): every one is
//! absorbed and accounted for in the report, and nothing recorded is lost.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentopt_core::files::{read_json, read_json_lines};
use agentopt_testkit::{RecordedRequest, Reply};
use agentopt_train::ConversationRecord;
use agentopt_train::TrainingReport as Report;
use serde_json::json;

use crate::e2e::{Setup, TEST, TRAIN, finish, reply};

/// The transport and format faults, served to the first requests in turn (each is
/// retried by the client); the slow one answers normally after a pause.
fn transport_faults() -> VecDeque<Option<Reply>> {
    VecDeque::from([
        Some(Reply::rate_limited(Some(1))),
        Some(Reply::server_error(500)),
        Some(Reply::server_error(503)),
        Some(Reply::text("cut short").truncated()),
        Some(Reply::malformed_json()),
        Some(Reply::empty_choices()),
        None, // slow: the normal reply, late
    ])
}

/// `reply`, with the transport faults first, one unknown optimizer tool and one
/// call of `multiply` with arguments that are not JSON.
fn faulty() -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let transport = Mutex::new(transport_faults());
    let unknown_tool_sent = AtomicBool::new(false);
    let bad_arguments_sent = AtomicBool::new(false);
    move |request| {
        if let Some(fault) = transport.lock().expect("lock").pop_front() {
            return fault.unwrap_or_else(|| reply(request).delayed(Duration::from_millis(1500)));
        }
        let body = request.body.to_string();
        let optimizer = body.contains("\"add_function\"");
        if optimizer && !unknown_tool_sent.swap(true, Ordering::SeqCst) {
            return Reply::tool_call("delete_everything", json!({"name": "multiply"}));
        }
        let offered = !optimizer && body.contains("\"multiply\"");
        let answering_a_tool = request.body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .is_some_and(|last| last["role"] == "tool");
        if offered && !answering_a_tool && !bad_arguments_sent.swap(true, Ordering::SeqCst) {
            return Reply::tool_call_raw("multiply", "{\"a\": 6, \"b\": ");
        }
        reply(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_faults_mixed_in_completes_and_accounts_for_every_one() {
    // The preflight's model list meets a 429 (Retry-After 1 s) and a 503 first.
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("train.jsonl"), TRAIN).expect("train data");
    std::fs::write(dir.path().join("test.jsonl"), TEST).expect("test data");
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(16384)
        .get_faults([Reply::rate_limited(Some(1)), Reply::server_error(503)])
        .rule(faulty())
        .await;
    let setup = Setup::around(dir, server);
    let run_dir = setup.run_dir("faults");
    finish(setup.command(&run_dir, &[])).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report");

    assert!(report.incomplete.is_none() && report.infrastructure.is_empty());
    let preflight = report
        .usage
        .iter()
        .find(|usage| usage.role == "preflight")
        .expect("the preflight's retries are reported");
    assert_eq!(preflight.retries, 2, "{:?}", report.usage);
    assert_eq!(
        report.test_after.accuracy.correct, 2,
        "learned and used despite the faults"
    );
    let retries: u64 = report.usage.iter().map(|usage| usage.retries).sum();
    let failed: u64 = report.usage.iter().map(|usage| usage.failed_calls).sum();
    assert_eq!(
        (retries, failed),
        (6 + 2, 0),
        "six chat faults and two preflight faults retried, none lost: {:?}",
        report.usage
    );
    let per_endpoint: u64 = report.endpoints.iter().map(|usage| usage.retries).sum();
    assert_eq!(per_endpoint, 6 + 2, "{:?}", report.endpoints);
    assert!(
        report.epochs[0].rejected >= 1,
        "the unknown tool was rejected: {:?}",
        report.epochs
    );
    let multiply = &report.functions[0];
    assert_eq!(multiply.name, "multiply");
    assert!(
        multiply.training.calls > multiply.training.succeeded,
        "the call with broken arguments counts as a failed call: {multiply:?}"
    );
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        markdown.contains("| role | calls | retried | failed |"),
        "{markdown}"
    );

    // Every conversation is recorded once, none as an infrastructure error.
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    assert_eq!(records.len(), 2 + 2 + 2 + 2);
    assert!(
        records
            .iter()
            .all(|record| record.attempt.outcome.infrastructure().is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_checked_before_anything_runs_or_is_written() {
    // No context window reported anywhere: refused up front, naming the flag…
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("train.jsonl"), TRAIN).expect("train data");
    std::fs::write(dir.path().join("test.jsonl"), TEST).expect("test data");
    let server = agentopt_testkit::ScriptedServer::builder()
        .without_context_window()
        .rule(reply)
        .await;
    let setup = Setup::around(dir, server);
    let run_dir = setup.run_dir("unknown-window");
    let output = tokio::process::Command::from(setup.command(&run_dir, &[]))
        .output()
        .await
        .expect("xtask runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--context-window"), "{stderr}");
    assert!(
        setup.server.chat_requests().is_empty() && !run_dir.exists(),
        "nothing ran, nothing written"
    );
    // …and runs with it.
    finish(setup.command(&run_dir, &["--context-window", "16384"])).await;

    // An unreachable endpoint fails in moments, not after a phase of retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(setup.run_dir(""))
        .args([
            "bench-math",
            "--quiet",
            "--no-cache",
            "--model",
            "scripted-model",
        ])
        .args(["--base-url", &format!("http://127.0.0.1:{port}/v1")])
        .args(["--train-size", "2", "--test-size", "2"])
        .args([
            "--train-data",
            "train.jsonl",
            "--test-data",
            "test.jsonl",
            "--run-dir",
        ])
        .arg(setup.run_dir("unreachable"))
        .output()
        .await
        .expect("xtask runs");
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&port.to_string()),
        "names the endpoint: {stderr}"
    );
    assert!(!setup.run_dir("unreachable").exists());
}
