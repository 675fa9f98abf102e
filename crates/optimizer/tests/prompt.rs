//! The optimizer prompt: AG2's sections (snapshots), the tools, and the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_llm::{ChatMessage, estimate_prompt_tokens};
use agentopt_optimizer::{OptimizerOptions, Partitioning, optimizer_tools};
use agentopt_testkit::{Reply, ScriptedServer};

use crate::{add_sum, conversation, optimizer, prompt_of, record};

#[test]
fn tools_match_ag2_parameters() {
    insta::assert_json_snapshot!("optimizer_tools", optimizer_tools());
}

#[tokio::test]
async fn first_step_prompt() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer = optimizer(&server, 2, OptimizerOptions::default());
    record(&mut optimizer, &[true, false]);
    optimizer.step().await?;
    let requests = server.chat_requests();
    insta::assert_snapshot!("first_step_prompt", prompt_of(&requests[0]));
    // The second round shows the action taken and List B with the new function.
    let second = prompt_of(&requests[1]);
    assert!(second.contains("after taking 1 actions to manipulate List A"));
    assert!(second.contains("List B: [{\"name\":\"sum_numbers\""));
    assert_eq!(requests[0].body["tool_choice"], "auto");
    Ok(())
}

#[tokio::test]
async fn prompt_with_failure_experience() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("sum_numbers").0, add_sum("sum_numbers").1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut optimizer = optimizer(&server, 1, OptimizerOptions::default());
    record(&mut optimizer, &[true]);
    optimizer.step().await?;
    record(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert!(!outcome.accepted);
    let requests = server.chat_requests();
    insta::assert_snapshot!("failure_experience_prompt", prompt_of(&requests[1]));
    Ok(())
}

/// A conversation whose tool output is `output_chars` long.
fn long_conversation(index: usize, output_chars: usize) -> Vec<ChatMessage> {
    let mut messages = conversation(&format!("Problem {index}: what is 2 + 3?"), "5");
    messages[2] = ChatMessage::tool("call_0", format!("{index}:{}", "a".repeat(output_chars)));
    messages
}

#[tokio::test]
async fn prompt_with_truncation() -> anyhow::Result<()> {
    let server = ScriptedServer::builder()
        .n_ctx(4096)
        .script([Reply::text("TERMINATE")])
        .await;
    // One prompt for all twelve: what condensing and leaving out do.
    let options = OptimizerOptions {
        reply_room_tokens: 200,
        max_tool_output_chars: 300,
        partitioning: Partitioning::Never,
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options);
    for index in 0..12 {
        let history = long_conversation(index, 1200);
        optimizer.record_one_conversation(history, index % 3 == 0)?;
    }
    let outcome = optimizer.step().await?;
    let report = &outcome.prompts[0];
    assert_eq!(report.budget_tokens, 4096 - 2 * 200 - 384);
    assert!(report.prompt_tokens <= report.budget_tokens, "{report:?}");
    assert!(report.tool_outputs_cut > 0, "{report:?}");
    assert!(!report.conversations_omitted.is_empty(), "{report:?}");
    // Failures come first but successes are not crowded out.
    assert!(
        report.conversations_full.iter().any(|index| index % 3 == 0),
        "{report:?}"
    );
    assert!(
        report.conversations_full.iter().any(|index| index % 3 != 0),
        "{report:?}"
    );
    insta::assert_json_snapshot!("truncation_report", report);
    insta::assert_snapshot!("truncated_prompt", prompt_of(&server.chat_requests()[0]));
    Ok(())
}

#[tokio::test]
async fn prompt_stays_bounded_over_many_epochs_on_an_8k_model() -> anyhow::Result<()> {
    // AG2's prompt reached 11,752 tokens on an 8k model; here every prompt fits.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let server = ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |_| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            let (tool, arguments) = add_sum(&format!("helper_{call}"));
            Reply::tool_call(tool, arguments)
        })
        .await;
    // One prompt per round: what bounds the list and the histories within it.
    let one_prompt = OptimizerOptions {
        partitioning: Partitioning::Never,
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 2, one_prompt);
    let budget = 8192 - 2 * 768 - 384;
    let mut list_full = 0;
    for epoch in 0..25 {
        for index in 0..12 {
            let history = long_conversation(epoch * 100 + index, 4000);
            optimizer.record_one_conversation(history, (epoch + index) % 4 == 0)?;
        }
        let outcome = optimizer.step().await?;
        for report in &outcome.prompts {
            assert!(report.prompt_tokens <= budget, "epoch {epoch}: {report:?}");
        }
        list_full += outcome
            .rejected
            .iter()
            .flat_map(|rejected| rejected.errors.iter().flatten())
            .filter(|error| error.contains("List B would take"))
            .count();
    }
    for request in server.chat_requests() {
        let tokens = estimate_prompt_tokens(
            &[ChatMessage::user(prompt_of(&request))],
            &optimizer_tools(),
        );
        assert!(tokens <= budget, "{tokens} > {budget}");
    }
    // The function list filled its share of the prompt and further additions were
    // refused rather than let the prompt grow.
    assert!(list_full > 0);
    Ok(())
}

#[tokio::test]
async fn a_large_training_set_keeps_the_statistics_table_inside_the_budget() -> anyhow::Result<()> {
    // 1500 rows of AG2's table alone would take about 12,500 tokens of an 8k window.
    let server = crate::server([Reply::text("TERMINATE")]).await;
    let one_prompt = OptimizerOptions {
        partitioning: Partitioning::Never,
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, one_prompt);
    for index in 0..1500 {
        let history = conversation(&format!("What is {index} + 5?"), "5");
        optimizer.record_one_conversation(history, index % 3 == 0)?;
    }
    let outcome = optimizer.step().await?;
    let report = &outcome.prompts[0];
    assert!(report.prompt_tokens <= report.budget_tokens, "{report:?}");
    let shown = report.conversations_full.len() + report.conversations_condensed.len();
    assert!(shown > 0, "{report:?}");
    let prompt = prompt_of(&server.chat_requests()[0]);
    let rows = prompt
        .lines()
        .filter(|line| line.starts_with("{\"Conversation ") && line.ends_with("}"))
        .filter(|line| line.len() < 30)
        .count();
    assert_eq!(rows, shown, "one row per conversation shown");
    // 500 of the 1500 are satisfied (every third).
    let satisfied_shown = report
        .conversations_full
        .iter()
        .chain(&report.conversations_condensed)
        .filter(|index| *index % 3 == 0)
        .count();
    let expected = format!(
        "{{\"The other {} conversations\": \"{} satisfied (1), {} not satisfied (0); not listed one by one to fit the prompt\"}}",
        1500 - shown,
        500 - satisfied_shown,
        1000 - (shown - satisfied_shown)
    );
    assert!(prompt.contains(&expected), "{expected} not in the prompt");
    Ok(())
}

#[tokio::test]
async fn the_example_function_is_a_parameter_with_ag2_s_as_default() -> anyhow::Result<()> {
    let server = crate::server([Reply::text("TERMINATE")]).await;
    let example = agentopt_optimizer::PromptExample {
        task: "vowel-counting problems".to_owned(),
        function: agentopt_optimizer::LearnedFunction::new(
            "count_vowels",
            "def count_vowels(word):\n    return sum(c in 'aeiou' for c in word)",
        )
        .with_description("Count the vowels of a word.")
        .with_parameters(serde_json::json!({"type": "object", "properties": {
            "word": {"description": "the word", "type": "string"}
        }})),
    };
    let options = OptimizerOptions {
        example,
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options);
    record(&mut optimizer, &[true]);
    optimizer.step().await?;
    let prompt = prompt_of(&server.chat_requests()[0]);
    assert!(prompt.contains("deserves to be added in solving vowel-counting problems, which"));
    assert!(
        prompt.contains("\"word\": {\n            \"type\": \"string\",\n            \"description\": \"the word\"\n        }"),
        "AG2's layout, `type` first: {prompt}"
    );
    assert!(!prompt.contains("evaluate_expression"));
    Ok(())
}
