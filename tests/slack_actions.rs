//! Self-service actions through the stand-in Slack: the offline backend
//! proposes them, approval cards are clicked, and the webhook receiver and
//! the GitHub stand-in see each approved run exactly once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentdesk::clock::{ManualClock, SharedClock};
use agentdesk::store::action_runs::{self, ActionRun, RunStatus};
use agentdesk::store::invocations;
use agentdesk_standins::Reply;
use agentdesk_standins::github::GithubStandin;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{PostedMessage, SlackStandin, with_fresh_ids};
use agentdesk_standins::webhook::WebhookReceiver;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::bot::{RunningBot, WAIT, block_text, bot_settings, start_bot_with_clock};
use crate::helpers::{
    TestDatabase, manual_clock, on_both_databases, on_both_databases_with_demo, shared,
    slack_fixture,
};

const WEBHOOK_SECRET: &str = "whsec_slack_actions_5d1e0c9a7b";
const DEPLOY_KEY: &str = "deploy-key-7f3a9c1e5b2d";
const GITHUB_TOKEN: &str = "ghp_slackactions0123456789abcdef";

const REQUESTER: &str = "U0ALICE001";
const APPROVER: &str = "U0BOB00002";
const SECOND_APPROVER: &str = "U0ERIN0005";
const OUTSIDER: &str = "U0CAROL003";
const GROUP_MEMBER: &str = "U0GRACE007";
const OTHER_BOT: &str = "U0OTHERBOT";
/// A member of the team that owns `service:checkout` in the demo catalog.
const CHECKOUT_OWNER: &str = "U0DEMO0004";
/// A member of another team in the demo catalog.
const OTHER_TEAM_MEMBER: &str = "U0DEMO0001";

/// What varies between the tests' agents files.
struct Options {
    deploy_timeout_secs: u64,
    deploy_allow_self_approval: bool,
    webhook_url: String,
    github_url: String,
}

fn agents_file(options: &Options) -> String {
    format!(
        r#"
default_agent: ops
agents:
  - id: ops
    title: Operations
    description: Deploys, restarts and cache flushes for services.
    actions: [deploy, restart, flush-cache, owner-deploy, hotfix]
  - id: readonly
    nickname: readonly
    title: Read only
    description: Answers questions only.
actions:
  - id: deploy
    title: Deploy a service
    description: Deploys a version of a service to an environment.
    target_blueprint: service
    inputs:
      environment: {{ type: string, enum: [staging, production], default: staging }}
      version: {{ type: string, pattern: "v?[0-9]+\\.[0-9]+\\.[0-9]+", required: true }}
    approval:
      policy: approval_required
      approvers:
        users: [{APPROVER}, {SECOND_APPROVER}]
        user_groups: [S0DEPLOYERS]
      allow_self_approval: {self_approval}
    executor:
      type: webhook
      url: {webhook}
      headers:
        X-Deploy-Key: ${{DEPLOY_KEY}}
      secret_env: AGENTDESK_WEBHOOK_SECRET
      timeout_secs: {timeout}
  - id: owner-deploy
    title: Promote a service
    description: Promotes a service's staging build to production.
    target_blueprint: service
    approval:
      policy: approval_required
      approvers: {{ owners_of_target: true }}
    executor:
      type: webhook
      url: {webhook}
      secret_env: AGENTDESK_WEBHOOK_SECRET
  - id: hotfix
    title: Hotfix a service
    description: Ships an urgent fix; the requester may approve it.
    target_blueprint: service
    approval:
      policy: approval_required
      approvers: {{ users: [{REQUESTER}] }}
      allow_self_approval: true
    executor:
      type: webhook
      url: {webhook}
      secret_env: AGENTDESK_WEBHOOK_SECRET
  - id: restart
    title: Restart a service
    description: Restarts a service in an environment.
    target_blueprint: service
    inputs:
      environment: {{ type: string, enum: [staging, production], required: true }}
    approval:
      policy: approval_required
      approvers: {{ users: [{APPROVER}] }}
    executor:
      type: github_workflow
      owner: bramblewick
      repository: operations
      workflow: restart.yml
      ref: main
      inputs:
        service: "{{{{target.identifier}}}}"
        environment: "{{{{inputs.environment}}}}"
      token_env: GITHUB_TOKEN
      api_url: {github}
      timeout_secs: 10
  - id: flush-cache
    title: Flush a cache
    description: Flushes the cache of a service.
    target_blueprint: service
    approval: {{ policy: automatic }}
    executor:
      type: webhook
      url: {webhook}
      secret_env: AGENTDESK_WEBHOOK_SECRET
"#,
        self_approval = options.deploy_allow_self_approval,
        webhook = options.webhook_url,
        timeout = options.deploy_timeout_secs,
        github = options.github_url,
    )
}

/// A bot with actions, its receivers, and what a restart needs.
struct Setup {
    bot: Option<RunningBot>,
    webhook: WebhookReceiver,
    github: GithubStandin,
    agents_path: String,
    database: TestDatabase,
    manual: Arc<ManualClock>,
    clock: SharedClock,
    _directory: TempDir,
}

impl Setup {
    fn bot(&self) -> &RunningBot {
        self.bot.as_ref().expect("the bot runs")
    }

    fn slack(&self) -> &SlackStandin {
        &self.bot().slack
    }

    fn extra(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AGENTDESK_CONFIG", self.agents_path.clone()),
            ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET.to_string()),
            ("DEPLOY_KEY", DEPLOY_KEY.to_string()),
            ("GITHUB_TOKEN", GITHUB_TOKEN.to_string()),
            ("AGENTDESK_APPROVAL_SWEEP_SECS", "1".to_string()),
        ]
    }

    async fn start(&mut self, slack: SlackStandin) {
        let extra = self.extra();
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        self.bot = Some(
            start_bot_with_clock(slack, self.database.url(), &extra, self.clock.clone()).await,
        );
    }

    /// Stops the bot and returns its stand-in Slack for a restart.
    async fn stop(&mut self) -> SlackStandin {
        let mut bot = self.bot.take().expect("the bot runs");
        if let Some(stop) = bot.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = bot.task.take() {
            task.await
                .expect("the serve task panicked")
                .expect("serve failed");
        }
        bot.slack
    }

    async fn run(&self, run_id: &str) -> ActionRun {
        action_runs::get(&self.bot().app.store, run_id)
            .await
            .expect("runs are readable")
            .expect("the run exists")
    }
}

fn database_for_demo(database: TestDatabase) -> TestDatabase {
    match database.kind() {
        // A copy of the demo catalog saves loading it again.
        crate::helpers::DatabaseKind::Sqlite => TestDatabase::sqlite_with_demo(),
        _ => database,
    }
}

async fn setup_with(database: TestDatabase, tune: impl FnOnce(&mut Options)) -> Setup {
    let database = database_for_demo(database);
    let webhook = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    let github = GithubStandin::start(GITHUB_TOKEN)
        .await
        .expect("the GitHub stand-in starts");
    github.declare_inputs(&["service", "environment"]);
    let mut options = Options {
        deploy_timeout_secs: 10,
        deploy_allow_self_approval: false,
        webhook_url: webhook.url(),
        github_url: github.api_url(),
    };
    tune(&mut options);

    let directory = TempDir::new().expect("temp dir");
    let agents_path: PathBuf = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, agents_file(&options)).expect("agents file written");

    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    add_people(&slack);
    let manual = manual_clock();
    let mut setup = Setup {
        bot: None,
        webhook,
        github,
        agents_path: agents_path.display().to_string(),
        database,
        clock: shared(&manual),
        manual,
        _directory: directory,
    };
    setup.start(slack).await;
    setup
}

async fn setup(database: TestDatabase) -> Setup {
    setup_with(database, |_| {}).await
}

fn person(id: &str, name: &str, email: Option<&str>) -> Value {
    let mut user = json!({
        "id": id,
        "team_id": "T0TEAM0001",
        "name": name,
        "real_name": name,
        "is_bot": false,
        "deleted": false,
        "profile": { "display_name": name, "real_name": name },
    });
    if let Some(email) = email {
        user["profile"]["email"] = json!(email);
    }
    user
}

fn add_people(slack: &SlackStandin) {
    for (id, name) in [
        (SECOND_APPROVER, "erin"),
        (OUTSIDER, "carol"),
        (GROUP_MEMBER, "grace"),
        (CHECKOUT_OWNER, "diego"),
        (OTHER_TEAM_MEMBER, "amara"),
    ] {
        slack.set_user(person(id, name, None));
    }
    let mut bot = person(OTHER_BOT, "deploybot", None);
    bot["is_bot"] = json!(true);
    slack.set_user(bot);
    slack.set_usergroup("S0DEPLOYERS", &[GROUP_MEMBER]);
}

/// A mention of the bot in the ops channel.
fn mention(text: &str, user: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    let event = &mut envelope["payload"]["event"];
    event["text"] = json!(format!("<@U0BOT00001> {text}"));
    event["user"] = json!(user);
    event["channel"] = json!("C0CHAN0001");
    envelope
}

/// A proposal as posted: the answer and the approval card or note.
struct Proposed {
    answer: PostedMessage,
    card: PostedMessage,
    run_id: String,
}

/// Asks for an action and waits for the answer and the card.
async fn propose(setup: &Setup, text: &str, user: &str) -> Proposed {
    let slack = setup.slack();
    let before = slack.posts().len();
    setup.bot().send(mention(text, user)).await;
    let posts = slack
        .wait_for_posts(before + 2, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}: {:#?}", slack.posts()));
    let answer = posts[before].clone();
    let card = posts[before + 1].clone();
    let run_id = card_run_id(&card).unwrap_or_else(|| {
        // An automatic action's note has no buttons; its run id is in
        // the context line.
        let text = block_text(&card);
        let start = text.find("run `").expect("the card names its run") + 5;
        text[start..]
            .split('`')
            .next()
            .expect("a run id")
            .to_string()
    });
    Proposed {
        answer,
        card,
        run_id,
    }
}

/// The run id on a card's Approve button.
fn card_run_id(card: &PostedMessage) -> Option<String> {
    let blocks = card.blocks.as_ref()?;
    blocks
        .as_array()?
        .iter()
        .filter(|block| block["type"] == "actions")
        .flat_map(|block| block["elements"].as_array().cloned().unwrap_or_default())
        .find(|element| element["action_id"] == "action_approve")
        .and_then(|element| element["value"].as_str().map(str::to_string))
}

fn has_buttons(message: &PostedMessage) -> bool {
    message
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|blocks| blocks.iter().any(|block| block["type"] == "actions"))
}

/// A click on a card's button, shaped like Slack's block_actions payload.
fn click(card: &PostedMessage, run_id: &str, user: &str, action_id: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("block_actions_approve_envelope.json"));
    let payload = &mut envelope["payload"];
    payload["user"]["id"] = json!(user);
    payload["container"]["channel_id"] = json!(card.channel);
    payload["container"]["message_ts"] = json!(card.ts);
    payload["channel"]["id"] = json!(card.channel);
    payload["message"]["ts"] = json!(card.ts);
    payload["actions"][0]["action_id"] = json!(action_id);
    payload["actions"][0]["value"] = json!(run_id);
    payload["actions"][0]["block_id"] = json!(format!("run-{run_id}"));
    envelope
}

const APPROVE: &str = "action_approve";
const REJECT: &str = "action_reject";

/// Waits until the card's latest update contains `needle`.
async fn wait_for_card(setup: &Setup, card: &PostedMessage, needle: &str) -> PostedMessage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let latest = setup
            .slack()
            .posts()
            .into_iter()
            .rfind(|post| post.method == "chat.update" && post.ts == card.ts);
        if let Some(latest) = &latest
            && block_text(latest).contains(needle)
        {
            return latest.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the card never showed {needle:?}; its latest update: {:#?}",
                latest.map(|post| block_text(&post))
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the `count`th ephemeral reply and returns its text.
async fn ephemeral(setup: &Setup, count: usize) -> String {
    let calls = setup
        .slack()
        .wait_for_calls("chat.postEphemeral", count, WAIT)
        .await
        .expect("an ephemeral reply");
    calls[count - 1].params["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn card_updates(setup: &Setup, card: &PostedMessage) -> usize {
    setup
        .slack()
        .posts()
        .iter()
        .filter(|post| post.method == "chat.update" && post.ts == card.ts)
        .count()
}

/// Lets stray work finish before counting what did not happen.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

const DEPLOY_REQUEST: &str = "deploy checkout to staging version 1.4.2";

async fn approve_runs_webhook_once_and_card_shows_success(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;

    let answer = proposed.answer.text.clone().unwrap_or_default();
    assert!(
        answer.contains("Deploy a service") && answer.contains("waits for approval"),
        "{answer}"
    );
    assert!(has_buttons(&proposed.card));
    let card_text = block_text(&proposed.card);
    for needle in [
        "Approval needed",
        "Deploy a service",
        "Checkout Service",
        "*environment*\nstaging",
        "*version*\n1.4.2",
        &format!("Requested by <@{REQUESTER}>"),
    ] {
        assert!(card_text.contains(needle), "{needle:?} in {card_text}");
    }
    assert_eq!(proposed.card.thread_ts, proposed.answer.thread_ts);
    let fallback = proposed.card.text.clone().unwrap_or_default();
    assert!(
        fallback.contains("Approval needed: Deploy a service"),
        "{fallback}"
    );

    let run = recorded_card(&setup, &proposed.run_id).await;
    assert_eq!(run.status, RunStatus::WaitingForApproval);
    assert_eq!(run.message_ts.as_deref(), Some(proposed.card.ts.as_str()));
    let invocation = invocations::recent(&setup.bot().app.store, 1)
        .await
        .expect("invocations")
        .remove(0);
    assert_eq!(run.invocation_id.as_deref(), Some(invocation.id.as_str()));

    let ack = setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    assert!(
        ack.latency < Duration::from_millis(2_500),
        "{:?}",
        ack.latency
    );

    let done = wait_for_card(&setup, &proposed.card, "succeeded").await;
    let text = block_text(&done);
    assert!(
        text.contains(&format!("Approved by <@{APPROVER}>")),
        "{text}"
    );
    assert!(text.contains("HTTP 200"), "{text}");
    assert!(!has_buttons(&done), "the buttons are gone: {text}");
    let updates: Vec<String> = setup
        .slack()
        .posts()
        .iter()
        .filter(|post| post.method == "chat.update")
        .map(block_text)
        .collect();
    assert!(
        updates.iter().any(|text| text.contains("running")),
        "the card said it was running first: {updates:#?}"
    );

    setup
        .webhook
        .wait_for_requests(1, WAIT)
        .await
        .expect("sent");
    settle().await;
    let requests = setup.webhook.requests();
    assert_eq!(requests.len(), 1, "the webhook is called once");
    let request = &requests[0];
    assert!(request.signature_valid, "the signature verifies");
    assert_eq!(
        request.header("x-agentdesk-run-id"),
        Some(proposed.run_id.as_str())
    );
    assert_eq!(request.header("x-deploy-key"), Some(DEPLOY_KEY));
    let body = request.json();
    assert_eq!(body["run_id"], json!(proposed.run_id));
    assert_eq!(body["action"]["id"], "deploy");
    assert_eq!(
        body["inputs"],
        json!({"environment": "staging", "version": "1.4.2"})
    );
    assert_eq!(body["target"]["ref"], "service:checkout");
    assert_eq!(body["requester"]["slack_user_id"], REQUESTER);
    assert_eq!(body["approver"]["slack_user_id"], APPROVER);
    assert_eq!(body["invocation_id"], json!(invocation.id));

    let run = setup.run(&proposed.run_id).await;
    assert_eq!(run.status, RunStatus::Success);
    assert_eq!(run.decider.as_deref(), Some(APPROVER));
    assert_eq!(run.http_status, Some(200));
    assert!(run.decided_at.is_some() && run.finished_at.is_some());
    setup.bot.unwrap().stop().await;
}

/// Waits until the run records where its card is; the bot writes that
/// after Slack answered the post.
async fn recorded_card(setup: &Setup, run_id: &str) -> ActionRun {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let run = setup.run(run_id).await;
        if run.message_ts.is_some() {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the card's ts is never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A click can arrive between the card's post and the write of its ts;
/// the click says where the card is, so the card is still updated.
async fn click_before_card_is_recorded_updates_card(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    recorded_card(&setup, &proposed.run_id).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET channel_id = NULL, message_ts = NULL WHERE id = '{}'",
        proposed.run_id
    )))
    .execute(setup.bot().app.store.pool())
    .await
    .expect("the card's place is forgotten");

    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let card = wait_for_card(&setup, &proposed.card, "succeeded").await;
    assert!(!has_buttons(&card));
    setup.bot.unwrap().stop().await;
}

async fn reject_runs_nothing(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, REJECT))
        .await;
    let card = wait_for_card(&setup, &proposed.card, "Rejected").await;
    assert!(
        block_text(&card).contains(&format!("Rejected by <@{APPROVER}>")),
        "{}",
        block_text(&card)
    );
    assert!(!has_buttons(&card));

    // A late approve changes nothing.
    setup
        .bot()
        .send(click(
            &proposed.card,
            &proposed.run_id,
            SECOND_APPROVER,
            APPROVE,
        ))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("already rejected"), "{reply}");
    settle().await;
    assert!(setup.webhook.requests().is_empty(), "nothing ran");
    assert_eq!(
        setup.run(&proposed.run_id).await.status,
        RunStatus::Rejected
    );
    setup.bot.unwrap().stop().await;
}

async fn double_and_concurrent_clicks_execute_once(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;

    // Four clicks at once: a double click, a redelivery of the same
    // envelope, and a second approver.
    let first = click(&proposed.card, &proposed.run_id, APPROVER, APPROVE);
    let clicks = [
        first.clone(),
        first,
        click(&proposed.card, &proposed.run_id, APPROVER, APPROVE),
        click(&proposed.card, &proposed.run_id, SECOND_APPROVER, APPROVE),
        click(&proposed.card, &proposed.run_id, GROUP_MEMBER, REJECT),
    ];
    let slack = setup.slack();
    let sends = clicks
        .iter()
        .map(|envelope| slack.send_envelope(envelope.clone()));
    for sent in futures_util::future::join_all(sends).await {
        sent.expect("click sent");
    }

    let run = loop {
        let run = setup.run(&proposed.run_id).await;
        if matches!(
            run.status,
            RunStatus::Success | RunStatus::Failure | RunStatus::Rejected
        ) {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    settle().await;
    let expected = usize::from(run.status == RunStatus::Success);
    assert_eq!(
        setup.webhook.requests().len(),
        expected,
        "one decision, at most one execution ({:?})",
        run.status
    );
    setup.bot.unwrap().stop().await;
}

async fn two_bot_processes_execute_once(database: TestDatabase) {
    let mut setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    // The first bot stops; two others share the database and the stand-in,
    // each on its own socket.
    let slack = setup.stop().await;
    let extra = setup.extra();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let app = agentdesk::app::App::start(
            bot_settings(&slack, setup.database.url(), &extra),
            setup.clock.clone(),
        )
        .await
        .expect("a replica starts");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(agentdesk::slack::serve::run_until(
            app,
            async move {
                let _ = stopped.await;
            },
        )));
        stops.push(stop);
    }
    slack.wait_for_sockets(2, WAIT).await.expect("two sockets");
    let sockets = slack.open_socket_ids();
    assert_eq!(sockets.len(), 2, "{sockets:?}");

    let to_first = slack.send_envelope_to(
        sockets[0],
        click(&proposed.card, &proposed.run_id, APPROVER, APPROVE),
    );
    let to_second = slack.send_envelope_to(
        sockets[1],
        click(&proposed.card, &proposed.run_id, SECOND_APPROVER, APPROVE),
    );
    let (first, second) = tokio::join!(to_first, to_second);
    first.expect("sent to the first replica");
    second.expect("sent to the second replica");

    setup
        .webhook
        .wait_for_requests(1, WAIT)
        .await
        .expect("sent");
    let deadline = tokio::time::Instant::now() + WAIT;
    while slack
        .calls()
        .iter()
        .filter(|call| call.method == "chat.postEphemeral")
        .count()
        < 1
    {
        assert!(tokio::time::Instant::now() < deadline, "the loser is told");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle().await;
    assert_eq!(setup.webhook.requests().len(), 1, "one execution");

    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await.expect("no panic").expect("serve stops cleanly");
    }
}

async fn non_approver_and_bot_change_nothing(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    let updates_before = card_updates(&setup, &proposed.card);

    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, OUTSIDER, APPROVE))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("not an approver"), "{reply}");
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, OUTSIDER, REJECT))
        .await;
    let reply = ephemeral(&setup, 2).await;
    assert!(reply.contains("not an approver"), "{reply}");
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, OTHER_BOT, APPROVE))
        .await;
    let reply = ephemeral(&setup, 3).await;
    assert!(reply.contains("Bots cannot approve"), "{reply}");
    let call = &setup
        .slack()
        .calls()
        .into_iter()
        .rfind(|call| call.method == "chat.postEphemeral")
        .expect("ephemeral");
    assert_eq!(call.params["user"], OTHER_BOT);

    settle().await;
    assert_eq!(card_updates(&setup, &proposed.card), updates_before);
    assert!(setup.webhook.requests().is_empty());
    assert_eq!(
        setup.run(&proposed.run_id).await.status,
        RunStatus::WaitingForApproval
    );
    setup.bot.unwrap().stop().await;
}

async fn self_approval_is_refused_unless_allowed(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, APPROVER).await;
    // The requester is an approver, but not of their own request.
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("someone else must approve"), "{reply}");
    assert_eq!(
        setup.run(&proposed.run_id).await.status,
        RunStatus::WaitingForApproval
    );

    let hotfix = propose(&setup, "hotfix payments", REQUESTER).await;
    setup
        .bot()
        .send(click(&hotfix.card, &hotfix.run_id, REQUESTER, APPROVE))
        .await;
    wait_for_card(&setup, &hotfix.card, "succeeded").await;
    assert_eq!(setup.webhook.requests().len(), 1);
    assert_eq!(
        setup.run(&hotfix.run_id).await.decider.as_deref(),
        Some(REQUESTER)
    );
    setup.bot.unwrap().stop().await;
}

async fn owners_of_target_and_user_group_approve(database: TestDatabase) {
    let setup = setup(database).await;

    // checkout is owned by the conversion team; its members approve.
    let promote = propose(&setup, "promote checkout", REQUESTER).await;
    setup
        .bot()
        .send(click(
            &promote.card,
            &promote.run_id,
            OTHER_TEAM_MEMBER,
            APPROVE,
        ))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("not an approver"), "{reply}");
    setup
        .bot()
        .send(click(
            &promote.card,
            &promote.run_id,
            CHECKOUT_OWNER,
            APPROVE,
        ))
        .await;
    wait_for_card(&setup, &promote.card, "succeeded").await;

    // A member of the S0DEPLOYERS user group approves a deploy.
    let deploy = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    setup
        .bot()
        .send(click(&deploy.card, &deploy.run_id, GROUP_MEMBER, APPROVE))
        .await;
    wait_for_card(&setup, &deploy.card, "succeeded").await;
    assert_eq!(setup.webhook.requests().len(), 2);
    setup.bot.unwrap().stop().await;
}

/// Catalog people without a `slack_user_id` map to Slack through their
/// e-mail address.
async fn owner_found_by_email(database: TestDatabase) {
    let setup = setup(database).await;
    let folder = TempDir::new().expect("temp dir");
    let catalog = folder.path().join("catalog.yaml");
    std::fs::write(
        &catalog,
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: payments-team\n\
         spec:\n  type: team\n  children: []\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: nadia\nspec:\n  \
         profile:\n    displayName: Nadia\n    email: nadia@bramblewick.example\n  \
         memberOf: [payments-team]\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ledger\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: payments-team\n",
    )
    .expect("catalog written");
    crate::helpers::import(&setup.bot().app.store, &setup.clock, &[catalog]).await;
    setup.slack().set_user(person(
        "U0NADIA009",
        "nadia",
        Some("Nadia@Bramblewick.example"),
    ));
    let owned = agents_with_component_target(&setup);
    std::fs::write(&setup.agents_path, owned).expect("agents file rewritten");
    let mut setup = setup;
    let slack = setup.stop().await;
    setup.start(slack).await;

    let proposed = propose(&setup, "promote ledger", REQUESTER).await;
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, OUTSIDER, APPROVE))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("not an approver"), "{reply}");
    setup
        .bot()
        .send(click(
            &proposed.card,
            &proposed.run_id,
            "U0NADIA009",
            APPROVE,
        ))
        .await;
    wait_for_card(&setup, &proposed.card, "succeeded").await;
    let lookups = setup
        .slack()
        .calls()
        .into_iter()
        .filter(|call| call.method == "users.lookupByEmail")
        .count();
    assert!(lookups >= 1, "the owner was looked up by e-mail");
    setup.bot.unwrap().stop().await;
}

/// The agents file with `owner-deploy` aimed at Backstage components.
fn agents_with_component_target(setup: &Setup) -> String {
    let text = std::fs::read_to_string(&setup.agents_path).expect("agents file");
    text.replace(
        "description: Promotes a service's staging build to production.\n    target_blueprint: service",
        "description: Promotes a service's staging build to production.\n    target_blueprint: component",
    )
}

async fn click_after_restart_works(database: TestDatabase) {
    let mut setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    let slack = setup.stop().await;
    setup.start(slack).await;

    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    wait_for_card(&setup, &proposed.card, "succeeded").await;
    assert_eq!(setup.webhook.requests().len(), 1);
    setup.bot.unwrap().stop().await;
}

async fn expired_request_never_runs(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    let run = setup.run(&proposed.run_id).await;
    let expires_at = run.expires_at.expect("a deadline");
    assert_eq!(
        expires_at - run.created_at,
        24 * 60 * 60 * 1_000,
        "requests expire after 24 hours by default"
    );

    setup.manual.advance(Duration::from_secs(24 * 60 * 60 + 60));
    let card = wait_for_card(&setup, &proposed.card, "Expired").await;
    assert!(!has_buttons(&card));
    assert_eq!(setup.run(&proposed.run_id).await.status, RunStatus::Expired);

    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let reply = ephemeral(&setup, 1).await;
    assert!(reply.contains("expired"), "{reply}");
    settle().await;
    assert!(setup.webhook.requests().is_empty());
    setup.bot.unwrap().stop().await;
}

async fn webhook_error_shows_failure(database: TestDatabase) {
    let setup = setup(database).await;
    setup
        .webhook
        .respond_with(500, r#"{"error":"deployer crashed"}"#);
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let card = wait_for_card(&setup, &proposed.card, "failed").await;
    assert!(
        block_text(&card).contains("HTTP 500"),
        "{}",
        block_text(&card)
    );
    let run = setup.run(&proposed.run_id).await;
    assert_eq!(run.status, RunStatus::Failure);
    assert_eq!(run.http_status, Some(500));
    settle().await;
    assert_eq!(setup.webhook.requests().len(), 1, "never retried");
    setup.bot.unwrap().stop().await;
}

async fn webhook_timeout_shows_outcome_unknown(database: TestDatabase) {
    let setup = setup_with(database, |options| options.deploy_timeout_secs = 1).await;
    setup.webhook.delay(Duration::from_secs(3));
    let proposed = propose(&setup, DEPLOY_REQUEST, REQUESTER).await;
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let card = wait_for_card(&setup, &proposed.card, "failed").await;
    assert!(
        block_text(&card).contains("timed out, outcome unknown"),
        "{}",
        block_text(&card)
    );
    assert_eq!(setup.webhook.requests().len(), 1, "never retried");
    setup.bot.unwrap().stop().await;
}

async fn github_executor_links_the_run(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, "restart payments in production", REQUESTER).await;
    setup
        .bot()
        .send(click(&proposed.card, &proposed.run_id, APPROVER, APPROVE))
        .await;
    let card = wait_for_card(&setup, &proposed.card, "succeeded").await;
    let runs = setup.github.runs();
    assert_eq!(runs.len(), 1, "one dispatch");
    assert_eq!(
        runs[0].inputs,
        json!({"service": "payments", "environment": "production"})
    );
    assert!(
        block_text(&card).contains(&runs[0].html_url),
        "the card links the run: {}",
        block_text(&card)
    );
    let run = setup.run(&proposed.run_id).await;
    assert_eq!(run.link.as_deref(), Some(runs[0].html_url.as_str()));
    setup.bot.unwrap().stop().await;
}

async fn automatic_action_runs_without_card(database: TestDatabase) {
    let setup = setup(database).await;
    let proposed = propose(&setup, "flush the cache of checkout", REQUESTER).await;
    assert!(
        !has_buttons(&proposed.card),
        "no buttons for an automatic action"
    );
    assert!(
        !block_text(&proposed.card).contains("Approval needed"),
        "{}",
        block_text(&proposed.card)
    );
    let note = wait_for_card(&setup, &proposed.card, "succeeded").await;
    assert!(
        block_text(&note).contains("automatically"),
        "{}",
        block_text(&note)
    );
    let requests = setup.webhook.wait_for_requests(1, WAIT).await.expect("ran");
    assert_eq!(requests[0].json()["approver"], Value::Null);
    assert_eq!(setup.run(&proposed.run_id).await.status, RunStatus::Success);
    setup.bot.unwrap().stop().await;
}

async fn agent_without_the_action_cannot_run_it(database: TestDatabase) {
    let setup = setup(database).await;
    let slack = setup.slack();
    setup
        .bot()
        .send(mention(
            "readonly deploy checkout to staging version 1.4.2",
            REQUESTER,
        ))
        .await;
    slack.wait_for_posts(1, WAIT).await.expect("an answer");
    settle().await;
    assert_eq!(slack.posts().len(), 1, "no card: {:#?}", slack.posts());
    let runs = action_runs::list(&setup.bot().app.store, None, 10)
        .await
        .expect("runs");
    assert!(runs.is_empty(), "{runs:?}");
    setup.bot.unwrap().stop().await;
}

on_both_databases!(
    approve_runs_webhook_once_and_card_shows_success,
    invalid_model_inputs_come_back_as_errors,
    click_before_card_is_recorded_updates_card,
    reject_runs_nothing,
    double_and_concurrent_clicks_execute_once,
    two_bot_processes_execute_once,
    non_approver_and_bot_change_nothing,
    self_approval_is_refused_unless_allowed,
    owners_of_target_and_user_group_approve,
    owner_found_by_email,
    click_after_restart_works,
    expired_request_never_runs,
    webhook_error_shows_failure,
    webhook_timeout_shows_outcome_unknown,
    github_executor_links_the_run,
    automatic_action_runs_without_card,
    agent_without_the_action_cannot_run_it,
);

/// A model that sends invalid inputs gets the validation errors back, and
/// nothing is recorded or run; a tool the agent does not have is refused.
async fn invalid_model_inputs_come_back_as_errors(database: TestDatabase) {
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    model.push(Reply::ToolCalls(vec![(
        "propose_deploy".to_string(),
        r#"{"target":"checkout","environment":"qa","version":"latest"}"#.to_string(),
    )]));
    model.push(Reply::ToolCalls(vec![(
        "propose_delete_everything".to_string(),
        r#"{"target":"checkout"}"#.to_string(),
    )]));
    model.push(Reply::Text(
        "Which environment and version should I deploy?".to_string(),
    ));
    let base_url = model.base_url();
    let mut setup = setup(database).await;
    let slack = setup.stop().await;
    let mut extra = setup.extra();
    extra.push(("AGENTDESK_BACKEND", "openai".to_string()));
    extra.push(("OPENAI_BASE_URL", base_url));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    setup.bot =
        Some(start_bot_with_clock(slack, setup.database.url(), &extra, setup.clock.clone()).await);

    setup
        .bot()
        .send(mention("deploy checkout", REQUESTER))
        .await;
    let posts = setup
        .slack()
        .wait_for_posts(1, WAIT)
        .await
        .expect("an answer");
    assert!(
        posts[0]
            .text
            .as_deref()
            .unwrap_or_default()
            .contains("Which environment"),
        "{posts:#?}"
    );

    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let tools: Vec<&str> = requests[0]["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .filter_map(|tool| tool["function"]["name"].as_str())
        .collect();
    assert!(tools.contains(&"propose_deploy"), "{tools:?}");
    let result = |request: &Value| -> String {
        request["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .rfind(|message| message["role"] == "tool")
            .and_then(|message| message["content"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let first = result(&requests[1]);
    assert!(
        first.contains("environment") && first.contains("version"),
        "both invalid inputs are named: {first}"
    );
    let second = result(&requests[2]);
    assert!(second.contains("propose_delete_everything"), "{second}");

    settle().await;
    assert_eq!(setup.slack().posts().len(), 1, "no card");
    let runs = action_runs::list(&setup.bot().app.store, None, 10)
        .await
        .expect("runs");
    assert!(runs.is_empty(), "nothing recorded: {runs:?}");
    assert!(setup.webhook.requests().is_empty());
    setup.bot.unwrap().stop().await;
}

/// Runs the real binary with every log level on, through an approved run
/// whose receiver echoes the secret header back, and searches the logs and
/// the database files for the secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_database_and_logs() {
    let webhook = WebhookReceiver::start(WEBHOOK_SECRET)
        .await
        .expect("the webhook receiver starts");
    webhook.respond_with(
        403,
        &format!(r#"{{"error":"key {DEPLOY_KEY} may not deploy","key":"{WEBHOOK_SECRET}"}}"#),
    );
    let options = Options {
        deploy_timeout_secs: 10,
        deploy_allow_self_approval: false,
        webhook_url: webhook.url(),
        github_url: "http://127.0.0.1:9/api/v3".to_string(),
    };
    let database = TestDatabase::sqlite_with_demo();
    let directory = TempDir::new().expect("temp dir");
    let agents_path = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, agents_file(&options)).expect("agents file written");
    let log_path = directory.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");

    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    add_people(&slack);
    let mut command = std::process::Command::new(crate::helpers::agentdesk_binary());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AGENTDESK_") || name.starts_with("SLACK_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let agents = agents_path.display().to_string();
    let api_url = slack.api_url();
    command
        .current_dir(directory.path())
        .arg("serve")
        .envs([
            ("DATABASE_URL", database.url()),
            ("SLACK_BOT_TOKEN", SlackStandin::BOT_TOKEN),
            ("SLACK_APP_TOKEN", SlackStandin::APP_TOKEN),
            ("SLACK_API_URL", api_url.as_str()),
            ("AGENTDESK_CONFIG", agents.as_str()),
            ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("DEPLOY_KEY", DEPLOY_KEY),
            ("GITHUB_TOKEN", GITHUB_TOKEN),
            ("AGENTDESK_LOG", "trace"),
            ("AGENTDESK_SOCKET_CONNECTIONS", "1"),
            ("AGENTDESK_HTTP_ADDR", "127.0.0.1:0"),
        ])
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    let mut child = command.spawn().expect("serve starts");

    let result = async {
        slack.wait_for_sockets(1, WAIT).await?;
        slack
            .send_envelope(mention(DEPLOY_REQUEST, REQUESTER))
            .await?;
        let posts = slack.wait_for_posts(2, WAIT).await?;
        let card = posts[1].clone();
        let run_id = card_run_id(&card).expect("a card with buttons");
        slack
            .send_envelope(click(&card, &run_id, APPROVER, APPROVE))
            .await?;
        webhook.wait_for_requests(1, WAIT).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        while !slack
            .posts()
            .iter()
            .any(|post| post.method == "chat.update" && block_text(post).contains("failed"))
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no failure on the card"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    }
    .await;

    // SAFETY: signalling a child this test started and still owns.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("serve exits");
    let logs = std::fs::read_to_string(&log_path).expect("logs readable");
    result.unwrap_or_else(|error| panic!("{error:#}\n--- logs ---\n{logs}"));
    assert!(status.success(), "serve stops cleanly on SIGTERM: {status}");
    assert_eq!(
        webhook.requests()[0].header("x-deploy-key"),
        Some(DEPLOY_KEY)
    );
    assert!(
        logs.contains("run decided"),
        "the logs cover the run: {logs}"
    );
    let card_text: String = slack.posts().iter().map(block_text).collect();

    let database_path = database.url().trim_start_matches("sqlite://").to_string();
    let mut stored = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{database_path}{suffix}")) {
            stored.extend(bytes);
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("1.4.2"), "the run's inputs are stored");
    for secret in [DEPLOY_KEY, WEBHOOK_SECRET, GITHUB_TOKEN] {
        assert!(!logs.contains(secret), "{secret} is in the logs");
        assert!(!stored.contains(secret), "{secret} is in the database");
        assert!(!card_text.contains(secret), "{secret} is on the card");
    }
}

/// An action whose target blueprint is not in the catalog starts with a
/// warning, and proposing it is an error the answer passes on.
async fn missing_target_blueprint_warns_then_fails_the_proposal(database: TestDatabase) {
    let directory = TempDir::new().expect("temp dir");
    let agents = directory.path().join("agentdesk.yaml");
    std::fs::write(
        &agents,
        "agents:\n  - id: ops\n    title: Ops\n    description: Clusters.\n    actions: [drain]\n\
         actions:\n  - id: drain\n    title: Drain a cluster\n    description: Drains a cluster.\n\
         \x20   target_blueprint: cluster\n    approval: { policy: automatic }\n\
         \x20   executor:\n      type: webhook\n      url: http://127.0.0.1:9/hook\n\
         \x20     secret_env: AGENTDESK_WEBHOOK_SECRET\n",
    )
    .expect("agents file written");
    let agents = agents.display().to_string();
    let output = crate::helpers::run_agentdesk(
        directory.path(),
        &[
            ("DATABASE_URL", database.url()),
            ("AGENTDESK_CONFIG", agents.as_str()),
            ("AGENTDESK_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
        &["ask", "drain cluster-a"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("action names a blueprint that is not in the catalog"),
        "{stderr}"
    );
    assert!(stderr.contains("blueprint=cluster"), "{stderr}");
    assert!(
        stdout.contains("could not propose")
            && stdout.contains("\"cluster\" is not in the catalog"),
        "{stdout}"
    );
    assert!(!stdout.contains("Action drain"), "no run: {stdout}");
}

on_both_databases_with_demo!(missing_target_blueprint_warns_then_fails_the_proposal);
