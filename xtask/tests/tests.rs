//! The xtask test binary: bench-math's flags, config, plot, and the end-to-end runs;
//! bench-overhead at a tiny size.

mod bench_local;
mod cli;
mod compare_runs;
mod e2e;
mod faults;
mod overhead;
mod real_model;
mod report_html;
mod rundir;
mod structure;
