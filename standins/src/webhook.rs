//! A local webhook receiver for agentdesk's webhook executor.
//!
//! It accepts any method on any path of 127.0.0.1 and records each request
//! (method, path, headers, body). It checks each signature with code of its
//! own rather than the product's: the HMAC-SHA256, keyed with the shared
//! secret, of `X-Agentdesk-Timestamp`, `.` and the raw body is compared in
//! constant time with the hex after `v1=` in `X-Agentdesk-Signature`. Replies are
//! `200 {"ok":true}` unless a test sets another status, body or delay.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The path [`WebhookReceiver::url`] points at.
pub const HOOK_PATH: &str = "/hooks/agentdesk";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header names in lowercase; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Whether the signature matched the body and timestamp.
    pub signature_valid: bool,
}

impl ReceivedRequest {
    /// Returns a header's value; `name` is matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Parses the body as JSON; a body that is not JSON becomes a JSON
    /// string of its text.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned())
        })
    }
}

/// A running webhook receiver. Dropping it stops the server.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop, aborted on drop.
    task: JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// State shared by the handle and the server task. The mutexes are std
/// ones because no lock is held across an `.await`.
struct Shared {
    secret: Vec<u8>,
    reply: Mutex<Reply>,
    requests: Mutex<Vec<ReceivedRequest>>,
    /// Woken each time a request is recorded.
    recorded: Notify,
}

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

impl WebhookReceiver {
    /// Starts a receiver on an ephemeral port of 127.0.0.1 that checks
    /// signatures against `secret`.
    pub async fn start(secret: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the webhook receiver to 127.0.0.1")?;
        let addr = listener.local_addr()?;

        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            reply: Mutex::new(Reply {
                status: 200,
                body: r#"{"ok":true}"#.to_string(),
                delay: Duration::ZERO,
            }),
            requests: Mutex::new(Vec::new()),
            recorded: Notify::new(),
        });
        let router = Router::new()
            .fallback(handle_request)
            .with_state(shared.clone());

        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(error = %error, "webhook receiver stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Returns the URL to configure as the webhook, ending in
    /// [`HOOK_PATH`].
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// Sets the status and body of every later reply.
    pub fn respond_with(&self, status: u16, body: &str) {
        let mut reply = lock(&self.shared.reply);
        reply.status = status;
        reply.body = body.to_string();
    }

    /// Makes every later reply wait this long after the request arrived.
    pub fn delay(&self, delay: Duration) {
        lock(&self.shared.reply).delay = delay;
    }

    /// Returns every request received so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until at least `count` requests have arrived and returns all of
    /// them. Fails after `timeout`.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedRequest>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a request recorded in between
            // still wakes this waiter.
            let recorded = self.shared.recorded.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                bail!(
                    "expected {count} webhook requests within {timeout:?}, but {} arrived",
                    requests.len()
                );
            }
        }
    }

    /// Checks a signature against this receiver's secret, as it does for
    /// each request.
    pub fn verify(&self, timestamp: &str, body: &[u8], signature: &str) -> bool {
        verify_signature(&self.shared.secret, timestamp, body, signature)
    }
}

/// Checks an `X-Agentdesk-Signature` value (`v1=<hex>`) against the
/// HMAC-SHA256 of `timestamp`, `.` and `body` keyed with `secret`.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected) = signature.strip_prefix("v1=").and_then(decode_hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Decodes lowercase or uppercase hex; `None` for anything else.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|start| u8::from_str_radix(text.get(start..start + 2)?, 16).ok())
        .collect()
}

async fn handle_request(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = header_map(&headers);
    let timestamp = headers.get("x-agentdesk-timestamp").cloned();
    let signature = headers.get("x-agentdesk-signature").cloned();
    let signature_valid = match (timestamp, signature) {
        (Some(timestamp), Some(signature)) => {
            verify_signature(&shared.secret, &timestamp, &body, &signature)
        }
        _ => false,
    };

    let request = ReceivedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        signature_valid,
    };
    lock(&shared.requests).push(request);
    shared.recorded.notify_waiters();

    let reply = lock(&shared.reply).clone();
    tokio::time::sleep(reply.delay).await;

    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        reply.body,
    )
        .into_response()
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding it
/// left plain data behind, still fit to read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
