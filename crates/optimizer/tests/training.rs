//! Roll-back, failure experience, early stop, the action loop and agent updates.

use agentopt_optimizer::{Action, AgentOptimizer, OptimizerError, OptimizerOptions, StepOutcome};
use agentopt_testkit::Reply;

use crate::{add_sum, optimizer, record, remove};

fn names(outcome: &StepOutcome) -> Vec<&str> {
    outcome.functions.iter().map(|f| f.name.as_str()).collect()
}

#[tokio::test]
async fn step_with_nothing_recorded_is_an_error_and_asks_nothing() -> anyhow::Result<()> {
    let server = crate::server([]).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    let error = optimizer.step().await.err();
    assert!(
        matches!(error, Some(OptimizerError::NothingRecorded)),
        "{error:?}"
    );
    assert!(server.chat_requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn roll_back_is_strict_and_failures_clear_on_acceptance() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::text("TERMINATE"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());

    // First step: best starts below any score, so even 0.0 is accepted.
    record(&mut optimizer, &[false, false]);
    let first = optimizer.step().await?;
    assert!(first.accepted && first.improved);
    assert_eq!(first.trial_performance, 0.0);
    assert_eq!(names(&first), ["sum_numbers"]);

    // 0.0 is not < 0.0: a tie is accepted (it becomes the best) but is no improvement.
    record(&mut optimizer, &[false, false]);
    let tie = optimizer.step().await?;
    assert!(tie.accepted && !tie.improved);
    assert_eq!(optimizer.best_functions().len(), 1);

    // A better score is accepted.
    record(&mut optimizer, &[true, false]);
    let better = optimizer.step().await?;
    assert!(better.accepted && better.improved);
    assert_eq!(optimizer.best_performance(), Some(0.5));
    assert!(
        better.changes.is_empty(),
        "nothing changed: {:?}",
        better.changes
    );
    Ok(())
}

#[tokio::test]
async fn worse_trial_rolls_back_to_best_and_joins_failure_experience() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::tool_call(add_sum("other").0, add_sum("other").1),
        Reply::text("TERMINATE"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true, false]);
    optimizer.step().await?; // best: [] at 0.5; trial: [sum_numbers]

    record(&mut optimizer, &[false, false]);
    let rolled_back = optimizer.step().await?;
    assert!(!rolled_back.accepted);
    assert_eq!(rolled_back.best_performance, 0.5);
    assert!(optimizer.best_functions().is_empty());
    // List B restarts from the best list: sum_numbers leaves both agents, other arrives.
    assert_eq!(rolled_back.changes.removed, ["sum_numbers"]);
    assert!(matches!(&rolled_back.changes.added[..], [added] if added.name == "other"));
    assert!(rolled_back.changes.revised.is_empty());
    assert_eq!(optimizer.failure_experience().len(), 1);

    // [other] scores 0.25 < 0.5: rolled back too; the failures stay ascending.
    record(&mut optimizer, &[true, false, false, false]);
    let second = optimizer.step().await?;
    assert!(!second.accepted);
    let scores: Vec<f64> = optimizer
        .failure_experience()
        .iter()
        .map(|failure| failure.performance)
        .collect();
    assert_eq!(scores, [0.0, 0.25]);

    record(&mut optimizer, &[true, true]);
    let accepted = optimizer.step().await?;
    assert!(accepted.accepted);
    assert!(optimizer.failure_experience().is_empty());
    Ok(())
}

#[tokio::test]
async fn patience_steps_without_beating_the_best_report_stop() -> anyhow::Result<()> {
    let server = crate::server(std::iter::repeat_n(Reply::text("TERMINATE"), 4)).await;
    let options = OptimizerOptions {
        patience: Some(2),
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options);
    let mut stops = Vec::new();
    for outcomes in [
        &[true, false][..],
        &[true, false],
        &[false, false],
        &[true, true],
    ] {
        record(&mut optimizer, outcomes);
        stops.push(optimizer.step().await?.should_stop);
    }
    // improve, tie (1), worse (2: stop), improve (reset).
    assert_eq!(stops, [false, false, true, false]);
    Ok(())
}

#[tokio::test]
async fn text_reply_ends_the_action_loop() -> anyhow::Result<()> {
    let server = crate::server([Reply::text("TERMINATE")]).await;
    let mut optimizer = optimizer(&server, 5, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let outcome = optimizer.step().await?;
    assert!(outcome.terminated);
    assert!(outcome.actions.is_empty());
    assert_eq!(server.chat_requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn several_calls_in_one_reply_are_capped_at_max_actions() -> anyhow::Result<()> {
    let server = crate::server([Reply::tool_calls([
        add_sum("first"),
        add_sum("second"),
        add_sum("third"),
    ])])
    .await;
    let mut optimizer = optimizer(&server, 2, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let outcome = optimizer.step().await?;
    assert_eq!(names(&outcome), ["first", "second"]);
    assert_eq!(outcome.actions.len(), 2);
    assert_eq!(
        server.chat_requests().len(),
        1,
        "no request after the cap is reached"
    );
    Ok(())
}

#[tokio::test]
async fn removal_reaches_both_agents_and_revision_replaces() -> anyhow::Result<()> {
    let revised = crate::function_call(
        "revise_function",
        "second",
        &["a", "b"],
        "def second(a, b):\n    return a * b\n",
    );
    let server = crate::server([
        Reply::tool_calls([add_sum("first"), add_sum("second")]),
        Reply::tool_calls([remove("first"), revised]),
    ])
    .await;
    let mut optimizer = optimizer(&server, 2, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    let first = optimizer.step().await?;
    assert!(matches!(&first.changes.added[..], [a, b] if a.name == "first" && b.name == "second"));

    record(&mut optimizer, &[true]);
    let second = optimizer.step().await?;
    assert!(
        matches!(&second.actions[..], [Action::Remove(name), Action::Revise(_)] if name == "first")
    );
    assert_eq!(second.changes.removed, ["first"]);
    assert!(second.changes.added.is_empty());
    assert!(matches!(
        &second.changes.revised[..],
        [revised] if revised.name == "second" && revised.code.contains("a * b")
    ));
    Ok(())
}

#[tokio::test]
async fn validation_mode_keeps_the_best_unless_significantly_beaten() -> anyhow::Result<()> {
    let server = crate::server(std::iter::repeat_n(Reply::text("TERMINATE"), 3)).await;
    let options = OptimizerOptions {
        validation: Some(agentopt_optimizer::ValidationOptions { significance: 0.05 }),
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options);
    let validate = |optimizer: &mut agentopt_optimizer::AgentOptimizer, solved: usize| {
        for problem in 0..10 {
            optimizer.record_validation_outcome(format!("p{problem}"), problem < solved)?;
        }
        Ok::<_, OptimizerError>(())
    };

    record(&mut optimizer, &[true]);
    let missing = optimizer.step().await.err();
    assert!(
        matches!(missing, Some(OptimizerError::NothingValidated)),
        "{missing:?}"
    );

    validate(&mut optimizer, 2)?;
    assert!(optimizer.step().await?.accepted, "first step accepts");

    // A higher training mean but only 2 more validation problems: p = 0.25, kept out.
    record(&mut optimizer, &[true, true]);
    validate(&mut optimizer, 4)?;
    let noisy = optimizer.step().await?;
    assert!(!noisy.accepted);
    let comparison = noisy
        .validation
        .ok_or_else(|| anyhow::anyhow!("no comparison"))?;
    assert_eq!(
        (
            comparison.pairs,
            comparison.trial_only,
            comparison.best_only
        ),
        (10, 2, 0)
    );
    assert_eq!(comparison.p_value, 0.25);

    // Eight more problems solved on the same ten: p = 1/256, accepted.
    record(&mut optimizer, &[false]);
    validate(&mut optimizer, 10)?;
    let clear = optimizer.step().await?;
    assert!(clear.accepted && clear.improved, "{:?}", clear.validation);
    Ok(())
}

#[tokio::test]
async fn a_failed_step_changes_nothing() -> anyhow::Result<()> {
    let server = crate::server([Reply::server_error(500)]).await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true, false]);
    let error = optimizer.step().await.err();
    assert!(matches!(error, Some(OptimizerError::Model(_))), "{error:?}");
    assert_eq!(optimizer.steps_taken(), 0);
    assert_eq!(optimizer.best_performance(), None);

    // The recorded conversations are still there: the retried step scores them.
    server.push([Reply::text("TERMINATE")]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.trial_performance, 0.5);
    assert_eq!(optimizer.steps_taken(), 1);
    Ok(())
}

#[tokio::test]
async fn reset_forgets_everything() -> anyhow::Result<()> {
    let server = crate::server([Reply::tool_call(
        add_sum("sum_numbers").0,
        add_sum("sum_numbers").1,
    )])
    .await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    optimizer.step().await?;
    record(&mut optimizer, &[false]);
    optimizer.reset()?;
    assert_eq!(optimizer.best_performance(), None);
    assert!(optimizer.trial_functions().is_empty() && optimizer.best_functions().is_empty());
    assert_eq!(optimizer.steps_taken(), 0);
    let error = optimizer.step().await.err();
    assert!(
        matches!(error, Some(OptimizerError::NothingRecorded)),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test]
async fn retry_counts_that_would_overflow_are_refused_also_from_a_checkpoint() -> anyhow::Result<()>
{
    let server = crate::server([]).await;
    let too_many = OptimizerOptions {
        max_retries: u32::MAX,
        ..OptimizerOptions::default()
    };
    let refused = |error: Option<OptimizerError>| {
        matches!(
            error,
            Some(OptimizerError::InvalidOption { option: "max_retries", ref value, .. })
                if value == "4294967295"
        )
    };
    let error = AgentOptimizer::new(1, crate::client(&server), too_many).err();
    assert!(refused(error));

    let directory = tempfile::tempdir()?;
    let path = directory.path().join("checkpoint.json");
    let options = OptimizerOptions {
        checkpoint: Some(path.clone()),
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options);
    record(&mut optimizer, &[true]);
    let mut checkpoint: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    checkpoint["options"]["max_retries"] = serde_json::json!(u32::MAX);
    std::fs::write(&path, checkpoint.to_string())?;
    let error = AgentOptimizer::resume(&path, crate::client(&server)).err();
    assert!(refused(error));
    Ok(())
}
