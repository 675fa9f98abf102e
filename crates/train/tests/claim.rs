//! One process per run directory, and spend as durable run state: the lock, its
//! stale takeover, the spend journal (the preflight's included) and a budget that
//! covers every process of a run.

use std::sync::Arc;

use agentopt_core::files::read_json_lines;
use agentopt_llm::{
    ApiKey, Budget, ClientOptions, EndpointConfig, OpenAiClient, PriceTable, RetryPolicy,
    SpendEntry, SpendEvent, UsageMeter,
};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{TrainError, Trainer, TrainerOptions};

use crate::{Halving, optimizer_server, options, problems, trainer};

#[tokio::test]
async fn a_second_trainer_on_a_run_directory_is_refused_naming_the_holder() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let first = trainer(Halving::default(), &server, dir.path());
    first.check(&problems()).await?;
    let second = trainer(Halving::default(), &server, dir.path());
    let error = second
        .check(&problems())
        .await
        .expect_err("the first holds it");
    let pid = std::process::id();
    assert!(
        matches!(error, TrainError::RunDirInUse { pid: Some(holder), .. } if holder == pid),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("is in use by process {pid}")),
        "{error}"
    );
    let requests = server.requests().len();
    assert!(second.run(&problems()).await.is_err(), "run checks too");
    assert_eq!(
        server.requests().len(),
        requests,
        "refused before any request"
    );
    drop(first);
    let report = second.run(&problems()).await?;
    assert!(report.incomplete.is_none());
    Ok(())
}

#[tokio::test]
async fn a_stale_lock_of_a_dead_process_is_taken_over() -> anyhow::Result<()> {
    let mut gone = std::process::Command::new("true").spawn()?;
    let dead_pid = gone.id();
    gone.wait()?;
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let lock = dir.path().join("run.lock");
    std::fs::write(&lock, format!("{dead_pid}\n"))?;
    let trainer = trainer(Halving::default(), &server, dir.path());
    trainer.run(&problems()).await?;
    assert_eq!(
        std::fs::read_to_string(&lock)?.trim(),
        std::process::id().to_string(),
        "held, and recorded as ours, while the trainer lives"
    );
    drop(trainer);
    assert_eq!(
        std::fs::read_to_string(&lock)?,
        "",
        "released with the trainer"
    );
    Ok(())
}

/// A client of `server` metering into `meter` at $1,000 per million tokens (a
/// scripted reply's 15 tokens cost $0.015), no retries.
fn priced_client(server: &ScriptedServer, meter: &UsageMeter) -> Arc<OpenAiClient> {
    let endpoint = EndpointConfig::compatible(server.base_url(), "scripted-model");
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        meter: Some(meter.clone()),
        ..ClientOptions::default()
    };
    Arc::new(OpenAiClient::new(endpoint, options).expect("client"))
}

fn priced_meter(limit_usd: f64) -> UsageMeter {
    UsageMeter::new(PriceTable::new().with("scripted-model", 1000.0, 1000.0)).with_budget(Budget {
        max_cost_usd: Some(limit_usd),
        max_tokens: None,
    })
}

#[tokio::test]
async fn the_budget_covers_the_whole_run_across_processes() -> anyhow::Result<()> {
    // One optimizer call per step at $0.015: steps 1 and 2 fit a $0.02 limit (the
    // second starts at $0.015), step 3 does not.
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let run = |meter: &UsageMeter| {
        let options = TrainerOptions {
            epochs: 3,
            meter: Some(meter.clone()),
            ..options(dir.path())
        };
        Trainer::new(Halving::default(), priced_client(&server, meter), options)
    };
    let first = run(&priced_meter(0.02)).run(&problems()).await?;
    let reason = first.incomplete.as_deref().expect("stopped by the budget");
    assert!(
        reason.contains("budget is used up in the optimizer step after epoch 3"),
        "{reason}"
    );
    let calls_before = server.chat_requests().len();
    assert_eq!(calls_before, 2);

    // Each later process starts from what was spent: no call is made at all.
    for _ in 0..3 {
        let meter = priced_meter(0.02);
        let report = run(&meter).run(&problems()).await?;
        assert!(report.incomplete.is_some());
        assert_eq!(
            server.chat_requests().len(),
            calls_before,
            "nothing more spent"
        );
        let spent: f64 = report.usage.iter().map(|usage| usage.cost_usd).sum();
        assert!((spent - 0.03).abs() < 1e-9, "{:?}", report.usage);
        assert!(
            spent <= 0.02 + 0.015 + 1e-9,
            "at most the limit plus one call"
        );
        assert!((meter.report().total.cost_usd - 0.03).abs() < 1e-9);
    }
    let journal: Vec<SpendEntry> = read_json_lines(&dir.path().join("spend.jsonl"))?;
    assert_eq!(journal.len(), 2);
    assert!(journal.iter().all(|entry| entry.caller == "optimizer"
        && matches!(entry.event, SpendEvent::Answered { cost_usd, .. } if (cost_usd - 0.015).abs() < 1e-12)));

    // A raised limit continues the run from where it stopped.
    let report = run(&priced_meter(1.0)).run(&problems()).await?;
    assert!(report.incomplete.is_none(), "{:?}", report.incomplete);
    assert_eq!(report.epochs.len(), 3);
    Ok(())
}

#[tokio::test]
async fn the_preflight_s_spend_is_journaled_and_reported() -> anyhow::Result<()> {
    // An Azure endpoint lists no models: the preflight asks for one token, a priced
    // call, before the run directory exists.
    let server = ScriptedServer::start([
        Reply::text("p"),
        Reply::text("TERMINATE"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let meter = UsageMeter::new(PriceTable::new().with("scripted-model", 1000.0, 1000.0));
    let endpoint = EndpointConfig::azure(
        server.root_url(),
        "gpt-4o-mini",
        ApiKey::new("k1234"),
        "2024-06-01",
    );
    let client_options = ClientOptions {
        retry: RetryPolicy::none(),
        meter: Some(meter.clone()),
        ..ClientOptions::default()
    };
    let client = Arc::new(OpenAiClient::new(endpoint, client_options)?);
    let dir = tempfile::tempdir()?;
    let run_dir = dir.path().join("fresh");
    let options = TrainerOptions {
        meter: Some(meter.clone()),
        ..options(&run_dir)
    };
    let report = Trainer::new(Halving::default(), client, options)
        .run(&problems())
        .await?;
    let preflight = report
        .usage
        .iter()
        .find(|usage| usage.role == "preflight")
        .expect("the preflight's call is reported");
    assert_eq!(preflight.calls, 1);
    assert!((preflight.cost_usd - 0.015).abs() < 1e-12);
    let journal: Vec<SpendEntry> = read_json_lines(&run_dir.join("spend.jsonl"))?;
    assert_eq!(
        journal[0].caller, "preflight",
        "written first, once the directory exists"
    );
    assert_eq!(journal.len(), 3, "the preflight and two optimizer steps");
    Ok(())
}

#[tokio::test]
async fn a_corrupt_journal_is_named_before_any_model_request() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("steps.jsonl"),
        "{\"epoch\": 1, \"kept\": tru\n",
    )?;
    let error = trainer(Halving::default(), &server, dir.path())
        .check(&problems())
        .await
        .expect_err("corrupt");
    assert!(error.to_string().contains("steps.jsonl"), "{error}");
    assert!(server.requests().is_empty(), "not even the preflight ran");
    Ok(())
}
