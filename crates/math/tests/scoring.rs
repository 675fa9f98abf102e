//! Majority vote, expected success, pass@k and AG2's response evaluation.

use agentopt_math::{
    Equivalence, MathError, Vote, evaluate_responses, expected_success, majority_vote, pass_at_k,
};

#[track_caller]
fn check_pass_at_k(samples: u64, correct: u64, k: u64, expected: f64) {
    let value = pass_at_k(samples, correct, k);
    assert!(
        value.as_ref().is_ok_and(|v| (v - expected).abs() < 1e-12),
        "pass@{k} with {correct}/{samples}: {value:?}, expected {expected}"
    );
}

#[test]
fn pass_at_k_matches_known_values() {
    check_pass_at_k(10, 0, 1, 0.0);
    check_pass_at_k(10, 10, 1, 1.0);
    check_pass_at_k(10, 3, 1, 0.3);
    check_pass_at_k(10, 3, 2, 1.0 - 21.0 / 45.0);
    check_pass_at_k(10, 8, 3, 1.0);
    check_pass_at_k(1000, 1, 1, 0.001);
    check_pass_at_k(100_000, 1, 1, 1e-5);
    check_pass_at_k(10_000, 5_000, 100, 1.0);
}

fn binomial(n: u64, k: u64) -> f64 {
    (0..k).map(|i| (n - i) as f64 / (i + 1) as f64).product()
}

#[test]
fn pass_at_k_equals_the_binomial_formula() {
    for n in 1..=20 {
        for c in 0..=n {
            for k in 1..=n {
                let expected = if n - c < k {
                    1.0
                } else {
                    1.0 - binomial(n - c, k) / binomial(n, k)
                };
                check_pass_at_k(n, c, k, expected);
            }
        }
    }
}

#[test]
fn pass_at_k_rejects_impossible_counts() {
    for (n, c, k) in [(5, 6, 1), (5, 1, 0), (5, 1, 6), (0, 0, 1)] {
        assert_eq!(
            pass_at_k(n, c, k),
            Err(MathError::InvalidCounts {
                samples: n,
                correct: c,
                k: Some(k)
            })
        );
    }
}

#[test]
fn expected_success_is_ag2s_formula() {
    assert_eq!(expected_success(4, 1), Ok(1.0 - 0.75f64.powi(4)));
    assert_eq!(expected_success(3, 3), Ok(1.0));
    assert_eq!(expected_success(3, 0), Ok(0.0));
    assert_eq!(
        expected_success(0, 0),
        Err(MathError::InvalidCounts {
            samples: 0,
            correct: 0,
            k: None
        })
    );
}

#[test]
fn majority_vote_groups_equivalent_answers() {
    let answers = [
        Some("1/2"),
        None,
        Some("3"),
        Some("0.5"),
        Some("\\frac12"),
        Some("3"),
    ];
    assert_eq!(
        majority_vote(answers, Equivalence::Hendrycks),
        Some(Vote {
            index: 0,
            answer: "1/2".to_owned(),
            votes: 3
        })
    );
}

#[test]
fn majority_vote_breaks_ties_towards_the_first_class() {
    let answers = [Some("4"), Some("5"), Some("5"), Some("4")];
    assert_eq!(
        majority_vote(answers, Equivalence::Hendrycks),
        Some(Vote {
            index: 0,
            answer: "4".to_owned(),
            votes: 2
        })
    );
}

#[test]
fn majority_vote_uses_the_chosen_equivalence() {
    let answers = [Some("7"), Some("2"), Some("7.0"), Some("2")];
    let hendrycks = majority_vote(answers, Equivalence::Hendrycks);
    let numeric = majority_vote(answers, Equivalence::Numeric);
    assert_eq!(hendrycks.map(|v| (v.index, v.votes)), Some((1, 2)));
    assert_eq!(numeric.map(|v| (v.index, v.votes)), Some((0, 2)));
    assert_eq!(majority_vote([None, None], Equivalence::Numeric), None);
}

#[test]
fn evaluates_responses_like_ag2() {
    let responses = [
        "So $x = \\boxed{7.0}$.",
        "Therefore \\boxed{7}.",
        "I think \\boxed{8}",
        "I could not finish.",
        "\\boxed{\\dfrac{14}{2}}",
    ];
    let evaluations: Vec<_> = [Equivalence::Hendrycks, Equivalence::Numeric]
        .into_iter()
        .map(|equivalence| {
            (
                equivalence,
                evaluate_responses(&responses, "7", equivalence),
            )
        })
        .collect();
    insta::assert_debug_snapshot!(evaluations);
    let empty = evaluate_responses(&[], "7", Equivalence::Numeric);
    assert_eq!(
        (empty.expected_success, empty.any_success, empty.vote),
        (0.0, false, None)
    );
}
