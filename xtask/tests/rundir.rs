use std::io::Write as _;

use serde::{Deserialize, Serialize};
use xtask::bench_math::rundir::{
    ConversationRecord, JsonLines, Phase, RunDir, read_json, read_json_lines, write_json_atomic,
};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    epochs: u32,
}

fn record(phase: Phase, index: usize, correct: bool) -> ConversationRecord {
    ConversationRecord {
        phase,
        index,
        problem_id: format!("algebra.jsonl:{}", index + 1),
        correct,
        answer: Some("7".to_owned()),
        reference: "7".to_owned(),
        history: vec![
            agentopt_llm::ChatMessage::user("What is 6 * 7?"),
            agentopt_llm::ChatMessage::assistant("\\boxed{42}"),
        ],
        transcript: serde_json::json!({"entries": [{"sender": "MathChatAgent", "content": "hi"}]}),
    }
}

#[test]
fn create_then_open_for_resume() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("run");
    let run = RunDir::create(&root, &Settings { epochs: 3 }).expect("created");
    assert!(run.checkpoints_dir().is_dir());
    assert_eq!(
        run.checkpoint_path(2),
        root.join("checkpoints/after-epoch-002.json")
    );

    let error = RunDir::create(&root, &Settings { epochs: 4 }).expect_err("already a run");
    assert!(error.to_string().contains("pass --resume"), "{error}");

    let (reopened, settings): (RunDir, Settings) = RunDir::open(&root).expect("opens");
    assert_eq!(settings, Settings { epochs: 3 });
    assert_eq!(reopened.root(), root);

    let empty = dir.path().join("empty");
    let error = RunDir::open::<Settings>(&empty).expect_err("nothing to resume");
    assert!(
        error
            .to_string()
            .ends_with("holds no run to resume (no config.json)"),
        "{error}"
    );
}

#[test]
fn records_serialise_with_their_phase() {
    let line =
        serde_json::to_value(record(Phase::Train { epoch: 2 }, 0, true)).expect("serialises");
    assert_eq!(line["phase"], "train");
    assert_eq!(line["epoch"], 2);
    let line = serde_json::to_value(record(Phase::TestAfter, 1, false)).expect("serialises");
    assert_eq!(line["phase"], "test_after");
    assert!(line.get("epoch").is_none());
}

#[test]
fn appended_lines_survive_and_a_torn_last_line_is_dropped() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("transcripts.jsonl");
    let records = vec![
        record(Phase::TestBefore, 0, true),
        record(Phase::TestBefore, 1, false),
        record(Phase::Train { epoch: 1 }, 0, true),
    ];
    {
        let mut log = JsonLines::open(&path).expect("opens");
        for item in &records[..2] {
            log.append(item).expect("appends");
        }
    }
    // A kill in the middle of a write leaves part of a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(b"{\"phase\":\"train\",\"epo"))
        .expect("torn write");
    let read: Vec<ConversationRecord> = read_json_lines(&path).expect("reads");
    assert_eq!(read, records[..2]);

    let mut log = JsonLines::open(&path).expect("reopens");
    log.append(&records[2])
        .expect("appends after the torn line");
    let read: Vec<ConversationRecord> = read_json_lines(&path).expect("reads");
    assert_eq!(read, records);
}

#[test]
fn a_corrupt_complete_line_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("steps.jsonl");
    std::fs::write(&path, "{\"epochs\": 1}\nnot json\n").expect("write");
    let error = read_json_lines::<Settings>(&path).expect_err("corrupt");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:2: ", path.display())),
        "{error}"
    );
    assert!(
        read_json_lines::<Settings>(&dir.path().join("absent.jsonl"))
            .expect("missing is empty")
            .is_empty()
    );
}

#[test]
fn atomic_json_round_trip() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("report.json");
    write_json_atomic(&path, &Settings { epochs: 1 }).expect("writes");
    write_json_atomic(&path, &Settings { epochs: 2 }).expect("overwrites");
    assert_eq!(
        read_json::<Settings>(&path).expect("reads"),
        Settings { epochs: 2 }
    );
    assert!(!dir.path().join("report.json.tmp").exists());
}
