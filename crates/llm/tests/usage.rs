//! Usage per model and caller, prices, and the budget stop.

use agentopt_llm::{Budget, ChatModel, ClientOptions, LlmError, PriceTable, UsageMeter};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{ask, client_with, fast_options};

#[tokio::test]
async fn usage_is_counted_per_model_and_caller() -> anyhow::Result<()> {
    let server = ScriptedServer::builder()
        .model("gpt-4o-2024-08-06")
        .script([
            Reply::text("a").with_usage(1_000, 100),
            Reply::text("b").with_usage(2_000, 200),
            Reply::text("c").with_usage(500, 50),
        ])
        .await;
    let meter = UsageMeter::new(
        PriceTable::new()
            .with("gpt-4o", 2.5, 10.0)
            .with("gpt-4", 30.0, 60.0),
    );
    let client = client_with(
        &server,
        ClientOptions {
            meter: Some(meter.clone()),
            ..fast_options()
        },
    );
    client.chat(ask("1").with_caller("assistant")).await?;
    client.chat(ask("2").with_caller("optimizer")).await?;
    client.chat(ask("3").with_caller("assistant")).await?;

    let report = meter.report();
    let assistant = report.by_caller["assistant"];
    assert_eq!(
        (
            assistant.calls,
            assistant.prompt_tokens,
            assistant.completion_tokens
        ),
        (2, 1_500, 150)
    );
    let optimizer = report.by_caller["optimizer"];
    assert_eq!((optimizer.calls, optimizer.total_tokens()), (1, 2_200));
    let model = report.by_model["gpt-4o-2024-08-06"];
    assert_eq!(model.calls, 3);
    // 3500 prompt tokens at $2.5/M plus 350 completion tokens at $10/M (prefix `gpt-4o` wins over `gpt-4`).
    assert!((report.total.cost_usd - (3_500.0 * 2.5 + 350.0 * 10.0) / 1e6).abs() < 1e-12);
    Ok(())
}

#[tokio::test]
async fn budget_stops_further_calls() -> anyhow::Result<()> {
    let server = ScriptedServer::with_rule(|_| Reply::text("spent").with_usage(1_000_000, 0)).await;
    let meter =
        UsageMeter::new(PriceTable::new().with("scripted-model", 1.0, 1.0)).with_budget(Budget {
            max_cost_usd: Some(1.5),
            max_tokens: None,
        });
    let client = client_with(
        &server,
        ClientOptions {
            meter: Some(meter.clone()),
            ..fast_options()
        },
    );
    client.chat(ask("1")).await?;
    client.chat(ask("2")).await?; // crosses the budget: still answered
    let error = client.chat(ask("3")).await.expect_err("over budget");
    assert_eq!(
        error.to_string(),
        "budget exceeded: spent $2.0000 and 2000000 tokens, limit $1.5000; no further calls"
    );
    assert!(matches!(error, LlmError::BudgetExceeded { .. }));
    assert_eq!(
        server.chat_requests().len(),
        2,
        "no request after the budget ran out"
    );
    Ok(())
}

#[tokio::test]
async fn token_budget_for_free_models() -> anyhow::Result<()> {
    let server = ScriptedServer::with_rule(|_| Reply::text("t").with_usage(60, 40)).await;
    let meter = UsageMeter::new(PriceTable::new()).with_budget(Budget {
        max_cost_usd: None,
        max_tokens: Some(150),
    });
    let client = client_with(
        &server,
        ClientOptions {
            meter: Some(meter),
            ..fast_options()
        },
    );
    client.chat(ask("1")).await?;
    client.chat(ask("2")).await?;
    let error = client.chat(ask("3")).await.expect_err("over token budget");
    assert!(error.to_string().contains("limit 150 tokens"), "{error}");
    Ok(())
}
