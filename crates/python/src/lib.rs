//! `agentopt._agentopt`: the extension module behind the `agentopt` Python package.
//!
//! A thin layer over the Rust crates: [`optimizer::AgentOptimizer`] is AG2's
//! `AgentOptimizer` API over `agentopt_optimizer::AgentOptimizer`, and the
//! functions it hands out ([`functions::LearnedFunction`]) run learned code in
//! `agentopt_sandbox`'s isolated workers, never in the Python process. Every wait on
//! a model or the sandbox happens on this module's tokio runtime with the GIL
//! released, polling for Ctrl-C ([`runtime::wait`]).

mod check;
mod client;
mod config;
mod errors;
mod functions;
mod json;
mod optimizer;
mod runtime;
mod train;
mod warnings;
mod window;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _agentopt(module: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust log records (retries, fallbacks, rejected proposals) go to Python's
    // `logging`, under the Rust module path (`agentopt_llm.openai`, …). Levels are
    // read at each record, so `logging` configured later still applies.
    pyo3_log::Logger::new(module.py(), pyo3_log::Caching::Nothing)?
        .filter(log::LevelFilter::Info)
        .install()
        .ok();
    module.add_class::<optimizer::AgentOptimizer>()?;
    module.add_class::<functions::LearnedFunction>()?;
    module.add_class::<functions::FunctionSet>()?;
    module.add_class::<train::Trainer>()?;
    module.add_class::<train::TrainingReport>()?;
    module.add_function(wrap_pyfunction!(write_report_html, module)?)?;
    module.add_function(wrap_pyfunction!(check::check_sandbox, module)?)?;
    module.add(
        "PACKAGE_ALLOWLIST",
        agentopt_sandbox::PACKAGE_ALLOWLIST.to_vec(),
    )?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Rebuilds `report.html` of a run directory from its files; returns its path.
#[pyfunction]
fn write_report_html(py: Python<'_>, run_dir: std::path::PathBuf) -> PyResult<String> {
    py.detach(|| agentopt_train::write_report_html(&run_dir))
        .map(|page| page.display().to_string())
        .map_err(errors::train_error)
}
