//! The managed Python environment: a venv under `$AGENTOPT_HOME` (or the per-user
//! cache dir) built from the real interpreter, with sympy and numpy installed.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// Packages every environment has.
pub const BASE_PACKAGES: &[&str] = &["sympy==1.14.0", "numpy>=1.26,<3"];

/// Packages a learned function may ask for. Installed at setup only, never from
/// inside the sandbox (the sandbox has no network).
pub const PACKAGE_ALLOWLIST: &[&str] = &["mpmath", "networkx", "numpy", "pandas", "scipy", "sympy"];

const MANIFEST: &str = "agentopt-manifest.json";

/// Where the environment lives and what to install in it.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentOptions {
    /// Root directory; `None` means `$AGENTOPT_HOME`, else `<cache dir>/agentopt`.
    pub home: Option<PathBuf>,
    /// Interpreter to build the venv from; `None` means `$AGENTOPT_PYTHON`, else
    /// `python3` on `PATH` (pyenv shims resolved to the real binary).
    pub python: Option<PathBuf>,
    /// Extra packages (bare names from [`PACKAGE_ALLOWLIST`]).
    pub extra_packages: Vec<String>,
}

/// A ready venv. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonEnvironment {
    /// The venv directory.
    pub venv: PathBuf,
    /// The venv's interpreter (`<venv>/bin/python`).
    pub interpreter: PathBuf,
    /// `sys.base_prefix` of the real interpreter the venv was built from.
    pub base_prefix: PathBuf,
    /// Python version, e.g. `3.11.7`.
    pub version: String,
    /// Requirements installed (sorted).
    pub packages: BTreeSet<String>,
}

impl PythonEnvironment {
    /// Create the default environment (sympy, numpy) if needed and return it.
    /// Idempotent and safe to call from many threads and processes at once (file lock).
    pub fn ensure() -> Result<Self, SandboxError> {
        Self::ensure_with(&EnvironmentOptions::default())
    }

    /// As [`Self::ensure`], with a chosen home, interpreter and extra allowlisted packages.
    pub fn ensure_with(options: &EnvironmentOptions) -> Result<Self, SandboxError> {
        let mut wanted: BTreeSet<String> = BASE_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        for package in &options.extra_packages {
            wanted.insert(allowlisted(package)?);
        }
        let home = match &options.home {
            Some(home) => home.clone(),
            None => default_home()?,
        };
        fs::create_dir_all(&home)
            .map_err(|e| SandboxError::io(format!("creating {}", home.display()), e))?;
        let lock_path = home.join("python.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| SandboxError::io(format!("opening {}", lock_path.display()), e))?;
        lock.lock_exclusive()
            .map_err(|e| SandboxError::io(format!("locking {}", lock_path.display()), e))?;
        let venv = home.join("venv");
        let manifest_path = venv.join(MANIFEST);
        if let Some(existing) = read_manifest(&manifest_path)?
            && existing.packages.is_superset(&wanted)
            && existing.interpreter.exists()
        {
            return Ok(existing);
        }
        let python = resolve_interpreter(options.python.as_deref())?;
        if !venv.join("bin/python").exists() {
            run_setup(
                Command::new(&python.executable)
                    .args(["-I", "-m", "venv"])
                    .arg(&venv),
            )?;
        }
        let interpreter = venv.join("bin/python");
        let mut install = Command::new(&interpreter);
        install.args([
            "-I",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ]);
        install.args(&wanted);
        run_setup(&mut install)?;
        let environment = Self {
            venv,
            interpreter,
            base_prefix: python.base_prefix,
            version: python.version,
            packages: wanted,
        };
        let text =
            serde_json::to_string_pretty(&environment).map_err(|e| SandboxError::Manifest {
                path: manifest_path.clone(),
                detail: e.to_string(),
            })?;
        fs::write(&manifest_path, text)
            .map_err(|e| SandboxError::io(format!("writing {}", manifest_path.display()), e))?;
        Ok(environment)
    }
}

/// `$AGENTOPT_HOME`, else `<per-user cache dir>/agentopt`.
pub fn default_home() -> Result<PathBuf, SandboxError> {
    if let Some(home) = std::env::var_os("AGENTOPT_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    dirs::cache_dir()
        .map(|dir| dir.join("agentopt"))
        .ok_or_else(|| {
            SandboxError::io(
                "finding the per-user cache dir (set AGENTOPT_HOME)",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
}

fn allowlisted(package: &str) -> Result<String, SandboxError> {
    let normalised = package.trim().to_ascii_lowercase().replace('_', "-");
    if PACKAGE_ALLOWLIST.contains(&normalised.as_str()) {
        Ok(normalised)
    } else {
        Err(SandboxError::PackageNotAllowed {
            package: package.to_owned(),
        })
    }
}

fn read_manifest(path: &Path) -> Result<Option<PythonEnvironment>, SandboxError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SandboxError::Manifest {
                path: path.to_owned(),
                detail: format!("{e}: {text}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::io(format!("reading {}", path.display()), e)),
    }
}

struct RealInterpreter {
    executable: PathBuf,
    base_prefix: PathBuf,
    version: String,
}

/// Asks the candidate itself for `sys.executable`, which sees through pyenv shims.
fn resolve_interpreter(explicit: Option<&Path>) -> Result<RealInterpreter, SandboxError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_owned()],
        None => match std::env::var_os("AGENTOPT_PYTHON") {
            Some(path) => vec![PathBuf::from(path)],
            None => vec![PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")],
        },
    };
    let mut detail = String::new();
    for candidate in &candidates {
        let probe = Command::new(candidate)
            .args(["-I", "-c", "import sys; print(sys.executable); print(sys.base_prefix); print('%d.%d.%d' % sys.version_info[:3]); print(sys.version_info >= (3, 9))"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                if let [executable, base_prefix, version, "True"] = lines.as_slice() {
                    let executable = fs::canonicalize(executable)
                        .map_err(|e| SandboxError::io(format!("resolving {executable}"), e))?;
                    return Ok(RealInterpreter {
                        executable,
                        base_prefix: PathBuf::from(base_prefix),
                        version: (*version).to_owned(),
                    });
                }
                detail = format!(
                    "{} answered {text:?} (need Python >= 3.9)",
                    candidate.display()
                );
            }
            Ok(out) => {
                detail = format!(
                    "{} failed: {}",
                    candidate.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
            }
            Err(e) => detail = format!("{}: {e}", candidate.display()),
        }
    }
    Err(SandboxError::PythonNotFound {
        tried: candidates,
        detail,
    })
}

fn run_setup(command: &mut Command) -> Result<(), SandboxError> {
    let line = format!("{command:?}");
    let out = command
        .output()
        .map_err(|e| SandboxError::io(format!("running {line}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(SandboxError::SetupCommand {
        command: line,
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}
