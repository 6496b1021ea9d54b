//! Action executors against local stand-ins: the signed webhook (body,
//! headers, signature, failures, timeouts) and the GitHub workflow dispatch
//! (rendered inputs, the run link, GitHub's errors), and the configuration
//! problems each reports at build.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentdesk::actions::executor::{
    Executor, ExecutorConfig, GithubWorkflowConfig, RunRequest, RunResult, SIGNATURE_TEST_VECTOR,
    TargetEntity, WebhookConfig, webhook_signature,
};
use agentdesk_standins::github::{GithubStandin, RunDetails};
use agentdesk_standins::webhook::{WebhookReceiver, verify_signature};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const WEBHOOK_SECRET: &str = "whsec_test_9d2e71b4c0";
const DEPLOY_API_KEY: &str = "dk_live_58c1f0e2a7b94d63";
const GITHUB_TOKEN: &str = "ghp_test_7Qm2Xc9Lr4Tn8Vb1";
const WAIT: Duration = Duration::from_secs(10);

/// 2026-01-01T09:30:00Z and 72.25 s later.
const REQUESTED_AT: i64 = 1_767_259_800_000;
const APPROVED_AT: i64 = 1_767_259_872_250;

fn env_with(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<String> + 'static {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }
}

fn standard_env() -> impl Fn(&str) -> Option<String> {
    env_with(&[
        ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("DEPLOY_API_KEY", DEPLOY_API_KEY),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
    ])
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

fn run_request() -> RunRequest {
    let mut inputs = Map::new();
    inputs.insert("environment".to_string(), json!("staging"));
    inputs.insert("replicas".to_string(), json!(3));
    RunRequest {
        run_id: "0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d".to_string(),
        action_id: "restart-service".to_string(),
        action_title: "Restart a service".to_string(),
        inputs,
        target: Some(TargetEntity {
            reference: "service:checkout".to_string(),
            blueprint: "service".to_string(),
            identifier: "checkout".to_string(),
            title: "Checkout".to_string(),
        }),
        requester: "U0ALICE001".to_string(),
        approver: Some("U0BOB00001".to_string()),
        invocation_id: Some("0195a3c1-2b3c-7d4e-8f9a-0b1c2d3e4f5a".to_string()),
        requested_at: REQUESTED_AT,
        approved_at: Some(APPROVED_AT),
    }
}

fn webhook_config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        method: "POST".to_string(),
        headers: BTreeMap::from([("X-Api-Key".to_string(), "${DEPLOY_API_KEY}".to_string())]),
        secret_env: "AGENTDESK_WEBHOOK_SECRET".to_string(),
        timeout_secs: 5,
    }
}

fn build(config: ExecutorConfig) -> Executor {
    config
        .build(&standard_env())
        .unwrap_or_else(|problems| panic!("the executor should build: {problems:?}"))
}

fn problems_of(
    config: ExecutorConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    match config.build(env) {
        Ok(executor) => panic!("the executor should not build: {executor:?}"),
        Err(problems) => problems,
    }
}

/// Returns every text a run result could show or store.
fn visible_text(result: &RunResult) -> String {
    format!("{result:?} {}", result.detail)
}

/// Returns a URL on 127.0.0.1 where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("read the bound address");
    drop(listener);
    format!("http://{addr}/hooks/agentdesk")
}

#[derive(Deserialize)]
struct ActionBlock {
    executor: ExecutorConfig,
}

fn parse_yaml(text: &str) -> Result<ExecutorConfig, String> {
    serde_saphyr::from_str::<ActionBlock>(text)
        .map(|block| block.executor)
        .map_err(|error| error.to_string())
}

// Webhook

#[tokio::test]
async fn webhook_sends_documented_body_and_headers() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));
    let now = now_millis();

    let result = executor.execute(&run_request(), now).await;

    assert!(result.success, "{result:?}");
    assert_eq!(result.summary, "HTTP 200");
    assert_eq!(result.http_status, Some(200));
    assert_eq!(result.link, None);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/agentdesk");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some("agentdesk"));
    assert_eq!(
        request.header("x-agentdesk-run-id"),
        Some("0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d")
    );
    let expected_timestamp = (now / 1000).to_string();
    assert_eq!(
        request.header("x-agentdesk-timestamp"),
        Some(expected_timestamp.as_str())
    );
    assert_eq!(request.header("x-api-key"), Some(DEPLOY_API_KEY));

    assert_eq!(
        request.json(),
        json!({
            "run_id": "0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d",
            "action": {"id": "restart-service", "title": "Restart a service"},
            "inputs": {"environment": "staging", "replicas": 3},
            "target": {
                "ref": "service:checkout",
                "blueprint": "service",
                "identifier": "checkout",
                "title": "Checkout",
            },
            "requester": {"slack_user_id": "U0ALICE001"},
            "approver": {"slack_user_id": "U0BOB00001"},
            "invocation_id": "0195a3c1-2b3c-7d4e-8f9a-0b1c2d3e4f5a",
            "requested_at": "2026-01-01T09:30:00.000Z",
            "approved_at": "2026-01-01T09:31:12.250Z",
        })
    );
}

#[tokio::test]
async fn webhook_body_has_nulls_for_absent_parts() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));
    let request = RunRequest {
        target: None,
        requester: "cli".to_string(),
        approver: None,
        invocation_id: None,
        approved_at: None,
        ..run_request()
    };

    let result = executor.execute(&request, now_millis()).await;

    assert!(result.success, "{result:?}");
    let body = receiver.requests()[0].json();
    assert_eq!(body["target"], Value::Null);
    assert_eq!(body["approver"], Value::Null);
    assert_eq!(body["invocation_id"], Value::Null);
    assert_eq!(body["approved_at"], Value::Null);
    assert_eq!(body["requester"], json!({"slack_user_id": "cli"}));
}

#[tokio::test]
async fn receiver_verifies_signature_and_rejects_tampering() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));

    executor.execute(&run_request(), now_millis()).await;

    let request = &receiver.requests()[0];
    assert!(
        request.signature_valid,
        "the receiver rejected the signature"
    );
    let timestamp = request.header("x-agentdesk-timestamp").expect("timestamp");
    let signature = request.header("x-agentdesk-signature").expect("signature");
    assert!(signature.starts_with("v1="));
    assert!(receiver.verify(timestamp, &request.body, signature));

    let mut tampered = request.body.clone();
    let position = tampered
        .windows(7)
        .position(|window| window == b"staging")
        .expect("the body holds the input");
    tampered[position..position + 7].copy_from_slice(b"product");
    assert!(!receiver.verify(timestamp, &tampered, signature));

    let later = (timestamp.parse::<i64>().expect("a number") + 1).to_string();
    assert!(!receiver.verify(&later, &request.body, signature));
}

#[tokio::test]
async fn receiver_with_another_secret_rejects_signature() {
    let receiver = WebhookReceiver::start("another-secret")
        .await
        .expect("start");
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));

    executor.execute(&run_request(), now_millis()).await;

    assert!(!receiver.requests()[0].signature_valid);
}

#[test]
fn signature_test_vector_holds() {
    let vector = SIGNATURE_TEST_VECTOR;

    let signature = webhook_signature(vector.secret, vector.timestamp, vector.body.as_bytes());

    assert_eq!(signature, vector.signature);
    assert_eq!(
        vector.signature,
        "v1=2129022f4f7a34f25ff7ab811743feaed5858e782bb8d18ef77e07c698f5aa08"
    );
    assert!(verify_signature(
        vector.secret.as_bytes(),
        vector.timestamp,
        vector.body.as_bytes(),
        vector.signature
    ));

    // The README publishes the same vector for receiver authors.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README exists");
    for part in [
        vector.secret,
        vector.timestamp,
        vector.body,
        vector.signature,
    ] {
        assert!(
            readme.contains(&format!("`{part}`")),
            "the README shows {part}"
        );
    }
}

#[tokio::test]
async fn secret_header_stays_out_of_debug_and_result() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    // A receiver that echoes the headers it was sent.
    receiver.respond_with(
        403,
        &format!(
            r#"{{"error":"key {DEPLOY_API_KEY} may not deploy","secret":"{WEBHOOK_SECRET}"}}"#
        ),
    );
    let config = ExecutorConfig::Webhook(webhook_config(&receiver.url()));
    let executor = build(config.clone());

    let result = executor.execute(&run_request(), now_millis()).await;

    assert_eq!(
        receiver.requests()[0].header("x-api-key"),
        Some(DEPLOY_API_KEY)
    );
    assert!(!result.success);
    assert!(result.summary.contains("[redacted]"), "{}", result.summary);
    for text in [
        format!("{executor:?}"),
        format!("{config:?}"),
        visible_text(&result),
    ] {
        assert!(!text.contains(DEPLOY_API_KEY), "the API key leaked: {text}");
        assert!(
            !text.contains(WEBHOOK_SECRET),
            "the HMAC key leaked: {text}"
        );
    }
}

#[tokio::test]
async fn variable_inside_header_value_is_redacted() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    receiver.respond_with(401, &format!("token {DEPLOY_API_KEY} expired"));
    let mut webhook = webhook_config(&receiver.url());
    webhook.headers = BTreeMap::from([(
        "Authorization".to_string(),
        "Bearer ${DEPLOY_API_KEY}".to_string(),
    )]);
    let executor = build(ExecutorConfig::Webhook(webhook));

    let result = executor.execute(&run_request(), now_millis()).await;

    let expected = format!("Bearer {DEPLOY_API_KEY}");
    assert_eq!(
        receiver.requests()[0].header("authorization"),
        Some(expected.as_str())
    );
    assert_eq!(result.summary, "HTTP 401: token [redacted] expired");
}

#[test]
fn literal_header_value_stays_out_of_debug() {
    let mut webhook = webhook_config("https://deploy.example.com/hooks");
    webhook.headers.insert(
        "Authorization".to_string(),
        "Basic ZGVwbG95OnMzY3JldA==".to_string(),
    );
    let config = ExecutorConfig::Webhook(webhook);

    let executor = build(config.clone());

    assert!(!format!("{config:?}").contains("ZGVwbG95OnMzY3JldA"));
    assert!(!format!("{executor:?}").contains("ZGVwbG95OnMzY3JldA"));
}

#[tokio::test]
async fn webhook_server_error_is_failure_with_status() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    receiver.respond_with(500, r#"{"error": "deploy queue unavailable"}"#);
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, Some(500));
    assert_eq!(
        result.summary,
        r#"HTTP 500: {"error": "deploy queue unavailable"}"#
    );
    assert_eq!(result.detail["status"], 500);
}

#[tokio::test]
async fn long_error_body_is_cut_to_300_chars() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    receiver.respond_with(502, &"x".repeat(5_000));
    let executor = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));

    let result = executor.execute(&run_request(), now_millis()).await;

    let excerpt = result
        .summary
        .strip_prefix("HTTP 502: ")
        .expect("the summary names the status");
    assert_eq!(excerpt, format!("{}...", "x".repeat(300)));
}

#[tokio::test]
async fn webhook_timeout_reports_unknown_outcome_without_retry() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    receiver.delay(Duration::from_secs(3));
    let config = WebhookConfig {
        timeout_secs: 1,
        ..webhook_config(&receiver.url())
    };
    let executor = build(ExecutorConfig::Webhook(config));

    let started = std::time::Instant::now();
    let result = executor.execute(&run_request(), now_millis()).await;
    let elapsed = started.elapsed();

    assert!(!result.success);
    assert_eq!(result.summary, "timed out, outcome unknown");
    assert_eq!(result.http_status, None);
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    // Long enough for a retry to have arrived.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn webhook_connection_refused_is_failure() {
    let executor = build(ExecutorConfig::Webhook(webhook_config(&closed_port_url())));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, None);
    assert!(
        result.summary.starts_with("connection failed: "),
        "{}",
        result.summary
    );
}

#[tokio::test]
async fn webhook_put_uses_configured_method() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    let config = WebhookConfig {
        method: "put".to_string(),
        ..webhook_config(&receiver.url())
    };
    let executor = build(ExecutorConfig::Webhook(config));

    executor.execute(&run_request(), now_millis()).await;

    let requests = receiver
        .wait_for_requests(1, WAIT)
        .await
        .expect("a request");
    assert_eq!(requests[0].method, "PUT");
    assert!(requests[0].signature_valid);
}

#[test]
fn missing_webhook_secret_variable_is_a_problem() {
    let config = ExecutorConfig::Webhook(webhook_config("https://deploy.example.com/hooks"));
    let env = env_with(&[("DEPLOY_API_KEY", DEPLOY_API_KEY)]);

    let problems = problems_of(config, &env);

    assert_eq!(
        problems,
        vec![(
            "executor.secret_env".to_string(),
            "environment variable AGENTDESK_WEBHOOK_SECRET is not set or is empty".to_string()
        )]
    );
}

#[test]
fn invalid_webhook_settings_are_all_reported() {
    let config = ExecutorConfig::Webhook(WebhookConfig {
        url: "ftp://deploy.example.com/hooks".to_string(),
        method: "DELETE".to_string(),
        headers: BTreeMap::from([
            ("X-Api-Key".to_string(), "${UNSET_KEY}".to_string()),
            ("X-Agentdesk-Signature".to_string(), "forged".to_string()),
        ]),
        secret_env: "AGENTDESK_WEBHOOK_SECRET".to_string(),
        timeout_secs: 0,
    });

    let problems = problems_of(config, &standard_env());

    let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "executor.url",
            "executor.method",
            "executor.timeout_secs",
            "executor.headers.X-Agentdesk-Signature",
            "executor.headers.X-Api-Key",
        ]
    );
    assert!(problems[4].1.contains("UNSET_KEY"), "{problems:?}");
}

#[test]
fn webhook_yaml_parses_with_defaults() {
    let yaml = "executor:\n  type: webhook\n  url: https://deploy.example.com/hooks/agentdesk\n  \
                headers:\n    X-Api-Key: ${DEPLOY_API_KEY}\n  secret_env: AGENTDESK_WEBHOOK_SECRET\n";

    let config = parse_yaml(yaml).expect("valid YAML");

    let ExecutorConfig::Webhook(webhook) = config else {
        panic!("expected a webhook executor");
    };
    assert_eq!(webhook.method, "POST");
    assert_eq!(webhook.timeout_secs, 30);
    assert_eq!(webhook.headers["X-Api-Key"], "${DEPLOY_API_KEY}");
}

#[test]
fn unknown_executor_field_is_rejected() {
    let yaml = "executor:\n  type: webhook\n  url: https://deploy.example.com/hooks\n  \
                secret_env: S\n  retries: 3\n";

    let error = parse_yaml(yaml).expect_err("an unknown field");

    assert!(error.contains("retries"), "{error}");
}

// GitHub

fn github_config(api_url: &str) -> GithubWorkflowConfig {
    GithubWorkflowConfig {
        owner: "bramblewick".to_string(),
        repository: "deployments".to_string(),
        workflow: "deploy.yml".to_string(),
        git_ref: "main".to_string(),
        inputs: BTreeMap::from([
            ("service".to_string(), "{{target.identifier}}".to_string()),
            (
                "environment".to_string(),
                "{{inputs.environment}}".to_string(),
            ),
            (
                "reason".to_string(),
                "agentdesk run {{run_id}} by {{requester}}".to_string(),
            ),
        ]),
        token_env: "GITHUB_TOKEN".to_string(),
        api_url: api_url.to_string(),
        timeout_secs: 10,
    }
}

async fn github_standin() -> GithubStandin {
    let standin = GithubStandin::start(GITHUB_TOKEN).await.expect("start");
    standin.declare_inputs(&["service", "environment", "reason"]);
    standin
}

#[tokio::test]
async fn github_dispatch_sends_rendered_inputs_and_links_run() {
    let standin = github_standin().await;
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    let runs = standin.runs();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert!(result.success, "{result:?}");
    assert_eq!(result.http_status, Some(200));
    assert_eq!(result.summary, format!("workflow run {} started", run.id));
    assert_eq!(result.link.as_deref(), Some(run.html_url.as_str()));
    assert_eq!(result.detail["run_lookup"], "dispatch_response");

    let requests = standin.requests();
    assert_eq!(requests.len(), 1);
    let dispatch = &requests[0];
    assert_eq!(dispatch.method, "POST");
    assert_eq!(
        dispatch.path,
        "/repos/bramblewick/deployments/actions/workflows/deploy.yml/dispatches"
    );
    let bearer = format!("Bearer {GITHUB_TOKEN}");
    assert_eq!(dispatch.header("authorization"), Some(bearer.as_str()));
    assert_eq!(
        dispatch.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(dispatch.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(
        dispatch.body,
        json!({
            "ref": "main",
            "inputs": {
                "service": "checkout",
                "environment": "staging",
                "reason": "agentdesk run 0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d by U0ALICE001",
            },
            "return_run_details": true,
        })
    );
}

#[tokio::test]
async fn github_run_found_in_runs_list_after_204() {
    let standin = github_standin().await;
    standin.set_run_details(RunDetails::Ignored);
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let older = standin.add_run(
        "bramblewick",
        "deployments",
        "deploy.yml",
        "main",
        an_hour_ago,
    );
    // GitHub lists a new run a moment after the dispatch.
    standin.hide_new_runs_for(1);
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    let dispatched = standin.runs().last().expect("a dispatched run").clone();
    assert_ne!(dispatched.id, older);
    assert!(result.success, "{result:?}");
    assert_eq!(result.http_status, Some(204));
    assert_eq!(result.link.as_deref(), Some(dispatched.html_url.as_str()));
    assert_eq!(result.detail["run_lookup"], "runs_list");

    let requests = standin.requests();
    let listings: Vec<_> = requests
        .iter()
        .filter(|request| request.method == "GET")
        .collect();
    assert_eq!(
        listings.len(),
        2,
        "one listing missed the run, the next found it"
    );
    assert_eq!(
        listings[0].path,
        "/repos/bramblewick/deployments/actions/workflows/deploy.yml/runs"
    );
    assert_eq!(listings[0].query["event"], "workflow_dispatch");
    assert_eq!(listings[0].query["branch"], "main");
    assert_eq!(
        listings[0].header("x-github-api-version"),
        Some("2022-11-28")
    );
}

#[tokio::test]
async fn github_older_runs_are_not_linked() {
    let standin = github_standin().await;
    standin.set_run_details(RunDetails::Ignored);
    standin.hide_new_runs_for(100);
    let a_minute_ago = SystemTime::now() - Duration::from_secs(60);
    standin.add_run(
        "bramblewick",
        "deployments",
        "deploy.yml",
        "main",
        a_minute_ago,
    );
    let config = GithubWorkflowConfig {
        timeout_secs: 2,
        ..github_config(&standin.api_url())
    };
    let executor = build(ExecutorConfig::GithubWorkflow(config));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(result.success, "GitHub accepted the dispatch: {result:?}");
    assert_eq!(result.link, None);
    assert_eq!(result.summary, "workflow dispatched; run not found yet");
    let dispatches = standin
        .requests()
        .iter()
        .filter(|request| request.method == "POST")
        .count();
    assert_eq!(dispatches, 1);
}

#[tokio::test]
async fn github_rejecting_run_details_gets_one_plain_dispatch() {
    let standin = github_standin().await;
    standin.set_run_details(RunDetails::Rejected);
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(result.success, "{result:?}");
    let runs = standin.runs();
    assert_eq!(runs.len(), 1, "the rejected dispatch started nothing");
    assert_eq!(result.link.as_deref(), Some(runs[0].html_url.as_str()));

    let dispatches: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST")
        .collect();
    assert_eq!(dispatches.len(), 2);
    assert_eq!(dispatches[0].body["return_run_details"], true);
    assert_eq!(dispatches[1].body.get("return_run_details"), None);
}

#[tokio::test]
async fn github_unexpected_input_is_failure_with_message() {
    let standin = GithubStandin::start(GITHUB_TOKEN).await.expect("start");
    standin.declare_inputs(&["service", "environment"]);
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, Some(422));
    assert_eq!(
        result.summary,
        r#"HTTP 422: Unexpected inputs provided: ["reason"]"#
    );
    assert!(standin.runs().is_empty());
}

#[tokio::test]
async fn github_error_status_is_failure_with_message() {
    let standin = github_standin().await;
    standin.fail_next(422, "Workflow does not have 'workflow_dispatch' trigger");
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, Some(422));
    assert_eq!(
        result.summary,
        "HTTP 422: Workflow does not have 'workflow_dispatch' trigger"
    );
    assert_eq!(
        standin.requests().len(),
        1,
        "a failed dispatch is not retried"
    );
}

#[tokio::test]
async fn github_wrong_token_is_failure() {
    let standin = GithubStandin::start("ghp_another_token")
        .await
        .expect("start");
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, Some(401));
    assert_eq!(result.summary, "HTTP 401: Bad credentials");
}

#[tokio::test]
async fn github_token_stays_out_of_debug_and_result() {
    let standin = github_standin().await;
    standin.fail_next(403, &format!("token {GITHUB_TOKEN} lacks actions:write"));
    let config = ExecutorConfig::GithubWorkflow(github_config(&standin.api_url()));
    let executor = build(config.clone());

    let failed = executor.execute(&run_request(), now_millis()).await;
    let succeeded = executor.execute(&run_request(), now_millis()).await;

    assert_eq!(
        failed.summary,
        "HTTP 403: token [redacted] lacks actions:write"
    );
    assert!(succeeded.success, "{succeeded:?}");
    for text in [
        format!("{executor:?}"),
        format!("{config:?}"),
        visible_text(&failed),
        visible_text(&succeeded),
    ] {
        assert!(!text.contains(GITHUB_TOKEN), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn github_enterprise_api_url_keeps_its_path() {
    let standin = github_standin().await;
    let config = GithubWorkflowConfig {
        workflow: "161335".to_string(),
        ..github_config(&format!("{}/", standin.enterprise_api_url()))
    };
    let executor = build(ExecutorConfig::GithubWorkflow(config));

    let result = executor.execute(&run_request(), now_millis()).await;

    assert!(result.success, "{result:?}");
    assert_eq!(
        standin.requests()[0].path,
        "/api/v3/repos/bramblewick/deployments/actions/workflows/161335/dispatches"
    );
}

#[tokio::test]
async fn github_missing_input_fails_before_dispatch() {
    let standin = github_standin().await;
    let executor = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));
    let mut request = run_request();
    request.inputs.remove("environment");

    let result = executor.execute(&request, now_millis()).await;

    assert!(!result.success);
    assert_eq!(result.http_status, None);
    assert_eq!(
        result.summary,
        "not dispatched: workflow input environment: {{inputs.environment}} has no value: the \
         run has no input \"environment\""
    );
    assert!(standin.requests().is_empty());
}

#[test]
fn missing_github_token_variable_is_a_problem() {
    let config = ExecutorConfig::GithubWorkflow(github_config("https://api.github.com"));
    let env = env_with(&[]);

    let problems = problems_of(config, &env);

    assert_eq!(
        problems,
        vec![(
            "executor.token_env".to_string(),
            "environment variable GITHUB_TOKEN is not set or is empty".to_string()
        )]
    );
}

#[test]
fn unknown_template_placeholder_fails_build() {
    let mut github = github_config("https://api.github.com");
    github.inputs.insert(
        "version".to_string(),
        "{{inputs.version}}-{{build_number}}".to_string(),
    );
    github
        .inputs
        .insert("note".to_string(), "{{run_id".to_string());

    let problems = problems_of(ExecutorConfig::GithubWorkflow(github), &standard_env());

    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].0, "executor.inputs.note");
    assert!(
        problems[0].1.starts_with("unclosed placeholder"),
        "{problems:?}"
    );
    assert_eq!(problems[1].0, "executor.inputs.version");
    assert!(
        problems[1]
            .1
            .starts_with("unknown placeholder {{build_number}}: use {{inputs.NAME}}"),
        "{problems:?}"
    );
}

#[test]
fn invalid_github_settings_are_all_reported() {
    let config = ExecutorConfig::GithubWorkflow(GithubWorkflowConfig {
        owner: "bramble wick".to_string(),
        workflow: "deploy".to_string(),
        git_ref: String::new(),
        api_url: "api.github.com".to_string(),
        ..github_config("https://api.github.com")
    });

    let problems = problems_of(config, &standard_env());

    let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "executor.owner",
            "executor.workflow",
            "executor.ref",
            "executor.api_url"
        ]
    );
}

#[test]
fn referenced_inputs_lists_template_inputs() {
    let config = ExecutorConfig::GithubWorkflow(github_config("https://api.github.com"));

    let inputs: Vec<String> = config.referenced_inputs().into_iter().collect();

    assert_eq!(inputs, vec!["environment".to_string()]);
}

#[test]
fn github_yaml_parses_numeric_workflow_and_inputs() {
    let yaml = "executor:\n  type: github_workflow\n  owner: bramblewick\n  repository: \
                deployments\n  workflow: 161335\n  ref: main\n  inputs:\n    service: \
                \"{{target.identifier}}\"\n    replicas: 3\n  token_env: GITHUB_TOKEN\n";

    let config = parse_yaml(yaml).expect("valid YAML");

    let ExecutorConfig::GithubWorkflow(github) = config else {
        panic!("expected a GitHub executor");
    };
    assert_eq!(github.workflow, "161335");
    assert_eq!(github.git_ref, "main");
    assert_eq!(github.inputs["service"], "{{target.identifier}}");
    assert_eq!(github.inputs["replicas"], "3");
    assert_eq!(github.api_url, "https://api.github.com");
    assert_eq!(github.timeout_secs, 30);
}

#[test]
fn executor_kind_and_timeout() {
    let webhook = build(ExecutorConfig::Webhook(webhook_config(
        "https://deploy.example.com",
    )));
    let github = build(ExecutorConfig::GithubWorkflow(github_config(
        "https://api.github.com",
    )));

    assert_eq!(webhook.kind(), "webhook");
    assert_eq!(webhook.timeout(), Duration::from_secs(5));
    assert_eq!(github.kind(), "github_workflow");
    assert_eq!(github.timeout(), Duration::from_secs(10));
}

// Logs

/// Log output collected in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log buffer lock")).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer lock")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the child process that [`execution_log_names_run_without_secrets`]
/// starts.
const LOG_CHILD: &str = "AGENTDESK_TEST_LOG_CHILD";

/// Runs [`check_execution_log`] alone in a child process of this test
/// binary, where its subscriber can be the global one. A subscriber set
/// for one thread misses log call sites that tests on other threads
/// register at the same moment, which made the check fail now and then.
#[test]
fn execution_log_names_run_without_secrets() {
    if std::env::var_os(LOG_CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime");
        runtime.block_on(check_execution_log());
        return;
    }
    let name = "action_executors::execution_log_names_run_without_secrets";
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(LOG_CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the log check failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the log check did not run:\n{stdout}"
    );
}

async fn check_execution_log() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let receiver = WebhookReceiver::start(WEBHOOK_SECRET).await.expect("start");
    receiver.respond_with(401, &format!("unknown key {DEPLOY_API_KEY}"));
    let webhook = build(ExecutorConfig::Webhook(webhook_config(&receiver.url())));
    let standin = github_standin().await;
    standin.fail_next(401, &format!("Bad credentials: {GITHUB_TOKEN}"));
    let github = build(ExecutorConfig::GithubWorkflow(github_config(
        &standin.api_url(),
    )));
    webhook.execute(&run_request(), now_millis()).await;
    github.execute(&run_request(), now_millis()).await;
    github.execute(&run_request(), now_millis()).await;

    let text = logs.text();
    let executed: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("action executed"))
        .collect();
    assert_eq!(executed.len(), 3, "{text}");
    for line in &executed {
        assert!(line.contains(" INFO "), "{line}");
        assert!(
            line.contains("run_id=0195a3c4-8f1e-7c2a-9b1d-5e6f7a8b9c0d"),
            "{line}"
        );
        assert!(line.contains("action=restart-service"), "{line}");
        assert!(line.contains("outcome="), "{line}");
    }
    assert!(executed[0].contains("failed"), "{}", executed[0]);
    assert!(executed[2].contains("succeeded"), "{}", executed[2]);

    let inputs_logged = text.lines().any(|line| {
        line.contains(" DEBUG ") && line.contains(r#"inputs={"environment":"staging""#)
    });
    assert!(inputs_logged, "inputs are logged at debug:\n{text}");

    for secret in [DEPLOY_API_KEY, WEBHOOK_SECRET, GITHUB_TOKEN] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
    let info_and_above = text
        .lines()
        .filter(|line| !line.contains(" DEBUG ") && !line.contains(" TRACE "));
    for line in info_and_above {
        assert!(
            !line.contains("staging"),
            "an input value above debug: {line}"
        );
    }
}
