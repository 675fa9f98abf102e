//! Learned functions offered for code: defined in the executor's Python session and
//! listed in the model's system message, instead of (or besides) as tools.

use std::fmt;
use std::str::FromStr;

use agentopt_core::LearnedFunction;
use serde::{Deserialize, Serialize};

/// How learned functions reach the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionStyle {
    /// As tools (function calling), AG2's way: the request carries their schemas.
    #[default]
    Tools,
    /// As Python functions already defined in the session that runs the model's
    /// code blocks, listed (signature and description) in the system message.
    Code,
    /// Both at once.
    Both,
}

impl FunctionStyle {
    /// All styles, in command-line order.
    pub const ALL: [Self; 3] = [Self::Tools, Self::Code, Self::Both];

    /// The name used on command lines and in saved configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Code => "code",
            Self::Both => "both",
        }
    }

    /// Whether functions are offered as tools.
    pub fn offers_tools(self) -> bool {
        matches!(self, Self::Tools | Self::Both)
    }

    /// Whether functions are callable from code.
    pub fn offers_code(self) -> bool {
        matches!(self, Self::Code | Self::Both)
    }
}

impl fmt::Display for FunctionStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FunctionStyle {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|style| style.as_str() == text)
            .ok_or_else(|| format!("unknown function style {text:?}; expected tools, code or both"))
    }
}

/// The paragraph appended to the system message when functions are callable from
/// code.
const CODE_FUNCTIONS_INTRO: &str = "The following Python functions are already defined in \
    the Python session that runs your ```python code blocks. You can call them from your \
    code like any Python function (each returns its result; print it to see it):";

/// The system-message paragraph listing `functions` for code: each one's `def`
/// header (as its code writes it) and description. Empty for no function.
pub fn code_functions_prompt(functions: &[LearnedFunction]) -> String {
    if functions.is_empty() {
        return String::new();
    }
    let mut text = CODE_FUNCTIONS_INTRO.to_owned();
    for function in functions {
        text.push_str(&format!(
            "\n- {}: {}",
            def_header(function),
            function.description.trim()
        ));
    }
    text
}

/// `name(parameters) -> annotation` as the function's top-level `def` writes it, on
/// one line; `name(...)` when the code has no such `def` (the optimizer checks that
/// it does, so that is only for hand-made functions).
fn def_header(function: &LearnedFunction) -> String {
    let start = format!("def {}(", function.name);
    let code = &function.code;
    let Some(offset) = code
        .match_indices(&start)
        .map(|(index, _)| index)
        .find(|&index| index == 0 || code[..index].ends_with('\n'))
    else {
        return format!("{}(...)", function.name);
    };
    let rest = &code[offset + "def ".len()..];
    let mut depth = 0usize;
    let end = rest.char_indices().find_map(|(index, character)| {
        match character {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => return Some(index),
            _ => {}
        }
        None
    });
    let header = &rest[..end.unwrap_or(rest.len())];
    header.split_whitespace().collect::<Vec<_>>().join(" ")
}
