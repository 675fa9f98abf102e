//! Answer checking two ways: the check that drives training decides the outcome and
//! the proxy's "Correct" reply; the other one is carried in `Attempt::checks`.

use std::collections::BTreeMap;

use agentopt_mathchat::{AnswerCheck, MathTask, MathTaskOptions, Problem, exact_match};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer};
use agentopt_train::{ConversationRecord, FunctionSet, Phase, Task};

use crate::{client, sessions};

/// Answers `\boxed{answer}`, and TERMINATE once told it is correct.
fn answering(answer: &'static str) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync {
    move |request| {
        let told_correct = request.body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .and_then(|message| message["content"].as_str())
            .is_some_and(|text| text.contains("The result is Correct"));
        if told_correct {
            Reply::text("TERMINATE")
        } else {
            Reply::text(format!("So it is \\boxed{{{answer}}}."))
        }
    }
}

async fn check(
    check: AnswerCheck,
    answer: &'static str,
    reference: &str,
    expected: (bool, &[(&str, bool)]),
) {
    let server = ScriptedServer::builder().rule(answering(answer)).await;
    let task = MathTask::new(
        client(&server, agentopt_llm::CallStyle::Tools),
        sessions(),
        sessions(),
    )
    .with_options(MathTaskOptions {
        answer_check: check,
        ..MathTaskOptions::default()
    });
    let problem = Problem {
        id: "p:1".to_owned(),
        subject: "algebra".to_owned(),
        level: Some(1),
        question: "What is half of one?".to_owned(),
        answer: reference.to_owned(),
    };
    let attempt = task.attempt(&problem, &FunctionSet::default()).await;
    let checks: BTreeMap<String, bool> = expected
        .1
        .iter()
        .map(|(name, solved)| ((*name).to_owned(), *solved))
        .collect();
    assert_eq!(
        (attempt.outcome.is_solved(), &attempt.checks),
        (expected.0, &checks),
        "{check} check, answer {answer}, reference {reference}: {:?}",
        attempt.outcome
    );
    // The proxy says "Correct" (and the assistant answers TERMINATE) only when the
    // driving check accepts.
    assert_eq!(server.chat_requests().len(), if expected.0 { 2 } else { 1 });
}

#[tokio::test]
async fn the_driving_check_decides_and_the_other_is_reported() {
    use AnswerCheck::{Exact, Symbolic};
    check(Symbolic, "\\frac{1}{2}", "0.5", (true, &[("exact", false)])).await;
    check(Exact, "\\frac{1}{2}", "0.5", (false, &[("symbolic", true)])).await;
    check(Exact, "0.5", "0.5", (true, &[("symbolic", true)])).await;
    check(Symbolic, "3", "0.5", (false, &[("exact", false)])).await;
}

#[test]
fn the_exact_rule_is_ag2_string_equality() {
    for (candidate, reference, expected) in [
        ("42", "42", true),
        ("42.0", "42", false),
        (" 42", "42", false),
        ("\\sqrt{2}", "\\sqrt{2}", true),
        ("1.414", "\\sqrt{2}", false),
    ] {
        assert_eq!(
            exact_match(candidate, reference),
            expected,
            "{candidate} vs {reference}"
        );
    }
    assert_eq!(AnswerCheck::default(), AnswerCheck::Symbolic);
    for check in AnswerCheck::ALL {
        assert_eq!(check.to_string().parse::<AnswerCheck>(), Ok(check));
    }
}

#[tokio::test]
async fn a_journaled_attempt_stores_its_conversation_once() {
    let server = ScriptedServer::builder().rule(answering("0.5")).await;
    let task = MathTask::new(
        client(&server, agentopt_llm::CallStyle::Tools),
        sessions(),
        sessions(),
    );
    let problem = Problem {
        id: "p:1".to_owned(),
        subject: "algebra".to_owned(),
        level: Some(1),
        question: "What is half of one?".to_owned(),
        answer: "0.5".to_owned(),
    };
    let attempt = task.attempt(&problem, &FunctionSet::default()).await;
    assert!(!attempt.history.is_empty(), "{attempt:?}");
    let record = ConversationRecord {
        phase: Phase::Train { epoch: 1 },
        index: 0,
        problem_id: problem.id.clone(),
        attempt,
    };
    let line = serde_json::to_value(&record).expect("serializes");
    assert!(
        line.get("history").is_none(),
        "stored in the transcript only"
    );
    assert_eq!(line["history_in_transcript"], true);
    let read: ConversationRecord = serde_json::from_value(line.clone()).expect("reads");
    assert_eq!(read, record, "the history is rebuilt from the transcript");

    // A line written before the history was stored once holds both.
    let mut old = line;
    let object = old.as_object_mut().expect("an object");
    object.remove("history_in_transcript");
    object.insert(
        "history".to_owned(),
        serde_json::to_value(&record.attempt.history).expect("serializes"),
    );
    let read: ConversationRecord = serde_json::from_value(old).expect("reads");
    assert_eq!(read, record);
}
