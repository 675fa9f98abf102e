//! One manager for the Python venvs agentopt keeps (the sandbox's, with sympy and
//! numpy; the local model's, with the llama.cpp server runtime):
//! - [`find_interpreter`]: the real interpreter (`$AGENTOPT_PYTHON`, else `python3`,
//!   `python`, `/usr/bin/python3`), asked for its own `sys.executable` so a
//!   version-manager shim is resolved once, with its version checked;
//! - [`Venv::ensure`]: a venv built from it under a file lock, complete once its
//!   ready marker ([`READY_MARKER`]) is written; a leftover of an interrupted build
//!   is rebuilt;
//! - [`Venv::install`] / [`Venv::pip`]: pip inside the venv, under [`Venv::lock`];
//! - [`run`]: commands that fail with their command line, status and output.
//!
//! Blocking (std processes and `flock`); call it from `spawn_blocking` in async code.
//!
//! ```no_run
//! use agentopt_pyenv::{Venv, VenvOptions};
//!
//! # fn demo() -> Result<(), agentopt_pyenv::PyEnvError> {
//! let venv = Venv::ensure(&VenvOptions::new("/tmp/demo/venv", (3, 10)))?;
//! let _lock = venv.lock()?;
//! venv.install(&["sympy==1.14.0"], &["--quiet"])?;
//! println!("Python {} in {}", venv.base().version, venv.dir().display());
//! # Ok(())
//! # }
//! ```

mod command;
mod error;
mod interpreter;
mod lock;
mod venv;

pub use command::{check, describe, run, tail_lines};
pub use error::{PyEnvError, rejections};
pub use interpreter::{AGENTOPT_PYTHON, PythonInfo, find_interpreter};
pub use lock::FileLock;
pub use venv::{READY_MARKER, Venv, VenvOptions};
