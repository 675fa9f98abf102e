//! What makes a small model use a learned function, as the MATH task sends it: worked
//! examples in the style's own format and place, and the reply prefill.

use agentopt_agents::{
    Demonstration, DemonstrationCall, DemonstrationPlacement, FunctionStyle, LearnedFunction,
    ReplyPrefill,
};
use agentopt_mathchat::{MathTask, MathTaskOptions, Problem};
use agentopt_testkit::{Reply, ScriptedServer};
use agentopt_train::{FunctionSet, Task};
use serde_json::{Value, json};

use crate::{client, sessions};

fn digit_sum() -> LearnedFunction {
    LearnedFunction::new(
        "digit_sum",
        "def digit_sum(n):\n    return sum(int(d) for d in str(abs(int(n))))\n",
    )
    .with_description("Sum of the decimal digits of an integer.")
    .with_parameters(
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
    )
    .with_demonstrations(vec![Demonstration {
        problem: "What is the sum of the digits of 2^10?".to_owned(),
        solution: "print(digit_sum(2**10))".to_owned(),
        answer: "7".to_owned(),
        call: Some(DemonstrationCall {
            arguments: json!({"n": 1024}),
            result: "7".to_owned(),
        }),
    }])
}

fn problem() -> Problem {
    Problem {
        id: "number_theory.jsonl:1".to_owned(),
        subject: "number_theory".to_owned(),
        level: Some(2),
        question: "What is the sum of the digits of 3^5?".to_owned(),
        answer: "9".to_owned(),
    }
}

/// One attempt at [`problem`] with `digit_sum` and `options`, the model replying
/// `script`; the attempt and the server.
async fn attempt(
    options: MathTaskOptions,
    script: Vec<Reply>,
) -> (agentopt_train::Attempt, ScriptedServer) {
    let server = ScriptedServer::start(script).await;
    let task = MathTask::new(
        client(&server, agentopt_llm::CallStyle::Tools),
        sessions(),
        sessions(),
    )
    .with_options(options);
    let attempt = task
        .attempt(&problem(), &FunctionSet::new([digit_sum()]))
        .await;
    (attempt, server)
}

/// The first request the assistant's model got, with `options`.
async fn first_request(options: MathTaskOptions, reply: &str) -> Value {
    let (_, server) = attempt(options, vec![Reply::text(reply), Reply::text("TERMINATE")]).await;
    server.chat_requests()[0].body.clone()
}

/// The last message of a request's body: the prefill, when the reply was prefilled.
fn last_message(body: &Value) -> Value {
    body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .cloned()
        .unwrap_or_default()
}

fn content(body: &Value, index: usize) -> String {
    body["messages"][index]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_demonstration_reaches_the_prompt_in_each_style_and_place() {
    let tool_example = "<tool_call>\n{\"name\": \"digit_sum\", \"arguments\": {\"n\":1024}}\n</tool_call>\n<tool_response>\n7\n</tool_response>";
    let code_example = "```python\nprint(digit_sum(2**10))\n```\n```output\n7\n```";
    for (style, placement, expected) in [
        (
            FunctionStyle::Tools,
            DemonstrationPlacement::SystemMessage,
            tool_example,
        ),
        (
            FunctionStyle::Tools,
            DemonstrationPlacement::FirstMessage,
            tool_example,
        ),
        (
            FunctionStyle::Code,
            DemonstrationPlacement::SystemMessage,
            code_example,
        ),
        (
            FunctionStyle::Code,
            DemonstrationPlacement::FirstMessage,
            code_example,
        ),
    ] {
        let options = MathTaskOptions {
            function_style: style,
            demonstrations: placement,
            ..MathTaskOptions::default()
        };
        let body = first_request(options, "\\boxed{9}").await;
        let (system, user) = (content(&body, 0), content(&body, 1));
        let (holder, other) = match placement {
            DemonstrationPlacement::SystemMessage => (&system, &user),
            _ => (&user, &system),
        };
        assert!(holder.contains(expected), "{style} {placement}: {holder}");
        assert!(
            holder.contains("Problem: What is the sum of the digits of 2^10?")
                && holder.contains("I will use the helper function digit_sum.")
                && holder.contains("\\boxed{7}"),
            "{style} {placement}: {holder}"
        );
        assert!(!other.contains("2^10"), "{style} {placement}: {other}");
        if placement == DemonstrationPlacement::FirstMessage {
            let examples_at = user.find("2^10").unwrap_or(usize::MAX);
            let problem_at = user.find("3^5").unwrap_or(0);
            assert!(
                examples_at < problem_at,
                "examples come before the problem: {user}"
            );
            assert!(
                user.ends_with("Problem:\nWhat is the sum of the digits of 3^5?"),
                "{user}"
            );
        }
    }
    // Off (the default): AG2's messages.
    let body = first_request(MathTaskOptions::default(), "\\boxed{9}").await;
    assert_eq!(content(&body, 0), "You are a helpful assistant.");
    assert!(!content(&body, 1).contains("2^10"));
}

/// An attempt in the code style with the first reply prefilled by ```` ```python ````,
/// the model continuing it with `code` and then boxing 9.
async fn prefilled_attempt(code: &str) -> (agentopt_train::Attempt, ScriptedServer) {
    let options = MathTaskOptions {
        function_style: FunctionStyle::Code,
        reply_prefill: Some(ReplyPrefill::first_reply("```python\n")),
        ..MathTaskOptions::default()
    };
    let script = vec![
        Reply::text(format!("{code}\n```")),
        Reply::text("The sum is \\boxed{9}."),
        Reply::text("TERMINATE"),
    ];
    attempt(options, script).await
}

#[tokio::test]
async fn the_reply_prefill_makes_the_first_reply_code() {
    let (attempt, server) = prefilled_attempt("print(digit_sum(3**5))").await;
    assert!(attempt.outcome.is_solved(), "{:?}", attempt.outcome);
    assert_eq!(
        attempt.calls["digit_sum"].calls, 1,
        "the function ran from the code"
    );
    let last = last_message(&server.chat_requests()[0].body);
    assert_eq!(last["role"], "assistant");
}

#[tokio::test]
async fn code_that_writes_its_own_version_of_an_offered_function_shadows_it() {
    let own = "def digit_sum(n):\n    return sum(map(int, str(n)))\nprint(digit_sum(3**5))";
    let (attempt, _server) = prefilled_attempt(own).await;
    assert!(attempt.outcome.is_solved(), "{:?}", attempt.outcome);
    assert!(attempt.calls.is_empty(), "its own ran: {:?}", attempt.calls);
    assert_eq!(
        attempt.shadowed.iter().collect::<Vec<_>>(),
        ["digit_sum"],
        "the offered one was shadowed"
    );
}

#[tokio::test]
async fn the_reply_stop_is_sent_with_every_assistant_request() {
    let options = MathTaskOptions {
        function_style: FunctionStyle::Code,
        reply_stop: vec!["```output".to_owned()],
        ..MathTaskOptions::default()
    };
    let (attempt, server) = attempt(
        options,
        vec![
            Reply::text("```python\nprint(digit_sum(3**5))\n```\n"),
            Reply::text("The sum is \\boxed{9}."),
            Reply::text("TERMINATE"),
        ],
    )
    .await;
    assert!(attempt.outcome.is_solved(), "{:?}", attempt.outcome);
    let stops: Vec<_> = server
        .chat_requests()
        .iter()
        .map(|request| request.body["stop"].clone())
        .collect();
    assert!(stops.len() >= 2, "{stops:?}");
    assert!(
        stops
            .iter()
            .all(|stop| stop == &serde_json::json!(["```output"])),
        "{stops:?}"
    );
    // Off (the default): AG2's request has no `stop`.
    let body = first_request(MathTaskOptions::default(), "\\boxed{9}").await;
    assert!(body.get("stop").is_none(), "{body}");
}

#[tokio::test]
async fn a_forced_call_prefills_the_first_reply_up_to_the_call_in_the_code_styles() {
    let options = MathTaskOptions {
        function_style: FunctionStyle::Code,
        reply_prefill: Some(ReplyPrefill::first_reply("```python\n")),
        ..MathTaskOptions::default()
    };
    let server = ScriptedServer::start(vec![
        Reply::text("3**5))\n```"),
        Reply::text("The sum is \\boxed{9}."),
        Reply::text("TERMINATE"),
    ])
    .await;
    let client = client(&server, agentopt_llm::CallStyle::Tools);
    let task = MathTask::new(client.clone(), sessions(), sessions()).with_options(options);
    let functions = FunctionSet::new([digit_sum()]);
    let attempt = task
        .attempt_calling(&problem(), &functions, "digit_sum")
        .await
        .expect("the code style can force a call");
    assert!(attempt.outcome.is_solved(), "{:?}", attempt.outcome);
    assert_eq!(attempt.calls["digit_sum"].calls, 1);
    let prefill = last_message(&server.chat_requests()[0].body);
    assert_eq!(
        (prefill["role"].as_str(), prefill["content"].as_str()),
        (Some("assistant"), Some("```python\nprint(digit_sum("))
    );
    let reply = attempt
        .history
        .iter()
        .find(|message| message.role == agentopt_llm::Role::Assistant)
        .and_then(|message| message.content.clone());
    assert_eq!(
        reply.as_deref(),
        Some("```python\nprint(digit_sum(3**5))\n```"),
        "the reply as the model meant it: the prefill, then its arguments"
    );
    // As tools there is no code to start: the task cannot force a call.
    let tools = MathTask::new(client, sessions(), sessions());
    let forced = tools
        .attempt_calling(&problem(), &functions, "digit_sum")
        .await;
    assert!(forced.is_none());
}
