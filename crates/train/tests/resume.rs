//! A run stopped at any point and run again reports what an uninterrupted run does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_train::{Event, Observer, TrainingReport};
use tokio::sync::Notify;

use crate::{Halving, optimizer_server, problems, trainer};

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
