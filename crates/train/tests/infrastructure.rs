//! Infrastructure errors are never training signal: not given to the optimizer, not
//! counted in any accuracy, counted in the report, and re-run by the next run.

use std::sync::atomic::Ordering;

use agentopt_core::files::read_json_lines;
use agentopt_train::{ConversationRecord, InfraKind, Problems, StepRecord, TrainerOptions};

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
    assert_eq!(report.infrastructure[0].by_kind, [(InfraKind::Model, 1)]);
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
