//! Putting functions on both sides of an agent pair at once: the signature the
//! model is offered and the implementation the executor runs, so the two never
//! disagree.

use agentopt_core::FunctionSet;
use agentopt_llm::FunctionSchema;

use crate::functions::signature;
use crate::{AgentError, ConversableAgent, FunctionImpl, FunctionStyle};

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

/// Makes `functions` the learned functions of the pair, as tools (AG2's way): see
/// [`install_styled`].
///
/// # Errors
/// [`AgentError::PackageNotAllowed`] when a function needs a package off the
/// sandbox allowlist.
pub fn install(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    functions: &FunctionSet,
) -> Result<(), AgentError> {
    install_styled(llm_side, executor_side, functions, FunctionStyle::Tools)
}

/// Makes `functions` the learned functions of the pair, offered in `style`:
/// learned functions the pair holds that are not offered that way are removed;
/// as tools, every function of the set is offered and registered (running its own
/// code); for code, every function is listed in `llm_side`'s system message and
/// defined in `executor_side`'s sessions. In [`FunctionStyle::Tools`] the system
/// message is exactly the one set. Functions registered as Rust closures are left
/// alone. Nothing changes when a function is refused.
///
/// # Errors
/// [`AgentError::PackageNotAllowed`] when a function needs a package off the
/// sandbox allowlist.
pub fn install_styled(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    functions: &FunctionSet,
    style: FunctionStyle,
) -> Result<(), AgentError> {
    install_tools(llm_side, executor_side, functions, style.offers_tools())?;
    let in_code = if style.offers_code() {
        functions.functions().to_vec()
    } else {
        Vec::new()
    };
    llm_side.offer_code_functions(in_code.clone());
    executor_side.define_code_functions(in_code);
    Ok(())
}

/// The tool half of [`install_styled`]: with `offered` false, removes every learned
/// tool the pair holds.
fn install_tools(
    llm_side: &mut ConversableAgent,
    executor_side: &mut ConversableAgent,
    functions: &FunctionSet,
    offered: bool,
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
        .filter(|name| !offered || functions.get(name).is_none())
        .map(str::to_owned)
        .collect();
    for name in stale {
        remove_function_pair(llm_side, executor_side, &name);
    }
    if !offered {
        return Ok(());
    }
    for (function, implementation) in functions.functions().iter().zip(implementations) {
        register_function_pair(llm_side, executor_side, signature(function), implementation);
    }
    Ok(())
}
