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
use agentopt_testkit::{RecordedRequest, Reply, prompt_tokens};
use serde_json::json;

use super::partition::{conversation, one_step, row};

/// Kinds of problem in the training and held-out sets, each as common as the
/// others; the training records come one kind after another, as the bundled
/// MATH data comes one subject (file) after another.
pub const KINDS: usize = 12;

/// One measured step.
#[derive(Debug, Clone)]
pub struct QualityRow {
    /// Records the step read from.
    pub records: usize,
    /// Partitioned (else all at once).
    pub partitioned: bool,
    /// Held-out accuracy of the trained set: kinds it holds a function for.
    pub accuracy: f64,
    /// Functions in the trained set.
    pub functions: usize,
    /// Conversations some prompt showed (whole or shortened).
    pub read: usize,
    /// Optimizer model calls.
    pub calls: usize,
    /// Prompt tokens over all calls (the server's tokenizer).
    pub prompt_tokens: usize,
}

/// Each record count all at once, then partitioned.
///
/// # Errors
/// A failed step.
pub async fn measure(records: &[usize]) -> anyhow::Result<Vec<QualityRow>> {
    let mut rows = Vec::new();
    for &count in records.iter().filter(|&&count| count > 0) {
        for partitioned in [false, true] {
            eprintln!("bench-scale: quality over {count} records, partitioned: {partitioned} …");
            let recorded = (0..count).map(|index| (kind_conversation(index, count), false));
            let (outcome, requests) = one_step(recorded, partitioned, kind_reply).await?;
            let counts = row(count, partitioned, &outcome, &requests);
            let covered = (0..KINDS)
                .filter(|kind| outcome.functions.get(&function_name(*kind)).is_some())
                .count();
            rows.push(QualityRow {
                records: count,
                partitioned,
                accuracy: covered as f64 / KINDS as f64,
                functions: outcome.functions.len(),
                read: counts.read_whole + counts.condensed,
                calls: requests.len(),
                prompt_tokens: requests.iter().map(|r| prompt_tokens(&r.body)).sum(),
            });
        }
    }
    Ok(rows)
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

/// The names in the function list the prompt shows after `label`.
fn listed(prompt: &str, label: &str) -> Vec<String> {
    let Some(start) = prompt.find(label) else {
        return Vec::new();
    };
    let rest = &prompt[start + label.len()..];
    let list = &rest[..rest.find(".\n\n").unwrap_or(rest.len())];
    list.split("\"name\":\"")
        .skip(1)
        .filter_map(|name| name.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The scripted optimizer (see the module docs).
fn kind_reply(request: &RecordedRequest) -> Reply {
    let prompt = request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    let list_b = listed(prompt, "\nList B: ");
    let wanted: Vec<String> = if prompt.contains("\nCandidate: ") {
        listed(prompt, "\nCandidate: ")
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
        table.push_str(&format!(
            "| {} | {} | {:.0} % | {} | {} | {} | {} |\n",
            row.records,
            if row.partitioned {
                "partitioned"
            } else {
                "all at once"
            },
            row.accuracy * 100.0,
            row.functions,
            row.read,
            row.calls,
            row.prompt_tokens,
        ));
    }
    table
}
