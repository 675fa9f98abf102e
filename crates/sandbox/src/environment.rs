//! The managed Python environment: a venv under `$AGENTOPT_HOME` (or the per-user
//! cache dir) built from the real interpreter by `agentopt-pyenv`, with sympy and
//! numpy installed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use agentopt_pyenv::{PyEnvError, Venv, VenvOptions, rejections};
use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// Packages every environment has.
pub const BASE_PACKAGES: &[&str] = &["sympy==1.14.0", "numpy>=1.26,<3"];

/// Packages a learned function may ask for. Installed at setup only, never from
/// inside the sandbox (the sandbox has no network).
pub const PACKAGE_ALLOWLIST: &[&str] = &["mpmath", "networkx", "numpy", "pandas", "scipy", "sympy"];

/// Records what is installed (the serialised [`PythonEnvironment`]).
const MANIFEST: &str = "agentopt-manifest.json";

/// The oldest Python the worker runs on.
const MINIMUM_PYTHON: (u32, u32) = (3, 9);

/// Where the environment lives and what to install in it.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentOptions {
    /// Root directory; `None` means `$AGENTOPT_HOME`, else `<cache dir>/agentopt`.
    pub home: Option<PathBuf>,
    /// Interpreter to build the venv from; `None` means `$AGENTOPT_PYTHON`, else
    /// `python3`, `python` or `/usr/bin/python3` (pyenv shims resolved to the real
    /// binary; see [`agentopt_pyenv::find_interpreter`]).
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
            wanted.insert(allowlisted_package(package)?);
        }
        let home = match &options.home {
            Some(home) => home.clone(),
            None => default_home()?,
        };
        let venv = Venv::ensure(&VenvOptions {
            dir: home.join("venv"),
            lock: home.join("python.lock"),
            python: options.python.clone(),
            minimum: MINIMUM_PYTHON,
        })
        .map_err(setup_error)?;
        let _lock = venv.lock().map_err(setup_error)?;
        let manifest_path = venv.dir().join(MANIFEST);
        if let Some(existing) = read_manifest(&manifest_path)?
            && existing.packages.is_superset(&wanted)
            && existing.interpreter.exists()
        {
            return Ok(existing);
        }
        venv.install(&wanted.iter().collect::<Vec<_>>(), &["--quiet"])
            .map_err(setup_error)?;
        let environment = Self {
            venv: venv.dir().to_owned(),
            interpreter: venv.python(),
            base_prefix: venv.base().base_prefix.clone(),
            version: venv.base().version.clone(),
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

/// The normalised name (`Scipy`, `scipy ` → `scipy`) of an allowlisted package.
///
/// # Errors
/// [`SandboxError::PackageNotAllowed`] for anything not on [`PACKAGE_ALLOWLIST`]
/// (versions, URLs and paths included).
pub fn allowlisted_package(package: &str) -> Result<String, SandboxError> {
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

/// The venv manager's errors in this crate's terms.
fn setup_error(error: PyEnvError) -> SandboxError {
    match error {
        PyEnvError::NoPython { tried, .. } => SandboxError::PythonNotFound {
            detail: rejections(&tried),
            tried: tried.into_iter().map(|(candidate, _)| candidate).collect(),
        },
        PyEnvError::Command {
            command,
            status,
            output,
        } => SandboxError::SetupCommand {
            command,
            status,
            output,
        },
        PyEnvError::Io(agentopt_core::IoError {
            action,
            path,
            source,
        }) => SandboxError::io(format!("{action} {}", path.display()), source),
    }
}
