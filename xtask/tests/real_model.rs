//! The pipeline on the real embedded model (0.5B): run by `cargo xtask test`.

use std::process::Command;

use agentopt_core::files::read_json;
use agentopt_train::TrainingReport as Report;

#[test]
#[ignore = "real model: run by cargo xtask test"]
fn real_model_smoke_run_writes_a_report() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let run_dir = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir.path())
        .env_remove("OAI_CONFIG_LIST")
        .env_remove("OPENAI_API_KEY")
        .env_remove("AZURE_OPENAI_API_KEY")
        .args([
            "bench-math",
            "--quiet",
            "--preset",
            "smoke",
            "--local-model",
            "0.5b",
        ])
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "bench-math failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Accuracy is not asserted: a 0.5B model on one problem is a coin toss.
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(report.test_before.accuracy.total, 1);
    assert_eq!(report.test_after.accuracy.total, 1);
    assert_eq!(report.epochs.len(), 1);
    assert!(
        report
            .usage
            .iter()
            .any(|usage| usage.role == "assistant" && usage.calls > 0)
    );
    let svg = std::fs::read_to_string(run_dir.join("learning_curve.svg")).expect("svg");
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(run_dir.join("report.md").is_file());
    assert!(run_dir.join("functions.json").is_file());
}
