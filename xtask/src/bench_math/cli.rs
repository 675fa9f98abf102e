//! Command-line flags of `cargo xtask bench-math`, presets, and their resolution
//! into a [`RunConfig`] (saved as `config.json`) and an endpoint.
//!
//! Endpoint precedence: explicit flags (`--base-url`) > an AG2 `OAI_CONFIG_LIST`
//! (variable or file) > `OPENAI_*` / `AZURE_OPENAI_*` environment > the embedded
//! local model.

use std::path::{Path, PathBuf};

use agentopt_agents::FunctionStyle;
use agentopt_local::endpoints::EndpointRequest;
pub use agentopt_local::endpoints::{EndpointSource, Endpoints};
use agentopt_local::{LocalError, LocalModel};
use agentopt_mathchat::MathTaskOptions;
use agentopt_mathchat::{AnswerCheck, CraftSplit, DataFormat, Selection, subject_key};
use agentopt_optimizer::{ActionFormat, OptimizerOptions};
use agentopt_train::TrainerOptions;
use serde::{Deserialize, Serialize};

use crate::flags::{at_least_one, positive_amount, probability};
pub use crate::learned_use::LearnedUseArgs;

/// Model used with an OpenAI / Azure key from the environment when `--model` is
/// not given.
pub const DEFAULT_REMOTE_MODEL: &str = "gpt-4o-mini";

/// Subject of the bundled data in the `seed` and `smoke` presets (the seed
/// notebook's).
pub const DEFAULT_SUBJECT: &str = "algebra";

/// Training problems per epoch of the default `quick` preset.
pub const QUICK_TRAIN_SIZE: usize = 4;
/// Test problems of the default `quick` preset.
pub const QUICK_TEST_SIZE: usize = 15;

/// Assistant reply limit on the embedded local model. With [`LOCAL_MAX_TURNS`] it
/// bounds a conversation at about 3,000 generated tokens (5 min on 2 cores): a
/// rambling 1.5B model took 10 min with 6 × 1,024.
pub const LOCAL_MAX_REPLY_TOKENS: u32 = 768;

/// Sampling seed of every request on the embedded local model: a repeated run one
/// conversation at a time is the same run (slots decoding side by side can differ).
pub const LOCAL_SAMPLING_SEED: i64 = 0;

/// Assistant replies per conversation on the embedded local model.
pub const LOCAL_MAX_TURNS: u32 = 4;

/// Version of `config.json` (version 1, with the settings flat, is read too).
pub const CONFIG_VERSION: u32 = 2;

/// How long each model's check before the first conversation may take.
pub const PREFLIGHT: std::time::Duration = std::time::Duration::from_secs(20);

/// Flags of `cargo xtask bench-math`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    about = "Train agents with AgentOptimizer on MATH problems and report before/after accuracy"
)]
pub struct BenchArgs {
    /// Directory in the CRAFT layout (`SUBJECT.jsonl` test files, `train/SUBJECT.jsonl`
    /// training files). Default: the bundled `data/math-craft`.
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    pub data: Option<PathBuf>,
    /// Training problems from this file or directory instead (CRAFT, Hendrycks
    /// MATH, MATH-500 or GSM8K; see --format).
    #[arg(long, value_name = "PATH", help_heading = "Data")]
    pub train_data: Option<PathBuf>,
    /// Test problems from this file or directory instead.
    #[arg(long, value_name = "PATH", help_heading = "Data")]
    pub test_data: Option<PathBuf>,
    /// Record format of --train-data / --test-data.
    #[arg(long, value_enum, default_value_t = DataFormat::Auto, help_heading = "Data")]
    pub format: DataFormat,
    /// Skip (and report) unusable data records instead of stopping at them.
    #[arg(long, help_heading = "Data")]
    pub skip_bad_records: bool,
    /// Subjects, comma-separated (`algebra`, `number_theory`, …, or `all`).
    /// Default for the bundled data: the preset's (`quick`: algebra and prealgebra;
    /// `seed` and `smoke`: algebra, as the seed notebook); all for --train-data /
    /// --test-data.
    #[arg(long, value_delimiter = ',', help_heading = "Data")]
    pub subject: Vec<String>,
    /// Levels 1–5 to keep, comma-separated (default: all; `quick` on the bundled
    /// data with no --subject: 2 and 3).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=5), help_heading = "Data")]
    pub level: Vec<u8>,
    /// Training problems per epoch.
    #[arg(long, value_parser = at_least_one, help_heading = "Data")]
    pub train_size: Option<usize>,
    /// Test problems (the same ones before and after training).
    #[arg(long, value_parser = at_least_one, help_heading = "Data")]
    pub test_size: Option<usize>,
    /// Shuffle the problems with this seed before taking them (default: the first
    /// ones in file order, as the seed notebook does; `quick` on the bundled data:
    /// seed 0).
    #[arg(long, help_heading = "Data")]
    pub sample_seed: Option<u64>,

    /// Settings bundle; explicit flags override it. Default: `quick`.
    #[arg(long, value_enum, help_heading = "Training")]
    pub preset: Option<Preset>,
    /// Training epochs; 0 with --functions: no training, the test after runs with
    /// those functions.
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<u32>,
    /// Start from the functions of this `functions.json` (an earlier run's, or a set
    /// to evaluate with --epochs 0) instead of none; the test before runs without
    /// any, as always.
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    pub functions: Option<PathBuf>,
    /// Optimizer actions (add / revise / remove a function) per step.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Training")]
    pub max_actions_per_step: Option<u32>,
    /// Stop after this many steps without beating the best training accuracy
    /// (default: never, like AG2).
    #[arg(long, help_heading = "Training")]
    pub patience: Option<u32>,
    /// Validation mode: hold out this many training-file problems and decide
    /// keep / roll back on them with a paired test instead of the training mean.
    #[arg(long, default_value_t = 0, help_heading = "Training")]
    pub validation_size: usize,
    /// Significance level of the validation-mode paired test.
    #[arg(long, default_value_t = 0.05, value_parser = probability, help_heading = "Training")]
    pub significance: f64,
    /// Conversations at once within a phase (default: 2 on the local model, one server
    /// slot each; 4 remote). The order the optimizer sees does not depend on it.
    #[arg(long, value_parser = at_least_one, help_heading = "Endpoint")]
    pub concurrency: Option<usize>,

    /// Longest assistant reply in tokens (default: 768 on the local model, where a
    /// small model can otherwise ramble until the context is full; no limit on a
    /// remote endpoint, as in the seed).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Training")]
    pub max_reply_tokens: Option<u32>,

    /// Most assistant replies per conversation (default: 4 on the local model, where
    /// a stuck small model would otherwise run all 15 of the proxy's auto replies
    /// into the context limit; no limit of its own on a remote endpoint, as in the
    /// seed).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Training")]
    pub max_turns: Option<u32>,

    /// How the optimizer model states its actions: tool-calls or json-schema
    /// (default: json-schema on the local model, whose small models answer tool
    /// prompts in prose; tool-calls, as in AG2, on a remote endpoint).
    #[arg(long, value_name = "FORMAT", help_heading = "Training")]
    pub optimizer_actions: Option<ActionFormat>,
    /// How learned functions reach the assistant: tools (AG2's function calling),
    /// code (already defined in its Python session, listed in its system message) or
    /// both. Default tools everywhere: on the embedded 1.5B model neither style got a
    /// learned function called (docs/bench-math/local-styles.md).
    #[arg(long, value_name = "STYLE", default_value_t, help_heading = "Training")]
    pub function_style: FunctionStyle,
    /// Answer check that drives training: symbolic (strings, numbers, sympy) or
    /// exact (AG2's string rule); the report shows the test under both.
    #[arg(long, value_name = "CHECK", default_value_t, help_heading = "Training")]
    pub answer_check: AnswerCheck,
    /// Whether the optimizer's first reply of a step must be an action rather than
    /// TERMINATE (default: true on the local model, whose small models otherwise end
    /// most steps at once; false, as in AG2, on a remote endpoint).
    #[arg(long, value_name = "BOOL", help_heading = "Training")]
    pub require_action: Option<bool>,
    /// Sampling seed sent with every model request, so a run can be repeated
    /// (default: 0 on the local model, where llama.cpp honours it exactly; none on a
    /// remote endpoint, as in the seed notebook).
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub sampling_seed: Option<i64>,

    /// The levers that get small models to call learned functions.
    #[command(flatten)]
    pub learned_use: LearnedUseArgs,

    /// OpenAI-compatible base URL (e.g. `http://127.0.0.1:8000/v1`), or the Azure
    /// resource endpoint with `--api-type azure`. Overrides every other source; repeatable.
    #[arg(long, value_name = "URL", help_heading = "Endpoint")]
    pub base_url: Vec<String>,
    /// Several endpoints: `fallback` tries them in order (AG2), `spread` balances replicas.
    #[arg(long, default_value_t = agentopt_llm::Routing::Fallback, help_heading = "Endpoint")]
    pub routing: agentopt_llm::Routing,
    /// With `--routing spread`: calls in flight at once on one replica (default:
    /// --concurrency, so one replica can take the whole run).
    #[arg(long, value_name = "N", value_parser = crate::flags::at_least_one, help_heading = "Endpoint")]
    pub replica_cap: Option<usize>,
    /// Dialect of --base-url.
    #[arg(long, value_enum, default_value_t = ApiTypeArg::Openai, help_heading = "Endpoint")]
    pub api_type: ApiTypeArg,
    /// Environment variable holding the key for --base-url (keys never go on the
    /// command line).
    #[arg(long, value_name = "VAR", help_heading = "Endpoint")]
    pub api_key_env: Option<String>,
    /// Azure `api-version` for --base-url.
    #[arg(long, help_heading = "Endpoint")]
    pub api_version: Option<String>,
    /// Model answering the problems (also the filter for OAI_CONFIG_LIST).
    #[arg(long, help_heading = "Endpoint")]
    pub model: Option<String>,
    /// Model proposing functions (default: --model).
    #[arg(long, help_heading = "Endpoint")]
    pub optimizer_model: Option<String>,
    /// Context window of the model(s) in tokens, for servers that do not report it.
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(512..), help_heading = "Endpoint")]
    pub context_window: Option<u32>,
    /// AG2 config list: an environment variable holding the JSON or a path, or a
    /// file (default: `OAI_CONFIG_LIST`, used when set or present).
    #[arg(long, value_name = "VAR_OR_FILE", help_heading = "Endpoint")]
    pub oai_config_list: Option<String>,
    /// Embedded local model used when no endpoint is configured.
    #[arg(long, value_enum, default_value_t = LocalModelArg::Qwen1_5b, help_heading = "Endpoint")]
    pub local_model: LocalModelArg,

    /// Do not read or write the response cache.
    #[arg(long, help_heading = "Cost")]
    pub no_cache: bool,
    /// Response cache directory (default: `runs/cache` in the workspace, shared by runs).
    #[arg(long, value_name = "DIR", help_heading = "Cost")]
    pub cache_dir: Option<PathBuf>,
    /// Price of a model in US dollars per million tokens, prompt and completion,
    /// e.g. `gpt-4o-mini=0.15:0.6`; repeatable. Unpriced models cost 0.
    #[arg(long = "price", value_name = "MODEL=PROMPT:COMPLETION", value_parser = parse_price, help_heading = "Cost")]
    pub prices: Vec<Price>,
    /// Stop calling the model once the whole run (across --resume) spent this many USD.
    #[arg(long, value_parser = positive_amount, help_heading = "Cost")]
    pub budget_usd: Option<f64>,
    /// Stop calling the model once this many tokens are spent (by the whole run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Cost")]
    pub budget_tokens: Option<u64>,

    /// Run directory (default: `runs/bench-math-<unix time>`).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir where it stopped (its config.json decides
    /// the data and training settings).
    #[arg(long, requires = "run_dir", help_heading = "Output")]
    pub resume: bool,
    /// No progress bars: log lines only.
    #[arg(long, help_heading = "Output")]
    pub quiet: bool,
    /// The run-shaping flags given ([`run_shaping_flags`] of the command line), which
    /// `--resume` ignores.
    #[arg(skip)]
    pub run_shaping_flags: Vec<String>,
}

/// A model's price (`--price`).
pub type Price = agentopt_llm::NamedPrice;

/// Parses `MODEL=PROMPT:COMPLETION` (`--price`).
///
/// # Errors
/// The text and what is wrong with it.
pub fn parse_price(text: &str) -> Result<Price, String> {
    text.parse()
}

/// Settings bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Sized for the embedded local model on 2 CPU cores.
    Quick,
    /// The seed notebook: 10 train, 10 test, 10 epochs, 3 actions per step.
    Seed,
    /// One problem each, one epoch, one action: checks that everything runs.
    Smoke,
}

/// Sizes (and, on the bundled data, the selection) a preset sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetValues {
    /// Training problems.
    pub train_size: usize,
    /// Test problems.
    pub test_size: usize,
    /// Epochs.
    pub epochs: u32,
    /// Actions per step.
    pub max_actions_per_step: u32,
    /// Subjects of the bundled data when no `--subject` is given.
    pub subjects: &'static [&'static str],
    /// Levels of the bundled data when no `--level` is given (empty: all).
    pub levels: &'static [u8],
    /// Shuffle seed when no `--sample-seed` is given (`None`: file order).
    pub sample_seed: Option<u64>,
}

impl Preset {
    /// The preset's sizes.
    pub fn values(self) -> PresetValues {
        match self {
            // Levels and subjects where the 1.5B model solves about half the problems
            // (neither always right nor always wrong), sized to end in about 15 min
            // on 2 quiet cores (docs/bench-math/measurements.md).
            Self::Quick => PresetValues {
                train_size: QUICK_TRAIN_SIZE,
                test_size: QUICK_TEST_SIZE,
                epochs: 2,
                max_actions_per_step: 1,
                subjects: &["algebra", "prealgebra"],
                levels: &[2, 3],
                sample_seed: Some(0),
            },
            Self::Seed => PresetValues {
                train_size: 10,
                test_size: 10,
                epochs: 10,
                max_actions_per_step: 3,
                subjects: &[DEFAULT_SUBJECT],
                levels: &[],
                sample_seed: None,
            },
            Self::Smoke => PresetValues {
                train_size: 1,
                test_size: 1,
                epochs: 1,
                max_actions_per_step: 1,
                subjects: &[DEFAULT_SUBJECT],
                levels: &[],
                sample_seed: None,
            },
        }
    }
}

/// `--api-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiTypeArg {
    /// OpenAI or any OpenAI-compatible server.
    #[default]
    Openai,
    /// Azure OpenAI.
    Azure,
}

/// `--local-model`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum LocalModelArg {
    /// Qwen2.5-Coder-1.5B-Instruct (default).
    #[default]
    #[value(name = "1.5b")]
    #[serde(rename = "1.5b")]
    Qwen1_5b,
    /// Qwen2.5-Coder-0.5B-Instruct (faster, weaker).
    #[value(name = "0.5b")]
    #[serde(rename = "0.5b")]
    Qwen0_5b,
}

impl LocalModelArg {
    /// The llm crate's model.
    pub fn model(self) -> LocalModel {
        match self {
            Self::Qwen1_5b => LocalModel::QwenCoder1_5B,
            Self::Qwen0_5b => LocalModel::QwenCoder0_5B,
        }
    }
}

/// Where problems come from and which are taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// File or directory; with `craft_split`, the root of the CRAFT layout.
    pub path: PathBuf,
    /// Which split of the CRAFT layout under `path` to read: only its own files,
    /// ids relative to `path`. `None` (a user's file, and configs from before):
    /// everything under `path`, ids relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub craft_split: Option<CraftSplit>,
    /// Record format.
    pub format: DataFormat,
    /// Filters and count.
    pub selection: Selection,
    /// Unusable records are skipped (configs from before this setting: not skipped).
    #[serde(default)]
    pub skip_bad_records: bool,
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(split) = self.craft_split {
            write!(f, " ({split})")?;
        }
        Ok(())
    }
}

/// The resolved settings of a run: everything needed to repeat or resume it,
/// no secrets. Saved as `config.json`; the trainer's and the task's settings are the
/// library's own option types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// [`CONFIG_VERSION`].
    pub version: u32,
    /// Training problems.
    pub train: DataSpec,
    /// Test problems.
    pub test: DataSpec,
    /// Validation-mode hold-out size (0: off).
    pub validation_size: usize,
    /// Epochs, actions per step, concurrency, significance, the optimizer's options.
    pub trainer: TrainerOptions,
    /// The MATH task's settings.
    pub task: MathTaskOptions,
    /// Where the model is.
    pub endpoint: EndpointSource,
    /// Model answering the problems.
    pub model: String,
    /// Model proposing functions.
    pub optimizer_model: String,
    /// Whether the response cache is used.
    pub cache: bool,
    /// Response cache directory.
    pub cache_dir: PathBuf,
    /// Model prices.
    #[serde(default)]
    pub prices: Vec<Price>,
    /// Spending limit in dollars.
    pub budget_usd: Option<f64>,
    /// Spending limit in tokens.
    pub budget_tokens: Option<u64>,
    /// Context window given with `--context-window`.
    #[serde(default)]
    pub context_window: Option<u32>,
    /// Calls in flight per replica with `spread` routing (`--replica-cap`;
    /// `None`: the concurrency).
    #[serde(default)]
    pub replica_cap: Option<usize>,
}

/// Chooses the endpoints the flags, environment (`lookup`) and working directory
/// (`cwd`, for a config-list file) name; see [`agentopt_local::endpoints`].
///
/// # Errors
/// The llm crate's configuration errors, naming the variable, file, entry or field.
pub fn resolve_endpoints(
    args: &BenchArgs,
    lookup: impl Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Endpoints, LocalError> {
    let request = EndpointRequest {
        base_urls: args.base_url.clone(),
        routing: args.routing,
        azure: args.api_type == ApiTypeArg::Azure,
        api_key_env: args.api_key_env.clone(),
        api_version: args.api_version.clone(),
        model: args.model.clone(),
        optimizer_model: args.optimizer_model.clone(),
        oai_config_list: args.oai_config_list.clone(),
        default_remote_model: DEFAULT_REMOTE_MODEL.to_owned(),
        local_model: args.local_model.model(),
    };
    agentopt_local::endpoints::resolve_endpoints(&request, lookup, cwd)
}

/// The training and test data of the run: the files, and the selection from the
/// flags, else the preset (whose subjects, levels and seed apply to the bundled
/// data only).
fn data_specs(args: &BenchArgs, preset: &PresetValues, workspace: &Path) -> (DataSpec, DataSpec) {
    let craft = args
        .data
        .clone()
        .unwrap_or_else(|| workspace.join("data").join("math-craft"));
    let subjects: Vec<String> = if args.subject.iter().any(|subject| subject == "all") {
        Vec::new()
    } else {
        args.subject
            .iter()
            .map(|subject| subject_key(subject))
            .collect()
    };
    let bundled_subjects = if args.subject.is_empty() {
        preset.subjects.iter().map(|&s| s.to_owned()).collect()
    } else {
        subjects.clone()
    };
    // The preset's levels narrow only its own (bundled) selection.
    let bundled_levels = if args.level.is_empty() && args.subject.is_empty() {
        preset.levels.to_vec()
    } else {
        args.level.clone()
    };
    let spec = |explicit: &Option<PathBuf>, split: CraftSplit, count: usize| {
        let (path, craft_split, format, subjects, levels) = match explicit {
            Some(path) => (
                path.clone(),
                None,
                args.format,
                subjects.clone(),
                args.level.clone(),
            ),
            // The test draw reads only the test files and the training draw only the
            // training files, whatever the subjects.
            None => (
                craft.clone(),
                Some(split),
                DataFormat::Craft,
                bundled_subjects.clone(),
                bundled_levels.clone(),
            ),
        };
        DataSpec {
            path,
            craft_split,
            format,
            selection: Selection {
                subjects,
                levels,
                count: Some(count),
                shuffle_seed: args
                    .sample_seed
                    .or(preset.sample_seed.filter(|_| explicit.is_none())),
            },
            skip_bad_records: args.skip_bad_records,
        }
    };
    let train_size = args.train_size.unwrap_or(preset.train_size);
    // Validation problems are held out from the training file, after the training ones.
    let train = spec(
        &args.train_data,
        CraftSplit::Train,
        train_size + args.validation_size,
    );
    let test = spec(
        &args.test_data,
        CraftSplit::Test,
        args.test_size.unwrap_or(preset.test_size),
    );
    (train, test)
}

/// Builds the run's settings from the flags, the chosen endpoints and the
/// workspace root (for the bundled data and the default directories).
pub fn run_config(args: &BenchArgs, endpoints: &Endpoints, workspace: &Path) -> RunConfig {
    let preset = args.preset.unwrap_or(Preset::Quick).values();
    let (train, test) = data_specs(args, &preset, workspace);
    let (model, optimizer_model) = endpoints.model_names();
    let local = matches!(endpoints, Endpoints::Local(_));
    let sampling_seed = args.sampling_seed.or(local.then_some(LOCAL_SAMPLING_SEED));
    RunConfig {
        version: CONFIG_VERSION,
        train,
        test,
        validation_size: args.validation_size,
        trainer: TrainerOptions {
            epochs: args.epochs.unwrap_or(preset.epochs),
            max_actions_per_step: args
                .max_actions_per_step
                .unwrap_or(preset.max_actions_per_step) as usize,
            concurrency: args.concurrency.unwrap_or(endpoints.default_concurrency()),
            significance: args.significance,
            preflight: Some(PREFLIGHT),
            optimizer: OptimizerOptions {
                patience: args.patience,
                action_format: args.optimizer_actions.unwrap_or(if local {
                    ActionFormat::JsonSchema
                } else {
                    ActionFormat::ToolCalls
                }),
                require_action: args.require_action.unwrap_or(local),
                seed: sampling_seed,
                learned_use: args.learned_use.optimizer_options(),
                ..OptimizerOptions::default()
            },
            retrieval_k: args.learned_use.retrieve,
            bootstrap_demonstrations: args.learned_use.bootstrap_demonstrations,
            forced_call_demonstrations: args.learned_use.forced_call_demonstrations,
            force_call: args.learned_use.force_call,
            ..TrainerOptions::default()
        },
        task: MathTaskOptions {
            max_reply_tokens: args
                .max_reply_tokens
                .or(local.then_some(LOCAL_MAX_REPLY_TOKENS)),
            max_turns: args.max_turns.or(local.then_some(LOCAL_MAX_TURNS)),
            function_style: args.function_style,
            answer_check: args.answer_check,
            sampling_seed,
            reply_prefill: args.learned_use.reply_prefill(),
            reply_stop: args.learned_use.reply_stop(),
            demonstrations: args.learned_use.demonstrations,
        },
        endpoint: endpoints.source(),
        model,
        optimizer_model,
        cache: !args.no_cache,
        cache_dir: args
            .cache_dir
            .clone()
            .unwrap_or_else(|| workspace.join("runs").join("cache")),
        prices: args.prices.clone(),
        budget_usd: args.budget_usd,
        budget_tokens: args.budget_tokens,
        context_window: args.context_window,
        replica_cap: args.replica_cap,
    }
}

/// Help headings whose flags shape the run (data, selection, training): `--resume`
/// takes them from `config.json` instead.
pub const RUN_SHAPING_HEADINGS: [&str; 3] = ["Data", "Training", "Learned-function use"];

/// The run-shaping flags (those under [`RUN_SHAPING_HEADINGS`]) that a parsed
/// `bench-math` command line gave, as `--name`, in help order.
pub fn run_shaping_flags(matches: &clap::ArgMatches) -> Vec<String> {
    use clap::Args;
    BenchArgs::augment_args(clap::Command::new("bench-math"))
        .get_arguments()
        .filter(|arg| {
            arg.get_help_heading()
                .is_some_and(|heading| RUN_SHAPING_HEADINGS.contains(&heading))
        })
        .filter(|arg| {
            matches.value_source(arg.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|arg| format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str())))
        .collect()
}
