//! Worked examples of learned functions, written the way the assistant will use the
//! function: a Qwen `<tool_call>` exchange when it is offered as a tool, a code
//! block when it is called from code. A small model copies the format it is shown
//! (Qwen2.5-Coder writes tool calls as JSON blocks unless shown its own format).

use std::fmt;
use std::str::FromStr;

use agentopt_core::{Demonstration, LearnedFunction};
use serde::{Deserialize, Serialize};

use crate::FunctionStyle;

/// Where a task puts the worked examples of its functions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemonstrationPlacement {
    /// Not shown (AG2).
    #[default]
    Off,
    /// After the system message.
    SystemMessage,
    /// In the first user message, before the problem.
    FirstMessage,
}

impl DemonstrationPlacement {
    /// All placements, in command-line order.
    pub const ALL: [Self; 3] = [Self::Off, Self::SystemMessage, Self::FirstMessage];

    /// The name used on command lines and in saved configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::SystemMessage => "system",
            Self::FirstMessage => "first-message",
        }
    }
}

impl fmt::Display for DemonstrationPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DemonstrationPlacement {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|placement| placement.as_str() == text)
            .ok_or_else(|| {
                format!("unknown placement {text:?}; expected off, system or first-message")
            })
    }
}

/// The examples of every function that has some, in the format `style` makes the
/// assistant use (a tool-call exchange where the function is a tool and the
/// example's call was recorded, else a code block). Empty when no function has one.
pub fn demonstrations_prompt(functions: &[LearnedFunction], style: FunctionStyle) -> String {
    let mut sections = Vec::new();
    for function in functions {
        for demonstration in &function.demonstrations {
            sections.push(render(function, demonstration, style));
        }
    }
    if sections.is_empty() {
        return String::new();
    }
    format!(
        "Examples of solving problems with the helper functions:\n\n{}",
        sections.join("\n\n")
    )
}

/// One example: the problem, the call, its result, the boxed answer.
fn render(function: &LearnedFunction, example: &Demonstration, style: FunctionStyle) -> String {
    let thought = format!("I will use the helper function {}.", function.name);
    let answer = format!("The answer is \\boxed{{{}}}.", example.answer);
    match (&example.call, style.offers_tools()) {
        (Some(call), true) => {
            // Qwen's own layout: the name first.
            let request = format!(
                "{{\"name\": {}, \"arguments\": {}}}",
                serde_json::Value::String(function.name.clone()),
                call.arguments
            );
            format!(
                "Problem: {}\n{thought}\n<tool_call>\n{request}\n</tool_call>\n\
                 <tool_response>\n{}\n</tool_response>\n{answer}",
                example.problem.trim(),
                call.result
            )
        }
        _ => format!(
            "Problem: {}\n{thought}\n```python\n{}\n```\n```output\n{}\n```\n{answer}",
            example.problem.trim(),
            example.solution.trim_end(),
            example.answer
        ),
    }
}
