//! Throughput over replicas: a task of `turns` model calls per problem run over
//! scripted replicas with `spread` routing, each replica capped at the same number
//! of calls in flight; then the same with one replica failing half its calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ClientOptions, EndpointConfig, PriceTable, Routing,
    SpreadOptions, UsageMeter, routed_model,
};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{
    Attempt, FailureKind, FunctionSet, InfraError, Outcome, Task, measure_throughput,
};

use super::ScaleArgs;

/// A conversation of `turns` model calls, the history growing as in MathChat.
struct Turns {
    model: Arc<dyn ChatModel>,
    turns: usize,
}

#[async_trait::async_trait]
impl Task for Turns {
    type Problem = usize;

    fn problem_id(&self, problem: &usize) -> String {
        format!("p{problem}")
    }

    async fn attempt(&self, problem: &usize, _functions: &FunctionSet) -> Attempt {
        let mut history = vec![ChatMessage::user(format!(
            "Let's use Python to solve a math problem. Problem {problem}: what is {problem} * 7?"
        ))];
        for _ in 0..self.turns {
            match self.model.chat(ChatRequest::new(history.clone())).await {
                Ok(answer) => {
                    history.push(answer.message);
                    history.push(ChatMessage::user("Continue."));
                }
                Err(error) => {
                    let error = InfraError::new(FailureKind::Model, error.to_string());
                    return Attempt::new(Outcome::Infrastructure(error), history);
                }
            }
        }
        Attempt::new(Outcome::judged(true, String::new), history)
    }
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct ReplicaRow {
    /// Replicas the calls were spread over.
    pub replicas: usize,
    /// One replica failed every other call.
    pub one_failing: bool,
    /// Problems run.
    pub problems: usize,
    /// Problems that ended in an infrastructure error.
    pub failed_problems: usize,
    /// Wall time.
    pub wall: Duration,
    /// Answers per replica, in order.
    pub answered: Vec<u64>,
    /// Failed calls per replica, in order.
    pub failed_calls: Vec<u64>,
}

impl ReplicaRow {
    fn problems_per_hour(&self) -> f64 {
        self.problems as f64 / self.wall.as_secs_f64() * 3600.0
    }
}

/// Every row the flags ask for: each replica count, then the largest count with
/// one replica failing half its calls.
///
/// # Errors
/// A client that cannot be built.
pub async fn measure(args: &ScaleArgs) -> anyhow::Result<Vec<ReplicaRow>> {
    let mut rows = Vec::new();
    for &count in args.replicas.iter().filter(|&&count| count > 0) {
        rows.push(measure_one(args, count, false).await?);
    }
    if let Some(&largest) = args.replicas.iter().max().filter(|&&n| n > 1) {
        rows.push(measure_one(args, largest, true).await?);
    }
    Ok(rows)
}

async fn measure_one(
    args: &ScaleArgs,
    count: usize,
    one_failing: bool,
) -> anyhow::Result<ReplicaRow> {
    let latency = Duration::from_millis(args.latency_ms);
    let mut servers = Vec::with_capacity(count);
    for index in 0..count {
        servers.push(replica(latency, one_failing && index == 0).await);
    }
    let meter = UsageMeter::new(PriceTable::new());
    let options = ClientOptions {
        max_concurrency: args.replica_cap,
        meter: Some(meter.clone()),
        ..ClientOptions::default()
    };
    let configs: Vec<EndpointConfig> = servers
        .iter()
        .map(|server| EndpointConfig::compatible(server.base_url(), "scripted-model"))
        .collect();
    let spread = SpreadOptions {
        max_in_flight_per_replica: args.replica_cap,
        ..SpreadOptions::default()
    };
    let model = routed_model(configs.clone(), Routing::Spread, &options, spread)?;
    let task = Turns {
        model,
        turns: args.turns,
    };
    let slots = count * args.replica_cap;
    // Enough problems for about `seconds` of full replicas.
    let per_problem = latency.as_secs_f64() * args.turns as f64;
    let problems = ((args.seconds as f64 * slots as f64 / per_problem).ceil() as usize).max(slots);
    let ids: Vec<usize> = (0..problems).collect();
    eprintln!(
        "bench-scale: {count} replica(s){} …",
        if one_failing { ", one failing" } else { "" }
    );
    let measured = measure_throughput(&task, &ids, &FunctionSet::default(), slots).await;
    let report = meter.report();
    let per_replica = |field: fn(&agentopt_llm::UsageTotals) -> u64| -> Vec<u64> {
        configs
            .iter()
            .map(|config| report.by_endpoint.get(&config.label()).map_or(0, field))
            .collect()
    };
    Ok(ReplicaRow {
        replicas: count,
        one_failing,
        problems,
        failed_problems: measured.infrastructure,
        wall: measured.wall,
        answered: per_replica(|totals| totals.calls),
        failed_calls: per_replica(|totals| totals.failed_calls),
    })
}

/// A replica answering after `latency`; a failing one answers every other call
/// with 503 at once.
async fn replica(latency: Duration, failing: bool) -> ScriptedServer {
    let calls = AtomicUsize::new(0);
    ScriptedServer::builder()
        .n_ctx(32_768)
        .rule(move |_| {
            if failing && calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                return Reply::server_error(503);
            }
            Reply::text("Let me compute it.\n```python\nprint(7 * 6)\n```").delayed(latency)
        })
        .await
}

/// The throughput table, speed-ups against the first row.
pub fn render(args: &ScaleArgs, rows: &[ReplicaRow]) -> String {
    let mut table = format!(
        "Throughput over replicas: `spread` routing, {} turns per problem, {} ms per call, \
         at most {} calls in flight per replica, concurrency = replicas x cap\n\n\
         | replicas | problems | wall | problems/hour | speed-up | answered per replica | failed calls | failed problems |\n\
         |---|---:|---:|---:|---:|---|---:|---:|\n",
        args.turns, args.latency_ms, args.replica_cap
    );
    let base = rows.first().map_or(1.0, ReplicaRow::problems_per_hour);
    for row in rows {
        let label = if row.one_failing {
            format!("{} (one fails half its calls)", row.replicas)
        } else {
            row.replicas.to_string()
        };
        let shares: Vec<String> = row.answered.iter().map(u64::to_string).collect();
        table.push_str(&format!(
            "| {label} | {} | {:.1} s | {:.0} | {:.2}x | {} | {} | {} |\n",
            row.problems,
            row.wall.as_secs_f64(),
            row.problems_per_hour(),
            row.problems_per_hour() / base,
            shares.join(" / "),
            row.failed_calls.iter().sum::<u64>(),
            row.failed_problems,
        ));
    }
    table.push_str("\nTarget: at least 3.5x from 1 to 4 replicas.\n");
    table
}
