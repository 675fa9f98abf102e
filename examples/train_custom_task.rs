//! Train an agent on a task that is not MATH: counting the vowels of a word, with
//! the task's own checker. The whole training run (epochs, roll-back, journal,
//! resume, report) comes from `agentopt::train`; this file only says what one
//! problem is and how an answer is judged.
//!
//! ```sh
//! cargo run --example train_custom_task -- --scripted          # offline, scripted server
//! cargo run --example train_custom_task -- --base-url http://127.0.0.1:8000/v1 --model qwen2.5-7b
//! OPENAI_API_KEY=… cargo run --example train_custom_task -- --model gpt-4o-mini
//! ```
//! Add `--run-dir DIR` to keep the run (and run the same command again to resume it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt::agents::{AssistantAgent, Message, UserProxyAgent, install};
use agentopt::llm::{ChatModel, ClientOptions, EndpointConfig, OpenAiClient};
use agentopt::optimizer::{OptimizerOptions, PromptExample};
use agentopt::sandbox::{ExecutorFactory, SandboxSessions};
use agentopt::train::{
    Attempt, FailureKind, FunctionSet, InfraError, LearnedFunction, Outcome, Problems, Task,
    Trainer, TrainerOptions, TrainingReport,
};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer};

/// One problem: a word and how many vowels it has.
pub struct Word {
    word: &'static str,
    vowels: usize,
}

/// Counting vowels, answered as `ANSWER: <number>`.
pub struct VowelTask {
    model: Arc<dyn ChatModel>,
    sessions: Arc<dyn ExecutorFactory>,
}

#[async_trait::async_trait]
impl Task for VowelTask {
    type Problem = Word;

    fn problem_id(&self, problem: &Word) -> String {
        problem.word.to_owned()
    }

    fn models(&self) -> Vec<Arc<dyn ChatModel>> {
        vec![Arc::clone(&self.model)]
    }

    async fn attempt(&self, problem: &Word, functions: &FunctionSet) -> Attempt {
        let mut assistant = AssistantAgent::new("assistant", Arc::clone(&self.model))
            .with_system_message("Count letters exactly. End with `ANSWER: <number>`.")
            .into_inner();
        let mut user = UserProxyAgent::new("user", Arc::clone(&self.sessions))
            .configure(|agent| {
                agent
                    .with_termination(|message: &Message| message.text().contains("ANSWER:"))
                    .with_max_consecutive_auto_reply(4)
            })
            .into_inner();
        if let Err(error) = install(&mut assistant, &mut user, functions) {
            let error = InfraError::new(FailureKind::Sandbox, error.to_string());
            return Attempt::new(Outcome::Infrastructure(error), Vec::new());
        }
        let question = format!(
            "How many vowels (a, e, i, o, u) are in \"{}\"?",
            problem.word
        );
        let transcript = user.initiate_chat(&mut assistant, question).await;
        let history = assistant.history("user");
        let answer = history
            .iter()
            .rev()
            .find_map(|message| answer_in(message.text()));
        let judged = Outcome::judged(answer == Some(problem.vowels), || {
            format!("answered {answer:?}")
        });
        let history = history.iter().flat_map(Message::to_chat_messages).collect();
        Attempt::from_transcript(judged, history, transcript).with_answers(
            answer.map(|n| n.to_string()),
            Some(problem.vowels.to_string()),
        )
    }
}

/// The number after `ANSWER:`.
fn answer_in(text: &str) -> Option<usize> {
    let (_, rest) = text.rsplit_once("ANSWER:")?;
    rest.split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The problems: no word has exactly one vowel, the scripted assistant's guess.
pub fn problems() -> Problems<Word> {
    let word = |word, vowels| Word { word, vowels };
    Problems {
        train: vec![word("banana", 3), word("queue", 4), word("rhythm", 0)],
        validation: Vec::new(),
        test: vec![
            word("avocado", 4),
            word("sky", 0),
            word("audio", 4),
            word("onomatopoeia", 8),
        ],
    }
}

/// Trains on `problems()` with `model` answering and `optimizer` proposing functions.
///
/// # Errors
/// The trainer's errors (bad options, an unreachable model, run-directory I/O).
pub async fn train(
    model: Arc<dyn ChatModel>,
    optimizer: Arc<dyn ChatModel>,
    run_dir: &std::path::Path,
) -> anyhow::Result<TrainingReport> {
    let sessions = SandboxSessions::new(
        agentopt::sandbox::PythonEnvironment::ensure()?,
        agentopt::sandbox::SandboxPolicy::default(),
    );
    let task = VowelTask {
        model,
        sessions: Arc::new(sessions),
    };
    // The optimizer's prompt shows an example function of this task's kind, not
    // AG2's MATH one.
    let example = PromptExample {
        task: "letter-counting problems".to_owned(),
        function: LearnedFunction::new(
            "count_letter",
            "def count_letter(word, letter):\n    return word.lower().count(letter.lower())",
        )
        .with_description("Count how often a letter occurs in a word.")
        .with_parameters(serde_json::json!({"type": "object", "properties": {
            "word": {"type": "string", "description": "the word"},
            "letter": {"type": "string", "description": "the letter"},
        }})),
    };
    let options = TrainerOptions {
        run_dir: run_dir.to_owned(),
        epochs: 2,
        max_actions_per_step: 1,
        concurrency: 2,
        optimizer: OptimizerOptions {
            example,
            ..OptimizerOptions::default()
        },
        ..TrainerOptions::default()
    };
    Ok(Trainer::new(task, optimizer, options)
        .run(&problems())
        .await?)
}

/// The scripted assistant: calls `count_vowels` when it is offered, reads its
/// result, and otherwise guesses 1.
fn scripted_assistant(request: &RecordedRequest) -> Reply {
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    let offered = request.body["tools"].to_string().contains("count_vowels");
    if last["role"] == "tool" {
        let result = last["content"].as_str().unwrap_or_default();
        let count = result.lines().last().unwrap_or_default().trim();
        return Reply::text(format!("The function says {count}. ANSWER: {count}"));
    }
    let question = messages
        .iter()
        .find(|m| m["role"] == "user")
        .cloned()
        .unwrap_or_default();
    let word = question["content"]
        .as_str()
        .unwrap_or_default()
        .split('"')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if offered {
        Reply::tool_call("count_vowels", serde_json::json!({"word": word}))
    } else {
        Reply::text("I think there is one. ANSWER: 1")
    }
}

/// The scripted optimizer: adds `count_vowels` in its first step, then stops.
fn scripted_optimizer(steps: &AtomicUsize) -> Reply {
    if steps.fetch_add(1, Ordering::SeqCst) > 0 {
        return Reply::text("TERMINATE");
    }
    Reply::tool_call(
        "add_function",
        serde_json::json!({
            "name": "count_vowels",
            "description": "Count the vowels a, e, i, o, u in a word.",
            "arguments": r#"{"word": {"type": "string", "description": "the word"}}"#,
            "packages": "",
            "code": "def count_vowels(word):\n    return sum(letter in 'aeiou' for letter in word.lower())\n",
        }),
    )
}

/// Trains offline against two scripted servers on 127.0.0.1 (real HTTP).
///
/// # Errors
/// As [`train`].
pub async fn offline(run_dir: &std::path::Path) -> anyhow::Result<TrainingReport> {
    let assistant = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(scripted_assistant)
        .await;
    let steps = AtomicUsize::new(0);
    let optimizer = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |_| scripted_optimizer(&steps))
        .await;
    let client = |server: &ScriptedServer| -> anyhow::Result<Arc<dyn ChatModel>> {
        let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model");
        Ok(Arc::new(OpenAiClient::new(
            endpoint,
            ClientOptions::default(),
        )?))
    };
    train(client(&assistant)?, client(&optimizer)?, run_dir).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1))
            .cloned()
    };
    let run_dir =
        flag("--run-dir").map_or_else(|| std::env::temp_dir().join("agentopt-vowels"), Into::into);
    let report = if args.iter().any(|arg| arg == "--scripted") {
        offline(&run_dir).await?
    } else {
        let model = flag("--model").unwrap_or_else(|| "gpt-4o-mini".to_owned());
        let endpoint = match flag("--base-url") {
            Some(base_url) => EndpointConfig::compatible(base_url, model),
            None => EndpointConfig::from_env_lookup(&model, |name| std::env::var(name).ok())?,
        };
        let client: Arc<dyn ChatModel> =
            Arc::new(OpenAiClient::new(endpoint, ClientOptions::default())?);
        train(Arc::clone(&client), client, &run_dir).await?
    };
    println!("{}", report.terminal_summary());
    println!("Run directory: {}", run_dir.display());
    Ok(())
}
