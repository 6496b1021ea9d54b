//! Scripted replies and the HTTP server shared by the model stand-ins.
//!
//! A test scripts a stand-in with [`Reply`] values: each request takes the
//! next scripted reply, or calls the responder when the script is empty. The
//! provider-specific parts (authentication, request checks, response and
//! error bodies) come from a [`Dialect`]; [`crate::openai`] and
//! [`crate::anthropic`] each provide one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One scripted reply of a model stand-in.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A text reply.
    Text(String),
    /// Tool calls, each a tool name and the raw arguments text. The stand-in
    /// assigns the call ids.
    ToolCalls(Vec<(String, String)>),
    /// Text followed by tool calls in the same turn.
    TextAndToolCalls(String, Vec<(String, String)>),
    /// An HTTP error with this status and JSON body, and a `retry-after`
    /// header when given.
    Status {
        status: u16,
        body: Value,
        retry_after: Option<String>,
    },
    /// HTTP 200 with exactly this body, for malformed responses.
    RawBody(String),
    /// The inner reply, sent after waiting this long.
    Delayed(Duration, Box<Reply>),
}

/// A function that builds a reply from the request body.
type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// The provider-specific half of a stand-in.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Returns the error to send when the request's credentials are missing
    /// or wrong.
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), String>;

    /// Returns what is wrong with a request body the real API would reject.
    fn validate(&self, request: &Value) -> Result<(), String>;

    /// Builds a success body holding text and tool calls.
    fn completion(&self, request: &Value, text: &str, tool_calls: &[(String, String)]) -> Value;

    /// Builds the provider's error body for a status.
    fn error_body(&self, status: StatusCode, message: &str) -> Value;
}

/// Script, responder and recorded requests, shared by a stand-in handle and
/// its server task. The mutexes are std ones because no lock is held across
/// an `.await`.
#[derive(Default)]
pub(crate) struct Script {
    replies: Mutex<VecDeque<Reply>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<Value>>,
    /// Woken each time a request is recorded.
    recorded: Notify,
}

impl Script {
    pub(crate) fn push(&self, reply: Reply) {
        lock(&self.replies).push_back(reply);
    }

    pub(crate) fn set_responder(&self, responder: Responder) {
        *lock(&self.responder) = Some(responder);
    }

    pub(crate) fn requests(&self) -> Vec<Value> {
        lock(&self.requests).clone()
    }

    /// Waits until at least `count` requests have arrived and returns all
    /// of them.
    pub(crate) async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a request recorded in between
            // still wakes this waiter.
            let recorded = self.recorded.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                bail!(
                    "expected {count} requests within {timeout:?}, but {} arrived",
                    requests.len()
                );
            }
        }
    }

    fn record(&self, request: Value) {
        lock(&self.requests).push(request);
        self.recorded.notify_waiters();
    }

    fn next_reply(&self, request: &Value) -> Option<Reply> {
        if let Some(reply) = lock(&self.replies).pop_front() {
            return Some(reply);
        }
        // Cloned out so the responder runs without the lock held.
        let responder = lock(&self.responder).clone();
        responder.map(|responder| responder(request))
    }
}

/// A running stand-in server. Dropping it stops accepting connections.
pub(crate) struct Server {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
    /// The accept loop, aborted on drop.
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared<D> {
    dialect: D,
    script: Arc<Script>,
}

impl Server {
    /// Starts a server on an ephemeral port of 127.0.0.1 that serves
    /// `POST path` in the dialect's wire format.
    pub(crate) async fn start<D: Dialect>(dialect: D, path: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the model stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;

        let script = Arc::new(Script::default());
        let shared = Arc::new(Shared {
            dialect,
            script: script.clone(),
        });
        let router = Router::new()
            .route(path, post(handle_request::<D>))
            .fallback(handle_unknown_path::<D>)
            .with_state(shared);

        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(error = %error, "model stand-in stopped");
            }
        });
        Ok(Self { addr, script, task })
    }
}

async fn handle_request<D: Dialect>(
    State(shared): State<Arc<Shared<D>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    let recorded = match &parsed {
        Ok(request) => request.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    shared.script.record(recorded);

    let dialect = &shared.dialect;
    if let Err(message) = dialect.check_auth(&headers) {
        return error_response(dialect, StatusCode::UNAUTHORIZED, &message);
    }
    let Ok(request) = parsed else {
        return error_response(
            dialect,
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
        );
    };
    if let Err(message) = dialect.validate(&request) {
        return error_response(dialect, StatusCode::BAD_REQUEST, &message);
    }

    match shared.script.next_reply(&request) {
        Some(reply) => render(dialect, &request, reply).await,
        None => error_response(
            dialect,
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stand-in has no scripted reply and no responder for this request",
        ),
    }
}

async fn handle_unknown_path<D: Dialect>(State(shared): State<Arc<Shared<D>>>) -> Response {
    error_response(
        &shared.dialect,
        StatusCode::NOT_FOUND,
        "no route for this path",
    )
}

async fn render<D: Dialect>(dialect: &D, request: &Value, mut reply: Reply) -> Response {
    while let Reply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }

    match reply {
        Reply::Text(text) => json_response(StatusCode::OK, dialect.completion(request, &text, &[])),
        Reply::ToolCalls(calls) => {
            json_response(StatusCode::OK, dialect.completion(request, "", &calls))
        }
        Reply::TextAndToolCalls(text, calls) => {
            json_response(StatusCode::OK, dialect.completion(request, &text, &calls))
        }
        Reply::Status {
            status,
            body,
            retry_after,
        } => status_response(dialect, status, body, retry_after),
        Reply::RawBody(body) => {
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Reply::Delayed(..) => unreachable!("the loop above unwraps every delay"),
    }
}

fn status_response<D: Dialect>(
    dialect: &D,
    status: u16,
    body: Value,
    retry_after: Option<String>,
) -> Response {
    let Ok(status) = StatusCode::from_u16(status) else {
        let message = format!("the script asked for HTTP status {status}, which is not valid");
        return error_response(dialect, StatusCode::INTERNAL_SERVER_ERROR, &message);
    };

    let mut response = json_response(status, body);
    if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(&value).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn error_response<D: Dialect>(dialect: &D, status: StatusCode, message: &str) -> Response {
    json_response(status, dialect.error_body(status, message))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Rough token count of a text, at four characters a token. The stand-ins
/// report it as usage, so budgets and logs see plausible numbers.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Returns a random id with a provider prefix, such as `call_...`.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(24);
    format!("{prefix}{id}")
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding it
/// left plain data behind, still fit to read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
