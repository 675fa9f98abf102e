//! bench-math's own file in the run directory: `config.json`, the resolved
//! settings (no secrets), written once, after every check passed, and read back by
//! `--resume`. Everything else in the directory is the trainer's
//! ([`agentopt_train::RunDir`]), plus `bench.log` and `learning_curve.svg`.

use std::path::Path;

use agentopt_core::files::{read_json, write_json_atomic};
use agentopt_optimizer::OptimizerOptions;
use serde_json::{Map, Value};

use super::BenchError;
use super::cli::{BenchArgs, CONFIG_VERSION, Endpoints, PREFLIGHT, RunConfig};

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
    std::fs::create_dir_all(root)
        .map_err(agentopt_core::io_error("create", root))
        .map_err(agentopt_core::CoreError::from)?;
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
    let mut config = read_config(root, &path)?;
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
    if !args.run_shaping_flags.is_empty() {
        eprintln!(
            "warning: {} ignored on --resume; {} decides the data and training settings",
            args.run_shaping_flags.join(", "),
            path.display()
        );
    }
    config.budget_usd = args.budget_usd.or(config.budget_usd);
    config.budget_tokens = args.budget_tokens.or(config.budget_tokens);
    if !args.prices.is_empty() {
        config.prices.clone_from(&args.prices);
    }
    config.trainer.concurrency = args.concurrency.unwrap_or(config.trainer.concurrency);
    config.context_window = args.context_window.or(config.context_window);
    Ok(config)
}

/// Reads `config.json` of this version, or of version 1 (settings flat, before the
/// trainer's and the task's option types were embedded).
fn read_config(root: &Path, path: &Path) -> Result<RunConfig, BenchError> {
    let mut config: Value = read_json(path)?;
    match config["version"].as_u64() {
        Some(1) => upgrade_from_v1(&mut config),
        Some(version) if version == u64::from(CONFIG_VERSION) => {}
        version => {
            return Err(BenchError::RunDir {
                path: root.to_owned(),
                message: format!(
                    "config.json has version {version:?}; this bench-math reads versions 1 \
                     and {CONFIG_VERSION}"
                ),
            });
        }
    }
    serde_json::from_value(config).map_err(|error| {
        BenchError::File(agentopt_core::CoreError::Format {
            path: path.to_owned(),
            line: None,
            message: error.to_string(),
        })
    })
}

/// Moves version 1's flat settings into the embedded option types, with the values
/// version 1 ran with (the optimizer's other options at their defaults, the
/// preflight bench-math always used).
fn upgrade_from_v1(config: &mut Value) {
    let Some(flat) = config.as_object_mut() else {
        return;
    };
    let seed = flat.get("sampling_seed").cloned();
    let mut optimizer = match serde_json::to_value(OptimizerOptions::default()) {
        Ok(Value::Object(defaults)) => defaults,
        _ => Map::new(),
    };
    move_keys(
        flat,
        &mut optimizer,
        &[
            ("patience", "patience"),
            ("optimizer_actions", "action_format"),
            ("require_action", "require_action"),
        ],
    );
    optimizer.extend(seed.map(|seed| ("seed".to_owned(), seed)));
    let mut trainer = Map::new();
    move_keys(
        flat,
        &mut trainer,
        &[
            ("epochs", "epochs"),
            ("max_actions_per_step", "max_actions_per_step"),
            ("concurrency", "concurrency"),
            ("significance", "significance"),
        ],
    );
    trainer.insert("preflight".to_owned(), serde_json::json!(PREFLIGHT));
    trainer.insert("optimizer".to_owned(), Value::Object(optimizer));
    let mut task = Map::new();
    move_keys(
        flat,
        &mut task,
        &[
            ("max_reply_tokens", "max_reply_tokens"),
            ("max_turns", "max_turns"),
            ("function_style", "function_style"),
            ("answer_check", "answer_check"),
            ("sampling_seed", "sampling_seed"),
        ],
    );
    flat.insert("trainer".to_owned(), Value::Object(trainer));
    flat.insert("task".to_owned(), Value::Object(task));
    flat.insert("version".to_owned(), CONFIG_VERSION.into());
}

/// Moves each `(old, new)` key present in `from` to `to` under its new name.
fn move_keys(from: &mut Map<String, Value>, to: &mut Map<String, Value>, keys: &[(&str, &str)]) {
    for (old, new) in keys {
        if let Some(value) = from.remove(*old) {
            to.insert((*new).to_owned(), value);
        }
    }
}
