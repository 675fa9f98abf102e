//! Partitioned steps: conversations that do not fit one prompt are split into
//! groups that do, each stepped on its own, and the groups' lists merged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_optimizer::{AgentOptimizer, OptimizerOptions, Partitioning};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer};
use tokio::sync::Notify;

use crate::{add_sum, client, conversation};

/// The first message of a chat request: the optimizer's prompt.
fn prompt(request: &RecordedRequest) -> &str {
    request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
}

pub(crate) use agentopt_testkit::{listed_names as names, prompt_section as section};

/// A model that answers by the prompt alone, so a resumed step gets the same
/// replies: a group step with an empty List B adds `solve_N` for the first
/// problem it shows; a merge adds each candidate function List B lacks; every
/// other round ends the step.
fn by_prompt(request: &RecordedRequest) -> Reply {
    let text = prompt(request);
    if text.contains("\nCandidate: ") {
        let merged = names(section(text, "\nList B: "));
        let missing = names(section(text, "\nCandidate: "))
            .into_iter()
            .find(|name| !merged.contains(name));
        return match missing {
            Some(name) => {
                let (tool, arguments) = add_sum(&name);
                Reply::tool_call(tool, arguments)
            }
            None => Reply::text("TERMINATE"),
        };
    }
    let first_problem = text
        .split("Problem ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("x");
    if section(text, "\nList B: ") == "[]" {
        let (tool, arguments) = add_sum(&format!("solve_{first_problem}"));
        Reply::tool_call(tool, arguments)
    } else {
        Reply::text("TERMINATE")
    }
}

/// Conversations recorded per epoch: more than one 8k prompt shows whole.
const RECORDS: usize = 30;

/// A conversation of about 1,500 bytes about problem `index`.
fn long_conversation(index: usize) -> Vec<agentopt_llm::ChatMessage> {
    let mut messages = conversation(&format!("Problem {index}: what is 2 + 3?"), "5");
    messages[2] =
        agentopt_llm::ChatMessage::tool("call_0", format!("{index}:{}", "7".repeat(1200)));
    messages
}

fn small_window_options() -> OptimizerOptions {
    OptimizerOptions {
        reply_room_tokens: 200,
        max_tool_output_chars: 1500,
        ..OptimizerOptions::default()
    }
}

async fn small_window_server() -> ScriptedServer {
    ScriptedServer::builder().n_ctx(8192).rule(by_prompt).await
}

#[tokio::test]
async fn records_past_the_context_are_each_read_in_some_partition_and_merged() -> anyhow::Result<()>
{
    let server = small_window_server().await;
    let mut optimizer = AgentOptimizer::new(2, client(&server), small_window_options())?;
    for index in 0..RECORDS {
        optimizer.record_one_conversation(long_conversation(index), index % 3 != 0)?;
    }
    let outcome = optimizer.step().await?;

    // Groups in order, covering every conversation once.
    let groups: Vec<_> = outcome
        .partitions
        .iter()
        .map(|group| group.conversations.clone())
        .collect();
    assert!(
        groups.len() >= 3,
        "long conversations need several prompts: {groups:?}"
    );
    assert_eq!(groups.first().map(|g| g.start), Some(0));
    assert_eq!(groups.last().map(|g| g.end), Some(RECORDS));
    assert!(groups.windows(2).all(|pair| pair[0].end == pair[1].start));
    // Every prompt shows its conversations whole and fits the budget.
    for report in &outcome.prompts {
        assert!(report.conversations_condensed.is_empty(), "{report:?}");
        assert!(report.conversations_omitted.is_empty(), "{report:?}");
        assert!(report.prompt_tokens <= report.budget_tokens, "{report:?}");
    }
    // Every conversation was read by some request.
    let bodies: Vec<String> = server
        .chat_requests()
        .iter()
        .map(|r| prompt(r).to_owned())
        .collect();
    for index in 0..RECORDS {
        let marker = format!("Problem {index}: what is");
        assert!(
            bodies.iter().any(|body| body.contains(&marker)),
            "conversation {index} unread"
        );
    }
    // Each group's satisfied count is its own.
    for group in &outcome.partitions {
        let satisfied = group.conversations.clone().filter(|i| i % 3 != 0).count();
        assert_eq!(group.satisfied, satisfied);
        assert_eq!(group.actions, 1);
    }
    // The merged list holds every group's function, each validated on the way in.
    let mut merged: Vec<String> = outcome.functions.iter().map(|f| f.name.clone()).collect();
    merged.sort();
    let mut expected: Vec<String> = groups
        .iter()
        .map(|g| format!("solve_{}", g.start))
        .collect();
    expected.sort();
    assert_eq!(merged, expected);
    let merges = bodies
        .iter()
        .filter(|body| body.contains("\nCandidate: "))
        .count();
    assert!(merges >= groups.len() - 1, "{merges} merge prompts");

    // The merged list is the next trial: scored and kept or rolled back as ever.
    for index in 0..RECORDS {
        optimizer.record_one_conversation(long_conversation(index), true)?;
    }
    let next = optimizer.step().await?;
    assert!(next.accepted && next.improved);
    assert_eq!(optimizer.best_functions().len(), expected.len());
    Ok(())
}

#[tokio::test]
async fn asking_for_small_groups_partitions_what_would_fit_whole_and_steps_them_at_once()
-> anyhow::Result<()> {
    let server = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(|request| by_prompt(request).delayed(std::time::Duration::from_millis(50)))
        .await;
    let options = OptimizerOptions {
        partitioning: Partitioning::AtMost(2),
        ..OptimizerOptions::default()
    };
    let mut optimizer = AgentOptimizer::new(2, client(&server), options)?;
    for index in 0..5 {
        let history = conversation(&format!("Problem {index}: what is 2 + 3?"), "5");
        optimizer.record_one_conversation(history, index % 2 == 0)?;
    }
    let outcome = optimizer.step().await?;
    let groups: Vec<_> = outcome
        .partitions
        .iter()
        .map(|g| g.conversations.clone())
        .collect();
    assert_eq!(groups, [0..2, 2..4, 4..5]);
    assert_eq!(outcome.functions.len(), 3);
    // The three groups asked the model at the same time.
    assert_eq!(server.peak_in_flight(), 3);
    Ok(())
}

#[tokio::test]
async fn a_step_killed_between_partitions_resumes_with_the_same_requests() -> anyhow::Result<()> {
    let record_all = |optimizer: &mut AgentOptimizer| -> anyhow::Result<()> {
        for index in 0..RECORDS {
            optimizer.record_one_conversation(long_conversation(index), index % 3 != 0)?;
        }
        Ok(())
    };
    let reference_dir = tempfile::tempdir()?;
    let reference_server = small_window_server().await;
    let options = |dir: &std::path::Path| OptimizerOptions {
        checkpoint: Some(dir.join("optimizer.json")),
        ..small_window_options()
    };
    let mut reference =
        AgentOptimizer::new(2, client(&reference_server), options(reference_dir.path()))?;
    record_all(&mut reference)?;
    let expected = reference.step().await?;

    // Stopped after the first groups' requests, before the merges.
    let dir = tempfile::tempdir()?;
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(Notify::new());
    let (counter, stopper) = (Arc::clone(&seen), Arc::clone(&stop));
    let killed_server = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |request| {
            if counter.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                stopper.notify_one();
            }
            by_prompt(request)
        })
        .await;
    let mut killed = AgentOptimizer::new(2, client(&killed_server), options(dir.path()))?;
    record_all(&mut killed)?;
    tokio::select! {
        biased;
        () = stop.notified() => {}
        result = killed.step() => panic!("the step ended before the stop: {result:?}"),
    }
    drop(killed);
    assert!(seen.load(Ordering::SeqCst) >= 3);

    let server = small_window_server().await;
    let mut resumed = AgentOptimizer::resume(&dir.path().join("optimizer.json"), client(&server))?;
    let outcome = resumed.step().await?;
    assert_eq!(outcome, expected);
    let bodies = |server: &ScriptedServer| -> Vec<String> {
        server
            .chat_requests()
            .iter()
            .map(|r| r.raw_body.clone())
            .collect()
    };
    assert_eq!(bodies(&server), bodies(&reference_server));
    Ok(())
}

/// Replies as [`by_prompt`] to group steps, and ends every merge at once: List B
/// keeps its functions while the groups it stands for pile up in the merge prompt.
fn merges_end_at_once(request: &RecordedRequest) -> Reply {
    if prompt(request).contains("\nCandidate: ") {
        Reply::text("TERMINATE")
    } else {
        by_prompt(request)
    }
}

#[tokio::test]
async fn merge_prompts_stay_inside_the_window_however_many_groups_are_merged() -> anyhow::Result<()>
{
    // Many one-conversation groups: a merge prompt that listed every group merged
    // so far would outgrow a 4k window long before the last candidate (the
    // 10,000-problem run's failure); past a few groups it sums them up instead.
    const GROUPS: usize = 150;
    let server = ScriptedServer::builder()
        .n_ctx(4096)
        .rule(merges_end_at_once)
        .await;
    let options = OptimizerOptions {
        partitioning: Partitioning::AtMost(1),
        reply_room_tokens: 200,
        ..OptimizerOptions::default()
    };
    let mut optimizer = AgentOptimizer::new(1, client(&server), options)?;
    for index in 0..GROUPS {
        let history = conversation(&format!("Problem {index}: what is 2 + 3?"), "5");
        optimizer.record_one_conversation(history, index % 2 == 0)?;
    }
    let outcome = optimizer.step().await?;

    assert_eq!(outcome.partitions.len(), GROUPS);
    let merges: Vec<String> = server
        .chat_requests()
        .iter()
        .map(|request| prompt(request).to_owned())
        .filter(|prompt| prompt.contains("\nCandidate: "))
        .collect();
    assert_eq!(merges.len(), GROUPS - 1, "every candidate was merged");
    let last = merges.last().map_or("", String::as_str);
    assert!(
        last.contains(&format!(
            "{} group(s) of conversations ({} conversations in all: {} satisfied",
            GROUPS - 1,
            GROUPS - 1,
            (GROUPS - 1).div_ceil(2)
        )),
        "{last}"
    );
    // Every prompt sent fitted (the server counts with a real tokenizer and
    // refuses what does not fit; none was refused, or the step would have failed).
    for report in &outcome.prompts {
        assert!(report.prompt_tokens <= report.budget_tokens, "{report:?}");
    }
    // Each merge ended at once: the merged list is the first group's.
    let names: Vec<&str> = outcome.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["solve_0"]);
    Ok(())
}
