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
    /// Skip the Python package's pytest suite (venv, wheel build, pytest).
    #[arg(long)]
    no_python: bool,
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

    ensure_apt_package("bwrap", "bubblewrap")?;
    // The report test opens report.html in a real browser; where Chromium cannot be
    // installed, that one test is skipped and the reason printed.
    let browser = ensure_apt_package("chromium", "chromium");
    if let Err(error) = &browser {
        eprintln!("warning: skipping the `chromium_` tests: {error:#}");
    }
    allow_unprivileged_user_namespaces();
    eprintln!("==> Python environment for the sandbox (venv with sympy, numpy)");
    let python = agentopt_sandbox::PythonEnvironment::ensure()
        .context("setting up the sandbox's Python environment")?;
    eprintln!("    {} (Python {})", python.venv.display(), python.version);
    if !args.no_real_model {
        eprintln!("==> local model for the real-model tests (0.5B, downloaded once)");
        let model = agentopt_local::prepare_blocking(
            agentopt_local::LocalModel::QwenCoder0_5B,
            agentopt_local::Progress::Show,
        )
        .context("obtaining the local model")?;
        eprintln!("    {}", model.display());
    }

    let mut totals = TestTotals::default();
    let mut test_args: Vec<&str> = vec!["test", "--workspace"];
    test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    if browser.is_err() {
        if !test_args.contains(&"--") {
            test_args.push("--");
        }
        test_args.extend(["--skip", "chromium_"]);
    }
    test_step(
        "cargo test",
        Command::new("cargo").args(&test_args).current_dir(&root),
        &mut totals,
    )?;
    if !args.no_real_model {
        // Real-model tests are `#[ignore]`d so a plain `cargo test` stays offline and
        // fast; their names start with `real_model_` and only they run here.
        test_step(
            "real-model tests",
            Command::new("cargo")
                .args(["test", "--workspace", "--", "--ignored", "real_model_"])
                .current_dir(&root),
            &mut totals,
        )?;
    }
    if !args.no_python {
        python_tests(&root, &mut totals)?;
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

impl TestTotals {
    /// Adds pytest's closing line, e.g. `==== 18 passed, 1 skipped, 6 warnings in 3.75s ====`.
    fn add_pytest_line(&mut self, line: &str) {
        if !(line.starts_with('=') && line.contains(" in ")) {
            return;
        }
        let words: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|word| !word.is_empty())
            .collect();
        for pair in words.windows(2) {
            let Ok(count) = pair[0].parse::<u64>() else {
                continue;
            };
            match pair[1] {
                "passed" => self.passed += count,
                "failed" | "error" | "errors" => self.failed += count,
                "skipped" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Where the Python tooling lives: a venv under the target dir.
pub(crate) struct PythonTooling {
    /// The venv's interpreter.
    pub(crate) python: PathBuf,
    /// The scripted server binary the Python tests and benchmark start.
    pub(crate) scripted_server: PathBuf,
    /// maturin's wheel, for `pip install ./crates/python` without the network.
    pub(crate) wheelhouse: PathBuf,
}

/// Creates `target/python-venv` (once), installs maturin, ag2 0.13.4 with its
/// OpenAI client and pytest, builds the `agentopt` wheel with the cargo `profile`
/// and installs it, and builds the scripted server.
pub(crate) fn prepare_python(root: &Path, profile: &str) -> anyhow::Result<PythonTooling> {
    let venv = python_venv_with(
        root,
        &[
            "maturin==1.16.0",
            "ag2[openai]==0.13.4",
            "pytest",
            "nbclient",
            "nbformat",
            "ipykernel",
        ],
    )?;
    let python = venv.join("bin/python");
    let python_text = python.to_string_lossy().into_owned();
    let wheels = root.join("target/wheels").join(profile);
    // A wheel of an earlier version must not be picked up below.
    let _ = std::fs::remove_dir_all(&wheels);
    step(
        "build the agentopt wheel",
        root,
        &venv.join("bin/maturin").to_string_lossy(),
        &[
            "build",
            "--profile",
            profile,
            "--interpreter",
            &python_text,
            "-m",
            "crates/python/Cargo.toml",
            "--out",
            &wheels.to_string_lossy(),
        ],
    )?;
    let wheel = std::fs::read_dir(&wheels)
        .with_context(|| format!("listing {}", wheels.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("maturin built no wheel into {}", wheels.display()))?;
    pip_install(
        root,
        &python,
        "install the agentopt wheel",
        &["--force-reinstall", "--no-deps", &wheel.to_string_lossy()],
    )?;
    step(
        "build the scripted server",
        root,
        "cargo",
        &[
            "build",
            "-p",
            "agentopt-testkit",
            "--bin",
            "scripted-server",
        ],
    )?;
    // What the install test's isolated build environment needs, so that it
    // installs `./crates/python` offline.
    let wheelhouse = root.join("target/python-wheelhouse");
    step(
        "download maturin for the install test",
        root,
        &python_text,
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "maturin==1.16.0",
            "-d",
            &wheelhouse.to_string_lossy(),
        ],
    )?;
    Ok(PythonTooling {
        python,
        scripted_server: root.join("target/debug/scripted-server"),
        wheelhouse,
    })
}

/// `target/python-venv` (created once) with `packages` installed; returns its path.
pub(crate) fn python_venv_with(root: &Path, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = root.join("target/python-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        step(
            "create the Python venv",
            root,
            "python3",
            &["-m", "venv", &venv.to_string_lossy()],
        )?;
    }
    if !packages.is_empty() {
        pip_install(root, &python, "install Python tools", packages)?;
    }
    Ok(venv)
}

/// `python -m pip install --quiet ARGS`.
fn pip_install(root: &Path, python: &Path, title: &str, args: &[&str]) -> anyhow::Result<()> {
    let args = [
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ][..],
        args,
    ]
    .concat();
    step(title, root, &python.to_string_lossy(), &args)
}

/// The Python package's pytest suite, against the scripted server.
fn python_tests(root: &Path, totals: &mut TestTotals) -> anyhow::Result<()> {
    let tooling = prepare_python(root, "dev")?;
    test_step(
        "pytest",
        Command::new(&tooling.python)
            .args(["-m", "pytest", "crates/python/tests"])
            .current_dir(root)
            .env("AGENTOPT_SCRIPTED_SERVER", &tooling.scripted_server)
            .env("AGENTOPT_WHEELHOUSE", &tooling.wheelhouse)
            // The install test's build reuses this build's artifacts.
            .env("CARGO_TARGET_DIR", root.join("target")),
        totals,
    )
}

/// Runs `command`, echoing its output while counting test results (libtest's and
/// pytest's closing lines).
fn test_step(title: &str, command: &mut Command, totals: &mut TestTotals) -> anyhow::Result<()> {
    eprintln!("==> {title}: {command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {title}"))?;
    let stdout = child.stdout.take().context("the test runner's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the test runner's output")?;
        println!("{line}");
        totals.add_summary_line(&line);
        totals.add_pytest_line(&line);
    }
    let status = child.wait().context("waiting for the test runner")?;
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

/// Installs Debian's `package` with apt-get unless `program` is on the `PATH`: the
/// sandbox isolates LLM-written code with bubblewrap, and the report test opens
/// pages in Chromium; a fresh machine lacks both.
fn ensure_apt_package(program: &str, package: &str) -> anyhow::Result<()> {
    if on_path(program) {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!("`{program}` is missing and apt-get is not available: install {package}");
    }
    let apt_get: &[&str] = if is_root() {
        &["apt-get"]
    } else {
        &["sudo", "apt-get"]
    };
    for args in [&["update", "-qq"][..], &["install", "-y", "-qq", package]] {
        let command = [apt_get, args].concat();
        step(
            &format!("install {package}"),
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

pub(crate) fn step(title: &str, dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    step_with_env(title, dir, program, args, &[])
}

/// As [`step`], with extra environment variables.
pub(crate) fn step_with_env(
    title: &str,
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<()> {
    eprintln!("==> {title}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

pub(crate) fn workspace_root() -> PathBuf {
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

    fn check_pytest(line: &str, expected: (u64, u64, u64)) {
        let mut totals = TestTotals::default();
        totals.add_pytest_line(line);
        assert_eq!((totals.passed, totals.failed, totals.ignored), expected);
    }

    #[test]
    fn reads_pytest_closing_lines() {
        check_pytest("======= 19 passed, 6 warnings in 3.75s =======", (19, 0, 0));
        check_pytest(
            "== 1 failed, 17 passed, 2 skipped, 1 error in 9.01s ==",
            (17, 2, 2),
        );
        check_pytest("19 passed in 3.75s", (0, 0, 0));
        check_pytest("collected 19 items", (0, 0, 0));
    }
}
