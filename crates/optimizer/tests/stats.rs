//! The exact sign test behind validation mode.

use std::collections::BTreeMap;

use agentopt_optimizer::{PairedComparison, binomial_upper_tail};

fn check(n: usize, k: usize, expected: f64) {
    let p = binomial_upper_tail(n, k);
    assert!(
        (p - expected).abs() < 1e-12,
        "P(X >= {k} | n = {n}) = {p}, expected {expected}"
    );
}

#[test]
fn binomial_upper_tail_is_exact() {
    check(0, 0, 1.0);
    check(5, 0, 1.0);
    check(5, 6, 0.0);
    check(1, 1, 0.5);
    check(10, 9, 11.0 / 1024.0);
    check(10, 10, 1.0 / 1024.0);
    check(4, 2, 11.0 / 16.0);
    // Large n stays finite: P(X >= 600 | n = 1000) is tiny but positive.
    let tail = binomial_upper_tail(1000, 600);
    assert!(tail > 0.0 && tail < 1e-9, "{tail}");
}

#[test]
fn only_shared_problems_are_paired() {
    let outcomes = |pairs: &[(&str, bool)]| -> BTreeMap<String, bool> {
        pairs
            .iter()
            .map(|(id, solved)| ((*id).to_owned(), *solved))
            .collect()
    };
    let best = outcomes(&[("a", false), ("b", true), ("c", false), ("only-best", true)]);
    let trial = outcomes(&[("a", true), ("b", true), ("c", true), ("only-trial", true)]);
    let comparison = PairedComparison::new(&best, &trial, 0.3);
    assert_eq!(
        (
            comparison.pairs,
            comparison.trial_only,
            comparison.best_only
        ),
        (3, 2, 0)
    );
    assert_eq!(comparison.p_value, 0.25);
    assert!(comparison.trial_is_better());
    assert!(!PairedComparison::new(&trial, &best, 0.3).trial_is_better());
}
