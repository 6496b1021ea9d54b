//! A local stand-in for the Anthropic Messages API.
//!
//! It serves `POST /v1/messages` on 127.0.0.1, records each request body,
//! and replies from a script of [`Reply`] values with bodies shaped like
//! Anthropic's: `message` objects with `text` and `tool_use` content blocks,
//! and `{"type": "error", "error": {...}}` errors. Requests the real API
//! would reject get HTTP 400 (no model or `max_tokens`, a `tool_use` not
//! answered by a `tool_result` in the next turn) or HTTP 401 (no
//! `x-api-key`, a wrong key, or no `anthropic-version`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::Reply;
use crate::script::{Dialect, Server, estimate_tokens, random_id};

/// A running Messages API stand-in. Dropping it stops the server.
pub struct AnthropicStandin {
    server: Server,
}

impl AnthropicStandin {
    /// Starts a stand-in that accepts any non-empty `x-api-key`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_dialect(AnthropicDialect { api_key: None }).await
    }

    /// Starts a stand-in that replies with HTTP 401 unless `x-api-key` is
    /// `api_key`.
    pub async fn start_with_key(api_key: &str) -> anyhow::Result<Self> {
        let dialect = AnthropicDialect {
            api_key: Some(api_key.to_string()),
        };
        Self::start_with_dialect(dialect).await
    }

    async fn start_with_dialect(dialect: AnthropicDialect) -> anyhow::Result<Self> {
        let server = Server::start(dialect, "/v1/messages").await?;
        Ok(Self { server })
    }

    /// Returns the base URL clients append `/v1/messages` to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
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

/// Builds an Anthropic error body:
/// `{"type": "error", "error": {"type", "message"}, "request_id"}`.
///
/// A context overflow, for example, is HTTP 400 with
/// `error_body("invalid_request_error", "prompt is too long: ...")`, and an
/// overload is HTTP 529 with `error_body("overloaded_error", "Overloaded")`.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({
        "type": "error",
        "error": { "type": error_type, "message": message },
        "request_id": random_id("req_"),
    })
}

struct AnthropicDialect {
    api_key: Option<String>,
}

impl Dialect for AnthropicDialect {
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), String> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());

        let Some(sent) = header("x-api-key").filter(|key| !key.is_empty()) else {
            return Err("x-api-key header is required".to_string());
        };
        if self.api_key.as_deref().is_some_and(|key| key != sent) {
            return Err("invalid x-api-key".to_string());
        }
        if header("anthropic-version").is_none() {
            return Err("anthropic-version header is required".to_string());
        }
        Ok(())
    }

    fn validate(&self, request: &Value) -> Result<(), String> {
        if !request.get("model").is_some_and(Value::is_string) {
            return Err("model: Field required".to_string());
        }
        if !request.get("max_tokens").is_some_and(Value::is_u64) {
            return Err("max_tokens: Field required".to_string());
        }
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .filter(|messages| !messages.is_empty())
            .ok_or("messages: at least one message is required")?;
        if let Some(choice) = request.get("tool_choice") {
            let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
            if !matches!(kind, "auto" | "any" | "tool" | "none") {
                return Err(format!("tool_choice.type: invalid value '{kind}'"));
            }
        }
        check_tool_blocks(messages)
    }

    fn completion(&self, request: &Value, text: &str, tool_calls: &[(String, String)]) -> Value {
        let mut content = Vec::with_capacity(tool_calls.len() + 1);
        if !text.is_empty() {
            content.push(json!({ "type": "text", "text": text }));
        }
        content.extend(tool_calls.iter().map(tool_use_block));

        let output_tokens = estimate_tokens(text)
            + tool_calls
                .iter()
                .map(|(name, arguments)| estimate_tokens(name) + estimate_tokens(arguments))
                .sum::<u64>();

        json!({
            "id": random_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": if tool_calls.is_empty() { "end_turn" } else { "tool_use" },
            "stop_sequence": null,
            "usage": {
                "input_tokens": estimate_tokens(&request.to_string()),
                "output_tokens": output_tokens,
            },
        })
    }

    fn error_body(&self, status: StatusCode, message: &str) -> Value {
        let error_type = match status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        error_body(error_type, message)
    }
}

/// Builds a `tool_use` block. The real API always sends an object as
/// `input`. Arguments text that is not JSON is sent as a JSON string, so a
/// script can still imitate a model that wrote broken arguments.
fn tool_use_block((name, arguments): &(String, String)) -> Value {
    let input = serde_json::from_str::<Value>(arguments)
        .unwrap_or_else(|_| Value::String(arguments.clone()));
    json!({
        "type": "tool_use",
        "id": random_id("toolu_"),
        "name": name,
        "input": input,
    })
}

/// Checks that the turn after an assistant turn with `tool_use` blocks has
/// a `tool_result` block for each of them, and that every `tool_result`
/// refers to a `tool_use` of the turn before it.
fn check_tool_blocks(messages: &[Value]) -> Result<(), String> {
    let mut open_calls: HashSet<&str> = HashSet::new();

    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            return Err(format!("messages.{index}.role: invalid value '{role}'"));
        }
        let blocks = blocks_of(message);

        let results: HashSet<&str> = blocks_of_type(&blocks, "tool_result", "tool_use_id");
        if let Some(id) = results.difference(&open_calls).next() {
            return Err(format!(
                "messages.{index}: unexpected tool_use_id '{id}' in tool_result blocks: \
                 each tool_result must answer a tool_use block of the previous message"
            ));
        }
        if let Some(id) = open_calls.difference(&results).next() {
            return Err(format!(
                "messages.{index}: tool_use id '{id}' has no tool_result block immediately \
                 after it"
            ));
        }

        open_calls = blocks_of_type(&blocks, "tool_use", "id");
        if role == "user" && !open_calls.is_empty() {
            return Err(format!(
                "messages.{index}: tool_use blocks are only allowed in assistant messages"
            ));
        }
        if let Some(block) = blocks.iter().find(|block| {
            block["type"] == "tool_use" && !block.get("input").is_some_and(Value::is_object)
        }) {
            return Err(format!(
                "messages.{index}: tool_use input must be an object, got {}",
                block.get("input").unwrap_or(&Value::Null)
            ));
        }
    }

    match open_calls.iter().next() {
        Some(id) => Err(format!(
            "tool_use id '{id}' has no tool_result block immediately after it"
        )),
        None => Ok(()),
    }
}

/// Returns a message's content blocks, or none when the content is a plain
/// string.
fn blocks_of(message: &Value) -> Vec<&Value> {
    message
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().collect())
        .unwrap_or_default()
}

/// Collects the string field `field` of every block of type `kind`.
fn blocks_of_type<'a>(blocks: &[&'a Value], kind: &str, field: &str) -> HashSet<&'a str> {
    blocks
        .iter()
        .filter(|block| block["type"] == kind)
        .filter_map(|block| block.get(field).and_then(Value::as_str))
        .collect()
}
