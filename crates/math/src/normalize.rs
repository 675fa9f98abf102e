//! Hendrycks' MATH answer normalisation (`_strip_string` in AG2's `math_utils.py`),
//! rule for rule and in the same order, and the AG2 comparison built on it.

use crate::error::MathError;

/// Normalises a MATH answer exactly as AG2's `_strip_string` does, applying in order:
/// drop newlines; drop `\!`; `\\` → `\`; `tfrac`/`dfrac` → `frac`; drop `\left` and
/// `\right`; drop `^{\circ}` and `^\circ`; drop `\$`; drop trailing units after
/// `\text{ `; drop `\%` and `%`; ` .` → ` 0.` and `{.` → `{0.`; a leading `.` gets a
/// `0`; a left-hand side of at most two characters before a single `=` is dropped;
/// `\sqrt3` → `\sqrt{3}`; drop spaces; `\frac12` → `\frac{1}{2}`; `0.5` →
/// `\frac{1}{2}`; `a/b` (canonical integers) → `\frac{a}{b}`.
///
/// # Errors
/// Where AG2 raises (and `is_equiv` falls back to comparing raw strings):
/// [`MathError::AmbiguousUnits`] when `\text{ ` occurs more than once, and
/// [`MathError::DanglingCommand`] when a `\sqrt` or `\frac` has nothing after it.
pub fn normalize(answer: &str) -> Result<String, MathError> {
    let mut s = answer.replace('\n', "");
    s = s.replace("\\!", "");
    s = s.replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "");
    s = s.replace("\\$", "");
    s = remove_right_units(s)?;
    s = s.replace("\\%", "").replace('%', "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if s.is_empty() {
        return Ok(s);
    }
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    s = drop_short_left_hand_side(s);
    s = fix_sqrt(&s)?;
    s = s.replace(' ', "");
    s = fix_fracs(s)?;
    if s == "0.5" {
        s = "\\frac{1}{2}".to_owned();
    }
    Ok(fix_a_slash_b(s))
}

/// AG2's `is_equiv`: both answers normalised and compared as strings; where
/// normalisation fails on either side, the raw strings are compared.
#[must_use]
pub fn is_equiv(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Ok(na), Ok(nb)) => na == nb,
        _ => a == b,
    }
}

fn remove_right_units(s: String) -> Result<String, MathError> {
    const UNITS: &str = "\\text{ ";
    let occurrences = s.matches(UNITS).count();
    match occurrences {
        0 => Ok(s),
        1 => Ok(s.split(UNITS).next().unwrap_or_default().to_owned()),
        _ => Err(MathError::AmbiguousUnits {
            answer: s,
            occurrences,
        }),
    }
}

/// `k = 5` → ` 5`: only with exactly one `=` and a left side of at most two characters.
fn drop_short_left_hand_side(s: String) -> String {
    let mut parts = s.split('=');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(lhs), Some(rhs), None) if lhs.chars().count() <= 2 => rhs.to_owned(),
        _ => s,
    }
}

fn fix_sqrt(s: &str) -> Result<String, MathError> {
    let mut splits = s.split("\\sqrt");
    let mut out = splits.next().unwrap_or_default().to_owned();
    for split in splits {
        out.push_str("\\sqrt");
        let mut chars = split.chars();
        match chars.next() {
            Some(first) if first != '{' => {
                out.push('{');
                out.push(first);
                out.push('}');
                out.push_str(chars.as_str());
            }
            Some(_) => out.push_str(split),
            None => return Err(dangling("\\sqrt", s)),
        }
    }
    Ok(out)
}

fn dangling(command: &'static str, answer: &str) -> MathError {
    MathError::DanglingCommand {
        command,
        answer: answer.to_owned(),
    }
}

/// `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}`; a `\frac` followed by
/// one character leaves the whole string unchanged, one followed by nothing is an
/// error (both as in AG2).
fn fix_fracs(s: String) -> Result<String, MathError> {
    let mut substrs = s.split("\\frac");
    let mut out = substrs.next().unwrap_or_default().to_owned();
    for substr in substrs {
        out.push_str("\\frac");
        if substr.is_empty() {
            return Err(dangling("\\frac", &s));
        }
        if substr.starts_with('{') {
            out.push_str(substr);
            continue;
        }
        let mut chars = substr.chars();
        let (Some(a), Some(b)) = (chars.next(), chars.next()) else {
            return Ok(s);
        };
        out.push('{');
        out.push(a);
        out.push('}');
        if b == '{' {
            out.push(b);
        } else {
            out.push('{');
            out.push(b);
            out.push('}');
        }
        out.push_str(chars.as_str());
    }
    Ok(out)
}

/// `3/4` → `\frac{3}{4}` when both sides are integers written canonically (what
/// Python's `"{}/{}".format(int(a), int(b)) == string` check accepts).
fn fix_a_slash_b(s: String) -> String {
    let mut parts = s.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) if is_canonical_int(a) && is_canonical_int(b) => {
            format!("\\frac{{{a}}}{{{b}}}")
        }
        _ => s,
    }
}

fn is_canonical_int(s: &str) -> bool {
    // CPython (3.11+) refuses to convert integers longer than this from text.
    const PYTHON_INT_MAX_STR_DIGITS: usize = 4300;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.len() > PYTHON_INT_MAX_STR_DIGITS {
        return false;
    }
    let canonical_digits = digits == "0" && digits.len() == s.len()
        || digits.starts_with(|c: char| matches!(c, '1'..='9'));
    canonical_digits && digits.bytes().all(|b| b.is_ascii_digit())
}
