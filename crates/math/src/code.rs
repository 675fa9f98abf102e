//! Fenced code blocks in model replies, with AG2's regular expressions, and the
//! language of untagged code.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use rustpython_parser::ast::{self, Expr, Stmt};
use rustpython_parser::lexer::lex;
use rustpython_parser::{Mode, Parse, Tok};

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
/// block (AG2 does not add the `unknown` fallback in this mode). Unlike AG2, which
/// compiles this combined pattern without `re.DOTALL`, fenced blocks still span
/// lines here instead of falling apart into inline spans.
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
/// Parsing uses a real Python grammar (RustPython's parser), plus CPython's limits on
/// nesting and its compile-time statement checks (assignable targets, so `x + y = 0`
/// and `1:2`, math rather than code, are not Python; `return`, `break`, `continue`
/// and `nonlocal` in place). Still accepted, unlike CPython: `yield`/`await` nested
/// in a larger expression outside a function, starred expressions misplaced inside
/// one, and `global`/`nonlocal` binding errors.
#[must_use]
pub fn infer_lang(code: &str) -> Lang {
    if ["python ", "pip", "python3 "]
        .iter()
        .any(|prefix| code.starts_with(prefix))
    {
        return Lang::Shell;
    }
    // CPython refuses source containing NUL bytes before it parses anything; RustPython
    // measures source positions in `u32`.
    let code = blank_whitespace_lines(code);
    let code = code.as_ref();
    let parses = !code.contains('\0')
        && u32::try_from(code.len()).is_ok()
        && within_cpython_nesting_limits(code)
        && ast::Suite::parse(code, "<infer_lang>")
            .is_ok_and(|suite| statements_valid(&suite, Scope::MODULE));
    if parses { Lang::Python } else { Lang::Unknown }
}

/// Empties lines holding only spaces, tabs and form feeds: CPython ignores them,
/// RustPython's lexer rejects a tab after a space even there.
fn blank_whitespace_lines(code: &str) -> Cow<'_, str> {
    let blank = |line: &str| line.trim_matches([' ', '\t', '\x0c', '\r']).is_empty();
    if !code.split('\n').any(|line| !line.is_empty() && blank(line)) {
        return Cow::Borrowed(code);
    }
    let lines: Vec<&str> = code
        .split('\n')
        .map(|line| if blank(line) { "" } else { line })
        .collect();
    Cow::Owned(lines.join("\n"))
}

/// CPython's tokenizer allows 200 open brackets (`MAXLEVEL`).
const MAX_BRACKET_DEPTH: usize = 200;
/// CPython's tokenizer allows fewer than 100 indentation levels (`MAXINDENT`).
const MAX_INDENT_DEPTH: usize = 99;
/// CPython's recursive compiler gives up on operator chains a few thousand long
/// (`1+1+…`, `a.b.b…`, `- - -1`); this bound is below that.
const MAX_OPERATORS_PER_LOGICAL_LINE: usize = 2000;

/// Whether `code` nests no deeper than CPython accepts. Checked on tokens before
/// parsing because RustPython's parser and its AST recurse on nesting and would
/// overflow the stack long before they reject such source.
fn within_cpython_nesting_limits(code: &str) -> bool {
    let (mut brackets, mut indents, mut operators) = (0usize, 0usize, 0usize);
    for token in lex(code, Mode::Module) {
        let Ok((token, _)) = token else { return false };
        match token {
            Tok::Lpar | Tok::Lsqb | Tok::Lbrace => brackets += 1,
            Tok::Rpar | Tok::Rsqb | Tok::Rbrace => brackets = brackets.saturating_sub(1),
            Tok::Indent => indents += 1,
            Tok::Dedent => indents = indents.saturating_sub(1),
            Tok::Newline => operators = 0,
            Tok::Name { .. }
            | Tok::Int { .. }
            | Tok::Float { .. }
            | Tok::Complex { .. }
            | Tok::String { .. }
            | Tok::Comma
            | Tok::Colon => {}
            _ => operators += 1,
        }
        if brackets > MAX_BRACKET_DEPTH
            || indents > MAX_INDENT_DEPTH
            || operators > MAX_OPERATORS_PER_LOGICAL_LINE
        {
            return false;
        }
    }
    true
}

/// Where a statement sits, for the checks CPython's compiler makes.
#[derive(Clone, Copy)]
struct Scope {
    module: bool,
    function: bool,
    in_loop: bool,
}

impl Scope {
    const MODULE: Self = Self {
        module: true,
        function: false,
        in_loop: false,
    };

    fn function() -> Self {
        Self {
            module: false,
            function: true,
            in_loop: false,
        }
    }

    fn class() -> Self {
        Self {
            module: false,
            function: false,
            in_loop: false,
        }
    }

    fn looping(self) -> Self {
        Self {
            in_loop: true,
            ..self
        }
    }
}

/// The statement checks CPython makes while compiling and RustPython's grammar does
/// not: assignment targets must be assignable (`x + y = 0`, `1: 2`, `del f()`),
/// `return` (and a `yield` or `await` statement) needs a function, `break`/`continue` a
/// loop, `nonlocal` a nested scope; a starred expression cannot stand alone.
fn statements_valid(body: &[Stmt], scope: Scope) -> bool {
    body.iter().all(|stmt| match stmt {
        Stmt::Assign(s) => s.targets.iter().all(|t| assignable(t, true)),
        Stmt::AugAssign(s) => plain_target(&s.target),
        Stmt::AnnAssign(s) => plain_target(&s.target),
        Stmt::Delete(s) => s.targets.iter().all(|t| assignable(t, false)),
        Stmt::Return(_) => scope.function,
        Stmt::Break(_) | Stmt::Continue(_) => scope.in_loop,
        Stmt::Nonlocal(_) => !scope.module,
        Stmt::Expr(s) => match s.value.as_ref() {
            Expr::Starred(_) => false,
            Expr::Yield(_) | Expr::YieldFrom(_) | Expr::Await(_) => scope.function,
            _ => true,
        },
        Stmt::For(s) => {
            assignable(&s.target, true)
                && statements_valid(&s.body, scope.looping())
                && statements_valid(&s.orelse, scope)
        }
        Stmt::AsyncFor(s) => {
            assignable(&s.target, true)
                && statements_valid(&s.body, scope.looping())
                && statements_valid(&s.orelse, scope)
        }
        Stmt::While(s) => {
            statements_valid(&s.body, scope.looping()) && statements_valid(&s.orelse, scope)
        }
        Stmt::If(s) => statements_valid(&s.body, scope) && statements_valid(&s.orelse, scope),
        Stmt::With(s) => with_targets_assignable(&s.items) && statements_valid(&s.body, scope),
        Stmt::AsyncWith(s) => with_targets_assignable(&s.items) && statements_valid(&s.body, scope),
        Stmt::Try(s) => {
            statements_valid(&s.body, scope)
                && handlers_valid(&s.handlers, scope)
                && statements_valid(&s.orelse, scope)
                && statements_valid(&s.finalbody, scope)
        }
        Stmt::TryStar(s) => {
            statements_valid(&s.body, scope)
                && handlers_valid(&s.handlers, scope)
                && statements_valid(&s.orelse, scope)
                && statements_valid(&s.finalbody, scope)
        }
        Stmt::FunctionDef(s) => statements_valid(&s.body, Scope::function()),
        Stmt::AsyncFunctionDef(s) => statements_valid(&s.body, Scope::function()),
        Stmt::ClassDef(s) => statements_valid(&s.body, Scope::class()),
        Stmt::Match(s) => s
            .cases
            .iter()
            .all(|case| statements_valid(&case.body, scope)),
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

fn handlers_valid(handlers: &[ast::ExceptHandler], scope: Scope) -> bool {
    handlers
        .iter()
        .all(|ast::ExceptHandler::ExceptHandler(handler)| statements_valid(&handler.body, scope))
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
