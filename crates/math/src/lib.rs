//! MATH-benchmark utilities: fenced code-block extraction, `\boxed{}` answers and
//! answer equivalence (Hendrycks normalisation, numeric equivalence, and a hook for a
//! symbolic checker), plus the scoring helpers used to evaluate several responses.
//!
//! Pure: this crate does no I/O, starts no process and opens no socket. Every public
//! function accepts arbitrary text and never panics on it.
//!
//! Layers of answer checking, from AG2-identical to more forgiving:
//! 1. [`is_equiv`]: AG2's Hendrycks comparison (normalise both strings, compare).
//! 2. [`check_answer_numeric`]: adds exact-rational and tolerance-based numeric
//!    equivalence ([`evaluate`]), so `7.0` matches `7` and `0.5` matches `\dfrac{2}{4}`.
//! 3. [`check_answer`]: adds a caller-supplied [`SymbolicChecker`] for answers that need
//!    algebra (`x(x+2)` vs `x^2+2x`); [`latex_answer_to_sympy`] rewrites LaTeX
//!    answers into the small language such a checker may hand to sympy.

mod answer;
mod code;
mod error;
mod normalize;
mod numeric;
mod symbolic;
mod sympy;

pub use answer::get_answer;
pub use code::{CodeBlock, Lang, extract_code, infer_lang};
pub use error::MathError;
pub use normalize::{is_equiv, normalize};
pub use numeric::{
    ABSOLUTE_TOLERANCE, DecimalLiteral, Number, NumericAnswer, NumericComparison, NumericRule,
    RELATIVE_TOLERANCE, ROUNDED_DECIMAL_MIN_SIGNIFICANT_DIGITS, compare_numbers, evaluate,
};
pub use symbolic::{
    AnswerVerdict, Rule, SymbolicChecker, SymbolicVerdict, UndecidedReason, check_answer,
    check_answer_numeric,
};
pub use sympy::{SYMPY_NAMES, SympyAnswer, latex_answer_to_sympy, latex_to_sympy};
