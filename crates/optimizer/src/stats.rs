//! The paired comparison behind validation mode: an exact one-sided sign test on the
//! discordant pairs (the exact McNemar test).

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

/// P(X >= k) for X ~ Binomial(n, 1/2), summed in log space so large n stays finite.
pub fn binomial_upper_tail(n: usize, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln_half_n = n as f64 * 0.5_f64.ln();
    // ln C(n, i), built up from ln C(n, 0) = 0.
    let mut ln_choose = 0.0;
    let mut total = 0.0;
    for i in 0..=n {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        if i >= k {
            total += (ln_choose + ln_half_n).exp();
        }
    }
    total.min(1.0)
}
