//! Infrastructure errors are never training signal: not given to the optimizer, not
//! counted in any accuracy, counted in the report, and re-run by the next run.

use std::sync::atomic::Ordering;

use agentopt_core::files::read_json_lines;
use agentopt_train::{ConversationRecord, FailureKind, Problems, StepRecord, TrainerOptions};

use crate::{Halving, optimizer_server, problems, trainer};

#[tokio::test]
async fn an_outage_mid_phase_is_counted_apart_and_rerun_by_the_next_run() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let task = Halving::default();
    task.outage.lock().expect("lock").insert(3); // a training problem of epoch 1
    let first = trainer(task, &server, dir.path());
    let report = first.run(&problems()).await?;

    let reason = report.incomplete.as_deref().expect("stopped by the outage");
    assert!(
        reason.contains("1 infrastructure error(s) during training epoch 1"),
        "{reason}"
    );
    assert_eq!(report.infrastructure.len(), 1);
    assert_eq!(report.infrastructure[0].phase, "epoch 1");
    assert_eq!(report.infrastructure[0].by_kind, [(FailureKind::Model, 1)]);
    assert!(report.infrastructure[0].first_message.contains("HTTP 503"));
    assert!(report.epochs.is_empty(), "no step on an epoch with errors");
    assert!(
        server.chat_requests().is_empty(),
        "the optimizer saw nothing"
    );
    assert!(read_json_lines::<StepRecord>(&dir.path().join("steps.jsonl"))?.is_empty());
    assert_eq!(report.test_before.accuracy.total, 4);
    let markdown = std::fs::read_to_string(dir.path().join("report.md"))?;
    assert!(markdown.contains("## Infrastructure errors"), "{markdown}");

    // The endpoint works again: the next run re-runs exactly the failed attempt.
    first.task().outage.lock().expect("lock").clear();
    let attempts_before = first.task().attempts.load(Ordering::SeqCst);
    let report = first.run(&problems()).await?;
    let rerun = first.task().attempts.load(Ordering::SeqCst) - attempts_before;
    assert_eq!(
        rerun,
        1 + 3 + 4,
        "n3 again, epoch 2, the test after training"
    );
    assert!(report.incomplete.is_none() && report.infrastructure.is_empty());
    assert_eq!(
        report.epochs[0].accuracy.total, 3,
        "n3 counts once it really ran"
    );
    let records: Vec<ConversationRecord> = read_json_lines(&dir.path().join("transcripts.jsonl"))?;
    let n3: Vec<bool> = records
        .iter()
        .filter(|record| record.problem_id == "n3")
        .map(|record| record.attempt.outcome.infrastructure().is_some())
        .collect();
    assert_eq!(
        n3,
        [true, false, false],
        "kept in the journal, superseded by the re-run"
    );
    Ok(())
}

#[tokio::test]
async fn errors_in_a_row_stop_a_phase_from_starting_new_attempts() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let task = Halving::default();
    task.outage
        .lock()
        .expect("lock")
        .extend([6, 7, 8, 10, 12, 14]);
    let options = TrainerOptions {
        concurrency: 1,
        max_consecutive_infrastructure_errors: 3,
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(task, crate::client(&server), options);
    let problems = Problems {
        test: vec![6, 7, 8, 10, 12, 14],
        ..problems()
    };
    let report = trainer.run(&problems).await?;
    assert_eq!(trainer.task().attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        report.test_before.accuracy.total, 0,
        "no error is a wrong answer"
    );
    assert_eq!(report.infrastructure[0].total(), 3);
    assert!(report.incomplete.is_some());
    Ok(())
}

#[tokio::test]
async fn a_step_whose_model_fails_is_skipped_and_training_goes_on() -> anyhow::Result<()> {
    use std::sync::atomic::AtomicUsize;
    // Step 1's request fails (no retries in tests); step 2 learns `halve`.
    let requests = AtomicUsize::new(0);
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |_| match requests.fetch_add(1, Ordering::SeqCst) {
            0 => agentopt_testkit::Reply::server_error(500),
            1 => crate::add_halve(),
            _ => agentopt_testkit::Reply::text("TERMINATE"),
        })
        .await;
    let dir = tempfile::tempdir()?;
    let meter = agentopt_llm::UsageMeter::new(agentopt_llm::PriceTable::new());
    let endpoint = agentopt_llm::EndpointConfig::compatible(server.base_url(), "scripted-model");
    let client_options = agentopt_llm::ClientOptions {
        retry: agentopt_llm::RetryPolicy::none(),
        meter: Some(meter.clone()),
        ..agentopt_llm::ClientOptions::default()
    };
    let client = std::sync::Arc::new(agentopt_llm::OpenAiClient::new(endpoint, client_options)?);
    let options = TrainerOptions {
        epochs: 3,
        meter: Some(meter),
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(Halving::default(), client, options);
    let report = trainer.run(&problems()).await?;

    let skipped = report.epochs[0].skipped.as_deref().expect("step 1 skipped");
    assert!(skipped.contains("500"), "{skipped}");
    assert_eq!(report.epochs.len(), 3, "training went on");
    assert_eq!(report.epochs[1].actions, 1, "step 2 learned halve");
    assert_eq!(report.test_after.accuracy.correct, 3);
    assert!(report.incomplete.is_none());
    let optimizer = report
        .usage
        .iter()
        .find(|usage| usage.role == "optimizer")
        .expect("metered");
    assert_eq!(
        (optimizer.failed_calls, optimizer.calls),
        (1, 2),
        "the failure is counted"
    );
    assert_eq!(report.endpoints.len(), 1);
    assert_eq!(report.endpoints[0].failed_calls, 1);
    let markdown = std::fs::read_to_string(dir.path().join("report.md"))?;
    assert!(markdown.contains("| skipped ("), "{markdown}");
    assert_eq!(report.training_failed(), None, "step 2 ran");
    let summary = report.terminal_summary();
    assert!(
        summary.contains("optimizer step after epoch 1 skipped: ") && summary.contains("500"),
        "{summary}"
    );
    Ok(())
}

#[tokio::test]
async fn a_run_whose_every_step_failed_says_so() -> anyhow::Result<()> {
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(8192)
        .rule(|_| agentopt_testkit::Reply::server_error(503))
        .await;
    let dir = tempfile::tempdir()?;
    let endpoint = agentopt_llm::EndpointConfig::compatible(server.base_url(), "scripted-model");
    let client_options = agentopt_llm::ClientOptions {
        retry: agentopt_llm::RetryPolicy::none(),
        ..agentopt_llm::ClientOptions::default()
    };
    let client = std::sync::Arc::new(agentopt_llm::OpenAiClient::new(endpoint, client_options)?);
    let options = TrainerOptions {
        epochs: 2,
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(Halving::default(), client, options);
    let report = trainer.run(&problems()).await?;
    assert!(report.epochs.iter().all(|epoch| epoch.skipped.is_some()));
    let reason = report.training_failed().expect("every step failed");
    assert!(
        reason.starts_with(
            "every optimizer step failed, so no function was learned (after epoch 1: "
        ) && reason.contains("; after epoch 2: ")
            && reason.contains("503"),
        "{reason}"
    );
    let summary = report.terminal_summary();
    assert!(
        summary.contains("TRAINING FAILED: every optimizer step failed"),
        "{summary}"
    );
    assert!(
        summary.contains("optimizer step after epoch 2 skipped: "),
        "{summary}"
    );
    Ok(())
}
