//! Library half of `xtask`, so the benchmark's pure parts (data loading,
//! statistics, reports) are reachable from the integration tests.

pub mod bench_local;
pub mod bench_math;
pub mod bench_overhead;
pub mod bench_report;
pub mod bench_scale;
pub mod browser;
pub mod compare_runs;
pub mod data;
pub mod flags;
pub mod learned_use;
pub mod logging;
pub mod procmem;
pub mod sandboxes;
