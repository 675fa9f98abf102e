//! agentopt's shared vocabulary, below every other crate:
//! - [`LearnedFunction`]: one Python function an agent may call (name, description,
//!   argument schema, packages, code) — the one type the optimizer proposes, the
//!   agents offer and run, and the artifact stores;
//! - [`FunctionSet`]: an ordered set of them with its provenance, saved and loaded
//!   as the `functions.json` artifact, and [`FunctionDiff`] between two sets;
//! - durable JSON files ([`files`]): atomic whole-file writes and fsync'd JSON lines,
//!   so a kill at any moment leaves either the old or the new content.
//!
//! No Python parser, no network, no processes: reading an artifact needs nothing
//! but this crate.

mod error;
pub mod files;
mod function;
mod set;
mod sync;

pub use error::{CoreError, IoError, io_error};
pub use function::{LearnedFunction, check_identifier};
pub use set::{ARTIFACT_FORMAT, ARTIFACT_VERSION, FunctionDiff, FunctionSet, Provenance};
pub use sync::lock;
