//! The two ways a final answer is judged: AG2's exact string rule and the layered
//! symbolic check.

use std::fmt;
use std::str::FromStr;

use agentopt_math::AnswerVerdict;
use serde::{Deserialize, Serialize};

/// Which answer check decides whether a problem is solved (and so drives training).
/// The other one is still computed and reported beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerCheck {
    /// AG2's seed notebook: the boxed answer must equal the reference string
    /// (`get_answer(msg) == str(answer)`, a number's trailing `.0` stripped).
    /// Comparable with the seed and the paper.
    Exact,
    /// Normalised strings, then numbers, then sympy (`agentopt_math::check_answer`):
    /// `1.414` is accepted for `\sqrt{2}`, `x^2+2x+1` for `(x+1)^2`.
    #[default]
    Symbolic,
}

impl AnswerCheck {
    /// Both checks, in command-line order.
    pub const ALL: [Self; 2] = [Self::Exact, Self::Symbolic];

    /// The name used on command lines, in configurations and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Symbolic => "symbolic",
        }
    }

    /// Whether this check accepts a final answer the symbolic check judged `verdict`
    /// and the exact check `exact`: the one decision of "solved" (the proxy's
    /// "Correct" reply, `MathOutcome::correct` and the task's outcome).
    pub fn accepts(self, verdict: &AnswerVerdict, exact: bool) -> bool {
        match self {
            Self::Exact => exact,
            Self::Symbolic => verdict.is_equivalent(),
        }
    }

    /// The check that does not drive training, reported beside it.
    pub fn other(self) -> Self {
        match self {
            Self::Exact => Self::Symbolic,
            Self::Symbolic => Self::Exact,
        }
    }
}

impl fmt::Display for AnswerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnswerCheck {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|check| check.as_str() == text)
            .ok_or_else(|| format!("unknown answer check {text:?}; expected exact or symbolic"))
    }
}

/// AG2's rule: the candidate is exactly the reference text.
pub fn exact_match(candidate: &str, reference: &str) -> bool {
    candidate == reference
}
