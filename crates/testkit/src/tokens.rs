//! The scripted server's context window, enforced with a real tokenizer: the
//! prompt of a chat request is counted with OpenAI's `cl100k_base` BPE (the
//! tables ship inside tiktoken-rs, no download) the way OpenAI counts chat
//! prompts, and a request whose prompt plus `max_tokens` exceeds the window is
//! refused with the error OpenAI (and vLLM) send. A prompt sized by an estimate
//! is then proven to fit, not assumed to.

use std::sync::OnceLock;

use serde_json::{Value, json};
use tiktoken_rs::CoreBPE;

/// Tokens OpenAI adds per chat message (role and separators).
const TOKENS_PER_MESSAGE: usize = 3;
/// Tokens that prime the reply (`<|start|>assistant<|message|>`).
const REPLY_PRIMING: usize = 3;

fn tokenizer() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    // The tables are compiled into tiktoken-rs: building them cannot fail.
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().expect("tiktoken-rs: cl100k_base tables"))
}

/// Tokens of `text` in `cl100k_base`.
pub fn count_tokens(text: &str) -> usize {
    tokenizer().encode_ordinary(text).len()
}

/// The prompt tokens of a chat-completions body: every message's content (text
/// parts of multi-part content too), name and tool calls, and the tool
/// definitions as JSON, with OpenAI's per-message overhead.
pub fn prompt_tokens(body: &Value) -> usize {
    let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let message_tokens: usize = messages
        .iter()
        .map(|message| {
            let content = match &message["content"] {
                Value::String(text) => count_tokens(text),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|part| part["text"].as_str())
                    .map(count_tokens)
                    .sum(),
                _ => 0,
            };
            let name = message["name"].as_str().map_or(0, count_tokens);
            let calls: usize = message["tool_calls"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .chain(message.get("function_call"))
                .map(|call| {
                    let function = call.get("function").unwrap_or(call);
                    function["name"].as_str().map_or(0, count_tokens)
                        + function["arguments"].as_str().map_or(0, count_tokens)
                })
                .sum();
            TOKENS_PER_MESSAGE + content + name + calls
        })
        .sum();
    let tools = ["tools", "functions", "response_format"]
        .iter()
        .filter_map(|field| body.get(*field))
        .filter(|value| !value.is_null())
        .map(|value| count_tokens(&value.to_string()))
        .sum::<usize>();
    message_tokens + tools + REPLY_PRIMING
}

/// The tokens the request asks to generate, if it says.
fn requested_completion(body: &Value) -> usize {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|field| body[*field].as_u64())
        .map_or(0, |tokens| usize::try_from(tokens).unwrap_or(usize::MAX))
}

/// OpenAI's 400 body when `body` does not fit `n_ctx`; `None` when it fits.
pub(crate) fn overflow(body: &Value, n_ctx: u32) -> Option<String> {
    let prompt = prompt_tokens(body);
    let completion = requested_completion(body);
    let window = n_ctx as usize;
    if prompt.saturating_add(completion) <= window {
        return None;
    }
    let message = format!(
        "This model's maximum context length is {window} tokens. However, you requested \
         {} tokens ({prompt} in the messages, {completion} in the completion). Please \
         reduce the length of the messages or completion.",
        prompt.saturating_add(completion)
    );
    Some(
        json!({"error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }})
        .to_string(),
    )
}
