//! The exact sign test behind validation mode.

use std::collections::BTreeMap;

use agentopt_optimizer::{
    PairedComparison, PairedCounts, Z_95, binomial_upper_tail, wilson_interval,
};

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

/// Reference values from the closed form evaluated in Python (float64).
#[test]
fn wilson_interval_known_values() {
    let check = |successes: u64, trials: u64, low: f64, high: f64| {
        let interval = wilson_interval(successes, trials, Z_95);
        assert!(
            (interval.low - low).abs() < 1e-12 && (interval.high - high).abs() < 1e-12,
            "{successes}/{trials}: got {interval:?}, expected [{low}, {high}]"
        );
    };
    check(5, 10, 0.236_593_090_512_564, 0.763_406_909_487_436_1);
    check(0, 10, 0.0, 0.277_532_799_862_889_2);
    check(10, 10, 0.722_467_200_137_110_7, 1.0);
    check(7, 10, 0.396_778_147_461_145_37, 0.892_208_732_593_698_9);
    check(1, 1, 0.206_549_314_377_237_45, 1.0);
    check(0, 0, 0.0, 1.0);
}

/// Exact two-sided McNemar p-values, checked against exact rational arithmetic
/// (`2·Σ C(n,i)/2ⁿ` with Python's `fractions`).
#[test]
fn mcnemar_exact_known_values() {
    let check = |before_only: u64, after_only: u64, expected: f64| {
        let counts = PairedCounts {
            both: 3,
            before_only,
            after_only,
            neither: 4,
        };
        let p = counts.mcnemar_exact_p();
        assert!(
            (p - expected).abs() <= 1e-12 * expected.max(1e-300) + 1e-15,
            "b={before_only} c={after_only}: got {p}, expected {expected}"
        );
    };
    check(1, 6, 0.125);
    check(6, 1, 0.125);
    check(0, 10, 0.001_953_125);
    check(3, 12, 0.035_156_25);
    check(5, 5, 1.0);
    check(0, 0, 1.0);
    check(0, 1, 1.0);
    // Large counts: 2⁻ⁿ underflows f64 here, the log-space sum does not.
    check(480, 600, 0.000_289_572_902_935_826_5);
    check(2000, 2200, 0.002_132_355_671_991_234_6);
}

#[test]
fn paired_counts_from_pairs() {
    let counts = PairedCounts::from_pairs([
        (true, true),
        (true, false),
        (false, true),
        (false, true),
        (false, false),
    ]);
    assert_eq!(
        counts,
        PairedCounts {
            both: 1,
            before_only: 1,
            after_only: 2,
            neither: 1
        }
    );
}
