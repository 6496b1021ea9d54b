//! HTTP plumbing shared by the [`super::openai`] and [`super::anthropic`]
//! backends: building the client, sending one request, turning transport
//! failures, error statuses and unreadable bodies into [`LlmError`], and
//! recording each request's outcome in its tracing span.
//!
//! Each backend reads its own error body into a [`ProviderError`]; the
//! mapping from status code to error variant lives here, so both providers
//! follow the same rules.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::debug;

use super::{ChatResponse, LlmError, parse_retry_after};
use crate::config::Secret;

/// Maximum length, in characters, of a provider message or body excerpt
/// kept in an [`LlmError`]. Provider messages are a sentence or two, and
/// longer text is usually an HTML page from a proxy in front of the provider.
const MAX_MESSAGE_CHARS: usize = 300;

/// Upper bound for a `retry-after-ms` wait, matching the one-hour cap of
/// [`parse_retry_after`].
const MAX_RETRY_AFTER_MS: f64 = 3_600_000.0;

/// Builds the one HTTP client a backend keeps for its lifetime. The timeout
/// covers a whole request: connecting, sending and reading the response.
pub(crate) fn build_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("failed to build the HTTP client for the model provider")
}

/// Awaits one model request and records its latency and token counts in the
/// current span, which the backend's `complete` opens with empty
/// `latency_ms`, `tokens_in` and `tokens_out` fields.
pub(crate) async fn record_outcome(
    request: impl Future<Output = Result<ChatResponse, LlmError>>,
) -> Result<ChatResponse, LlmError> {
    let started = Instant::now();
    let result = request.await;

    let span = tracing::Span::current();
    span.record("latency_ms", started.elapsed().as_millis() as u64);
    match &result {
        Ok(response) => {
            span.record("tokens_in", response.usage.input_tokens);
            span.record("tokens_out", response.usage.output_tokens);
            debug!(
                tool_calls = response.tool_calls.len(),
                "model request finished"
            );
        }
        Err(error) => debug!(error = %error, "model request failed"),
    }
    result
}

/// A response as received, before the backend interprets it.
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The parts of a provider's error body that decide the error variant.
pub(crate) struct ProviderError {
    /// The provider's message, or an excerpt of a body that is not the
    /// provider's error JSON.
    pub message: String,
    /// Whether the provider reports that the prompt exceeds the model's
    /// context window.
    pub is_context_too_long: bool,
}

/// Sends a prepared request and reads the whole response body.
///
/// `timeout` is the client's timeout, reported back in
/// [`LlmError::Timeout`]. `api_key` is removed from any error text.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    api_key: Option<&Secret>,
) -> Result<RawResponse, LlmError> {
    let response = request
        .send()
        .await
        .map_err(|error| transport_error(&error, timeout, api_key))?;

    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|error| transport_error(&error, timeout, api_key))?;

    Ok(RawResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// Maps a non-success status to the error variant the caller branches on.
///
/// - 429 becomes [`LlmError::RateLimited`].
/// - Any 5xx, Anthropic's 529 "overloaded" included, becomes
///   [`LlmError::Server`].
/// - A 400 or 413 that reports a prompt over the context window becomes
///   [`LlmError::ContextTooLong`].
/// - Any other status becomes [`LlmError::Rejected`] with the provider's
///   message.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    error: ProviderError,
) -> LlmError {
    let retry_after = retry_after(headers);
    match status.as_u16() {
        429 => LlmError::RateLimited { retry_after },
        code @ 500..=599 => LlmError::Server {
            status: code,
            retry_after,
        },
        400 | 413 if error.is_context_too_long => LlmError::ContextTooLong(error.message),
        code => LlmError::Rejected {
            status: code,
            message: error.message,
        },
    }
}

/// Parses a success body, describing briefly what was wrong when it is not
/// the expected JSON.
pub(crate) fn parse_body<T: DeserializeOwned>(
    body: &[u8],
    api_key: Option<&Secret>,
) -> Result<T, LlmError> {
    serde_json::from_slice(body).map_err(|error| {
        let description = format!("the body is not the expected JSON: {error}");
        LlmError::BadResponse(clean_message(&description, api_key))
    })
}

/// Returns an excerpt of a body that could not be read as an error JSON.
pub(crate) fn body_excerpt(body: &[u8], api_key: Option<&Secret>) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "the response body is empty".to_string();
    }
    clean_message(text, api_key)
}

/// Removes the API key from a message and shortens it to
/// [`MAX_MESSAGE_CHARS`]. A provider's message may quote the key it
/// received, and errors end up in logs.
pub(crate) fn clean_message(text: &str, api_key: Option<&Secret>) -> String {
    let mut text = match api_key.map(Secret::expose) {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_string(),
    };
    if let Some((cut, _)) = text.char_indices().nth(MAX_MESSAGE_CHARS) {
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Reads the wait a provider asked for: `retry-after-ms` when present, as
/// the official OpenAI and Anthropic SDKs do, else `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());

    let from_millis = header("retry-after-ms")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|millis| millis.is_finite() && *millis >= 0.0)
        .map(|millis| Duration::from_secs_f64(millis.min(MAX_RETRY_AFTER_MS) / 1000.0));

    from_millis.or_else(|| header("retry-after").and_then(parse_retry_after))
}

fn transport_error(
    error: &reqwest::Error,
    timeout: Duration,
    api_key: Option<&Secret>,
) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout(timeout);
    }
    LlmError::Transport(clean_message(&error_chain(error), api_key))
}

/// Joins an error and its sources, because reqwest's own message ("error
/// sending request for url ...") leaves out the cause, such as "connection
/// refused".
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
