//! AG2 config-list semantics: entries are tried in order; the answer and the usage
//! report say which entry answered.

use std::sync::Arc;

use agentopt_llm::config::parse_config_list;
use agentopt_llm::{
    Budget, ChatModel, ClientOptions, ConfigListModel, EndpointConfig, LlmError, PriceTable,
    UsageMeter,
};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{ask, fast_options};

/// A config list over `servers` (in order), every entry for model `m`, sharing `meter`.
fn list_over(servers: &[&ScriptedServer], meter: &UsageMeter) -> ConfigListModel {
    let text = serde_json::to_string(
        &servers
            .iter()
            .map(|server| serde_json::json!({"model": "m", "base_url": server.base_url()}))
            .collect::<Vec<_>>(),
    )
    .expect("a list of objects serialises");
    let configs = parse_config_list("OAI_CONFIG_LIST", &text).expect("valid list");
    let options = ClientOptions {
        meter: Some(meter.clone()),
        ..fast_options()
    };
    ConfigListModel::from_configs(configs, &options).expect("usable entries")
}

fn label(server: &ScriptedServer) -> String {
    EndpointConfig::compatible(server.base_url(), "m").label()
}

#[tokio::test]
async fn a_failing_entry_falls_back_to_the_next_in_order() -> anyhow::Result<()> {
    let down = ScriptedServer::with_rule(|_| Reply::server_error(503)).await;
    let malformed = ScriptedServer::with_rule(|_| Reply::empty_choices()).await;
    let up = ScriptedServer::start([Reply::text("from the third")]).await;
    let meter = UsageMeter::new(PriceTable::new());
    let model = list_over(&[&down, &malformed, &up], &meter);

    let response = model.chat(ask("q")).await?;
    assert_eq!(response.message.content.as_deref(), Some("from the third"));
    assert_eq!(response.endpoint, Some(label(&up)));
    // Each entry used its own retries before the list moved on.
    assert_eq!(
        [&down, &malformed, &up].map(|server| server.chat_requests().len()),
        [3, 3, 1]
    );
    let report = meter.report();
    let by_endpoint = |server: &ScriptedServer| {
        let totals = report.by_endpoint[&label(server)];
        (totals.calls, totals.failed_calls)
    };
    assert_eq!(
        [
            by_endpoint(&down),
            by_endpoint(&malformed),
            by_endpoint(&up)
        ],
        [(0, 1), (0, 1), (1, 0)]
    );
    assert_eq!((report.total.calls, report.total.failed_calls), (1, 2));
    Ok(())
}

#[tokio::test]
async fn the_first_entry_that_answers_ends_the_call() -> anyhow::Result<()> {
    let first = ScriptedServer::start([Reply::text("first")]).await;
    let second = ScriptedServer::start([]).await;
    let meter = UsageMeter::new(PriceTable::new());
    let response = list_over(&[&first, &second], &meter).chat(ask("q")).await?;
    assert_eq!(response.endpoint, Some(label(&first)));
    assert!(
        second.requests().is_empty(),
        "the second entry is never asked"
    );
    Ok(())
}

#[tokio::test]
async fn when_every_entry_fails_the_last_error_is_returned() {
    let down = ScriptedServer::with_rule(|_| Reply::server_error(500)).await;
    let refusing = ScriptedServer::with_rule(|_| Reply::server_error(401)).await;
    let meter = UsageMeter::new(PriceTable::new());
    let error = list_over(&[&down, &refusing], &meter)
        .chat(ask("q"))
        .await
        .expect_err("all fail");
    assert!(
        matches!(error, LlmError::Http { status: 401, ref endpoint, .. } if *endpoint == refusing.base_url()),
        "{error}"
    );
    assert_eq!(meter.report().total.failed_calls, 2);
}

#[tokio::test]
async fn local_refusals_do_not_fall_back() -> anyhow::Result<()> {
    let first = ScriptedServer::with_rule(|_| Reply::text("spent").with_usage(100, 0)).await;
    let second = ScriptedServer::start([]).await;
    let meter = UsageMeter::new(PriceTable::new()).with_budget(Budget {
        max_cost_usd: None,
        max_tokens: Some(50),
    });
    let model = list_over(&[&first, &second], &meter);
    model.chat(ask("1")).await?;
    let error = model.chat(ask("2")).await.expect_err("over budget");
    assert!(matches!(error, LlmError::BudgetExceeded { .. }), "{error}");
    assert!(
        second.requests().is_empty(),
        "a budget stop is not an endpoint failure"
    );
    Ok(())
}

#[tokio::test]
async fn the_list_reports_its_smallest_context_window() -> anyhow::Result<()> {
    let large = ScriptedServer::builder().n_ctx(32_768).script([]).await;
    let small = ScriptedServer::builder().n_ctx(8_192).script([]).await;
    let meter = UsageMeter::new(PriceTable::new());
    let model = list_over(&[&large, &small], &meter);
    assert_eq!(model.context_window().await?, 8_192);
    assert_eq!(model.model_name(), "m");
    assert!(
        ConfigListModel::new(Vec::<Arc<dyn ChatModel>>::new()).is_err(),
        "an empty list is refused"
    );
    Ok(())
}
