//! Putting functions on both sides of an agent pair at once: the signature the
//! model is offered and the implementation the executor runs, so the two never
//! disagree.

use agentopt_core::{FunctionDiff, FunctionSet};
use agentopt_llm::FunctionSchema;

use crate::functions::signature;
use crate::{AgentError, ConversableAgent, FunctionImpl};

/// Offers `schema` to `llm_side`'s model and registers `implementation` under the
/// same name on `executor_side` (replacing what was there).
pub fn register_function_pair(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    schema: FunctionSchema,
    implementation: FunctionImpl,
) {
    executor_side.register_function(schema.name.clone(), implementation);
    llm_side.update_function_signature(schema);
}

/// Removes the function called `name` from both sides; returns whether either side
/// had it.
pub fn remove_function_pair(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    name: &str,
) -> bool {
    let executor = executor_side.remove_function(name);
    llm_side.remove_function_signature(name) || executor
}

/// Makes `functions` the learned functions of the pair: learned functions the pair
/// holds that are not in the set are removed, every function of the set is offered
/// and registered (running its own code). Functions registered as Rust closures are
/// left alone. Nothing changes when a function is refused.
///
/// # Errors
/// [`AgentError::PackageNotAllowed`] when a function needs a package off the
/// sandbox allowlist.
pub fn install(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    functions: &FunctionSet,
) -> Result<(), AgentError> {
    let implementations = functions
        .functions()
        .iter()
        .map(|function| FunctionImpl::learned(function.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let stale: Vec<String> = executor_side
        .state()
        .functions()
        .learned_names()
        .filter(|name| functions.get(name).is_none())
        .map(str::to_owned)
        .collect();
    for name in stale {
        remove_function_pair(llm_side, executor_side, &name);
    }
    for (function, implementation) in functions.functions().iter().zip(implementations) {
        register_function_pair(llm_side, executor_side, signature(function), implementation);
    }
    Ok(())
}

/// Applies the change from one function set to the next (removals first).
///
/// # Errors
/// [`AgentError::PackageNotAllowed`], before anything changes.
pub fn apply_diff(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    diff: &FunctionDiff,
) -> Result<(), AgentError> {
    let changed: Vec<_> = diff.added.iter().chain(&diff.revised).collect();
    let implementations = changed
        .iter()
        .map(|function| FunctionImpl::learned((*function).clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for name in &diff.removed {
        remove_function_pair(llm_side, executor_side, name);
    }
    for (function, implementation) in changed.into_iter().zip(implementations) {
        register_function_pair(llm_side, executor_side, signature(function), implementation);
    }
    Ok(())
}
