//! `report.html` of a real `bench-math` run (scripted server, real agents and
//! sandbox) opened in headless Chromium: the page's self-test (`#selftest`) applies
//! every filter, opens the problems, a step and the functions, and the dumped DOM
//! is checked. Before training the assistant's reply carries a `<script>` and an
//! `<img onerror>` that would mark the page if they ran. A synthetic run with
//! outages and flips both ways checks every filter's count against the journal.
//!
//! Named `chromium_…`: where Chromium cannot be installed, skip it with
//! `cargo test -- --skip chromium_` (`cargo xtask test` installs Debian's `chromium`).

use agentopt_core::files::read_json_lines;
use agentopt_testkit::{RecordedRequest, Reply};
use agentopt_train::{ConversationRecord, Outcome, Phase};
use serde_json::Value;
use xtask::browser;

use crate::e2e::{Setup, TEST, TRAIN, finish, reply};

const PAYLOAD: &str = "<script>document.documentElement.setAttribute('data-injected','script')</script>\
<img src=x onerror=\"document.documentElement.setAttribute('data-injected','img')\"> Let me compute it.";

/// `e2e::reply`, except that the assistant's first turn without a `multiply` tool
/// is the payload and a Python block (run by the real sandbox).
fn injecting(request: &RecordedRequest) -> Reply {
    let body = &request.body;
    let tools = body["tools"].to_string();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let first_turn = !messages.iter().any(|m| m["role"] == "assistant");
    if first_turn && !tools.contains("add_function") && !tools.contains("multiply") {
        return Reply::text(format!("{PAYLOAD}\n```python\nprint(3 * 3)\n```"));
    }
    reply(request)
}

/// The self-test's result, from the dumped DOM.
fn selftest_result(dom: &str) -> Value {
    let text = dom
        .split_once("<pre id=\"selftest-result\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(text, _)| text.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("no self-test result in the DOM:\n{dom}"));
    serde_json::from_str(&text).expect("the self-test result is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_run_and_runs_no_model_text() {
    let chromium = browser::chromium().expect(
        "Chromium is not installed: `cargo xtask test` installs it (apt-get install -y \
         chromium); where it cannot be installed, skip this test with `-- --skip chromium_`",
    );
    let setup = Setup::with(TRAIN, TEST, injecting).await;
    let run_dir = setup.run_dir("run");
    finish(setup.command(&run_dir, &[])).await;
    let page = run_dir.join("report.html");
    let url = browser::file_url(&page, "#selftest").expect("page written");
    let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&chromium, &url))
        .await
        .expect("joined")
        .expect("Chromium renders the page");

    let result = selftest_result(&dom);
    assert_eq!(result["rows"], 2, "{result}");
    assert_eq!(
        result["filters"],
        serde_json::json!({"all": 2, "flipped_solved": 2, "flipped_wrong": 0, "called": 2, "infrastructure": 0}),
    );
    assert_eq!(result["flipped_rows_really_flipped"], true);
    assert_eq!(result["open_conversations"], 4, "before and after, per row");
    assert!(result["messages"].as_u64() >= Some(8), "{result}");
    // Before: the payload's code block ran; after: `multiply` was called.
    assert!(result["executions"].as_u64() >= Some(4), "{result}");
    assert!(result["step_exchanges"].as_u64() >= Some(1), "{result}");
    assert_eq!(result["step_actions"], 1, "step 1 added multiply");
    assert_eq!(result["functions"], 1);
    assert!(
        result["function_code"][0]
            .as_str()
            .is_some_and(|code| code.contains("def multiply(a, b)")),
        "{result}"
    );

    // The DOM itself: the table, a conversation with its code and output, the step,
    // the function.
    for needle in [
        "id=\"problem-table\"",
        "class=\"conversation\"",
        "print(3 * 3)",
        "called multiply · ok",
        "class=\"step-body\"",
        "Actions accepted (1)",
        "Multiply two integers exactly.",
    ] {
        assert!(dom.contains(needle), "no {needle:?} in the DOM:\n{dom}");
    }
    // The model's markup is text: shown escaped, never run.
    assert_eq!(result["injected"], false);
    assert!(!dom.contains("data-injected=\""), "an injected script ran");
    assert!(
        dom.contains("&lt;script&gt;document.documentElement.setAttribute"),
        "the reply's <script> is not shown as text"
    );
    assert!(dom.contains("&lt;img src=x onerror="));
    assert!(!dom.contains("<img"), "the reply's <img> became an element");
}

/// Each filter's count, computed from the journal: (all, flipped to solved, flipped to
/// wrong, called a function, infrastructure error).
fn expected_filter_counts(run_dir: &std::path::Path) -> Value {
    use std::collections::BTreeMap;
    let records: Vec<ConversationRecord> =
        read_json_lines(&run_dir.join("transcripts.jsonl")).expect("transcripts");
    let mut tests: BTreeMap<usize, [Option<&ConversationRecord>; 2]> = BTreeMap::new();
    for record in &records {
        let side = match record.phase {
            Phase::TestBefore => 0,
            Phase::TestAfter => 1,
            _ => continue,
        };
        tests.entry(record.index).or_default()[side] = Some(record);
    }
    let status = |record: Option<&ConversationRecord>| match record.map(|r| &r.attempt.outcome) {
        Some(Outcome::Solved) => "solved",
        Some(Outcome::Failed { .. }) => "failed",
        Some(Outcome::Infrastructure(_)) => "infrastructure",
        None => "none",
    };
    let count = |keep: &dyn Fn(&[Option<&ConversationRecord>; 2]) -> bool| {
        tests.values().filter(|pair| keep(pair)).count()
    };
    serde_json::json!({
        "all": tests.len(),
        "flipped_solved": count(&|[b, a]| status(*b) == "failed" && status(*a) == "solved"),
        "flipped_wrong": count(&|[b, a]| status(*b) == "solved" && status(*a) == "failed"),
        "called": count(&|pair| pair.iter().flatten().any(|r| r.attempt.calls.values().any(|c| c.calls > 0))),
        "infrastructure": count(&|pair| pair.iter().any(|r| status(*r) == "infrastructure")),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_filters_count_what_the_journal_holds() {
    let chromium = browser::chromium().expect(
        "Chromium is not installed: `cargo xtask test` installs it; skip with `-- --skip chromium_`",
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let run_dir = dir.path().join("run");
    xtask::bench_report::synthetic_run(&run_dir, 40, 200, true)
        .await
        .expect("synthetic run");
    let expected = expected_filter_counts(&run_dir);
    assert!(
        ["flipped_solved", "flipped_wrong", "infrastructure"]
            .iter()
            .all(|filter| expected[filter].as_u64() > Some(0)),
        "every filter has rows to show: {expected}"
    );
    let url = browser::file_url(&run_dir.join("report.html"), "#selftest").expect("page");
    let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&chromium, &url))
        .await
        .expect("joined")
        .expect("Chromium renders the page");
    let result = selftest_result(&dom);
    assert_eq!(result["filters"], expected);
    assert!(
        dom.contains("INCOMPLETE"),
        "the outages left the run incomplete"
    );

    // A link to one problem opens it, and only it.
    let chromium = browser::chromium().expect("found above");
    let url = browser::file_url(&run_dir.join("report.html"), "#problem-5").expect("page");
    let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&chromium, &url))
        .await
        .expect("joined")
        .expect("Chromium renders the page");
    assert_eq!(dom.matches("class=\"problem open\"").count(), 1);
    assert!(dom.contains("class=\"problem open\" tabindex=\"0\" id=\"problem-5\""));
    assert_eq!(dom.matches("class=\"conversation\"").count(), 2);
    assert!(
        dom.contains("HTTP 503 from the model server"),
        "the outage's verdict"
    );
}
