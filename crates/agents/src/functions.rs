//! The function registry: OpenAI signatures on the model side, implementations
//! (Rust closures or learned Python functions) on the executor side.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use agentopt_llm::{FunctionCall, FunctionSchema};
use agentopt_sandbox::{CellOutcome, LearnedFunction, allowlisted_package};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::AgentError;

/// What runs when the model calls a function name.
#[derive(Clone)]
pub enum FunctionImpl {
    /// A Rust closure, run in-process: JSON arguments in, text (or an error text)
    /// out.
    #[allow(clippy::type_complexity)]
    Rust(Arc<dyn Fn(&Map<String, Value>) -> Result<String, String> + Send + Sync>),
    /// A learned Python function, run in the conversation's sandbox session.
    Python(LearnedFunction),
}

impl fmt::Debug for FunctionImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rust(_) => f.write_str("Rust(<closure>)"),
            Self::Python(function) => f.debug_tuple("Python").field(function).finish(),
        }
    }
}

impl FunctionImpl {
    /// A Rust closure over the raw JSON arguments.
    pub fn rust(
        function: impl Fn(&Map<String, Value>) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        Self::Rust(Arc::new(function))
    }

    /// A Rust closure over typed arguments: arguments that do not deserialize into
    /// `A` come back to the model as an error naming the problem.
    pub fn typed<A, R, F>(function: F) -> Self
    where
        A: DeserializeOwned,
        R: fmt::Display,
        F: Fn(A) -> Result<R, String> + Send + Sync + 'static,
    {
        Self::rust(move |arguments| {
            let parsed: A = serde_json::from_value(Value::Object(arguments.clone()))
                .map_err(|error| format!("invalid arguments: {error}"))?;
            function(parsed).map(|result| result.to_string())
        })
    }

    /// A learned Python function.
    ///
    /// # Errors
    /// [`AgentError::PackageNotAllowed`] when a package is not on the sandbox
    /// allowlist (the sandbox has no network, so nothing is installed at call time).
    pub fn learned(function: LearnedFunction) -> Result<Self, AgentError> {
        if let Some(package) = function
            .packages
            .iter()
            .find(|package| allowlisted_package(package).is_err())
        {
            return Err(AgentError::PackageNotAllowed {
                function: function.name.clone(),
                package: package.clone(),
            });
        }
        Ok(Self::Python(function))
    }
}

/// The OpenAI signature the model is offered for a learned function.
pub fn signature(function: &LearnedFunction) -> FunctionSchema {
    FunctionSchema {
        name: function.name.clone(),
        description: Some(function.description.clone()),
        parameters: function.parameters.clone(),
    }
}

/// The signatures a model-backed agent offers, in insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signatures {
    list: Vec<FunctionSchema>,
}

impl Signatures {
    /// Adds `schema`, replacing the signature with its name (in place).
    pub fn upsert(&mut self, schema: FunctionSchema) {
        match self.list.iter_mut().find(|known| known.name == schema.name) {
            Some(known) => *known = schema,
            None => self.list.push(schema),
        }
    }

    /// Removes the signature called `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|known| known.name != name);
        self.list.len() != before
    }

    /// The signatures, in the order they were added.
    pub fn list(&self) -> &[FunctionSchema] {
        &self.list
    }
}

/// Executor-side map from function name to implementation.
#[derive(Debug, Clone, Default)]
pub struct FunctionMap {
    functions: BTreeMap<String, FunctionImpl>,
}

impl FunctionMap {
    /// Registers (or replaces) `name`.
    pub fn insert(&mut self, name: impl Into<String>, implementation: FunctionImpl) {
        self.functions.insert(name.into(), implementation);
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.functions.remove(name).is_some()
    }

    /// The implementation of `name`.
    pub fn get(&self, name: &str) -> Option<&FunctionImpl> {
        self.functions.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Names of the learned Python functions, sorted.
    pub fn learned_names(&self) -> impl Iterator<Item = &str> {
        self.functions
            .iter()
            .filter(|(_, implementation)| matches!(implementation, FunctionImpl::Python(_)))
            .map(|(name, _)| name.as_str())
    }
}

/// How one requested call went, for the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionExecution {
    /// The function the model called.
    pub name: String,
    /// The arguments exactly as the model wrote them.
    pub arguments: String,
    /// The tool-call id (`None` for a legacy function call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Whether the function ran and returned normally.
    pub success: bool,
    /// What goes back to the model: the result, or the "Error: …" text.
    pub content: String,
    /// The sandbox outcome, for learned Python functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<CellOutcome>,
}

/// AG2's `_format_json_str`: drops newlines outside strings and escapes raw
/// newlines and tabs inside them, so `{"code": "a\nb"}` written with a real line
/// break still parses.
pub fn lenient_json(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut inside_quotes = false;
    let mut last = ' ';
    for character in text.chars() {
        if last != '\\' && character == '"' {
            inside_quotes = !inside_quotes;
        }
        last = character;
        match (inside_quotes, character) {
            (false, '\n') => {}
            (true, '\n') => result.push_str("\\n"),
            (true, '\t') => result.push_str("\\t"),
            _ => result.push(character),
        }
    }
    result
}

/// Parses a call's arguments with AG2's leniency. An empty text counts as `{}`.
///
/// # Errors
/// The "Error: …" text AG2 sends back for arguments that are not a JSON object.
pub fn parse_arguments(call: &FunctionCall) -> Result<Map<String, Value>, String> {
    if call.arguments.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(&lenient_json(&call.arguments)) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "Error: expected a JSON object of arguments, got {other}\n The argument must be in JSON format."
        )),
        Err(error) => Err(format!(
            "Error: {error}\n The argument must be in JSON format."
        )),
    }
}
