//! The function registry: both sides, late binding, removal, argument leniency.

use agentopt_agents::{
    ConversableAgent, FunctionImpl, FunctionSet, LearnedFunction, StopReason, UserProxyAgent,
    install, lenient_json, parse_arguments, register_function_pair, remove_function_pair,
};
use agentopt_llm::{CallStyle, FunctionCall, FunctionSchema, Role};
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::json;

use crate::{client, sessions};

fn schema(name: &str) -> FunctionSchema {
    FunctionSchema {
        name: name.to_owned(),
        description: Some(format!("{name} a number")),
        parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
    }
}

fn model_agent(server: &ScriptedServer) -> ConversableAgent {
    ConversableAgent::new("assistant").with_model(client(server, CallStyle::Tools))
}

/// AG2 bound every learned function to the last one defined (a closure over the
/// loop variable); each name must run its own code, for Python and Rust alike.
#[tokio::test]
async fn each_function_name_runs_its_own_code() {
    let server = ScriptedServer::start([
        Reply::tool_calls([
            ("double".to_owned(), json!({"x": 5})),
            ("triple".to_owned(), json!({"x": 5})),
            ("add_one".to_owned(), json!({"x": 5})),
            ("add_two".to_owned(), json!({"x": 5})),
        ]),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = model_agent(&server);
    let mut proxy = UserProxyAgent::new("user", sessions());
    for (name, factor) in [("double", 2), ("triple", 3)] {
        let code = format!("def {name}(x):\n    return x * {factor}\n");
        match FunctionImpl::learned(
            LearnedFunction::new(name, code).with_packages(Vec::<String>::new()),
        ) {
            Ok(implementation) => {
                register_function_pair(&mut assistant, &mut proxy, schema(name), implementation)
            }
            Err(error) => panic!("{error}"),
        }
    }
    for (name, offset) in [("add_one", 1), ("add_two", 2)] {
        let implementation = FunctionImpl::rust(move |arguments| {
            let x = arguments.get("x").and_then(serde_json::Value::as_i64);
            x.map(|x| (x + offset).to_string())
                .ok_or_else(|| "x must be an integer".to_owned())
        });
        register_function_pair(&mut assistant, &mut proxy, schema(name), implementation);
    }
    let transcript = proxy
        .initiate_chat(&mut assistant, "Use the tools on 5.")
        .await;
    let results = &transcript.entries[2].message;
    assert_eq!(results.role, Role::Tool);
    let contents: Vec<&str> = results
        .tool_responses
        .iter()
        .map(|response| response.content.as_str())
        .collect();
    assert_eq!(
        contents,
        [
            "Result of double function execution:\n10\n",
            "Result of triple function execution:\n15\n",
            "6",
            "7"
        ]
    );
    assert_eq!(
        transcript.stop_reason,
        StopReason::Terminated {
            agent: "user".to_owned()
        }
    );
}

#[tokio::test]
async fn removal_reaches_both_sides() {
    let server = ScriptedServer::start([
        Reply::tool_call("double", json!({"x": 1})),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = model_agent(&server);
    let mut proxy = UserProxyAgent::without_code("user");
    for name in ["double", "keep"] {
        register_function_pair(
            &mut assistant,
            &mut proxy,
            schema(name),
            FunctionImpl::rust(|_| Ok("ran".to_owned())),
        );
    }
    remove_function_pair(&mut assistant, &mut proxy, "double");
    assert_eq!(
        proxy.state().functions().names().collect::<Vec<_>>(),
        ["keep"]
    );
    let transcript = proxy.initiate_chat(&mut assistant, "go").await;
    let offered = &server.chat_requests()[0].body["tools"];
    assert_eq!(offered.as_array().map(Vec::len), Some(1));
    assert_eq!(offered[0]["function"]["name"], "keep");
    assert_eq!(
        transcript.entries[2].message.tool_responses[0].content,
        "Error: Function double not found."
    );
}

#[test]
fn install_makes_a_set_the_learned_functions_of_a_pair() {
    let mut assistant = ConversableAgent::new("assistant");
    let mut proxy = ConversableAgent::new("user");
    let learned = |name: &str, body: &str| {
        LearnedFunction::new(name, format!("def {name}(x):\n    return {body}\n")).with_parameters(
            serde_json::json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
        )
    };
    register_function_pair(
        &mut assistant,
        &mut proxy,
        schema("rust_tool"),
        FunctionImpl::rust(|_| Ok("ran".to_owned())),
    );
    let first = FunctionSet::new([learned("double", "2 * x"), learned("stale", "x")]);
    install(&mut assistant, &mut proxy, &first).expect("allowlisted");
    let second = FunctionSet::new([learned("double", "x + x"), learned("triple", "3 * x")]);
    install(&mut assistant, &mut proxy, &second).expect("allowlisted");
    let offered: Vec<&str> = assistant
        .state()
        .signatures()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(offered, ["rust_tool", "double", "triple"]);
    assert_eq!(
        proxy.state().functions().names().collect::<Vec<_>>(),
        ["double", "rust_tool", "triple"]
    );
    assert!(matches!(
        proxy.state().functions().get("double"),
        Some(FunctionImpl::Python(function)) if function.code.contains("x + x")
    ));

    let refused = FunctionSet::new([learned("net", "x").with_packages(["requests"])]);
    let error = install(&mut assistant, &mut proxy, &refused).expect_err("off the allowlist");
    assert!(error.to_string().contains("`requests`"), "{error}");
    assert_eq!(
        proxy.state().functions().learned_names().count(),
        2,
        "nothing changed"
    );
}

#[test]
fn signature_updates_add_replace_remove() {
    let mut agent = ConversableAgent::new("assistant");
    agent.update_function_signature(schema("f"));
    let mut replacement = schema("f");
    replacement.description = Some("new".to_owned());
    agent.update_function_signature(replacement);
    assert_eq!(agent.state().signatures().len(), 1);
    assert_eq!(
        agent.state().signatures()[0].description.as_deref(),
        Some("new")
    );
    assert!(!agent.remove_function_signature("g"));
    assert!(agent.remove_function_signature("f"));
    assert!(agent.state().signatures().is_empty());
}

#[test]
fn disallowed_packages_are_refused() {
    let refused = FunctionImpl::learned(
        LearnedFunction::new("f", "def f():\n    pass\n").with_packages(["requests"]),
    );
    assert!(refused.is_err_and(|error| error.to_string().contains("`requests`")));
}

#[test]
fn argument_leniency_as_in_ag2() {
    fn check(raw: &str, expected: Result<serde_json::Value, &str>) {
        let call = FunctionCall {
            name: "f".to_owned(),
            arguments: raw.to_owned(),
        };
        let parsed = parse_arguments(&call).map(serde_json::Value::Object);
        match expected {
            Ok(value) => assert_eq!(parsed, Ok(value), "{raw:?}"),
            Err(prefix) => assert!(
                parsed
                    .as_ref()
                    .is_err_and(|error| error.starts_with(prefix)),
                "{raw:?} gave {parsed:?}"
            ),
        }
    }
    check(
        "{\n\"code\": \"print(1)\nprint(2)\"\n}",
        Ok(json!({"code": "print(1)\nprint(2)"})),
    );
    check("{\"s\": \"a\tb\"}", Ok(json!({"s": "a\tb"})));
    check(
        "{\"q\": \"say \\\"hi\\\"\n\"}",
        Ok(json!({"q": "say \"hi\"\n"})),
    );
    check("", Ok(json!({})));
    check("{\"a\": ", Err("Error: EOF while parsing"));
    check("[1, 2]", Err("Error: expected a JSON object"));
    assert_eq!(lenient_json("{\n \"a\": 1\n}"), "{ \"a\": 1}");
}

#[tokio::test]
async fn rust_function_errors_and_panics_go_back_to_the_model() {
    let server = ScriptedServer::start([
        Reply::tool_calls([
            ("typed".to_owned(), json!({"x": "not a number"})),
            ("panics".to_owned(), json!({})),
        ]),
        Reply::text("TERMINATE"),
    ])
    .await;
    let mut assistant = model_agent(&server);
    let mut proxy = UserProxyAgent::without_code("user");
    #[derive(serde::Deserialize)]
    struct Args {
        x: i64,
    }
    proxy.register_function("typed", FunctionImpl::typed(|Args { x }: Args| Ok(x * 2)));
    proxy.register_function("panics", FunctionImpl::rust(|_| panic!("boom")));
    let transcript = proxy.initiate_chat(&mut assistant, "go").await;
    let responses = &transcript.entries[2].message.tool_responses;
    assert!(
        responses[0]
            .content
            .starts_with("Error: invalid arguments: invalid type: string \"not a number\""),
        "{}",
        responses[0].content
    );
    assert_eq!(responses[1].content, "Error: the function panicked: boom");
    assert_eq!(transcript.totals.failed_executions, 2);
}
