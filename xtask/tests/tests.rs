//! The xtask test binary: the benchmark's pure parts (statistics, reports,
//! plot, run directory, flags).

mod cli;
mod e2e;
mod real_model;
mod report;
mod rundir;
mod stats;
