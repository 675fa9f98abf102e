//! bench-math's own file in the run directory: `config.json`, the resolved
//! settings (no secrets), written once, after every check passed, and read back by
//! `--resume`. Everything else in the directory is the trainer's
//! ([`agentopt_train::RunDir`]), plus `bench.log` and `learning_curve.svg`.

use std::path::Path;

use agentopt_core::files::{read_json, write_json_atomic};

use super::BenchError;
use super::cli::{BenchArgs, Endpoints, RunConfig};

/// Creates the run directory at `root` (it may exist but must not hold a run) and
/// writes `config.json`.
///
/// # Errors
/// [`BenchError::RunDir`] when `root` already holds a run; file errors.
pub fn create_run_dir(root: &Path, config: &RunConfig) -> Result<(), BenchError> {
    let path = root.join("config.json");
    if path.exists() {
        return Err(BenchError::RunDir {
            path: root.to_owned(),
            message: "already holds a run (config.json exists); pass --resume to continue it \
                      or choose another --run-dir"
                .to_owned(),
        });
    }
    std::fs::create_dir_all(root).map_err(agentopt_core::CoreError::io("create", root))?;
    Ok(write_json_atomic(&path, config)?)
}

/// Reads the config of the run at `root` for `--resume`, checks that the endpoint
/// serves the same models, and applies what may change on resume (spending limits,
/// prices, parallelism, the context window): results do not depend on them.
///
/// # Errors
/// [`BenchError::RunDir`] when there is no run at `root` or the models differ; a
/// `config.json` that does not parse, naming its line.
pub fn open_run_dir(
    root: &Path,
    args: &BenchArgs,
    endpoints: &Endpoints,
) -> Result<RunConfig, BenchError> {
    let path = root.join("config.json");
    if !path.exists() {
        return Err(BenchError::RunDir {
            path: root.to_owned(),
            message: "holds no run to resume (no config.json)".to_owned(),
        });
    }
    let mut config: RunConfig = read_json(&path)?;
    let models = endpoints.model_names();
    if models != (config.model.clone(), config.optimizer_model.clone()) {
        return Err(BenchError::RunDir {
            path: root.to_owned(),
            message: format!(
                "was run with model {:?} and optimizer model {:?}, but the endpoint now \
                 configured serves {:?} and {:?}; pass the same endpoint settings to resume",
                config.model, config.optimizer_model, models.0, models.1
            ),
        });
    }
    if args.shapes_the_run() {
        eprintln!(
            "warning: data and training flags are ignored on --resume; {} decides them",
            path.display()
        );
    }
    config.budget_usd = args.budget_usd.or(config.budget_usd);
    config.budget_tokens = args.budget_tokens.or(config.budget_tokens);
    if !args.prices.is_empty() {
        config.prices.clone_from(&args.prices);
    }
    config.concurrency = args.concurrency.unwrap_or(config.concurrency);
    config.context_window = args.context_window.or(config.context_window);
    config.replica_cap = args.replica_cap.or(config.replica_cap);
    Ok(config)
}
