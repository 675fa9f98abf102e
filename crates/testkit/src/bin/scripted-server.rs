//! `scripted-server SCRIPT.json [--log REQUESTS.jsonl]`: the scripted
//! OpenAI-compatible server as a process, for tests written in other languages (the
//! Python package's pytest suite).
//!
//! Prints its base URL (`http://127.0.0.1:PORT/v1`) as the first line of stdout and
//! serves until its stdin closes, so it ends with the process that started it. With
//! `--log`, each chat request is one JSON line `{"path", "query", "headers", "body"}`.
//!
//! The script is a JSON object:
//!
//! With `"report_context_window": false` the server reports no context window
//! (`/props` 404, no `max_model_len`), as most hosted APIs.
//!
//! ```json
//! {"model": "gpt-4", "n_ctx": 32768,
//!  "routes": [
//!    {"when": {"offers": "add_function"}, "replies": [{"tool_calls": [...]}, {"text": "TERMINATE"}]},
//!    {"when": {"last_contains": "Result of"}, "replies": [{"text": "\\boxed{42}"}], "repeat_last": true},
//!    {"replies": [{"text": "\\boxed{41}"}], "repeat_last": true}
//!  ]}
//! ```
//!
//! Each chat request is answered by the first route whose condition holds and which
//! still has a reply: `offers` (the request offers a tool or legacy function of that
//! name), `last_contains` (the last message's content contains the text), both, or
//! neither (always). A route hands out its replies in order; with `repeat_last` its
//! last reply answers every later match. No route left: HTTP 410. A reply is
//! `{"text": …}`, `{"tool_calls": [{"name", "arguments"}]}` (arguments a JSON value,
//! or a string sent as is), `{"function_call": {"name", "arguments"}}`, or
//! `{"status": N, "body": …}`; any of them with `"delay_ms": N` is sent after that
//! delay.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use agentopt_testkit::{
    Completion, DEFAULT_USAGE, RecordedRequest, Reply, ScriptedCall, ScriptedServer,
};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// When a route answers.
#[derive(Debug, Default)]
struct Condition {
    offers: Option<String>,
    last_contains: Option<String>,
}

impl Condition {
    fn holds(&self, body: &Value) -> bool {
        let offered = |name: &str| {
            let tools = body["tools"].as_array().into_iter().flatten();
            let functions = body["functions"].as_array().into_iter().flatten();
            tools
                .map(|tool| &tool["function"]["name"])
                .chain(functions.map(|function| &function["name"]))
                .any(|offered| offered.as_str() == Some(name))
        };
        let last_content = body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .and_then(|message| message["content"].as_str())
            .unwrap_or_default();
        self.offers.as_deref().is_none_or(offered)
            && self
                .last_contains
                .as_deref()
                .is_none_or(|text| last_content.contains(text))
    }
}

/// A condition and the replies it hands out.
#[derive(Debug)]
struct Route {
    when: Condition,
    replies: VecDeque<Reply>,
    repeat_last: bool,
}

impl Route {
    fn take(&mut self) -> Option<Reply> {
        if self.repeat_last && self.replies.len() == 1 {
            return self.replies.front().cloned();
        }
        self.replies.pop_front()
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let script_path = args
        .next()
        .ok_or("usage: scripted-server SCRIPT.json [--log REQUESTS.jsonl]")?;
    let log_path = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--log"), Some(path)) => Some(path),
        _ => return Err("usage: scripted-server SCRIPT.json [--log REQUESTS.jsonl]".to_owned()),
    };
    let text = std::fs::read_to_string(&script_path).map_err(|e| format!("{script_path}: {e}"))?;
    let script: Value = serde_json::from_str(&text).map_err(|e| format!("{script_path}: {e}"))?;
    let routes = parse_routes(&script).map_err(|e| format!("{script_path}: {e}"))?;
    let log = match log_path {
        Some(path) => Some(std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?),
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(serve(&script, routes, log));
    Ok(())
}

async fn serve(script: &Value, routes: Vec<Route>, log: Option<std::fs::File>) {
    let mut builder = ScriptedServer::builder();
    if let Some(model) = script["model"].as_str() {
        builder = builder.model(model);
    }
    if let Some(n_ctx) = script["n_ctx"].as_u64().and_then(|n| u32::try_from(n).ok()) {
        builder = builder.n_ctx(n_ctx);
    }
    if script["report_context_window"].as_bool() == Some(false) {
        builder = builder.without_context_window();
    }
    let routes = Mutex::new(routes);
    let log = Mutex::new(log);
    let server = builder
        .rule(move |request: &RecordedRequest| {
            if let Some(file) = log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                // A lost log line only weakens the caller's assertions; the reply
                // still goes out.
                let line = serde_json::json!({
                    "path": request.path,
                    "query": request.query,
                    "headers": request.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "body": request.body,
                });
                let _ = writeln!(file, "{line}");
            }
            let mut routes = routes.lock().unwrap_or_else(|e| e.into_inner());
            routes
                .iter_mut()
                .filter(|route| route.when.holds(&request.body))
                .find_map(Route::take)
                .unwrap_or_else(|| Reply::Status {
                    status: 410,
                    body: "scripted server: no route has a reply left for this request".to_owned(),
                    retry_after: None,
                })
        })
        .await;
    println!("{}", server.base_url());
    let _ = std::io::stdout().flush();
    // Serve until whoever started us closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
}

fn parse_routes(script: &Value) -> Result<Vec<Route>, String> {
    let routes = script["routes"]
        .as_array()
        .ok_or("`routes`: expected a list")?;
    routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let at = |field: &str| format!("routes[{index}].{field}");
            let text = |field: &str| route["when"][field].as_str().map(str::to_owned);
            let replies = route["replies"]
                .as_array()
                .ok_or_else(|| format!("{}: expected a list", at("replies")))?
                .iter()
                .enumerate()
                .map(|(number, reply)| {
                    parse_reply(reply).map_err(|e| format!("{}[{number}]: {e}", at("replies")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Route {
                when: Condition {
                    offers: text("offers"),
                    last_contains: text("last_contains"),
                },
                replies,
                repeat_last: route["repeat_last"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

fn parse_call(call: &Value) -> Result<ScriptedCall, String> {
    let name = call["name"].as_str().ok_or("`name`: expected a string")?;
    let arguments = match &call["arguments"] {
        Value::String(raw) => raw.clone(),
        Value::Null => "{}".to_owned(),
        value => value.to_string(),
    };
    Ok(ScriptedCall {
        name: name.to_owned(),
        arguments,
    })
}

fn parse_reply(reply: &Value) -> Result<Reply, String> {
    let parsed = parse_undelayed_reply(reply)?;
    Ok(match reply["delay_ms"].as_u64() {
        Some(delay) => parsed.delayed(std::time::Duration::from_millis(delay)),
        None => parsed,
    })
}

fn parse_undelayed_reply(reply: &Value) -> Result<Reply, String> {
    if let Some(status) = reply["status"].as_u64() {
        return Ok(Reply::Status {
            status: u16::try_from(status).map_err(|_| "`status`: not an HTTP status")?,
            body: reply["body"].as_str().unwrap_or_default().to_owned(),
            retry_after: None,
        });
    }
    let tool_calls = match reply["tool_calls"].as_array() {
        Some(calls) => calls.iter().map(parse_call).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let function_call = match &reply["function_call"] {
        Value::Null => None,
        call => Some(parse_call(call)?),
    };
    let content = reply["text"].as_str().map(str::to_owned);
    if content.is_none() && tool_calls.is_empty() && function_call.is_none() {
        return Err("expected `text`, `tool_calls`, `function_call` or `status`".to_owned());
    }
    Ok(Reply::Completion(Completion {
        content,
        tool_calls,
        function_call,
        finish_reason: None,
        usage: Some(DEFAULT_USAGE),
    }))
}
