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
    assert_eq!(reopened.trainer.epochs, config.trainer.epochs);
    assert_eq!(
        (reopened.budget_tokens, reopened.trainer.concurrency),
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

#[test]
fn a_version_1_config_with_flat_settings_still_resumes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (args, endpoints) = local();
    let config = run_config(&args, &endpoints, dir.path());
    let current = serde_json::to_value(&config).expect("serializes");
    // What version 1 wrote: the same settings, flat.
    let mut flat = current.clone();
    let object = flat.as_object_mut().expect("an object");
    let trainer = object.remove("trainer").expect("trainer");
    let task = object.remove("task").expect("task");
    object.insert("version".to_owned(), 1.into());
    for key in [
        "epochs",
        "max_actions_per_step",
        "concurrency",
        "significance",
    ] {
        object.insert(key.to_owned(), trainer[key].clone());
    }
    let optimizer = &trainer["optimizer"];
    object.insert("patience".to_owned(), optimizer["patience"].clone());
    object.insert(
        "optimizer_actions".to_owned(),
        optimizer["action_format"].clone(),
    );
    object.insert(
        "require_action".to_owned(),
        optimizer["require_action"].clone(),
    );
    for (key, value) in task.as_object().expect("an object") {
        object.insert(key.clone(), value.clone());
    }
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string_pretty(&flat).expect("serializes"),
    )
    .expect("write");
    let read = open_run_dir(dir.path(), &args, &endpoints).expect("version 1 reads");
    assert_eq!(serde_json::to_value(&read).expect("serializes"), current);

    object_version(&dir, 9);
    let error = open_run_dir(dir.path(), &args, &endpoints).expect_err("unknown version");
    assert!(
        error
            .to_string()
            .contains("config.json has version Some(9)"),
        "{error}"
    );
}

/// Rewrites the version of the `config.json` in `dir`.
fn object_version(dir: &tempfile::TempDir, version: u32) {
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("parses");
    config["version"] = version.into();
    std::fs::write(&path, config.to_string()).expect("write");
}
