//! A local stand-in for the GitHub Actions REST API: workflow dispatch and
//! the runs list of a workflow.
//!
//! It serves, on 127.0.0.1 and also under `/api/v3` as GitHub Enterprise
//! Server does:
//!
//! - `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`
//!   with `{"ref", "inputs", "return_run_details"}`. It creates a workflow
//!   run and replies `200 {"workflow_run_id", "run_url", "html_url"}` when
//!   `return_run_details` is true, else `204`, as github.com does.
//!   [`RunDetails`] makes it behave like a server that ignores or rejects
//!   the parameter.
//! - `GET /repos/{owner}/{repo}/actions/workflows/{workflow}/runs`, newest
//!   first, filtered by `event` and `branch`, with run objects shaped like
//!   GitHub's (`id`, `html_url`, `created_at`, `event`, `head_branch`,
//!   `status` and more).
//!
//! Every request needs `Authorization: Bearer {token}` (401 otherwise) and
//! an `X-GitHub-Api-Version` of `2022-11-28` or `2026-03-10`. A missing
//! version header gets a 400 here, where GitHub would assume `2022-11-28`,
//! so tests see that the client sends it. Errors have GitHub's shape:
//! `{"message", "documentation_url", "status"}`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// API versions the stand-in accepts.
const API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];

/// First id given to a workflow run.
const FIRST_RUN_ID: u64 = 16_250_000_001;

/// The dispatch endpoint's treatment of `return_run_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunDetails {
    /// As github.com: `200` with the run's id and URLs when asked.
    #[default]
    Returned,
    /// As a server that predates the parameter and ignores it: always
    /// `204`.
    Ignored,
    /// As a server that validates keys strictly: `422` naming the
    /// parameter, and no run.
    Rejected,
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct GithubRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Header names in lowercase.
    pub headers: BTreeMap<String, String>,
    /// The JSON body; `Null` when empty, a JSON string when not JSON.
    pub body: Value,
}

impl GithubRequest {
    /// Returns a header's value; `name` is matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A workflow run in the stand-in's state.
#[derive(Debug, Clone)]
pub struct WorkflowRun {
    pub id: u64,
    pub owner: String,
    pub repository: String,
    /// The workflow as the request path named it: a file name or an id.
    pub workflow: String,
    pub head_branch: String,
    pub event: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// The dispatch's `inputs`; `Null` for runs added with
    /// [`GithubStandin::add_run`].
    pub inputs: Value,
    pub html_url: String,
    /// Listings left that leave this run out, to mimic the delay before
    /// GitHub lists a new run.
    hidden_for: usize,
}

/// A running GitHub stand-in. Dropping it stops the server.
pub struct GithubStandin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop, aborted on drop.
    task: JoinHandle<()>,
}

impl Drop for GithubStandin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// State shared by the handle and the server task. The mutex is a std one
/// because no lock is held across an `.await`.
struct Shared {
    token: String,
    base_url: String,
    state: Mutex<StandinState>,
    /// Woken each time a request is recorded.
    recorded: Notify,
}

struct StandinState {
    requests: Vec<GithubRequest>,
    runs: Vec<WorkflowRun>,
    next_run_id: u64,
    run_details: RunDetails,
    /// Inputs the workflow declares; `None` accepts any.
    declared_inputs: Option<BTreeSet<String>>,
    /// Listings that leave out each run created from now on.
    hide_new_runs_for: usize,
    /// Status and message for the next request, whatever it is.
    fail_next: Option<(u16, String)>,
}

impl GithubStandin {
    /// Starts a stand-in on an ephemeral port of 127.0.0.1 that accepts
    /// `token` as the bearer token.
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the GitHub stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;

        let shared = Arc::new(Shared {
            token: token.to_string(),
            base_url: format!("http://{addr}"),
            state: Mutex::new(StandinState {
                requests: Vec::new(),
                runs: Vec::new(),
                next_run_id: FIRST_RUN_ID,
                run_details: RunDetails::default(),
                declared_inputs: None,
                hide_new_runs_for: 0,
                fail_next: None,
            }),
            recorded: Notify::new(),
        });
        let router = Router::new()
            .fallback(handle_request)
            .with_state(shared.clone());

        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(error = %error, "GitHub stand-in stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Returns the API base URL, as `https://api.github.com` would be
    /// configured.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the API base URL with GitHub Enterprise Server's `/api/v3`.
    pub fn enterprise_api_url(&self) -> String {
        format!("http://{}/api/v3", self.addr)
    }

    /// Sets how dispatches treat `return_run_details`.
    pub fn set_run_details(&self, run_details: RunDetails) {
        self.state().run_details = run_details;
    }

    /// Declares the workflow's inputs; a dispatch with any other input gets
    /// a 422, as GitHub does.
    pub fn declare_inputs(&self, names: &[&str]) {
        let names = names.iter().map(|name| name.to_string()).collect();
        self.state().declared_inputs = Some(names);
    }

    /// Leaves each run dispatched from now on out of the next `listings`
    /// runs lists that would include it.
    pub fn hide_new_runs_for(&self, listings: usize) {
        self.state().hide_new_runs_for = listings;
    }

    /// Adds a `workflow_dispatch` run created at `created_at`, as if
    /// someone else had dispatched it. Returns its id.
    pub fn add_run(
        &self,
        owner: &str,
        repository: &str,
        workflow: &str,
        branch: &str,
        created_at: SystemTime,
    ) -> u64 {
        let mut state = self.state();
        let id = state.take_run_id();
        let run = WorkflowRun {
            id,
            owner: owner.to_string(),
            repository: repository.to_string(),
            workflow: workflow.to_string(),
            head_branch: branch.to_string(),
            event: "workflow_dispatch".to_string(),
            status: "completed".to_string(),
            created_at: DateTime::<Utc>::from(created_at),
            inputs: Value::Null,
            html_url: self.shared.html_url(owner, repository, id),
            hidden_for: 0,
        };
        state.runs.push(run);
        id
    }

    /// Answers the next request, whatever it is, with this status and a
    /// GitHub error body holding `message`.
    pub fn fail_next(&self, status: u16, message: &str) {
        self.state().fail_next = Some((status, message.to_string()));
    }

    /// Returns every request received so far, in order.
    pub fn requests(&self) -> Vec<GithubRequest> {
        self.state().requests.clone()
    }

    /// Returns every workflow run, added and dispatched, oldest first.
    pub fn runs(&self) -> Vec<WorkflowRun> {
        self.state().runs.clone()
    }

    /// Waits until at least `count` requests have arrived and returns all of
    /// them. Fails after `timeout`.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<GithubRequest>> {
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
                    "expected {count} GitHub requests within {timeout:?}, but {} arrived",
                    requests.len()
                );
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, StandinState> {
        lock(&self.shared.state)
    }
}

impl StandinState {
    fn take_run_id(&mut self) -> u64 {
        let id = self.next_run_id;
        self.next_run_id += 1;
        id
    }
}

impl Shared {
    fn html_url(&self, owner: &str, repository: &str, id: u64) -> String {
        format!("{}/{owner}/{repository}/actions/runs/{id}", self.base_url)
    }

    fn api_run_url(&self, owner: &str, repository: &str, id: u64) -> String {
        format!(
            "{}/repos/{owner}/{repository}/actions/runs/{id}",
            self.base_url
        )
    }
}

/// The workflow endpoint a path names.
struct WorkflowPath {
    owner: String,
    repository: String,
    workflow: String,
    endpoint: String,
}

fn parse_path(path: &str) -> Option<WorkflowPath> {
    let path = path.strip_prefix("/api/v3").unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [
            "repos",
            owner,
            repository,
            "actions",
            "workflows",
            workflow,
            endpoint,
        ] => Some(WorkflowPath {
            owner: owner.to_string(),
            repository: repository.to_string(),
            workflow: workflow.to_string(),
            endpoint: endpoint.to_string(),
        }),
        _ => None,
    }
}

async fn handle_request(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = GithubRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers: header_map(&headers),
        body: parse_body(&body),
    };
    let fail_next = {
        let mut state = lock(&shared.state);
        state.requests.push(request.clone());
        state.fail_next.take()
    };
    shared.recorded.notify_waiters();

    if let Some((status, message)) = fail_next {
        return error_response(status, &message);
    }
    if let Err((status, message)) = check_credentials(&shared, &request) {
        return error_response(status, &message);
    }

    match (method, parse_path(&request.path)) {
        (Method::POST, Some(path)) if path.endpoint == "dispatches" => {
            dispatch(&shared, &path, &request.body)
        }
        (Method::GET, Some(path)) if path.endpoint == "runs" => list_runs(&shared, &path, &request),
        _ => error_response(404, "Not Found"),
    }
}

/// Returns the status and message of a request with missing or wrong
/// credentials or API version.
fn check_credentials(shared: &Shared, request: &GithubRequest) -> Result<(), (u16, String)> {
    let expected = [
        format!("Bearer {}", shared.token),
        format!("token {}", shared.token),
    ];
    match request.header("authorization") {
        None => return Err((401, "Requires authentication".to_string())),
        Some(sent) if !expected.iter().any(|value| value == sent) => {
            return Err((401, "Bad credentials".to_string()));
        }
        Some(_) => {}
    }

    match request.header("x-github-api-version") {
        None => Err((
            400,
            "the stand-in requires the X-GitHub-Api-Version header".to_string(),
        )),
        Some(version) if !API_VERSIONS.contains(&version) => {
            Err((400, format!("API version {version} is not supported")))
        }
        Some(_) => Ok(()),
    }
}

fn dispatch(shared: &Shared, path: &WorkflowPath, body: &Value) -> Response {
    let Some(fields) = body.as_object() else {
        return error_response(400, "Problems parsing JSON");
    };
    let mut state = lock(&shared.state);

    for key in fields.keys() {
        let is_known = matches!(key.as_str(), "ref" | "inputs")
            || (key == "return_run_details" && state.run_details != RunDetails::Rejected);
        if !is_known {
            return error_response(
                422,
                &format!("Invalid request.\n\n\"{key}\" is not a permitted key."),
            );
        }
    }
    let Some(git_ref) = fields.get("ref").and_then(Value::as_str) else {
        return error_response(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
    };
    let inputs = fields
        .get("inputs")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    if let Err(message) = check_inputs(&inputs, state.declared_inputs.as_ref()) {
        return error_response(422, &message);
    }

    let id = state.take_run_id();
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref);
    let run = WorkflowRun {
        id,
        owner: path.owner.clone(),
        repository: path.repository.clone(),
        workflow: path.workflow.clone(),
        head_branch: branch.to_string(),
        event: "workflow_dispatch".to_string(),
        status: "queued".to_string(),
        created_at: DateTime::<Utc>::from(SystemTime::now()),
        inputs,
        html_url: shared.html_url(&path.owner, &path.repository, id),
        hidden_for: state.hide_new_runs_for,
    };
    let html_url = run.html_url.clone();
    state.runs.push(run);

    let wants_details = fields.get("return_run_details") == Some(&Value::Bool(true));
    if wants_details && state.run_details == RunDetails::Returned {
        let details = json!({
            "workflow_run_id": id,
            "run_url": shared.api_run_url(&path.owner, &path.repository, id),
            "html_url": html_url,
        });
        return (StatusCode::OK, axum::Json(details)).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

fn check_inputs(inputs: &Value, declared: Option<&BTreeSet<String>>) -> Result<(), String> {
    let Some(inputs) = inputs.as_object() else {
        return Err("Invalid request.\n\nFor 'properties/inputs', it is not an object.".into());
    };
    for (name, value) in inputs {
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            return Err(format!(
                "Invalid request.\n\nFor 'properties/inputs/{name}', it is not a string, number \
                 or boolean."
            ));
        }
    }
    let Some(declared) = declared else {
        return Ok(());
    };
    let unexpected: Vec<String> = inputs
        .keys()
        .filter(|name| !declared.contains(*name))
        .map(|name| format!("{name:?}"))
        .collect();
    if unexpected.is_empty() {
        return Ok(());
    }
    Err(format!(
        "Unexpected inputs provided: [{}]",
        unexpected.join(", ")
    ))
}

fn list_runs(shared: &Shared, path: &WorkflowPath, request: &GithubRequest) -> Response {
    let event = request.query.get("event");
    let branch = request.query.get("branch");
    let per_page = request
        .query
        .get("per_page")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);

    let mut state = lock(&shared.state);
    let mut matching: Vec<&mut WorkflowRun> = state
        .runs
        .iter_mut()
        .filter(|run| {
            run.owner == path.owner
                && run.repository == path.repository
                && run.workflow == path.workflow
                && event.is_none_or(|event| &run.event == event)
                && branch.is_none_or(|branch| &run.head_branch == branch)
        })
        .collect();
    matching.sort_by_key(|run| std::cmp::Reverse((run.created_at, run.id)));

    let mut visible = Vec::new();
    for run in matching {
        if run.hidden_for > 0 {
            run.hidden_for -= 1;
        } else {
            visible.push(run_json(shared, run));
        }
    }
    let total_count = visible.len();
    visible.truncate(per_page);

    let page = json!({ "total_count": total_count, "workflow_runs": visible });
    (StatusCode::OK, axum::Json(page)).into_response()
}

fn run_json(shared: &Shared, run: &WorkflowRun) -> Value {
    let created_at = run.created_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let workflow_file = if run.workflow.ends_with(".yml") || run.workflow.ends_with(".yaml") {
        run.workflow.clone()
    } else {
        "deploy.yml".to_string()
    };
    json!({
        "id": run.id,
        "name": workflow_file.trim_end_matches(".yml").trim_end_matches(".yaml"),
        "node_id": format!("WFR_kwLO{}", run.id),
        "head_branch": run.head_branch,
        "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "path": format!(".github/workflows/{workflow_file}"),
        "run_number": run.id - FIRST_RUN_ID + 1,
        "run_attempt": 1,
        "event": run.event,
        "status": run.status,
        "conclusion": if run.status == "completed" { json!("success") } else { Value::Null },
        "url": shared.api_run_url(&run.owner, &run.repository, run.id),
        "html_url": run.html_url,
        "created_at": created_at,
        "updated_at": created_at,
        "run_started_at": created_at,
    })
}

fn error_response(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest/actions/workflows",
        "status": status.as_u16().to_string(),
    });
    (status, axum::Json(body)).into_response()
}

fn parse_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect()
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding it
/// left plain data behind, still fit to read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
