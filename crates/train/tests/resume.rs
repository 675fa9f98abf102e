//! A run stopped at any point and run again reports what an uninterrupted run does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_optimizer::Partitioning;
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{Event, Observer, Trainer, TrainerOptions, TrainingReport};
use tokio::sync::Notify;

use crate::{Halving, add_halve, client, optimizer_server, options, problems, trainer};

/// Wakes `stop` when the `after`-th attempt is on disk.
struct StopAfter {
    after: usize,
    finished: Arc<AtomicUsize>,
    stop: Arc<Notify>,
}

impl Observer for StopAfter {
    fn event(&self, event: Event<'_>) {
        if let Event::Finished { .. } = event
            && self.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.after
        {
            self.stop.notify_one();
        }
    }
}

/// The report without wall times and spend, which differ between processes.
fn comparable(mut report: TrainingReport) -> TrainingReport {
    report.phases.clear();
    report.usage.clear();
    report
}

#[tokio::test]
async fn runs_stopped_anywhere_and_continued_report_like_an_uninterrupted_run() -> anyhow::Result<()>
{
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let expected = comparable(
        trainer(Halving::default(), &server, dir.path())
            .run(&problems())
            .await?,
    );

    // 4 test + 3 training attempts per epoch: stop inside each phase in turn.
    for after in [2, 5, 9, 11] {
        let server = optimizer_server().await;
        let dir = tempfile::tempdir()?;
        let stop = Arc::new(Notify::new());
        let finished = Arc::new(AtomicUsize::new(0));
        let observer = StopAfter {
            after,
            finished: Arc::clone(&finished),
            stop: Arc::clone(&stop),
        };
        let interrupted =
            trainer(Halving::default(), &server, dir.path()).with_observer(Arc::new(observer));
        let problems = problems();
        // Biased: once the observer asks to stop, the run is not polled again.
        tokio::select! {
            biased;
            () = stop.notified() => {}
            result = interrupted.run(&problems) => panic!("stopped after {after}: {result:?}"),
        }
        // As a killed process would, the interrupted trainer lets go of the directory.
        drop(interrupted);
        let recorded = finished.load(Ordering::SeqCst);
        assert!(
            recorded >= after,
            "stopped after {recorded}, asked for {after}"
        );
        let continued = trainer(Halving::default(), &server, dir.path());
        let report = comparable(continued.run(&problems).await?);
        assert_eq!(report, expected, "stopped after {after} attempts");
        let rerun = continued.task().attempts.load(Ordering::SeqCst);
        assert_eq!(
            rerun,
            4 + 3 + 3 + 4 - recorded,
            "only the missing attempts run again"
        );
    }
    Ok(())
}

/// An optimizer server that answers by the prompt alone: a group step whose List B
/// is empty adds `halve`, a merge and every later round end at once.
async fn partition_server(stop_at: Option<(usize, Arc<Notify>)>) -> ScriptedServer {
    let seen = AtomicUsize::new(0);
    ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |request| {
            let count = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some((at, stop)) = &stop_at
                && count == *at
            {
                stop.notify_one();
            }
            let prompt = request.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default();
            if prompt.contains("\nList B: [].") && !prompt.contains("\nCandidate: ") {
                add_halve()
            } else {
                Reply::text("TERMINATE")
            }
        })
        .await
}

fn partitioned(dir: &std::path::Path) -> TrainerOptions {
    let mut options = options(dir);
    options.optimizer.partitioning = Partitioning::AtMost(1);
    options
}

#[tokio::test]
async fn a_run_killed_between_partitions_reports_like_an_uninterrupted_run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = partition_server(None).await;
    let uninterrupted = Trainer::new(Halving::default(), client(&server), partitioned(dir.path()));
    let expected = comparable(uninterrupted.run(&problems()).await?);
    // Three training problems, one per group: each step has three groups.
    let steps: Vec<agentopt_train::StepRecord> =
        std::fs::read_to_string(dir.path().join("steps.jsonl"))?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
    assert!(steps.iter().all(|step| step.partitions == 3), "{steps:?}");

    // Killed when the second group of the first step asks.
    let dir = tempfile::tempdir()?;
    let stop = Arc::new(Notify::new());
    let server = partition_server(Some((3, Arc::clone(&stop)))).await;
    let interrupted = Trainer::new(Halving::default(), client(&server), partitioned(dir.path()));
    let problems = problems();
    tokio::select! {
        biased;
        () = stop.notified() => {}
        result = interrupted.run(&problems) => panic!("the run ended before the stop: {result:?}"),
    }
    drop(interrupted);
    let server = partition_server(None).await;
    let continued = Trainer::new(Halving::default(), client(&server), partitioned(dir.path()));
    let report = comparable(continued.run(&problems).await?);
    assert_eq!(report, expected);
    assert_eq!(
        continued.task().attempts.load(Ordering::SeqCst),
        4 + 3 + 3 + 4 - 7,
        "the attempts before the step are reused"
    );
    Ok(())
}
