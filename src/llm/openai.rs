//! The OpenAI Chat Completions backend.
//!
//! It speaks `POST {base_url}/chat/completions` with function tools, which
//! OpenAI and the OpenAI-compatible servers (Ollama, vLLM, llama.cpp) accept.
//! A tool call's `arguments` is JSON text written by the model. It is passed
//! on unparsed, so the agent loop can tell the model when it is invalid.

use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{field, instrument};

use super::http::{self, ProviderError};
use super::{
    ChatRequest, ChatResponse, LlmBackend, LlmError, Message, ToolCall, ToolChoice, ToolSpec, Usage,
};
use crate::config::{OpenAiSettings, Secret};

/// A Chat Completions client for one model.
pub struct OpenAiBackend {
    client: reqwest::Client,
    endpoint: Url,
    /// `Bearer KEY`, marked sensitive so HTTP logs hide it. `None` when no
    /// key is configured, as local servers often need none.
    authorization: Option<HeaderValue>,
    api_key: Option<Secret>,
    model: String,
    timeout: Duration,
}

impl OpenAiBackend {
    /// Builds the client. `timeout` bounds each request.
    ///
    /// Fails when `OPENAI_BASE_URL` is not a URL or the key cannot be sent
    /// in an HTTP header.
    pub fn new(settings: &OpenAiSettings, timeout: Duration) -> anyhow::Result<Self> {
        let base_url = settings.base_url.trim_end_matches('/');
        let endpoint = Url::parse(&format!("{base_url}/chat/completions"))
            .with_context(|| format!("invalid OPENAI_BASE_URL {:?}", settings.base_url))?;

        let authorization = match &settings.api_key {
            Some(key) => Some(bearer_header(key)?),
            // Local servers (Ollama, vLLM, llama.cpp) need no key; OpenAI does.
            None if endpoint.host_str() == Some("api.openai.com") => anyhow::bail!(
                "OPENAI_API_KEY is not set: set it, or set OPENAI_BASE_URL to a local \
                 OpenAI-compatible server that needs no key"
            ),
            None => None,
        };

        Ok(Self {
            client: http::build_client(timeout)?,
            endpoint,
            authorization,
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            timeout,
        })
    }

    async fn send(&self, body: &CompletionRequest<'_>) -> Result<ChatResponse, LlmError> {
        let mut request = self.client.post(self.endpoint.clone()).json(body);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }

        let api_key = self.api_key.as_ref();
        let response = http::send(request, self.timeout, api_key).await?;
        if !response.status.is_success() {
            let error = read_error(&response.body, api_key);
            return Err(http::status_error(
                response.status,
                &response.headers,
                error,
            ));
        }

        let completion: CompletionResponse = http::parse_body(&response.body, api_key)?;
        completion.into_chat_response()
    }
}

#[async_trait]
impl LlmBackend for OpenAiBackend {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    #[instrument(
        name = "llm_request",
        skip_all,
        fields(
            backend = "openai",
            model = %self.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            tokens_in = field::Empty,
            tokens_out = field::Empty,
            latency_ms = field::Empty,
        )
    )]
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = CompletionRequest::new(&self.model, request);
        http::record_outcome(self.send(&body)).await
    }
}

fn bearer_header(key: &Secret) -> anyhow::Result<HeaderValue> {
    let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) else {
        bail!("invalid OPENAI_API_KEY: it contains characters not allowed in an HTTP header");
    };
    value.set_sensitive(true);
    Ok(value)
}

/// Reads OpenAI's `{"error": {"message", "type", "code"}}` body. A
/// `message` at the top level and `{"error": "text"}`, shapes that some
/// compatible servers send, are read too.
fn read_error(body: &[u8], api_key: Option<&Secret>) -> ProviderError {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ProviderError {
            message: http::body_excerpt(body, api_key),
            is_context_too_long: false,
        };
    };

    let error = value.get("error").unwrap_or(&value);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .map(|text| http::clean_message(text, api_key))
        .unwrap_or_else(|| http::body_excerpt(body, api_key));

    let code = error.get("code").and_then(Value::as_str);
    let kind = error.get("type").and_then(Value::as_str);
    // OpenAI sends the code. vLLM sends only the message ("This model's
    // maximum context length is ..."), and llama.cpp's server the type.
    let is_context_too_long = code == Some("context_length_exceeded")
        || kind == Some("exceed_context_size_error")
        || message
            .to_ascii_lowercase()
            .contains("maximum context length");

    ProviderError {
        message,
        is_context_too_long,
    }
}

/// Request body of `POST /chat/completions`.
#[derive(Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    messages: Vec<RequestMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<RequestTool<'a>>,
    /// Only sent with tools: OpenAI rejects `tool_choice` without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    // NOTE: OpenAI's reasoning models (o1 and later) reject `max_tokens` and
    // expect `max_completion_tokens`. Compatible servers read `max_tokens`,
    // so that is what is sent.
    max_tokens: u32,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum RequestMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` when the turn is only tool calls.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<RequestToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
struct RequestToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: RequestFunctionCall<'a>,
}

#[derive(Serialize)]
struct RequestFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct RequestTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: RequestFunction<'a>,
}

#[derive(Serialize)]
struct RequestFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl<'a> CompletionRequest<'a> {
    fn new(model: &'a str, request: &'a ChatRequest) -> Self {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(RequestMessage::System {
                content: &request.system,
            });
        }
        messages.extend(request.messages.iter().map(RequestMessage::from_message));

        let tools: Vec<RequestTool> = request.tools.iter().map(RequestTool::from_spec).collect();
        let tool_choice = match (tools.is_empty(), request.tool_choice) {
            (true, _) => None,
            (false, ToolChoice::Auto) => Some("auto"),
            (false, ToolChoice::None) => Some("none"),
        };

        Self {
            model,
            messages,
            tools,
            tool_choice,
            max_tokens: request.max_tokens,
        }
    }
}

impl<'a> RequestMessage<'a> {
    fn from_message(message: &'a Message) -> Self {
        match message {
            Message::User { text } => Self::User { content: text },
            Message::Assistant { text, tool_calls } => Self::Assistant {
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(text.as_str()),
                tool_calls: tool_calls.iter().map(RequestToolCall::from_call).collect(),
            },
            Message::ToolResult {
                call_id, content, ..
            } => Self::Tool {
                tool_call_id: call_id,
                content,
            },
        }
    }
}

impl<'a> RequestToolCall<'a> {
    fn from_call(call: &'a ToolCall) -> Self {
        Self {
            id: &call.id,
            kind: "function",
            function: RequestFunctionCall {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

impl<'a> RequestTool<'a> {
    fn from_spec(spec: &'a ToolSpec) -> Self {
        Self {
            kind: "function",
            function: RequestFunction {
                name: &spec.name,
                description: &spec.description,
                parameters: &spec.input_schema,
            },
        }
    }
}

/// The parts of a Chat Completions response the agent uses.
#[derive(Deserialize)]
struct CompletionResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ResponseMessage,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Deserialize)]
struct ResponseToolCall {
    id: String,
    function: ResponseFunction,
}

#[derive(Deserialize)]
struct ResponseFunction {
    name: String,
    arguments: Arguments,
}

/// Tool call arguments as sent: OpenAI sends JSON text, but some
/// compatible servers send the object itself.
#[derive(Deserialize)]
#[serde(untagged)]
enum Arguments {
    Text(String),
    Object(serde_json::Map<String, Value>),
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl CompletionResponse {
    fn into_chat_response(self) -> Result<ChatResponse, LlmError> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(LlmError::BadResponse(
                "the response has no choices".to_string(),
            ));
        };

        let tool_calls = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| ToolCall {
                id: call.id,
                name: call.function.name,
                arguments: match call.function.arguments {
                    Arguments::Text(text) => text,
                    Arguments::Object(object) => Value::Object(object).to_string(),
                },
            })
            .collect();

        let usage = self.usage.map_or_else(Usage::default, |usage| Usage {
            input_tokens: usage.prompt_tokens.unwrap_or(0),
            output_tokens: usage.completion_tokens.unwrap_or(0),
        });

        Ok(ChatResponse {
            text: choice.message.content.unwrap_or_default(),
            tool_calls,
            usage,
        })
    }
}
