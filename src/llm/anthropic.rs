//! The Anthropic Messages API backend.
//!
//! It speaks `POST {base_url}/v1/messages`. The Messages API differs from
//! Chat Completions in three ways that shape this file: the system prompt
//! is a top-level field, a turn is a list of content blocks (`text`,
//! `tool_use`, `tool_result`), and tool results travel in a user turn.
//! Consecutive turns of the same role are merged into one, because the API
//! expects user and assistant turns to alternate.

use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{field, instrument};

use super::http::{self, ProviderError};
use super::{
    ChatRequest, ChatResponse, LlmBackend, LlmError, Message, ToolCall, ToolChoice, ToolSpec, Usage,
};
use crate::config::{AnthropicSettings, Secret};

/// Messages API version this client is written against.
const API_VERSION: &str = "2023-06-01";

/// A Messages API client for one model.
pub struct AnthropicBackend {
    client: reqwest::Client,
    endpoint: Url,
    /// The `x-api-key` header, marked sensitive so HTTP logs hide it.
    api_key_header: HeaderValue,
    api_key: Secret,
    model: String,
    timeout: Duration,
}

impl AnthropicBackend {
    /// Builds the client. `timeout` bounds each request.
    ///
    /// Fails when `ANTHROPIC_API_KEY` is missing or cannot be sent in an
    /// HTTP header, or when `ANTHROPIC_BASE_URL` is not a URL.
    pub fn new(settings: &AnthropicSettings, timeout: Duration) -> anyhow::Result<Self> {
        let Some(api_key) = settings.api_key.clone() else {
            bail!(
                "missing ANTHROPIC_API_KEY: set it to use the anthropic backend, \
                 or choose another AGENTDESK_BACKEND"
            );
        };
        let Ok(mut api_key_header) = HeaderValue::from_str(api_key.expose()) else {
            bail!(
                "invalid ANTHROPIC_API_KEY: it contains characters not allowed in an HTTP header"
            );
        };
        api_key_header.set_sensitive(true);

        let base_url = settings.base_url.trim_end_matches('/');
        let endpoint = Url::parse(&format!("{base_url}/v1/messages"))
            .with_context(|| format!("invalid ANTHROPIC_BASE_URL {:?}", settings.base_url))?;

        Ok(Self {
            client: http::build_client(timeout)?,
            endpoint,
            api_key_header,
            api_key,
            model: settings.model.clone(),
            timeout,
        })
    }

    async fn send(&self, body: &MessagesRequest<'_>) -> Result<ChatResponse, LlmError> {
        let request = self
            .client
            .post(self.endpoint.clone())
            .header("x-api-key", self.api_key_header.clone())
            .header("anthropic-version", API_VERSION)
            .json(body);

        let api_key = Some(&self.api_key);
        let response = http::send(request, self.timeout, api_key).await?;
        if !response.status.is_success() {
            let error = read_error(&response.body, api_key);
            return Err(http::status_error(
                response.status,
                &response.headers,
                error,
            ));
        }

        let message: MessagesResponse = http::parse_body(&response.body, api_key)?;
        Ok(message.into_chat_response())
    }
}

#[async_trait]
impl LlmBackend for AnthropicBackend {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    #[instrument(
        name = "llm_request",
        skip_all,
        fields(
            backend = "anthropic",
            model = %self.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            tokens_in = field::Empty,
            tokens_out = field::Empty,
            latency_ms = field::Empty,
        )
    )]
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = MessagesRequest::new(&self.model, request);
        http::record_outcome(self.send(&body)).await
    }
}

/// Reads Anthropic's `{"type": "error", "error": {"type", "message"}}` body.
fn read_error(body: &[u8], api_key: Option<&Secret>) -> ProviderError {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("error").cloned());
    let kind = error
        .as_ref()
        .and_then(|error| error.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error
        .as_ref()
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .map(|text| http::clean_message(text, api_key))
        .unwrap_or_else(|| http::body_excerpt(body, api_key));

    // A prompt over the context window is an `invalid_request_error` whose
    // message starts "prompt is too long". A body over the request size limit
    // is a 413 `request_too_large`. Both call for a shorter conversation.
    let is_context_too_long = (kind == "invalid_request_error"
        && message.to_ascii_lowercase().contains("prompt is too long"))
        || kind == "request_too_large";

    ProviderError {
        message,
        is_context_too_long,
    }
}

/// Request body of `POST /v1/messages`.
#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    system: &'a str,
    messages: Vec<RequestMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<RequestTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<RequestToolChoice>,
}

#[derive(Serialize)]
struct RequestMessage<'a> {
    role: Role,
    content: Vec<RequestBlock<'a>>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RequestBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        is_error: bool,
    },
}

#[derive(Serialize)]
struct RequestTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

#[derive(Serialize)]
struct RequestToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> MessagesRequest<'a> {
    fn new(model: &'a str, request: &'a ChatRequest) -> Self {
        let mut messages: Vec<RequestMessage> = Vec::with_capacity(request.messages.len());
        for message in &request.messages {
            let (role, blocks) = content_blocks(message);
            append_turn(&mut messages, role, blocks);
        }

        let tools: Vec<RequestTool> = request.tools.iter().map(RequestTool::from_spec).collect();
        let tool_choice = (!tools.is_empty()).then_some(RequestToolChoice {
            kind: match request.tool_choice {
                ToolChoice::Auto => "auto",
                ToolChoice::None => "none",
            },
        });

        Self {
            model,
            max_tokens: request.max_tokens,
            system: &request.system,
            messages,
            tools,
            tool_choice,
        }
    }
}

/// Returns the role and content blocks one conversation message becomes.
fn content_blocks(message: &Message) -> (Role, Vec<RequestBlock<'_>>) {
    match message {
        Message::User { text } => (Role::User, vec![RequestBlock::Text { text }]),
        Message::Assistant { text, tool_calls } => {
            let mut blocks = Vec::with_capacity(tool_calls.len() + 1);
            // The API rejects empty text blocks.
            if !text.is_empty() {
                blocks.push(RequestBlock::Text { text });
            }
            blocks.extend(tool_calls.iter().map(tool_use_block));
            (Role::Assistant, blocks)
        }
        Message::ToolResult {
            call_id,
            content,
            is_error,
            ..
        } => (
            Role::User,
            vec![RequestBlock::ToolResult {
                tool_use_id: call_id,
                content,
                is_error: *is_error,
            }],
        ),
    }
}

/// Builds a `tool_use` block. Its `input` must be an object, so arguments
/// that are not a JSON object (the model's invalid output, already reported
/// to it by the tool result) are sent as `{}`.
fn tool_use_block(call: &ToolCall) -> RequestBlock<'_> {
    let input = match serde_json::from_str::<Value>(&call.arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::Object(serde_json::Map::new()),
    };
    RequestBlock::ToolUse {
        id: &call.id,
        name: &call.name,
        input,
    }
}

/// Adds blocks to the conversation, joining them to the last turn when it
/// has the same role. A turn with no blocks is left out.
fn append_turn<'a>(
    messages: &mut Vec<RequestMessage<'a>>,
    role: Role,
    blocks: Vec<RequestBlock<'a>>,
) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(RequestMessage {
            role,
            content: blocks,
        }),
    }
}

impl<'a> RequestTool<'a> {
    fn from_spec(spec: &'a ToolSpec) -> Self {
        Self {
            name: &spec.name,
            description: &spec.description,
            input_schema: &spec.input_schema,
        }
    }
}

/// The parts of a Messages API response the agent uses.
#[derive(Deserialize)]
struct MessagesResponse {
    content: Vec<ResponseBlock>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Blocks the agent does not use, such as `thinking`.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl MessagesResponse {
    fn into_chat_response(self) -> ChatResponse {
        let mut response = ChatResponse::default();
        for block in self.content {
            match block {
                ResponseBlock::Text { text } => response.text.push_str(&text),
                ResponseBlock::ToolUse { id, name, input } => response.tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: input.to_string(),
                }),
                ResponseBlock::Other => {}
            }
        }

        if let Some(usage) = self.usage {
            response.usage = Usage {
                input_tokens: usage.input_tokens.unwrap_or(0),
                output_tokens: usage.output_tokens.unwrap_or(0),
            };
        }
        response
    }
}
