//! A local stand-in for the OpenAI Chat Completions API.
//!
//! It serves `POST /v1/chat/completions` on 127.0.0.1, records each request
//! body, and replies from a script of [`Reply`] values with bodies shaped
//! like OpenAI's: `chat.completion` objects with `call_...` tool call ids,
//! and `{"error": {...}}` errors. Requests the real API would reject (no
//! model, a tool call without its tool message, `tool_choice` without
//! tools, a wrong bearer key) get HTTP 400 or 401.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::Reply;
use crate::script::{Dialect, Server, estimate_tokens, random_id};

/// A running Chat Completions stand-in. Dropping it stops the server.
pub struct OpenAiStandin {
    server: Server,
}

impl OpenAiStandin {
    /// Starts a stand-in that accepts requests with or without a key.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_dialect(OpenAiDialect { api_key: None }).await
    }

    /// Starts a stand-in that replies with HTTP 401 unless the request has
    /// `Authorization: Bearer {api_key}`.
    pub async fn start_with_key(api_key: &str) -> anyhow::Result<Self> {
        let dialect = OpenAiDialect {
            api_key: Some(api_key.to_string()),
        };
        Self::start_with_dialect(dialect).await
    }

    async fn start_with_dialect(dialect: OpenAiDialect) -> anyhow::Result<Self> {
        let server = Server::start(dialect, "/v1/chat/completions").await?;
        Ok(Self { server })
    }

    /// Returns the base URL clients append `/chat/completions` to, ending
    /// in `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    /// Appends a reply to the script, which requests consume in order.
    pub fn push(&self, reply: Reply) {
        self.server.script.push(reply);
    }

    /// Sets the function that builds a reply from the request body when the
    /// script is empty.
    pub fn set_responder(&self, responder: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.server.script.set_responder(Arc::new(responder));
    }

    /// Returns every request body received so far, in order. A body that
    /// is not JSON is recorded as a JSON string.
    pub fn requests(&self) -> Vec<Value> {
        self.server.script.requests()
    }

    /// Waits until at least `count` requests have arrived and returns all of
    /// them. Fails after `timeout`.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        self.server.script.wait_for_requests(count, timeout).await
    }
}

/// Builds an OpenAI error body: `{"error": {"message", "type", "param",
/// "code"}}`.
///
/// A context overflow, for example, is
/// `error_body("invalid_request_error", Some("context_length_exceeded"), ..)`
/// sent with HTTP 400.
pub fn error_body(error_type: &str, code: Option<&str>, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": error_type,
            "param": null,
            "code": code,
        }
    })
}

struct OpenAiDialect {
    api_key: Option<String>,
}

impl Dialect for OpenAiDialect {
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(key) = &self.api_key else {
            return Ok(());
        };
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match sent {
            None => Err("missing API key: send it as 'Authorization: Bearer KEY'".to_string()),
            Some(value) if value == format!("Bearer {key}") => Ok(()),
            Some(_) => Err("invalid API key".to_string()),
        }
    }

    fn validate(&self, request: &Value) -> Result<(), String> {
        if !request.get("model").is_some_and(Value::is_string) {
            return Err("missing required parameter: 'model'".to_string());
        }
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .filter(|messages| !messages.is_empty())
            .ok_or("'messages' must be a non-empty array")?;
        let has_tools = request
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty());
        if request.get("tool_choice").is_some() && !has_tools {
            return Err("'tool_choice' is only allowed when 'tools' are given".to_string());
        }
        check_tool_messages(messages)
    }

    fn completion(&self, request: &Value, text: &str, tool_calls: &[(String, String)]) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
            "refusal": null,
        });
        if !tool_calls.is_empty() {
            message["tool_calls"] = tool_calls.iter().map(tool_call).collect();
        }

        let prompt_tokens = estimate_tokens(&request.to_string());
        let completion_tokens = estimate_tokens(text)
            + tool_calls
                .iter()
                .map(|(name, arguments)| estimate_tokens(name) + estimate_tokens(arguments))
                .sum::<u64>();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());

        json!({
            "id": random_id("chatcmpl-"),
            "object": "chat.completion",
            "created": created,
            "model": request["model"],
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": if tool_calls.is_empty() { "stop" } else { "tool_calls" },
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        })
    }

    fn error_body(&self, status: StatusCode, message: &str) -> Value {
        let (error_type, code) = match status.as_u16() {
            401 => ("invalid_request_error", Some("invalid_api_key")),
            404 => ("invalid_request_error", Some("unknown_url")),
            429 => ("requests", Some("rate_limit_exceeded")),
            500..=599 => ("server_error", None),
            _ => ("invalid_request_error", None),
        };
        error_body(error_type, code, message)
    }
}

fn tool_call((name, arguments): &(String, String)) -> Value {
    json!({
        "id": random_id("call_"),
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    })
}

/// Checks, as the real API does, that a `tool` message with its id follows
/// every assistant tool call before any other message, and that every
/// `tool` message refers to such a call.
fn check_tool_messages(messages: &[Value]) -> Result<(), String> {
    let mut open_calls: HashSet<&str> = HashSet::new();

    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "tool" {
            let id = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !open_calls.remove(id) {
                return Err(format!(
                    "messages[{index}]: a 'tool' message must answer a tool call of the \
                     preceding assistant message, but '{id}' is not one"
                ));
            }
            continue;
        }

        if let Some(id) = open_calls.iter().next() {
            return Err(format!(
                "messages[{index}]: the tool call '{id}' has no 'tool' message answering it"
            ));
        }
        if !matches!(role, "system" | "developer" | "user" | "assistant") {
            return Err(format!("messages[{index}]: invalid role '{role}'"));
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            open_calls.extend(calls.iter().filter_map(|call| call["id"].as_str()));
        }
    }

    match open_calls.iter().next() {
        Some(id) => Err(format!(
            "the tool call '{id}' has no 'tool' message answering it"
        )),
        None => Ok(()),
    }
}
