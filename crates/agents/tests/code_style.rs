//! Learned functions offered for code: listed in the system message, defined in the
//! session, called from cells and counted; `tools` leaves AG2's request unchanged.

use agentopt_agents::{
    Execution, FunctionSet, FunctionStyle, LearnedFunction, Transcript, UserProxyAgent,
    code_functions_prompt, install_styled,
};
use agentopt_llm::CallStyle;
use agentopt_testkit::{Reply, ScriptedServer};
use serde_json::{Value, json};

use crate::{client, sessions};

fn double() -> LearnedFunction {
    let code = "FACTOR = 2\n\ndef double(x: int,\n           label: str = 'n') -> int:\n    return FACTOR * x\n";
    LearnedFunction::new("double", code)
        .with_description("Doubles an integer.")
        .with_parameters(json!({
            "type": "object",
            "properties": {"x": {"type": "integer"}, "label": {"type": "string"}},
            "required": ["x"]
        }))
}

/// Runs one chat with `double` installed in `style`; the transcript and the
/// requests the model got.
async fn converse(style: FunctionStyle, script: Vec<Reply>) -> (Transcript, Vec<Value>) {
    let server = ScriptedServer::start(script).await;
    let mut assistant = crate::assistant(client(&server, CallStyle::Tools));
    let mut proxy = UserProxyAgent::new("user", sessions());
    if let Err(error) = install_styled(
        &mut assistant,
        &mut proxy,
        &FunctionSet::new([double()]),
        style,
    ) {
        panic!("{error}");
    }
    let transcript = proxy.initiate_chat(&mut assistant, "Double 21.").await;
    let bodies = server
        .chat_requests()
        .into_iter()
        .map(|request| request.body)
        .collect();
    (transcript, bodies)
}

fn code_calls(transcript: &Transcript) -> Vec<Value> {
    transcript
        .entries
        .iter()
        .flat_map(|entry| &entry.work.executions)
        .filter_map(|execution| match execution {
            Execution::Code(code) => code.sandbox.as_ref(),
            Execution::Function(_) => None,
        })
        .map(|outcome| serde_json::to_value(&outcome.code_calls).unwrap_or_default())
        .collect()
}

#[test]
fn the_listing_shows_def_headers_and_descriptions() {
    let bare = LearnedFunction::new("bare", "x = 1").with_description(" No def. ");
    assert_eq!(
        code_functions_prompt(&[double(), bare]),
        "The following Python functions are already defined in the Python session that \
         runs your ```python code blocks. You can call them from your code like any Python \
         function (each returns its result; print it to see it):\n\
         - double(x: int, label: str = 'n') -> int: Doubles an integer.\n\
         - bare(...): No def."
    );
    assert_eq!(code_functions_prompt(&[]), "");
}

#[test]
fn styles_parse_and_print() {
    for style in FunctionStyle::ALL {
        assert_eq!(style.to_string().parse::<FunctionStyle>(), Ok(style));
    }
    assert!("json".parse::<FunctionStyle>().is_err());
    assert_eq!(FunctionStyle::default(), FunctionStyle::Tools);
}

#[tokio::test]
async fn code_style_defines_lists_and_counts_the_functions() {
    let (transcript, bodies) = converse(
        FunctionStyle::Code,
        vec![
            Reply::text("```python\nprint(double(21))\nprint('FACTOR' in globals())\ntry:\n    double()\nexcept TypeError:\n    print('bad call')\n```"),
            Reply::text("TERMINATE"),
        ],
    )
    .await;
    let system = bodies[0]["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        system.starts_with("You are a helpful assistant.\n\nThe following Python functions")
            && system.ends_with("- double(x: int, label: str = 'n') -> int: Doubles an integer."),
        "{system}"
    );
    assert!(
        bodies[0].get("tools").is_none(),
        "no tools in code style: {}",
        bodies[0]
    );
    let output = transcript.entries[2].message.text();
    assert!(output.contains("42\nFalse\nbad call\n"), "{output}");
    assert_eq!(
        code_calls(&transcript),
        vec![json!({"double": {"calls": 2, "succeeded": 1}})]
    );
}

#[tokio::test]
async fn tools_style_sends_the_seed_request_and_defines_nothing() {
    let (transcript, bodies) = converse(
        FunctionStyle::Tools,
        vec![
            Reply::text("```python\nprint('double' in globals())\n```"),
            Reply::text("TERMINATE"),
        ],
    )
    .await;
    assert_eq!(
        bodies[0]["messages"][0]["content"],
        "You are a helpful assistant."
    );
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "double");
    assert!(transcript.entries[2].message.text().contains("False"));
    assert_eq!(code_calls(&transcript), vec![json!({})]);
}

#[tokio::test]
async fn both_style_offers_tools_and_code() {
    let (transcript, bodies) = converse(
        FunctionStyle::Both,
        vec![
            Reply::tool_call("double", json!({"x": 4})),
            Reply::text("```python\nprint(double(5))\n```"),
            Reply::text("TERMINATE"),
        ],
    )
    .await;
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "double");
    assert!(
        bodies[0]["messages"][0]["content"]
            .as_str()
            .is_some_and(|system| system.contains("- double(")),
        "{}",
        bodies[0]
    );
    assert!(transcript.entries[4].message.text().contains("10"));
    assert_eq!(
        code_calls(&transcript),
        vec![json!({"double": {"calls": 1, "succeeded": 1}})]
    );
}
