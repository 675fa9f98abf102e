//! Disk response cache: hits, misses, seeds, the off switch, concurrent writers.

use std::sync::Arc;

use agentopt_llm::{
    CacheStats, CallStyle, ChatMessage, ChatModel, ChatResponse, ClientOptions, ResponseCache,
    ResponseFormat, Role, Usage,
};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{ask, client_with, fast_options};

fn cached_options(cache: &ResponseCache) -> ClientOptions {
    ClientOptions {
        cache: Some(cache.clone()),
        ..fast_options()
    }
}

#[tokio::test]
async fn second_identical_request_is_served_from_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = ResponseCache::open(dir.path(), 41)?;
    let server = ScriptedServer::with_rule(|request| {
        Reply::text(format!("answer {}", request.body["messages"][0]["content"]))
    })
    .await;
    let client = client_with(&server, cached_options(&cache));

    let first = client.chat(ask("q1")).await?;
    let second = client.chat(ask("q1").with_caller("someone else")).await?;
    assert!(!first.cached && second.cached);
    assert_eq!(first.message, second.message);
    assert_eq!(
        server.chat_requests().len(),
        1,
        "the caller label is not part of the key"
    );

    client.chat(ask("q2")).await?;
    client.chat(ask("q1").with_temperature(0.7)).await?;
    assert_eq!(server.chat_requests().len(), 3);
    assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 3 });

    // A new client (e.g. the next run, with a new server port) reuses the entries.
    let next_server = ScriptedServer::start([]).await;
    let next = client_with(
        &next_server,
        cached_options(&ResponseCache::open(dir.path(), 41)?),
    );
    assert!(next.chat(ask("q2")).await?.cached);
    Ok(())
}

#[tokio::test]
async fn seed_separates_caches_and_switch_disables() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = ScriptedServer::with_rule(|_| Reply::text("fresh")).await;
    let seed_a = ResponseCache::open(dir.path(), 1)?;
    let seed_b = ResponseCache::open(dir.path(), 2)?;
    client_with(&server, cached_options(&seed_a))
        .chat(ask("q"))
        .await?;
    let other_seed = client_with(&server, cached_options(&seed_b))
        .chat(ask("q"))
        .await?;
    assert!(!other_seed.cached);

    seed_a.set_enabled(false);
    let disabled = client_with(&server, cached_options(&seed_a))
        .chat(ask("q"))
        .await?;
    assert!(!disabled.cached);
    assert_eq!(server.chat_requests().len(), 3);
    assert_eq!(seed_a.stats(), CacheStats { hits: 0, misses: 1 });
    Ok(())
}

#[test]
fn corrupt_entries_are_misses() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = ResponseCache::open(dir.path(), 0)?;
    let key = cache.key("m", CallStyle::Tools, &ask("q"));
    std::fs::write(dir.path().join(format!("{key}.json")), "{ half an entry")?;
    assert_eq!(cache.get(&key), None);
    assert_eq!(cache.stats().misses, 1);
    Ok(())
}

fn response(text: &str) -> ChatResponse {
    ChatResponse {
        message: ChatMessage::assistant(text),
        finish_reason: None,
        usage: Usage::default(),
        model: "m".to_owned(),
        cached: false,
        endpoint: None,
    }
}

#[test]
fn concurrent_writers_leave_complete_entries() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = Arc::new(ResponseCache::open(dir.path(), 7)?);
    let shared_key = cache.key("m", CallStyle::Tools, &ask("shared"));
    let long_text = "x".repeat(200_000);
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let cache = Arc::clone(&cache);
            let shared_key = shared_key.clone();
            let long_text = long_text.clone();
            scope.spawn(move || {
                for round in 0..20 {
                    let own_key =
                        cache.key("m", CallStyle::Tools, &ask(&format!("{writer}-{round}")));
                    cache
                        .put(&own_key, &response(&format!("{writer}-{round}")))
                        .expect("put own");
                    cache
                        .put(&shared_key, &response(&long_text))
                        .expect("put shared");
                    let read = cache
                        .get(&shared_key)
                        .expect("shared entry is always complete");
                    assert_eq!(read.message.content.as_deref().map(str::len), Some(200_000));
                }
            });
        }
    });
    for writer in 0..8 {
        for round in 0..20 {
            let key = cache.key("m", CallStyle::Tools, &ask(&format!("{writer}-{round}")));
            let entry = cache.get(&key).expect("entry");
            assert_eq!(entry.message.role, Role::Assistant);
            assert_eq!(entry.message.content, Some(format!("{writer}-{round}")));
        }
    }
    let files = std::fs::read_dir(dir.path())?.count();
    assert_eq!(files, 8 * 20 + 1, "no temporary files left behind");
    Ok(())
}

#[test]
fn response_format_is_part_of_the_key_and_absent_leaves_old_keys() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = ResponseCache::open(dir.path(), 0)?;
    let plain = cache.key("m", CallStyle::Tools, &ask("q"));
    // Pinned: the key this request had before `response_format` existed, so caches
    // written then still hit.
    assert_eq!(
        plain,
        "3a712ac7e441394cd9e9be971f149408cc69caf6142fd13296135e96f56bdcd7"
    );
    let json = ask("q").with_response_format(ResponseFormat::JsonObject);
    assert_ne!(cache.key("m", CallStyle::Tools, &json), plain);
    Ok(())
}
