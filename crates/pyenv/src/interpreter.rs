//! Finding the real Python interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::PyEnvError;

/// Environment variable naming the Python interpreter to build venvs from.
pub const AGENTOPT_PYTHON: &str = "AGENTOPT_PYTHON";

/// Prints what [`PythonInfo`] holds, one line each. `-I` keeps the user's
/// site-packages and `PYTHON*` variables out of the answer.
const PROBE: &str = "import sys; print(sys.executable); print(sys.base_prefix); print('%d.%d.%d' % sys.version_info[:3])";

/// A real interpreter, as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// Its executable with links resolved (`sys.executable`: a pyenv shim answers
    /// with the real binary).
    pub executable: PathBuf,
    /// `sys.base_prefix`: the installation, also when asked through a venv.
    pub base_prefix: PathBuf,
    /// The version, e.g. `3.11.7`.
    pub version: String,
}

impl PythonInfo {
    /// Asks `candidate` to describe itself; the reason it is unusable otherwise.
    pub(crate) fn probe(candidate: &Path, minimum: (u32, u32)) -> Result<Self, String> {
        let output = Command::new(candidate)
            .args(["-I", "-c", PROBE])
            .output()
            .map_err(|error| error.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let [executable, base_prefix, version] = stdout.lines().collect::<Vec<_>>()[..] else {
            return Err(format!("unexpected answer {stdout:?}"));
        };
        if parse_version(version).is_none_or(|found| found < minimum) {
            return Err(format!(
                "version {version} is older than {}.{}",
                minimum.0, minimum.1
            ));
        }
        let executable = std::fs::canonicalize(executable)
            .map_err(|error| format!("resolving {executable}: {error}"))?;
        Ok(Self {
            executable,
            base_prefix: PathBuf::from(base_prefix),
            version: version.to_owned(),
        })
    }
}

/// `3.11.7` → `(3, 11)`.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
        _ => None,
    }
}

/// The first usable interpreter at least `minimum` (major, minor): `explicit` when
/// given, else `$AGENTOPT_PYTHON` when set, else `python3`, `python` and
/// `/usr/bin/python3` in that order.
///
/// # Errors
/// [`PyEnvError::NoPython`] listing each candidate and why it was rejected.
pub fn find_interpreter(
    explicit: Option<&Path>,
    minimum: (u32, u32),
) -> Result<PythonInfo, PyEnvError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(path) => vec![path.to_owned()],
        None => match std::env::var_os(AGENTOPT_PYTHON).filter(|python| !python.is_empty()) {
            Some(python) => vec![PathBuf::from(python)],
            None => ["python3", "python", "/usr/bin/python3"]
                .map(PathBuf::from)
                .to_vec(),
        },
    };
    let mut tried = Vec::new();
    for candidate in &candidates {
        match PythonInfo::probe(candidate, minimum) {
            Ok(info) => return Ok(info),
            Err(reason) => tried.push((candidate.clone(), reason)),
        }
    }
    Err(PyEnvError::NoPython {
        minimum: format!("{}.{}", minimum.0, minimum.1),
        tried,
    })
}
