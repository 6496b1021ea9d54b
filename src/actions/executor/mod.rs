//! Executors: what runs an approved self-service action, once, and reports
//! what happened.
//!
//! An action names its executor in an `executor` block of the agents file,
//! deserialized into [`ExecutorConfig`]. At start,
//! [`ExecutorConfig::build`] reads the environment variables the block
//! names (the HMAC key, the GitHub token, secret header values) and checks
//! URLs, methods and templates, so a misconfigured action stops the program
//! before anyone can approve it. The [`Executor`] it returns contains one
//! HTTP client and is cheap to clone.
//!
//! Each approved run is one [`RunRequest`]. [`Executor::execute`] sends it
//! and returns a [`RunResult`]: success or failure, a short summary for the
//! Slack card, the HTTP status, a link to the run when there is one, and
//! details to store with the run.
//!
//! Executors do not retry. An action changes something outside agentdesk
//! (a deployment, a restart), and a request that timed out may still have
//! taken effect, so sending it again could act twice; a timeout is reported
//! as "timed out, outcome unknown" for a person to check. The one exception
//! is the GitHub dispatch described in [`github`]: it is sent a second time
//! only when the server rejected the first request as invalid, which
//! started nothing.
//!
//! - [`webhook`]: a signed JSON request to an HTTP endpoint.
//! - [`github`]: a GitHub Actions `workflow_dispatch`, with a link to the
//!   workflow run it started.
//!
//! Secrets are held as [`Secret`] and never appear in Debug output, logs,
//! summaries or [`RunResult::detail`]; response text quoted in a summary has
//! every secret value removed first.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info, instrument};

use crate::config::Secret;

pub mod github;
mod http;
mod template;
pub mod webhook;

pub use github::GithubWorkflowConfig;
pub use webhook::{SIGNATURE_TEST_VECTOR, SignatureTestVector, WebhookConfig, webhook_signature};

/// Default for `timeout_secs`.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Largest `timeout_secs`. A run stays "running" on its Slack card until
/// the executor returns, so a longer wait leaves people guessing.
const MAX_TIMEOUT_SECS: u64 = 300;

/// A configuration problem: the field, such as `executor.secret_env`, and
/// what is wrong with it.
type Problem = (String, String);

/// An action's `executor` block as written in the agents file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum ExecutorConfig {
    /// `type: webhook`.
    Webhook(WebhookConfig),
    /// `type: github_workflow`.
    GithubWorkflow(GithubWorkflowConfig),
}

impl ExecutorConfig {
    /// Resolves environment variables and builds the executor.
    ///
    /// Every problem found is returned, not only the first. Each is a field
    /// path under `executor` and a message, to which the caller adds the
    /// file, line and action. A missing variable is named, and no secret
    /// value is ever quoted.
    pub fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Executor, Vec<(String, String)>> {
        let kind = match self {
            Self::Webhook(config) => {
                ExecutorKind::Webhook(webhook::WebhookExecutor::build(config, env)?)
            }
            Self::GithubWorkflow(config) => {
                ExecutorKind::GithubWorkflow(github::GithubExecutor::build(config, env)?)
            }
        };
        Ok(Executor { kind })
    }

    /// Checks that each placeholder of the executor's templates has a value
    /// in every run of the action: `{{inputs.NAME}}` must name a declared
    /// input, a `{{target.*}}` placeholder needs a `target_blueprint`, and
    /// `{{approver}}` needs an approval policy. Problems are (field,
    /// message) pairs under `executor`.
    pub fn check_placeholders(&self, action: &PlaceholderValues<'_>) -> Vec<(String, String)> {
        match self {
            Self::Webhook(_) => Vec::new(),
            Self::GithubWorkflow(config) => config.check_placeholders(action),
        }
    }

    /// Returns the action input names the executor's templates refer to
    /// (`{{inputs.NAME}}`), so the action definition can check that each
    /// one is declared. A webhook sends every input and refers to none by
    /// name.
    pub fn referenced_inputs(&self) -> BTreeSet<String> {
        match self {
            Self::Webhook(_) => BTreeSet::new(),
            Self::GithubWorkflow(config) => config.referenced_inputs(),
        }
    }
}

/// The values every run of an action has, to check placeholders against.
#[derive(Debug, Clone, Copy)]
pub struct PlaceholderValues<'a> {
    /// Names of the action's inputs.
    pub inputs: &'a [&'a str],
    /// Whether the action has a `target_blueprint`.
    pub has_target: bool,
    /// Whether a person approves each run.
    pub has_approver: bool,
}

/// A built executor, ready to run requests.
#[derive(Debug, Clone)]
pub struct Executor {
    kind: ExecutorKind,
}

#[derive(Debug, Clone)]
enum ExecutorKind {
    Webhook(webhook::WebhookExecutor),
    GithubWorkflow(github::GithubExecutor),
}

impl Executor {
    /// Runs the request once and reports the outcome.
    ///
    /// Never retries (see the module documentation for the one GitHub
    /// exception). A timeout gives `success: false` with the summary
    /// "timed out, outcome unknown"; connection errors and non-2xx statuses
    /// give failures whose summary names the cause. `now_millis` is the
    /// current wall-clock time: it becomes the webhook's signed timestamp
    /// and the earliest creation time of the GitHub run looked up.
    #[instrument(
        name = "action_execution",
        skip_all,
        fields(run_id = %request.run_id, action = %request.action_id, executor = self.kind())
    )]
    pub async fn execute(&self, request: &RunRequest, now_millis: i64) -> RunResult {
        debug!(
            inputs = %serde_json::to_string(&request.inputs).unwrap_or_default(),
            "executing action"
        );
        let started = Instant::now();

        let result = match &self.kind {
            ExecutorKind::Webhook(executor) => executor.execute(request, now_millis).await,
            ExecutorKind::GithubWorkflow(executor) => executor.execute(request, now_millis).await,
        };

        info!(
            outcome = if result.success { "succeeded" } else { "failed" },
            http_status = result.http_status,
            summary = %result.summary,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "action executed"
        );
        result
    }

    /// Returns `"webhook"` or `"github_workflow"`, the `type` in the
    /// configuration.
    pub fn kind(&self) -> &'static str {
        match &self.kind {
            ExecutorKind::Webhook(_) => "webhook",
            ExecutorKind::GithubWorkflow(_) => "github_workflow",
        }
    }

    /// Returns the configured `timeout_secs`. A webhook applies it to its
    /// one request; a GitHub executor to the dispatch and the run lookup
    /// together.
    pub fn timeout(&self) -> Duration {
        match &self.kind {
            ExecutorKind::Webhook(executor) => executor.timeout(),
            ExecutorKind::GithubWorkflow(executor) => executor.timeout(),
        }
    }
}

/// One run of an action, as the executor sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Identifier of this run, unique across runs; receivers can use it as
    /// an idempotency key.
    pub run_id: String,
    pub action_id: String,
    pub action_title: String,
    /// Input values as validated by the action definition.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The catalog entity the action acts on, when it has one.
    pub target: Option<TargetEntity>,
    /// Slack user id of the person who requested the run, or `cli` for a run started
    /// from the command line.
    pub requester: String,
    /// Slack user id of the person who approved; `None` for actions that
    /// need no approval.
    pub approver: Option<String>,
    /// The invocation (question) the action was proposed in, if any.
    pub invocation_id: Option<String>,
    /// When the run was requested, in milliseconds since the Unix epoch.
    pub requested_at: i64,
    /// When it was approved, in milliseconds since the Unix epoch.
    pub approved_at: Option<i64>,
}

/// A catalog entity an action acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntity {
    /// `blueprint:identifier`, such as `service:checkout`.
    pub reference: String,
    pub blueprint: String,
    pub identifier: String,
    pub title: String,
}

/// The outcome of one execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    pub success: bool,
    /// A short line for the Slack card, such as `HTTP 200` or
    /// `workflow run 123 started`.
    pub summary: String,
    /// Status of the response that decided the outcome; `None` when no
    /// response arrived.
    pub http_status: Option<u16>,
    /// Where people can follow the run, such as a GitHub workflow run page.
    pub link: Option<String>,
    /// Details stored with the run: what was sent where, and what came
    /// back. Contains no secret.
    pub detail: serde_json::Value,
}

impl RunResult {
    fn failure(summary: String, http_status: Option<u16>, detail: serde_json::Value) -> Self {
        Self {
            success: false,
            summary,
            http_status,
            link: None,
            detail,
        }
    }
}

/// Returns the value of a check that passed, or records its problem so
/// that every problem is reported at once.
fn record<T>(result: Result<T, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|problem| problems.push(problem)).ok()
}

/// Reads a variable that holds a secret; empty counts as missing.
fn read_secret(
    env: &dyn Fn(&str) -> Option<String>,
    field: &str,
    variable: &str,
) -> Result<Secret, Problem> {
    if !is_variable_name(variable) {
        return Err((
            field.to_string(),
            format!("{variable:?} is not an environment variable name: use letters, digits and _"),
        ));
    }
    match env(variable) {
        Some(value) if value.trim().chars().count() >= MIN_SECRET_CHARS => {
            Ok(Secret::new(value.trim()))
        }
        Some(value) if !value.trim().is_empty() => Err((
            field.to_string(),
            format!(
                "environment variable {variable} holds only {} character(s); a key or token \
                 needs at least {MIN_SECRET_CHARS} (use a random value of 32 or more)",
                value.trim().chars().count()
            ),
        )),
        _ => Err((
            field.to_string(),
            format!("environment variable {variable} is not set or is empty"),
        )),
    }
}

/// Shortest HMAC key or token accepted. A shorter one is guessable, and
/// removing it from response excerpts would mangle their text.
const MIN_SECRET_CHARS: usize = 8;

/// Checks a name against the portable environment variable syntax:
/// letters, digits and `_`, not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Converts `timeout_secs` into a duration within 1 to [`MAX_TIMEOUT_SECS`].
fn timeout_from_secs(seconds: u64) -> Result<Duration, Problem> {
    if (1..=MAX_TIMEOUT_SECS).contains(&seconds) {
        return Ok(Duration::from_secs(seconds));
    }
    Err((
        "executor.timeout_secs".to_string(),
        format!("invalid timeout_secs {seconds}: expected 1 to {MAX_TIMEOUT_SECS} seconds"),
    ))
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// Formats milliseconds since the Unix epoch as RFC 3339 in UTC with
/// milliseconds (`2026-01-01T09:30:00.000Z`); `null` for times chrono
/// cannot represent.
fn rfc3339_utc(millis: i64) -> serde_json::Value {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(time) => time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
        None => serde_json::Value::Null,
    }
}
