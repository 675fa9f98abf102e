//! `cargo xtask compare-runs`: arms read from their run directories, paired with
//! the baseline on the same test problems.

use agentopt_train::{
    Attempt, ConversationRecord, Outcome, Phase, PhaseTime, ProblemOutcome, REPORT_VERSION, Setup,
    TestResult, TrainingReport, UseRate, pair_outcomes,
};
use xtask::compare_runs::{Arm, compare};

fn result(correct: &[bool]) -> TestResult {
    TestResult::from_outcomes(
        correct
            .iter()
            .enumerate()
            .map(|(line, &correct)| ProblemOutcome {
                id: format!("number_theory.jsonl:{line}"),
                correct,
            })
            .collect(),
    )
}

/// `use_counts`: offered, called, shadowed in the test after.
fn report(before: &[bool], after: &[bool], use_counts: [u64; 3]) -> TrainingReport {
    let [offered, called, shadowed] = use_counts;
    let (test_before, test_after) = (result(before), result(after));
    let paired = pair_outcomes(&test_before, &test_after);
    TrainingReport {
        version: REPORT_VERSION,
        setup: Setup::default(),
        mcnemar_p: paired.mcnemar_exact_p(),
        paired,
        test_before,
        test_after,
        other_checks: Vec::new(),
        epochs: Vec::new(),
        functions: Vec::new(),
        use_rates: vec![UseRate {
            phase: Phase::TestAfter.name(),
            function: None,
            offered,
            called,
            shadowed,
        }],
        usage: Vec::new(),
        endpoints: Vec::new(),
        phases: vec![PhaseTime {
            phase: Phase::TestAfter.name(),
            seconds: 3_900.0,
        }],
        stopped_early: None,
        infrastructure: Vec::new(),
        incomplete: None,
    }
}

fn arm(name: &str, report: TrainingReport) -> Arm {
    Arm {
        name: name.to_owned(),
        report,
        test_after_tokens: vec![1_000, 2_000],
    }
}

#[test]
fn each_arm_is_paired_with_the_baseline_on_the_same_problems() {
    let baseline = report(
        &[false; 10],
        &[
            true, true, false, false, false, false, false, false, false, false,
        ],
        [0; 3],
    );
    // 8 problems only the arm solves, none only the baseline: p = 2 · 2⁻⁸.
    let better = report(&[false; 10], &[true; 10], [8, 6, 1]);
    let alone = compare(&[arm("A0", baseline.clone())]).unwrap();
    assert!(
        alone.contains("| A0 | 10 |") && !alone.contains("paired with"),
        "one arm alone: its row, no pairing table\n{alone}"
    );
    let table = compare(&[arm("A0", baseline), arm("A5", better)]).unwrap();

    assert!(
        table.contains(
            "| A0 | 10 | 0/10 | 2/10 | 0.5000 | – | – | – | – | none | 0 / 0 | 1500 | 1 h 05 min |"
        ),
        "{table}"
    );
    assert!(
        table.contains("| A5 | 10 | 0/10 | 10/10 | 0.0020 | – | 6/8 (75%) | 1/8 |"),
        "{table}"
    );
    assert!(
        table.contains("| A5 | 10 | 2 | 0 | 8 | 0 | 0.0078 |"),
        "{table}"
    );
}

#[test]
fn arms_without_a_common_problem_are_refused() {
    let mut other = report(&[true], &[true], [0; 3]);
    other.test_after.outcomes[0].id = "counting_and_probability.jsonl:0".to_owned();
    let error =
        compare(&[arm("A0", report(&[true], &[true], [0; 3])), arm("B", other)]).unwrap_err();
    assert!(
        error.to_string().contains("no test problem in common"),
        "{error}"
    );
}

#[test]
fn a_run_directory_is_read_with_the_last_record_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let report = report(&[true, false], &[true, true], [2, 1, 0]);
    std::fs::write(
        dir.path().join("report.json"),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();
    // The second test-after line of problem 0 is a resumed run's re-run: it wins.
    let lines = [
        r#"{"phase":"test_before","index":0,"tokens":10}"#,
        r#"{"phase":"test_after","index":0,"tokens":100}"#,
        r#"{"phase":"test_after","index":1,"tokens":300}"#,
        r#"{"phase":"test_after","index":0,"tokens":500}"#,
    ];
    std::fs::write(
        dir.path().join("transcripts.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();

    let arm = Arm::load(dir.path()).unwrap();
    assert_eq!(arm.test_after_tokens, vec![500, 300]);
    assert_eq!(arm.report, report);

    let missing = Arm::load(&dir.path().join("nope")).err().unwrap();
    assert!(
        format!("{missing:#}").contains("nope: not a readable run directory"),
        "{missing:#}"
    );
}

/// A `transcripts.jsonl` line: problem `index` of `phase`, solved or not.
fn record(phase: Phase, index: usize, solved: bool) -> String {
    let record = ConversationRecord {
        phase,
        index,
        problem_id: format!("number_theory.jsonl:{index}"),
        offered: Vec::new(),
        attempt: Attempt::new(Outcome::judged(solved, || "wrong".to_owned()), Vec::new()),
    };
    serde_json::to_string(&record).unwrap()
}

#[test]
fn a_run_still_going_is_read_from_its_journal_before_and_after_on_the_problems_both_reached() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        record(Phase::TestBefore, 0, false),
        record(Phase::TestBefore, 1, true),
        record(Phase::TestBefore, 2, true),
        record(Phase::TestAfter, 0, true),
        record(Phase::TestAfter, 1, true),
    ];
    std::fs::write(
        dir.path().join("transcripts.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    for empty in ["steps.jsonl", "phases.jsonl", "spend.jsonl"] {
        std::fs::write(dir.path().join(empty), "").unwrap();
    }
    let arm = Arm::load(dir.path()).unwrap();
    assert!(arm.name.ends_with(" (so far)"), "{}", arm.name);
    let accuracy = |result: &TestResult| (result.accuracy.correct, result.accuracy.total);
    assert_eq!(
        (
            accuracy(&arm.report.test_before),
            accuracy(&arm.report.test_after)
        ),
        ((1, 2), (2, 2)),
        "problem 2 has no test after yet"
    );
    // An arm still in its test before pairs with nothing yet, and says so.
    let mut starting = arm.report.clone();
    starting.test_after = TestResult::from_outcomes(Vec::new());
    let table = compare(&[
        arm,
        Arm {
            name: "B (so far)".to_owned(),
            report: starting,
            test_after_tokens: Vec::new(),
        },
    ])
    .unwrap();
    assert!(
        table.contains("| B (so far) | no test after yet |"),
        "{table}"
    );
}
