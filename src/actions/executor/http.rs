//! HTTP plumbing shared by the executors: the client, bounded reads of
//! response bodies, and short secret-free descriptions of responses and
//! transport failures.

use std::error::Error as _;
use std::time::Duration;

use reqwest::Url;

use super::Problem;
use crate::config::Secret;

/// Maximum length, in characters, of a response body excerpt in a summary.
pub(super) const MAX_EXCERPT_CHARS: usize = 300;

/// Maximum number of response body bytes read. A receiver's reply is only
/// quoted in a summary, so a large one is cut rather than buffered whole.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The summary of a request that may or may not have taken effect.
pub(super) const TIMED_OUT: &str = "timed out, outcome unknown";

/// Builds an executor's HTTP client. The timeout covers one whole request:
/// connecting, sending and reading the response. Redirects are not
/// followed, so a request and its headers reach only the configured host.
pub(super) fn build_client(timeout: Duration) -> Result<reqwest::Client, Problem> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("agentdesk")
        .build()
        .map_err(|error| {
            (
                "executor".to_string(),
                format!("failed to build the HTTP client: {error}"),
            )
        })
}

/// Parses a configured `http` or `https` URL.
pub(super) fn parse_http_url(field: &str, text: &str) -> Result<Url, Problem> {
    let problem = |message: String| (field.to_string(), message);

    let url = Url::parse(text.trim())
        .map_err(|error| problem(format!("invalid URL {:?}: {error}", public_url_text(text))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem(format!(
            "invalid URL scheme {:?}: expected http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(problem("invalid URL: it has no host".to_string()));
    }
    Ok(url)
}

/// Returns a URL without credentials, query or fragment, the parts that
/// may hold a secret, for details and Debug output.
pub(super) fn public_url(url: &Url) -> String {
    let mut public = url.clone();
    let _ = public.set_username("");
    let _ = public.set_password(None);
    public.set_query(None);
    public.set_fragment(None);
    public.to_string()
}

fn public_url_text(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(url) => public_url(&url),
        Err(_) => text
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// A response as far as it was read.
pub(super) struct Response {
    pub status: u16,
    /// Up to [`MAX_BODY_BYTES`] of the body.
    pub body: Vec<u8>,
    /// The error that stopped reading the body early, if one did.
    pub body_error: Option<String>,
}

/// Sends a prepared request and reads the start of the body.
///
/// The error is a summary: [`TIMED_OUT`] when the client timeout passed, or
/// the cause of a connection or transport failure with every secret
/// removed.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    secrets: &[Secret],
) -> Result<Response, String> {
    let mut response = request
        .send()
        .await
        .map_err(|error| transport_summary(&error, secrets))?;

    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut body_error = None;
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(error) => {
                body_error = Some(transport_summary(&error, secrets));
                break;
            }
        }
    }
    body.truncate(MAX_BODY_BYTES);

    Ok(Response {
        status,
        body,
        body_error,
    })
}

/// Describes a failed request. A request that could not be built or
/// connected had no effect, but a failure after that leaves the outcome
/// unknown.
fn transport_summary(error: &reqwest::Error, secrets: &[Secret]) -> String {
    if error.is_timeout() {
        return TIMED_OUT.to_string();
    }
    let cause = clean_text(&error_chain(error), secrets);
    if error.is_builder() {
        format!("invalid request, not sent: {cause}")
    } else if error.is_connect() {
        format!("connection failed: {cause}")
    } else {
        format!("request failed, outcome unknown: {cause}")
    }
}

/// Joins an error and its sources. reqwest's message quotes the URL, which
/// may carry a token in its query, so the URL is replaced by its public
/// form.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), &public_url(url));
    }
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Returns an excerpt of a response body for a summary: control
/// characters and whitespace collapsed to single spaces, secrets removed,
/// at most [`MAX_EXCERPT_CHARS`] characters. Summaries are printed in
/// terminals, where a receiver's escape sequences would take effect.
pub(super) fn body_excerpt(body: &[u8], secrets: &[Secret]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "empty body".to_string();
    }
    clean_text(&text, secrets)
}

/// Shortest secret value removed from excerpts.
const MIN_SCRUBBED_CHARS: usize = 4;

/// Removes every secret value from a text and shortens it to
/// [`MAX_EXCERPT_CHARS`] characters. Receivers sometimes echo the headers
/// they were sent, and summaries are shown in Slack and logged.
pub(super) fn clean_text(text: &str, secrets: &[Secret]) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        let value = secret.expose();
        // Values of a few characters (a header such as `X-Env: ${ENV}`)
        // would match inside ordinary words.
        if value.chars().count() >= MIN_SCRUBBED_CHARS {
            text = text.replace(value, "[redacted]");
        }
    }
    if let Some((cut, _)) = text.char_indices().nth(MAX_EXCERPT_CHARS) {
        text.truncate(cut);
        text.push_str("...");
    }
    text
}
