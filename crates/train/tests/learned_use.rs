//! Retrieval of the most relevant functions per problem, the offered set in the
//! journal, and the use rates of the report.

use std::sync::atomic::{AtomicUsize, Ordering};

use agentopt_agents::Demonstration;
use agentopt_core::files::read_json_lines;
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{
    ConversationRecord, FunctionSet, LearnedFunction, Phase, TrainerOptions, most_similar, retrieve,
};
use serde_json::json;

use crate::{Halving, add_halve, client, problems};

fn described(name: &str, description: &str) -> LearnedFunction {
    LearnedFunction::new(name, format!("def {name}(n):\n    return n\n"))
        .with_description(description)
}

#[test]
fn retrieval_offers_the_k_most_relevant_in_the_set_s_order() {
    let set = FunctionSet::new([
        described("digit_sum", "Sum of the decimal digits of an integer."),
        described("gcd", "Greatest common divisor of two integers."),
        described("count_primes", "How many primes are at most n."),
        described("binomial", "Number of ways to choose k items out of n.").with_demonstrations(
            vec![Demonstration {
                problem: "How many committees of 3 can be formed from 8 people?".to_owned(),
                solution: "print(binomial(8, 3))".to_owned(),
                answer: "56".to_owned(),
                call: None,
            }],
        ),
    ]);
    let names = |problem: &str, k| retrieve(&set, problem, k).names().join(",");
    assert_eq!(
        names("What is the greatest common divisor of 84 and 36?", 1),
        "gcd"
    );
    assert_eq!(
        names(
            "In how many ways can a committee of 4 be formed from 9 people?",
            1
        ),
        "binomial",
        "found by its worked example"
    );
    assert_eq!(
        names(
            "What is the sum of the digits of the greatest prime below 100?",
            2
        ),
        "digit_sum,count_primes"
    );
    assert_eq!(
        names(
            "Which primes divide the greatest common divisor of 84 and 36?",
            4
        ),
        "gcd,count_primes",
        "k is a limit: only functions sharing a word are offered"
    );
    assert_eq!(
        names("Unrelated words only.", 2),
        "",
        "nothing matches: none"
    );
}

#[test]
fn the_most_similar_text_is_the_one_sharing_the_function_s_rarest_words() {
    let texts = [
        "Count the digits of 3.",
        "What perfect-square integer is closest to 273?",
        "What is the closest integer to the square root of 50?",
    ]
    .map(str::to_owned);
    let closest = described("closest_square", "the perfect square closest to n");
    assert_eq!(most_similar(&closest, &texts), Some(1));
    let unrelated = described("gcd", "greatest common divisor");
    assert_eq!(most_similar(&unrelated, &texts), None, "no word shared");
    assert_eq!(most_similar(&closest, &[]), None);
}

/// An optimizer that adds `halve`, then `double`, then ends every step.
async fn two_function_server() -> ScriptedServer {
    let requests = AtomicUsize::new(0);
    ScriptedServer::builder()
        .n_ctx(8192)
        .rule(move |_| match requests.fetch_add(1, Ordering::SeqCst) {
            0 => add_halve(),
            1 => Reply::tool_call(
                "add_function",
                json!({
                    "name": "double",
                    "description": "twice a number",
                    "arguments": json!({"n": {"type": "integer", "description": "the number"}}).to_string(),
                    "packages": "",
                    "code": "def double(n):\n    return 2 * n\n",
                }),
            ),
            _ => Reply::text("TERMINATE"),
        })
        .await
}

#[tokio::test]
async fn retrieval_offers_the_top_k_and_the_journal_and_report_record_it() -> anyhow::Result<()> {
    let server = two_function_server().await;
    let dir = tempfile::tempdir()?;
    let options = TrainerOptions {
        max_actions_per_step: 2,
        retrieval_k: Some(1),
        ..crate::options(dir.path())
    };
    let trainer = agentopt_train::Trainer::new(Halving::default(), client(&server), options);
    let report = trainer.run(&problems()).await?;
    let records: Vec<ConversationRecord> = read_json_lines(&dir.path().join("transcripts.jsonl"))?;
    let after: Vec<&ConversationRecord> = records
        .iter()
        .filter(|record| record.phase == Phase::TestAfter)
        .collect();
    assert_eq!(after.len(), 4);
    assert!(
        after.iter().all(|record| record.offered == ["halve"]),
        "two functions, one offered: {:?}",
        after.iter().map(|r| &r.offered).collect::<Vec<_>>()
    );
    assert!(
        records
            .iter()
            .filter(|record| record.phase == Phase::TestBefore)
            .all(|record| record.offered.is_empty())
    );
    assert_eq!(
        report.test_after.accuracy.correct, 3,
        "halve was the one offered"
    );
    let rate = |function: Option<&str>| {
        report
            .use_rates
            .iter()
            .find(|rate| {
                rate.phase == "test after training" && rate.function.as_deref() == function
            })
            .map(|rate| (rate.offered, rate.called))
    };
    assert_eq!(rate(None), Some((4, 4)));
    assert_eq!(rate(Some("halve")), Some((4, 4)));
    assert_eq!(rate(Some("double")), None, "never offered in the test");
    let markdown = report.to_markdown();
    assert!(
        markdown.contains("| test after training | `halve` | 4 | 4 | 100.0% |"),
        "{markdown}"
    );
    // The page shows what each test problem was offered, not the whole set in force.
    let problems = page_problems(dir.path())?;
    assert_eq!(problems.len(), 4);
    assert!(
        problems
            .iter()
            .all(|row| row["offered"] == json!(["halve"])),
        "{problems:?}"
    );
    Ok(())
}

/// The problem rows of the run's report page.
fn page_problems(run_dir: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let page = std::fs::read_to_string(run_dir.join("report.html"))?;
    let (_, index) = crate::html::json_blocks(&page)
        .into_iter()
        .find(|(id, _)| id == "run-data")
        .expect("index");
    let index: serde_json::Value = serde_json::from_str(&index)?;
    Ok(index["problems"].as_array().expect("problem rows").clone())
}

/// Halving in code: `halve(n)` solves the problems whose text asks to halve an
/// even number. The assistant calls it on its own when `calls_on_its_own`, else
/// only when made to (a forced call). Odd problems ask to halve or to count digits
/// ("Halve 5." has no whole half).
#[derive(Default)]
struct HalvingInCode {
    calls_on_its_own: bool,
    /// Offered `halve`, it writes its own (shadowing the offered one) and solves.
    writes_its_own: bool,
    /// (problem, function) of each forced call.
    forced: std::sync::Arc<std::sync::Mutex<Vec<(u32, String)>>>,
}

fn halving_text(problem: u32) -> String {
    if problem % 4 == 3 {
        format!("Count the digits of {problem}.")
    } else {
        format!("Halve {problem}.")
    }
}

/// A conversation on `problem` that calls `name` (when `calls`), solved when the
/// agents hold it and the number is even.
fn halving_attempt(
    problem: u32,
    functions: &FunctionSet,
    name: &str,
    calls: bool,
) -> agentopt_train::Attempt {
    use agentopt_llm::ChatMessage;
    let mut history = vec![ChatMessage::user(halving_text(problem))];
    let solved = calls && functions.get(name).is_some() && problem.is_multiple_of(2);
    if calls {
        history.push(ChatMessage::assistant(format!(
            "```python\nprint({name}({problem}))\n```"
        )));
    }
    let mut attempt = agentopt_train::Attempt::new(
        agentopt_train::Outcome::judged(solved, || "not halved".to_owned()),
        history,
    );
    if solved {
        let mut counts = agentopt_train::CallCounts::default();
        counts.add(true);
        attempt.calls.insert(name.to_owned(), counts);
    }
    attempt
}

#[async_trait::async_trait]
impl agentopt_train::Task for HalvingInCode {
    type Problem = u32;

    fn problem_id(&self, problem: &u32) -> String {
        format!("n{problem}")
    }

    fn problem_text(&self, problem: &u32) -> Option<String> {
        Some(halving_text(*problem))
    }

    fn reference_answer(&self, problem: &u32) -> Option<String> {
        Some((problem / 2).to_string())
    }

    async fn attempt(&self, problem: &u32, functions: &FunctionSet) -> agentopt_train::Attempt {
        let offered = functions.get("halve").is_some();
        if self.writes_its_own && offered {
            let mut attempt = agentopt_train::Attempt::new(
                agentopt_train::Outcome::judged(true, String::new),
                vec![],
            );
            attempt.shadowed.insert("halve".to_owned());
            return attempt;
        }
        halving_attempt(
            *problem,
            functions,
            "halve",
            self.calls_on_its_own && offered,
        )
    }

    async fn attempt_calling(
        &self,
        problem: &u32,
        functions: &FunctionSet,
        name: &str,
    ) -> Option<agentopt_train::Attempt> {
        self.forced
            .lock()
            .expect("forced calls")
            .push((*problem, name.to_owned()));
        Some(halving_attempt(*problem, functions, name, true))
    }
}

/// Sessions for trying proposed functions and worked examples.
fn proposal_sandbox() -> anyhow::Result<std::sync::Arc<dyn agentopt_sandbox::ExecutorFactory>> {
    let environment = agentopt_sandbox::PythonEnvironment::ensure()?;
    let policy = agentopt_sandbox::SandboxPolicy {
        preload: Vec::new(),
        ..agentopt_sandbox::SandboxPolicy::default()
    };
    Ok(std::sync::Arc::new(agentopt_sandbox::SandboxSessions::new(
        environment,
        policy,
    )))
}

#[tokio::test]
async fn correct_conversations_that_called_a_function_become_its_verified_examples()
-> anyhow::Result<()> {
    let server = crate::optimizer_server().await;
    let dir = tempfile::tempdir()?;
    let options = TrainerOptions {
        bootstrap_demonstrations: 1,
        proposal_sandbox: Some(proposal_sandbox()?),
        ..crate::options(dir.path())
    };
    let task = HalvingInCode {
        calls_on_its_own: true,
        ..HalvingInCode::default()
    };
    let trainer = agentopt_train::Trainer::new(task, client(&server), options);
    let problems = agentopt_train::Problems {
        train: vec![2, 4, 3],
        validation: Vec::new(),
        test: vec![6],
    };
    let report = trainer.run(&problems).await?;
    let counts: Vec<(u32, u32)> = report
        .epochs
        .iter()
        .map(|epoch| (epoch.demonstrations.kept, epoch.demonstrations.rejected))
        .collect();
    assert_eq!(counts, [(0, 0), (1, 0)], "one example kept in step 2");
    let learned = FunctionSet::load(&dir.path().join("functions.json"))?;
    let examples = &learned.functions()[0].demonstrations;
    assert_eq!(examples.len(), 1);
    assert_eq!(
        (
            examples[0].problem.as_str(),
            examples[0].solution.as_str(),
            examples[0].answer.as_str()
        ),
        ("Halve 2.", "print(halve(2))", "1")
    );
    assert!(
        report
            .to_markdown()
            .contains("Step 2: 1 worked examples kept, 0 rejected.")
    );
    Ok(())
}

/// A run of [`HalvingInCode`] (no call on its own) on `train` with forced-call examples, `halve`
/// added at step 1: the task's forced calls and each step's (kept, rejected).
async fn forced_call_run(
    train: Vec<u32>,
    dir: &std::path::Path,
) -> anyhow::Result<(Vec<(u32, String)>, Vec<(u32, u32)>)> {
    let server = crate::optimizer_server().await;
    let options = TrainerOptions {
        forced_call_demonstrations: true,
        proposal_sandbox: Some(proposal_sandbox()?),
        ..crate::options(dir)
    };
    let task = HalvingInCode::default();
    let forced = std::sync::Arc::clone(&task.forced);
    let trainer = agentopt_train::Trainer::new(task, client(&server), options);
    let problems = agentopt_train::Problems {
        train,
        validation: Vec::new(),
        test: vec![6],
    };
    let report = trainer.run(&problems).await?;
    let counts = report
        .epochs
        .iter()
        .map(|epoch| (epoch.demonstrations.kept, epoch.demonstrations.rejected))
        .collect();
    let forced = forced.lock().expect("forced calls").clone();
    Ok((forced, counts))
}

#[tokio::test]
async fn a_function_nobody_called_gets_an_example_from_a_forced_call_on_the_most_similar_problem()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (forced, counts) = forced_call_run(vec![3, 4], dir.path()).await?;
    assert_eq!(
        forced,
        [(4, "halve".to_owned())],
        "\"Halve 4.\" is most like halve; once it has an example, no more forced calls"
    );
    assert_eq!(counts, [(1, 0), (0, 0)]);
    let learned = FunctionSet::load(&dir.path().join("functions.json"))?;
    let example = &learned.functions()[0].demonstrations[0];
    assert_eq!(
        (
            example.problem.as_str(),
            example.solution.as_str(),
            example.answer.as_str()
        ),
        ("Halve 4.", "print(halve(4))", "2")
    );
    let journaled: Vec<agentopt_train::ForcedCallRecord> =
        read_json_lines(&dir.path().join("forced_calls.jsonl"))?;
    assert_eq!(journaled.len(), 1);
    assert!(journaled[0].kept && journaled[0].attempt.outcome.is_solved());
    // The example was in force in epoch 2: its conversations were offered it.
    let records: Vec<ConversationRecord> = read_json_lines(&dir.path().join("transcripts.jsonl"))?;
    assert!(
        records
            .iter()
            .filter(|record| record.phase == Phase::Train { epoch: 2 })
            .all(|record| record.offered == ["halve"])
    );
    Ok(())
}

#[tokio::test]
async fn a_forced_call_whose_answer_is_wrong_gives_no_example() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (forced, counts) = forced_call_run(vec![3, 5], dir.path()).await?;
    let halve = |problem| (problem, "halve".to_owned());
    assert_eq!(forced, [halve(5), halve(5)], "tried again after step 2");
    assert_eq!(counts, [(0, 1), (0, 1)]);
    let learned = FunctionSet::load(&dir.path().join("functions.json"))?;
    assert!(learned.functions()[0].demonstrations.is_empty());
    // Each forced conversation is journaled, with whether it gave the example.
    let journaled: Vec<agentopt_train::ForcedCallRecord> =
        read_json_lines(&dir.path().join("forced_calls.jsonl"))?;
    let rows: Vec<_> = journaled
        .iter()
        .map(|r| (r.epoch, r.function.as_str(), r.problem_id.as_str(), r.kept))
        .collect();
    assert_eq!(rows, [(1, "halve", "n5", false), (2, "halve", "n5", false)]);
    assert_eq!(
        journaled[0].attempt.history.len(),
        2,
        "the conversation kept"
    );
    Ok(())
}

#[tokio::test]
async fn the_report_counts_conversations_that_shadowed_an_offered_function() -> anyhow::Result<()> {
    let server = ScriptedServer::start(Vec::new()).await;
    let dir = tempfile::tempdir()?;
    let halve = LearnedFunction::new("halve", "def halve(n):\n    return n // 2\n");
    let options = TrainerOptions {
        epochs: 0,
        initial_functions: FunctionSet::new([halve]),
        ..crate::options(dir.path())
    };
    let task = HalvingInCode {
        writes_its_own: true,
        ..HalvingInCode::default()
    };
    let report = agentopt_train::Trainer::new(task, client(&server), options)
        .run(&crate::problems())
        .await?;
    let after: Vec<(Option<&str>, u64, u64, u64)> = report
        .use_rates
        .iter()
        .filter(|rate| rate.phase == "test after training")
        .map(|rate| {
            (
                rate.function.as_deref(),
                rate.offered,
                rate.called,
                rate.shadowed,
            )
        })
        .collect();
    assert_eq!(after, [(None, 4, 0, 4), (Some("halve"), 4, 0, 4)]);
    let markdown = report.to_markdown();
    assert!(
        markdown.contains("| test after training | `halve` | 4 | 0 | 0.0% | 4 |"),
        "{markdown}"
    );
    // The page's problem rows say whose version ran.
    let problems = page_problems(dir.path())?;
    assert!(
        problems
            .iter()
            .all(|row| row["after"]["shadowed"] == json!(["halve"])
                && row["before"].get("shadowed").is_none()),
        "{problems:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_forced_call_makes_each_attempt_call_the_most_relevant_function() -> anyhow::Result<()> {
    let server = ScriptedServer::start(Vec::new()).await;
    let run = async |force_call| -> anyhow::Result<(u64, Vec<(u32, String)>)> {
        let dir = tempfile::tempdir()?;
        let halve = LearnedFunction::new("halve", "def halve(n):\n    return n // 2\n")
            .with_description("Halve an even number.");
        let options = TrainerOptions {
            epochs: 0,
            initial_functions: FunctionSet::new([halve]),
            force_call,
            ..crate::options(dir.path())
        };
        let task = HalvingInCode::default();
        let forced = std::sync::Arc::clone(&task.forced);
        let trainer = agentopt_train::Trainer::new(task, client(&server), options);
        let report = trainer.run(&crate::problems()).await?;
        assert!(
            !dir.path().join("forced_calls.jsonl").exists(),
            "no forced-call examples asked for, no journal of them"
        );
        let mut forced = forced.lock().expect("forced calls").clone();
        forced.sort();
        Ok((report.test_after.accuracy.correct, forced))
    };
    let halve = |problem| (problem, "halve".to_owned());
    assert_eq!(
        run(true).await?,
        (3, vec![halve(6), halve(8), halve(10)]),
        "\"Count the digits of 7.\" shares no word with halve: not forced"
    );
    assert_eq!(
        run(false).await?,
        (0, Vec::new()),
        "it never calls on its own"
    );
    Ok(())
}
