use xtask::bench_math::stats::{PairedCounts, Z_95, wilson_interval};

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
