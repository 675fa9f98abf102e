//! The workspace's structural invariants (docs/architecture.md) that a command can
//! check, checked on every `cargo xtask test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Each workspace crate's layer in docs/architecture.md's diagram: a crate depends
/// only on crates of lower layers (so `llm` and `sandbox`, or `optimizer` and
/// `agents`, know nothing of each other).
const LAYERS: &[(&str, u8)] = &[
    ("agentopt-core", 0),
    ("agentopt-math", 0),
    ("agentopt-pyenv", 1),
    ("agentopt-llm", 2),
    ("agentopt-sandbox", 2),
    ("agentopt-testkit", 2),
    ("agentopt-local", 3),
    ("agentopt-agents", 3),
    ("agentopt-optimizer", 3),
    ("agentopt-train", 4),
    ("agentopt-mathchat", 5),
    ("agentopt-python", 6),
    ("agentopt", 6),
    ("xtask", 6),
];

/// The line budget of `xtask/src/bench_math` (flags and rendering only; the training
/// run is the library's).
const BENCH_MATH_MAX_LINES: usize = 1_500;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_owned()
}

/// `cargo metadata` of the workspace's own packages.
fn workspace_packages() -> Vec<Value> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    metadata["packages"]
        .as_array()
        .expect("a package list")
        .clone()
}

#[test]
fn no_dependency_arrow_runs_back_up() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let packages = workspace_packages();
    let mut wrong = Vec::new();
    for package in &packages {
        let name = package["name"].as_str().expect("a name");
        let Some(&layer) = layers.get(name) else {
            panic!("{name} has no layer in LAYERS (and docs/architecture.md's diagram)");
        };
        let dependencies = package["dependencies"].as_array().expect("a list");
        // Normal and build dependencies shape the layering; tests may use anything.
        let used = dependencies.iter().filter(|d| d["kind"] != "dev");
        for dependency in used {
            let target = dependency["name"].as_str().expect("a name");
            if let Some(&below) = layers.get(target)
                && below >= layer
            {
                wrong.push(format!(
                    "{name} (layer {layer}) -> {target} (layer {below})"
                ));
            }
        }
    }
    assert_eq!(packages.len(), LAYERS.len(), "a crate was added or removed");
    assert!(
        wrong.is_empty(),
        "arrows running sideways or up: {wrong:#?}"
    );
}

#[test]
fn the_testkit_is_a_dev_dependency_of_the_libraries() {
    for package in workspace_packages() {
        let name = package["name"].as_str().expect("a name");
        let uses_testkit = package["dependencies"]
            .as_array()
            .expect("a list")
            .iter()
            .any(|d| d["name"] == "agentopt-testkit" && d["kind"] != "dev");
        assert!(
            !uses_testkit || name == "xtask",
            "{name} depends on agentopt-testkit outside its tests"
        );
    }
}

#[test]
fn every_member_uses_the_workspace_lints_and_one_test_binary() {
    for package in workspace_packages() {
        let name = package["name"].as_str().expect("a name");
        let manifest = std::fs::read_to_string(package["manifest_path"].as_str().expect("a path"))
            .expect("manifest readable");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{name} does not set [lints] workspace = true"
        );
        let test_binaries = package["targets"]
            .as_array()
            .expect("a list")
            .iter()
            .filter(|target| target["kind"][0] == "test")
            .count();
        assert!(
            test_binaries <= 1,
            "{name} has {test_binaries} test binaries"
        );
    }
}

#[test]
fn bench_math_stays_under_its_line_budget() {
    let dir = workspace_root().join("xtask/src/bench_math");
    let lines: usize = std::fs::read_dir(&dir)
        .expect("bench_math exists")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            std::fs::read_to_string(path)
                .expect("readable")
                .lines()
                .count()
        })
        .sum();
    assert!(
        lines < BENCH_MATH_MAX_LINES,
        "xtask/src/bench_math has {lines} lines, the budget is {BENCH_MATH_MAX_LINES}"
    );
}

#[test]
fn the_readme_stays_a_page_for_users() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the engineering detail belongs in docs/"
    );
}
