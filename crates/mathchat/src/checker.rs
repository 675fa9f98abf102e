//! A [`SymbolicChecker`] that asks sympy, in a sandbox session, whether two LaTeX
//! answers are equal.
//!
//! The answers are model-written, so they are never handed to a parser that
//! evaluates code as they are: they are first rewritten by
//! [`agentopt_math::latex_answer_to_sympy`] into a small arithmetic language
//! (numbers, single-letter symbols, the names in [`agentopt_math::SYMPY_NAMES`],
//! operators, brackets) and rejected if anything else remains. Only that text
//! reaches sympy's `parse_expr`, with no builtins, in the sandbox.

use std::sync::Arc;

use agentopt_math::{SymbolicChecker, SymbolicVerdict, latex_answer_to_sympy};
use agentopt_sandbox::{CellStatus, Executor, ExecutorFactory, LearnedFunction};
use async_trait::async_trait;
use serde_json::{Map, json};
use tokio::sync::Mutex;

const CHECK_NAME: &str = "agentopt_equivalent";

/// Binds every name of [`agentopt_math::SYMPY_NAMES`] (and single letters), no more.
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
        let (Some(left), Some(right)) = (
            latex_answer_to_sympy(candidate),
            latex_answer_to_sympy(reference),
        ) else {
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
                Err(error) => return SymbolicVerdict::Failed(error.to_string()),
            },
        };
        let session = guard.insert(session);
        let function = LearnedFunction::new(CHECK_NAME, CHECK_CODE);
        let mut arguments = Map::new();
        arguments.insert("a".to_owned(), json!(left.items));
        arguments.insert("b".to_owned(), json!(right.items));
        match session.call_function(&function, &arguments).await {
            Ok(outcome) => match (&outcome.status, outcome.value.as_deref()) {
                (CellStatus::Completed, Some("equivalent")) => SymbolicVerdict::Equivalent,
                (CellStatus::Completed, Some("different")) => SymbolicVerdict::NotEquivalent,
                // sympy refused these answers: about the answers, not the checker.
                (CellStatus::Raised { traceback }, _) => {
                    SymbolicVerdict::Undecided(traceback.clone())
                }
                (CellStatus::Completed, value) => {
                    SymbolicVerdict::Failed(format!("unexpected result {value:?}"))
                }
                (CellStatus::TimedOut | CellStatus::Crashed { .. }, _) => {
                    SymbolicVerdict::Failed(outcome.error_text().unwrap_or_default())
                }
            },
            Err(error) => {
                *guard = None;
                SymbolicVerdict::Failed(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_check_binds_every_name_the_rewriting_lets_through() {
        for name in agentopt_math::SYMPY_NAMES {
            assert!(
                super::CHECK_CODE.contains(&format!("{name}=sympy.{name}")),
                "{name} is not bound in the sympy check"
            );
        }
    }
}
