//! `cargo xtask bench-local`: flags and the printed table.

use std::time::Duration;

use agentopt_train::Throughput;
use clap::Parser;
use xtask::bench_local::{BenchLocalArgs, Row, table};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchLocalArgs,
}

#[test]
fn defaults_measure_one_two_and_four_slots() {
    let args = Cli::parse_from(["bench-local"]).args;
    assert_eq!(args.concurrency, [1, 2, 4]);
    assert_eq!(
        (args.problems, args.max_reply_tokens, args.max_turns),
        (8, 768, 4)
    );
    let args = Cli::parse_from(["bench-local", "--concurrency", "3,6"]).args;
    assert_eq!(args.concurrency, [3, 6]);
}

#[test]
fn the_table_gives_problems_per_hour() {
    let row = |concurrency, seconds, rss| Row {
        throughput: Throughput {
            concurrency,
            problems: 4,
            solved: 1,
            infrastructure: 0,
            tokens: 7200,
            wall: Duration::from_secs(seconds),
        },
        peak_rss_mib: rss,
    };
    assert_eq!(
        table(&[row(1, 720, Some(2000)), row(4, 360, None)]),
        "| concurrency (slots) | problems | solved | infra errors | wall | problems/hour | tokens/s | server peak RSS |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | 1 | 4 | 1 | 0 | 720 s | 20.0 | 10.0 | 2000 MiB |\n\
         | 4 | 4 | 1 | 0 | 360 s | 40.0 | 20.0 | ? |\n"
    );
}
