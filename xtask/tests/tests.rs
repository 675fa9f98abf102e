//! The xtask test binary: bench-math's flags, config, plot, and the end-to-end runs.

mod bench_local;
mod cli;
mod e2e;
mod faults;
mod plot;
mod real_model;
mod rundir;
