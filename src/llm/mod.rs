//! Language model backends behind one trait.
//!
//! The agent loop ([`crate::agent::runner`]) talks to a model only through
//! [`LlmBackend::complete`]: it sends the conversation so far (a system
//! prompt, user turns, assistant turns with tool calls, and tool results)
//! plus the tools on offer, and gets back either text, tool calls, or both.
//! Three backends implement the trait: [`offline`] (deterministic, no
//! network), [`openai`] (Chat Completions, also Ollama, vLLM and llama.cpp)
//! and [`anthropic`] (the Messages API). Retries live in [`retry`], so every
//! backend gets the same policy.

pub mod anthropic;
mod http;
pub mod offline;
pub mod openai;
pub mod retry;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A tool as offered to a model: its name, what it does, and a JSON Schema
/// for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// One tool call requested by a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id that the matching tool result must echo.
    pub id: String,
    pub name: String,
    /// Arguments exactly as the model sent them: JSON text that may be
    /// invalid, so the loop can report the problem back to the model.
    pub arguments: String,
}

/// One turn of the conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    User {
        text: String,
    },
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        name: String,
        content: String,
        is_error: bool,
    },
}

/// Whether the model may call tools in this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides between calling tools and answering.
    Auto,
    /// The model must answer in text; tools stay listed so earlier tool
    /// turns in the conversation remain valid for the provider.
    None,
}

/// A request for the next assistant turn.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    /// Upper bound on output tokens for this turn.
    pub max_tokens: u32,
}

/// Token counts reported by the provider for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// The model's next turn: text, tool calls, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
}

/// Failures of a model request, split by what the caller does about them.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the model provider rate-limited the request")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model provider failed with HTTP {status}")]
    Server {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("the model request timed out after {0:?}")]
    Timeout(Duration),
    #[error("could not reach the model provider: {0}")]
    Transport(String),
    #[error("the conversation is too long for the model: {0}")]
    ContextTooLong(String),
    #[error("the model provider rejected the request with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("the model provider sent a malformed response: {0}")]
    BadResponse(String),
}

impl LlmError {
    /// Reports whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout(_)
                | LlmError::Transport(_)
                // A garbled body (from a proxy, or a truncated stream) is
                // usually not repeated on the next request.
                | LlmError::BadResponse(_)
        )
    }

    /// Returns the wait the provider asked for, if it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } | LlmError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// A chat model that can call tools.
#[async_trait]
pub trait LlmBackend: Send + Sync {
    /// Backend kind as configured: `offline`, `openai` or `anthropic`.
    fn name(&self) -> &'static str;

    /// Model name recorded with each invocation.
    fn model(&self) -> &str;

    /// Sends one request and returns the model's next turn. Implementations
    /// make a single attempt; [`retry`] decides whether to try again.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Parses an HTTP `Retry-After` header given in seconds (the form model
/// providers and Slack use); fractional seconds are accepted.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if seconds.is_finite() && seconds >= 0.0 {
        Some(Duration::from_secs_f64(seconds.min(3600.0)))
    } else {
        None
    }
}
