//! The layered answer check, with and without a symbolic checker.

use std::sync::Mutex;

use agentopt_math::{
    AnswerVerdict, SymbolicChecker, SymbolicVerdict, check_answer, check_answer_numeric,
};

/// A checker that answers from a fixed table of `(candidate, reference)` pairs
/// (unknown pairs are `Undecided`) and records every question it is asked.
struct TableChecker {
    table: Vec<((&'static str, &'static str), SymbolicVerdict)>,
    asked: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl SymbolicChecker for TableChecker {
    async fn equivalent(&self, candidate: &str, reference: &str) -> SymbolicVerdict {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push((candidate.to_owned(), reference.to_owned()));
        }
        self.table
            .iter()
            .find(|((c, r), _)| *c == candidate && *r == reference)
            .map_or_else(
                || SymbolicVerdict::Undecided(format!("no entry for {candidate} vs {reference}")),
                |(_, verdict)| verdict.clone(),
            )
    }
}

fn table_checker() -> TableChecker {
    TableChecker {
        table: vec![
            (("x(x+2)", "x^2+2x"), SymbolicVerdict::Equivalent),
            (("x^2", "x^2+2x"), SymbolicVerdict::NotEquivalent),
        ],
        asked: Mutex::new(Vec::new()),
    }
}

const PAIRS: &[(&str, &str)] = &[
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{1}{2}", "1/2"),
    ("7", "7.0"),
    ("\\frac{-4}{2}", "-2.0"),
    ("7\\%", "7.0"),
    ("\\$1,000", "1000.0"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("1.414", "\\sqrt{2}"),
    ("8", "7.0"),
    ("x(x+2)", "x^2+2x"),
    ("x^2", "x^2+2x"),
    ("(1,2)", "(1, 3)"),
    ("x", "7.0"),
];

#[test]
fn numeric_check_decides_strings_and_numbers() {
    let verdicts: Vec<(&str, &str, AnswerVerdict)> = PAIRS
        .iter()
        .map(|(c, r)| (*c, *r, check_answer_numeric(c, r)))
        .collect();
    insta::assert_debug_snapshot!(verdicts);
}

#[tokio::test]
async fn checker_decides_only_what_numbers_cannot() {
    let checker = table_checker();
    let mut verdicts = Vec::new();
    for (candidate, reference) in PAIRS {
        let verdict = check_answer(candidate, reference, Some(&checker)).await;
        verdicts.push((*candidate, *reference, verdict));
    }
    insta::assert_debug_snapshot!(verdicts);
    let asked = checker.asked.lock().map(|a| a.clone()).unwrap_or_default();
    let expected: Vec<(String, String)> = [
        ("x(x+2)", "x^2+2x"),
        ("x^2", "x^2+2x"),
        ("(1,2)", "(1, 3)"),
        ("x", "7.0"),
    ]
    .iter()
    .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(asked, expected, "the checker sees raw answers, once each");
}

#[tokio::test]
async fn without_a_checker_algebra_is_undecided() {
    let with_none = check_answer("x(x+2)", "x^2+2x", None).await;
    assert_eq!(with_none, check_answer_numeric("x(x+2)", "x^2+2x"));
    assert!(!with_none.is_equivalent());
}

#[tokio::test]
async fn a_boxed_checker_is_usable_as_a_trait_object() {
    let checker: Box<dyn SymbolicChecker> = Box::new(table_checker());
    let verdict = check_answer("x(x+2)", "x^2+2x", Some(checker.as_ref())).await;
    assert!(verdict.is_equivalent());
}
