//! `spread` routing: calls shared over replicas by least outstanding requests
//! under a per-replica cap; a failing replica is ejected, its calls retried on the
//! others, then probed back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentopt_llm::{
    ChatModel, ClientOptions, EndpointConfig, LlmError, PriceTable, Routing, SpreadModel,
    SpreadOptions, UsageMeter, routed_model,
};
use agentopt_testkit::{RecordedRequest, Reply, ScriptedServer};

use crate::{ask, fast_options};

/// The last user message of a chat request.
fn question(request: &RecordedRequest) -> String {
    request.body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A replica that answers each question with itself, after `delay`.
async fn echo(delay: Duration) -> ScriptedServer {
    ScriptedServer::with_rule(move |request| Reply::text(question(request)).delayed(delay)).await
}

fn label(server: &ScriptedServer) -> String {
    EndpointConfig::compatible(server.base_url(), "m").label()
}

/// A spread model over `servers` sharing `meter`.
fn spread_over(
    servers: &[&ScriptedServer],
    meter: &UsageMeter,
    options: SpreadOptions,
) -> SpreadModel {
    let client_options = ClientOptions {
        meter: Some(meter.clone()),
        max_concurrency: 64,
        ..fast_options()
    };
    let replicas = servers
        .iter()
        .map(|server| {
            let config = EndpointConfig::compatible(server.base_url(), "m");
            agentopt_llm::OpenAiClient::new(config, client_options.clone())
                .map(|client| Arc::new(client) as Arc<dyn ChatModel>)
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("usable replicas");
    SpreadModel::new(replicas, options).expect("valid spread")
}

#[tokio::test]
async fn spread_over_three_replicas_with_one_failing_answers_every_call_once() -> anyhow::Result<()>
{
    let first = echo(Duration::from_millis(5)).await;
    let down = ScriptedServer::with_rule(|_| Reply::server_error(503)).await;
    let third = echo(Duration::from_millis(5)).await;
    let meter = UsageMeter::new(PriceTable::new());
    let options = SpreadOptions {
        max_in_flight_per_replica: 4,
        eject_after_failures: 2,
        cooldown: Duration::from_secs(600),
        ..SpreadOptions::default()
    };
    let model = spread_over(&[&first, &down, &third], &meter, options);

    let questions: Vec<String> = (0..60).map(|n| format!("conversation {n}")).collect();
    let answers = futures::future::join_all(questions.iter().map(|q| model.chat(ask(q)))).await;
    for (asked, answer) in questions.iter().zip(answers) {
        assert_eq!(answer?.message.content.as_deref(), Some(asked.as_str()));
    }
    // Every conversation was answered by exactly one healthy replica.
    let mut answered: Vec<String> = [&first, &third]
        .iter()
        .flat_map(|server| server.chat_requests())
        .map(|request| question(&request))
        .collect();
    answered.sort();
    let mut expected = questions.clone();
    expected.sort();
    assert_eq!(answered, expected);
    // The failing replica was ejected after its failures in a row and got nothing
    // after.
    assert_eq!(model.ejected(), [false, true, false]);
    let report = meter.report();
    let counts = |server: &ScriptedServer| {
        let totals = report
            .by_endpoint
            .get(&label(server))
            .copied()
            .unwrap_or_default();
        (totals.calls, totals.failed_calls)
    };
    let (down_calls, down_failures) = counts(&down);
    assert_eq!(down_calls, 0);
    // A replica failing fast has the fewest calls outstanding, so it keeps getting
    // them until ejected: at most a full cap in flight plus the failures in a row
    // that eject it, less one.
    assert!((2..=5).contains(&down_failures), "{down_failures} failures");
    let (first_calls, first_failures) = counts(&first);
    let (third_calls, third_failures) = counts(&third);
    assert_eq!((first_failures, third_failures), (0, 0));
    assert_eq!(first_calls + third_calls, 60);
    assert!(
        first_calls >= 20 && third_calls >= 20,
        "{first_calls}/{third_calls}"
    );
    Ok(())
}

#[tokio::test]
async fn calls_spread_by_least_outstanding_under_the_per_replica_cap() -> anyhow::Result<()> {
    let servers = [
        echo(Duration::from_millis(40)).await,
        echo(Duration::from_millis(40)).await,
        echo(Duration::from_millis(40)).await,
    ];
    let meter = UsageMeter::new(PriceTable::new());
    let options = SpreadOptions {
        max_in_flight_per_replica: 2,
        ..SpreadOptions::default()
    };
    let model = spread_over(&[&servers[0], &servers[1], &servers[2]], &meter, options);

    let calls = (0..18).map(|n| model.chat(ask(&format!("q{n}"))));
    for answer in futures::future::join_all(calls).await {
        answer?;
    }
    for server in &servers {
        assert_eq!(
            server.peak_in_flight(),
            2,
            "the cap is reached, never passed"
        );
        assert_eq!(
            server.chat_requests().len(),
            6,
            "equal replicas share equally"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_ejected_replica_is_probed_back_after_its_cooldown() -> anyhow::Result<()> {
    // Fails its first call (three attempts with the client's retries), then answers.
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let flaky = ScriptedServer::with_rule(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 3 {
            Reply::server_error(502)
        } else {
            Reply::text("flaky is back")
        }
    })
    .await;
    let steady = ScriptedServer::with_rule(|_| Reply::text("steady")).await;
    let meter = UsageMeter::new(PriceTable::new());
    let options = SpreadOptions {
        max_in_flight_per_replica: 1,
        eject_after_failures: 1,
        cooldown: Duration::from_millis(200),
        ..SpreadOptions::default()
    };
    let model = spread_over(&[&flaky, &steady], &meter, options);

    // Sequential calls alternate until the flaky replica fails one, which the
    // steady one then answers.
    while seen.load(Ordering::SeqCst) < 3 {
        let answer = model.chat(ask("q")).await?;
        assert_eq!(answer.message.content.as_deref(), Some("steady"));
    }
    assert_eq!(model.ejected(), [true, false]);
    for _ in 0..5 {
        assert_eq!(model.chat(ask("q")).await?.endpoint, Some(label(&steady)));
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "no call during the cooldown"
    );

    tokio::time::sleep(Duration::from_millis(250)).await;
    let probe = model.chat(ask("q")).await?;
    assert_eq!(probe.endpoint, Some(label(&flaky)));
    assert_eq!(model.ejected(), [false, false]);
    Ok(())
}

#[tokio::test]
async fn with_every_replica_down_a_call_fails_after_trying_each_once() -> anyhow::Result<()> {
    let one = ScriptedServer::with_rule(|_| Reply::server_error(503)).await;
    let two = ScriptedServer::with_rule(|_| Reply::server_error(500)).await;
    let meter = UsageMeter::new(PriceTable::new());
    let options = SpreadOptions {
        max_in_flight_per_replica: 2,
        eject_after_failures: 1,
        cooldown: Duration::from_millis(300),
        ..SpreadOptions::default()
    };
    let model = spread_over(&[&one, &two], &meter, options);

    let error = model.chat(ask("q")).await.expect_err("nothing answers");
    assert!(matches!(error, LlmError::Http { .. }), "{error}");
    assert_eq!(model.ejected(), [true, true]);
    // Both ejected and past their cooldowns: the next call probes each once.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let probes_started = std::time::Instant::now();
    let error = model.chat(ask("q")).await.expect_err("nothing answers");
    assert!(matches!(error, LlmError::Http { .. }), "{error}");
    assert_eq!(one.chat_requests().len() + two.chat_requests().len(), 12);
    // Both ejected again by those probes, cooldowns running: a call waits for the
    // first cooldown to end and probes rather than failing at once.
    model.chat(ask("q")).await.expect_err("nothing answers");
    assert!(probes_started.elapsed() >= Duration::from_millis(300));
    Ok(())
}

#[tokio::test]
async fn routing_is_chosen_by_name_and_fallback_stays_the_default() -> anyhow::Result<()> {
    assert_eq!(Routing::default(), Routing::Fallback);
    assert_eq!("spread".parse::<Routing>(), Ok(Routing::Spread));
    let error = "round-robin"
        .parse::<Routing>()
        .expect_err("unknown routing");
    assert!(
        error.contains("round-robin") && error.contains("spread"),
        "{error}"
    );

    let first = echo(Duration::ZERO).await;
    let second = echo(Duration::ZERO).await;
    let configs = vec![
        EndpointConfig::compatible(first.base_url(), "m"),
        EndpointConfig::compatible(second.base_url(), "m"),
    ];
    let options = fast_options();
    let fallback = routed_model(
        configs.clone(),
        Routing::Fallback,
        &options,
        SpreadOptions::default(),
    )?;
    let spread = routed_model(configs, Routing::Spread, &options, SpreadOptions::default())?;
    for _ in 0..4 {
        fallback.chat(ask("q")).await?;
        spread.chat(ask("q")).await?;
    }
    // Fallback sent all four to the first; spread shared its four.
    assert_eq!(first.chat_requests().len(), 6);
    assert_eq!(second.chat_requests().len(), 2);
    assert!(SpreadModel::new(Vec::new(), SpreadOptions::default()).is_err());
    Ok(())
}

#[tokio::test]
async fn routed_spread_retries_on_the_other_replicas_then_in_rounds() -> anyhow::Result<()> {
    // Each replica fails its first call, then answers.
    let flaky = || async {
        let seen = AtomicUsize::new(0);
        ScriptedServer::with_rule(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::server_error(503)
            } else {
                Reply::text("answered")
            }
        })
        .await
    };
    let (one, two) = (flaky().await, flaky().await);
    let configs = vec![
        EndpointConfig::compatible(one.base_url(), "m"),
        EndpointConfig::compatible(two.base_url(), "m"),
    ];
    let model = routed_model(
        configs,
        Routing::Spread,
        &fast_options(),
        SpreadOptions::default(),
    )?;
    let answer = model.chat(ask("q")).await?;
    assert_eq!(answer.message.content.as_deref(), Some("answered"));
    // Round one: one attempt on each replica (no retry on the one that failed);
    // round two, after a backoff: the first pick answers.
    assert_eq!(one.chat_requests().len() + two.chat_requests().len(), 3);
    Ok(())
}
