//! Exact statistics for small samples, in one place: the one-sided sign test behind
//! validation mode, the two-sided exact McNemar test for before/after pairs, and
//! Wilson score intervals for success rates. Every binomial tail comes from one
//! exact Binomial(n, ½) CDF.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The paired comparison of the trial and best function lists on the same
/// validation problems.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Problems both lists were validated on.
    pub pairs: usize,
    /// Problems only the trial list solved.
    pub trial_only: usize,
    /// Problems only the best list solved.
    pub best_only: usize,
    /// One-sided exact p-value that the trial list is no better than the best list:
    /// P(X >= trial_only) for X ~ Binomial(trial_only + best_only, 1/2).
    pub p_value: f64,
    /// The significance level the p-value is compared with.
    pub significance: f64,
}

impl PairedComparison {
    /// Compares outcomes on the problems present in both maps.
    pub fn new(
        best: &BTreeMap<String, bool>,
        trial: &BTreeMap<String, bool>,
        significance: f64,
    ) -> Self {
        let mut comparison = Self {
            pairs: 0,
            trial_only: 0,
            best_only: 0,
            p_value: 1.0,
            significance,
        };
        for (problem, trial_solved) in trial {
            let Some(best_solved) = best.get(problem) else {
                continue;
            };
            comparison.pairs += 1;
            match (trial_solved, best_solved) {
                (true, false) => comparison.trial_only += 1,
                (false, true) => comparison.best_only += 1,
                _ => {}
            }
        }
        comparison.p_value = binomial_upper_tail(
            comparison.trial_only + comparison.best_only,
            comparison.trial_only,
        );
        comparison
    }

    /// The trial list is significantly better than the best list.
    pub fn trial_is_better(&self) -> bool {
        self.trial_only > self.best_only && self.p_value <= self.significance
    }
}

/// `P(X >= k)` for `X ~ Binomial(n, ½)`: the one-sided exact sign test.
pub fn binomial_upper_tail(n: usize, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    // By symmetry of Binomial(n, ½), P(X >= k) = P(X <= n - k).
    binomial_half_cdf((n - k) as u64, n as u64)
}

/// z for a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A closed interval of rates in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// The Wilson score interval for `successes` out of `trials` at normal quantile `z`.
/// Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and
/// n successes, which matter with 10 problems. No trials → [0, 1].
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> Interval {
    if trials == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half_width = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Interval {
        low: (centre - half_width).max(0.0),
        high: (centre + half_width).min(1.0),
    }
}

/// Paired outcomes of the same problems before and after training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedCounts {
    /// Solved before and after.
    pub both: u64,
    /// Solved before only (training broke it).
    pub before_only: u64,
    /// Solved after only (training fixed it).
    pub after_only: u64,
    /// Solved neither time.
    pub neither: u64,
}

impl PairedCounts {
    /// Counts the pairs `(before, after)`.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut counts = Self::default();
        for pair in pairs {
            match pair {
                (true, true) => counts.both += 1,
                (true, false) => counts.before_only += 1,
                (false, true) => counts.after_only += 1,
                (false, false) => counts.neither += 1,
            }
        }
        counts
    }

    /// The two-sided exact McNemar p-value: under "training changed nothing" each
    /// discordant pair is a fair coin, so the smaller discordant count is
    /// Binomial(b + c, ½); p = min(1, 2·P[X ≤ min(b, c)]). No discordant pairs → 1.
    pub fn mcnemar_exact_p(&self) -> f64 {
        let discordant = self.before_only + self.after_only;
        if discordant == 0 {
            return 1.0;
        }
        let smaller = self.before_only.min(self.after_only);
        (2.0 * binomial_half_cdf(smaller, discordant)).min(1.0)
    }
}

/// P[X ≤ k] for X ~ Binomial(n, ½) = 2⁻ⁿ·Σᵢ₌₀ᵏ C(n, i). The terms are summed as
/// f64 with a separate power-of-two exponent, so large n neither overflows the
/// coefficients nor underflows 2⁻ⁿ, and small cases come out exact.
fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    const RESCALE_ABOVE: f64 = 1e150;
    const RESCALE_BY: i32 = 500;
    let mut term = 1.0_f64; // C(n, 0), times 2^-exponent
    let mut sum = 1.0_f64;
    let mut exponent: i64 = 0;
    for i in 1..=k.min(n) {
        term *= (n - i + 1) as f64 / i as f64;
        sum += term;
        if sum > RESCALE_ABOVE {
            let scale = 2.0_f64.powi(-RESCALE_BY);
            term *= scale;
            sum *= scale;
            exponent += i64::from(RESCALE_BY);
        }
    }
    let power = exponent - n as i64;
    let cdf = if power >= -1000 {
        // Multiplying by a power of two is exact.
        sum * 2.0_f64.powi(power as i32)
    } else {
        (sum.log2() + power as f64).exp2()
    };
    cdf.min(1.0)
}
