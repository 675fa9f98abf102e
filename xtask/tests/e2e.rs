//! `cargo xtask bench-math` end to end, as a real process, against the scripted
//! OpenAI-compatible server: the assistant cannot multiply until the scripted
//! optimizer teaches it a `multiply` function.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentopt_core::files::{read_json, read_json_lines};
use agentopt_testkit::{Gate, RecordedRequest, Reply, ScriptedServer};
use agentopt_train::TrainingReport as Report;
use agentopt_train::{ConversationRecord, Phase};
use serde_json::{Value, json};

pub(crate) const TRAIN: &str = "{\"question\": \"What is 6 times 7?\", \"answer\": 42.0, \"level\": \"Level 1\"}\n\
                     {\"question\": \"What is 12 times 11?\", \"answer\": 132.0, \"level\": \"Level 1\"}\n";
pub(crate) const TEST: &str = "{\"question\": \"What is 3 times 9?\", \"answer\": 27.0, \"level\": \"Level 1\"}\n\
                    {\"question\": \"What is 8 times 8?\", \"answer\": 64.0, \"level\": \"Level 2\"}\n";

/// The integers in `text`, in order.
fn integers(text: &str) -> Vec<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|digits| digits.parse().ok())
        .collect()
}

fn text_of(message: &Value) -> &str {
    message["content"].as_str().unwrap_or_default()
}

/// Answers like a model that multiplies only through a learned function, and an
/// optimizer that adds `multiply` once and then says TERMINATE. Stateless, so a
/// resumed run gets the same answers.
pub(crate) fn reply(request: &RecordedRequest) -> Reply {
    let body = &request.body;
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool["function"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if tools.contains(&"add_function") {
        let prompt: String = messages.iter().map(text_of).collect();
        // Slow enough for a test to kill the run during a step.
        let delay = Duration::from_millis(300);
        if prompt.contains("def multiply") {
            return Reply::text("TERMINATE").delayed(delay);
        }
        let mut multiply = json!({
            "name": "multiply",
            "description": "Multiply two integers exactly.",
            "arguments": json!({
                "a": {"type": "integer", "description": "first factor"},
                "b": {"type": "integer", "description": "second factor"},
            }).to_string(),
            "packages": "",
            "code": "def multiply(a, b):\n    return a * b\n",
        });
        // Asked for worked examples, it gives one on a training problem.
        if request.raw_body.contains("\"demonstrations\"") {
            multiply["demonstrations"] = json!([{
                "problem": "What is 6 times 7?",
                "solution": "print(multiply(6, 7))",
                "answer": "42",
            }]);
        }
        return Reply::tool_call("add_function", multiply).delayed(delay);
    }
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let answer = if last["role"] == "tool" {
        let product = integers(text_of(&last)).last().copied().unwrap_or(0);
        Reply::text(format!("So the product is \\boxed{{{product}}}."))
    } else if text_of(&last).contains("Please reply me with TERMINATE") {
        Reply::text("TERMINATE")
    } else if tools.contains(&"multiply") {
        // The problem asked, not a worked example's (which come first).
        let problem = messages
            .iter()
            .rev()
            .map(text_of)
            .find_map(|text| {
                text.rsplit_once("Problem:")
                    .map(|(_, problem)| problem.to_owned())
            })
            .unwrap_or_default();
        let factors = integers(&problem);
        Reply::tool_call("multiply", json!({"a": factors[0], "b": factors[1]}))
    } else {
        Reply::text("Multiplying is hard; I guess \\boxed{0}.")
    };
    answer.delayed(Duration::from_millis(40))
}

const SECRET: &str = "sk-bench-test-0123456789abcdef";

pub(crate) struct Setup {
    dir: tempfile::TempDir,
    pub(crate) server: ScriptedServer,
}

impl Setup {
    /// The multiplication problems and the `reply` rule.
    async fn new() -> Self {
        Self::with(TRAIN, TEST, reply).await
    }

    pub(crate) async fn with(
        train: &str,
        test: &str,
        rule: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("train.jsonl"), train).expect("write train data");
        std::fs::write(dir.path().join("test.jsonl"), test).expect("write test data");
        let server = ScriptedServer::builder().n_ctx(16384).rule(rule).await;
        Self { dir, server }
    }

    /// A setup over data already in `dir` and a server of the test's own.
    pub(crate) fn around(dir: tempfile::TempDir, server: ScriptedServer) -> Self {
        Self { dir, server }
    }

    /// The benchmark over the scripted server: 2 train and 2 test problems, 2 epochs,
    /// 1 action per step; `extra` flags add to or replace these.
    pub(crate) fn command(&self, run_dir: &Path, extra: &[&str]) -> Command {
        let defaults = [
            ("--train-size", "2"),
            ("--test-size", "2"),
            ("--epochs", "2"),
            ("--max-actions-per-step", "1"),
        ];
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .current_dir(self.dir.path())
            .env_remove("OAI_CONFIG_LIST")
            .env_remove("OPENAI_API_KEY")
            .args(["bench-math", "--quiet", "--no-cache"])
            .arg("--base-url")
            .arg(self.server.base_url())
            .args(["--model", "scripted-model", "--train-data", "train.jsonl"])
            .args(["--test-data", "test.jsonl"])
            .arg("--run-dir")
            .arg(run_dir);
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                command.args([flag, value]);
            }
        }
        command
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub(crate) fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs `command`, which must fail, and returns what it printed on stdout and
/// stderr.
async fn fails(command: Command) -> (String, String) {
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{stdout}");
    (stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

pub(crate) async fn finish(command: Command) -> Output {
    let mut command = tokio::process::Command::from(command);
    // A test that gives up on the run (timeout) must not leave it behind.
    command.kill_on_drop(true);
    let output = command.output().await.expect("xtask runs");
    assert!(
        output.status.success(),
        "bench-math failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The report without what legitimately differs between runs: wall times and the
/// spend of conversations a kill interrupted.
fn comparable(mut report: Report) -> Report {
    report.phases.clear();
    report.usage.clear();
    report.endpoints.clear();
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_epochs_teach_multiply_and_the_test_improves() {
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("run");
    let mut command = setup.command(
        &run_dir,
        &[
            "--api-key-env",
            "BENCH_TEST_KEY",
            "--max-reply-tokens",
            "777",
        ],
    );
    command.env("BENCH_TEST_KEY", SECRET);
    let output = finish(command).await;

    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(
        (
            report.test_before.accuracy.correct,
            report.test_before.accuracy.total
        ),
        (0, 2)
    );
    assert_eq!(
        (
            report.test_after.accuracy.correct,
            report.test_after.accuracy.total
        ),
        (2, 2)
    );
    assert_eq!(
        (report.paired.after_only, report.paired.before_only),
        (2, 0)
    );
    assert_eq!(report.mcnemar_p, 0.5);
    let epochs: Vec<(u32, u64, bool, u32, Vec<String>)> = report
        .epochs
        .iter()
        .map(|epoch| {
            (
                epoch.epoch,
                epoch.accuracy.correct,
                epoch.kept,
                epoch.actions,
                epoch.functions_after.clone(),
            )
        })
        .collect();
    assert_eq!(
        epochs,
        vec![
            (1, 0, true, 1, vec!["multiply".to_owned()]),
            (2, 2, true, 0, vec!["multiply".to_owned()]),
        ]
    );
    assert_eq!(report.functions.len(), 1);
    let multiply = &report.functions[0];
    assert_eq!(multiply.name, "multiply");
    assert_eq!(multiply.description, "Multiply two integers exactly.");
    assert_eq!(
        (multiply.training.calls, multiply.training.succeeded),
        (2, 2)
    );
    assert_eq!(
        (multiply.test_after.calls, multiply.test_after.succeeded),
        (2, 2)
    );
    let assistant = report.usage.iter().find(|usage| usage.role == "assistant");
    assert!(
        assistant.is_some_and(|usage| usage.calls > 0),
        "{:?}",
        report.usage
    );
    assert!(report.usage.iter().any(|usage| usage.role == "optimizer"));

    // The seed notebook's summary, on stdout.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Functions learned"), "{stdout}");
    assert!(
        stdout.contains("multiply: Multiply two integers exactly."),
        "{stdout}"
    );
    assert!(
        stdout.contains("success_rate_without_agent_training: 0/2 (0.0%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("success_rate_with_agent_training: 2/2 (100.0%"),
        "{stdout}"
    );

    // Every conversation of every phase is on disk, in its phase.
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    let phases: Vec<Phase> = records.iter().map(|record| record.phase).collect();
    assert_eq!(records.len(), 8);
    assert_eq!(
        phases
            .iter()
            .filter(|phase| **phase == Phase::TestAfter)
            .count(),
        2
    );
    assert!(
        records
            .iter()
            .all(|record| !record.attempt.history.is_empty())
    );

    let svg = std::fs::read_to_string(run_dir.join("learning_curve.svg")).expect("svg");
    roxmltree::Document::parse(&svg).expect("the learning curve is well-formed SVG");
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        markdown.contains("| after training | 2/2 | 100.0% |"),
        "{markdown}"
    );
    let functions: Value = read_json(&run_dir.join("functions.json")).expect("functions.json");
    assert_eq!(
        functions["functions"][0]["tool"]["function"]["name"],
        "multiply"
    );
    // Assistant requests carry the reply limit (the optimizer sets its own).
    let limits: Vec<Option<u64>> = setup
        .server
        .chat_requests()
        .iter()
        .filter(|request| {
            !request.body["tools"].as_array().is_some_and(|tools| {
                tools
                    .iter()
                    .any(|tool| tool["function"]["name"] == "add_function")
            })
        })
        .map(|request| request.body["max_tokens"].as_u64())
        .collect();
    assert!(!limits.is_empty());
    assert!(limits.iter().all(|limit| *limit == Some(777)), "{limits:?}");

    // The key reached the server but no file of the run.
    let authorization = setup.server.chat_requests()[0]
        .header("authorization")
        .map(str::to_owned);
    assert_eq!(authorization, Some(format!("Bearer {SECRET}")));
    for entry in std::fs::read_dir(&run_dir).expect("run dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).expect("text file");
            assert!(
                !text.contains(SECRET),
                "{} holds the API key",
                path.display()
            );
        }
    }
    for file in [
        "config.json",
        "bench.log",
        "steps.jsonl",
        "phases.jsonl",
        "checkpoints/after-epoch-002.json",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
}

/// Holds the optimizer's replies at a gate from its `hold_from`-th request on (0-based,
/// counted since the last [`Holding::hold_from`]), so a test kills a run, or starts
/// a second process, while a step is certainly under way: an event, not a window.
#[derive(Debug)]
struct Holding {
    gate: Gate,
    optimizer_requests: AtomicUsize,
    hold_from: AtomicUsize,
}

impl Holding {
    fn new() -> Arc<Self> {
        let holding = Self {
            gate: Gate::closed(),
            optimizer_requests: AtomicUsize::new(0),
            hold_from: AtomicUsize::new(usize::MAX),
        };
        holding.gate.open();
        Arc::new(holding)
    }

    /// From now on, optimizer request number `index` and later wait at the gate.
    fn hold_from(&self, index: usize) {
        self.optimizer_requests.store(0, Ordering::SeqCst);
        self.hold_from.store(index, Ordering::SeqCst);
        self.gate.close();
    }

    /// Lets every held and later reply through.
    fn release(&self) {
        self.hold_from.store(usize::MAX, Ordering::SeqCst);
        self.gate.open();
    }

    /// Optimizer requests received since the last `hold_from`.
    fn optimizer_requests(&self) -> usize {
        self.optimizer_requests.load(Ordering::SeqCst)
    }

    /// [`reply`], held at the gate where `hold_from` says.
    fn rule(self: &Arc<Self>) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
        let holding = Arc::clone(self);
        move |request| {
            let answer = reply(request);
            if !request.raw_body.contains("\"add_function\"") {
                return answer;
            }
            let index = holding.optimizer_requests.fetch_add(1, Ordering::SeqCst);
            if index >= holding.hold_from.load(Ordering::SeqCst) {
                return answer.gated(&holding.gate);
            }
            answer
        }
    }
}

/// What a kill point looks at: the killed run's records, steps and optimizer
/// requests.
struct Progress<'a> {
    records: &'a [ConversationRecord],
    steps: usize,
    optimizer_requests: usize,
}

/// Waits until `ready` holds for the run in `run_dir` (polling its files), failing
/// when `child` ends first.
async fn wait_until(
    child: &mut std::process::Child,
    run_dir: &Path,
    holding: &Holding,
    ready: impl Fn(&Progress<'_>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let records: Vec<ConversationRecord> =
            read_json_lines(&run_dir.join("transcripts.jsonl")).unwrap_or_default();
        let steps: Vec<Value> = read_json_lines(&run_dir.join("steps.jsonl")).unwrap_or_default();
        let progress = Progress {
            records: &records,
            steps: steps.len(),
            optimizer_requests: holding.optimizer_requests(),
        };
        if ready(&progress) {
            return;
        }
        assert!(
            child.try_wait().expect("child status").is_none(),
            "the run ended before the point waited for"
        );
        assert!(Instant::now() < deadline, "the point waited for never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Model calls the report counts, every role.
fn reported_calls(report: &Report) -> u64 {
    report.usage.iter().map(|usage| usage.calls).sum()
}

/// Runs the same benchmark straight, then at concurrency 2 with the optimizer's
/// requests from number `hold_from` on held, killed (SIGKILL) once `kill_when`
/// holds, and resumed: both reports must agree, and every call the server answered
/// to a live process is in the report.
async fn kill_then_resume(hold_from: usize, kill_when: impl Fn(&Progress<'_>) -> bool) {
    let holding = Holding::new();
    let setup = Setup::with(TRAIN, TEST, holding.rule()).await;
    let straight_dir = setup.run_dir("straight");
    finish(setup.command(&straight_dir, &[])).await;
    let straight: Report = read_json(&straight_dir.join("report.json")).expect("report");
    let straight_requests = setup.server.chat_requests().len();
    assert_eq!(
        reported_calls(&straight) as usize,
        straight_requests,
        "every answered call is reported"
    );

    let killed_dir = setup.run_dir("killed");
    holding.hold_from(hold_from);
    let mut child = setup
        .command(&killed_dir, &["--concurrency", "2"])
        .spawn()
        .expect("xtask starts");
    wait_until(&mut child, &killed_dir, &holding, kill_when).await;
    child.kill().expect("kill");
    child.wait().expect("reaped");
    holding.release();
    assert!(!killed_dir.join("report.json").exists());

    finish(setup.command(&killed_dir, &["--resume"])).await;
    let resumed: Report = read_json(&killed_dir.join("report.json")).expect("report");
    // Every call answered before the kill is in spend.jsonl: the report counts all
    // the server answered but those it answered to the dead process (the held
    // optimizer request and at most the two conversations in flight).
    let answered = (setup.server.chat_requests().len() - straight_requests) as u64;
    let calls = reported_calls(&resumed);
    assert!(
        calls <= answered && calls + 3 >= answered,
        "{calls} calls reported, {answered} requests: {:?}",
        resumed.usage
    );
    assert!(calls >= reported_calls(&straight));
    assert_eq!(comparable(resumed), comparable(straight));

    // No conversation was recorded twice.
    let records: Vec<ConversationRecord> =
        read_json_lines(&killed_dir.join("transcripts.jsonl")).expect("transcripts");
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| format!("{:?}/{}", r.phase, r.index))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), records.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_epoch_then_resumed_reports_like_an_uninterrupted_run() {
    // One step done, an epoch-2 conversation recorded; step 2 is held, so the run
    // cannot get past it before the kill.
    kill_then_resume(1, |progress| {
        progress
            .records
            .iter()
            .any(|record| record.phase == Phase::Train { epoch: 2 })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_an_optimizer_step_then_resumed_reports_like_an_uninterrupted_run() {
    // Epoch 1 recorded and its step's request held at the server: the kill lands
    // inside the step whatever the machine's load.
    kill_then_resume(0, |progress| {
        progress.steps == 0 && progress.optimizer_requests >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resumes_at_once_one_is_refused_and_the_report_is_a_single_run_s() {
    let holding = Holding::new();
    let setup = Setup::with(TRAIN, TEST, holding.rule()).await;
    let straight_dir = setup.run_dir("straight");
    finish(setup.command(&straight_dir, &[])).await;
    let straight: Report = read_json(&straight_dir.join("report.json")).expect("report");

    // A run killed inside its first step.
    let run_dir = setup.run_dir("shared");
    holding.hold_from(0);
    let mut killed = setup.command(&run_dir, &[]).spawn().expect("xtask starts");
    wait_until(&mut killed, &run_dir, &holding, |progress| {
        progress.optimizer_requests >= 1
    })
    .await;
    killed.kill().expect("kill");
    killed.wait().expect("reaped");

    // The first resume holds the directory, waiting at its step…
    holding.hold_from(0);
    let mut first = setup
        .command(&run_dir, &["--resume"])
        .spawn()
        .expect("xtask starts");
    wait_until(&mut first, &run_dir, &holding, |progress| {
        progress.optimizer_requests >= 1
    })
    .await;
    // …so the second is refused at once, naming it, before any request.
    let requests = setup.server.requests().len();
    let (_, stderr) = fails(setup.command(&run_dir, &["--resume"])).await;
    assert!(
        stderr.contains(&format!("is in use by process {}", first.id())),
        "{stderr}"
    );
    assert_eq!(
        setup.server.requests().len(),
        requests,
        "no request from the second"
    );

    holding.release();
    let status = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("joined")
        .expect("reaped");
    assert!(status.success());
    let report: Report = read_json(&run_dir.join("report.json")).expect("report");
    assert_eq!(comparable(report), comparable(straight));
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    assert_eq!(records.len(), 8, "each conversation once");
    let steps: Vec<Value> = read_json_lines(&run_dir.join("steps.jsonl")).expect("steps");
    assert_eq!(steps.len(), 2, "each step once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_however_often_the_run_is_resumed() {
    // $1,000 per million tokens: a scripted reply's 15 tokens cost $0.015; a $0.05
    // limit is reached on the fourth call and the run needs many more.
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("budget");
    let flags = [
        "--price",
        "scripted-model=1000:1000",
        "--budget-usd",
        "0.05",
        "--concurrency",
        "1",
    ];
    let mut calls_at_the_limit = None;
    for attempt in 0..5 {
        let mut extra = flags.to_vec();
        if attempt > 0 {
            extra.push("--resume");
        }
        let (_, stderr) = fails(setup.command(&run_dir, &extra)).await;
        assert!(
            stderr.contains("budget"),
            "the budget stops the run: {stderr}"
        );
        let report: Report = read_json(&run_dir.join("report.json")).expect("report");
        let spent: f64 = report.usage.iter().map(|usage| usage.cost_usd).sum();
        assert!(
            spent <= 0.05 + 0.015 + 1e-9,
            "resume {attempt}: ${spent} reported, over the limit plus one call"
        );
        let requests = setup.server.chat_requests().len();
        assert_eq!(
            reported_calls(&report) as usize,
            requests,
            "every call reported"
        );
        match calls_at_the_limit {
            None => calls_at_the_limit = Some(requests),
            Some(calls) => assert_eq!(requests, calls, "a resume spends nothing more"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_mode_rolls_back_an_insignificant_gain() {
    // One training and one held-out problem: the gain of `multiply` on a single
    // validation problem is not significant at 5 %, so the step after epoch 2
    // rolls back to the empty list and the test after training sees no function.
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("validation");
    finish(setup.command(&run_dir, &["--train-size", "1", "--validation-size", "1"])).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    let kept: Vec<bool> = report.epochs.iter().map(|epoch| epoch.kept).collect();
    assert_eq!(kept, [true, false]);
    assert_eq!(
        report.epochs[1].accuracy.correct, 1,
        "multiply was in force in epoch 2"
    );
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    let validation: Vec<(Phase, &str, bool)> = records
        .iter()
        .filter(|record| matches!(record.phase, Phase::Validation { .. }))
        .map(|record| {
            (
                record.phase,
                record.problem_id.as_str(),
                record.attempt.outcome.is_solved(),
            )
        })
        .collect();
    assert_eq!(
        validation,
        [
            (Phase::Validation { epoch: 1 }, "train.jsonl:2", false),
            (Phase::Validation { epoch: 2 }, "train.jsonl:2", true),
        ]
    );
    assert!(report.functions.is_empty());
    assert_eq!(report.test_after.accuracy.correct, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patience_stops_training_early() {
    // Epoch 1: 0/2, epoch 2: 2/2 (improved), epoch 3: 2/2 (a tie is no
    // improvement): with patience 1 training stops after epoch 3 of 5.
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("patience");
    let output = finish(setup.command(&run_dir, &["--epochs", "5", "--patience", "1"])).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(report.epochs.len(), 3);
    assert!(
        report
            .stopped_early
            .as_deref()
            .is_some_and(|reason| reason.starts_with("after epoch 3")),
        "{:?}",
        report.stopped_early
    );
    assert_eq!(report.test_after.accuracy.correct, 2);
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(
        markdown.contains("| training | 3 of 5 epochs"),
        "{markdown}"
    );
    assert!(output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_data_file_fails_naming_file_and_line() {
    let setup = Setup::new().await;
    std::fs::write(
        setup.dir.path().join("test.jsonl"),
        "{\"question\": \"q\", \"answer\": 1}\n{\"question\": \"q\", \"answer\": [1]}\n",
    )
    .expect("write bad data");
    let run_dir = setup.run_dir("bad");
    let mut command = setup.command(&run_dir, &[]);
    // A user error is a message, not a crash report, whatever the environment says.
    command.env("RUST_BACKTRACE", "1");
    let (_, stderr) = fails(command).await;
    let message = "test.jsonl:2: field `answer`: expected a number or a string, found [1]";
    assert_eq!(stderr.matches(message).count(), 1, "printed once: {stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(
        setup.server.chat_requests().is_empty(),
        "no model call before the data loads"
    );
    assert!(!run_dir.join("config.json").exists(), "nothing left behind");

    // The corrected command, with the same --run-dir, runs.
    std::fs::write(setup.dir.path().join("test.jsonl"), TEST).expect("fix the data");
    finish(setup.command(&run_dir, &[])).await;
    assert!(run_dir.join("report.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_problem_also_trained_on_is_refused_before_any_model_call() {
    // The second test problem is the first training problem, laid out differently.
    let test = "{\"question\": \"What is 3 times 9?\", \"answer\": 27.0, \"level\": \"Level 1\"}\n\
                {\"question\": \"what is 6   times 7?\", \"answer\": 42.0, \"level\": \"Level 1\"}\n";
    let setup = Setup::with(TRAIN, test, reply).await;
    let run_dir = setup.run_dir("overlap");
    let mut command = tokio::process::Command::from(setup.command(&run_dir, &[]));
    let output = command.output().await.expect("xtask runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "test problem \"test.jsonl:2\" has the text of train problem \"train.jsonl:1\""
        ),
        "{stderr}"
    );
    assert!(setup.server.chat_requests().is_empty(), "no model call");
    assert!(!run_dir.join("config.json").exists(), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_records_are_all_named_or_skipped_with_the_flag() {
    let setup = Setup::new().await;
    let bad = format!("{TEST}{{\"question\": \"q\"}}\nnot json\n");
    std::fs::write(setup.dir.path().join("test.jsonl"), bad).expect("write data");
    let run_dir = setup.run_dir("skip");
    let (_, stderr) = fails(setup.command(&run_dir, &[])).await;
    assert!(
        stderr.contains("2 unusable records (test.jsonl:3, test.jsonl:4); the first: test.jsonl:3: field `answer`: missing")
            && stderr.contains("--skip-bad-records"),
        "{stderr}"
    );
    assert!(!run_dir.join("config.json").exists());

    let output = finish(setup.command(&run_dir, &["--skip-bad-records"])).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipped: 2 unusable records (test.jsonl:3, test.jsonl:4)"),
        "{stderr}"
    );
    let config: Value = read_json(&run_dir.join("config.json")).expect("config.json");
    assert_eq!(
        config["test"]["skip_bad_records"], true,
        "resume reads the same way"
    );
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(report.test_before.accuracy.total, 2);
}

/// Runs code first, then answers with an expression only sympy can compare.
fn code_then_symbolic_answer(request: &RecordedRequest) -> Reply {
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = messages.last().map(text_of).unwrap_or_default();
    if request.body["tools"]
        .as_array()
        .is_some_and(|tools| !tools.is_empty() && tools[0]["function"]["name"] == "add_function")
    {
        return Reply::text("TERMINATE");
    }
    if last.contains("Please reply me with TERMINATE") {
        return Reply::text("TERMINATE");
    }
    let ran_code = messages
        .iter()
        .any(|message| message["role"] == "assistant" && text_of(message).contains("```python"));
    if ran_code {
        Reply::text("Hence the expansion is \\boxed{(x+1)^2}.")
    } else {
        Reply::text("Let me check.\n```python\nprint((2+1)**2)\n```")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_answer_check_inside_a_conversation_holding_a_session() {
    // At concurrency 1 the conversation holds the only conversation sandbox slot when
    // its answer needs sympy: the checker must not wait for that slot.
    let problem =
        "{\"question\": \"Expand (x+1)^2.\", \"answer\": \"x^2+2x+1\", \"level\": \"Level 1\"}\n";
    // A training problem of its own: a test problem that is also trained on is refused.
    let training = "{\"question\": \"Write (x+1)^2 expanded.\", \"answer\": \"x^2+2x+1\", \"level\": \"Level 1\"}\n";
    let setup = Setup::with(training, problem, code_then_symbolic_answer).await;
    let run_dir = setup.run_dir("symbolic");
    let command = setup.command(
        &run_dir,
        &[
            "--train-size",
            "1",
            "--test-size",
            "1",
            "--epochs",
            "1",
            "--concurrency",
            "1",
        ],
    );
    let output = tokio::time::timeout(Duration::from_secs(180), finish(command))
        .await
        .expect("the run finishes (no sandbox-slot deadlock)");
    assert!(output.status.success());
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(report.test_before.accuracy.correct, 1, "(x+1)^2 = x^2+2x+1");
    assert_eq!(report.epochs[0].accuracy.correct, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_turns_bounds_the_assistant() {
    // With `multiply` learned the assistant needs two replies (call, answer); one
    // allowed reply ends every post-training conversation after the call.
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("turns");
    finish(setup.command(&run_dir, &["--max-turns", "1"])).await;
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    let after: Vec<&ConversationRecord> = records
        .iter()
        .filter(|record| record.phase == Phase::TestAfter)
        .collect();
    assert_eq!(after.len(), 2);
    for record in after {
        assert!(!record.attempt.outcome.is_solved());
        let transcript = record
            .attempt
            .transcript
            .as_ref()
            .expect("MATH keeps transcripts");
        assert_eq!(
            serde_json::to_value(&transcript.stop_reason).expect("serialises"),
            json!({"reason": "max_auto_replies", "agent": "assistant", "limit": 1}),
        );
    }
}

#[tokio::test]
async fn sampling_seed_reaches_every_request() {
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("seeded");
    finish(setup.command(&run_dir, &["--sampling-seed", "5"])).await;
    let requests = setup.server.chat_requests();
    assert!(requests.len() > 4, "assistant and optimizer requests");
    for request in requests {
        assert_eq!(request.body["seed"], 5, "{}", request.raw_body);
    }
}

/// Like [`reply`], but the assistant calls learned functions only from code: it
/// writes `print(multiply(a, b))` once its system message lists `multiply`, and
/// answers with the printed product.
fn code_reply(request: &RecordedRequest) -> Reply {
    let body = &request.body;
    let optimizer = body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|tool| tool["function"]["name"] == "add_function")
    });
    if optimizer {
        return reply(request);
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().map(text_of).unwrap_or_default();
    let ran_code = messages
        .iter()
        .any(|message| message["role"] == "assistant" && text_of(message).contains("```python"));
    let system = messages.first().map(text_of).unwrap_or_default();
    let answer = if last.contains("Please reply me with TERMINATE") {
        Reply::text("TERMINATE")
    } else if ran_code {
        let product = integers(last).last().copied().unwrap_or(0);
        Reply::text(format!("So the product is \\boxed{{{product}}}."))
    } else if system.contains("- multiply(a, b): Multiply two integers exactly.") {
        let factors = integers(last.rsplit_once("Problem:").map_or("", |(_, p)| p));
        Reply::text(format!(
            "```python\nprint(multiply({}, {}))\n```",
            factors[0], factors[1]
        ))
    } else {
        Reply::text("Multiplying is hard; I guess \\boxed{0}.")
    };
    answer.delayed(Duration::from_millis(40))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_function_called_from_code_is_counted_and_changes_the_outcome() {
    let setup = Setup::with(TRAIN, TEST, code_reply).await;
    let run_dir = setup.run_dir("code");
    finish(setup.command(&run_dir, &["--function-style", "code"])).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    let accuracy =
        |result: &agentopt_train::TestResult| (result.accuracy.correct, result.accuracy.total);
    assert_eq!(accuracy(&report.test_before), (0, 2));
    assert_eq!(accuracy(&report.test_after), (2, 2));
    let multiply = &report.functions[0];
    assert_eq!(
        (multiply.training.calls, multiply.training.succeeded),
        (2, 2),
        "epoch 2's conversations called it from code"
    );
    assert_eq!(
        (multiply.test_after.calls, multiply.test_after.succeeded),
        (2, 2)
    );
    let config: Value = read_json(&run_dir.join("config.json")).expect("config.json");
    assert_eq!(config["task"]["function_style"], "code");
    assert_eq!(config["task"]["answer_check"], "symbolic");
    let exact = &report.other_checks[0];
    assert_eq!(
        (
            exact.name.as_str(),
            accuracy(&exact.test_before),
            accuracy(&exact.test_after)
        ),
        ("exact", (0, 2), (2, 2)),
        "AG2's rule reported beside the symbolic check"
    );
    let requests = setup.server.chat_requests();
    let assistant: Vec<&Value> = requests
        .iter()
        .map(|request| &request.body)
        .filter(|body| text_of(&body["messages"][0]).starts_with("You are a helpful assistant."))
        .collect();
    assert!(assistant.iter().all(|body| body.get("tools").is_none()));
    assert!(
        assistant
            .iter()
            .any(|body| text_of(&body["messages"][0]).contains("- multiply(a, b)")),
        "the system message lists the learned function"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_use_flags_run_end_to_end_and_report_the_use_rate() {
    let setup = Setup::new().await;
    let run_dir = setup.run_dir("learned-use");
    let flags = [
        "--reply-prefill",
        "```python\\n",
        "--demonstrations",
        "system",
        "--execution-checks",
        "--use-statistics",
        "--retrieve",
        "1",
    ];
    finish(setup.command(&run_dir, &flags)).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(
        report.test_after.accuracy.correct,
        2,
        "multiply was offered (its example's \"times\" matches the problems) and used: {}",
        std::fs::read_to_string(run_dir.join("steps.jsonl")).unwrap_or_default()
    );
    let after = report
        .use_rates
        .iter()
        .find(|rate| rate.phase == "test after training" && rate.function.is_none())
        .map(|rate| (rate.offered, rate.called));
    assert_eq!(after, Some((2, 2)));
    let settings: Vec<&str> = report
        .setup
        .settings
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    for setting in [
        "reply prefill",
        "worked examples shown",
        "worked examples asked for",
        "retrieval",
        "execution checks",
        "use statistics",
    ] {
        assert!(settings.contains(&setting), "{settings:?}");
    }
    let requests = setup.server.chat_requests();
    let first = &requests[0].body["messages"];
    let last = first
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["role"].as_str(), last["content"].as_str()),
        (Some("assistant"), Some("```python\n"))
    );
    let optimizer = requests
        .iter()
        .find(|request| request.raw_body.contains("add_function"))
        .expect("an optimizer request");
    assert!(
        optimizer.raw_body.contains("demonstrations"),
        "examples are asked for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_every_optimizer_step_failed_exits_non_zero_with_the_reason() {
    let refusing_optimizer = |request: &RecordedRequest| {
        if request.raw_body.contains("\"add_function\"") {
            return Reply::server_error(400);
        }
        reply(request)
    };
    let setup = Setup::with(TRAIN, TEST, refusing_optimizer).await;
    let run_dir = setup.run_dir("failed-steps");
    // A run that learned nothing because of failures fails.
    let (stdout, stderr) = fails(setup.command(&run_dir, &[])).await;
    assert!(
        stdout.contains("optimizer step after epoch 1 skipped: ")
            && stdout.contains("optimizer step after epoch 2 skipped: "),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "Error: every optimizer step failed, so no function was learned (after epoch 1: "
        ) && stderr.contains("400"),
        "{stderr}"
    );
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert!(report.incomplete.is_none(), "the run ran to its end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_routing_with_a_replica_cap_shares_the_calls_and_holds_the_cap() {
    let slow = |request: &RecordedRequest| reply(request).delayed(Duration::from_millis(40));
    let setup = Setup::with(TRAIN, TEST, slow).await;
    let second = ScriptedServer::builder().n_ctx(16384).rule(slow).await;
    let run_dir = setup.run_dir("spread");
    let second_url = second.base_url();
    let flags = [
        "--base-url",
        &second_url,
        "--routing",
        "spread",
        "--replica-cap",
        "1",
        "--concurrency",
        "4",
        "--epochs",
        "1",
    ];
    finish(setup.command(&run_dir, &flags)).await;

    // Both replicas served, neither ever had more than its one call in flight.
    for server in [&setup.server, &second] {
        assert!(!server.chat_requests().is_empty());
        assert_eq!(server.peak_in_flight(), 1);
    }
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    let served: Vec<u64> = report.endpoints.iter().map(|e| e.calls).collect();
    assert_eq!(served.len(), 2, "{:?}", report.endpoints);
    assert_eq!(
        served.iter().sum::<u64>(),
        (setup.server.chat_requests().len() + second.chat_requests().len()) as u64
    );

    // A cap without `spread` would be ignored: refused before any model call.
    let calls = setup.server.chat_requests().len();
    let fallback = ["--base-url", &second_url, "--replica-cap", "1"];
    let (_, stderr) = fails(setup.command(&setup.run_dir("fallback"), &fallback)).await;
    assert!(stderr.contains("--replica-cap 1") && stderr.contains("--routing spread"));
    assert_eq!(setup.server.chat_requests().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functions_file_is_tested_with_no_epoch_and_bad_uses_fail_before_any_call() {
    let setup = Setup::with(TRAIN, TEST, code_reply).await;
    let multiply =
        agentopt_train::LearnedFunction::new("multiply", "def multiply(a, b):\n    return a * b\n")
            .with_description("Multiply two integers exactly.")
            .with_parameters(serde_json::json!({
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            }));
    let file = setup.dir.path().join("functions.json");
    agentopt_train::FunctionSet::new([multiply])
        .save(&file)
        .expect("write functions.json");
    let code = ["--function-style", "code"];

    let run_dir = setup.run_dir("no-functions");
    let (_, stderr) =
        fails(setup.command(&run_dir, &[&code[..], &["--epochs", "0"]].concat())).await;
    assert!(
        stderr.contains("--epochs 0 tests the functions of --functions FILE"),
        "{stderr}"
    );
    let missing = setup.dir.path().join("missing.json");
    let missing_flags = ["--functions", missing.to_str().expect("utf-8 path")];
    let (_, stderr) = fails(setup.command(&run_dir, &[&code[..], &missing_flags].concat())).await;
    assert!(stderr.contains("missing.json"), "{stderr}");
    assert!(setup.server.chat_requests().is_empty(), "no model call");
    assert!(!run_dir.join("config.json").exists(), "nothing left behind");

    let run_dir = setup.run_dir("evaluate");
    let path = file.to_str().expect("utf-8 path");
    let flags = [&code[..], &["--epochs", "0", "--functions", path]].concat();
    finish(setup.command(&run_dir, &flags)).await;
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    let accuracy =
        |result: &agentopt_train::TestResult| (result.accuracy.correct, result.accuracy.total);
    assert_eq!(accuracy(&report.test_before), (0, 2));
    assert_eq!(accuracy(&report.test_after), (2, 2));
    assert!(report.epochs.is_empty());
    let optimizer_calls = setup
        .server
        .chat_requests()
        .iter()
        .filter(|request| !text_of(&request.body["messages"][0]).starts_with("You are a helpful"))
        .count();
    assert_eq!(optimizer_calls, 0, "nothing trained");
}
