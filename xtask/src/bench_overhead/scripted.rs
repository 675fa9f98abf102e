//! The scripted model both runs talk to: an assistant that runs one sympy cell and
//! then gives the reference answer, and an optimizer that adds a new function with
//! every action. One rule answers agentopt's and AG2's requests alike, deciding from
//! the request's content only (AG2 sends its optimizer tools and learned functions
//! its own way, but the prompt texts are the seed's on both sides).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentopt_testkit::{RecordedRequest, Reply};
use serde_json::{Value, json};

/// The reply the assistant gets once its answer is right (both runs).
const CORRECT_REPLY_MARK: &str = "Please reply me with TERMINATE";

/// What precedes the problem in the seed's first message (both runs).
const PROBLEM_MARK: &str = "Problem:";

/// Names of the functions the scripted optimizer adds: `helper_1`, `helper_2`, …
const FUNCTION_PREFIX: &str = "helper_";

/// The cell the assistant runs first: it imports sympy as MathChat code does, and
/// computes next to nothing, so what is measured is the infrastructure around it.
const CELL: &str = "from sympy import Rational\nprint(Rational(14, 2))";

/// The scripted model: answers after `latency`, knowing each problem's reference
/// answer (keyed by the problem text).
pub fn rule(
    answers: HashMap<String, String>,
    latency: Duration,
) -> impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static {
    let answers = Arc::new(answers);
    move |request| reply(&request.body, &answers).delayed(latency)
}

/// The reply to one chat request body.
pub fn reply(body: &Value, answers: &HashMap<String, String>) -> Reply {
    let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
    if offers_tool(body, "add_function") {
        return optimizer_action(messages);
    }
    let last = messages.last().map(text_of).unwrap_or_default();
    if last.contains(CORRECT_REPLY_MARK) {
        return Reply::text("TERMINATE");
    }
    let ran_code = messages
        .iter()
        .any(|message| message["role"] == "assistant" && text_of(message).contains("```python"));
    if ran_code {
        let answer = problem_text(messages)
            .and_then(|problem| answers.get(problem))
            .map_or("0", String::as_str);
        Reply::text(format!("So the answer is \\boxed{{{answer}}}."))
    } else {
        Reply::text(format!("Let me compute it.\n```python\n{CELL}\n```"))
    }
}

/// Whether the request offers a tool (or legacy function) named `name`.
fn offers_tool(body: &Value, name: &str) -> bool {
    let tools = body["tools"].as_array().into_iter().flatten();
    let tool_names = tools.filter_map(|tool| tool["function"]["name"].as_str());
    let functions = body["functions"].as_array().into_iter().flatten();
    let function_names = functions.filter_map(|function| function["name"].as_str());
    tool_names
        .chain(function_names)
        .any(|offered| offered == name)
}

/// Adds `helper_N`, N one more than the highest helper the prompt mentions.
fn optimizer_action(messages: &[Value]) -> Reply {
    let prompt: String = messages.iter().map(text_of).collect();
    let highest = prompt
        .match_indices(FUNCTION_PREFIX)
        .filter_map(|(at, _)| {
            let digits: String = prompt[at + FUNCTION_PREFIX.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(0);
    let name = format!("{FUNCTION_PREFIX}{}", highest + 1);
    Reply::tool_call(
        "add_function",
        json!({
            "name": name,
            "description": "Solve a linear equation a*x = b for x.",
            "arguments": json!({
                "a": {"type": "integer", "description": "coefficient"},
                "b": {"type": "integer", "description": "right-hand side"},
            })
            .to_string(),
            "packages": "sympy",
            "code": format!(
                "def {name}(a, b):\n    from sympy import Rational\n    return Rational(b, a)\n"
            ),
        }),
    )
}

/// The problem text of the seed's first message, as the data holds it.
fn problem_text(messages: &[Value]) -> Option<&str> {
    messages.iter().find_map(|message| {
        let text = text_of(message);
        text.rfind(PROBLEM_MARK)
            .filter(|_| message["role"] == "user")
            .map(|at| text[at + PROBLEM_MARK.len()..].trim())
    })
}

fn text_of(message: &Value) -> &str {
    message["content"].as_str().unwrap_or_default()
}
