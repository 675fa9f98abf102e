//! `report.html`: every conversation, step and function of a run embedded as
//! script-safe JSON, the optimizer's prompts and replies recorded per step, and the
//! page rebuilt from the run directory alone. (The page is opened in a real browser
//! by xtask's `chromium_` test.)

use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_llm::ChatMessage;
use agentopt_train::{
    Attempt, FunctionSet, Outcome, Problems, StepDetail, Task, TrainError, Trainer,
    write_report_html,
};

use crate::{Halving, add_halve, client, optimizer_server, options, problems, trainer};

/// The JSON blocks of a page: (id, text).
pub(crate) fn json_blocks(page: &str) -> Vec<(String, String)> {
    const OPEN: &str = "<script type=\"application/json\" id=\"";
    page.split(OPEN)
        .skip(1)
        .map(|rest| {
            let (id, rest) = rest.split_once("\">").expect("block id");
            let (text, _) = rest.split_once("</script>").expect("block end");
            (id.to_owned(), text.to_owned())
        })
        .collect()
}

/// A finished `Halving` run in a temporary directory.
async fn halving_run() -> anyhow::Result<tempfile::TempDir> {
    let server = optimizer_server().await;
    let dir = tempfile::tempdir()?;
    trainer(Halving::default(), &server, dir.path())
        .run(&problems())
        .await?;
    Ok(dir)
}

#[tokio::test]
async fn every_conversation_step_and_function_is_embedded() -> anyhow::Result<()> {
    let dir = halving_run().await?;
    let page = std::fs::read_to_string(dir.path().join("report.html"))?;
    let blocks = json_blocks(&page);
    let transcripts = std::fs::read_to_string(dir.path().join("transcripts.jsonl"))?;
    let conversations = blocks.iter().filter(|(id, _)| id.starts_with("c-")).count();
    assert_eq!(conversations, transcripts.lines().count());
    assert_eq!(
        blocks.iter().filter(|(id, _)| id.starts_with("s-")).count(),
        2
    );
    for (id, text) in &blocks {
        serde_json::from_str::<serde_json::Value>(text)
            .unwrap_or_else(|error| panic!("block {id} is not JSON: {error}"));
    }
    let (_, index) = blocks
        .iter()
        .find(|(id, _)| id == "run-data")
        .expect("index");
    let index: serde_json::Value = serde_json::from_str(index)?;
    assert_eq!(index["problems"].as_array().map(Vec::len), Some(4));
    assert_eq!(index["problems"][0]["id"], "n6");
    assert_eq!(index["problems"][0]["before"]["status"], "failed");
    assert_eq!(index["problems"][0]["after"]["status"], "solved");
    assert_eq!(
        index["problems"][0]["offered"],
        serde_json::json!(["halve"])
    );
    assert_eq!(index["functions"][0]["function"]["name"], "halve");
    assert_eq!(
        index["functions"][0]["calls"],
        serde_json::json!([
            ["epoch 2", {"calls": 3, "succeeded": 2}],
            ["test after training", {"calls": 4, "succeeded": 3}]
        ])
    );
    assert!(page.contains("<svg"), "the learning curve is inline");
    assert!(dir.path().join("learning_curve.svg").is_file());

    // The page is the run directory's: rebuilt from the files alone, it is the same.
    std::fs::remove_file(dir.path().join("report.html"))?;
    let rebuilt = write_report_html(dir.path())?;
    assert_eq!(std::fs::read_to_string(&rebuilt)?, page);

    // Without report.json (a run still going, or killed), the journal so far, marked.
    std::fs::remove_file(dir.path().join("report.json"))?;
    let so_far = std::fs::read_to_string(write_report_html(dir.path())?)?;
    let blocks = json_blocks(&so_far);
    let (_, index) = blocks
        .iter()
        .find(|(id, _)| id == "run-data")
        .expect("index");
    let index: serde_json::Value = serde_json::from_str(index)?;
    assert!(
        index["report"]["incomplete"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("no report.json")),
        "{}",
        index["report"]
    );
    assert_eq!(index["report"]["test_after"]["accuracy"]["correct"], 3);
    assert_eq!(index["problems"][0]["after"]["status"], "solved");
    Ok(())
}

#[tokio::test]
async fn each_step_records_its_prompt_reply_and_actions() -> anyhow::Result<()> {
    let dir = halving_run().await?;
    let details: Vec<StepDetail> =
        agentopt_core::files::read_json_lines(&dir.path().join("step_details.jsonl"))?;
    assert_eq!(details.iter().map(|d| d.epoch).collect::<Vec<_>>(), [1, 2]);
    let first = &details[0];
    assert_eq!(
        first.exchanges.len(),
        1,
        "one action allowed, taken at once"
    );
    let prompt = first.exchanges[0].messages[0]
        .content
        .as_deref()
        .unwrap_or("");
    assert!(
        prompt.contains("Halve 2."),
        "the prompt shows the conversations"
    );
    let reply = first.exchanges[0].reply.as_ref().expect("a reply");
    assert_eq!(reply.tool_calls[0].function.name, "add_function");
    let outcome = first.outcome.as_ref().expect("the step ran");
    assert_eq!(outcome.actions.len(), 1);
    assert_eq!(outcome.functions.names(), ["halve"]);
    let second = details[1].outcome.as_ref().expect("the step ran");
    assert!(second.terminated && second.actions.is_empty());
    Ok(())
}

/// Answers with text that tries to end its `<script>` block and run its own.
struct Injecting(AtomicUsize);

const PAYLOAD: &str = "</script><script>document.documentElement.setAttribute('data-injected','1')</script><!-- <img src=x onerror=alert(1)>";

#[async_trait::async_trait]
impl Task for Injecting {
    type Problem = u32;
    fn problem_id(&self, problem: &u32) -> String {
        format!("p{problem}")
    }
    async fn attempt(&self, problem: &u32, _: &FunctionSet) -> Attempt {
        self.0.fetch_add(1, Ordering::SeqCst);
        let history = vec![
            ChatMessage::user(format!("Problem {problem}")),
            ChatMessage::assistant(PAYLOAD),
        ];
        Attempt::new(Outcome::judged(false, || PAYLOAD.to_owned()), history)
            .with_answers(Some(PAYLOAD.to_owned()), Some("</script>".to_owned()))
    }
}

#[tokio::test]
async fn model_text_cannot_end_its_block() -> anyhow::Result<()> {
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(8192)
        .rule(|_| add_halve())
        .await;
    let dir = tempfile::tempdir()?;
    let mut options = options(dir.path());
    options.epochs = 1;
    let trainer = Trainer::new(Injecting(AtomicUsize::new(0)), client(&server), options);
    trainer
        .run(&Problems {
            train: vec![1],
            validation: Vec::new(),
            test: vec![2],
        })
        .await?;
    let page = std::fs::read_to_string(dir.path().join("report.html"))?;
    assert!(
        !page.contains("data-injected','1')</script>"),
        "payload raw in page"
    );
    assert!(!page.contains("<!-- <img"), "payload raw in page");
    let blocks = json_blocks(&page);
    let (_, text) = blocks.iter().find(|(id, _)| id == "c-1").expect("block");
    assert!(!text.contains('<'));
    let conversation: serde_json::Value = serde_json::from_str(text)?;
    assert_eq!(conversation["messages"][1]["content"], PAYLOAD);
    assert_eq!(conversation["answer"], PAYLOAD);
    Ok(())
}

#[tokio::test]
async fn rebuilding_names_the_line_that_does_not_parse() -> anyhow::Result<()> {
    let empty = tempfile::tempdir()?;
    let error = write_report_html(empty.path()).expect_err("no report.json");
    assert!(error.to_string().contains("report.json"), "{error}");
    assert_eq!(
        std::fs::read_dir(empty.path())?.count(),
        0,
        "nothing written"
    );
    let dir = halving_run().await?;
    let path = dir.path().join("transcripts.jsonl");
    let text = std::fs::read_to_string(&path)?;
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"phase\": \"test_before\", \"index\": \"two\"}";
    std::fs::write(&path, lines.join("\n") + "\n")?;
    let error = write_report_html(dir.path()).expect_err("a bad line");
    assert!(matches!(error, TrainError::File(_)));
    assert!(
        error.to_string().contains(&format!("{}:2", path.display())),
        "{error}"
    );
    Ok(())
}
