//! Lenient tool-call recovery: small local models often write a tool call as text
//! instead of emitting `tool_calls`. When the reply has no structured call, calls to
//! *offered* tools written as Qwen `<tool_call>{…}</tool_call>` tags or fenced
//! ```` ```json {"name": …, "arguments": …} ```` blocks are turned into proper calls.
//! Anything else (unknown names, other JSON, code blocks) stays content.

use serde_json::Value;

use crate::{CallStyle, ChatMessage, FinishReason, FunctionCall, ToolCall, ToolSchema};

/// A span of `content` that holds one recovered call.
struct Found {
    start: usize,
    end: usize,
    call: FunctionCall,
}

/// Recovers tool calls written as text in `message`, in `style`. Returns whether
/// the message changed; the recovered text spans are removed from the content.
pub fn recover_tool_calls(
    message: &mut ChatMessage,
    offered: &[ToolSchema],
    style: CallStyle,
) -> bool {
    if !message.tool_calls.is_empty() || message.function_call.is_some() || offered.is_empty() {
        return false;
    }
    let Some(content) = message.content.as_deref() else {
        return false;
    };
    let mut found = tagged(content);
    let blocks = fenced(content);
    let outside_tags: Vec<Found> = blocks
        .into_iter()
        .filter(|block| {
            !found
                .iter()
                .any(|tag| tag.start < block.end && block.start < tag.end)
        })
        .collect();
    found.extend(outside_tags);
    found.retain(|span| {
        offered
            .iter()
            .any(|tool| tool.function().name == span.call.name)
    });
    if found.is_empty() {
        return false;
    }
    found.sort_by_key(|span| span.start);
    let mut remaining = String::new();
    let mut cursor = 0;
    for span in &found {
        remaining.push_str(&content[cursor..span.start]);
        cursor = span.end;
    }
    remaining.push_str(&content[cursor..]);
    let remaining = remaining.trim();
    message.content = (!remaining.is_empty()).then(|| remaining.to_owned());
    let mut calls = found.into_iter().map(|span| span.call);
    match style {
        CallStyle::Tools => {
            message.tool_calls = calls
                .enumerate()
                .map(|(index, function)| ToolCall {
                    id: format!("call_recovered_{index}"),
                    function,
                })
                .collect();
        }
        CallStyle::Functions => message.function_call = calls.next(),
    }
    true
}

/// The finish reason a recovered message should report.
pub(crate) fn recovered_finish_reason(style: CallStyle) -> FinishReason {
    match style {
        CallStyle::Tools => FinishReason::ToolCalls,
        CallStyle::Functions => FinishReason::FunctionCall,
    }
}

/// Every `<tool_call>…</tool_call>` span of `text` whose inside is a call object.
fn tagged(text: &str) -> Vec<Found> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(offset) = text[search..].find(OPEN) {
        let start = search + offset;
        let inner_start = start + OPEN.len();
        let Some(close_offset) = text[inner_start..].find(CLOSE) else {
            break;
        };
        let end = inner_start + close_offset + CLOSE.len();
        if let Some(call) = parse_call(&text[inner_start..inner_start + close_offset]) {
            found.push(Found { start, end, call });
        }
        search = end;
    }
    found
}

/// Every fenced block of `text` tagged `json`, `tool_call` or nothing whose inside
/// is a call object. Blocks are walked in order, so a closing fence is never taken
/// for an opening one.
fn fenced(text: &str) -> Vec<Found> {
    const FENCE: &str = "```";
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(offset) = text[search..].find(FENCE) {
        let start = search + offset;
        let info_start = start + FENCE.len();
        let Some(newline) = text[info_start..].find('\n') else {
            break;
        };
        let info = text[info_start..info_start + newline].trim();
        let inner_start = info_start + newline + 1;
        let Some(close_offset) = text[inner_start..].find(FENCE) else {
            break;
        };
        let end = inner_start + close_offset + FENCE.len();
        if matches!(info, "json" | "tool_call" | "")
            && let Some(call) = parse_call(&text[inner_start..inner_start + close_offset])
        {
            found.push(Found { start, end, call });
        }
        search = end;
    }
    found
}

/// `{"name": N, "arguments": A}` (or `"parameters"`), where A is an object or a
/// string holding one.
fn parse_call(inner: &str) -> Option<FunctionCall> {
    let Value::Object(map) = serde_json::from_str::<Value>(inner.trim()).ok()? else {
        return None;
    };
    let name = map.get("name")?.as_str()?.to_owned();
    let arguments = match map.get("arguments").or_else(|| map.get("parameters")) {
        None => "{}".to_owned(),
        Some(Value::Object(object)) => Value::Object(object.clone()).to_string(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Value::Object(object).to_string(),
            _ => return None,
        },
        Some(_) => return None,
    };
    Some(FunctionCall { name, arguments })
}
