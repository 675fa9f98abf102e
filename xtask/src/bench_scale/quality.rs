//! What reading every conversation is worth, all at once vs partitioned, on the
//! scripted server: the training conversations are problems of [`KINDS`] kinds
//! (each failed, its kind named in the problem), and the scripted optimizer
//! proposes `solve_kind_K` for a kind it sees among the conversations its prompt
//! shows and List B lacks; a merge takes the candidate's functions List B lacks.
//! A held-out problem of kind K counts as solved when the trained set holds
//! `solve_kind_K`. So the accuracy measures what the step's prompts read, not a
//! model's judgement: on a real model it also depends on what the model makes of
//! what it reads.

use agentopt_llm::ChatMessage;
use agentopt_testkit::{RecordedRequest, Reply, listed_names, prompt_section};
use serde_json::json;

use super::partition::{PartitionRow, conversation, each_mode, one_step, row};

/// Kinds of problem in the training and held-out sets, each as common as the
/// others; the training records come one kind after another, as the bundled
/// MATH data comes one subject (file) after another.
pub const KINDS: usize = 12;

/// One measured step.
#[derive(Debug, Clone)]
pub struct QualityRow {
    /// What the step read and cost (see [`PartitionRow`]).
    pub counts: PartitionRow,
    /// Held-out accuracy of the trained set: kinds it holds a function for.
    pub accuracy: f64,
    /// Functions in the trained set.
    pub functions: usize,
}

/// Each record count all at once, then partitioned.
///
/// # Errors
/// A failed step.
pub async fn measure(records: &[usize]) -> anyhow::Result<Vec<QualityRow>> {
    each_mode(records, "quality", measure_one).await
}

async fn measure_one(count: usize, partitioned: bool) -> anyhow::Result<QualityRow> {
    let recorded = (0..count).map(|index| (kind_conversation(index, count), false));
    let (outcome, requests) = one_step(recorded, partitioned, kind_reply).await?;
    let covered = (0..KINDS)
        .filter(|kind| outcome.functions.get(&function_name(*kind)).is_some())
        .count();
    Ok(QualityRow {
        counts: row(count, partitioned, &outcome, &requests),
        accuracy: covered as f64 / KINDS as f64,
        functions: outcome.functions.len(),
    })
}

/// The function that solves problems of `kind`.
fn function_name(kind: usize) -> String {
    format!("solve_kind_{kind}")
}

/// [`conversation`] about problem `index` of `count`, its kind named in the
/// problem.
fn kind_conversation(index: usize, count: usize) -> Vec<ChatMessage> {
    let mut messages = conversation(index);
    let tagged = format!(
        "[kind {}] {}",
        index * KINDS / count,
        messages[0].content.as_deref().unwrap_or_default()
    );
    messages[0] = ChatMessage::user(tagged);
    messages
}

/// The scripted optimizer (see the module docs).
fn kind_reply(request: &RecordedRequest) -> Reply {
    let prompt = request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    let list_b = listed_names(prompt_section(prompt, "\nList B: "));
    let wanted: Vec<String> = if prompt.contains("\nCandidate: ") {
        listed_names(prompt_section(prompt, "\nCandidate: "))
    } else {
        prompt
            .split("[kind ")
            .skip(1)
            .filter_map(|rest| rest.split(']').next()?.parse().ok())
            .map(function_name)
            .collect()
    };
    match wanted.into_iter().find(|name| !list_b.contains(name)) {
        Some(name) => Reply::tool_call("add_function", add_function(&name)),
        None => Reply::text("TERMINATE"),
    }
}

/// `add_function` arguments of a small function called `name`.
fn add_function(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "description": "Solves one kind of problem.",
        "arguments": json!({"x": {"type": "integer", "description": "input"}}).to_string(),
        "packages": "",
        "code": format!("def {name}(x):\n    return x + 1\n"),
    })
}

/// The quality table.
pub fn render(rows: &[QualityRow]) -> String {
    let mut table = format!(
        "Quality of one step, all at once vs partitioned: {KINDS} kinds of problem, a scripted \
         optimizer that proposes a function for a kind it reads (3 actions per step), held-out \
         accuracy = kinds the trained set covers\n\n\
         | records | mode | held-out accuracy | functions kept | conversations read | optimizer calls | prompt tokens (cl100k) |\n\
         |---:|---|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let counts = &row.counts;
        table.push_str(&format!(
            "| {} | {} | {:.0} % | {} | {} | {} | {} |\n",
            counts.records,
            if counts.partitioned {
                "partitioned"
            } else {
                "all at once"
            },
            row.accuracy * 100.0,
            row.functions,
            counts.read_whole + counts.condensed,
            counts.calls,
            counts.prompt_tokens,
        ));
    }
    table
}
