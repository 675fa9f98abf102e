//! `cargo xtask test`: the one test command (README, `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the tests that need the real local model (they download ≈0.5 GB once).
    #[arg(long)]
    no_real_model: bool,
    /// Extra arguments passed to `cargo test` (a test-name filter, say).
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    step(
        "cargo fmt --check",
        &root,
        "cargo",
        &["fmt", "--all", "--check"],
    )?;
    step(
        "cargo clippy",
        &root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut test_args: Vec<&str> = vec!["test", "--workspace"];
    test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    step("cargo test", &root, "cargo", &test_args)?;
    if !args.no_real_model {
        // Real-model tests are `#[ignore]`d so a plain `cargo test` stays offline and
        // fast; their names start with `real_model_` and only they run here.
        step(
            "real-model tests",
            &root,
            "cargo",
            &["test", "--workspace", "--", "--ignored", "real_model_"],
        )?;
    }
    Ok(())
}

fn step(title: &str, dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("==> {title}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
