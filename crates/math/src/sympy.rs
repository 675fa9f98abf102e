//! LaTeX answers rewritten into a small arithmetic language that sympy's
//! `parse_expr` reads safely: numbers, single-letter symbols, the names in
//! [`SYMPY_NAMES`], `+ - * / **`, brackets and commas. Anything else is refused, so
//! model-written text never reaches a parser that evaluates code as it is.
//!
//! Pure text: the sympy call itself lives where processes may be started (the
//! `agentopt-mathchat` crate's sandbox checker).

use std::sync::LazyLock;

/// Names allowed through to sympy besides single letters. A checker must bind
/// exactly these (to `sympy.sqrt`, `sympy.root`, `sympy.pi`, `sympy.oo`, …).
pub const SYMPY_NAMES: &[&str] = &[
    "sqrt", "root", "pi", "oo", "sin", "cos", "tan", "log", "exp",
];

/// An answer as sympy expressions: one item, or the items of a bracketed list or
/// interval (`[1, 3)` keeps its brackets so `[1, 3)` and `(1, 3)` differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SympyAnswer {
    /// The opening and closing bracket of a list or interval; `None` for one
    /// expression.
    pub brackets: Option<(char, char)>,
    /// The expressions, in the allowed subset, in order.
    pub items: Vec<String>,
}

/// Rewrites a whole answer (surrounding `$` removed, a top-level bracketed list
/// split at its commas), or `None` when any item leaves the allowed subset.
#[must_use]
pub fn latex_answer_to_sympy(latex: &str) -> Option<SympyAnswer> {
    let text = latex.trim().trim_matches('$').trim();
    let (brackets, inner) = match (text.chars().next(), text.chars().last()) {
        (Some(open @ ('(' | '[')), Some(close @ (')' | ']'))) if top_level_commas(text) => {
            (Some((open, close)), &text[1..text.len() - 1])
        }
        _ => (None, text),
    };
    let items = split_top_level(inner)
        .into_iter()
        .map(latex_to_sympy)
        .collect::<Option<Vec<_>>>()?;
    Some(SympyAnswer { brackets, items })
}

/// Whether `text` (bracketed) has a comma at depth one.
fn top_level_commas(text: &str) -> bool {
    let mut depth = 0i32;
    for character in text.chars() {
        match character {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 1 => return true,
            _ => {}
        }
    }
    false
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Deepest nesting of `\frac` and `\sqrt` rewritten; deeper answers are refused
/// rather than recursed into (no real answer nests this deep).
const MAX_NESTING: usize = 32;

static COMMAND: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\\([a-zA-Z]+)").expect("constant pattern"));

/// Rewrites one LaTeX expression into the allowed sympy subset, or `None` when
/// something outside it remains (`\\input`, `=`, quotes, underscores, …).
#[must_use]
pub fn latex_to_sympy(latex: &str) -> Option<String> {
    let mut text = latex.replace("\\left", "").replace("\\right", "");
    for (from, to) in [
        ("\\!", ""),
        ("\\,", ""),
        ("\\ ", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\cdot", "*"),
        ("\\times", "*"),
        ("\\div", "/"),
        ("^\\circ", ""),
    ] {
        text = text.replace(from, to);
    }
    let text = rewrite_commands(&text, 0)?;
    let text = text.replace('{', "(").replace('}', ")").replace('^', "**");
    if text.trim().is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " +-*/().,".contains(c))
    {
        return None;
    }
    Some(split_letter_runs(&text))
}

/// `\frac{a}{b}` → `((a)/(b))`, `\sqrt{x}` → `sqrt(x)`, `\sqrt[n]{x}` → `root(x, n)`,
/// `\pi` → `pi`, `\infty` → `oo`, `\sin` → `sin`…; any other command → `None`.
fn rewrite_commands(text: &str, depth: usize) -> Option<String> {
    if depth > MAX_NESTING {
        return None;
    }
    let inner = |text: &str| rewrite_commands(text, depth + 1);
    let mut out = String::new();
    let mut rest = text;
    while let Some(found) = COMMAND.captures(rest) {
        let whole = found.get(0)?;
        out.push_str(&rest[..whole.start()]);
        let after = &rest[whole.end()..];
        rest = match &found[1] {
            "frac" => {
                let (numerator, after) = argument(after)?;
                let (denominator, after) = argument(after)?;
                out.push_str(&format!(
                    "(({})/({}))",
                    inner(numerator)?,
                    inner(denominator)?
                ));
                after
            }
            "sqrt" => {
                if let Some(index_text) = after.strip_prefix('[') {
                    let end = index_text.find(']')?;
                    let (radicand, after) = argument(&index_text[end + 1..])?;
                    out.push_str(&format!(
                        "root({}, {})",
                        inner(radicand)?,
                        inner(&index_text[..end])?
                    ));
                    after
                } else {
                    let (radicand, after) = argument(after)?;
                    out.push_str(&format!("sqrt({})", inner(radicand)?));
                    after
                }
            }
            "pi" => {
                out.push_str(" pi ");
                after
            }
            "infty" => {
                out.push_str(" oo ");
                after
            }
            name @ ("sin" | "cos" | "tan" | "log" | "exp") => {
                out.push_str(&format!(" {name} "));
                after
            }
            "ln" => {
                out.push_str(" log ");
                after
            }
            _ => return None,
        };
    }
    out.push_str(rest);
    Some(out)
}

/// One TeX argument: a braced group or a single character.
fn argument(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        let mut depth = 1;
        for (index, character) in inner.char_indices() {
            match character {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((&inner[..index], &inner[index + 1..]));
                    }
                }
                _ => {}
            }
        }
        None
    } else {
        let first = text.chars().next()?;
        Some(text.split_at(first.len_utf8()))
    }
}

/// Letter runs that are not allowed function names become products of single
/// letters (`xy` → `x*y`), so no other name reaches the parser.
fn split_letter_runs(text: &str) -> String {
    static RUN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"[a-zA-Z]+").expect("constant pattern"));
    RUN.replace_all(text, |found: &regex::Captures<'_>| {
        let run = &found[0];
        if SYMPY_NAMES.contains(&run) {
            run.to_owned()
        } else {
            run.chars().map(String::from).collect::<Vec<_>>().join("*")
        }
    })
    .into_owned()
}
