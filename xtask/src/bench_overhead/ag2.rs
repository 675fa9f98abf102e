//! The seed notebook's loop on AG2 0.13.4 (`xtask/bench/ag2_seed_loop.py`), in a
//! venv of its own owned by `agentopt-pyenv`, against a scripted server like the
//! agentopt runs'.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use agentopt_pyenv::{Venv, VenvOptions};
use agentopt_testkit::ScriptedServer;
use anyhow::Context as _;
use serde::Deserialize;

use super::agentopt::{MODEL, Shape, answers, load_problems};
use super::{last_json_line, scripted};

/// What AG2 is installed with: the notebook's library (with its OpenAI client) and
/// sympy for the assistant's cells (the sandbox's version).
const REQUIREMENTS: &[&str] = &["ag2[openai]==0.13.4", "sympy==1.14.0"];

/// Written in the venv once [`REQUIREMENTS`] are installed.
const INSTALLED_MARKER: &str = "agentopt-bench-ag2.txt";

/// What the AG2 run measured.
#[derive(Debug, Clone)]
pub struct Ag2Measurement {
    /// Wall time of the loop (agents built, every conversation and step).
    pub wall_s: f64,
    /// Chat calls the server answered.
    pub model_calls: u32,
    /// The server's latency per call.
    pub latency_ms: u64,
}

#[derive(Deserialize)]
struct DriverResult {
    wall_s: f64,
}

/// The venv with AG2, set up on first use under `target/bench-ag2-venv`.
fn venv(workspace: &Path) -> anyhow::Result<Venv> {
    let dir = workspace.join("target").join("bench-ag2-venv");
    let venv = Venv::ensure(&VenvOptions::new(&dir, (3, 10))).context("creating the AG2 venv")?;
    let _lock = venv.lock()?;
    let marker = venv.dir().join(INSTALLED_MARKER);
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        venv.install(REQUIREMENTS, &["--quiet"])
            .context("installing ag2 0.13.4")?;
        std::fs::write(&marker, &wanted)
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(venv)
}

/// Runs the driver at `shape` (sizes, epochs, actions, latency) and measures it.
///
/// # Errors
/// The venv or install, the data, or a failed driver.
pub async fn measure(
    shape: &Shape,
    data: &Path,
    workspace: &Path,
    work: &Path,
) -> anyhow::Result<Ag2Measurement> {
    let owned = workspace.to_owned();
    let venv = tokio::task::spawn_blocking(move || venv(&owned)).await??;
    let problems = load_problems(shape, data)?;
    let server = ScriptedServer::builder()
        .model(MODEL)
        .n_ctx(1 << 20)
        .rule(scripted::rule(answers(&problems), shape.latency()))
        .await;
    let subject = shape.subject.as_deref().unwrap_or("algebra");
    let file = |dir: PathBuf| dir.join(format!("{subject}.jsonl"));
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let output = tokio::process::Command::new(venv.python())
        .arg(
            workspace
                .join("xtask")
                .join("bench")
                .join("ag2_seed_loop.py"),
        )
        .arg("--base-url")
        .arg(server.base_url())
        .arg("--test-file")
        .arg(file(data.to_owned()))
        .arg("--train-file")
        .arg(file(data.join("train")))
        .args(["--test-size", &shape.test.to_string()])
        .args(["--train-size", &shape.train.to_string()])
        .args(["--epochs", &shape.epochs.to_string()])
        .args(["--actions", &shape.actions.to_string()])
        .current_dir(work)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running the AG2 driver")?;
    let result: DriverResult = last_json_line("the AG2 driver", &output)?;
    Ok(Ag2Measurement {
        wall_s: result.wall_s,
        model_calls: u32::try_from(server.chat_requests().len()).unwrap_or(u32::MAX),
        latency_ms: shape.latency_ms,
    })
}
