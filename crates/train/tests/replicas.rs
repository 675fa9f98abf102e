//! A run whose task spreads its model calls over replicas, one of them failing:
//! every conversation completes once, and the report's endpoint table shows the
//! share each replica served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentopt_llm::{
    ChatMessage, ChatModel, ChatRequest, ClientOptions, EndpointConfig, PriceTable, RetryPolicy,
    SpreadModel, SpreadOptions, UsageMeter,
};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{
    Attempt, FailureKind, FunctionSet, InfraError, Outcome, Problems, Task, Trainer, TrainerOptions,
};

use crate::{client, optimizer_server};

/// Asks the model to repeat the problem; solved when it does.
struct Repeat {
    model: Arc<dyn ChatModel>,
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl Task for Repeat {
    type Problem = u32;

    fn problem_id(&self, problem: &u32) -> String {
        format!("r{problem}")
    }

    async fn attempt(&self, problem: &u32, _functions: &FunctionSet) -> Attempt {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let text = format!("repeat {problem}");
        let history = vec![ChatMessage::user(text.clone())];
        match self.model.chat(ChatRequest::new(history.clone())).await {
            Ok(answer) => {
                let solved = answer.message.content.as_deref() == Some(text.as_str());
                Attempt::new(
                    Outcome::judged(solved, || "not repeated".to_owned()),
                    history,
                )
            }
            Err(error) => Attempt::new(
                Outcome::Infrastructure(InfraError::new(FailureKind::Model, error.to_string())),
                history,
            ),
        }
    }
}

/// A replica repeating the last message.
async fn echo() -> ScriptedServer {
    ScriptedServer::with_rule(|request| {
        let last = request.body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .and_then(|message| message["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        Reply::text(last).delayed(Duration::from_millis(2))
    })
    .await
}

#[tokio::test]
async fn spread_over_three_replicas_one_failing_completes_every_conversation_once()
-> anyhow::Result<()> {
    let replicas = [
        echo().await,
        ScriptedServer::with_rule(|_| Reply::server_error(503)).await,
        echo().await,
    ];
    let meter = UsageMeter::new(PriceTable::new());
    let options = ClientOptions {
        retry: RetryPolicy::none(),
        meter: Some(meter.clone()),
        ..ClientOptions::default()
    };
    let labels: Vec<String> = replicas
        .iter()
        .map(|server| EndpointConfig::compatible(server.base_url(), "m").label())
        .collect();
    let models = replicas
        .iter()
        .map(|server| {
            let config = EndpointConfig::compatible(server.base_url(), "m");
            agentopt_llm::OpenAiClient::new(config, options.clone())
                .map(|client| Arc::new(client) as Arc<dyn ChatModel>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spread = SpreadModel::new(
        models,
        SpreadOptions {
            max_in_flight_per_replica: 3,
            eject_after_failures: 2,
            cooldown: Duration::from_secs(600),
            ..SpreadOptions::default()
        },
    )?;
    let task = Repeat {
        model: Arc::new(spread),
        asked: AtomicUsize::new(0),
    };
    let optimizer = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let trainer_options = TrainerOptions {
        run_dir: dir.path().to_owned(),
        epochs: 1,
        concurrency: 6,
        meter: Some(meter),
        ..TrainerOptions::default()
    };
    let problems = Problems {
        train: (0..12).collect(),
        validation: Vec::new(),
        test: (100..112).collect(),
    };
    let trainer = Trainer::new(task, client(&optimizer), trainer_options);
    let report = trainer.run(&problems).await?;

    // Every conversation of every phase was answered, none twice.
    let accuracy =
        |phase: &agentopt_train::TestResult| (phase.accuracy.correct, phase.accuracy.total);
    assert_eq!(accuracy(&report.test_before), (12, 12));
    assert_eq!(accuracy(&report.test_after), (12, 12));
    assert_eq!(report.epochs[0].accuracy.correct, 12);
    let asked = trainer.task().asked.load(Ordering::SeqCst) as u64;
    assert_eq!(asked, 36);
    let row = |label: &str| {
        report
            .endpoints
            .iter()
            .find(|row| row.role == label)
            .map(|row| (row.calls, row.failed_calls))
            .unwrap_or_default()
    };
    let (down_calls, down_failed) = row(&labels[1]);
    assert_eq!(down_calls, 0);
    assert!((2..=4).contains(&down_failed), "{down_failed} failed calls");
    let (first, third) = (row(&labels[0]), row(&labels[2]));
    assert_eq!((first.1, third.1), (0, 0));
    assert_eq!(first.0 + third.0, asked, "each conversation answered once");
    assert!(first.0 >= 10 && third.0 >= 10, "{first:?} {third:?}");
    let markdown = report.to_markdown();
    assert!(
        markdown.contains(&labels[1]),
        "the endpoint table names the failing replica"
    );
    // And gives each replica's share of the calls answered.
    let share = |calls: u64| format!("| {calls} | {:.1}% |", calls as f64 * 100.0 / asked as f64);
    assert!(markdown.contains("share of calls"), "{markdown}");
    assert!(markdown.contains(&share(first.0)), "{markdown}");
    assert!(markdown.contains("| 0 | 0.0% |"), "{markdown}");
    Ok(())
}
