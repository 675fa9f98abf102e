//! One learned function.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Python keywords, which cannot name a function.
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// A Python function an agent may call: what the model is offered (name,
/// description, argument schema) and what the executor runs (code, packages).
///
/// The optimizer proposes these, the agents offer and run them, and a
/// [`crate::FunctionSet`] stores them; the same value travels the whole way, so the
/// code that is called under a name is always the code learned under that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedFunction {
    /// Function name; `code` defines `def name(...)` at top level.
    pub name: String,
    /// What the function does, for the assistant model.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the keyword arguments:
    /// `{"type": "object", "properties": …, "required": …}`.
    #[serde(alias = "arguments")]
    pub parameters: Value,
    /// Allowlisted pip packages the code imports (bare names).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Python source defining the function; run afresh, in its own namespace, on
    /// every call.
    pub code: String,
    /// Worked examples shown to the assistant with the function (files and
    /// checkpoints from before read as none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demonstrations: Vec<Demonstration>,
}

/// A worked example of a learned function: a problem, a short solution that calls
/// the function, and the answer. Small models call a function they have seen used
/// far more often than one they were only told about (LATM, ReGAL); one is kept only
/// when running its solution reproduces the problem's reference answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demonstration {
    /// The problem, as the agents are given it.
    pub problem: String,
    /// Python that calls the function and prints the answer.
    pub solution: String,
    /// The answer the solution prints.
    pub answer: String,
    /// The function's first call in the solution, as it ran: what a tool-call
    /// rendering of the example shows. Recorded when the example is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<DemonstrationCall>,
}

/// One call of a function, as a verified demonstration made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemonstrationCall {
    /// The keyword arguments, as a JSON object.
    pub arguments: Value,
    /// What the call returned, as Python's `str` writes it.
    pub result: String,
}

impl LearnedFunction {
    /// A function taking no arguments (tests, hand-written functions).
    pub fn new(name: impl Into<String>, code: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
            packages: Vec::new(),
            code: code.into(),
            demonstrations: Vec::new(),
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the argument schema.
    #[must_use]
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = parameters;
        self
    }

    /// Sets the demonstrations.
    #[must_use]
    pub fn with_demonstrations(mut self, demonstrations: Vec<Demonstration>) -> Self {
        self.demonstrations = demonstrations;
        self
    }

    /// Sets the packages.
    #[must_use]
    pub fn with_packages(mut self, packages: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.packages = packages.into_iter().map(Into::into).collect();
        self
    }

    /// The checks that need no Python parser: the name is an identifier and the
    /// parameters are a JSON object.
    ///
    /// # Errors
    /// A message naming the rule the function breaks.
    pub fn check_shape(&self) -> Result<(), String> {
        check_identifier(&self.name)?;
        if !self.parameters.is_object() {
            return Err(format!(
                "`parameters` must be a JSON Schema object; got {}",
                self.parameters
            ));
        }
        Ok(())
    }
}

/// `name` is a Python identifier and not a keyword.
///
/// # Errors
/// A message saying why it is not.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !valid {
        return Err(format!(
            "name {name:?} is not a valid Python identifier (letters, digits and \
             underscores, not starting with a digit)"
        ));
    }
    if PYTHON_KEYWORDS.contains(&name) {
        return Err(format!("name {name:?} is a Python keyword"));
    }
    Ok(())
}
