//! `cargo xtask bench-report`: how big `report.html` gets and how fast it opens.
//! A synthetic run (a [`Trainer`] over an instant task whose conversations look like
//! MathChat's: a prompt, a reply with a code block, its output, a boxed answer) of
//! each size is written, its page rebuilt and timed, then opened in headless
//! Chromium, which reports when the page's tables were ready and how long opening
//! a problem's two conversations took. Prints a table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentopt_agents::{
    CodeExecution, Execution, Message, ReplyWork, StopReason, Transcript, TranscriptEntry,
    TranscriptTotals,
};
use agentopt_llm::{ChatModel, ClientOptions, EndpointConfig, OpenAiClient, Usage};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{
    Attempt, FailureKind, FunctionSet, InfraError, Outcome, Problems, Setup, Task, Trainer,
    TrainerOptions,
};
use anyhow::Context as _;
use serde_json::json;

use crate::browser;

/// `cargo xtask bench-report` flags.
#[derive(clap::Args)]
pub struct BenchReportArgs {
    /// Test-set sizes to measure (each problem has a conversation before and after).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub problems: Vec<usize>,
    /// Chromium opens each page this many times; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Bytes of reasoning text in each of the assistant's two replies (real replies
    /// on the local presets reach 768 tokens, about 3 KB).
    #[arg(long, default_value_t = 1500)]
    pub reply_bytes: usize,
    /// Keep the synthetic runs here (default: a temporary directory).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// One measured size.
struct Measured {
    problems: usize,
    conversations: usize,
    bytes: u64,
    render: Duration,
    ready_ms: f64,
    open_row_ms: f64,
}

/// Runs the benchmark and prints its table.
///
/// # Errors
/// Chromium missing, a run or a page that fails.
pub async fn run(args: &BenchReportArgs) -> anyhow::Result<()> {
    let chromium = browser::chromium()
        .context("Chromium is not installed (Debian: apt-get install -y chromium)")?;
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let mut rows = Vec::new();
    for &problems in &args.problems {
        let dir = root.join(format!("report-{problems}"));
        synthetic_run(&dir, problems, args.reply_bytes, false).await?;
        let started = Instant::now();
        let page = agentopt_train::write_report_html(&dir)?;
        let render = started.elapsed();
        let mut samples = Vec::new();
        for _ in 0..args.repeats.max(1) {
            samples.push(open(&chromium, &page)?);
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ready_ms, open_row_ms) = samples[samples.len() / 2];
        let transcripts = std::fs::read_to_string(dir.join("transcripts.jsonl"))?;
        rows.push(Measured {
            problems,
            conversations: transcripts.lines().count(),
            bytes: std::fs::metadata(&page)?.len(),
            render,
            ready_ms,
            open_row_ms,
        });
    }
    print_table(&rows);
    Ok(())
}

/// Opens `page` once: (ms until the page was laid out, ms to open the first row).
fn open(chromium: &Path, page: &Path) -> anyhow::Result<(f64, f64)> {
    let dom = browser::dump_dom(chromium, &browser::file_url(page, "#selftest")?)?;
    let ready = attribute_number(&dom, "data-ready-ms=\"")
        .context("the page did not report when it was ready")?;
    let result = dom
        .split_once("<pre id=\"selftest-result\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .context("the page's self-test wrote no result")?
        .0
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let result: serde_json::Value = serde_json::from_str(&result)?;
    let open_row = result["open_row_ms"].as_f64().unwrap_or(f64::NAN);
    Ok((ready, open_row))
}

fn attribute_number(dom: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = dom.split_once(prefix)?;
    rest.split('"').next()?.parse().ok()
}

fn print_table(rows: &[Measured]) {
    println!(
        "| test problems | conversations | report.html | rebuild (Rust) | page ready in Chromium | open one problem |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.1} MB | {} ms | {:.0} ms | {:.0} ms |",
            row.problems,
            row.conversations,
            row.bytes as f64 / 1e6,
            row.render.as_millis(),
            row.ready_ms,
            row.open_row_ms,
        );
    }
}

/// Writes a finished run of `problems` test problems (and a tenth as many, at least
/// 5, training problems over one epoch) into `dir`. With `outages`, the test after
/// training of every 9th problem (the 5th, 14th …) ends as a model outage (the run
/// is then reported incomplete).
///
/// # Errors
/// The scripted server or the run fails.
pub async fn synthetic_run(
    dir: &Path,
    problems: usize,
    reply_bytes: usize,
    outages: bool,
) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let server = ScriptedServer::builder()
        .n_ctx(32768)
        .rule(|request| {
            let tools = request.body["tools"].to_string();
            if request.body["messages"].to_string().contains("def digit_sum") {
                return Reply::text("TERMINATE");
            }
            debug_assert!(tools.contains("add_function"));
            Reply::tool_call(
                "add_function",
                json!({
                    "name": "digit_sum",
                    "description": "Sum of the decimal digits of a non-negative integer.",
                    "arguments": json!({"n": {"type": "integer", "description": "the number"}}).to_string(),
                    "packages": "",
                    "code": "def digit_sum(n):\n    return sum(int(d) for d in str(n))\n",
                }),
            )
        })
        .await;
    let endpoint = EndpointConfig::compatible(server.base_url(), "synthetic-optimizer");
    let optimizer: Arc<dyn ChatModel> =
        Arc::new(OpenAiClient::new(endpoint, ClientOptions::default())?);
    let options = TrainerOptions {
        run_dir: dir.to_owned(),
        epochs: 1,
        max_actions_per_step: 1,
        concurrency: 16,
        preflight: None,
        setup: Setup {
            task: "synthetic remainders (bench-report)".to_owned(),
            model: "synthetic-assistant".to_owned(),
            optimizer_model: "synthetic-optimizer".to_owned(),
            endpoint: format!("scripted server at {}", server.base_url()),
            data: "generated in process".to_owned(),
            selection: "all".to_owned(),
            ..Setup::default()
        },
        ..TrainerOptions::default()
    };
    let train = (0..(problems / 10).max(5)).map(|n| n + 1_000_000).collect();
    Trainer::new(
        Synthetic {
            reply_bytes,
            outages,
        },
        optimizer,
        options,
    )
    .run(&Problems {
        train,
        validation: Vec::new(),
        test: (0..problems).collect(),
    })
    .await?;
    Ok(())
}

/// Instant attempts with MathChat-sized conversations; about 45 % solved before
/// training and 55 % after, decided by the problem number.
struct Synthetic {
    /// Reasoning text per assistant reply.
    reply_bytes: usize,
    /// Every 9th test-after attempt is a model outage.
    outages: bool,
}

impl Synthetic {
    /// `bytes` of varied reasoning text for problem `n`.
    fn reasoning(&self, n: usize) -> String {
        let mut text = String::with_capacity(self.reply_bytes + 80);
        let mut step = 1;
        while text.len() < self.reply_bytes {
            text.push_str(&format!(
                "Step {step}: {n} = 97 × {} + {}, so we reduce the remainder modulo 97 once more. ",
                n / 97,
                (n + step) % 97
            ));
            step += 1;
        }
        text
    }
}

const PROMPT: &str = "Let's use Python to solve a math problem.\n\nQuery requirements:\nYou should always use the 'print' function for the output and use fractions/radical forms instead of decimals.\nYou can use packages like sympy to help you.\nYou must follow the formats below to write your code:\n```python\n# your code\n```\n\nFirst state the key idea to solve the problem. You may choose from three ways to solve the problem:\nCase 1: If the problem can be solved with Python code directly, please write a program to solve it. You can enumerate all possible arrangements if needed.\nCase 2: If the problem is mostly reasoning, you can solve it by yourself directly.\nCase 3: If the problem cannot be handled in the above two ways, please follow this process:\n1. Solve the problem step by step (do not over-divide the steps).\n2. Take out any queries that can be asked through Python (for example, any calculations or equations that can be calculated).\n3. Wait for me to give the results.\n4. Continue if you think the result is correct. If the result is invalid or unexpected, please correct your query or reasoning.\n\nAfter all the queries are run and you get the answer, put the answer in \\boxed{}.\n\nProblem:\n";

#[async_trait::async_trait]
impl Task for Synthetic {
    type Problem = usize;

    fn problem_id(&self, problem: &usize) -> String {
        format!("test/number_theory.jsonl:{problem}")
    }

    async fn attempt(&self, problem: &usize, functions: &FunctionSet) -> Attempt {
        let trained = !functions.is_empty();
        if self.outages && trained && problem % 9 == 4 {
            let error = InfraError::new(FailureKind::Model, "HTTP 503 from the model server");
            return Attempt::new(Outcome::Infrastructure(error), Vec::new());
        }
        let n = 1000 + problem * 37;
        let expected = (n % 97).to_string();
        let solved = (problem * 7 + usize::from(trained) * 3) % 20 < 9 + 2 * usize::from(trained);
        let answer = if solved {
            expected.clone()
        } else {
            (n % 89).to_string()
        };
        let question = format!(
            "What is the remainder when {n} is divided by 97? Give the remainder as an integer."
        );
        let code = format!("n = {n}\nprint(n % 97)\n");
        let entries = vec![
            entry(
                "user_proxy",
                "assistant",
                Message::user(format!("{PROMPT}{question}")),
                0,
            ),
            entry(
                "assistant",
                "user_proxy",
                Message::assistant(format!(
                    "The key idea is to compute the remainder directly. {}\n\n```python\n{code}```",
                    self.reasoning(n)
                )),
                412,
            ),
            TranscriptEntry {
                work: ReplyWork {
                    executions: vec![Execution::Code(CodeExecution {
                        lang: "python".to_owned(),
                        code,
                        success: true,
                        output: format!("{answer}\n"),
                        sandbox: None,
                    })],
                    ..ReplyWork::default()
                },
                ..entry(
                    "user_proxy",
                    "assistant",
                    Message::user(format!("{answer}\n")),
                    0,
                )
            },
            entry(
                "assistant",
                "user_proxy",
                Message::assistant(format!(
                    "{} The remainder is $\\boxed{{{answer}}}$.",
                    self.reasoning(n + 1)
                )),
                380,
            ),
        ];
        let transcript = Transcript {
            initiator: "user_proxy".to_owned(),
            recipient: "assistant".to_owned(),
            totals: TranscriptTotals {
                messages: entries.len(),
                model_calls: 2,
                usage: Usage {
                    prompt_tokens: 700,
                    completion_tokens: 92,
                },
                failed_executions: 0,
                executions: 1,
            },
            entries,
            stop_reason: StopReason::Terminated {
                agent: "user_proxy".to_owned(),
            },
            wall_time: Duration::from_millis(2_400),
        };
        let history = vec![agentopt_llm::ChatMessage::user(question)];
        Attempt::from_transcript(
            Outcome::judged(solved, || format!("answered {answer}, expected {expected}")),
            history,
            transcript,
        )
        .with_answers(Some(answer), Some(expected))
    }
}

fn entry(sender: &str, recipient: &str, message: Message, tokens: u64) -> TranscriptEntry {
    TranscriptEntry {
        sender: sender.to_owned(),
        recipient: recipient.to_owned(),
        message,
        work: ReplyWork {
            model_calls: u32::from(tokens > 0),
            usage: Usage {
                prompt_tokens: tokens,
                completion_tokens: tokens / 8,
            },
            executions: Vec::new(),
            duration: Duration::from_millis(1_100),
        },
        elapsed: Duration::ZERO,
    }
}
