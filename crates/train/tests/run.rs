//! A whole run: the optimizer learns `halve`, the test after training uses it, the
//! run directory holds the journal, the artifact and the report.

use agentopt_train::{FunctionSet, Phase, TrainerOptions, TrainingReport};

use crate::{Halving, optimizer_server, problems, trainer};

#[tokio::test]
async fn a_task_that_is_not_math_trains_end_to_end() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let report = trainer(Halving::default(), &server, dir.path())
        .run(&problems())
        .await?;

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
        (3, 4)
    );
    assert_eq!(
        (report.paired.after_only, report.paired.before_only),
        (3, 0)
    );
    let epochs: Vec<(u64, bool, u32)> = report
        .epochs
        .iter()
        .map(|epoch| (epoch.accuracy.correct, epoch.kept, epoch.actions))
        .collect();
    assert_eq!(
        epochs,
        [(0, true, 1), (2, true, 0)],
        "learned in step 1, used in epoch 2"
    );
    let lenient = &report.other_checks[0];
    assert_eq!(
        (
            lenient.name.as_str(),
            lenient.test_before.accuracy.correct,
            lenient.test_after.accuracy.correct,
            lenient.paired.after_only
        ),
        ("lenient", 1, 4, 3),
        "7 passes the lenient check before and after"
    );
    assert_eq!(report.other_checks.len(), 1);
    assert_eq!(report.functions.len(), 1);
    let halve = &report.functions[0];
    assert_eq!(
        (
            halve.name.as_str(),
            halve.training.calls,
            halve.test_after.calls
        ),
        ("halve", 3, 4)
    );
    assert_eq!(halve.test_after.succeeded, 3);
    assert!(report.incomplete.is_none() && report.infrastructure.is_empty());

    let learned = FunctionSet::load(&dir.path().join("functions.json"))?;
    assert_eq!(learned.names(), ["halve"]);
    let on_disk: TrainingReport =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json"))?)?;
    assert_eq!(on_disk, report);
    let markdown = std::fs::read_to_string(dir.path().join("report.md"))?;
    assert!(markdown.contains("| before training | 0/4 |"), "{markdown}");
    assert!(
        markdown.contains("| after training, lenient check | 4/4 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `halve` | half of an even number | 3 (2) | 4 (3) |"),
        "{markdown}"
    );
    let phases: Vec<&str> = report
        .phases
        .iter()
        .map(|phase| phase.phase.as_str())
        .collect();
    assert_eq!(
        phases,
        [
            "test before training",
            "epoch 1",
            "step 1",
            "epoch 2",
            "step 2",
            "test after training"
        ]
    );
    assert_eq!(Phase::Train { epoch: 2 }.name(), "epoch 2");
    Ok(())
}

#[tokio::test]
async fn bad_options_and_ids_fail_before_any_model_call() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let check = async |options: TrainerOptions, problems, expected: &str| {
        let task = Halving::default();
        let trainer = agentopt_train::Trainer::new(task, crate::client(&server), options);
        let error = trainer.run(&problems).await.expect_err(expected);
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(
            trainer
                .task()
                .attempts
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    };
    let base = crate::options(dir.path());
    check(
        TrainerOptions {
            epochs: 0,
            ..base.clone()
        },
        problems(),
        "option `epochs` = 0",
    )
    .await;
    check(
        TrainerOptions {
            concurrency: 0,
            ..base.clone()
        },
        problems(),
        "`concurrency` = 0",
    )
    .await;
    check(
        TrainerOptions {
            significance: 1.5,
            ..base.clone()
        },
        problems(),
        "`significance` = 1.5",
    )
    .await;
    let mut twice = problems();
    twice.test = vec![6, 7, 6];
    check(
        base.clone(),
        twice,
        "test problems 0 and 2 have the same id \"n6\"",
    )
    .await;
    // A test problem that is also trained on measures recall: refused, naming both.
    let mut trained_on = problems();
    trained_on.test = vec![6, 4];
    check(
        base.clone(),
        trained_on,
        "test problem \"n4\" has the text of train problem \"n4\"",
    )
    .await;
    let mut validated_on = problems();
    validated_on.validation = vec![12];
    validated_on.test = vec![6, 12];
    check(
        base,
        validated_on,
        "test problem \"n12\" has the text of validation problem \"n12\"",
    )
    .await;
    assert!(server.chat_requests().is_empty());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_optimizer_fails_the_run_before_anything_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let run_dir = dir.path().join("run");
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let endpoint = agentopt_llm::EndpointConfig::compatible(
        format!("http://127.0.0.1:{port}/v1"),
        "scripted-optimizer",
    );
    let model = agentopt_llm::OpenAiClient::new(endpoint, agentopt_llm::ClientOptions::default())?;
    let options = TrainerOptions {
        preflight: Some(std::time::Duration::from_secs(2)),
        ..crate::options(&run_dir)
    };
    let started = std::time::Instant::now();
    let trainer =
        agentopt_train::Trainer::new(Halving::default(), std::sync::Arc::new(model), options);
    let error = trainer.run(&problems()).await.expect_err("unreachable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "fails fast"
    );
    assert!(
        error
            .to_string()
            .starts_with("before the first conversation:"),
        "{error}"
    );
    assert!(
        error.to_string().contains(&port.to_string()),
        "names the endpoint: {error}"
    );
    assert_eq!(
        trainer
            .task()
            .attempts
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    assert!(!run_dir.exists(), "nothing written");
    Ok(())
}

#[tokio::test]
async fn throughput_counts_a_pass_over_the_problems() -> anyhow::Result<()> {
    let halve = agentopt_train::LearnedFunction::new("halve", "def halve(n):\n    return n // 2\n");
    let functions = FunctionSet::new([halve]);
    let task = Halving::default();
    let pass = agentopt_train::measure_throughput(&task, &[2, 3, 4, 7], &functions, 2).await;
    assert_eq!(
        (
            pass.concurrency,
            pass.problems,
            pass.solved,
            pass.infrastructure,
            pass.tokens
        ),
        (2, 4, 2, 0, 40)
    );
    assert!(pass.problems_per_hour() > 0.0 && pass.tokens_per_second() > 0.0);
    Ok(())
}

#[tokio::test]
async fn a_front_end_s_check_then_run_asks_the_servers_once() -> anyhow::Result<()> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let trainer = trainer(Halving::default(), &server, dir.path());
    trainer.check(&problems()).await?;
    trainer.run(&problems()).await?;
    let model_lists = server
        .requests()
        .iter()
        .filter(|request| request.method == "GET" && request.path.ends_with("/models"))
        .count();
    assert_eq!(model_lists, 1, "one preflight for check and run together");
    Ok(())
}

#[tokio::test]
async fn initial_functions_are_tested_with_no_epoch_or_trained_from() -> anyhow::Result<()> {
    let halve = agentopt_train::LearnedFunction::new("halve", "def halve(n):\n    return n // 2\n");
    let initial = FunctionSet::new([halve]);
    // epochs 0: the test before without functions, the test after with them, no step.
    let server = agentopt_testkit::ScriptedServer::start(Vec::new()).await;
    let dir = tempfile::tempdir()?;
    let options = TrainerOptions {
        epochs: 0,
        initial_functions: initial.clone(),
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(Halving::default(), crate::client(&server), options);
    let report = trainer.run(&problems()).await?;
    assert_eq!(
        (
            report.test_before.accuracy.correct,
            report.test_after.accuracy.correct
        ),
        (0, 3),
        "6, 8 and 10 halved after; nothing before"
    );
    assert!(report.epochs.is_empty());
    assert_eq!(
        trainer
            .task()
            .attempts
            .load(std::sync::atomic::Ordering::SeqCst),
        8
    );
    assert!(server.chat_requests().is_empty(), "no optimizer call");
    assert!(
        report
            .to_markdown()
            .contains("| initial functions | halve |"),
        "{}",
        report.to_markdown()
    );
    let exported = FunctionSet::load(&dir.path().join("functions.json"))?;
    assert_eq!(exported.functions(), initial.functions());
    // epochs 1: the first epoch's attempts already hold them.
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let options = TrainerOptions {
        epochs: 1,
        initial_functions: initial,
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(Halving::default(), crate::client(&server), options);
    let report = trainer.run(&problems()).await?;
    assert_eq!(report.epochs[0].accuracy.correct, 2, "2 and 4 of 2, 3, 4");
    Ok(())
}
