//! bench-math's `config.json`: written once, refused twice, read back on resume.

use xtask::bench_math::cli::{BenchArgs, Endpoints, LocalModelArg, resolve_endpoints, run_config};
use xtask::bench_math::rundir::{create_run_dir, open_run_dir};

fn local() -> (BenchArgs, Endpoints) {
    let args = BenchArgs::default();
    let endpoints = resolve_endpoints(&args, |_| None, std::path::Path::new("."))
        .expect("no endpoint configured: the local model");
    assert_eq!(
        endpoints,
        Endpoints::Local(LocalModelArg::default().model())
    );
    (args, endpoints)
}

#[test]
fn create_then_open_for_resume() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("run");
    let (args, endpoints) = local();
    let config = run_config(&args, &endpoints, dir.path());
    create_run_dir(&root, &config).expect("created");
    let error = create_run_dir(&root, &config).expect_err("already a run");
    assert!(error.to_string().contains("pass --resume"), "{error}");

    let resume = BenchArgs {
        budget_tokens: Some(5_000),
        concurrency: Some(3),
        ..args
    };
    let reopened = open_run_dir(&root, &resume, &endpoints).expect("opens");
    assert_eq!(reopened.epochs, config.epochs);
    assert_eq!(
        (reopened.budget_tokens, reopened.concurrency),
        (Some(5_000), 3),
        "may change on resume"
    );

    let error = open_run_dir(&dir.path().join("empty"), &resume, &endpoints)
        .expect_err("nothing to resume");
    assert!(
        error
            .to_string()
            .ends_with("holds no run to resume (no config.json)"),
        "{error}"
    );
}

#[test]
fn a_broken_config_names_its_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("config.json"),
        "{\n  \"version\": 1,\n  oops\n}",
    )
    .expect("write");
    let (args, endpoints) = local();
    let error = open_run_dir(dir.path(), &args, &endpoints).expect_err("broken");
    assert!(error.to_string().contains("config.json:3"), "{error}");
}
