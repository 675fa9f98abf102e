//! A minimal HTTP/1.1 server loop: enough of the protocol for reqwest clients,
//! with full control over the socket so faults (reset, truncation) are real.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{RecordedRequest, Reply, State, lock};

const MAX_HEADERS: usize = 64;

/// Serves requests on one keep-alive connection until the client closes it or a
/// fault ends it.
pub(crate) async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::with_capacity(8192);
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        lock(&state.recorded).push(request.clone());
        let (reply, guard) = if request.is_chat() {
            (state.next_reply(&request), Some(state.enter()))
        } else {
            let fault = (request.method == "GET")
                .then(|| lock(&state.get_faults).pop_front())
                .flatten();
            (fault.unwrap_or_else(|| info_reply(&request, &state)), None)
        };
        let client_closes = request
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"));
        let keep_open = send(&mut stream, reply, &state).await;
        drop(guard);
        if !keep_open || client_closes {
            return;
        }
    }
}

fn info_reply(request: &RecordedRequest, state: &State) -> Reply {
    let body = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/props") if state.serve_props => json!({
            "n_ctx": state.n_ctx,
            "default_generation_settings": {"n_ctx": state.n_ctx},
            "model_path": format!("/models/{}.gguf", state.model),
        }),
        ("GET", "/health") => json!({"status": "ok"}),
        ("GET", path) if path.ends_with("/models") => {
            let mut model = json!({"id": state.model, "object": "model"});
            if state.report_n_ctx {
                model["max_model_len"] = json!(state.n_ctx);
            }
            json!({"object": "list", "data": [model]})
        }
        _ => {
            return Reply::Status {
                status: 404,
                body: format!(
                    "scripted server: no route for {} {}",
                    request.method, request.path
                ),
                retry_after: None,
            };
        }
    };
    Reply::RawOk(body.to_string())
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<RecordedRequest> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(header_len)) = parsed.parse(buffer) {
            let method = parsed.method.unwrap_or("GET").to_owned();
            let target = parsed.path.unwrap_or("/").to_owned();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|header| {
                    (
                        header.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(header.value).into_owned(),
                    )
                })
                .collect();
            let content_length = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buffer.len() < header_len + content_length {
                if !read_more(stream, buffer).await {
                    return None;
                }
            }
            let body_bytes: Vec<u8> = buffer
                .drain(..header_len + content_length)
                .skip(header_len)
                .collect();
            let raw_body = String::from_utf8_lossy(&body_bytes).into_owned();
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
                None => (target, None),
            };
            return Some(RecordedRequest {
                method,
                path,
                query,
                headers,
                body: serde_json::from_str(&raw_body).unwrap_or(Value::Null),
                raw_body,
            });
        }
        if !read_more(stream, buffer).await {
            return None;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0_u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn head(status: u16, content_length: usize, retry_after: Option<u64>) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n",
        reason(status)
    );
    if let Some(seconds) = retry_after {
        head.push_str(&format!("retry-after: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Writes one reply; returns whether the connection stays usable.
async fn send(stream: &mut TcpStream, reply: Reply, state: &State) -> bool {
    let mut reply = reply;
    loop {
        match reply {
            Reply::Delayed(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::Gated(gate, inner) => {
                gate.pass().await;
                reply = *inner;
            }
            Reply::Reset => {
                // Zero linger turns the close into a TCP RST.
                let _ = stream.set_zero_linger();
                return false;
            }
            Reply::Truncated(inner) => {
                let Some((status, body, retry_after)) = render(*inner, state) else {
                    return false;
                };
                let cut = body.len() / 2;
                let mut bytes = head(status, body.len(), retry_after).into_bytes();
                bytes.extend_from_slice(&body.as_bytes()[..cut]);
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
                return false;
            }
            other => {
                let Some((status, body, retry_after)) = render(other, state) else {
                    return false;
                };
                let mut bytes = head(status, body.len(), retry_after).into_bytes();
                bytes.extend_from_slice(body.as_bytes());
                return stream.write_all(&bytes).await.is_ok();
            }
        }
    }
}

fn render(reply: Reply, state: &State) -> Option<(u16, String, Option<u64>)> {
    match reply {
        Reply::Completion(completion) => Some((
            200,
            completion
                .to_json(&state.model, state.next_sequence())
                .to_string(),
            None,
        )),
        Reply::Status {
            status,
            body,
            retry_after,
        } => Some((status, body, retry_after)),
        Reply::RawOk(body) => Some((200, body, None)),
        // Faults wrapped in faults: the outer fault decides, the inner has no body.
        Reply::Truncated(_) | Reply::Reset | Reply::Delayed(..) | Reply::Gated(..) => None,
    }
}
