//! `cargo xtask test`: the one test command (README, `.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

    ensure_bubblewrap()?;
    allow_unprivileged_user_namespaces();
    eprintln!("==> Python environment for the sandbox (venv with sympy, numpy)");
    let python = agentopt_sandbox::PythonEnvironment::ensure()
        .context("setting up the sandbox's Python environment")?;
    eprintln!("    {} (Python {})", python.venv.display(), python.version);
    if !args.no_real_model {
        eprintln!("==> local model for the real-model tests (0.5B, downloaded once)");
        let model = agentopt_llm::local::prepare_blocking(
            agentopt_llm::local::LocalModel::QwenCoder0_5B,
            agentopt_llm::local::Progress::Show,
        )
        .context("obtaining the local model")?;
        eprintln!("    {}", model.display());
    }

    let mut totals = TestTotals::default();
    let mut test_args: Vec<&str> = vec!["test", "--workspace"];
    test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    test_step("cargo test", &root, &test_args, &mut totals)?;
    if !args.no_real_model {
        // Real-model tests are `#[ignore]`d so a plain `cargo test` stays offline and
        // fast; their names start with `real_model_` and only they run here.
        test_step(
            "real-model tests",
            &root,
            &["test", "--workspace", "--", "--ignored", "real_model_"],
            &mut totals,
        )?;
    }
    // Each test binary closes with its own line; this one closes the whole run.
    println!(
        "xtask: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(())
}

/// Counts summed over every `test result:` line of the test binaries.
#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds one libtest summary line, e.g. `test result: ok. 3 passed; 0 failed; 1 ignored; …`.
    fn add_summary_line(&mut self, line: &str) {
        let Some(counts) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo <args>`, echoing its output while counting test results.
fn test_step(
    title: &str,
    dir: &Path,
    args: &[&str],
    totals: &mut TestTotals,
) -> anyhow::Result<()> {
    eprintln!("==> {title}: cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start `cargo`")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        println!("{line}");
        totals.add_summary_line(&line);
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

/// The sandbox isolates LLM-written code with bubblewrap; a fresh machine lacks it.
fn ensure_bubblewrap() -> anyhow::Result<()> {
    if on_path("bwrap") {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!("bubblewrap (`bwrap`) is missing and apt-get is not available: install bubblewrap");
    }
    let apt_get: &[&str] = if is_root() {
        &["apt-get"]
    } else {
        &["sudo", "apt-get"]
    };
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "bubblewrap"],
    ] {
        let command = [apt_get, args].concat();
        step(
            "install bubblewrap",
            Path::new("/"),
            command[0],
            &command[1..],
        )?;
    }
    Ok(())
}

/// Some distributions (Ubuntu 24.04) forbid unprivileged user namespaces through
/// AppArmor, which bubblewrap needs once the worker has dropped root. Lifting it is
/// best effort: where it stays forbidden the sandbox tests fail loudly.
fn allow_unprivileged_user_namespaces() {
    let knob = Path::new("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    if std::fs::read_to_string(knob).is_ok_and(|value| value.trim() == "1") {
        let sysctl: &[&str] = if is_root() {
            &["sysctl"]
        } else {
            &["sudo", "sysctl"]
        };
        let command = [
            sysctl,
            &["-w", "kernel.apparmor_restrict_unprivileged_userns=0"],
        ]
        .concat();
        if let Err(error) = step(
            "allow user namespaces",
            Path::new("/"),
            command[0],
            &command[1..],
        ) {
            eprintln!("warning: {error:#}");
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
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

#[cfg(test)]
mod tests {
    use super::TestTotals;

    fn check(lines: &[&str], expected: (u64, u64, u64)) {
        let mut totals = TestTotals::default();
        for line in lines {
            totals.add_summary_line(line);
        }
        assert_eq!((totals.passed, totals.failed, totals.ignored), expected);
    }

    #[test]
    fn sums_libtest_summary_lines() {
        check(
            &[
                "test result: ok. 54 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 4.51s",
                "running 3 tests",
                "test passed_and_failed ... ok",
                "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 9 filtered out; finished in 0.01s",
            ],
            (55, 2, 2),
        );
        check(&["3 passed; 1 failed"], (0, 0, 0));
    }
}
