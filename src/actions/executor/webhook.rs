//! The webhook executor: one signed HTTP request per run.
//!
//! ```yaml
//! executor:
//!   type: webhook
//!   url: https://deploy.example.com/hooks/agentdesk
//!   method: POST                  # POST (default), PUT or PATCH
//!   headers:                      # literal text; ${VAR} is read from the environment at start
//!     X-Api-Key: ${DEPLOY_API_KEY}
//!   secret_env: AGENTDESK_WEBHOOK_SECRET   # required: the variable holding the HMAC key
//!   timeout_secs: 30              # 1 to 300, default 30
//! ```
//!
//! # Request
//!
//! Headers: `Content-Type: application/json`, `User-Agent: agentdesk`,
//! `X-Agentdesk-Run-Id` (the run id), `X-Agentdesk-Timestamp` (Unix
//! seconds, decimal), `X-Agentdesk-Signature` (below), and the configured
//! headers. Configured headers cannot replace these, nor `Host`,
//! `Content-Length` or `Transfer-Encoding`.
//!
//! The body always has this shape (UTF-8 JSON, keys in this order):
//!
//! ```json
//! {
//!   "run_id": "0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d",
//!   "action": {"id": "restart-service", "title": "Restart a service"},
//!   "inputs": {"environment": "staging"},
//!   "target": {"ref": "service:checkout", "blueprint": "service",
//!              "identifier": "checkout", "title": "Checkout"},
//!   "requester": {"slack_user_id": "U0ALICE001"},
//!   "approver": {"slack_user_id": "U0BOB00001"},
//!   "invocation_id": "0195a3c1-2b3c-7d4e-8f9a-0b1c2d3e4f5a",
//!   "requested_at": "2026-01-01T09:30:00.000Z",
//!   "approved_at": "2026-01-01T09:31:12.250Z"
//! }
//! ```
//!
//! `target`, `approver`, `invocation_id` and `approved_at` are `null` when
//! the run has none. `requester.slack_user_id` is `cli` for a run started
//! from the command line. Times are RFC 3339 in UTC with milliseconds.
//!
//! # Signature
//!
//! `X-Agentdesk-Signature` is `v1=` followed by the lowercase hex
//! HMAC-SHA256, keyed with the secret, of the timestamp header's value, a
//! `.`, and the body bytes exactly as sent. A receiver should recompute it
//! over the raw body before parsing it and compare in constant time. It
//! should also reject a timestamp more than five minutes from its own
//! clock, because a replayed request carries an old one, and treat
//! `X-Agentdesk-Run-Id` as an idempotency key. [`SIGNATURE_TEST_VECTOR`] is
//! a worked example.
//!
//! # Outcome
//!
//! Any 2xx status is success. Any other status is a failure whose summary
//! names the status and quotes the start of the body. Redirects are not
//! followed, so a 3xx is a failure too. The request is never retried.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::http;
use super::{Problem, RunRequest, RunResult, TargetEntity, read_secret, record, rfc3339_utc};
use crate::config::Secret;

/// The header that carries the run id.
pub const RUN_ID_HEADER: &str = "X-Agentdesk-Run-Id";
/// The header that carries the signed Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Agentdesk-Timestamp";
/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Agentdesk-Signature";

/// Headers agentdesk sets itself, which configuration cannot replace.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "user-agent",
];

/// A worked example of the signature scheme, for receivers to test their
/// verification against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureTestVector {
    pub secret: &'static str,
    /// The `X-Agentdesk-Timestamp` value (2026-01-01T00:00:00Z).
    pub timestamp: &'static str,
    /// The body bytes as sent.
    pub body: &'static str,
    /// The expected `X-Agentdesk-Signature` value.
    pub signature: &'static str,
}

/// The published test vector. The signature was computed with Python's
/// `hmac` module and with `openssl dgst -sha256 -hmac`, which agree.
pub const SIGNATURE_TEST_VECTOR: SignatureTestVector = SignatureTestVector {
    secret: "whsec_agentdesk_test_3f9a1c",
    timestamp: "1767225600",
    body: r#"{"run_id":"run-0001","action":{"id":"restart-service","title":"Restart a service"}}"#,
    signature: "v1=2129022f4f7a34f25ff7ab811743feaed5858e782bb8d18ef77e07c698f5aa08",
};

/// Signs a webhook body: `v1=` + lowercase hex of
/// HMAC-SHA256(`secret`, `timestamp` + `.` + `body`).
pub fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // hmac's `new_from_slice` accepts keys of any length: a longer key is
    // hashed first, as RFC 2104 specifies.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);

    let digest = mac.finalize().into_bytes();
    let mut signature = String::with_capacity(3 + digest.len() * 2);
    signature.push_str("v1=");
    for byte in digest {
        signature.push_str(&format!("{byte:02x}"));
    }
    signature
}

/// `type: webhook` as written in the agents file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Header name to value; `${VAR}` in a value is replaced by the
    /// environment variable at start.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The environment variable that contains the HMAC key.
    pub secret_env: String,
    /// Seconds for the whole request, 1 to 300; default 30.
    #[serde(default = "super::default_timeout_secs")]
    pub timeout_secs: u64,
}

/// Header values are left out: a literal value may be a secret written
/// into the file.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("secret_env", &self.secret_env)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

fn default_method() -> String {
    "POST".to_string()
}

/// A built webhook executor.
#[derive(Clone)]
pub(super) struct WebhookExecutor {
    client: reqwest::Client,
    url: Url,
    method: Method,
    /// Configured headers, values resolved; every value is treated as
    /// secret.
    headers: Vec<(HeaderName, Secret)>,
    /// The HMAC key.
    secret: Secret,
    /// Values removed from any response text quoted in a summary: those
    /// read from the environment (the key and the variables in header
    /// values), header values written into the file, and the URL's
    /// password and query values.
    redactions: Vec<Secret>,
    timeout: Duration,
}

impl fmt::Debug for WebhookExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("WebhookExecutor")
            .field("url", &http::public_url(&self.url))
            .field("method", &self.method.as_str())
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookExecutor {
    pub(super) fn build(
        config: &WebhookConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();

        let url = record(
            http::parse_http_url("executor.url", &config.url),
            &mut problems,
        );
        let method = record(parse_method(&config.method), &mut problems);
        let secret = record(
            read_secret(env, "executor.secret_env", &config.secret_env),
            &mut problems,
        );
        let timeout = record(super::timeout_from_secs(config.timeout_secs), &mut problems);

        let mut headers = Vec::new();
        let mut redactions = Vec::new();
        for (name, template) in &config.headers {
            let Some((name, value, variable_values)) =
                record(resolve_header(name, template, env), &mut problems)
            else {
                continue;
            };
            redactions.extend(variable_values);
            // A literal value may be a key written into the file, and some
            // receivers echo the headers they were sent. Shorter values,
            // such as `json`, would match inside ordinary words.
            if value.expose().chars().count() >= super::MIN_SECRET_CHARS {
                redactions.push(value.clone());
            }
            headers.push((name, value));
        }
        if let Some(url) = &url {
            redactions.extend(url_secrets(url));
        }

        let client = timeout.and_then(|timeout| record(http::build_client(timeout), &mut problems));

        let (Some(url), Some(method), Some(secret), Some(timeout), Some(client)) =
            (url, method, secret, timeout, client)
        else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }

        redactions.push(secret.clone());
        Ok(Self {
            client,
            url,
            method,
            headers,
            secret,
            redactions,
            timeout,
        })
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) async fn execute(&self, request: &RunRequest, now_millis: i64) -> RunResult {
        let body = request_body(request).to_string().into_bytes();
        let timestamp = now_millis.div_euclid(1000).to_string();
        let signature = webhook_signature(self.secret.expose(), &timestamp, &body);

        let mut detail = json!({
            "executor": "webhook",
            "method": self.method.as_str(),
            "url": http::public_url(&self.url),
            "timestamp": timestamp,
        });

        let mut builder = self
            .client
            .request(self.method.clone(), self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(RUN_ID_HEADER, &request.run_id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature);
        for (name, value) in &self.headers {
            builder = builder.header(name.clone(), sensitive_value(value));
        }

        let response = match http::send(builder.body(body), &self.redactions).await {
            Ok(response) => response,
            Err(summary) => {
                detail["error"] = summary.clone().into();
                return RunResult::failure(summary, None, detail);
            }
        };

        let excerpt = http::body_excerpt(&response.body, &self.redactions);
        detail["status"] = response.status.into();
        detail["response_excerpt"] = excerpt.clone().into();
        if let Some(error) = &response.body_error {
            detail["response_error"] = error.clone().into();
        }

        let status = response.status;
        if (200..300).contains(&status) {
            return RunResult {
                success: true,
                summary: format!("HTTP {status}"),
                http_status: Some(status),
                link: None,
                detail,
            };
        }
        RunResult::failure(format!("HTTP {status}: {excerpt}"), Some(status), detail)
    }
}

/// Builds the documented body; see the module documentation.
fn request_body(request: &RunRequest) -> Value {
    json!({
        "run_id": request.run_id,
        "action": { "id": request.action_id, "title": request.action_title },
        "inputs": request.inputs,
        "target": request.target.as_ref().map(target_json),
        "requester": { "slack_user_id": request.requester },
        "approver": request.approver.as_ref().map(|user| json!({ "slack_user_id": user })),
        "invocation_id": request.invocation_id,
        "requested_at": rfc3339_utc(request.requested_at),
        "approved_at": request.approved_at.map(rfc3339_utc),
    })
}

fn target_json(target: &TargetEntity) -> Value {
    json!({
        "ref": target.reference,
        "blueprint": target.blueprint,
        "identifier": target.identifier,
        "title": target.title,
    })
}

/// The parts of a URL that may hold a key, `https://user:KEY@host/?token=KEY`,
/// which a receiver may echo back: the password and the query values of
/// at least [`super::MIN_SECRET_CHARS`] characters.
fn url_secrets(url: &Url) -> Vec<Secret> {
    let mut secrets: Vec<Secret> = url.password().map(Secret::new).into_iter().collect();
    secrets.extend(
        url.query_pairs()
            .map(|(_, value)| value.into_owned())
            .filter(|value| value.chars().count() >= super::MIN_SECRET_CHARS)
            .map(Secret::new),
    );
    secrets
}

fn parse_method(text: &str) -> Result<Method, Problem> {
    match text.trim().to_ascii_uppercase().as_str() {
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        _ => Err((
            "executor.method".to_string(),
            format!("invalid method {text:?}: expected POST, PUT or PATCH"),
        )),
    }
}

/// Resolves one configured header. Returns its name, its value, and the
/// values of the variables used in it.
fn resolve_header(
    name: &str,
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(HeaderName, Secret, Vec<Secret>), Problem> {
    let field = format!("executor.headers.{name}");
    let problem = |message: String| (field.clone(), message);

    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| problem(format!("{name:?} is not a valid header name")))?;
    let lower = header_name.as_str();
    if RESERVED_HEADERS.contains(&lower) || lower.starts_with("x-agentdesk-") {
        return Err(problem(format!(
            "header {name} is set by agentdesk and cannot be configured"
        )));
    }

    let (value, variable_values) = substitute_variables(template, env).map_err(&problem)?;
    if HeaderValue::from_str(&value).is_err() {
        // The value is not quoted: it may be a secret.
        return Err(problem(
            "the value is not a valid header value: it contains a line break or another \
             control character"
                .to_string(),
        ));
    }
    Ok((header_name, Secret::new(value), variable_values))
}

/// Replaces each `${VAR}` in `template` with the variable's value. Returns
/// the text and the values substituted.
fn substitute_variables(
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Secret>), String> {
    let mut text = String::new();
    let mut rest = template;
    let mut values = Vec::new();

    while let Some(start) = rest.find("${") {
        text.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed ${ in the value: write ${VARIABLE}".to_string())?;
        let variable = &after[..end];
        if !super::is_variable_name(variable) {
            return Err(format!(
                "${{{variable}}} is not an environment variable reference: use letters, \
                 digits and _"
            ));
        }
        match env(variable) {
            Some(value) if !value.is_empty() => {
                text.push_str(&value);
                values.push(Secret::new(value));
            }
            _ => {
                return Err(format!(
                    "environment variable {variable} is not set or is empty"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    text.push_str(rest);

    Ok((text, values))
}

fn sensitive_value(value: &Secret) -> HeaderValue {
    // Checked when the executor was built.
    let mut header = HeaderValue::from_str(value.expose()).expect("validated at build");
    header.set_sensitive(true);
    header
}
