//! The levers that make learned functions get used: worked examples checked by
//! running them, proposals called on sample arguments, each function's use and
//! correct solutions in the prompt, and pruning of unused functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentopt_llm::ChatMessage;
use agentopt_optimizer::{
    AgentOptimizer, AnswerJudge, FunctionUse, LearnedUseOptions, OptimizerOptions, StepOutcome,
};
use agentopt_testkit::Reply;
use serde_json::{Value, json};

use crate::{add_sum, function_call, optimizer, prompt_of, sandbox};

/// Knows one training problem, "What is 2 plus 3?" (answer 5); answers agree when
/// their texts do.
struct OneProblem;

#[async_trait::async_trait]
impl AnswerJudge for OneProblem {
    fn reference_answer(&self, problem: &str) -> Option<String> {
        (problem.trim() == "What is 2 plus 3?").then(|| "5".to_owned())
    }

    async fn agrees(&self, answer: &str, reference: &str) -> bool {
        answer.trim() == reference.trim()
    }
}

fn options(learned_use: LearnedUseOptions) -> OptimizerOptions {
    OptimizerOptions {
        learned_use,
        ..OptimizerOptions::default()
    }
}

/// `add_function` of `add(a, b)` with one worked example.
fn add_with_example(problem: &str, solution: &str, answer: &str) -> Reply {
    let (tool, mut arguments) = add_sum("add");
    arguments["demonstrations"] =
        json!([{"problem": problem, "solution": solution, "answer": answer}]);
    Reply::tool_call(tool, arguments)
}

fn errors(outcome: &StepOutcome) -> Vec<String> {
    outcome
        .rejected
        .iter()
        .flat_map(|rejected| rejected.errors.iter().flatten().cloned())
        .collect()
}

fn record_all(optimizer: &mut AgentOptimizer, satisfied: &[bool]) {
    for (index, solved) in satisfied.iter().enumerate() {
        let history = crate::conversation(&format!("What is {index} + 5?"), "5");
        if let Err(error) = optimizer.record_one_conversation(history, *solved) {
            panic!("record: {error}");
        }
    }
}

/// One step, worked examples asked for and judged, of an optimizer that replies
/// `replies` (one failed conversation recorded).
async fn step_with_examples(
    replies: impl IntoIterator<Item = Reply>,
) -> anyhow::Result<(StepOutcome, agentopt_testkit::ScriptedServer)> {
    let server = crate::server(replies).await;
    let learned_use = LearnedUseOptions {
        demonstrations: true,
        ..LearnedUseOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options(learned_use))
        .with_executor(Box::new(sandbox().await))
        .with_answer_judge(Arc::new(OneProblem));
    record_all(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    Ok((outcome, server))
}

#[tokio::test]
async fn a_demonstration_is_kept_only_when_running_it_gives_the_reference_answer()
-> anyhow::Result<()> {
    let (outcome, server) = step_with_examples([
        add_with_example("What is 7 plus 1?", "print(add(7, 1))", "8"),
        add_with_example("What is 2 plus 3?", "print(add(2, 2))", "4"),
        add_with_example("What is 2 plus 3?", "print(2 + 3)", "5"),
        add_with_example("What is 2 plus 3?", "print(add(a=2, b=3))", "5"),
    ])
    .await?;
    let errors = errors(&outcome);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains("not one of the training problems"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("its solution prints \"4\", but the answer to that problem is \"5\""),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("does not call add"), "{}", errors[2]);
    // The feedback reached the model with each retry.
    let retry = &server.chat_requests()[2];
    assert!(retry.raw_body.contains("but the answer to that problem is"));
    let kept = &outcome.functions[0].demonstrations;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].answer, "5");
    let call = kept[0].call.as_ref().expect("the call is recorded");
    assert_eq!(
        (call.arguments.clone(), call.result.as_str()),
        (json!({"a": 2, "b": 3}), "5")
    );
    // Asked for, the tools carry the optional argument.
    let tools = &server.chat_requests()[0].body["tools"];
    assert_eq!(
        tools[0]["function"]["parameters"]["properties"]["demonstrations"]["type"],
        "array"
    );
    Ok(())
}

#[tokio::test]
async fn on_the_last_attempt_a_function_is_kept_without_the_examples_that_fail()
-> anyhow::Result<()> {
    let wrong = || add_with_example("What is 2 plus 3?", "print(add(2, 2))", "4");
    let (outcome, server) = step_with_examples([wrong(), wrong(), wrong(), wrong()]).await?;
    // Three tries are rejected with the feedback; the fourth (the last) keeps the
    // function, which passes its own checks, without its example.
    assert_eq!(errors(&outcome).len(), 3, "{:?}", errors(&outcome));
    assert_eq!(server.chat_requests().len(), 4);
    assert_eq!(outcome.functions.len(), 1);
    assert_eq!(outcome.functions[0].name, "add");
    assert!(outcome.functions[0].demonstrations.is_empty());
    Ok(())
}

#[tokio::test]
async fn without_a_judge_examples_are_dropped_and_the_tools_are_ag2_s() -> anyhow::Result<()> {
    let server = crate::server([add_with_example(
        "What is 2 plus 3?",
        "print(add(2, 3))",
        "5",
    )])
    .await;
    let mut optimizer =
        optimizer(&server, 1, OptimizerOptions::default()).with_executor(Box::new(sandbox().await));
    record_all(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.functions.len(), 1);
    assert!(outcome.functions[0].demonstrations.is_empty());
    let tools = &server.chat_requests()[0].body["tools"];
    assert!(tools[0]["function"]["parameters"]["properties"]["demonstrations"].is_null());
    Ok(())
}

/// `solve(expression: string)` calling sympy without importing it.
fn sympy_without_import(tool: &str, code: &str) -> Reply {
    let (_, mut arguments) = function_call(tool, "solve", &[], code);
    arguments["arguments"] = Value::String(
        json!({"expression": {"type": "string", "description": "the expression"}}).to_string(),
    );
    Reply::tool_call(tool, arguments)
}

/// One step, execution checks on, of an optimizer that proposes `solve` with each
/// of `codes` in turn (one failed conversation recorded).
async fn step_with_execution_checks(codes: &[&str]) -> anyhow::Result<StepOutcome> {
    let replies = codes
        .iter()
        .map(|code| sympy_without_import("add_function", code));
    let server = crate::server(replies).await;
    let checks = LearnedUseOptions {
        execution_checks: true,
        ..LearnedUseOptions::default()
    };
    let mut checked =
        optimizer(&server, 1, options(checks)).with_executor(Box::new(sandbox().await));
    record_all(&mut checked, &[false]);
    Ok(checked.step().await?)
}

#[tokio::test]
async fn a_function_that_raises_on_sample_arguments_is_rejected() -> anyhow::Result<()> {
    let broken = "def solve(expression):\n    return sympy.sympify(expression)\n";
    let fixed = "def solve(expression):\n    return eval(expression, {}) * 1\n";
    let outcome = step_with_execution_checks(&[broken, fixed]).await?;
    let errors = errors(&outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("calling solve(**{\"expression\":\"12\"}) with sample arguments")
            && errors[0].contains("NameError: name 'sympy' is not defined"),
        "{}",
        errors[0]
    );
    assert!(outcome.functions[0].code.contains("eval"));

    // Without the check, AG2's validation accepts it (it defines cleanly).
    let server = crate::server([sympy_without_import("add_function", broken)]).await;
    let mut optimizer =
        optimizer(&server, 1, OptimizerOptions::default()).with_executor(Box::new(sandbox().await));
    record_all(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert!(outcome.rejected.is_empty());
    assert_eq!(outcome.functions.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_type_error_on_a_string_sample_is_forgiven_when_integers_work() -> anyhow::Result<()> {
    // `expression` declared a string (as a parameter taken from an unannotated def is):
    // `"12" % 10` raises TypeError, `12 % 10` does not; `upper` fails
    // with integers too (AttributeError).
    let digit = "def solve(expression):\n    return expression % 10\n";
    let upper = "def solve(expression):\n    return expression.upper() + 1\n";
    let outcome = step_with_execution_checks(&[upper, digit]).await?;
    let errors = errors(&outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("TypeError"), "{}", errors[0]);
    assert!(outcome.functions[0].code.contains("% 10"));
    Ok(())
}

/// A conversation that ran Python and called `add` (`calls` times), solved; or,
/// with no call, one that shadowed it.
fn used(calls: u64) -> (Vec<ChatMessage>, BTreeMap<String, FunctionUse>) {
    let history = vec![
        ChatMessage::user("What is the sum of the first 3 odd numbers?"),
        ChatMessage::assistant("```python\nprint(sum(range(1, 6, 2)))\n```"),
        ChatMessage::user("9"),
        ChatMessage::assistant("The answer is \\boxed{9}."),
    ];
    let counts = FunctionUse {
        calls,
        succeeded: calls.saturating_sub(1),
        shadowed: calls == 0,
    };
    (history, BTreeMap::from([("add".to_owned(), counts)]))
}

#[tokio::test]
async fn the_prompt_shows_each_function_s_use_and_correct_solutions() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("add").0, add_sum("add").1),
        Reply::text("TERMINATE"),
    ])
    .await;
    let learned_use = LearnedUseOptions {
        use_statistics: true,
        from_what_worked: true,
        ..LearnedUseOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options(learned_use));
    record_all(&mut optimizer, &[false]);
    optimizer.step().await?;
    for calls in [2, 0] {
        let (history, uses) = used(calls);
        optimizer.record_conversation_with_uses(history, true, uses)?;
    }
    optimizer.step().await?;
    let prompt = prompt_of(&server.chat_requests()[1]);
    assert!(
        prompt.contains(
            "- add: called in 1 of 2 conversations (2 calls, 1 succeeded); in 1 the assistant \
             wrote or imported its own add instead\n"
        ),
        "{prompt}"
    );
    assert!(
        prompt.contains("Solution of conversation 0:\n```python\nprint(sum(range(1, 6, 2)))\n```"),
        "{prompt}"
    );
    // Off (the default), neither section is there.
    let first = prompt_of(&server.chat_requests()[0]);
    assert!(!first.contains("How the assistant used") && !first.contains("Code of correct"));
    Ok(())
}

#[tokio::test]
async fn a_function_no_conversation_called_is_pruned() -> anyhow::Result<()> {
    let server = crate::server([
        Reply::tool_call(add_sum("add").0, add_sum("add").1),
        Reply::text("TERMINATE"),
        Reply::text("TERMINATE"),
        Reply::text("TERMINATE"),
    ])
    .await;
    let learned_use = LearnedUseOptions {
        prune_unused_after: Some(1),
        ..LearnedUseOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options(learned_use));
    record_all(&mut optimizer, &[true]);
    optimizer.step().await?;
    // Recorded without calls (AG2's API): nothing is known, nothing is pruned.
    record_all(&mut optimizer, &[true]);
    let outcome = optimizer.step().await?;
    assert!(outcome.pruned.is_empty());
    assert_eq!(outcome.functions.names(), ["add"]);
    // Called: kept.
    let (history, uses) = used(1);
    optimizer.record_conversation_with_uses(history, true, uses)?;
    let outcome = optimizer.step().await?;
    assert!(outcome.pruned.is_empty());
    // Offered but never called for one step: removed.
    let (history, uses) = used(0);
    optimizer.record_conversation_with_uses(history, true, uses)?;
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.pruned, ["add"]);
    assert!(outcome.functions.is_empty());
    assert_eq!(outcome.changes.removed, ["add"]);
    Ok(())
}

#[test]
fn the_json_action_schema_requires_examples_only_when_asked() {
    let required = |asking| {
        let schema = agentopt_optimizer::action_schema_asking(&[], true, asking);
        schema["anyOf"][0]["properties"]["arguments"]["required"].clone()
    };
    assert!(
        required(true)
            .as_array()
            .is_some_and(|fields| fields.contains(&json!("demonstrations")))
    );
    assert!(
        required(false)
            .as_array()
            .is_some_and(|fields| !fields.contains(&json!("demonstrations")))
    );
    assert_eq!(
        agentopt_optimizer::action_schema_asking(&[], true, false),
        agentopt_optimizer::action_schema(&[], true),
        "off, the schema is the one before"
    );
    assert_eq!(
        agentopt_optimizer::optimizer_tools_asking(false),
        agentopt_optimizer::optimizer_tools()
    );
}

#[tokio::test]
async fn a_json_schema_action_carries_its_examples() -> anyhow::Result<()> {
    let action = json!({
        "action": "add_function",
        "arguments": {
            "name": "add",
            "description": "Adds two integers.",
            "packages": "",
            "code": "def add(a, b):\n    return a + b\n",
            "parameters": {
                "a": {"type": "integer", "description": "first"},
                "b": {"type": "integer", "description": "second"},
            },
            "demonstrations": [
                {"problem": "What is 2 plus 3?", "solution": "print(add(2, 3))", "answer": "5"},
            ],
        },
    });
    let server = crate::server([Reply::text(action.to_string())]).await;
    let options = OptimizerOptions {
        action_format: agentopt_optimizer::ActionFormat::JsonSchema,
        learned_use: LearnedUseOptions {
            demonstrations: true,
            ..LearnedUseOptions::default()
        },
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options)
        .with_executor(Box::new(sandbox().await))
        .with_answer_judge(Arc::new(OneProblem));
    record_all(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    assert_eq!(outcome.functions[0].demonstrations[0].answer, "5");
    let schema = &server.chat_requests()[0].body["response_format"]["json_schema"]["schema"];
    assert!(schema.to_string().contains("demonstrations"), "{schema}");
    Ok(())
}

/// A solved conversation about problem `index` that wrote Python and called
/// `add_9` once.
fn solved_with_code(index: usize) -> (Vec<ChatMessage>, BTreeMap<String, FunctionUse>) {
    let history = vec![
        ChatMessage::user(format!("Problem {index}: what is 10 + {index}?")),
        ChatMessage::assistant(format!("```python\nprint(10 + {index})\n```")),
        ChatMessage::user(format!("{}", 10 + index)),
        ChatMessage::assistant(format!("The answer is \\boxed{{{}}}.", 10 + index)),
    ];
    let counts = FunctionUse {
        calls: 1,
        succeeded: 1,
        shadowed: false,
    };
    (history, BTreeMap::from([("add_9".to_owned(), counts)]))
}

/// Answers by the prompt alone (the groups ask at once): a step's loop adds
/// `add_K` for the first problem K it shows, with a worked example; a merge adds
/// the candidate's missing function, first with code that fails on any call.
fn learned_use_by_prompt(request: &agentopt_testkit::RecordedRequest) -> Reply {
    use crate::partition::{names, section};
    let text = prompt_of(request);
    let retry = request.body["messages"].as_array().map_or(0, Vec::len) > 1;
    let list_b = names(section(&text, "\nList B: "));
    let wanted = if text.contains("\nCandidate: ") {
        names(section(&text, "\nCandidate: "))
            .into_iter()
            .find(|name| !list_b.contains(name))
    } else {
        let problem = text
            .split("Problem ")
            .nth(1)
            .and_then(|r| r.split(':').next());
        Some(format!("add_{}", problem.unwrap_or("x"))).filter(|name| !list_b.contains(name))
    };
    let Some(name) = wanted else {
        return Reply::text("TERMINATE");
    };
    if text.contains("\nCandidate: ") && !retry {
        let code = format!("def {name}(a, b):\n    return math.floor(a) + b\n");
        let (tool, arguments) = function_call("add_function", &name, &["a", "b"], &code);
        return Reply::tool_call(tool, arguments);
    }
    let (tool, mut arguments) = add_sum(&name);
    arguments["demonstrations"] = json!([{
        "problem": "What is 2 plus 3?",
        "solution": format!("print({name}(2, 3))"),
        "answer": "5",
    }]);
    Reply::tool_call(tool, arguments)
}

/// A partitioned step keeps every lever: each group's prompt shows the use and the
/// correct solutions of its own conversations, group and merge proposals are
/// execution-checked and their examples verified, and the merge prompt shows the
/// function use and the checked examples it must carry over.
#[tokio::test]
async fn a_partitioned_step_keeps_the_learned_use_levers() -> anyhow::Result<()> {
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(8192)
        .rule(learned_use_by_prompt)
        .await;
    let options = OptimizerOptions {
        partitioning: agentopt_optimizer::Partitioning::AtMost(1),
        learned_use: LearnedUseOptions {
            demonstrations: true,
            execution_checks: true,
            use_statistics: true,
            from_what_worked: true,
            ..LearnedUseOptions::default()
        },
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 2, options)
        .with_executor(Box::new(sandbox().await))
        .with_answer_judge(Arc::new(OneProblem));
    // One conversation: one prompt, which adds add_9.
    let (history, _) = solved_with_code(9);
    optimizer.record_conversation_with_uses(history, false, BTreeMap::new())?;
    let first = optimizer.step().await?;
    assert!(first.partitions.is_empty());
    assert_eq!(first.functions.names(), ["add_9"]);

    for index in 0..2 {
        let (history, uses) = solved_with_code(index);
        optimizer.record_conversation_with_uses(history, true, uses)?;
    }
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.partitions.len(), 2, "{:?}", outcome.partitions);
    assert_eq!(outcome.functions.names(), ["add_9", "add_0", "add_1"]);
    for function in outcome.functions.iter() {
        let examples = &function.demonstrations;
        assert_eq!(examples.len(), 1, "{}: verified", function.name);
        assert!(examples[0].call.is_some(), "{}", function.name);
    }
    let errors = errors(&outcome);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("calling add_1(") && errors[0].contains("NameError"),
        "the merge's proposal was execution-checked: {}",
        errors[0]
    );

    let prompts: Vec<String> = server.chat_requests().iter().map(prompt_of).collect();
    for index in 0..2 {
        let group = prompts
            .iter()
            .find(|p| !p.contains("\nCandidate: ") && p.contains(&format!("Problem {index}:")))
            .expect("a group prompt");
        assert!(
            group.contains("in these 1 conversations")
                && group.contains("- add_9: called in 1 of 1 conversations"),
            "{group}"
        );
        let solution = format!("Solution of conversation 0:\n```python\nprint(10 + {index})");
        assert!(group.contains(&solution), "its own solution: {group}");
        let other = format!("print(10 + {})", 1 - index);
        assert!(!group.contains(&other), "not the other group's: {group}");
    }
    let merge = prompts
        .iter()
        .find(|p| p.contains("\nCandidate: "))
        .expect("a merge prompt");
    assert!(
        merge.contains("- add_9: called in 2 of 2 conversations"),
        "{merge}"
    );
    assert!(
        merge.contains("Worked examples of these functions")
            && merge.contains("- add_1: {")
            && merge.contains("print(add_1(2, 3))"),
        "{merge}"
    );
    Ok(())
}

/// A function pruned before a partitioned step stays out: every group starts from
/// the pruned list, and the merge starts from what the groups changed.
#[tokio::test]
async fn a_partitioned_step_starts_its_groups_from_the_pruned_list() -> anyhow::Result<()> {
    let server = agentopt_testkit::ScriptedServer::builder()
        .n_ctx(8192)
        .rule(learned_use_by_prompt)
        .await;
    let options = OptimizerOptions {
        partitioning: agentopt_optimizer::Partitioning::AtMost(1),
        learned_use: LearnedUseOptions {
            execution_checks: true,
            prune_unused_after: Some(1),
            ..LearnedUseOptions::default()
        },
        ..OptimizerOptions::default()
    };
    let mut optimizer = optimizer(&server, 2, options).with_executor(Box::new(sandbox().await));
    let (history, _) = solved_with_code(9);
    optimizer.record_conversation_with_uses(history, false, BTreeMap::new())?;
    assert_eq!(optimizer.step().await?.functions.names(), ["add_9"]);
    // Neither conversation calls add_9.
    for index in 0..2 {
        let (history, _) = solved_with_code(index);
        optimizer.record_conversation_with_uses(history, true, BTreeMap::new())?;
    }
    let outcome = optimizer.step().await?;
    assert_eq!(outcome.pruned, ["add_9"]);
    assert_eq!(outcome.partitions.len(), 2);
    assert_eq!(outcome.functions.names(), ["add_0", "add_1"]);
    assert_eq!(outcome.changes.removed, ["add_9"]);
    Ok(())
}
