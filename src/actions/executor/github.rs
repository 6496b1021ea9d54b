//! The GitHub workflow executor: dispatches a GitHub Actions workflow and
//! links the workflow run it started.
//!
//! ```yaml
//! executor:
//!   type: github_workflow
//!   owner: bramblewick
//!   repository: deployments
//!   workflow: deploy.yml              # file name or numeric id
//!   ref: main                         # branch or tag to run the workflow on
//!   inputs:                           # workflow input -> template
//!     service: "{{target.identifier}}"
//!     environment: "{{inputs.environment}}"
//!   token_env: GITHUB_TOKEN           # required: the variable holding the token
//!   api_url: https://api.github.com   # default; GitHub Enterprise Server: https://HOST/api/v3
//!   timeout_secs: 30                  # 1 to 300, default 30
//! ```
//!
//! An input template is literal text with placeholders: `{{inputs.NAME}}`
//! (an action input), `{{target.ref}}`, `{{target.blueprint}}`,
//! `{{target.identifier}}`, `{{target.title}}`, `{{run_id}}`,
//! `{{action.id}}`, `{{requester}}`, `{{approver}}` and
//! `{{invocation_id}}`. An unknown placeholder stops the program at start;
//! a placeholder the run has no value for fails the run before anything is
//! sent.
//!
//! # Requests
//!
//! Every request has `Authorization: Bearer <token>`,
//! `Accept: application/vnd.github+json` and
//! `X-GitHub-Api-Version: 2022-11-28`.
//!
//! 1. `POST {api_url}/repos/{owner}/{repository}/actions/workflows/{workflow}/dispatches`
//!    with `{"ref", "inputs", "return_run_details": true}`. The token needs
//!    the `actions:write` permission on the repository (the `repo` scope
//!    for a classic token).
//! 2. A server that supports `return_run_details` (current github.com;
//!    older GitHub Enterprise Server releases do not) replies `200` with
//!    `workflow_run_id`, `run_url` and `html_url`; `html_url` becomes the
//!    link. A server that predates the parameter replies `204`. A server
//!    that rejects the parameter with a `400` or `422` naming it started
//!    nothing, so the dispatch is sent once more without it.
//! 3. After a `204`, the run is looked up in
//!    `GET .../actions/workflows/{workflow}/runs?event=workflow_dispatch&branch={ref}`:
//!    the newest run created at or after the second of the dispatch. The
//!    list is read right after the dispatch, then after waits of 1, 2, 3
//!    and 4 seconds, all within `timeout_secs`; reading it needs
//!    `actions:read`. When no run is found the result is still a success,
//!    because GitHub accepted the dispatch, but it has no link.
//!
//! Any other dispatch status is a failure whose summary quotes GitHub's
//! `message`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tracing::debug;

use super::http::{self, TIMED_OUT};
use super::template::Template;
use super::{PlaceholderValues, Problem, RunRequest, RunResult, read_secret, record};
use crate::config::Secret;

/// The REST API version agentdesk is written against.
pub const API_VERSION: &str = "2022-11-28";

/// Default `api_url`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Waits before each read of the runs list after a `204` dispatch. GitHub
/// creates the run after it replies, so the first read may miss it.
const LOOKUP_DELAYS_SECS: [u64; 5] = [0, 1, 2, 3, 4];

/// Runs read per page of the runs list; the dispatched run is among the
/// newest.
const RUNS_PER_PAGE: &str = "20";

/// `type: github_workflow` as written in the agents file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubWorkflowConfig {
    pub owner: String,
    pub repository: String,
    /// Workflow file name (`deploy.yml`) or numeric id.
    #[serde(deserialize_with = "scalar_text")]
    pub workflow: String,
    /// Branch or tag the workflow runs on.
    #[serde(rename = "ref", deserialize_with = "scalar_text")]
    pub git_ref: String,
    /// Workflow input name to template.
    #[serde(default, deserialize_with = "scalar_text_map")]
    pub inputs: BTreeMap<String, String>,
    /// The environment variable that contains the token.
    pub token_env: String,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Seconds for the dispatch and the run lookup together, 1 to 300;
    /// default 30.
    #[serde(default = "super::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl GithubWorkflowConfig {
    /// Returns the action inputs the templates refer to; templates that do
    /// not parse are skipped, since `build` reports them.
    pub(super) fn referenced_inputs(&self) -> BTreeSet<String> {
        self.inputs
            .values()
            .filter_map(|text| Template::parse(text).ok())
            .flat_map(|template| {
                template
                    .input_names()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl GithubWorkflowConfig {
    /// Checks that every placeholder can have a value in a run of the
    /// action; problems are (field, message) pairs. Templates that do not
    /// parse are skipped, since `build` reports them.
    pub(super) fn check_placeholders(&self, action: &PlaceholderValues<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (name, text) in &self.inputs {
            let Ok(template) = Template::parse(text) else {
                continue;
            };
            let field = format!("executor.inputs.{name}");
            for input in template.input_names() {
                if !action.inputs.contains(&input) {
                    let declared = if action.inputs.is_empty() {
                        "the action has no inputs".to_string()
                    } else {
                        format!("its inputs are {}", action.inputs.join(", "))
                    };
                    problems.push((
                        field.clone(),
                        format!(
                            "{{{{inputs.{input}}}}} names no input of the action ({declared}); \
                             declare it under inputs or fix the name"
                        ),
                    ));
                }
            }
            if template.uses_target() && !action.has_target {
                problems.push((
                    field.clone(),
                    "refers to the target, but the action has no target_blueprint; add one or \
                     remove the placeholder"
                        .to_string(),
                ));
            }
            if template.uses_approver() && !action.has_approver {
                problems.push((
                    field.clone(),
                    "refers to {{approver}}, but the action runs automatically and has no \
                     approver; use {{requester}} or require approval"
                        .to_string(),
                ));
            }
        }
        problems
    }
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_string()
}

/// A built GitHub workflow executor.
#[derive(Clone)]
pub(super) struct GithubExecutor {
    client: reqwest::Client,
    /// The token, removed from any response text quoted in a summary.
    token: Secret,
    /// `Bearer <token>`, marked sensitive so that Debug output and HTTP/2
    /// header compression leave it out.
    authorization: HeaderValue,
    dispatch_url: Url,
    runs_url: Url,
    /// `owner/repository`, for details.
    repository: String,
    workflow: String,
    git_ref: String,
    /// The ref without `refs/heads/` or `refs/tags/`, as the runs list
    /// reports it in `head_branch`.
    branch: String,
    inputs: Vec<(String, Template)>,
    timeout: Duration,
}

impl fmt::Debug for GithubExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubExecutor")
            .field("dispatch_url", &http::public_url(&self.dispatch_url))
            .field("ref", &self.git_ref)
            .field("inputs", &self.inputs)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A workflow run the dispatch started.
struct StartedRun {
    id: u64,
    html_url: String,
    /// The source of the run: `dispatch_response` or `runs_list`.
    found_by: &'static str,
}

/// A failed read of the runs list.
struct LookupError {
    message: String,
    /// Whether a later read may succeed (timeouts, 429, 5xx).
    is_transient: bool,
}

impl GithubExecutor {
    pub(super) fn build(
        config: &GithubWorkflowConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();

        record(check_name("executor.owner", &config.owner), &mut problems);
        record(
            check_name("executor.repository", &config.repository),
            &mut problems,
        );
        record(check_workflow(&config.workflow), &mut problems);
        let branch = record(branch_of(&config.git_ref), &mut problems);
        let token = record(
            read_secret(env, "executor.token_env", &config.token_env),
            &mut problems,
        );
        let authorization = token.as_ref().and_then(|token| {
            record(
                authorization_header(&config.token_env, token),
                &mut problems,
            )
        });
        let base = record(parse_api_url(&config.api_url), &mut problems);
        let timeout = record(super::timeout_from_secs(config.timeout_secs), &mut problems);

        let mut inputs = Vec::new();
        for (name, text) in &config.inputs {
            let field = format!("executor.inputs.{name}");
            if name.trim().is_empty() {
                problems.push((field, "a workflow input name is empty".to_string()));
                continue;
            }
            match Template::parse(text) {
                Ok(template) => inputs.push((name.clone(), template)),
                Err(message) => problems.push((field, message)),
            }
        }

        let client = timeout.and_then(|timeout| record(http::build_client(timeout), &mut problems));

        let (
            Some(branch),
            Some(token),
            Some(authorization),
            Some(base),
            Some(timeout),
            Some(client),
        ) = (branch, token, authorization, base, timeout, client)
        else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }

        let workflow_path = [
            "repos",
            config.owner.as_str(),
            config.repository.as_str(),
            "actions",
            "workflows",
            config.workflow.as_str(),
        ];
        Ok(Self {
            client,
            token,
            authorization,
            dispatch_url: join_path(&base, &workflow_path, "dispatches"),
            runs_url: join_path(&base, &workflow_path, "runs"),
            repository: format!("{}/{}", config.owner, config.repository),
            workflow: config.workflow.clone(),
            git_ref: config.git_ref.clone(),
            branch,
            inputs,
            timeout,
        })
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) async fn execute(&self, request: &RunRequest, now_millis: i64) -> RunResult {
        let deadline = Instant::now() + self.timeout;
        let mut detail = json!({
            "executor": "github_workflow",
            "repository": self.repository,
            "workflow": self.workflow,
            "ref": self.git_ref,
        });

        let inputs = match self.render_inputs(request) {
            Ok(inputs) => inputs,
            Err(message) => {
                detail["error"] = message.clone().into();
                return RunResult::failure(format!("not dispatched: {message}"), None, detail);
            }
        };
        debug!(
            inputs = %serde_json::to_string(&inputs).unwrap_or_default(),
            "dispatching workflow"
        );
        detail["inputs"] = Value::Object(inputs.clone());

        let response = match self.dispatch_with_fallback(&inputs, &mut detail).await {
            Ok(response) => response,
            Err(summary) => {
                detail["error"] = summary.clone().into();
                return RunResult::failure(summary, None, detail);
            }
        };
        let status = response.status;
        detail["dispatch_status"] = status.into();

        if !(200..300).contains(&status) {
            let message = github_message(&response.body, self.secrets());
            detail["error"] = message.clone().into();
            return RunResult::failure(format!("HTTP {status}: {message}"), Some(status), detail);
        }
        if let Some(run) = run_from_dispatch(&response.body) {
            return started(run, status, detail);
        }

        match self.find_run(now_millis, deadline).await {
            Ok(Some(run)) => started(run, status, detail),
            Ok(None) => {
                detail["run_lookup"] = "not_found".into();
                dispatched_without_run("workflow dispatched; run not found yet", status, detail)
            }
            Err(message) => {
                detail["run_lookup"] = "failed".into();
                detail["run_lookup_error"] = message.clone().into();
                let summary = http::clean_text(
                    &format!("workflow dispatched; run lookup failed: {message}"),
                    self.secrets(),
                );
                dispatched_without_run(&summary, status, detail)
            }
        }
    }

    fn render_inputs(&self, request: &RunRequest) -> Result<Map<String, Value>, String> {
        let mut rendered = Map::new();
        for (name, template) in &self.inputs {
            let value = template
                .render(request)
                .map_err(|message| format!("workflow input {name}: {message}"))?;
            rendered.insert(name.clone(), Value::String(value));
        }
        Ok(rendered)
    }

    /// Sends the dispatch, and sends it once more without
    /// `return_run_details` when the server rejected that parameter.
    async fn dispatch_with_fallback(
        &self,
        inputs: &Map<String, Value>,
        detail: &mut Value,
    ) -> Result<http::Response, String> {
        let response = self.dispatch(inputs, true).await?;
        if !rejects_run_details(&response) {
            return Ok(response);
        }

        detail["run_details_rejected"] = true.into();
        debug!("the server rejected return_run_details; dispatching without it");
        self.dispatch(inputs, false).await
    }

    async fn dispatch(
        &self,
        inputs: &Map<String, Value>,
        return_run_details: bool,
    ) -> Result<http::Response, String> {
        let mut body = json!({ "ref": self.git_ref, "inputs": inputs });
        if return_run_details {
            body["return_run_details"] = true.into();
        }
        let request = self
            .request(Method::POST, self.dispatch_url.clone())
            .json(&body);
        http::send(request, self.secrets()).await
    }

    /// Reads the runs list until the dispatched run appears, a read fails
    /// for good, the reads in [`LOOKUP_DELAYS_SECS`] are used up, or the
    /// deadline passes.
    async fn find_run(
        &self,
        dispatched_at_millis: i64,
        deadline: Instant,
    ) -> Result<Option<StartedRun>, String> {
        // `created_at` has whole seconds, so a run created in the second of
        // the dispatch must count.
        let earliest_millis = dispatched_at_millis.div_euclid(1000) * 1000;
        let mut last_error = None;

        for delay in LOOKUP_DELAYS_SECS.map(Duration::from_secs) {
            let read_at = Instant::now() + delay;
            if read_at >= deadline {
                break;
            }
            tokio::time::sleep_until(read_at).await;

            let Ok(listing) = tokio::time::timeout_at(deadline, self.list_runs()).await else {
                return Err(last_error.unwrap_or_else(|| TIMED_OUT.to_string()));
            };
            match listing {
                Ok(runs) => {
                    if let Some(run) = newest_run(runs, &self.branch, earliest_millis) {
                        return Ok(Some(run));
                    }
                    last_error = None;
                }
                Err(error) if error.is_transient => last_error = Some(error.message),
                Err(error) => return Err(error.message),
            }
        }

        match last_error {
            Some(message) => Err(message),
            None => Ok(None),
        }
    }

    async fn list_runs(&self) -> Result<Vec<RunEntry>, LookupError> {
        let mut url = self.runs_url.clone();
        url.query_pairs_mut()
            .append_pair("event", "workflow_dispatch")
            .append_pair("branch", &self.branch)
            .append_pair("per_page", RUNS_PER_PAGE);

        let response = http::send(self.request(Method::GET, url), self.secrets())
            .await
            .map_err(|message| LookupError {
                message,
                is_transient: true,
            })?;

        let status = response.status;
        if !(200..300).contains(&status) {
            let message = github_message(&response.body, self.secrets());
            return Err(LookupError {
                message: format!("HTTP {status}: {message}"),
                is_transient: status == 429 || status >= 500,
            });
        }
        serde_json::from_slice::<RunsPage>(&response.body)
            .map(|page| page.workflow_runs)
            .map_err(|error| LookupError {
                message: format!("the runs list is not the expected JSON: {error}"),
                is_transient: false,
            })
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
    }

    fn secrets(&self) -> &[Secret] {
        std::slice::from_ref(&self.token)
    }
}

/// The `200` reply to a dispatch with `return_run_details`.
#[derive(Deserialize)]
struct DispatchRun {
    workflow_run_id: u64,
    html_url: String,
}

/// One page of the runs list; only the fields used are read.
#[derive(Deserialize)]
struct RunsPage {
    workflow_runs: Vec<RunEntry>,
}

#[derive(Deserialize)]
struct RunEntry {
    id: u64,
    html_url: String,
    created_at: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    head_branch: Option<String>,
}

fn run_from_dispatch(body: &[u8]) -> Option<StartedRun> {
    let run: DispatchRun = serde_json::from_slice(body).ok()?;
    Some(StartedRun {
        id: run.workflow_run_id,
        html_url: run.html_url,
        found_by: "dispatch_response",
    })
}

/// Picks the newest `workflow_dispatch` run on `branch` created at or
/// after `earliest_millis`.
// NOTE: another dispatch of the same workflow and ref in the same seconds
// can be picked instead; only servers without `return_run_details` take
// this path. A clock ahead of GitHub's can miss the run, which leaves the
// result without a link.
fn newest_run(runs: Vec<RunEntry>, branch: &str, earliest_millis: i64) -> Option<StartedRun> {
    runs.into_iter()
        .filter(|run| {
            run.event
                .as_deref()
                .is_none_or(|event| event == "workflow_dispatch")
        })
        .filter(|run| run.head_branch.as_deref().is_none_or(|head| head == branch))
        .filter_map(|run| {
            let created = chrono::DateTime::parse_from_rfc3339(&run.created_at).ok()?;
            let created_millis = created.timestamp_millis();
            (created_millis >= earliest_millis).then_some((created_millis, run))
        })
        .max_by_key(|(created_millis, run)| (*created_millis, run.id))
        .map(|(_, run)| StartedRun {
            id: run.id,
            html_url: run.html_url,
            found_by: "runs_list",
        })
}

fn started(run: StartedRun, status: u16, mut detail: Value) -> RunResult {
    detail["workflow_run_id"] = run.id.into();
    detail["html_url"] = run.html_url.clone().into();
    detail["run_lookup"] = run.found_by.into();

    // The link is shown on cards and in terminals, so it is kept in its
    // parsed form, with control characters percent-encoded.
    let link = Url::parse(&run.html_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .map(String::from);
    RunResult {
        success: true,
        summary: format!("workflow run {} started", run.id),
        http_status: Some(status),
        link,
        detail,
    }
}

fn dispatched_without_run(summary: &str, status: u16, detail: Value) -> RunResult {
    RunResult {
        success: true,
        summary: summary.to_string(),
        http_status: Some(status),
        link: None,
        detail,
    }
}

/// Checks whether a dispatch failed only because the server does not
/// support `return_run_details`.
fn rejects_run_details(response: &http::Response) -> bool {
    matches!(response.status, 400 | 422)
        && String::from_utf8_lossy(&response.body).contains("return_run_details")
}

/// Reads GitHub's error body: `message`, then the messages in `errors`.
/// Falls back to an excerpt of the body.
fn github_message(body: &[u8], secrets: &[Secret]) -> String {
    let Ok(error) = serde_json::from_slice::<Value>(body) else {
        return http::body_excerpt(body, secrets);
    };
    let Some(message) = error.get("message").and_then(Value::as_str) else {
        return http::body_excerpt(body, secrets);
    };

    let details: Vec<String> = error
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| match item {
            Value::String(text) => Some(text.clone()),
            other => other
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
        .collect();

    let text = if details.is_empty() {
        message.to_string()
    } else {
        format!("{message}: {}", details.join("; "))
    };
    http::body_excerpt(text.as_bytes(), secrets)
}

fn authorization_header(variable: &str, token: &Secret) -> Result<HeaderValue, Problem> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        (
            "executor.token_env".to_string(),
            format!(
                "the value of {variable} is not a valid token: it contains a line break or \
                 another control character"
            ),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Checks an owner or repository name: letters, digits, `.`, `_` and `-`.
fn check_name(field: &str, name: &str) -> Result<(), Problem> {
    let is_valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if is_valid {
        return Ok(());
    }
    Err((
        field.to_string(),
        format!("invalid name {name:?}: use letters, digits, '.', '_' and '-'"),
    ))
}

fn check_workflow(workflow: &str) -> Result<(), Problem> {
    let is_id = !workflow.is_empty() && workflow.chars().all(|c| c.is_ascii_digit());
    let is_file = (workflow.ends_with(".yml") || workflow.ends_with(".yaml"))
        && !workflow.contains(['/', '\\'])
        && !workflow.chars().any(char::is_whitespace);
    if is_id || is_file {
        return Ok(());
    }
    Err((
        "executor.workflow".to_string(),
        format!(
            "invalid workflow {workflow:?}: expected a file name in .github/workflows such as \
             deploy.yml, or a numeric workflow id"
        ),
    ))
}

/// Returns the ref as the runs list names it: without `refs/heads/` or
/// `refs/tags/`.
fn branch_of(git_ref: &str) -> Result<String, Problem> {
    if git_ref.is_empty() || git_ref.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            "executor.ref".to_string(),
            format!("invalid ref {git_ref:?}: expected a branch or tag name such as main"),
        ));
    }
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref);
    Ok(branch.to_string())
}

fn parse_api_url(text: &str) -> Result<Url, Problem> {
    let url = http::parse_http_url("executor.api_url", text)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err((
            "executor.api_url".to_string(),
            "invalid api_url: it must not have a query or fragment".to_string(),
        ));
    }
    Ok(url)
}

/// Appends path segments to the API base, which may have its own path
/// (`/api/v3` on GitHub Enterprise Server). Segments are percent-encoded.
fn join_path(base: &Url, segments: &[&str], last: &str) -> Url {
    let mut url = base.clone();
    // An http(s) URL always has a path that segments can be added to.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments).push(last);
    }
    url
}

/// A YAML scalar read as text, so `workflow: 161335` and `replicas: 3`
/// need no quotes.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarTextVisitor)
    }
}

struct ScalarTextVisitor;

impl de::Visitor<'_> for ScalarTextVisitor {
    type Value = ScalarText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ScalarText, E> {
        Ok(ScalarText(value.to_string()))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<ScalarText, E> {
        Ok(ScalarText(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ScalarText, E> {
        Ok(ScalarText(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ScalarText, E> {
        Ok(ScalarText(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<ScalarText, E> {
        Ok(ScalarText(value.to_string()))
    }
}

fn scalar_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    ScalarText::deserialize(deserializer).map(|text| text.0)
}

fn scalar_text_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, ScalarText>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(name, text)| (name, text.0)).collect())
}
