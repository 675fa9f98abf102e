//! Scoring several responses to one problem: AG2's evaluation (successes, expected
//! success, majority vote) and the unbiased pass@k estimator.

use crate::answer::get_answer;
use crate::error::MathError;
use crate::normalize::is_equiv;
use crate::symbolic::check_answer_numeric;

/// Which equivalence decides whether two answers are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Equivalence {
    /// AG2's [`is_equiv`]: Hendrycks-normalised strings (AG2-identical scores).
    Hendrycks,
    /// [`check_answer_numeric`]: normalised strings, then numeric equality.
    Numeric,
}

impl Equivalence {
    /// Whether `candidate` is equivalent to `reference` under this equivalence.
    #[must_use]
    pub fn holds(self, candidate: &str, reference: &str) -> bool {
        match self {
            Self::Hendrycks => is_equiv(candidate, reference),
            Self::Numeric => check_answer_numeric(candidate, reference).is_equivalent(),
        }
    }
}

/// The winner of a majority vote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vote {
    /// Index of the first response in the winning class (its representative).
    pub index: usize,
    /// That response's answer.
    pub answer: String,
    /// How many responses the class holds.
    pub votes: usize,
}

/// Majority vote over answers, AG2's `voting_counts`: answers join the first class
/// whose representative (its first answer) they are equivalent to, `None` answers
/// abstain, and ties go to the class formed first. `None` when every answer abstains.
pub fn majority_vote<'a>(
    answers: impl IntoIterator<Item = Option<&'a str>>,
    equivalence: Equivalence,
) -> Option<Vote> {
    let mut classes: Vec<Vote> = Vec::new();
    for (index, answer) in answers.into_iter().enumerate() {
        let Some(answer) = answer else { continue };
        match classes
            .iter_mut()
            .find(|class| equivalence.holds(answer, &class.answer))
        {
            Some(class) => class.votes += 1,
            None => classes.push(Vote {
                index,
                answer: answer.to_owned(),
                votes: 1,
            }),
        }
    }
    // `max_by_key` keeps the last maximum; the first class must win ties.
    classes.into_iter().rev().max_by_key(|class| class.votes)
}

/// AG2's expected success of `samples` tries when `correct` of them succeeded:
/// `1 - (1 - correct/samples)^samples`.
///
/// # Errors
/// [`MathError::InvalidCounts`] when `samples` is 0 or `correct > samples`.
pub fn expected_success(samples: u64, correct: u64) -> Result<f64, MathError> {
    if samples == 0 || correct > samples {
        return Err(MathError::InvalidCounts {
            samples,
            correct,
            k: None,
        });
    }
    let failure_rate = 1.0 - correct as f64 / samples as f64;
    Ok(1.0 - failure_rate.powf(samples as f64))
}

/// The unbiased pass@k estimator (Chen et al., 2021): the probability that at least
/// one of `k` samples drawn without replacement from `samples`, of which `correct`
/// are correct, is correct; `1 - C(n-c, k) / C(n, k)`, computed as a product so that
/// it stays accurate for large `n`.
///
/// # Errors
/// [`MathError::InvalidCounts`] unless `correct <= samples` and `1 <= k <= samples`.
pub fn pass_at_k(samples: u64, correct: u64, k: u64) -> Result<f64, MathError> {
    if correct > samples || k == 0 || k > samples {
        return Err(MathError::InvalidCounts {
            samples,
            correct,
            k: Some(k),
        });
    }
    if samples - correct < k {
        return Ok(1.0);
    }
    let all_fail: f64 = (samples - correct + 1..=samples)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    Ok(1.0 - all_fail)
}

/// AG2's `eval_math_responses` for several responses to one problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseEvaluation {
    /// Per response: its boxed answer is equivalent to the reference.
    pub successes: Vec<bool>,
    /// [`expected_success`] over the responses (0 when there are none).
    pub expected_success: f64,
    /// At least one response succeeded.
    pub any_success: bool,
    /// The majority answer, if any response had one.
    pub vote: Option<Vote>,
    /// The majority answer is equivalent to the reference.
    pub vote_success: bool,
}

/// Evaluates full responses against a reference answer: each response's answer is
/// its last `\boxed{}` ([`get_answer`]); a response without one fails and abstains
/// from the vote.
#[must_use]
pub fn evaluate_responses(
    responses: &[&str],
    reference: &str,
    equivalence: Equivalence,
) -> ResponseEvaluation {
    let answers: Vec<Option<&str>> = responses.iter().map(|r| get_answer(r)).collect();
    let successes: Vec<bool> = answers
        .iter()
        .map(|answer| answer.is_some_and(|a| equivalence.holds(a, reference)))
        .collect();
    let correct = successes.iter().filter(|s| **s).count();
    let vote = majority_vote(answers.iter().copied(), equivalence);
    ResponseEvaluation {
        expected_success: expected_success(successes.len() as u64, correct as u64).unwrap_or(0.0),
        any_success: correct > 0,
        vote_success: vote
            .as_ref()
            .is_some_and(|v| equivalence.holds(&v.answer, reference)),
        vote,
        successes,
    }
}
