//! The report's renderings and statistics, on a fixture of a real report.

use std::path::Path;

use agentopt_core::files::read_json;
use agentopt_train::{
    ConversationRecord, Phase, ProblemOutcome, TestResult, TrainingReport, pair_outcomes,
};

pub(crate) fn fixture() -> TrainingReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json");
    read_json(&path).expect("fixture report.json parses")
}

#[test]
fn report_markdown() {
    insta::assert_snapshot!(fixture().to_markdown());
}

#[test]
fn terminal_summary_mirrors_the_seed_notebook() {
    insta::assert_snapshot!(fixture().terminal_summary());
}

#[test]
fn report_json_round_trips() {
    let report = fixture();
    let text = serde_json::to_string(&report).expect("serialises");
    let back: TrainingReport = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, report);
}

#[test]
fn fixture_statistics_agree_with_the_outcomes() {
    let report = fixture();
    let rebuilt_before = TestResult::from_outcomes(report.test_before.outcomes.clone());
    let rebuilt_after = TestResult::from_outcomes(report.test_after.outcomes.clone());
    assert_eq!(rebuilt_before, report.test_before);
    assert_eq!(rebuilt_after, report.test_after);
    let paired = pair_outcomes(&report.test_before, &report.test_after);
    assert_eq!(paired, report.paired);
    assert_eq!(paired.mcnemar_exact_p(), report.mcnemar_p);
    for check in &report.other_checks {
        let before = TestResult::from_outcomes(check.test_before.outcomes.clone());
        let after = TestResult::from_outcomes(check.test_after.outcomes.clone());
        assert_eq!((&before, &after), (&check.test_before, &check.test_after));
        let paired = pair_outcomes(&before, &after);
        assert_eq!(paired, check.paired);
        assert_eq!(paired.mcnemar_exact_p(), check.mcnemar_p);
    }
}

#[test]
fn pairing_matches_problems_by_id() {
    let outcome = |id: &str, correct| ProblemOutcome {
        id: id.to_owned(),
        correct,
    };
    let before = TestResult::from_outcomes(vec![
        outcome("a", false),
        outcome("b", true),
        outcome("c", false),
    ]);
    // Other order, and a problem missing from the first run.
    let after = TestResult::from_outcomes(vec![
        outcome("c", true),
        outcome("d", true),
        outcome("a", true),
    ]);
    let paired = pair_outcomes(&before, &after);
    assert_eq!(
        (
            paired.after_only,
            paired.before_only,
            paired.both,
            paired.neither
        ),
        (2, 0, 0, 0)
    );
}

#[test]
fn journal_records_serialise_with_their_phase_and_outcome() {
    let record = |phase, outcome| ConversationRecord {
        phase,
        index: 0,
        problem_id: "algebra.jsonl:1".to_owned(),
        offered: Vec::new(),
        attempt: agentopt_train::Attempt::new(outcome, Vec::new()),
    };
    let line = serde_json::to_value(record(
        Phase::Train { epoch: 2 },
        agentopt_train::Outcome::Solved,
    ))
    .expect("serialises");
    assert_eq!(
        (line["phase"].as_str(), line["epoch"].as_u64()),
        (Some("train"), Some(2))
    );
    assert_eq!(line["outcome"]["status"], "solved");
    let error =
        agentopt_train::InfraError::new(agentopt_train::FailureKind::Sandbox, "worker died");
    let line = serde_json::to_value(record(
        Phase::TestAfter,
        agentopt_train::Outcome::Infrastructure(error),
    ))
    .expect("serialises");
    assert_eq!(line["phase"], "test_after");
    assert!(line.get("epoch").is_none());
    assert_eq!(line["outcome"]["status"], "infrastructure");
    assert_eq!(line["outcome"]["kind"], "sandbox");
    let back: ConversationRecord = serde_json::from_value(line).expect("parses back");
    assert_eq!(
        back.attempt
            .outcome
            .infrastructure()
            .map(|e| e.message.as_str()),
        Some("worker died")
    );
}

#[test]
fn step_summaries() {
    let step = |kept, actions, rejected, functions: &[&str]| agentopt_train::StepRecord {
        epoch: 1,
        kept,
        actions,
        rejected,
        functions_after: functions.iter().map(|name| (*name).to_owned()).collect(),
        should_stop: false,
        skipped: None,
        pruned: Vec::new(),
        demonstrations: agentopt_train::DemonstrationCounts::default(),
        partitions: 0,
    };
    for (record, text) in [
        (
            step(true, 1, 0, &["solve"]),
            "kept the trial · 1 action · functions: solve",
        ),
        (
            step(false, 0, 2, &[]),
            "rolled back to the best · 0 actions (2 rejected) · functions: none",
        ),
        (
            agentopt_train::StepRecord {
                partitions: 3,
                ..step(true, 2, 0, &["solve", "halve"])
            },
            "kept the trial · 2 actions over 3 partitions · functions: solve, halve",
        ),
    ] {
        assert_eq!(record.summary(), text);
    }
    let skipped = agentopt_train::StepRecord {
        skipped: Some("HTTP 500".to_owned()),
        ..step(false, 0, 0, &["solve"])
    };
    assert_eq!(skipped.summary(), "skipped: HTTP 500");
}
