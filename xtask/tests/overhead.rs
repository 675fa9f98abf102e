//! `cargo xtask bench-overhead` at a tiny size, as a real process, so the benchmark
//! cannot rot: 1 training and 1 test problem, 1 epoch, 1 ms per call, and a
//! 2-problem run over all subjects.

use std::process::Command;

#[test]
fn bench_overhead_prints_its_table() {
    let work = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench-overhead",
            "--latency-ms",
            "1",
            "--concurrency",
            "1,2",
        ])
        .args(["--train-size", "1", "--test-size", "1", "--epochs", "1"])
        .args(["--scale-problems", "2", "--scale-latency-ms", "1"])
        // This test binary's own build: a release build would only slow the test.
        .arg("--this-build")
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .expect("xtask runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench-overhead failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("| run | latency | wall | model calls | critical path |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Measured build: debug."),
        "the table names the build it measured: {stdout}"
    );
    // 3 conversations (test before, epoch 1, test after) of 3 calls each (code,
    // answer, TERMINATE) and 3 optimizer actions; with one problem per phase the
    // longest chain of dependent calls is all of them.
    for row in [
        "| agentopt, concurrency 1 | 1 ms |",
        "| agentopt, concurrency 2 | 1 ms |",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in {stdout}"));
        assert!(line.contains("| 12 | 12 calls = 0.01 s |"), "{line}");
    }
    let scale = stdout
        .lines()
        .find(|line| line.starts_with("| agentopt, 2 problems, concurrency 32 | 1 ms |"))
        .unwrap_or_else(|| panic!("no scale row in {stdout}"));
    // 1 + 1 problems, 2 epochs: 4 conversations, 2 steps of 3 actions.
    assert!(scale.contains("| 18 | 18 calls = 0.02 s |"), "{scale}");
    assert!(stdout.contains("peak RSS ≤ 32 MiB"), "{stdout}");
}
