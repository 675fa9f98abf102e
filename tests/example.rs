//! The custom-task example trains offline: a task that is not MATH, with its own
//! checker, gets the whole training run from the library.

#[allow(dead_code, reason = "the example's `main` is not called here")]
#[path = "../examples/train_custom_task.rs"]
mod example;

#[tokio::test]
async fn the_custom_task_example_learns_count_vowels_offline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let report = example::offline(dir.path()).await?;
    assert_eq!(
        (
            report.test_before.accuracy.correct,
            report.test_before.accuracy.total
        ),
        (0, 4)
    );
    assert_eq!(
        (
            report.test_after.accuracy.correct,
            report.test_after.accuracy.total
        ),
        (4, 4)
    );
    let learned = &report.functions[0];
    assert_eq!(learned.name, "count_vowels");
    assert_eq!(
        (learned.test_after.calls, learned.test_after.succeeded),
        (4, 4)
    );
    assert!(report.incomplete.is_none());

    // The artifact loads as a set for any agent pair, and the run continues (here:
    // has nothing left to do) when started again on its directory.
    let functions = agentopt::train::FunctionSet::load(&dir.path().join("functions.json"))?;
    assert_eq!(functions.names(), ["count_vowels"]);
    let again = example::offline(dir.path()).await?;
    assert_eq!(again.test_after, report.test_after);
    Ok(())
}
