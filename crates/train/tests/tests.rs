//! agentopt-train: the whole training run over a task that is not MATH. The
//! optimizer talks to the scripted server over real HTTP; the task is a small
//! in-process checker, so these tests are about the trainer: phases, steps, the
//! journal, resume, infrastructure errors and the report.

mod claim;
mod curve;
mod html;
mod infrastructure;
mod learned_use;
mod replicas;
mod report;
mod resume;
mod run;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentopt_llm::{
    ChatMessage, ChatModel, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy,
};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{
    Attempt, CallCounts, FailureKind, FunctionSet, InfraError, Outcome, Problems, Task, Trainer,
    TrainerOptions,
};
use serde_json::json;

/// Problems are numbers; one is solved when the agents hold a function called
/// `halve` and the number is even (odd numbers are never solved); a second check,
/// `lenient`, also accepts multiples of 7. Ids in `outage` end as a model outage
/// instead.
#[derive(Default)]
struct Halving {
    outage: Mutex<HashSet<u32>>,
    attempts: AtomicUsize,
}

#[async_trait::async_trait]
impl Task for Halving {
    type Problem = u32;

    fn problem_id(&self, problem: &u32) -> String {
        format!("n{problem}")
    }

    fn problem_text(&self, problem: &u32) -> Option<String> {
        Some(halving_text(*problem))
    }

    async fn attempt(&self, problem: &u32, functions: &FunctionSet) -> Attempt {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        // Let the runtime switch tasks, as a real attempt waiting on a model would.
        tokio::task::yield_now().await;
        let history = vec![ChatMessage::user(halving_text(*problem))];
        if self.outage.lock().expect("lock").contains(problem) {
            let error = InfraError::new(FailureKind::Model, "HTTP 503 from the model server");
            return Attempt::new(Outcome::Infrastructure(error), history);
        }
        let has_halve = functions.get("halve").is_some();
        let solved = has_halve && problem.is_multiple_of(2);
        let mut attempt = Attempt::new(
            Outcome::judged(solved, || format!("could not halve {problem}")),
            history,
        );
        if has_halve {
            let mut calls = CallCounts::default();
            calls.add(problem.is_multiple_of(2));
            attempt.calls.insert("halve".to_owned(), calls);
        }
        attempt.tokens = 10;
        // A second, lenient answer check that also accepts multiples of 7.
        let lenient = solved || problem.is_multiple_of(7);
        attempt.checks.insert("lenient".to_owned(), lenient);
        attempt
    }
}

/// What the agents are asked about `problem`.
fn halving_text(problem: u32) -> String {
    format!("Halve {problem}.")
}

/// `add_function` for `def halve(n): return n // 2`.
fn add_halve() -> Reply {
    Reply::tool_call(
        "add_function",
        json!({
            "name": "halve",
            "description": "half of an even number",
            "arguments": json!({"n": {"type": "integer", "description": "the number"}}).to_string(),
            "packages": "",
            "code": "def halve(n):\n    return n // 2\n",
        }),
    )
}

/// An optimizer server that adds `halve` on its first request and ends every later
/// step at once.
async fn optimizer_server() -> ScriptedServer {
    let requests = AtomicUsize::new(0);
    ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |_| match requests.fetch_add(1, Ordering::SeqCst) {
            0 => add_halve(),
            _ => Reply::text("TERMINATE"),
        })
        .await
}

/// A real client for the scripted server, without retries.
fn client(server: &ScriptedServer) -> Arc<dyn ChatModel> {
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model");
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        ..ClientOptions::default()
    };
    Arc::new(OpenAiClient::new(endpoint, options).expect("client for the scripted server"))
}

fn problems() -> Problems<u32> {
    Problems {
        train: vec![2, 3, 4],
        validation: Vec::new(),
        test: vec![6, 7, 8, 10],
    }
}

fn options(run_dir: &std::path::Path) -> TrainerOptions {
    TrainerOptions {
        run_dir: run_dir.to_owned(),
        epochs: 2,
        max_actions_per_step: 1,
        concurrency: 2,
        ..TrainerOptions::default()
    }
}

fn trainer(task: Halving, server: &ScriptedServer, run_dir: &std::path::Path) -> Trainer<Halving> {
    Trainer::new(task, client(server), options(run_dir))
}
