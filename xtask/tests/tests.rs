//! The xtask test binary: the benchmark's pure parts (data, statistics, reports,
//! plot, run directory, flags).

mod cli;
mod data;
mod e2e;
mod real_model;
mod report;
mod rundir;
mod stats;

/// The workspace root (xtask's parent).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_owned()
}
