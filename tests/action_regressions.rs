//! Regression tests for faults found in self-service actions. They cover
//! hostile agents files, odd requests to the offline backend, repeated
//! model calls, long card values, late clicks, runs failed while they
//! waited, and receivers that echo what they were sent.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agentdesk::actions::execution;
use agentdesk::actions::executor::{ExecutorConfig, RunRequest, WebhookConfig};
use agentdesk::agent::agents_file::{AgentsFile, AgentsFileError};
use agentdesk::app::{App, Question};
use agentdesk::clock::ManualClock;
use agentdesk::config::Settings;
use agentdesk::slack::cards::{approval_card, settled_card};
use agentdesk::store::action_runs::{self, ActionRun, NewRun, RunStatus};
use agentdesk_standins::Reply;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{PostedMessage, SlackStandin, with_fresh_ids};
use agentdesk_standins::webhook::WebhookReceiver;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::helpers::bot::{RunningBot, WAIT, block_text, start_bot_with_clock};
use crate::helpers::{
    TestDatabase, describe_output, manual_clock, on_both_databases, on_both_databases_with_demo,
    run_agentdesk, shared, slack_fixture,
};

const WEBHOOK_SECRET: &str = "whsec_regressions_4c2b9e7d1a";
const GITHUB_TOKEN: &str = "ghp_regressions0123456789abcdef";
const REQUESTER: &str = "U0ALICE001";
const APPROVER: &str = "U0BOB00002";

fn tool_names() -> Vec<&'static str> {
    vec![
        "list_blueprints",
        "search_entities",
        "get_entity",
        "count_entities",
    ]
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "AGENTDESK_WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.to_string()),
        "GITHUB_TOKEN" => Some(GITHUB_TOKEN.to_string()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<AgentsFile, AgentsFileError> {
    AgentsFile::parse(text, Path::new("agentdesk.yaml"), &tool_names(), &test_env)
}

/// Returns the problem lines of an invalid agents file.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("the file should be invalid:\n{text}"),
        Err(error) => error
            .to_string()
            .lines()
            .skip(1)
            .map(|line| line.trim().to_string())
            .collect(),
    }
}

/// Two agents, then the actions: a structural mistake in an action used
/// to be blamed on the last agent.
const AGENTS_THEN_ACTIONS: &str = "\
agents:
  - id: explorer
    title: Explorer
    description: Services.
    actions: [deploy, restart]
  - id: triage
    title: Triage
    description: Routing.
actions:
";

/// Appends action entries, written from the line after `r#"`, to
/// [`AGENTS_THEN_ACTIONS`].
fn with_actions(actions: &str) -> String {
    format!(
        "{AGENTS_THEN_ACTIONS}{}",
        actions.strip_prefix('\n').unwrap_or(actions)
    )
}

#[test]
fn action_type_errors_name_action_and_field() {
    let text = with_actions(
        r#"
  - id: deploy
    title: Deploy
    description: Deploys.
    approval:
      policy: approval_required
      approvers:
        users: U0ALICE001
    executor:
      type: webhook
      url: http://127.0.0.1:9/hook
      secret_env: AGENTDESK_WEBHOOK_SECRET
      timeout_secs: -1
  - id: restart
    title: Restart
    description: Restarts.
    approval: { policy: automatic }
    executor:
      type: lambda
"#,
    );
    let found = problems(&text);

    assert_eq!(
        found.len(),
        3,
        "every action's problems at once: {found:#?}"
    );
    assert_eq!(
        found[0],
        "agentdesk.yaml:16:16: action \"deploy\", field approval.approvers.users: invalid type: \
         string \"U0ALICE001\", expected a sequence"
    );
    assert_eq!(
        found[1],
        "agentdesk.yaml:21:21: action \"deploy\", field executor.timeout_secs: invalid value: \
         integer `-1`, expected u64"
    );
    assert_eq!(
        found[2],
        "agentdesk.yaml:27:13: action \"restart\", field executor.type: \"lambda\" is not an \
         executor type; use webhook or github_workflow"
    );
    for problem in &found {
        assert!(
            !problem.contains("agent \""),
            "no agent is blamed: {problem}"
        );
    }
}

#[test]
fn action_wrong_shapes_are_each_reported() {
    let text = with_actions(
        r#"
  - id: deploy
    title: [Deploy]
    description: ~
    inputs: [version]
    labels: x
    approval: { policy: automatic }
    executor: { url: http://127.0.0.1:9/hook }
  - just a name
"#,
    );
    let found = problems(&text);
    let expected = [
        "agentdesk.yaml:14:5: action \"deploy\", field labels: unknown key",
        "agentdesk.yaml:11:12: action \"deploy\", field title: invalid type: sequence, expected \
         a string",
        "agentdesk.yaml:10:5: action \"deploy\", field description: missing",
        "agentdesk.yaml:13:13: action \"deploy\", field inputs: must be a mapping",
        "agentdesk.yaml:16:15: action \"deploy\", field executor.type: missing",
        "agentdesk.yaml:17:5: field action: must be a mapping",
        "agentdesk.yaml:5:23: agent \"explorer\", field actions: no action has the id \"restart\"",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (problem, start) in found.iter().zip(expected) {
        assert!(
            problem.starts_with(start),
            "{problem:?} should start {start:?}"
        );
    }
}

#[test]
fn scalars_are_read_as_yaml_reads_them() {
    let text = with_actions(
        r#"
  - id: deploy
    title: Deploy
    description: Deploys.
    approval: { policy: approval_required, approvers: { users: [U0ALICE001] }, allow_self_approval: "true" }
    executor:
      type: webhook
      url: http://127.0.0.1:9/hook
      secret_env: AGENTDESK_WEBHOOK_SECRET
      timeout_secs: "20"
  - id: restart
    title: 2024
    description: Restarts.
    approval: { policy: automatic }
    executor:
      type: github_workflow
      owner: example-org
      repository: operations
      workflow: 161335
      ref: main
      inputs: { replicas: 3 }
      token_env: GITHUB_TOKEN
"#,
    );
    let file = parse(&text).unwrap_or_else(|error| panic!("{error}"));
    let deploy = file.action("deploy").expect("deploy is defined");
    assert_eq!(deploy.executor.timeout(), Duration::from_secs(20));
    assert_eq!(file.action("restart").expect("restart").title, "2024");
}

#[test]
fn executor_placeholders_without_values_are_rejected() {
    let text = with_actions(
        r#"
  - id: deploy
    title: Deploy
    description: Deploys.
    inputs:
      environment: { type: string, enum: [staging, production], required: true }
    approval: { policy: automatic }
    executor:
      type: github_workflow
      owner: example-org
      repository: operations
      workflow: deploy.yml
      ref: main
      inputs:
        environment: "{{inputs.environment}}"
        version: "{{inputs.version}}"
        service: "{{target.identifier}}"
        approved_by: "{{approver}}"
      token_env: GITHUB_TOKEN
  - id: restart
    title: Restart
    description: Restarts.
    approval: { policy: automatic }
    executor: { type: webhook, url: "http://127.0.0.1:9/hook", secret_env: AGENTDESK_WEBHOOK_SECRET }
"#,
    );
    let found = problems(&text);

    assert_eq!(found.len(), 3, "{found:#?}");
    let field = |name: &str| {
        found
            .iter()
            .find(|problem| problem.contains(&format!("field executor.inputs.{name}:")))
            .unwrap_or_else(|| panic!("no problem for {name}: {found:#?}"))
    };
    assert!(
        field("version").starts_with("agentdesk.yaml:17:7: action \"deploy\"")
            && field("version").contains("{{inputs.version}} names no input of the action")
            && field("version").contains("its inputs are environment"),
        "{}",
        field("version")
    );
    assert!(
        field("service").contains("the action has no target_blueprint"),
        "{}",
        field("service")
    );
    assert!(
        field("approved_by").contains("runs automatically and has no approver"),
        "{}",
        field("approved_by")
    );
}

#[test]
fn action_outside_agent_scope_is_rejected() {
    let text = "\
agents:
  - id: incidents
    title: Incidents
    description: Incidents.
    data_scope: [incident]
    actions: [restart]
actions:
  - id: restart
    title: Restart
    description: Restarts a service.
    target_blueprint: service
    approval: { policy: automatic }
    executor: { type: webhook, url: \"http://127.0.0.1:9/hook\", secret_env: AGENTDESK_WEBHOOK_SECRET }
";
    let found = problems(text);

    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("agentdesk.yaml:6:15: agent \"incidents\", field actions:"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("action \"restart\" names service entities"),
        "{}",
        found[0]
    );
}

/// Builds a run with many inputs whose values are long and full of
/// characters that escaping lengthens.
fn oversized_run() -> ActionRun {
    let mut inputs = Map::new();
    for index in 0..600 {
        inputs.insert(format!("input_{index:03}"), json!("&<>".repeat(1_000)));
    }
    ActionRun {
        id: "run-oversized".to_string(),
        action_id: "deploy".to_string(),
        agent: "ops".to_string(),
        invocation_id: None,
        inputs,
        target_ref: Some("service:checkout".to_string()),
        target_title: Some("&".repeat(3_000)),
        requester: REQUESTER.to_string(),
        team_id: None,
        decider: Some(APPROVER.to_string()),
        status: RunStatus::Failure,
        summary: Some("HTTP 500".to_string()),
        link: None,
        http_status: Some(500),
        result: None,
        channel_id: None,
        thread_ts: None,
        message_ts: None,
        created_at: 1_735_689_600_000,
        expires_at: None,
        decided_at: Some(1_735_689_660_000),
        started_at: Some(1_735_689_660_000),
        finished_at: Some(1_735_689_670_000),
    }
}

/// Checks the limits Slack enforces on a message's blocks (Block Kit
/// reference: 50 blocks, 3000 characters in a section's text and in a
/// text object, 2000 in a section field, 10 fields per section).
fn assert_within_slack_limits(blocks: &[Value], card: &str) {
    assert!(blocks.len() <= 50, "{card}: {} blocks", blocks.len());
    for block in blocks {
        if let Some(text) = block["text"]["text"].as_str() {
            let count = text.chars().count();
            assert!(count <= 3000, "{card}: section text of {count} characters");
        }
        if let Some(fields) = block["fields"].as_array() {
            assert!(fields.len() <= 10, "{card}: {} fields", fields.len());
            for field in fields {
                let count = field["text"].as_str().unwrap_or_default().chars().count();
                assert!(count <= 2000, "{card}: field of {count} characters");
            }
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if let Some(text) = element["text"].as_str() {
                let count = text.chars().count();
                assert!(count <= 3000, "{card}: context of {count} characters");
            }
        }
    }
}

#[test]
fn cards_fit_slack_limits() {
    let run = oversized_run();
    let title = "Deploy & roll back ".repeat(200);
    let approvers = "<@U0ALICE001>, ".repeat(300);

    let (_, approval) = approval_card(&run, &title, &approvers);
    let approval = serde_json::to_value(&approval).expect("blocks serialize");
    let approval = approval.as_array().expect("a block list");
    assert_within_slack_limits(approval, "approval card");
    assert_eq!(
        approval.last().expect("blocks")["type"],
        "actions",
        "the buttons stay"
    );

    let (_, settled) = settled_card(&run, &title);
    let settled = serde_json::to_value(&settled).expect("blocks serialize");
    let settled = settled.as_array().expect("a block list");
    assert_within_slack_limits(settled, "settled card");

    let text = settled.iter().map(Value::to_string).collect::<String>();
    assert!(
        text.contains("more are not shown"),
        "hidden inputs are counted"
    );
    assert!(text.contains("failed: HTTP 500"), "the status line stays");
    for broken in ["&am…", "&a…", "&l…", "&g…", "&…"] {
        assert!(!text.contains(broken), "a cut entity {broken:?} remains");
    }
}

/// Returns an agents file for the offline backend: an automatic incident
/// action whose webhook has no receiver, and a flush whose title has
/// quotes.
fn offline_agents_file() -> String {
    "\
agents:
  - id: incidents
    title: Incidents
    description: Incidents and restarts.
    actions: [open-incident, flush-cache]
actions:
  - id: open-incident
    title: Open an incident
    description: Opens an incident for a service.
    target_blueprint: service
    inputs:
      severity: { type: string, enum: [sev1, sev2, sev3], required: true }
      summary: { type: string, min_length: 5, max_length: 200, required: true }
    approval: { policy: automatic }
    executor: { type: webhook, url: \"http://127.0.0.1:9/hook\", secret_env: AGENTDESK_WEBHOOK_SECRET, timeout_secs: 2 }
  - id: flush-cache
    title: Flush \"hot\" caches (fast)
    description: Flushes the caches of a service.
    target_blueprint: service
    approval: { policy: approval_required, approvers: { users: [U0BOB00002] } }
    executor: { type: webhook, url: \"http://127.0.0.1:9/hook\", secret_env: AGENTDESK_WEBHOOK_SECRET }
"
    .to_string()
}

/// Asks the offline backend one question with `agentdesk ask` and returns
/// its output and the runs it recorded.
async fn ask_offline(database: &TestDatabase, question: &str) -> (String, Vec<ActionRun>) {
    let directory = TempDir::new().expect("temp dir");
    let agents = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents, offline_agents_file()).expect("agents file written");
    let agents = agents.display().to_string();
    let output = run_agentdesk(
        directory.path(),
        &[
            ("DATABASE_URL", database.url()),
            ("AGENTDESK_CONFIG", agents.as_str()),
            ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
        &["ask", question],
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    let store = database.store().await;
    let runs = action_runs::list(&store, None, 10).await.expect("runs");
    (String::from_utf8_lossy(&output.stdout).into_owned(), runs)
}

async fn question_about_open_incidents_runs_nothing(database: TestDatabase) {
    let (stdout, runs) = ask_offline(
        &database,
        "how many open incidents does payments have at sev1",
    )
    .await;

    assert!(runs.is_empty(), "a question opened an incident: {runs:#?}");
    assert!(!stdout.contains("Open an incident"), "{stdout}");
}

async fn identifier_as_written_still_proposes(database: TestDatabase) {
    let (stdout, runs) = ask_offline(
        &database,
        "please run open-incident for payments sev2: checkout down",
    )
    .await;

    assert_eq!(runs.len(), 1, "{stdout}");
    assert_eq!(runs[0].action_id, "open-incident");
    assert_eq!(runs[0].target_ref.as_deref(), Some("service:payments"));
}

async fn title_with_quotes_is_recognised_offline(database: TestDatabase) {
    let (stdout, runs) = ask_offline(&database, "flush checkout").await;

    assert_eq!(runs.len(), 1, "{stdout}");
    assert_eq!(runs[0].action_id, "flush-cache");
    assert!(
        stdout.contains("Flush \"hot\" caches (fast)"),
        "the whole title: {stdout}"
    );
}

/// An app whose model is the OpenAI stand-in, over the demo catalog.
struct ModelApp {
    app: App,
    model: OpenAiStandin,
    _database: TestDatabase,
    _directory: TempDir,
}

async fn model_app(database: TestDatabase, replies: Vec<Reply>) -> ModelApp {
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    for reply in replies {
        model.push(reply);
    }
    let directory = TempDir::new().expect("temp dir");
    let agents = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents, offline_agents_file()).expect("agents file written");

    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), database.url().into());
    vars.insert("AGENTDESK_CONFIG".into(), agents.display().to_string());
    vars.insert("AGENTDESK_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
    vars.insert("AGENTDESK_BACKEND".into(), "openai".into());
    vars.insert("OPENAI_BASE_URL".into(), model.base_url());
    let settings = Settings::from_map(&vars).expect("valid settings");
    let app = App::start(settings, shared(&manual_clock()))
        .await
        .expect("app starts");
    ModelApp {
        app,
        model,
        _database: database,
        _directory: directory,
    }
}

/// Returns the content of every tool result sent to the model, in order.
fn tool_results(model: &OpenAiStandin) -> Vec<String> {
    let requests = model.requests();
    let last = requests.last().expect("the model was asked");
    last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["role"] == "tool")
        .map(|message| message["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

const INCIDENT_ARGUMENTS: &str =
    r#"{"target":"payments","severity":"sev2","summary":"checkout fails for everyone"}"#;

async fn repeated_proposal_records_one_run(database: TestDatabase) {
    let setup = model_app(
        database,
        vec![
            Reply::ToolCalls(vec![
                (
                    "propose_open_incident".to_string(),
                    INCIDENT_ARGUMENTS.to_string(),
                ),
                (
                    "propose_open_incident".to_string(),
                    INCIDENT_ARGUMENTS.to_string(),
                ),
            ]),
            Reply::ToolCalls(vec![(
                "propose_open_incident".to_string(),
                INCIDENT_ARGUMENTS.to_string(),
            )]),
            Reply::Text("I opened the incident.".to_string()),
        ],
    )
    .await;

    let answer = setup
        .app
        .answer(Question::from_cli(
            "open a sev2 incident for payments",
            None,
        ))
        .await
        .expect("an answer");

    assert_eq!(answer.proposals.len(), 1, "one run to execute");
    let runs = action_runs::list(&setup.app.store, None, 10)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let results = tool_results(&setup.model);
    assert_eq!(results.len(), 3);
    for repeated in &results[1..] {
        assert!(
            repeated.contains("already proposed") && repeated.contains(&runs[0].id),
            "{repeated}"
        );
    }
}

async fn target_of_wrong_type_is_explained(database: TestDatabase) {
    let setup = model_app(
        database,
        vec![
            Reply::ToolCalls(vec![(
            "propose_open_incident".to_string(),
            r#"{"target":{"identifier":"payments"},"severity":"sev2","summary":"checkout fails"}"#
                .to_string(),
        )]),
            Reply::Text("Which service?".to_string()),
        ],
    )
    .await;

    setup
        .app
        .answer(Question::from_cli(
            "open a sev2 incident for payments",
            None,
        ))
        .await
        .expect("an answer");

    let results = tool_results(&setup.model);
    assert_eq!(results.len(), 1);
    assert!(
        results[0].contains("target must be a string") && results[0].contains("identifier"),
        "{}",
        results[0]
    );
}

/// Returns the agents file of the Slack test: a deploy that expires after
/// an hour.
fn expiring_agents_file(webhook_url: &str) -> String {
    format!(
        "\
default_agent: ops
agents:
  - id: ops
    title: Operations
    description: Deploys.
    actions: [deploy]
actions:
  - id: deploy
    title: Deploy a service
    description: Deploys a version of a service.
    target_blueprint: service
    inputs:
      version: {{ type: string, pattern: \"[0-9]+\\\\.[0-9]+\\\\.[0-9]+\", required: true }}
    approval:
      policy: approval_required
      approvers: {{ users: [{APPROVER}] }}
      expires_after: 1h
    executor:
      type: webhook
      url: {webhook_url}
      secret_env: AGENTDESK_WEBHOOK_SECRET
"
    )
}

fn mention(text: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    let event = &mut envelope["payload"]["event"];
    event["text"] = json!(format!("<@U0BOT00001> {text}"));
    event["user"] = json!(REQUESTER);
    event["channel"] = json!("C0CHAN0001");
    envelope
}

/// A click on Approve by the approver; `None` leaves out the button's
/// value.
fn approve_click(card: &PostedMessage, run_id: Option<&str>) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("block_actions_approve_envelope.json"));
    let payload = &mut envelope["payload"];
    payload["user"]["id"] = json!(APPROVER);
    payload["container"]["channel_id"] = json!(card.channel);
    payload["container"]["message_ts"] = json!(card.ts);
    payload["channel"]["id"] = json!(card.channel);
    payload["message"]["ts"] = json!(card.ts);
    payload["actions"][0]["action_id"] = json!("action_approve");
    match run_id {
        Some(run_id) => payload["actions"][0]["value"] = json!(run_id),
        None => {
            if let Some(action) = payload["actions"][0].as_object_mut() {
                action.remove("value");
            }
        }
    }
    envelope
}

/// A bot with the expiring deploy action, and the receiver of its webhook.
struct SlackSetup {
    bot: RunningBot,
    webhook: WebhookReceiver,
    manual: Arc<ManualClock>,
    _database: TestDatabase,
    _directory: TempDir,
}

async fn slack_setup(database: TestDatabase) -> SlackSetup {
    let webhook = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    let directory = TempDir::new().expect("temp dir");
    let agents = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents, expiring_agents_file(&webhook.url())).expect("agents file written");
    let agents = agents.display().to_string();
    let manual = manual_clock();
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    // The periodic sweep runs at start and then not within a test, so a
    // click can come after a deadline but before any sweep.
    let extra = [
        ("AGENTDESK_CONFIG", agents.as_str()),
        ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("AGENTDESK_APPROVAL_SWEEP_SECS", "3600"),
    ];
    let bot = start_bot_with_clock(slack, database.url(), &extra, shared(&manual)).await;
    SlackSetup {
        bot,
        webhook,
        manual,
        _database: database,
        _directory: directory,
    }
}

/// Waits for the `count`th ephemeral reply and returns its text.
async fn ephemeral(bot: &RunningBot, count: usize) -> String {
    let calls = bot
        .slack
        .wait_for_calls("chat.postEphemeral", count, WAIT)
        .await
        .expect("an ephemeral reply");
    calls[count - 1].params["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn click_after_deadline_says_expired(database: TestDatabase) {
    let setup = slack_setup(database).await;
    let bot = &setup.bot;

    bot.send(mention("deploy checkout version 1.4.2")).await;
    let posts = bot
        .slack
        .wait_for_posts(2, WAIT)
        .await
        .expect("answer and card");
    let card = posts[1].clone();
    let runs = action_runs::list(&bot.app.store, None, 10)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "{posts:#?}");
    let run_id = runs[0].id.clone();

    setup.manual.advance(Duration::from_secs(2 * 60 * 60));
    bot.send(approve_click(&card, Some(&run_id))).await;

    let reply = ephemeral(bot, 1).await;
    assert!(reply.contains("expired"), "{reply}");
    assert!(!reply.contains("approved"), "{reply}");

    let updates = bot.slack.wait_for_calls("chat.update", 1, WAIT).await;
    assert!(updates.is_ok(), "the card is updated at once");
    let latest = bot
        .slack
        .posts()
        .into_iter()
        .rfind(|post| post.method == "chat.update" && post.ts == card.ts)
        .expect("an updated card");
    assert!(block_text(&latest).contains("Expired"), "{latest:#?}");
    let run = action_runs::get(&bot.app.store, &run_id)
        .await
        .expect("the run is readable")
        .expect("the run exists");
    assert_eq!(run.status, RunStatus::Expired);
    assert!(setup.webhook.requests().is_empty(), "nothing ran");
    setup.bot.stop().await;
}

async fn click_without_run_id_gets_reply(database: TestDatabase) {
    let setup = slack_setup(database).await;
    let bot = &setup.bot;

    bot.send(mention("deploy checkout version 1.4.2")).await;
    let posts = bot
        .slack
        .wait_for_posts(2, WAIT)
        .await
        .expect("answer and card");
    bot.send(approve_click(&posts[1], None)).await;

    let reply = ephemeral(bot, 1).await;
    assert!(reply.contains("nothing was done"), "{reply}");
    let runs = action_runs::list(&bot.app.store, None, 10)
        .await
        .expect("runs");
    assert_eq!(runs[0].status, RunStatus::WaitingForApproval);
    assert!(setup.webhook.requests().is_empty(), "nothing ran");
    setup.bot.stop().await;
}

async fn run_failed_while_waiting_never_executes(database: TestDatabase) {
    let webhook = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    let text = format!(
        "\
agents:
  - id: ops
    title: Operations
    description: Caches.
    actions: [flush]
actions:
  - id: flush
    title: Flush a cache
    description: Flushes a cache.
    approval: {{ policy: automatic }}
    executor: {{ type: webhook, url: \"{}\", secret_env: AGENTDESK_WEBHOOK_SECRET }}
",
        webhook.url()
    );
    let file = parse(&text).unwrap_or_else(|error| panic!("{error}"));
    let action = file.action("flush").expect("flush is defined").clone();
    let store = database.store().await;
    let manual = manual_clock();
    let clock = shared(&manual);

    let run = NewRun {
        id: "run-waiting".to_string(),
        action_id: "flush".to_string(),
        agent: "ops".to_string(),
        invocation_id: None,
        inputs: Map::new(),
        target_ref: None,
        target_title: None,
        requester: REQUESTER.to_string(),
        team_id: None,
        channel_id: None,
        thread_ts: None,
        status: RunStatus::InProgress,
        decider: Some("automatic".to_string()),
        expires_at: None,
    };
    action_runs::create(&store, &clock, &run)
        .await
        .expect("run recorded");
    let proposed = action_runs::get(&store, &run.id)
        .await
        .expect("readable")
        .expect("exists");
    // The conversation goes on long enough for a sweep to take the run
    // for one a crash left behind.
    manual.advance(Duration::from_secs(10 * 60));
    let cutoff = clock.now_millis() - 60_000;
    let failed = action_runs::fail_stale(&store, &clock, cutoff, "interrupted, outcome unknown")
        .await
        .expect("sweep");
    assert_eq!(failed.len(), 1);

    let ended = execution::execute(&store, &clock, &action, &proposed)
        .await
        .expect("execution returns the stored run");

    assert_eq!(ended.status, RunStatus::Failure);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        webhook.requests().is_empty(),
        "a run recorded as failed was executed anyway"
    );
}

/// Builds an approved run request with no inputs and no target.
fn echo_request() -> RunRequest {
    RunRequest {
        run_id: "run-echo".to_string(),
        action_id: "deploy".to_string(),
        action_title: "Deploy".to_string(),
        inputs: Map::new(),
        target: None,
        requester: REQUESTER.to_string(),
        approver: Some(APPROVER.to_string()),
        invocation_id: None,
        requested_at: 1_735_689_600_000,
        approved_at: Some(1_735_689_660_000),
    }
}

#[tokio::test]
async fn echoed_literal_secrets_are_redacted() {
    const LITERAL_TOKEN: &str = "Bearer file-token-5e8a1c";
    const QUERY_TOKEN: &str = "query-token-93bd40";
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    receiver.respond_with(
        500,
        &format!(r#"{{"authorization":"{LITERAL_TOKEN}","url":"/hook?token={QUERY_TOKEN}"}}"#),
    );
    let config = ExecutorConfig::Webhook(WebhookConfig {
        url: format!("{}?token={QUERY_TOKEN}", receiver.url()),
        method: "POST".to_string(),
        headers: BTreeMap::from([("Authorization".to_string(), LITERAL_TOKEN.to_string())]),
        secret_env: "AGENTDESK_WEBHOOK_SECRET".to_string(),
        timeout_secs: 5,
    });
    let executor = config
        .build(&test_env)
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    let result = executor.execute(&echo_request(), 1_735_689_660_000).await;

    assert!(!result.success);
    assert_eq!(
        receiver.requests()[0].header("authorization"),
        Some(LITERAL_TOKEN),
        "the header is sent as written"
    );
    let shown = format!("{} {}", result.summary, result.detail);
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains("file-token-5e8a1c"), "{shown}");
    assert!(!shown.contains(QUERY_TOKEN), "{shown}");
}

#[test]
fn ids_sharing_a_tool_name_are_rejected() {
    let text = with_actions(
        r#"
  - id: deploy
    title: Deploy
    description: Deploys.
    approval: { policy: automatic }
    executor: { type: webhook, url: "http://127.0.0.1:9/hook", secret_env: AGENTDESK_WEBHOOK_SECRET }
  - id: restart
    title: Restart
    description: Restarts.
    approval: { policy: automatic }
    executor: { type: webhook, url: "http://127.0.0.1:9/hook", secret_env: AGENTDESK_WEBHOOK_SECRET }
  - id: flush-cache
    title: Flush a cache
    description: Flushes one cache at once.
    approval: { policy: automatic }
    executor: { type: webhook, url: "http://127.0.0.1:9/hook", secret_env: AGENTDESK_WEBHOOK_SECRET }
  - id: flush_cache
    title: Flush every cache
    description: Flushes every cache; needs approval.
    approval: { policy: approval_required, approvers: { users: [U0BOB00002] } }
    executor: { type: webhook, url: "http://127.0.0.1:9/hook", secret_env: AGENTDESK_WEBHOOK_SECRET }
"#,
    );
    let found = problems(&text);

    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("agentdesk.yaml:25:5: action \"flush_cache\", field id:")
            && found[0].contains("\"flush-cache\" has the same tool name propose_flush_cache"),
        "{}",
        found[0]
    );
}

#[test]
fn run_link_cannot_inject_mrkdwn() {
    let mut run = oversized_run();
    run.inputs = Map::new();
    run.status = RunStatus::Success;
    run.link = Some("https://github.example/runs/1?a=1&b=2|pwned> <!channel>".to_string());

    let (_, blocks) = settled_card(&run, "Restart");
    let text = serde_json::to_value(&blocks)
        .expect("blocks serialize")
        .to_string();

    assert!(
        text.contains(
            "<https://github.example/runs/1?a=1&amp;b=2%7Cpwned%3E %3C!channel%3E|view run>"
        ),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
}

#[test]
fn section_after_agents_blames_no_agent() {
    let text = AGENTS_THEN_ACTIONS.replace("actions:\n", "actions: deploy\n");
    let found = problems(&text);

    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("agentdesk.yaml:9:10: field actions:"),
        "{}",
        found[0]
    );
    assert!(!found[0].contains("agent \""), "{}", found[0]);
}

#[tokio::test]
async fn receiver_control_characters_are_dropped() {
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    receiver.respond_with(500, "\u{1b}[2J\u{1b}]0;owned\u{7}failed\u{0}here");
    let config = ExecutorConfig::Webhook(WebhookConfig {
        url: receiver.url(),
        method: "POST".to_string(),
        headers: BTreeMap::new(),
        secret_env: "AGENTDESK_WEBHOOK_SECRET".to_string(),
        timeout_secs: 5,
    });
    let executor = config
        .build(&test_env)
        .unwrap_or_else(|problems| panic!("{problems:?}"));

    let result = executor.execute(&echo_request(), 1_735_689_660_000).await;

    assert!(!result.success);
    assert!(
        !result.summary.chars().any(char::is_control),
        "{:?}",
        result.summary
    );
    assert_eq!(result.summary, "HTTP 500: [2J ]0;owned failed here");
}

async fn near_target_name_is_not_guessed(database: TestDatabase) {
    let (stdout, runs) = ask_offline(
        &database,
        "open an incident for checkout-v2 sev1: it is down",
    )
    .await;

    assert!(
        runs.is_empty(),
        "an incident for another service: {runs:#?}"
    );
    assert!(stdout.contains("could not propose"), "{stdout}");
}

async fn target_named_by_title_words_is_found(database: TestDatabase) {
    let (stdout, runs) = ask_offline(
        &database,
        "open an incident for the Checkout Service sev2: payments fail",
    )
    .await;

    assert_eq!(runs.len(), 1, "{stdout}");
    assert_eq!(runs[0].target_ref.as_deref(), Some("service:checkout"));
}

on_both_databases_with_demo!(
    question_about_open_incidents_runs_nothing,
    identifier_as_written_still_proposes,
    title_with_quotes_is_recognised_offline,
    near_target_name_is_not_guessed,
    target_named_by_title_words_is_found,
    repeated_proposal_records_one_run,
    target_of_wrong_type_is_explained,
    click_after_deadline_says_expired,
    click_without_run_id_gets_reply,
);

on_both_databases!(run_failed_while_waiting_never_executes);
