//! Answer checking in layers (normalised strings, numbers, algebra) and the hook
//! for the algebra layer.

use async_trait::async_trait;

use crate::normalize::is_equiv;
use crate::numeric::{NumericRule, compare_numbers, evaluate};

/// Decides whether two answers are algebraically equal (`\sqrt{8}` vs `2\sqrt{2}`,
/// `x(x+2)` vs `x^2+2x`, `[1,3)` vs `[1, 3)`), typically with a computer-algebra
/// system in a sandbox. This crate only defines the contract; an implementation
/// lives where processes may be started.
///
/// Contract for implementations:
/// - `candidate` and `reference` are the raw answers exactly as given to
///   [`check_answer`] (the content of a `\boxed{}` and the reference answer), not
///   normalised: Hendrycks normalisation is lossy for algebra (it deletes spaces, so
///   `\sin x` becomes `\sinx`, and drops short left-hand sides such as `y =`). Use
///   [`crate::normalize`] or [`crate::evaluate`] where they help.
/// - `candidate` is written by a model and is untrusted: parse it as LaTeX data,
///   never evaluate it as code, and bound the time spent.
/// - It is called only when the string and numeric rules could not decide (at least
///   one side is not a number), at most once per [`check_answer`] call.
/// - Input it cannot read is [`SymbolicVerdict::Undecided`]; its own failures
///   (time-outs, a dead worker) are [`SymbolicVerdict::Failed`]; both with a reason,
///   never a panic.
#[async_trait]
pub trait SymbolicChecker: Send + Sync {
    /// Whether `candidate` and `reference` denote the same mathematical object.
    async fn equivalent(&self, candidate: &str, reference: &str) -> SymbolicVerdict;
}

/// A [`SymbolicChecker`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SymbolicVerdict {
    /// The answers are equal.
    Equivalent,
    /// The answers differ.
    NotEquivalent,
    /// The checker could not tell about these answers (outside what it
    /// understands); the reason says why.
    Undecided(String),
    /// The checker itself failed (its sandbox did not start, timed out, died):
    /// nothing is known about the answers.
    Failed(String),
}

/// The rule that decided an [`AnswerVerdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The Hendrycks-normalised strings are equal ([`crate::is_equiv`]).
    NormalizedString,
    /// Both answers are numbers; the numeric rule compared them.
    Numeric(NumericRule),
    /// The [`SymbolicChecker`] decided.
    Symbolic,
}

/// Why an answer check could not decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UndecidedReason {
    /// The strings differ, at least one side is not a number, and no
    /// [`SymbolicChecker`] was given.
    NeedsAlgebra,
    /// The [`SymbolicChecker`] could not tell, for this reason.
    Symbolic(String),
    /// The [`SymbolicChecker`] failed (infrastructure, not the answer).
    CheckerFailed(String),
}

/// The outcome of checking a candidate answer against a reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnswerVerdict {
    /// Equal, by this rule.
    Equivalent(Rule),
    /// Different, by this rule.
    NotEquivalent(Rule),
    /// No rule could decide; scoring should count this as a failure.
    Undecided(UndecidedReason),
}

impl AnswerVerdict {
    /// Whether the candidate counts as correct.
    #[must_use]
    pub fn is_equivalent(&self) -> bool {
        matches!(self, Self::Equivalent(_))
    }
}

/// Checks `candidate` against `reference` with the string and numeric rules only:
/// equal Hendrycks-normalised strings, then (when both answers are numbers)
/// [`crate::compare_numbers`]. Answers that need algebra come back
/// [`AnswerVerdict::Undecided`].
#[must_use]
pub fn check_answer_numeric(candidate: &str, reference: &str) -> AnswerVerdict {
    if is_equiv(candidate, reference) {
        return AnswerVerdict::Equivalent(Rule::NormalizedString);
    }
    match (evaluate(candidate), evaluate(reference)) {
        (Some(c), Some(r)) => {
            let comparison = compare_numbers(&c, &r);
            let rule = Rule::Numeric(comparison.rule);
            if comparison.equal {
                AnswerVerdict::Equivalent(rule)
            } else {
                AnswerVerdict::NotEquivalent(rule)
            }
        }
        _ => AnswerVerdict::Undecided(UndecidedReason::NeedsAlgebra),
    }
}

/// Checks `candidate` against `reference`: normalised strings, then numbers (see
/// [`check_answer_numeric`]), then `checker` when one is given and the first two
/// rules could not decide.
pub async fn check_answer(
    candidate: &str,
    reference: &str,
    checker: Option<&dyn SymbolicChecker>,
) -> AnswerVerdict {
    let verdict = check_answer_numeric(candidate, reference);
    let (AnswerVerdict::Undecided(UndecidedReason::NeedsAlgebra), Some(checker)) =
        (&verdict, checker)
    else {
        return verdict;
    };
    match checker.equivalent(candidate, reference).await {
        SymbolicVerdict::Equivalent => AnswerVerdict::Equivalent(Rule::Symbolic),
        SymbolicVerdict::NotEquivalent => AnswerVerdict::NotEquivalent(Rule::Symbolic),
        SymbolicVerdict::Undecided(reason) => {
            AnswerVerdict::Undecided(UndecidedReason::Symbolic(reason))
        }
        SymbolicVerdict::Failed(reason) => {
            AnswerVerdict::Undecided(UndecidedReason::CheckerFailed(reason))
        }
    }
}
