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

#[tokio::test]
async fn a_demonstration_is_kept_only_when_running_it_gives_the_reference_answer()
-> anyhow::Result<()> {
    let server = crate::server([
        add_with_example("What is 7 plus 1?", "print(add(7, 1))", "8"),
        add_with_example("What is 2 plus 3?", "print(add(2, 2))", "4"),
        add_with_example("What is 2 plus 3?", "print(2 + 3)", "5"),
        add_with_example("What is 2 plus 3?", "print(add(a=2, b=3))", "5"),
    ])
    .await;
    let learned_use = LearnedUseOptions {
        demonstrations: true,
        ..LearnedUseOptions::default()
    };
    let mut optimizer = optimizer(&server, 1, options(learned_use))
        .with_executor(Box::new(sandbox().await))
        .with_answer_judge(Arc::new(OneProblem));
    record_all(&mut optimizer, &[false]);
    let outcome = optimizer.step().await?;
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

#[tokio::test]
async fn a_function_that_raises_on_sample_arguments_is_rejected() -> anyhow::Result<()> {
    let broken = "def solve(expression):\n    return sympy.sympify(expression)\n";
    let fixed = "def solve(expression):\n    return eval(expression, {}) * 1\n";
    let server = crate::server([
        sympy_without_import("add_function", broken),
        sympy_without_import("add_function", fixed),
    ])
    .await;
    let checks = LearnedUseOptions {
        execution_checks: true,
        ..LearnedUseOptions::default()
    };
    let mut checked =
        optimizer(&server, 1, options(checks)).with_executor(Box::new(sandbox().await));
    record_all(&mut checked, &[false]);
    let outcome = checked.step().await?;
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

/// A conversation that ran Python and called `add` (`calls` times), solved.
fn used(calls: u64) -> (Vec<ChatMessage>, BTreeMap<String, FunctionUse>) {
    let history = vec![
        ChatMessage::user("What is the sum of the first 3 odd numbers?"),
        ChatMessage::assistant("```python\nprint(sum(range(1, 6, 2)))\n```"),
        ChatMessage::user("9"),
        ChatMessage::assistant("The answer is \\boxed{9}."),
    ];
    let mut uses = BTreeMap::new();
    if calls > 0 {
        let counts = FunctionUse {
            calls,
            succeeded: calls - 1,
        };
        uses.insert("add".to_owned(), counts);
    }
    (history, uses)
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
        prompt.contains("- add: called in 1 of 2 conversations (2 calls, 1 succeeded)"),
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
