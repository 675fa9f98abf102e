//! agentopt-core: function sets, their artifact, durable files.

use agentopt_core::files::{JsonLines, read_json_lines, read_versioned, write_json_atomic};
use agentopt_core::{
    CoreError, Demonstration, DemonstrationCall, FunctionDiff, FunctionSet, LearnedFunction,
    Provenance,
};
use serde_json::json;

fn function(name: &str, code: &str) -> LearnedFunction {
    LearnedFunction::new(name, code)
        .with_description(format!("{name} things"))
        .with_parameters(json!({"type": "object", "properties": {"x": {"type": "integer"}}}))
}

fn provenance() -> Provenance {
    Provenance {
        producer: "tests".to_owned(),
        optimizer_model: "scripted".to_owned(),
        performance: Some(0.5),
        steps: 2,
        exported_at_unix: 7,
    }
}

#[test]
fn artifact_round_trips_and_keeps_openai_tool_layout() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("functions.json");
    let set = FunctionSet::new([
        function("double", "def double(x):\n    return 2 * x\n").with_packages(["sympy"]),
        function("square", "def square(x):\n    return x * x\n").with_demonstrations(vec![
            Demonstration {
                problem: "What is 3 squared?".to_owned(),
                solution: "print(square(3))".to_owned(),
                answer: "9".to_owned(),
                call: Some(DemonstrationCall {
                    arguments: json!({"x": 3}),
                    result: "9".to_owned(),
                }),
            },
        ]),
    ])
    .with_provenance(provenance());
    set.save(&path)?;
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    assert_eq!(raw["format"], "agentopt-functions");
    assert_eq!(raw["functions"][0]["tool"]["type"], "function");
    assert_eq!(raw["functions"][0]["tool"]["function"]["name"], "double");
    assert_eq!(raw["functions"][0]["packages"], json!(["sympy"]));
    assert!(
        raw["functions"][0].get("demonstrations").is_none(),
        "a function without examples is written as before"
    );
    assert_eq!(raw["functions"][1]["demonstrations"][0]["answer"], "9");
    assert_eq!(FunctionSet::load(&path)?, set);
    Ok(())
}

#[test]
fn load_names_the_file_and_the_function_that_breaks_a_rule() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let check = |name: &str, content: serde_json::Value, expected: &str| -> anyhow::Result<()> {
        let path = dir.path().join(name);
        std::fs::write(&path, content.to_string())?;
        let error = FunctionSet::load(&path).expect_err(name).to_string();
        assert!(error.contains(name), "{error}");
        assert!(error.contains(expected), "{name}: {error}");
        Ok(())
    };
    let entry = |name: &str| {
        json!({"tool": {"type": "function", "function": {"name": name, "parameters": {}}},
               "packages": [], "code": "def f(): pass"})
    };
    let file = |functions: Vec<serde_json::Value>| {
        json!({"format": "agentopt-functions", "version": 1, "functions": functions,
               "provenance": {"producer": "", "optimizer_model": "", "performance": null,
                              "steps": 0, "exported_at_unix": 0}})
    };
    check(
        "bad-name.json",
        file(vec![entry("2x")]),
        "\"2x\" is not a valid Python identifier",
    )?;
    check(
        "twice.json",
        file(vec![entry("f"), entry("f")]),
        "appears twice",
    )?;
    check(
        "newer.json",
        json!({"format": "agentopt-functions", "version": 9}),
        "version 9 is not supported",
    )?;
    check(
        "keyword.json",
        file(vec![entry("lambda")]),
        "Python keyword",
    )?;
    Ok(())
}

#[test]
fn diff_lists_removed_added_and_revised() {
    let old = FunctionSet::new([
        function("a", "def a(x): return 1"),
        function("b", "def b(x): return 2"),
        function("c", "def c(x): return 3"),
    ]);
    let new = FunctionSet::new([
        function("a", "def a(x): return 1"),
        function("c", "def c(x): return 30"),
        function("d", "def d(x): return 4"),
    ]);
    let diff = old.diff(&new);
    assert_eq!(
        diff,
        FunctionDiff {
            removed: vec!["b".to_owned()],
            added: vec![function("d", "def d(x): return 4")],
            revised: vec![function("c", "def c(x): return 30")],
        }
    );
    assert!(new.diff(&new).is_empty());
}

#[test]
fn upsert_replaces_in_place_and_remove_reports() {
    let mut set = FunctionSet::new([function("a", "1"), function("b", "2")]);
    set.upsert(function("a", "3"));
    assert_eq!(set.names(), ["a", "b"]);
    assert_eq!(set.get("a").map(|f| f.code.as_str()), Some("3"));
    assert!(set.remove("a"));
    assert!(!set.remove("a"));
    assert_eq!(set.len(), 1);
}

#[test]
fn old_checkpoints_with_arguments_field_still_read() -> anyhow::Result<()> {
    let function: LearnedFunction = serde_json::from_value(json!({
        "name": "f", "description": "d", "arguments": {"type": "object"},
        "packages": [], "code": "def f(): pass"
    }))?;
    assert_eq!(function.parameters, json!({"type": "object"}));
    Ok(())
}

#[test]
fn json_lines_drop_a_torn_last_line_and_name_a_bad_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("records.jsonl");
    std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n{\"n\":")?;
    assert_eq!(read_json_lines::<serde_json::Value>(&path)?.len(), 2);
    let mut lines = JsonLines::open(&path)?;
    lines.append(&json!({"n": 3}))?;
    let read: Vec<serde_json::Value> = read_json_lines(&path)?;
    assert_eq!(
        read,
        vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]
    );

    std::fs::write(&path, "{\"n\":1}\nnot json\n")?;
    let error = read_json_lines::<serde_json::Value>(&path).expect_err("bad line");
    assert!(
        matches!(error, CoreError::Format { line: Some(2), .. }),
        "{error}"
    );
    assert!(read_json_lines::<serde_json::Value>(&dir.path().join("missing"))?.is_empty());
    Ok(())
}

#[test]
fn versioned_reads_check_format_and_version_first() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.json");
    write_json_atomic(&path, &json!({"format": "x", "version": 1, "value": 5}))?;
    let value: serde_json::Value = read_versioned(&path, "x", 1)?;
    assert_eq!(value["value"], 5);
    let error = read_versioned::<serde_json::Value>(&path, "y", 1).expect_err("other format");
    assert!(
        matches!(error, CoreError::UnsupportedVersion { .. }),
        "{error}"
    );
    Ok(())
}
