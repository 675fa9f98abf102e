//! The pipeline on the real embedded model (0.5B): run by `cargo xtask test`.

use std::process::Command;

use agentopt_core::files::read_json;
use agentopt_train::TrainingReport as Report;

#[test]
#[ignore = "real model: run by cargo xtask test"]
fn real_model_smoke_run_writes_a_report() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let run_dir = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(dir.path())
        .env_remove("OAI_CONFIG_LIST")
        .env_remove("OPENAI_API_KEY")
        .env_remove("AZURE_OPENAI_API_KEY")
        .args([
            "bench-math",
            "--quiet",
            "--preset",
            "smoke",
            "--local-model",
            "0.5b",
        ])
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "bench-math failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Accuracy is not asserted: a 0.5B model on one problem is a coin toss.
    let report: Report = read_json(&run_dir.join("report.json")).expect("report.json");
    assert_eq!(report.test_before.accuracy.total, 1);
    assert_eq!(report.test_after.accuracy.total, 1);
    assert_eq!(report.epochs.len(), 1);
    assert!(
        report
            .usage
            .iter()
            .any(|usage| usage.role == "assistant" && usage.calls > 0)
    );
    let svg = std::fs::read_to_string(run_dir.join("learning_curve.svg")).expect("svg");
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(run_dir.join("report.md").is_file());
    assert!(run_dir.join("functions.json").is_file());
}

/// The longest prompt a step sends over digit-heavy MATH conversations (the
/// first number-theory training problems, tool outputs of long integers), taken
/// from a scripted server: the request body and its estimate in tokens.
async fn longest_optimizer_prompt() -> (serde_json::Value, usize) {
    use agentopt_llm::{ChatMessage, ClientOptions, EndpointConfig, OpenAiClient, RetryPolicy};
    use agentopt_optimizer::{AgentOptimizer, OptimizerOptions, Partitioning};
    use agentopt_testkit::{Reply, ScriptedServer};

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let problems =
        std::fs::read_to_string(workspace.join("data/math-craft/train/number_theory.jsonl"))
            .expect("bundled number theory problems");
    let server = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(|_| Reply::text("TERMINATE"))
        .await;
    let client = OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "scripted-model"),
        ClientOptions {
            retry: RetryPolicy::none(),
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let options = OptimizerOptions {
        partitioning: Partitioning::Never,
        ..OptimizerOptions::default()
    };
    let mut optimizer =
        AgentOptimizer::new(3, std::sync::Arc::new(client), options).expect("optimizer");
    for (index, line) in problems.lines().take(40).enumerate() {
        let problem: serde_json::Value = serde_json::from_str(line).expect("a problem");
        let question = problem["question"].as_str().unwrap_or_default();
        let digits: Vec<String> = (0..12)
            .map(|power| (3_u128.pow(40 + power) + index as u128).to_string())
            .collect();
        let history = vec![
            ChatMessage::user(format!(
                "Let's use Python to solve a math problem.\n\n{question}"
            )),
            ChatMessage::assistant(format!(
                "```python\nprint([3**(40 + k) + {index} for k in range(12)])\n```"
            )),
            ChatMessage::user(format!("[{}]", digits.join(", "))),
            ChatMessage::assistant(format!("\\boxed{{{}}}", problem["answer"])),
        ];
        optimizer
            .record_one_conversation(history, index % 2 == 0)
            .expect("recorded");
    }
    let outcome = optimizer.step().await.expect("a step");
    let longest = server
        .chat_requests()
        .into_iter()
        .max_by_key(|request| request.raw_body.len())
        .expect("a request");
    let estimate = outcome
        .prompts
        .iter()
        .map(|report| report.prompt_tokens)
        .max()
        .expect("a prompt");
    (longest.body, estimate)
}

#[test]
#[ignore = "real model: run by cargo xtask test"]
fn real_model_prompt_estimate_is_not_below_llama_cpp_s_token_count() {
    use agentopt_local::{LocalModel, LocalServer, LocalServerOptions};

    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(async {
            let (body, estimate) = longest_optimizer_prompt().await;
            // Tokenizing needs no generation: the smallest model has the same
            // tokenizer as the 1.5B one (Qwen2.5).
            let server = LocalServer::start(LocalServerOptions {
                model: LocalModel::QwenCoder0_5B,
                context_size: Some(8192),
                parallel: 1,
                ..LocalServerOptions::default()
            })
            .await
            .expect("server starts");
            let base = server.endpoint().base_url;
            let root = base.trim_end_matches('/').trim_end_matches("/v1");
            let http = reqwest::Client::new();
            let post = |path: &str, request: serde_json::Value| {
                let http = http.clone();
                let url = format!("{root}/{path}");
                async move {
                    let response = http.post(&url).json(&request).send().await;
                    let response = response.and_then(reqwest::Response::error_for_status);
                    let reply: serde_json::Value =
                        response.expect(&url).json().await.expect("a JSON reply");
                    reply
                }
            };
            // The prompt as the model sees it: Qwen's chat template with the tools.
            let templated = post(
                "apply-template",
                serde_json::json!({"messages": body["messages"], "tools": body["tools"]}),
            )
            .await;
            let prompt = templated["prompt"].as_str().expect("a templated prompt");
            let tokens = post("tokenize", serde_json::json!({"content": prompt})).await;
            let real = tokens["tokens"].as_array().expect("tokens").len();
            let bytes = prompt.len();
            println!(
                "longest optimizer prompt: {bytes} bytes templated; estimate {estimate} tokens, \
                 llama.cpp {real} tokens ({:.2} bytes per real token, estimate/real {:.2})",
                bytes as f64 / real as f64,
                estimate as f64 / real as f64
            );
            assert!(
                estimate >= real,
                "the estimate ({estimate}) is below llama.cpp's count ({real}): a prompt \
                 sized to fit could overflow the window"
            );
        });
}
