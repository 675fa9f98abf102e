//! Client overhead and throughput against the scripted server; prints a table.
//!
//! Run: `cargo bench -p agentopt-llm --bench client_overhead`.
//! Overhead = full `ChatModel::chat` latency (our types → async-openai → HTTP →
//! parse → our types) minus a bare reqwest POST of the same body to the same server.

use std::time::{Duration, Instant};

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ClientOptions, EndpointConfig, OpenAiClient,
};
use agentopt_testkit::{Reply, ScriptedServer};

const LATENCY_SAMPLES: usize = 3000;
const WARMUP: usize = 200;
const SIMULATED_LATENCY: Duration = Duration::from_millis(300);
const REQUESTS_PER_WORKER: usize = 5;

fn request() -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are a helpful math assistant.".repeat(10)),
        ChatMessage::user("What is the sum of the first 100 positive integers?"),
    ])
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

/// Times `bare` and `full` alternately, so drift on a shared machine hits both alike.
async fn paired_latencies<B, BF, F, FF>(mut bare: B, mut full: F) -> (Vec<Duration>, Vec<Duration>)
where
    B: FnMut() -> BF,
    BF: std::future::Future<Output = ()>,
    F: FnMut() -> FF,
    FF: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        bare().await;
        full().await;
    }
    let mut bare_samples = Vec::with_capacity(LATENCY_SAMPLES);
    let mut full_samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        bare().await;
        bare_samples.push(started.elapsed());
        let started = Instant::now();
        full().await;
        full_samples.push(started.elapsed());
    }
    bare_samples.sort();
    full_samples.sort();
    (bare_samples, full_samples)
}

async fn overhead() -> anyhow::Result<()> {
    let server = ScriptedServer::with_rule(|_| Reply::text("5050")).await;
    let client = OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "bench-model"),
        ClientOptions::default(),
    )?;
    let body =
        serde_json::json!({"model": "bench-model", "messages": request().messages}).to_string();
    let raw = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.base_url());

    let (bare, full) = paired_latencies(
        || async {
            let response = raw
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("bare request");
            response.bytes().await.expect("bare body");
        },
        || async {
            client.chat(request()).await.expect("client request");
        },
    )
    .await;

    println!(
        "## Client overhead ({LATENCY_SAMPLES} sequential requests, scripted server, no delay)\n"
    );
    println!("| path | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| bare reqwest POST | {} | {} |",
        micros(percentile(&bare, 0.5)),
        micros(percentile(&bare, 0.99))
    );
    println!(
        "| OpenAiClient::chat | {} | {} |",
        micros(percentile(&full, 0.5)),
        micros(percentile(&full, 0.99))
    );
    println!(
        "| overhead | {} | {} |\n",
        micros(percentile(&full, 0.5).saturating_sub(percentile(&bare, 0.5))),
        micros(percentile(&full, 0.99).saturating_sub(percentile(&bare, 0.99)))
    );
    Ok(())
}

async fn throughput(concurrency: usize, limit: usize) -> anyhow::Result<f64> {
    let server = ScriptedServer::with_rule(|_| Reply::text("ok").delayed(SIMULATED_LATENCY)).await;
    let client = OpenAiClient::new(
        EndpointConfig::compatible(server.base_url(), "bench-model"),
        ClientOptions {
            max_concurrency: limit,
            ..ClientOptions::default()
        },
    )?;
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            for _ in 0..REQUESTS_PER_WORKER {
                client.chat(request()).await.expect("request");
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker?;
    }
    Ok((concurrency * REQUESTS_PER_WORKER) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    overhead().await?;
    println!(
        "## Throughput with {} ms simulated latency\n",
        SIMULATED_LATENCY.as_millis()
    );
    println!("| concurrency | limit | requests/s | ideal min(c, limit)/latency |");
    println!("|---|---|---|---|");
    for (concurrency, limit) in [(1, 16), (8, 16), (32, 16), (32, 32)] {
        let rate = throughput(concurrency, limit).await?;
        let ideal = concurrency.min(limit) as f64 / SIMULATED_LATENCY.as_secs_f64();
        println!("| {concurrency} | {limit} | {rate:.1} | {ideal:.1} |");
    }
    Ok(())
}
