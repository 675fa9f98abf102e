//! Fenced code blocks in model replies, with AG2's regular expressions, and the
//! language of untagged code.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use rustpython_parser::Parse;
use rustpython_parser::ast::{self, Expr, Stmt};

/// AG2's `CODE_BLOCK_PATTERN`, with Python's `re.DOTALL`.
const FENCED: &str = r"```[ \t]*(\w+)?[ \t]*\r?\n(.*?)\r?\n[ \t]*```";

static FENCED_BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?s){FENCED}")).expect("constant pattern compiles"));
static FENCED_OR_INLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("(?s){FENCED}|`([^`]+)`")).expect("constant pattern compiles")
});

/// The language of a code block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lang {
    /// A fence with no language tag, or an inline span.
    Untagged,
    /// Not code: the single block [`extract_code`] returns for text without fences
    /// (AG2's `"unknown"`), or what [`infer_lang`] says of text that is not code.
    Unknown,
    /// Tagged `python`, `py` or `python3` (any case), or inferred.
    Python,
    /// Tagged `sh`, `bash`, `shell` or `zsh` (any case), or inferred.
    Shell,
    /// Any other tag, kept as written.
    Other(String),
}

impl Lang {
    /// The language a fence tag names.
    #[must_use]
    pub fn from_tag(tag: &str) -> Self {
        match tag.to_ascii_lowercase().as_str() {
            "" => Self::Untagged,
            "python" | "py" | "python3" => Self::Python,
            "sh" | "bash" | "shell" | "zsh" => Self::Shell,
            _ => Self::Other(tag.to_owned()),
        }
    }

    /// AG2's spelling: `""`, `"unknown"`, `"python"`, `"sh"`, or the tag.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Untagged => "",
            Self::Unknown => "unknown",
            Self::Python => "python",
            Self::Shell => "sh",
            Self::Other(tag) => tag,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One code block found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeBlock {
    /// The language its fence names.
    pub lang: Lang,
    /// The code between the fences.
    pub code: String,
}

/// Extracts code blocks as AG2's `extract_code` does.
///
/// Without `detect_inline`: every fenced block (language tag optional, `\r\n` line
/// ends and indented closing fences accepted), code kept verbatim; a text with no
/// fenced block yields one [`Lang::Unknown`] block holding the whole text.
///
/// With `detect_inline`: fenced blocks and single-backtick spans in order of
/// appearance, each trimmed (as Python's `str.strip`), inline spans
/// [`Lang::Untagged`], empty fenced blocks skipped; a text with neither yields no
/// block (AG2 does not add the `unknown` fallback in this mode).
#[must_use]
pub fn extract_code(text: &str, detect_inline: bool) -> Vec<CodeBlock> {
    let pattern = if detect_inline {
        &*FENCED_OR_INLINE
    } else {
        &*FENCED_BLOCK
    };
    let blocks = pattern.captures_iter(text).filter_map(|caps| {
        let tag = caps.get(1).map_or("", |m| m.as_str());
        match (caps.get(2), caps.get(3)) {
            (Some(fenced), _) if !detect_inline => Some(CodeBlock {
                lang: Lang::from_tag(tag),
                code: fenced.as_str().to_owned(),
            }),
            (Some(fenced), _) if !fenced.as_str().is_empty() => Some(CodeBlock {
                lang: Lang::from_tag(python_strip(tag)),
                code: python_strip(fenced.as_str()).to_owned(),
            }),
            (None, Some(inline)) => Some(CodeBlock {
                lang: Lang::Untagged,
                code: python_strip(inline.as_str()).to_owned(),
            }),
            _ => None,
        }
    });
    let blocks: Vec<CodeBlock> = blocks.collect();
    if blocks.is_empty() && !detect_inline {
        return vec![CodeBlock {
            lang: Lang::Unknown,
            code: text.to_owned(),
        }];
    }
    blocks
}

/// Python's `str.strip()`: Unicode whitespace plus the separators U+001C..U+001F,
/// which Python counts as whitespace and Rust does not.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// The language of untagged code, as AG2's `infer_lang`: text starting with
/// `python `, `pip` or `python3 ` is a shell command; text that parses as a Python
/// module is Python; anything else is [`Lang::Unknown`].
///
/// Parsing uses a real Python grammar (RustPython's parser), plus CPython's check of
/// assignment targets, so `x + y = 0` and `1:2` (math, not code) are not Python. It
/// still accepts a few programs that CPython's `compile` rejects for semantic reasons,
/// such as `return` outside a function.
#[must_use]
pub fn infer_lang(code: &str) -> Lang {
    if ["python ", "pip", "python3 "]
        .iter()
        .any(|prefix| code.starts_with(prefix))
    {
        return Lang::Shell;
    }
    // CPython refuses source containing NUL bytes before it parses anything.
    let parses = !code.contains('\0')
        && ast::Suite::parse(code, "<infer_lang>").is_ok_and(|suite| targets_assignable(&suite));
    if parses { Lang::Python } else { Lang::Unknown }
}

/// CPython rejects, while parsing, assignments to what cannot be assigned
/// (`x + y = 0`, `1: 2`, `del f()`); RustPython's grammar accepts them.
fn targets_assignable(body: &[Stmt]) -> bool {
    body.iter().all(|stmt| match stmt {
        Stmt::Assign(s) => s.targets.iter().all(|t| assignable(t, true)),
        Stmt::AugAssign(s) => plain_target(&s.target),
        Stmt::AnnAssign(s) => plain_target(&s.target),
        Stmt::Delete(s) => s.targets.iter().all(|t| assignable(t, false)),
        Stmt::For(s) => {
            assignable(&s.target, true)
                && targets_assignable(&s.body)
                && targets_assignable(&s.orelse)
        }
        Stmt::AsyncFor(s) => {
            assignable(&s.target, true)
                && targets_assignable(&s.body)
                && targets_assignable(&s.orelse)
        }
        Stmt::While(s) => targets_assignable(&s.body) && targets_assignable(&s.orelse),
        Stmt::If(s) => targets_assignable(&s.body) && targets_assignable(&s.orelse),
        Stmt::With(s) => with_targets_assignable(&s.items) && targets_assignable(&s.body),
        Stmt::AsyncWith(s) => with_targets_assignable(&s.items) && targets_assignable(&s.body),
        Stmt::Try(s) => {
            targets_assignable(&s.body)
                && handlers_assignable(&s.handlers)
                && targets_assignable(&s.orelse)
                && targets_assignable(&s.finalbody)
        }
        Stmt::TryStar(s) => {
            targets_assignable(&s.body)
                && handlers_assignable(&s.handlers)
                && targets_assignable(&s.orelse)
                && targets_assignable(&s.finalbody)
        }
        Stmt::FunctionDef(s) => targets_assignable(&s.body),
        Stmt::AsyncFunctionDef(s) => targets_assignable(&s.body),
        Stmt::ClassDef(s) => targets_assignable(&s.body),
        Stmt::Match(s) => s.cases.iter().all(|case| targets_assignable(&case.body)),
        _ => true,
    })
}

fn with_targets_assignable(items: &[ast::WithItem]) -> bool {
    items.iter().all(|item| {
        item.optional_vars
            .as_deref()
            .is_none_or(|v| assignable(v, true))
    })
}

fn handlers_assignable(handlers: &[ast::ExceptHandler]) -> bool {
    handlers
        .iter()
        .all(|ast::ExceptHandler::ExceptHandler(handler)| targets_assignable(&handler.body))
}

/// A name, attribute or subscript: what augmented and annotated assignments accept.
fn plain_target(target: &Expr) -> bool {
    matches!(
        target,
        Expr::Name(_) | Expr::Attribute(_) | Expr::Subscript(_)
    )
}

/// An assignment (or, without starred items, `del`) target.
fn assignable(target: &Expr, allow_starred: bool) -> bool {
    match target {
        Expr::Starred(starred) => allow_starred && assignable(&starred.value, allow_starred),
        Expr::Tuple(tuple) => tuple.elts.iter().all(|e| assignable(e, allow_starred)),
        Expr::List(list) => list.elts.iter().all(|e| assignable(e, allow_starred)),
        other => plain_target(other),
    }
}
