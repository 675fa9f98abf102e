//! The benchmark run: flags → endpoints, data, models, sandbox → the library's
//! [`Trainer`] over [`MathTask`] → the report's renderings. The training run itself
//! (phases, steps, journal, resume, report) is `agentopt-train`'s.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agentopt_llm::{
    Budget, ChatModel, ClientOptions, EndpointConfig, PriceTable, ResponseCache, SpreadOptions,
    UsageMeter, routed_model,
};
use agentopt_local::{LocalServer, LocalServerOptions};
use agentopt_mathchat::{MathTask, Problem};
use agentopt_sandbox::PythonEnvironment;
use agentopt_train::{FunctionSet, Problems, Setup, Trainer, TrainerOptions};
use anyhow::{Context as _, bail};

use super::cli::{BenchArgs, Endpoints, RunConfig, resolve_endpoints, run_config};
use super::progress::{Progress, ProgressObserver, init_tracing};
use super::rundir::{create_run_dir, open_run_dir};
use crate::data::load_selected;
use crate::sandboxes::MathSandboxes;

/// Runs (or resumes) a benchmark as the flags say; `workspace` is the repository
/// root (bundled data and default directories). Bad flags, data or endpoints fail
/// before anything is written or any conversation runs.
///
/// # Errors
/// Bad flags or data, an unreachable model, sandbox failures, run-directory I/O, a
/// run stopped by infrastructure errors or the budget (with how to continue it).
pub async fn run(args: &BenchArgs, workspace: &Path) -> anyhow::Result<()> {
    if args.epochs == Some(0) && args.functions.is_none() {
        bail!(
            "--epochs 0 tests the functions of --functions FILE without training: give \
             --functions, or train for at least one epoch"
        );
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let endpoints = resolve_endpoints(args, |name| std::env::var(name).ok(), &cwd)?;
    if let Some(cap) = args.replica_cap
        && endpoints.routing() != agentopt_llm::Routing::Spread
    {
        bail!(
            "--replica-cap {cap} caps each replica of `spread` routing, but the endpoints \
             route `{}`: add --routing spread",
            endpoints.routing()
        );
    }
    let (root, config) = if args.resume {
        let root = args.run_dir.clone().context("--resume needs --run-dir")?;
        let config = open_run_dir(&root, args, &endpoints)?;
        (root, config)
    } else {
        let root = args.run_dir.clone().unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            workspace.join("runs").join(format!("bench-math-{now}"))
        });
        let mut config = run_config(args, &endpoints, workspace);
        if let Some(path) = &args.functions {
            config.trainer.initial_functions = FunctionSet::load(path)
                .with_context(|| format!("--functions {}", path.display()))?;
        }
        (root, config)
    };
    let problems = load_problems(&config)?;
    let progress = Progress::new(args.quiet);
    let models = Models::start(&config, endpoints, &progress).await?;
    let trainer = trainer(&config, &root, &models, progress.clone())?;
    trainer.check(&problems).await?;
    if !args.resume {
        create_run_dir(&root, &config)?;
    }
    init_tracing(&root.join("bench.log"), &progress)?;
    tracing::info!(run_dir = %root.display(), resume = args.resume, "bench-math starting");
    let report = tokio::select! {
        report = trainer.run(&problems) => report?,
        _ = tokio::signal::ctrl_c() => bail!(
            "interrupted; nothing recorded is lost. Continue with: cargo xtask bench-math \
             --resume --run-dir {}",
            root.display()
        ),
    };
    println!("{}", report.terminal_summary());
    println!("Run directory: {}", root.display());
    if let Some(reason) = &report.incomplete {
        bail!(
            "the run is incomplete: {reason}. Continue with: cargo xtask bench-math --resume \
             --run-dir {}",
            root.display()
        );
    }
    drop(models);
    let failed = report.training_failed();
    failed.map_or(Ok(()), |reason| bail!("{reason}"))
}

/// The training, validation and test problems the config selects (validation
/// problems are held out from the end of the training selection).
pub fn load_problems(config: &RunConfig) -> anyhow::Result<Problems<Problem>> {
    let mut train = load_selected(&config.train, "train")?;
    let validation = train.split_off(train.len() - config.validation_size.min(train.len()));
    Ok(Problems {
        train,
        validation,
        test: load_selected(&config.test, "test")?,
    })
}

/// The run's models: the agents' and the optimizer's clients, sharing one meter,
/// cache and concurrency limit; and the embedded server when it serves them.
struct Models {
    agent: Arc<dyn ChatModel>,
    optimizer: Arc<dyn ChatModel>,
    meter: UsageMeter,
    /// Keeps the embedded model's server alive for the run.
    _local_server: Option<LocalServer>,
}

impl Models {
    async fn start(
        config: &RunConfig,
        endpoints: Endpoints,
        progress: &Progress,
    ) -> anyhow::Result<Self> {
        let routing = endpoints.routing();
        let (agent, optimizer, local_server) = match endpoints {
            Endpoints::Remote(remote) => (remote.agent, remote.optimizer, None),
            Endpoints::Local(model) => {
                let server = LocalServer::start(LocalServerOptions {
                    model,
                    parallel: config.trainer.concurrency,
                    progress: if progress.shows_bars() {
                        agentopt_local::Progress::Show
                    } else {
                        agentopt_local::Progress::Quiet
                    },
                    ..LocalServerOptions::default()
                })
                .await
                .context("starting the embedded local model")?;
                let endpoint = server.endpoint();
                (vec![endpoint.clone()], vec![endpoint], Some(server))
            }
        };
        let meter = UsageMeter::new(PriceTable::from_prices(&config.prices)).with_budget(Budget {
            max_cost_usd: config.budget_usd,
            max_tokens: config.budget_tokens,
        });
        let cache = if config.cache {
            Some(ResponseCache::open(&config.cache_dir, 0)?)
        } else {
            None
        };
        let spread =
            SpreadOptions::with_cap(config.replica_cap.unwrap_or(config.trainer.concurrency));
        let client = |entries: Vec<EndpointConfig>| -> anyhow::Result<Arc<dyn ChatModel>> {
            let entries = entries
                .into_iter()
                .map(|endpoint| match config.context_window {
                    Some(tokens) => endpoint.with_context_window(tokens),
                    None => endpoint,
                })
                .collect();
            let options = ClientOptions {
                max_concurrency: config.trainer.concurrency,
                cache: cache.clone(),
                meter: Some(meter.clone()),
                ..ClientOptions::default()
            };
            Ok(routed_model(entries, routing, &options, spread)?)
        };
        Ok(Self {
            agent: client(agent)?,
            optimizer: client(optimizer)?,
            meter,
            _local_server: local_server,
        })
    }
}

/// The trainer the config describes, over the MATH task on `models`.
fn trainer(
    config: &RunConfig,
    root: &Path,
    models: &Models,
    progress: Progress,
) -> anyhow::Result<Trainer<MathTask>> {
    let environment = PythonEnvironment::ensure().context("preparing the Python sandbox")?;
    let sandboxes = MathSandboxes::start(&environment, config.trainer.concurrency)?;
    let task = MathTask::new(
        Arc::clone(&models.agent),
        sandboxes.conversations,
        sandboxes.checker,
    )
    .with_options(config.task.clone());
    let options = TrainerOptions {
        run_dir: root.to_owned(),
        meter: Some(models.meter.clone()),
        proposal_sandbox: Some(sandboxes.proposals),
        setup: Setup {
            task: "MATH".to_owned(),
            model: config.model.clone(),
            optimizer_model: config.optimizer_model.clone(),
            endpoint: config.endpoint.to_string(),
            data: format!("train: {}; test: {}", config.train, config.test),
            selection: config.train.selection.to_string(),
            ..Setup::default()
        },
        ..config.trainer.clone()
    };
    Ok(Trainer::new(task, Arc::clone(&models.optimizer), options)
        .with_observer(Arc::new(ProgressObserver::new(progress))))
}
