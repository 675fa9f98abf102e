//! A [`SymbolicChecker`] that asks sympy, in a sandbox session, whether two LaTeX
//! answers are equal.
//!
//! The answers are model-written, so they are never handed to a parser that
//! evaluates code as they are: they are first rewritten here into a small
//! arithmetic language (numbers, single-letter symbols, a few named functions,
//! operators, brackets) and rejected if anything else remains. Only that text
//! reaches sympy's `parse_expr`, with no builtins, in the sandbox.

use std::sync::{Arc, LazyLock};

use agentopt_math::{SymbolicChecker, SymbolicVerdict};
use agentopt_sandbox::{Executor, LearnedFunction};
use async_trait::async_trait;
use serde_json::{Map, json};
use tokio::sync::Mutex;

use crate::executor::ExecutorFactory;

/// Names allowed through to sympy besides single letters.
const FUNCTIONS: &[&str] = &[
    "sqrt", "root", "pi", "oo", "sin", "cos", "tan", "log", "exp",
];

const CHECK_NAME: &str = "agentopt_equivalent";

const CHECK_CODE: &str = r#"
def agentopt_equivalent(a, b):
    import string
    import sympy
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations, implicit_multiplication_application
    names = {letter: sympy.Symbol(letter) for letter in string.ascii_letters}
    names.update(sqrt=sympy.sqrt, root=sympy.root, pi=sympy.pi, oo=sympy.oo, sin=sympy.sin,
                 cos=sympy.cos, tan=sympy.tan, log=sympy.log, exp=sympy.exp)
    allowed = {"__builtins__": {}, "Integer": sympy.Integer, "Float": sympy.Float,
               "Rational": sympy.Rational, "Symbol": sympy.Symbol, "Function": sympy.Function}
    transformations = standard_transformations + (implicit_multiplication_application,)
    def parse(text):
        return parse_expr(text, local_dict=dict(names), global_dict=dict(allowed),
                          transformations=transformations, evaluate=True)
    for left, right in zip(a, b):
        difference = sympy.simplify(parse(left) - parse(right))
        if difference != 0:
            return "different"
    return "equivalent"
"#;

/// Checks algebraic equality with sympy in a sandbox session, started on first use
/// and kept for later checks.
pub struct SandboxSymbolicChecker {
    factory: Arc<dyn ExecutorFactory>,
    session: Mutex<Option<Box<dyn Executor>>>,
}

impl std::fmt::Debug for SandboxSymbolicChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSymbolicChecker")
            .finish_non_exhaustive()
    }
}

impl SandboxSymbolicChecker {
    /// A checker running sympy in sessions from `factory`.
    pub fn new(factory: Arc<dyn ExecutorFactory>) -> Self {
        Self {
            factory,
            session: Mutex::new(None),
        }
    }
}

#[async_trait]
impl SymbolicChecker for SandboxSymbolicChecker {
    async fn equivalent(&self, candidate: &str, reference: &str) -> SymbolicVerdict {
        let (Some(left), Some(right)) = (to_sympy_parts(candidate), to_sympy_parts(reference))
        else {
            return SymbolicVerdict::Undecided(format!(
                "not a supported expression: {candidate:?} vs {reference:?}"
            ));
        };
        if left.brackets != right.brackets || left.items.len() != right.items.len() {
            return SymbolicVerdict::NotEquivalent;
        }
        let mut guard = self.session.lock().await;
        let session = match guard.take() {
            Some(session) => session,
            None => match self.factory.start().await {
                Ok(session) => session,
                Err(error) => return SymbolicVerdict::Undecided(error.to_string()),
            },
        };
        let session = guard.insert(session);
        let function = LearnedFunction::new(CHECK_NAME, CHECK_CODE);
        let mut arguments = Map::new();
        arguments.insert("a".to_owned(), json!(left.items));
        arguments.insert("b".to_owned(), json!(right.items));
        match session.call_function(&function, &arguments).await {
            Ok(outcome) => match (outcome.value.as_deref(), outcome.error_text()) {
                (Some("'equivalent'"), None) => SymbolicVerdict::Equivalent,
                (Some("'different'"), None) => SymbolicVerdict::NotEquivalent,
                (value, error) => SymbolicVerdict::Undecided(
                    error.unwrap_or_else(|| format!("unexpected result {value:?}")),
                ),
            },
            Err(error) => {
                *guard = None;
                SymbolicVerdict::Undecided(error.to_string())
            }
        }
    }
}

/// An answer as a bracketed list of sympy expressions (one item when not a list).
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    brackets: Option<(char, char)>,
    items: Vec<String>,
}

fn to_sympy_parts(latex: &str) -> Option<Parts> {
    let text = latex.trim().trim_matches('$').trim();
    let (brackets, inner) = match (text.chars().next(), text.chars().last()) {
        (Some(open @ ('(' | '[')), Some(close @ (')' | ']'))) if top_level_commas(text) => {
            (Some((open, close)), &text[1..text.len() - 1])
        }
        _ => (None, text),
    };
    let items = split_top_level(inner)
        .into_iter()
        .map(to_sympy)
        .collect::<Option<Vec<_>>>()?;
    Some(Parts { brackets, items })
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

static COMMAND: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\\([a-zA-Z]+)").expect("constant pattern"));

/// Rewrites one LaTeX expression into the allowed sympy subset, or `None`.
fn to_sympy(latex: &str) -> Option<String> {
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
    let text = rewrite_commands(&text)?;
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
fn rewrite_commands(text: &str) -> Option<String> {
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
                    rewrite_commands(numerator)?,
                    rewrite_commands(denominator)?
                ));
                after
            }
            "sqrt" => {
                if let Some(index_text) = after.strip_prefix('[') {
                    let end = index_text.find(']')?;
                    let (radicand, after) = argument(&index_text[end + 1..])?;
                    out.push_str(&format!(
                        "root({}, {})",
                        rewrite_commands(radicand)?,
                        rewrite_commands(&index_text[..end])?
                    ));
                    after
                } else {
                    let (radicand, after) = argument(after)?;
                    out.push_str(&format!("sqrt({})", rewrite_commands(radicand)?));
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
        if FUNCTIONS.contains(&run) {
            run.to_owned()
        } else {
            run.chars().map(String::from).collect::<Vec<_>>().join("*")
        }
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(latex: &str, expected: Option<&str>) {
        assert_eq!(to_sympy(latex).as_deref(), expected, "{latex}");
    }

    #[test]
    fn rewrites_latex_into_the_allowed_subset() {
        check("\\frac{1}{2}x", Some("((1)/(2))x"));
        check("\\dfrac12", Some("((1)/(2))"));
        check("2\\sqrt{2}", Some("2sqrt(2)"));
        check("\\sqrt[3]{x}", Some("root(x, 3)"));
        check("x^{2}+2xy", Some("x**(2)+2x*y"));
        check("\\pi r^2", Some(" pi  r**2"));
        check("__import__('os')", None);
        check("\\input{x}", None);
        check("a = b", None);
    }

    #[test]
    fn splits_bracketed_lists() {
        let parts = to_sympy_parts("[1, 3)").map(|parts| (parts.brackets, parts.items));
        assert_eq!(
            parts,
            Some((Some(('[', ')')), vec!["1".to_owned(), " 3".to_owned()]))
        );
        let single = to_sympy_parts("(x+1)").map(|parts| parts.items);
        assert_eq!(single, Some(vec!["(x+1)".to_owned()]));
    }
}
