//! One optimizer step over 10, 100, 1,000 recorded MATH conversations, all at
//! once (AG2's single prompt, conversations shortened and left out to fit) vs
//! partitioned (groups that fit whole, then merges): optimizer calls, prompt
//! tokens (the scripted server's real tokenizer) and how many conversations the
//! optimizer read whole.

use agentopt_llm::{
    ChatMessage, ChatModel, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy,
};
use agentopt_optimizer::{AgentOptimizer, OptimizerOptions, Partitioning, StepOutcome};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer, prompt_tokens};
use serde_json::json;
use std::sync::Arc;

/// The optimizer's context window (the local model's).
const N_CTX: u32 = 8192;

/// One measured step.
#[derive(Debug, Clone)]
pub struct PartitionRow {
    /// Records the step read from.
    pub records: usize,
    /// Partitioned (else all at once).
    pub partitioned: bool,
    /// Optimizer model calls.
    pub calls: usize,
    /// Prompt tokens over all calls, counted by the server's tokenizer.
    pub prompt_tokens: usize,
    /// Groups (1 all at once).
    pub groups: usize,
    /// Conversations shown whole in some prompt.
    pub read_whole: usize,
    /// Conversations shown shortened.
    pub condensed: usize,
    /// Conversations no prompt showed.
    pub omitted: usize,
}

/// Every row: each record count all at once, then partitioned.
///
/// # Errors
/// A client that cannot be built, or a failed step.
pub async fn measure(records: &[usize]) -> anyhow::Result<Vec<PartitionRow>> {
    each_mode(records, "optimizer step", measure_one).await
}

/// `measure_one` of each record count (`0` skipped), all at once then partitioned,
/// announcing each as `what` on stderr.
///
/// # Errors
/// The first that failed.
pub(crate) async fn each_mode<T, Measured>(
    records: &[usize],
    what: &str,
    measure_one: impl Fn(usize, bool) -> Measured,
) -> anyhow::Result<Vec<T>>
where
    Measured: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut rows = Vec::new();
    for &count in records.iter().filter(|&&count| count > 0) {
        for partitioned in [false, true] {
            eprintln!("bench-scale: {what} over {count} records, partitioned: {partitioned} …");
            rows.push(measure_one(count, partitioned).await?);
        }
    }
    Ok(rows)
}

async fn measure_one(records: usize, partitioned: bool) -> anyhow::Result<PartitionRow> {
    let recorded = (0..records).map(|index| (conversation(index), index % 3 != 0));
    let (outcome, requests) = one_step(recorded, partitioned, optimizer_reply).await?;
    Ok(row(records, partitioned, &outcome, &requests))
}

/// One optimizer step (3 actions, an {N_CTX}-token window) over the `recorded`
/// conversations and their outcomes, against a scripted server answering by
/// `rule`; returns the outcome and the requests the server saw.
///
/// # Errors
/// A client that cannot be built, or a failed step.
pub(crate) async fn one_step(
    recorded: impl Iterator<Item = (Vec<ChatMessage>, bool)>,
    partitioned: bool,
    rule: fn(&RecordedRequest) -> Reply,
) -> anyhow::Result<(StepOutcome, Vec<RecordedRequest>)> {
    let server = ScriptedServer::builder().n_ctx(N_CTX).rule(rule).await;
    let client: Arc<dyn ChatModel> = Arc::new(OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "scripted-model"),
        ClientOptions {
            retry: RetryPolicy::none(),
            ..ClientOptions::default()
        },
    )?);
    let options = OptimizerOptions {
        partitioning: if partitioned {
            Partitioning::Auto
        } else {
            Partitioning::Never
        },
        ..OptimizerOptions::default()
    };
    let mut optimizer = AgentOptimizer::new(3, client, options)?;
    for (history, satisfied) in recorded {
        optimizer.record_one_conversation(history, satisfied)?;
    }
    let outcome = optimizer.step().await?;
    Ok((outcome, server.chat_requests()))
}

pub(crate) fn row(
    records: usize,
    partitioned: bool,
    outcome: &StepOutcome,
    requests: &[RecordedRequest],
) -> PartitionRow {
    let (read_whole, condensed, omitted) = if outcome.partitions.is_empty() {
        let first = outcome.prompts.first();
        (
            first.map_or(0, |report| report.conversations_full.len()),
            first.map_or(0, |report| report.conversations_condensed.len()),
            first.map_or(0, |report| report.conversations_omitted.len()),
        )
    } else {
        (records, 0, 0)
    };
    PartitionRow {
        records,
        partitioned,
        calls: requests.len(),
        prompt_tokens: requests.iter().map(|r| prompt_tokens(&r.body)).sum(),
        groups: outcome.partitions.len().max(1),
        read_whole,
        condensed,
        omitted,
    }
}

/// A scripted optimizer: each group step adds one function to an empty List B
/// and then ends; merges end at once (the merged list is the first candidate).
fn optimizer_reply(request: &RecordedRequest) -> Reply {
    let prompt = request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    if prompt.contains("\nCandidate: ") || !prompt.contains("\nList B: [].") {
        return Reply::text("TERMINATE");
    }
    Reply::tool_call(
        "add_function",
        json!({
            "name": "solve_linear",
            "description": "Solve a*x + b = c for x.",
            "arguments": json!({
                "a": {"type": "integer", "description": "coefficient"},
                "b": {"type": "integer", "description": "constant"},
                "c": {"type": "integer", "description": "right-hand side"},
            })
            .to_string(),
            "packages": "sympy",
            "code": "def solve_linear(a, b, c):\n    from sympy import Rational\n    return Rational(c - b, a)\n",
        }),
    )
}

/// A MathChat-like conversation about problem `index` (about 1.4 KB).
pub(crate) fn conversation(index: usize) -> Vec<ChatMessage> {
    let (a, b) = (index % 9 + 2, index * 7 + 3);
    let c = a * (index + 1) + b;
    vec![
        ChatMessage::user(format!(
            "Let's use Python to solve a math problem.\n\nQuery requirements:\nYou should \
             always use the 'print' function for the output and use fractions/radical forms \
             instead of decimals.\nYou can use packages like sympy to help you.\nYou must \
             follow the formats below to write your code:\n```python\n# your code\n```\n\n\
             First state the key idea to solve the problem. You may choose from three ways \
             to solve the problem: solve it directly, use Python to compute, or reason \
             step by step. Put the final answer in \\boxed{{}}.\n\nProblem: Find x if \
             {a}x + {b} = {c}."
        )),
        ChatMessage::assistant(format!(
            "The key idea is to isolate x.\n```python\nfrom sympy import symbols, solve\n\
             x = symbols('x')\nprint(solve({a}*x + {b} - {c}, x))\n```"
        )),
        ChatMessage::user(format!("[{}]", index + 1)),
        ChatMessage::assistant(format!(
            "So x = {}, and the answer is \\boxed{{{}}}.",
            index + 1,
            index + 1
        )),
    ]
}

/// The partition table.
pub fn render(rows: &[PartitionRow]) -> String {
    let mut table = format!(
        "Optimizer step over recorded MATH conversations ({N_CTX}-token window): all at once vs \
         partitioned\n\n\
         | records | mode | groups | optimizer calls | prompt tokens (cl100k) | tokens per conversation read | read whole | shortened | left out |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |\n",
            row.records,
            if row.partitioned {
                "partitioned"
            } else {
                "all at once"
            },
            row.groups,
            row.calls,
            row.prompt_tokens,
            row.prompt_tokens as f64 / (row.read_whole + row.condensed).max(1) as f64,
            row.read_whole,
            row.condensed,
            row.omitted,
        ));
    }
    table
}
