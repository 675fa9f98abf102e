//! The seed's MathUserProxyAgent, scenario by scenario, as snapshot transcripts.

use std::sync::Arc;

use agentopt_agents::{FunctionImpl, LearnedFunction, Message, StopReason, register_function_pair};
use agentopt_llm::{CallStyle, FunctionSchema};
use agentopt_math::{SymbolicChecker, SymbolicVerdict};
use agentopt_mathchat::{
    MATH_AGENT_NAME, MathOutcome, MathUserProxyAgent, SandboxSymbolicChecker,
    add_print_to_last_line, is_termination_msg_mathchat,
};
use agentopt_testkit::{Reply, ScriptedServer};
use serde::Deserialize;
use serde_json::json;

use crate::{assistant, client, scrubbed, sessions};

/// Runs one problem against `script`, with `setup` applied to both agents.
async fn solve(
    script: Vec<Reply>,
    style: CallStyle,
    problem: &str,
    answer: &str,
    setup: impl FnOnce(&mut agentopt_agents::ConversableAgent, &mut MathUserProxyAgent),
) -> (MathOutcome, ScriptedServer) {
    let server = ScriptedServer::start(script).await;
    let mut assistant = assistant(client(&server, style));
    let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions());
    setup(&mut assistant, &mut proxy);
    let outcome = proxy.initiate_chat(&mut assistant, problem, answer).await;
    assert_eq!(server.remaining(), 0, "the whole script was used");
    (outcome, server)
}

fn code(text: &str, code: &str) -> Reply {
    Reply::text(format!("{text}\n```python\n{code}\n```"))
}

#[derive(Deserialize)]
struct Pair {
    a: f64,
    b: f64,
}

fn multiply_schema() -> FunctionSchema {
    FunctionSchema {
        name: "multiply".to_owned(),
        description: Some("Multiply two numbers.".to_owned()),
        parameters: json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        }),
    }
}

fn divide_schema() -> FunctionSchema {
    FunctionSchema {
        name: "divide".to_owned(),
        description: Some("Divide a by b.".to_owned()),
        parameters: json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        }),
    }
}

fn rust_divide() -> FunctionImpl {
    FunctionImpl::typed(|Pair { a, b }: Pair| {
        if b == 0.0 {
            Err("division by zero".to_owned())
        } else {
            Ok(a / b)
        }
    })
}

#[tokio::test]
async fn solved_by_code() {
    let (outcome, _) = solve(
        vec![
            code("Let me compute it.", "x = 6; y = 7\nx * y"),
            Reply::text("The answer is $\\boxed{42}$."),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Tools,
        "What is $6 \\times 7$?",
        "42",
        |_, _| {},
    )
    .await;
    assert!(outcome.correct);
    assert_eq!(outcome.answer.as_deref(), Some("42"));
    assert_eq!(outcome.turns, 3);
    insta::assert_json_snapshot!("solved_by_code", scrubbed(&outcome));
}

#[tokio::test]
async fn solved_via_a_learned_function_call() {
    let (outcome, server) = solve(
        vec![
            Reply::function_call("multiply", json!({"a": 6, "b": 7})),
            Reply::text("So the product is \\boxed{42.0}"),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Functions,
        "What is $6 \\times 7$?",
        "42",
        |assistant, proxy| {
            let implementation = FunctionImpl::learned(
                LearnedFunction::new("multiply", "def multiply(a, b):\n    return a * b\n")
                    .with_packages(["sympy"]),
            );
            match implementation {
                Ok(implementation) => {
                    register_function_pair(assistant, proxy, multiply_schema(), implementation)
                }
                Err(error) => panic!("{error}"),
            }
        },
    )
    .await;
    assert!(outcome.correct, "42.0 is numerically 42");
    let first = &server.chat_requests()[0].body;
    assert_eq!(first["functions"][0]["name"], "multiply");
    insta::assert_json_snapshot!("solved_via_function_call", scrubbed(&outcome));
}

#[tokio::test]
async fn function_call_failures_end_the_chat_after_three() {
    let failing = || Reply::tool_call("divide", json!({"a": 1, "b": 0}));
    let (outcome, _) = solve(
        vec![failing(), failing(), failing(), failing()],
        CallStyle::Tools,
        "What is 1/0?",
        "undefined",
        |assistant, proxy| {
            register_function_pair(assistant, proxy, divide_schema(), rust_divide());
        },
    )
    .await;
    assert!(!outcome.correct);
    assert_eq!(outcome.errors, 3);
    let replies: Vec<&str> = outcome
        .transcript
        .entries
        .iter()
        .filter(|entry| entry.sender == MATH_AGENT_NAME)
        .map(|entry| entry.message.text())
        .collect();
    assert!(replies[1].starts_with("The func is executed failed.Error: division by zero"));
    assert!(replies[3].starts_with("The func is executed failed many times. Error: division by zero. Please directly reply me with TERMINATE."));
    assert!(matches!(
        outcome.transcript.stop_reason,
        StopReason::Ended { .. }
    ));
    insta::assert_json_snapshot!("function_call_failures", scrubbed(&outcome));
}

#[tokio::test]
async fn max_auto_replies_reached() {
    let script: Vec<Reply> = (1..=16)
        .map(|step| Reply::text(format!("Still thinking (step {step}).")))
        .collect();
    let (outcome, _) = solve(script, CallStyle::Tools, "Hard problem.", "1", |_, _| {}).await;
    assert_eq!(
        outcome.transcript.stop_reason,
        StopReason::MaxAutoReplies {
            agent: MATH_AGENT_NAME.to_owned(),
            limit: 15
        }
    );
    assert_eq!(outcome.turns, 16);
    insta::assert_json_snapshot!("max_auto_replies", scrubbed(&outcome));
}

#[tokio::test]
async fn code_timeout_then_state_is_rebuilt() {
    let (outcome, _) = solve(
        vec![
            code("First a value.", "y = 40\nprint(y)"),
            code("Now a slow loop.", "while True:\n    pass"),
            code("Reuse y.", "y + 2"),
            Reply::text("\\boxed{42}"),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Tools,
        "Compute 40 + 2 slowly.",
        "42",
        |_, _| {},
    )
    .await;
    let replies: Vec<&str> = outcome
        .transcript
        .entries
        .iter()
        .filter(|entry| entry.sender == MATH_AGENT_NAME)
        .map(|entry| entry.message.text())
        .collect();
    assert_eq!(replies[2], "Error: Timeout");
    assert_eq!(replies[3], "42", "earlier definitions survive the timeout");
    assert!(outcome.correct);
    insta::assert_json_snapshot!("code_timeout", scrubbed(&outcome));
}

#[tokio::test]
async fn unknown_function_then_wrong_answer() {
    let (outcome, _) = solve(
        vec![
            Reply::tool_call("nonexistent", json!({"x": 1})),
            Reply::text("Then it must be \\boxed{3}."),
        ],
        CallStyle::Tools,
        "What is 2 + 2?",
        "4",
        |_, _| {},
    )
    .await;
    assert!(!outcome.correct);
    assert_eq!(outcome.answer.as_deref(), Some("3"));
    insta::assert_json_snapshot!("unknown_function", scrubbed(&outcome));
}

#[tokio::test]
async fn malformed_tool_arguments() {
    let (outcome, _) = solve(
        vec![
            Reply::tool_call_raw("divide", "{\"a\": 84, \"b\": "),
            // The corrected call, with a line break between the arguments.
            Reply::tool_call_raw("divide", "{\"a\": 84,\n \"b\": 2}"),
            Reply::text("\\boxed{42}"),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Tools,
        "What is 84 / 2?",
        "42",
        |assistant, proxy| {
            register_function_pair(assistant, proxy, divide_schema(), rust_divide());
        },
    )
    .await;
    assert!(outcome.correct);
    assert_eq!(outcome.errors, 1);
    insta::assert_json_snapshot!("malformed_tool_arguments", scrubbed(&outcome));
}

#[tokio::test]
async fn wrong_answer_then_corrected() {
    let (outcome, _) = solve(
        vec![
            code("I think it is \\boxed{40}; let me check.", "print(6 * 7)"),
            Reply::text("I was wrong: the answer is \\boxed{42}."),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Tools,
        "What is 6 * 7?",
        "42",
        |_, _| {},
    )
    .await;
    assert!(outcome.correct);
    insta::assert_json_snapshot!("wrong_answer_then_corrected", scrubbed(&outcome));
}

#[tokio::test]
async fn termination_by_terminate() {
    let (outcome, _) = solve(
        vec![Reply::text("I cannot solve this. TERMINATE")],
        CallStyle::Tools,
        "Prove the Riemann hypothesis.",
        "",
        |_, _| {},
    )
    .await;
    assert!(!outcome.correct);
    assert_eq!(outcome.answer, None);
    assert_eq!(
        outcome.transcript.stop_reason,
        StopReason::Terminated {
            agent: MATH_AGENT_NAME.to_owned()
        }
    );
    insta::assert_json_snapshot!("termination_by_terminate", scrubbed(&outcome));
}

#[tokio::test]
async fn code_feedback_messages() {
    let (outcome, _) = solve(
        vec![
            code("Assign only.", "x = 5"),
            code("Assign only.", "x = 5"),
            code("Too much.", "print('a' * 3000)"),
            code("Divide.", "1/0"),
            code("Unknown name.", "undefined_name"),
            Reply::text("```text\nnot code\n```"),
            Reply::text("TERMINATE"),
        ],
        CallStyle::Tools,
        "Exercise the feedback.",
        "0",
        |_, _| {},
    )
    .await;
    insta::assert_json_snapshot!("code_feedback_messages", scrubbed(&outcome));
}

#[tokio::test]
async fn history_stays_readable_after_the_chat() {
    let server = ScriptedServer::start([Reply::text("\\boxed{2}"), Reply::text("TERMINATE")]).await;
    let mut assistant = assistant(client(&server, CallStyle::Tools));
    let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions());
    let outcome = proxy.initiate_chat(&mut assistant, "1 + 1?", "2").await;
    assert!(outcome.correct);
    let history = assistant.history(MATH_AGENT_NAME);
    assert_eq!(history.len(), 4);
    assert_eq!(history[1].text(), "\\boxed{2}");
    assert_eq!(proxy.history("assistant").len(), 4);
    let json = match outcome.transcript.to_json() {
        Ok(json) => json,
        Err(error) => panic!("{error}"),
    };
    assert!(json.contains("The result is Correct."));
    let read_back: Result<agentopt_agents::Transcript, _> = serde_json::from_str(&json);
    assert!(read_back.is_ok_and(|transcript| transcript == outcome.transcript));
}

#[tokio::test]
async fn model_errors_count_and_end_the_problem() {
    let server = ScriptedServer::start([Reply::server_error(400)]).await;
    let mut assistant = assistant(client(&server, CallStyle::Tools));
    let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions());
    let outcome = proxy.initiate_chat(&mut assistant, "1 + 1?", "2").await;
    assert!(!outcome.correct);
    assert_eq!(outcome.errors, 1);
    assert_eq!(outcome.turns, 0);
    assert!(matches!(
        outcome.transcript.stop_reason,
        StopReason::Error { .. }
    ));
}

#[test]
fn reply_chain_is_in_the_seed_order() {
    let proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions());
    assert_eq!(
        proxy.reply_names(),
        [
            "check_final_result",
            "check_termination_and_human_reply",
            "generate_function_call_reply",
            "generate_math_reply"
        ]
    );
}

struct Fixed(SymbolicVerdict);

#[async_trait::async_trait]
impl SymbolicChecker for Fixed {
    async fn equivalent(&self, _: &str, _: &str) -> SymbolicVerdict {
        self.0.clone()
    }
}

#[tokio::test]
async fn symbolic_checker_decides_algebra() {
    for (verdict, correct) in [
        (SymbolicVerdict::Equivalent, true),
        (SymbolicVerdict::NotEquivalent, false),
    ] {
        let server =
            ScriptedServer::start([Reply::text("\\boxed{x(x+2)}"), Reply::text("TERMINATE")]).await;
        let mut assistant = assistant(client(&server, CallStyle::Tools));
        let mut proxy = MathUserProxyAgent::new(MATH_AGENT_NAME, sessions())
            .with_symbolic_checker(Arc::new(Fixed(verdict)));
        let outcome = proxy
            .initiate_chat(&mut assistant, "Expand.", "x^2+2x")
            .await;
        assert_eq!(outcome.correct, correct);
    }
}

#[tokio::test]
async fn sympy_checker_in_the_sandbox() {
    let checker = SandboxSymbolicChecker::new(sessions());
    for (candidate, reference, expected) in [
        ("x(x+2)", "x^2+2x", SymbolicVerdict::Equivalent),
        ("2\\sqrt{2}", "\\sqrt{8}", SymbolicVerdict::Equivalent),
        ("\\frac{x}{2}", "0.5x", SymbolicVerdict::Equivalent),
        ("[1, 3)", "[1,3)", SymbolicVerdict::Equivalent),
        ("(x+1)^2", "x^2+1", SymbolicVerdict::NotEquivalent),
        ("[1, 3)", "(1, 3)", SymbolicVerdict::NotEquivalent),
    ] {
        assert_eq!(
            checker.equivalent(candidate, reference).await,
            expected,
            "{candidate} vs {reference}"
        );
    }
    assert!(matches!(
        checker.equivalent("__import__('os')", "1").await,
        SymbolicVerdict::Undecided(_)
    ));
}

#[test]
fn auto_print_rule() {
    fn check(code: &str, expected: &str) {
        assert_eq!(add_print_to_last_line(code), expected, "{code:?}");
    }
    check("x = 1\nx", "x = 1\nprint(x)");
    check("x = 1", "x = 1");
    check("print(1)\n2", "print(1)\n2");
    check("for i in range(3):\n    i", "for i in range(3):\n    i");
    check("x == 1", "x == 1");
    check("y\n# done", "y\n# done");
    check("", "");
}

#[test]
fn termination_rule() {
    fn check(text: &str, expected: bool) {
        assert_eq!(
            is_termination_msg_mathchat(&Message::assistant(text)),
            expected,
            "{text:?}"
        );
    }
    check("TERMINATE", true);
    check("all done. TERMINATE\n", true);
    check("\\boxed{5}", true);
    check("\\boxed{}", false);
    check("\\boxed{5}\n```python\nprint(5)\n```", false);
    check("\\boxed{5}\n```\nnot python\n```", true);
    check("keep going", false);
}

#[tokio::test]
async fn an_answer_sent_with_tool_calls_keeps_the_wire_valid() {
    let answer_with_call = match Reply::tool_call("divide", json!({"a": 84, "b": 2})) {
        Reply::Completion(completion) => Reply::Completion(completion.content("\\boxed{42}")),
        other => other,
    };
    let (outcome, server) = solve(
        vec![answer_with_call, Reply::text("TERMINATE")],
        CallStyle::Tools,
        "What is 84 / 2?",
        "42",
        |_, _| {},
    )
    .await;
    assert!(outcome.correct);
    let second = &server.chat_requests()[1].body["messages"];
    assert_eq!(second[3]["role"], "tool");
    assert_eq!(
        second[4]["content"],
        "The result is Correct. Please reply me with TERMINATE."
    );
}
