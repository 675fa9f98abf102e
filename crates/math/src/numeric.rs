//! Numeric equivalence: a small evaluator for the LaTeX of numeric answers (integers,
//! decimals, fractions, mixed numbers, roots, powers, `\pi`, the four operations) and
//! the comparison rules between two evaluated answers.
//!
//! Values stay exact rationals while every step is rational (`\frac{-4}{2}`, `0.50`,
//! `2^{-3}`, `\sqrt{\frac{9}{4}}`) and become `f64` approximations otherwise (`\sqrt{2}`,
//! `\pi`).

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::normalize::normalize;

/// Two approximate values are equal when they differ by at most this fraction of the
/// larger magnitude (float noise from evaluating `2\sqrt{2}` and `\sqrt{8}` differently).
pub const RELATIVE_TOLERANCE: f64 = 1e-9;
/// Two approximate values this close are equal whatever their magnitude (so that an
/// expression that cancels to about `1e-16` equals `0`).
pub const ABSOLUTE_TOLERANCE: f64 = 1e-12;
/// A decimal literal with at least one fractional digit and at least this many
/// significant digits is taken to be possibly rounded: it matches an expression that
/// rounds to it (`1.414` matches `\sqrt{2}`, `0.333` matches `\frac{1}{3}`). Shorter
/// literals only match exactly, so `0.3` does not match `\frac{1}{3}`.
pub const ROUNDED_DECIMAL_MIN_SIGNIFICANT_DIGITS: u32 = 3;

/// How `\sqrt[` is spelled while the answer is normalised (see [`evaluate`]).
const INDEXED_ROOT: &str = "\\indexedroot[";

/// Deepest nesting of groups the evaluator follows before giving up on an answer.
const MAX_DEPTH: u32 = 64;
/// Largest decimal exponent accepted in a literal such as `6.72e-05`.
const MAX_LITERAL_EXPONENT: i64 = 1000;
/// Exact powers whose result would need more bits than this are approximated instead.
const MAX_EXACT_POWER_BITS: u64 = 1 << 16;
/// Largest root index (`\sqrt[n]{…}`, or the denominator of a rational exponent)
/// tried exactly.
const MAX_EXACT_ROOT_INDEX: u32 = 64;

/// The value of a numeric answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// Every step of the evaluation was rational.
    Exact(BigRational),
    /// Some step was irrational (or too large to keep exact); always finite.
    Approx(f64),
}

impl Number {
    /// The value as a finite `f64`, if it has one.
    #[must_use]
    pub fn to_f64(&self) -> Option<f64> {
        let value = match self {
            Self::Exact(r) => r.to_f64()?,
            Self::Approx(x) => *x,
        };
        value.is_finite().then_some(value)
    }
}

/// An answer that evaluated to a number.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericAnswer {
    /// Its value.
    pub value: Number,
    /// `Some` when the whole answer is a plain decimal literal (`-12`, `0.50`).
    pub literal: Option<DecimalLiteral>,
}

/// The shape of a plain decimal literal, used to decide whether it may be rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalLiteral {
    /// Digits after the decimal point.
    pub places: u32,
    /// Digits from the first non-zero one on (`0.0450` has 3).
    pub significant_digits: u32,
}

/// Which numeric rule compared two answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumericRule {
    /// Both values are exact rationals, compared exactly.
    ExactRational,
    /// At least one value is approximate; compared within [`RELATIVE_TOLERANCE`] /
    /// [`ABSOLUTE_TOLERANCE`].
    Tolerance,
    /// A possibly rounded decimal literal matched the other answer rounded to its
    /// number of places (see [`ROUNDED_DECIMAL_MIN_SIGNIFICANT_DIGITS`]).
    RoundedDecimal {
        /// Places the literal was rounded to.
        places: u32,
    },
}

/// The outcome of [`compare_numbers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NumericComparison {
    /// Whether the answers are numerically equal.
    pub equal: bool,
    /// The rule that decided.
    pub rule: NumericRule,
}

/// Evaluates a numeric answer, or `None` when it is not one (contains a variable, an
/// interval, a tuple, text, …).
///
/// The answer is first normalised as [`normalize`] does (so `x = \dfrac{-4}{2}`,
/// `7\%`, `\$7`, `30^\circ`, `6\text{ feet}` are numbers), after dropping LaTeX
/// spacing (`\,`, `\ `, `{,}`); then a trailing unit in `\text{…}`/`\mbox{…}` (with an
/// optional `^2`/`^3`), `$`, thousands separators (`1,000`, only in a plain literal)
/// and a final full stop are dropped. `14\frac{6}{7}` is a mixed number (14 + 6/7),
/// as in MATH's answers; other juxtapositions multiply (`2\sqrt{2}`, `3\pi`). Python's
/// float spelling (`6.72e-05`, `7.0`) is accepted, so CRAFT's float answers evaluate.
#[must_use]
pub fn evaluate(answer: &str) -> Option<NumericAnswer> {
    // Hendrycks' `\sqrt3` rule would turn `\sqrt[3]{x}` into `\sqrt{[}3]{x}`, so
    // indexed roots travel through normalisation under another name.
    let mut spaced = answer.replace("\\sqrt[", INDEXED_ROOT);
    for (from, to) in [
        ("\\displaystyle", ""),
        ("{,}", ""),
        ("\\,", " "),
        ("\\;", " "),
        ("\\:", " "),
        ("\\ ", " "),
    ] {
        spaced = spaced.replace(from, to);
    }
    let normalized = normalize(&spaced).ok()?;
    let mut s: String = strip_trailing_unit(&normalized)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '$')
        .collect();
    if s.ends_with('.') {
        s.pop();
    }
    if is_thousands_literal(&s) {
        s.retain(|c| c != ',');
    }
    let mut parser = Parser {
        src: s.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.expr()?;
    if parser.pos != s.len() {
        return None;
    }
    Some(NumericAnswer {
        value,
        literal: decimal_literal(&s),
    })
}

/// Compares two evaluated answers: exact rationals exactly; otherwise within the
/// tolerances; a possibly rounded decimal literal (see
/// [`ROUNDED_DECIMAL_MIN_SIGNIFICANT_DIGITS`]) also matches a non-literal answer that
/// rounds to it.
#[must_use]
pub fn compare_numbers(a: &NumericAnswer, b: &NumericAnswer) -> NumericComparison {
    let exact = matches!((&a.value, &b.value), (Number::Exact(_), Number::Exact(_)));
    let (equal, rule) = match (&a.value, &b.value) {
        (Number::Exact(x), Number::Exact(y)) => (x == y, NumericRule::ExactRational),
        _ => (
            a.value
                .to_f64()
                .zip(b.value.to_f64())
                .is_some_and(|(x, y)| within_tolerance(x, y)),
            NumericRule::Tolerance,
        ),
    };
    if equal {
        return NumericComparison { equal, rule };
    }
    let rounded = rounded_match(a, b).or_else(|| rounded_match(b, a));
    match rounded {
        Some(places) => NumericComparison {
            equal: true,
            rule: NumericRule::RoundedDecimal { places },
        },
        None => NumericComparison {
            equal: false,
            rule: if exact {
                NumericRule::ExactRational
            } else {
                NumericRule::Tolerance
            },
        },
    }
}

fn within_tolerance(x: f64, y: f64) -> bool {
    let difference = (x - y).abs();
    difference <= ABSOLUTE_TOLERANCE || difference <= RELATIVE_TOLERANCE * x.abs().max(y.abs())
}

/// `Some(places)` when `literal` is a possibly rounded decimal and `other`, which is
/// not a literal itself, rounds to it.
fn rounded_match(literal: &NumericAnswer, other: &NumericAnswer) -> Option<u32> {
    let shape = literal.literal?;
    if other.literal.is_some()
        || shape.places == 0
        || shape.significant_digits < ROUNDED_DECIMAL_MIN_SIGNIFICANT_DIGITS
    {
        return None;
    }
    let x = literal.value.to_f64()?;
    let y = other.value.to_f64()?;
    let half_unit = 0.5 * 10f64.powi(-i32::try_from(shape.places).ok()?);
    ((x - y).abs() <= half_unit * (1.0 + RELATIVE_TOLERANCE)).then_some(shape.places)
}

/// Drops a trailing `\text{…}`-style unit (optionally squared or cubed) when
/// something precedes it.
fn strip_trailing_unit(s: &str) -> &str {
    let body = ["^2", "^3", "^{2}", "^{3}"]
        .iter()
        .find_map(|power| s.strip_suffix(power))
        .unwrap_or(s);
    let Some(without_brace) = body.strip_suffix('}') else {
        return s;
    };
    for command in [
        "\\text{",
        "\\mbox{",
        "\\textnormal{",
        "\\textrm{",
        "\\mathrm{",
    ] {
        if let Some(start) = without_brace.rfind(command) {
            let unit = &without_brace[start + command.len()..];
            if start > 0 && !unit.contains(['{', '}']) {
                return &s[..start];
            }
        }
    }
    s
}

/// `1,000` or `-12,345.5`: digit groups of three after a leading group of one to three.
fn is_thousands_literal(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let integer_part = unsigned.split('.').next().unwrap_or_default();
    let fraction_ok = unsigned[integer_part.len()..]
        .strip_prefix('.')
        .is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let mut groups = integer_part.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
    let rest: Vec<&str> = groups.collect();
    fraction_ok
        && first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// The shape of `s` if it is a plain decimal literal: optional sign, digits, optional
/// fraction.
fn decimal_literal(s: &str) -> Option<DecimalLiteral> {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if integer.is_empty()
        || !all_digits(integer)
        || !all_digits(fraction)
        || unsigned.ends_with('.')
    {
        return None;
    }
    let digits: String = format!("{integer}{fraction}");
    let significant = digits.trim_start_matches('0').len();
    Some(DecimalLiteral {
        places: u32::try_from(fraction.len()).ok()?,
        significant_digits: u32::try_from(significant).ok()?,
    })
}

/// Recursive-descent evaluator over the cleaned answer's bytes.
///
/// ```text
/// expr  := term (('+' | '-') term)*
/// term  := unary (('*' | \cdot | \times | '/' | \div) unary | power)*   // juxtaposition multiplies
/// unary := ('-' | '+') unary | power
/// power := atom ('^' (group | unary))?
/// atom  := number [mixed fraction] | '(' expr ')' | group | \frac arg arg | \sqrt ['[' expr ']'] arg | \pi
/// arg   := group | digit
/// ```
struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        if matched {
            self.pos += 1;
        }
        matched
    }

    /// The letters of the command at the cursor (`\frac` → `frac`), without consuming.
    fn peek_command(&self) -> Option<&'a str> {
        let rest = self.src.get(self.pos..)?.strip_prefix(b"\\")?;
        let len = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        std::str::from_utf8(&rest[..len])
            .ok()
            .filter(|name| !name.is_empty())
    }

    fn eat_command(&mut self, names: &[&str]) -> bool {
        match self.peek_command() {
            Some(name) if names.contains(&name) => {
                self.pos += 1 + name.len();
                true
            }
            _ => false,
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn expr(&mut self) -> Option<Number> {
        self.enter()?;
        let mut acc = self.term()?;
        loop {
            if self.eat(b'+') {
                acc = add(acc, self.term()?)?;
            } else if self.eat(b'-') {
                acc = add(acc, negate(self.term()?))?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(acc)
    }

    fn term(&mut self) -> Option<Number> {
        let mut acc = self.unary()?;
        loop {
            if self.eat(b'*') || self.eat_command(&["cdot", "times"]) {
                acc = multiply(acc, self.unary()?)?;
            } else if self.eat(b'/') || self.eat_command(&["div"]) {
                acc = divide(acc, self.unary()?)?;
            } else if self.starts_atom() {
                acc = multiply(acc, self.power()?)?;
            } else {
                return Some(acc);
            }
        }
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            // A digit or point cannot follow a number (`1.2.3` is not a product).
            Some(b'(' | b'{') => true,
            Some(b'\\') => matches!(
                self.peek_command(),
                Some("frac" | "dfrac" | "tfrac" | "sqrt" | "indexedroot" | "pi")
            ),
            _ => false,
        }
    }

    fn unary(&mut self) -> Option<Number> {
        self.enter()?;
        let value = if self.eat(b'-') {
            negate(self.unary()?)
        } else if self.eat(b'+') {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Some(value)
    }

    fn power(&mut self) -> Option<Number> {
        let base = self.atom()?;
        if !self.eat(b'^') {
            return Some(base);
        }
        let exponent = if self.peek() == Some(b'{') {
            self.group()?
        } else {
            self.unary()?
        };
        power(base, exponent)
    }

    fn atom(&mut self) -> Option<Number> {
        match self.peek()? {
            b'0'..=b'9' | b'.' => {
                let (value, is_integer) = self.number()?;
                match (is_integer, self.mixed_fraction()) {
                    (true, Some(fraction)) => add(value, fraction),
                    _ => Some(value),
                }
            }
            b'(' => {
                self.pos += 1;
                let value = self.expr()?;
                self.eat(b')').then_some(value)
            }
            b'{' => self.group(),
            b'\\' => {
                let name = self.peek_command()?;
                self.pos += 1 + name.len();
                match name {
                    "frac" | "dfrac" | "tfrac" => {
                        let numerator = self.argument()?;
                        let denominator = self.argument()?;
                        divide(numerator, denominator)
                    }
                    "sqrt" | "indexedroot" => {
                        let index = if self.eat(b'[') {
                            let index = self.expr()?;
                            self.eat(b']').then_some(index)?
                        } else {
                            Number::Exact(BigRational::from_integer(2.into()))
                        };
                        root(self.argument()?, &index)
                    }
                    "pi" => Some(Number::Approx(std::f64::consts::PI)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn group(&mut self) -> Option<Number> {
        if !self.eat(b'{') {
            return None;
        }
        let value = self.expr()?;
        self.eat(b'}').then_some(value)
    }

    /// A `\frac` or `\sqrt` argument: a group, or a single digit (`\frac12`).
    fn argument(&mut self) -> Option<Number> {
        match self.peek()? {
            b'{' => self.group(),
            digit @ b'0'..=b'9' => {
                self.pos += 1;
                Some(Number::Exact(BigRational::from_integer(
                    (digit - b'0').into(),
                )))
            }
            _ => None,
        }
    }

    /// `\frac{6}{7}` right after an integer (`14\frac{6}{7}`), with plain integer
    /// arguments; the cursor is left alone otherwise.
    fn mixed_fraction(&mut self) -> Option<Number> {
        let start = self.pos;
        let fraction = self.plain_fraction();
        if fraction.is_none() {
            self.pos = start;
        }
        fraction
    }

    fn plain_fraction(&mut self) -> Option<Number> {
        if !self.eat_command(&["frac", "dfrac", "tfrac"]) {
            return None;
        }
        let mut parts = [BigInt::zero(), BigInt::zero()];
        for part in &mut parts {
            if !self.eat(b'{') {
                return None;
            }
            let digits = self.digits();
            if digits.is_empty() || !self.eat(b'}') {
                return None;
            }
            *part = digits.parse().ok()?;
        }
        let [numerator, denominator] = parts;
        (!denominator.is_zero()).then(|| Number::Exact(BigRational::new(numerator, denominator)))
    }

    fn digits(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.src[start..self.pos]).unwrap_or_default()
    }

    /// A decimal literal with an optional exponent (`6.72e-05`); also says whether it
    /// was a bare integer.
    fn number(&mut self) -> Option<(Number, bool)> {
        let integer = self.digits();
        let fraction = if self.eat(b'.') { self.digits() } else { "" };
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        let is_integer = fraction.is_empty() && self.src.get(self.pos - 1) != Some(&b'.');
        let exponent = self.exponent()?;
        let mantissa: BigInt = format!("{integer}{fraction}").parse().ok()?;
        let scale = exponent - i64::try_from(fraction.len()).ok()?;
        let ten_power = BigInt::from(10).pow(u32::try_from(scale.unsigned_abs()).ok()?);
        let value = if scale >= 0 {
            BigRational::from_integer(mantissa * ten_power)
        } else {
            BigRational::new(mantissa, ten_power)
        };
        Some((Number::Exact(value), is_integer && exponent == 0))
    }

    /// The `e-05` of `6.72e-05`, or 0 when none follows; `None` when out of range.
    fn exponent(&mut self) -> Option<i64> {
        let start = self.pos;
        if !(self.eat(b'e') || self.eat(b'E')) {
            return Some(0);
        }
        let negative = self.eat(b'-');
        if !negative {
            self.eat(b'+');
        }
        let digits = self.digits();
        if digits.is_empty() {
            self.pos = start;
            return Some(0);
        }
        let magnitude: i64 = digits.parse().ok().filter(|m| *m <= MAX_LITERAL_EXPONENT)?;
        Some(if negative { -magnitude } else { magnitude })
    }
}

fn approx(value: f64) -> Option<Number> {
    value.is_finite().then_some(Number::Approx(value))
}

fn negate(value: Number) -> Number {
    match value {
        Number::Exact(r) => Number::Exact(-r),
        Number::Approx(x) => Number::Approx(-x),
    }
}

fn add(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Exact(x), Number::Exact(y)) => Some(Number::Exact(x + y)),
        (a, b) => approx(a.to_f64()? + b.to_f64()?),
    }
}

fn multiply(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Exact(x), Number::Exact(y)) => Some(Number::Exact(x * y)),
        (a, b) => approx(a.to_f64()? * b.to_f64()?),
    }
}

fn divide(a: Number, b: Number) -> Option<Number> {
    match (a, b) {
        (Number::Exact(_), Number::Exact(y)) if y.is_zero() => None,
        (Number::Exact(x), Number::Exact(y)) => Some(Number::Exact(x / y)),
        (a, b) => approx(a.to_f64()? / b.to_f64()?),
    }
}

fn power(base: Number, exponent: Number) -> Option<Number> {
    if let (Number::Exact(b), Number::Exact(e)) = (&base, &exponent) {
        // b^(p/q) = (b^(1/q))^p, exact when b has an exact q-th root.
        let exact = u32::try_from(e.denom())
            .ok()
            .filter(|q| *q <= MAX_EXACT_ROOT_INDEX)
            .and_then(|q| exact_root(b, q))
            .and_then(|rooted| exact_integer_power(&rooted, e.numer()));
        if let Some(value) = exact {
            return Some(Number::Exact(value));
        }
    }
    let (b, e) = (base.to_f64()?, exponent.to_f64()?);
    approx(b.powf(e))
}

/// `base^exponent` for an integer exponent, when the result stays reasonably small.
fn exact_integer_power(base: &BigRational, exponent: &BigInt) -> Option<BigRational> {
    let magnitude = u32::try_from(exponent.abs()).ok()?;
    let bits = base.numer().bits().max(base.denom().bits());
    if bits.saturating_mul(u64::from(magnitude)) > MAX_EXACT_POWER_BITS {
        return None;
    }
    let raised = BigRational::new(base.numer().pow(magnitude), base.denom().pow(magnitude));
    if exponent.is_negative() {
        (!raised.is_zero()).then(|| raised.recip())
    } else {
        Some(raised)
    }
}

/// The exact `index`-th root of a rational, if it is rational.
fn exact_root(value: &BigRational, index: u32) -> Option<BigRational> {
    if index == 0 {
        return None;
    }
    if index == 1 {
        return Some(value.clone());
    }
    if value.is_negative() {
        return (index % 2 == 1)
            .then(|| exact_root(&-value, index))
            .flatten()
            .map(|r| -r);
    }
    let numerator = value.numer().nth_root(index);
    let denominator = value.denom().nth_root(index);
    let exact = numerator.pow(index) == *value.numer() && denominator.pow(index) == *value.denom();
    exact.then(|| BigRational::new(numerator, denominator))
}

/// `\sqrt[index]{value}`: exact where the root is rational, approximate otherwise.
fn root(value: Number, index: &Number) -> Option<Number> {
    let index_value = match index {
        Number::Exact(i) if i.is_integer() && i.is_positive() => i.to_integer(),
        _ => {
            return power(
                value,
                divide(Number::Exact(BigRational::one()), index.clone())?,
            );
        }
    };
    let small_index = u32::try_from(&index_value)
        .ok()
        .filter(|n| *n <= MAX_EXACT_ROOT_INDEX);
    if let (Number::Exact(v), Some(n)) = (&value, small_index)
        && let Some(exact) = exact_root(v, n)
    {
        return Some(Number::Exact(exact));
    }
    let x = value.to_f64()?;
    let n = index_value.to_f64()?;
    let odd = (&index_value % 2u32).is_one();
    if x < 0.0 && odd {
        approx(-(-x).powf(n.recip()))
    } else {
        approx(x.powf(n.recip()))
    }
}
