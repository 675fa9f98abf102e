//! Checkpoints, resume after a crash, and the portable artifact.

use std::sync::Arc;

use agentopt_agents::{ConversableAgent, UserProxyAgent, install};
use agentopt_llm::Role;
use agentopt_optimizer::{
    AgentOptimizer, FunctionSet, OptimizerError, OptimizerOptions, Partitioning, StepOutcome,
    check_function,
};
use agentopt_sandbox::{PythonEnvironment, SandboxPolicy, SandboxSessions};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::{Map, Value, json};

use crate::{add_sum, client, record, sandbox};

/// Non-default options, so a resume that lost them would send another request.
fn options(path: &std::path::Path) -> OptimizerOptions {
    OptimizerOptions {
        checkpoint: Some(path.to_path_buf()),
        max_tool_output_chars: 150,
        patience: Some(3),
        temperature: Some(0.25),
        seed: Some(7),
        ..OptimizerOptions::default()
    }
}

fn script() -> Vec<Reply> {
    vec![
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::tool_call(add_sum("other").0, add_sum("other").1),
    ]
}

#[tokio::test]
async fn resume_after_a_crash_between_record_and_step_sends_the_same_prompt() -> anyhow::Result<()>
{
    let directory = tempfile::tempdir()?;

    // Uninterrupted run.
    let straight = crate::server(script()).await;
    let path = directory.path().join("straight.json");
    let mut optimizer = AgentOptimizer::new(1, client(&straight), options(&path))?;
    record(&mut optimizer, &[true, false]);
    optimizer.step().await?;
    record(&mut optimizer, &[false, true, true]);
    let expected = optimizer.step().await?;

    // The same run, killed after recording the second batch.
    let crashed = crate::server(script()).await;
    let path = directory.path().join("crashed.json");
    let mut optimizer = AgentOptimizer::new(1, client(&crashed), options(&path))?;
    record(&mut optimizer, &[true, false]);
    optimizer.step().await?;
    record(&mut optimizer, &[false, true, true]);
    drop(optimizer);

    let mut resumed = AgentOptimizer::resume(&path, client(&crashed))?;
    assert_eq!(resumed.steps_taken(), 1);
    let outcome = resumed.step().await?;
    assert_eq!(outcome, expected);
    let bodies = |server: &ScriptedServer| -> Vec<Value> {
        server
            .chat_requests()
            .into_iter()
            .map(|request| request.body)
            .collect()
    };
    assert_eq!(bodies(&crashed), bodies(&straight));

    // The resumed optimizer keeps checkpointing to the file it came from.
    let checkpoint: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    assert_eq!(checkpoint["format"], "agentopt-optimizer-checkpoint");
    assert_eq!(checkpoint["version"], 3);
    assert_eq!(checkpoint["state"]["steps_taken"], 2);
    Ok(())
}

#[tokio::test]
async fn checkpoints_of_another_version_or_malformed_are_refused() -> anyhow::Result<()> {
    let server = crate::server([]).await;
    let directory = tempfile::tempdir()?;
    let newer = directory.path().join("newer.json");
    std::fs::write(
        &newer,
        json!({"format": "agentopt-optimizer-checkpoint", "version": 4}).to_string(),
    )?;
    let error = AgentOptimizer::resume(&newer, client(&server)).err();
    assert!(
        matches!(
            error,
            Some(OptimizerError::File(
                agentopt_core::CoreError::UnsupportedVersion { found: 4, .. }
            ))
        ),
        "{error:?}"
    );

    let broken = directory.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\n  \"format\": \"agentopt-optimizer-checkpoint\",\n  \"version\": ",
    )?;
    let error = AgentOptimizer::resume(&broken, client(&server)).err();
    assert!(
        matches!(
            &error,
            Some(OptimizerError::File(agentopt_core::CoreError::Format {
                line: Some(3),
                ..
            }))
        ),
        "{error:?}"
    );
    assert!(
        error
            .map(|e| e.to_string())
            .is_some_and(|text| text.contains("broken.json:3:"))
    );
    Ok(())
}

/// Trains `sum_numbers` into the best list (added by the first step, accepted by the
/// second) and exports the artifact to `path`; returns the optimizer, the first
/// step's outcome and the exported artifact.
async fn train_and_export_sum_numbers(
    path: &std::path::Path,
) -> anyhow::Result<(AgentOptimizer, StepOutcome, FunctionSet)> {
    let server = crate::server([
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer = AgentOptimizer::new(1, client(&server), OptimizerOptions::default())?;
    record(&mut optimizer, &[false]);
    let first_step = optimizer.step().await?;
    record(&mut optimizer, &[true]);
    optimizer.step().await?; // sum_numbers is now the best list
    let exported = optimizer.export_artifact(path)?;
    Ok((optimizer, first_step, exported))
}

#[tokio::test]
async fn artifact_round_trip_into_a_fresh_sandbox_that_calls_the_function() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("functions.json");
    let (optimizer, _, exported) = train_and_export_sum_numbers(&path).await?;

    let loaded = FunctionSet::load(&path)?;
    assert_eq!(loaded, exported);
    assert_eq!(loaded.functions(), optimizer.best_functions());
    let provenance = loaded.provenance().expect("exported with provenance");
    assert_eq!(provenance.optimizer_model, "scripted-model");
    assert_eq!(provenance.performance, Some(1.0));
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let tool = &file["functions"][0]["tool"];
    assert_eq!(tool["type"], "function");
    assert_eq!(tool["function"]["name"], "sum_numbers");
    assert_eq!(
        tool["function"]["parameters"]["required"],
        json!(["a", "b"])
    );

    let mut session = sandbox().await;
    let mut arguments = Map::new();
    arguments.insert("a".to_owned(), json!(2));
    arguments.insert("b".to_owned(), json!(40));
    let outcome = session.call_function(&loaded[0], &arguments).await?;
    assert_eq!(outcome.value.as_deref(), Some("42"), "{outcome:?}");
    Ok(())
}

/// The trained artifact loads into a fresh assistant / user-proxy pair, and the
/// assistant's call of the learned function runs its code in the proxy's sandbox.
#[tokio::test]
async fn artifact_loads_into_fresh_agents_that_call_the_learned_function() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("functions.json");
    let (_, first_step, _) = train_and_export_sum_numbers(&path).await?;
    assert_eq!(
        first_step.changes.added.len(),
        1,
        "the first step registered one function"
    );
    let functions = FunctionSet::load(&path)?;
    assert_eq!(functions.len(), 1);

    let assistant_server = crate::server([
        Reply::tool_call("sum_numbers", json!({"a": 2, "b": 40})),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = ConversableAgent::new("assistant").with_model(client(&assistant_server));
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    let sessions = SandboxSessions::new(PythonEnvironment::ensure()?, policy);
    let mut proxy = UserProxyAgent::new("user", Arc::new(sessions));
    install(&mut assistant, &mut proxy, &functions)?;
    let transcript = proxy.initiate_chat(&mut assistant, "Add 2 and 40.").await;

    let request = &assistant_server.chat_requests()[0].body;
    let offered = &request["tools"];
    assert_eq!(offered[0]["function"]["name"], "sum_numbers", "{request}");
    let results = &transcript.entries[2].message;
    assert_eq!(results.role, Role::Tool);
    assert_eq!(
        results.tool_responses[0].content,
        "Result of sum_numbers function execution:\n42\n"
    );
    Ok(())
}

#[tokio::test]
async fn artifacts_with_invalid_functions_are_refused() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("bad.json");
    let artifact = json!({
        "format": "agentopt-functions",
        "version": 1,
        "functions": [{
            "tool": {"type": "function", "function": {
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
            }},
            "packages": [],
            "code": "def g(x):\n    return x\n",
        }],
        "provenance": {"producer": "test", "optimizer_model": "m", "performance": null, "steps": 0, "exported_at_unix": 0},
    });
    std::fs::write(&path, artifact.to_string())?;
    // The artifact reads without a Python parser; the optimizer's full check finds
    // that the code does not define `f`.
    let loaded = FunctionSet::load(&path)?;
    let error = check_function(&loaded[0]).expect_err("defines g, not f");
    assert!(error.contains("def f(...)"), "{error}");
    Ok(())
}

/// The bodies of every chat request `server` received.
fn bodies(server: &ScriptedServer) -> Vec<Value> {
    server
        .chat_requests()
        .into_iter()
        .map(|request| request.body)
        .collect()
}

/// Records `count` conversations (every third satisfied).
fn record_many(optimizer: &mut AgentOptimizer, count: usize) -> anyhow::Result<()> {
    for index in 0..count {
        let history = crate::conversation(&format!("What is {index} + 5?"), "5");
        optimizer.record_one_conversation(history, index % 3 == 0)?;
    }
    Ok(())
}

#[tokio::test]
async fn recording_appends_one_journal_line_and_leaves_the_snapshot_alone() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("optimizer.json");
    let journal = directory.path().join("optimizer.journal.jsonl");
    let server = crate::server(script()).await;
    // One prompt for the 41 records: the step is about the journal, not partitions.
    let options = OptimizerOptions {
        partitioning: Partitioning::Never,
        ..options(&path)
    };
    let mut optimizer = AgentOptimizer::new(1, client(&server), options)?;
    record_many(&mut optimizer, 1)?; // the first record writes the snapshot
    let snapshot = std::fs::read(&path)?;
    record_many(&mut optimizer, 40)?;
    assert_eq!(
        std::fs::read(&path)?,
        snapshot,
        "the snapshot is not rewritten"
    );
    let lines = std::fs::read_to_string(&journal)?;
    assert_eq!(lines.lines().count(), 40);
    assert!(
        lines.len() < 40 * 800,
        "one short line per record: {} bytes",
        lines.len()
    );

    // Resuming replays the journal: the same step as the uninterrupted optimizer.
    let resumed_server = crate::server(script()).await;
    let mut resumed = AgentOptimizer::resume(&path, client(&resumed_server))?;
    assert_eq!(resumed.step().await?, optimizer.step().await?);
    assert_eq!(bodies(&resumed_server), bodies(&server));
    // The step's snapshot holds everything; its journal starts empty.
    assert!(!journal.exists() || std::fs::read_to_string(&journal)?.is_empty());
    Ok(())
}

/// An optimizer checkpointing to `name` in a fresh directory, three
/// conversations recorded, talking to a server of [`script`].
async fn three_recorded(
    name: &str,
) -> anyhow::Result<(
    tempfile::TempDir,
    std::path::PathBuf,
    ScriptedServer,
    AgentOptimizer,
)> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join(name);
    let server = crate::server(script()).await;
    let mut optimizer = AgentOptimizer::new(1, client(&server), options(&path))?;
    record_many(&mut optimizer, 3)?;
    Ok((directory, path, server, optimizer))
}

#[tokio::test]
async fn version_1_checkpoints_still_load() -> anyhow::Result<()> {
    let (_directory, path, server, mut optimizer) = three_recorded("old.json").await?;
    let expected = optimizer.step().await?;
    // What version 1 wrote: the whole state, no snapshot id, no journal.
    let mut checkpoint: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    checkpoint["version"] = json!(1);
    checkpoint
        .as_object_mut()
        .map(|fields| fields.remove("snapshot"));
    std::fs::write(&path, checkpoint.to_string())?;

    let mut resumed = AgentOptimizer::resume(&path, client(&server))?;
    assert_eq!(resumed.steps_taken(), 1);
    assert_eq!(resumed.trial_functions(), expected.functions.functions());
    record_many(&mut resumed, 2)?; // continues as a version-3 checkpoint
    let rewritten: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    assert_eq!(rewritten["version"], 3);
    Ok(())
}

/// A directory `run` in a fresh temporary one (kept while the guard lives), for
/// [`with_directory_gone`].
fn run_directory() -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
    let root = tempfile::tempdir()?;
    let directory = root.path().join("run");
    std::fs::create_dir(&directory)?;
    Ok((root, directory))
}

/// Moves the checkpoint's directory away while `act` runs, so every write fails.
async fn with_directory_gone<T>(
    directory: &std::path::Path,
    act: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let away = directory.with_extension("away");
    std::fs::rename(directory, &away)?;
    let result = act.await;
    std::fs::rename(&away, directory)?;
    Ok(result)
}

#[tokio::test]
async fn a_failed_record_changes_nothing_and_its_retry_records_once() -> anyhow::Result<()> {
    let (_root, directory) = run_directory()?;
    let path = directory.join("optimizer.json");
    let server = crate::server([Reply::text("TERMINATE"), Reply::text("TERMINATE")]).await;
    let mut optimizer = AgentOptimizer::new(1, client(&server), options(&path))?;
    record(&mut optimizer, &[true]);
    let failing = crate::conversation("What is 1 + 5?", "7");
    let failed = with_directory_gone(&directory, async {
        optimizer.record_one_conversation(failing.clone(), false)
    })
    .await?;
    assert!(matches!(failed, Err(OptimizerError::File(_))), "{failed:?}");
    optimizer.record_one_conversation(failing, false)?; // the retry
    let resumed = AgentOptimizer::resume(&path, client(&server));

    // One satisfied, one not: recorded once each, in memory and on disk.
    assert_eq!(optimizer.step().await?.trial_performance, 0.5);
    assert_eq!(resumed?.step().await?.trial_performance, 0.5);
    Ok(())
}

#[tokio::test]
async fn a_step_whose_checkpoint_cannot_be_written_is_undone() -> anyhow::Result<()> {
    let (_root, directory) = run_directory()?;
    let path = directory.join("optimizer.json");
    let straight = crate::server(script()).await;
    let mut optimizer = AgentOptimizer::new(1, client(&straight), options(&path))?;
    record(&mut optimizer, &[true, false]);
    let expected = optimizer.step().await?;

    let path = directory.join("failing.json");
    // The failed step and its retry get the same answer.
    let answer = script().remove(0);
    let server = crate::server([answer.clone(), answer]).await;
    let mut optimizer = AgentOptimizer::new(1, client(&server), options(&path))?;
    record(&mut optimizer, &[true, false]);
    let failed = with_directory_gone(&directory, optimizer.step()).await?;
    assert!(matches!(failed, Err(OptimizerError::File(_))), "{failed:?}");
    assert_eq!(optimizer.steps_taken(), 0);
    assert_eq!(optimizer.best_performance(), None);
    assert!(optimizer.trial_functions().is_empty());

    // The retried step scores the same conversations and asks the same question.
    assert_eq!(optimizer.step().await?, expected);
    let resumed = AgentOptimizer::resume(&path, client(&server))?;
    assert_eq!(resumed.steps_taken(), 1);
    assert_eq!(resumed.trial_functions(), expected.functions.functions());
    Ok(())
}

#[tokio::test]
async fn a_step_dropped_half_way_changes_nothing() -> anyhow::Result<()> {
    let (_root, directory) = run_directory()?;
    let path = directory.join("optimizer.json");
    let slow = Reply::text("TERMINATE").delayed(std::time::Duration::from_secs(5));
    let server = crate::server([slow, Reply::text("TERMINATE")]).await;
    let mut optimizer = AgentOptimizer::new(1, client(&server), options(&path))?;
    record(&mut optimizer, &[true, false]);
    // Ctrl-C in Python, a timeout in Rust: the step's future is dropped mid-call.
    let dropped =
        tokio::time::timeout(std::time::Duration::from_millis(300), optimizer.step()).await;
    assert!(dropped.is_err(), "the step was still waiting on the model");
    assert_eq!(optimizer.steps_taken(), 0);
    assert_eq!(optimizer.best_performance(), None);

    // The recorded conversations are still the trial's, here and on disk.
    assert_eq!(optimizer.step().await?.trial_performance, 0.5);
    let resumed = AgentOptimizer::resume(&path, client(&server))?;
    assert_eq!(resumed.steps_taken(), 1);
    Ok(())
}

#[tokio::test]
async fn version_2_checkpoints_with_conversations_inline_still_load() -> anyhow::Result<()> {
    let (directory, path, server, mut optimizer) = three_recorded("live.json").await?;
    // What version 2 wrote: every conversation's messages in the state, the
    // journal's lines applied.
    let mut checkpoint: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut trial = checkpoint["state"]["trial_conversations"].clone();
    let journal = std::fs::read_to_string(path.with_extension("journal.jsonl"))?;
    for line in journal.lines() {
        let entry: Value = serde_json::from_str(line)?;
        if let Some(conversations) = trial.as_array_mut() {
            conversations.push(entry["record"]["conversation"].clone());
        }
    }
    checkpoint["state"]["trial_conversations"] = trial;
    checkpoint["version"] = json!(2);
    let old = directory.path().join("old.json");
    std::fs::write(&old, checkpoint.to_string())?;

    let expected = optimizer.step().await?;
    let resumed_server = crate::server(script()).await;
    let mut resumed = AgentOptimizer::resume(&old, client(&resumed_server))?;
    assert_eq!(resumed.step().await?, expected);
    assert_eq!(bodies(&resumed_server), bodies(&server));
    Ok(())
}

#[tokio::test]
async fn a_step_keeps_the_conversations_in_the_journal_not_in_the_snapshot() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("optimizer.json");
    let terminate = || [Reply::text("TERMINATE"), Reply::text("TERMINATE")];
    let server = crate::server(terminate()).await;
    let options = OptimizerOptions {
        partitioning: Partitioning::Never,
        ..options(&path)
    };
    let mut optimizer = AgentOptimizer::new(1, client(&server), options)?;
    record_many(&mut optimizer, 40)?;
    optimizer.step().await?;

    // The best list's conversations are where their lines were recorded: the
    // journal, kept under the superseded snapshot's id.
    let snapshot = std::fs::read_to_string(&path)?;
    assert!(!snapshot.contains("What is 7 + 5?"), "no message text");
    let kept: Vec<_> = std::fs::read_dir(directory.path())?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("optimizer.records-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(optimizer.best_conversations()?.len(), 40);

    // A resumed optimizer reads them back: the next step sends what this one does.
    let resumed_server = crate::server(terminate()).await;
    let mut resumed = AgentOptimizer::resume(&path, client(&resumed_server))?;
    record_many(&mut optimizer, 3)?;
    record_many(&mut resumed, 3)?;
    assert_eq!(resumed.step().await?, optimizer.step().await?);
    assert_eq!(
        bodies(&resumed_server),
        bodies(&server)[1..].to_vec(),
        "the same prompt, the kept conversations in it"
    );
    Ok(())
}
