//! The crate's error type.

/// Everything that can go wrong in `agentopt-math`. Each variant names the offending
/// input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    /// Hendrycks' unit removal splits on `\text{ ` and requires exactly one occurrence
    /// (AG2 raises an `AssertionError` here and falls back to a raw comparison).
    #[error(
        "answer {answer:?} contains `\\text{{ ` {occurrences} times; unit removal needs exactly one"
    )]
    AmbiguousUnits {
        /// The answer as it was when unit removal ran (after earlier rules).
        answer: String,
        /// How many times `\text{ ` occurs in it.
        occurrences: usize,
    },
    /// A `\sqrt` or `\frac` with nothing after it (AG2 raises an `IndexError`).
    #[error("answer {answer:?} ends a `{command}` with nothing after it")]
    DanglingCommand {
        /// `\sqrt` or `\frac`.
        command: &'static str,
        /// The answer as it was when the rule ran.
        answer: String,
    },
    /// Success counts that make no sense: `correct > samples`, no samples, or a
    /// pass@k budget outside `1..=samples`.
    #[error("invalid counts: samples={samples}, correct={correct}, k={k:?}")]
    InvalidCounts {
        /// Number of samples drawn (n).
        samples: u64,
        /// Number of correct samples (c).
        correct: u64,
        /// The pass@k budget, where one applies.
        k: Option<u64>,
    },
}
