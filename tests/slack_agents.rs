//! Agents from an agents file, through the stand-in Slack: routing, access,
//! tool allow-lists, data scope, the slash command and suggested prompts.

use std::path::PathBuf;

use agentdesk::store::invocations::{self, Status};
use agentdesk_standins::Reply;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{PostedMessage, SlackStandin, with_fresh_ids};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::bot::{RunningBot, WAIT, block_text, start_bot};
use crate::helpers::{TestDatabase, on_both_databases_with_demo, slack_fixture};

on_both_databases_with_demo!(
    nickname_routes_to_its_agent,
    channel_default_routes_to_its_agent,
    description_routes_to_the_best_agent,
    forbidden_user_is_refused_and_recorded,
    user_group_grants_access,
    channel_grants_access,
    slash_command_help_agents_and_usage,
    tool_outside_allow_list_is_never_run,
    entity_outside_data_scope_is_invisible,
    assistant_thread_shows_conversation_starters,
    redaction_hides_secrets_from_model_and_store,
    user_request_limit_refuses_then_resets,
    agent_request_limit_refuses_then_resets,
    token_budget_is_exhausted_until_next_utc_day,
    workspace_token_budget_covers_every_user,
    feedback_is_stored_once_per_user,
    metadata_only_stores_no_text,
    retention_task_in_serve_deletes_old_invocations,
    agent_backend_and_model_override_the_environment,
);

/// Three agents: an explorer for services (the default), an incident agent
/// that only U0BOB00002 and the S0ONCALL group may use, and a triage agent
/// limited to search_entities over services.
const AGENTS: &str = r#"
default_agent: explorer
agents:
  - id: explorer
    title: Service Explorer
    description: Owners, dependencies, lifecycle and tier of services.
    conversation_starters: ["Who owns the payments service?", "What does checkout depend on?"]
  - id: incidents
    title: Incident Manager
    description: Open incidents, outages and on-call pages.
    access:
      users: [U0BOB00002]
      user_groups: [S0ONCALL]
  - id: triage
    title: Request Triage
    description: Routes requests to the right team and its Slack channel.
    allowed_tools: ["search_entities"]
    data_scope: [service]
"#;

struct Setup {
    bot: RunningBot,
    model: Option<OpenAiStandin>,
    _directory: TempDir,
}

/// Starts a bot on `database` with `agents` as its agents file; with
/// `use_model`, the OpenAI stand-in is the backend.
async fn setup(database: &TestDatabase, agents: &str, use_model: bool) -> Setup {
    let directory = TempDir::new().expect("temp dir");
    let agents_path: PathBuf = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, agents).expect("agents file written");
    let agents_path = agents_path.display().to_string();

    let model = if use_model {
        Some(OpenAiStandin::start().await.expect("model stand-in starts"))
    } else {
        None
    };
    let base_url = model
        .as_ref()
        .map(|model| model.base_url())
        .unwrap_or_default();
    let mut extra: Vec<(&str, &str)> = vec![("AGENTDESK_CONFIG", agents_path.as_str())];
    if use_model {
        extra.push(("AGENTDESK_BACKEND", "openai"));
        extra.push(("OPENAI_BASE_URL", base_url.as_str()));
    }
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let bot = start_bot(slack, database.url(), &extra).await;
    Setup {
        bot,
        model,
        _directory: directory,
    }
}

/// The mention fixture with other text, user or channel.
fn mention(text: &str, user: &str, channel: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    let event = &mut envelope["payload"]["event"];
    event["text"] = json!(format!("<@U0BOT00001> {text}"));
    event["user"] = json!(user);
    event["channel"] = json!(channel);
    envelope
}

async fn ask(setup: &Setup, envelope: Value) -> PostedMessage {
    let before = setup.bot.slack.posts().len();
    setup.bot.send(envelope).await;
    let posts = setup
        .bot
        .slack
        .wait_for_posts(before + 1, WAIT)
        .await
        .expect("a reply");
    posts[before].clone()
}

async fn latest_invocation(setup: &Setup) -> invocations::Invocation {
    invocations::recent(&setup.bot.app.store, 1)
        .await
        .expect("invocations")
        .into_iter()
        .next()
        .expect("an invocation")
}

async fn nickname_routes_to_its_agent(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    let reply = ask(
        &setup,
        mention("triage who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert!(
        block_text(&reply).contains("Answered by *Request Triage*"),
        "{}",
        block_text(&reply)
    );
    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.agent, "triage");
    assert_eq!(
        invocation.prompt, "who owns payments?",
        "the nickname is not part of the question"
    );
    setup.bot.stop().await;
}

async fn channel_default_routes_to_its_agent(database: TestDatabase) {
    let agents = format!("channels:\n  C0TRIAGE01: triage\n{AGENTS}");
    let setup = setup(&database, &agents, false).await;
    let reply = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0TRIAGE01"),
    )
    .await;
    assert!(block_text(&reply).contains("Answered by *Request Triage*"));
    assert_eq!(latest_invocation(&setup).await.agent, "triage");

    let elsewhere = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert!(block_text(&elsewhere).contains("Answered by *Service Explorer*"));
    setup.bot.stop().await;
}

async fn description_routes_to_the_best_agent(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    let reply = ask(
        &setup,
        mention(
            "which team should I route this request to?",
            "U0ALICE001",
            "C0CHAN0001",
        ),
    )
    .await;
    assert!(
        block_text(&reply).contains("Answered by *Request Triage*"),
        "{}",
        block_text(&reply)
    );

    let default = ask(&setup, mention("hello there", "U0ALICE001", "C0CHAN0001")).await;
    assert!(
        block_text(&default).contains("Answered by *Service Explorer*"),
        "no match goes to the default agent"
    );
    setup.bot.stop().await;
}

async fn forbidden_user_is_refused_and_recorded(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    let reply = ask(
        &setup,
        mention(
            "incidents which incidents are open?",
            "U0ALICE001",
            "C0CHAN0001",
        ),
    )
    .await;
    let text = reply.text.clone().unwrap_or_default();
    assert!(
        text.contains("don't have access") && text.contains("Incident Manager"),
        "{text}"
    );
    assert!(
        !block_text(&reply).contains("Answered by"),
        "a refusal is not an answer"
    );

    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.status, Status::Refused);
    assert_eq!(invocation.agent, "incidents");
    assert_eq!(invocation.user_id.as_deref(), Some("U0ALICE001"));

    let allowed = ask(
        &setup,
        mention(
            "incidents which incidents are open?",
            "U0BOB00002",
            "C0CHAN0001",
        ),
    )
    .await;
    assert!(block_text(&allowed).contains("Answered by *Incident Manager*"));
    setup.bot.stop().await;
}

async fn user_group_grants_access(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    setup.bot.slack.set_usergroup("S0ONCALL", &["U0ALICE001"]);
    let reply = ask(
        &setup,
        mention(
            "incidents which incidents are open?",
            "U0ALICE001",
            "C0CHAN0001",
        ),
    )
    .await;
    assert!(
        block_text(&reply).contains("Answered by *Incident Manager*"),
        "{:?}",
        reply.text
    );
    let lookups = setup
        .bot
        .slack
        .calls()
        .into_iter()
        .filter(|call| call.method == "usergroups.users.list")
        .count();
    assert_eq!(lookups, 1);

    // A second question reads the group from the cache.
    ask(
        &setup,
        mention("incidents anything on fire?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let lookups = setup
        .bot
        .slack
        .calls()
        .into_iter()
        .filter(|call| call.method == "usergroups.users.list")
        .count();
    assert_eq!(lookups, 1, "group members are cached");
    setup.bot.stop().await;
}

async fn channel_grants_access(database: TestDatabase) {
    let agents = AGENTS.replace("user_groups: [S0ONCALL]", "channels: [C0ONCALL01]");
    let setup = setup(&database, &agents, false).await;
    let in_channel = ask(
        &setup,
        mention(
            "incidents which incidents are open?",
            "U0ALICE001",
            "C0ONCALL01",
        ),
    )
    .await;
    assert!(block_text(&in_channel).contains("Answered by *Incident Manager*"));

    let elsewhere = ask(
        &setup,
        mention(
            "incidents which incidents are open?",
            "U0ALICE001",
            "C0CHAN0001",
        ),
    )
    .await;
    assert!(
        elsewhere
            .text
            .unwrap_or_default()
            .contains("don't have access")
    );
    setup.bot.stop().await;
}

fn slash_command(text: &str) -> Value {
    let mut envelope = slack_fixture("slash_command_envelope.json");
    envelope["envelope_id"] = json!(uuid_like(text));
    envelope["payload"]["text"] = json!(text);
    envelope
}

fn uuid_like(seed: &str) -> String {
    let mut hex = String::new();
    for byte in seed.bytes().chain(std::iter::repeat(b'0')).take(16) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn ack_text(ack: &agentdesk_standins::slack::Ack) -> String {
    ack.payload
        .as_ref()
        .and_then(|payload| payload["text"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn slash_command_help_agents_and_usage(database: TestDatabase) {
    let agents = format!("limits:\n  requests_per_minute_per_user: 5\n{AGENTS}");
    let setup = setup(&database, &agents, false).await;

    let help = setup.bot.send(slash_command("help")).await;
    let text = ack_text(&help);
    assert!(
        text.contains("Who owns the payments service?"),
        "help lists starters: {text}"
    );
    assert_eq!(
        help.payload
            .as_ref()
            .and_then(|payload| payload["response_type"].as_str()),
        Some("ephemeral")
    );

    let agents = setup.bot.send(slash_command("agents")).await;
    let text = ack_text(&agents);
    assert!(
        text.contains("Service Explorer") && text.contains("Request Triage"),
        "{text}"
    );
    assert!(
        !text.contains("Incident Manager"),
        "alice may not use the incident agent: {text}"
    );

    let usage = setup.bot.send(slash_command("usage")).await;
    let text = ack_text(&usage);
    assert!(
        text.contains('5'),
        "usage shows the per-minute limit: {text}"
    );

    let unknown = setup.bot.send(slash_command("frobnicate")).await;
    assert!(ack_text(&unknown).contains("frobnicate"));
    setup.bot.stop().await;
}

/// The names of the tools offered in a recorded OpenAI request.
fn offered_tools(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The tool results sent back in a recorded OpenAI request.
fn tool_results(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|message| message["role"] == "tool")
                .filter_map(|message| message["content"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn tool_outside_allow_list_is_never_run(database: TestDatabase) {
    let setup = setup(&database, AGENTS, true).await;
    let model = setup.model.as_ref().expect("model");
    model.push(Reply::ToolCalls(vec![(
        "count_entities".into(),
        "{}".into(),
    )]));
    model.push(Reply::Text("I cannot count here.".into()));

    ask(
        &setup,
        mention(
            "triage how many services are there?",
            "U0ALICE001",
            "C0CHAN0001",
        ),
    )
    .await;
    let requests = model.requests();
    assert_eq!(
        offered_tools(&requests[0]),
        vec!["search_entities".to_string()]
    );
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    assert!(results[0].contains("unknown tool"), "{}", results[0]);
    assert!(
        !results[0].contains("total"),
        "the count never ran: {}",
        results[0]
    );

    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.tool_calls.len(), 1);
    assert!(invocation.tool_calls[0].error.is_some());
    setup.bot.stop().await;
}

async fn entity_outside_data_scope_is_invisible(database: TestDatabase) {
    let agents = AGENTS.replace(
        r#"allowed_tools: ["search_entities"]"#,
        r#"allowed_tools: ["search_entities", "get_entity"]"#,
    );
    let setup = setup(&database, &agents, true).await;
    let model = setup.model.as_ref().expect("model");
    model.push(Reply::ToolCalls(vec![
        ("get_entity".into(), r#"{"entity": "_team:billing"}"#.into()),
        ("search_entities".into(), r#"{"query": "billing"}"#.into()),
        (
            "get_entity".into(),
            r#"{"entity": "service:payments"}"#.into(),
        ),
    ]));
    model.push(Reply::Text("done".into()));

    ask(
        &setup,
        mention("triage who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let results = tool_results(&model.requests()[1]);
    assert_eq!(results.len(), 3);
    assert!(
        results[0].contains("error"),
        "the team is not found: {}",
        results[0]
    );
    assert!(
        !results[1].contains("_team:"),
        "search returns only services: {}",
        results[1]
    );
    assert!(results[2].contains("service:payments"), "{}", results[2]);
    assert!(
        !results[2].contains("_team:billing"),
        "the owner outside the scope is hidden: {}",
        results[2]
    );
    setup.bot.stop().await;
}

async fn assistant_thread_shows_conversation_starters(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    setup
        .bot
        .send(slack_fixture("assistant_thread_started_envelope.json"))
        .await;
    let calls = setup
        .bot
        .slack
        .wait_for_calls("assistant.threads.setSuggestedPrompts", 1, WAIT)
        .await
        .expect("suggested prompts are set");
    let params = &calls[0].params;
    assert_eq!(params["channel_id"], "D0DMALICE1");
    assert_eq!(params["thread_ts"], "1729999327.187299");
    let prompts = params["prompts"].as_array().expect("prompts");
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[0]["message"], "Who owns the payments service?");
    setup.bot.stop().await;
}

async fn redaction_hides_secrets_from_model_and_store(database: TestDatabase) {
    let agents = format!("redaction:\n  emails: true\n{AGENTS}");
    let setup = setup(&database, &agents, true).await;
    let model = setup.model.as_ref().expect("model");
    model.push(Reply::Text("Noted.".into()));

    // Assembled at run time so no token-shaped literal sits in the source.
    let token = [
        "xoxb",
        "1234567890",
        "0987654321",
        "AbCdEfGhIjKlMnOpQrStUvWx",
    ]
    .join("-");
    let question = format!("is {token} still valid? ask jane.doe@example.com");
    ask(&setup, mention(&question, "U0ALICE001", "C0CHAN0001")).await;

    let sent = model.requests()[0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["role"] == "user")
        .map(|message| message["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !sent.contains(&token),
        "the token reached the model: {sent}"
    );
    assert!(
        !sent.contains("jane.doe@example.com"),
        "the e-mail reached the model: {sent}"
    );
    assert!(sent.contains("[redacted: Slack token]"), "{sent}");
    assert!(sent.contains("[redacted: e-mail address]"), "{sent}");

    let stored = latest_invocation(&setup).await;
    assert!(
        !stored.prompt.contains(&token),
        "the token was stored: {}",
        stored.prompt
    );
    assert!(
        !stored.prompt.contains("jane.doe@example.com"),
        "the e-mail was stored"
    );
    setup.bot.stop().await;
}

/// A bot on `database` and a manual clock with limits, and the clock.
async fn limited_setup(
    database: &TestDatabase,
    limits: &str,
) -> (Setup, std::sync::Arc<agentdesk::clock::ManualClock>) {
    use agentdesk::clock::{Clock, ManualClock, SystemClock};

    let directory = TempDir::new().expect("temp dir");
    let agents_path = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, format!("limits:\n{limits}\n{AGENTS}"))
        .expect("agents file written");
    let agents_path = agents_path.display().to_string();

    // Start just after a minute boundary so a test's requests share a window.
    let now = SystemClock.now_millis();
    let clock = std::sync::Arc::new(ManualClock::new(now - now % 60_000 + 1_000));
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let bot = crate::helpers::bot::start_bot_with_clock(
        slack,
        database.url(),
        &[("AGENTDESK_CONFIG", agents_path.as_str())],
        clock.clone(),
    )
    .await;
    (
        Setup {
            bot,
            model: None,
            _directory: directory,
        },
        clock,
    )
}

async fn user_request_limit_refuses_then_resets(database: TestDatabase) {
    let (setup, clock) = limited_setup(&database, "  requests_per_minute_per_user: 2").await;
    for _ in 0..2 {
        let reply = ask(
            &setup,
            mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
        )
        .await;
        assert!(block_text(&reply).contains("Answered by"));
    }
    let refused = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let text = refused.text.clone().unwrap_or_default();
    assert!(
        text.contains("2 requests per minute"),
        "the reply names the limit: {text}"
    );
    assert!(
        text.contains("resets at"),
        "the reply says when it resets: {text}"
    );
    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.status, Status::Refused);

    // Another user is not affected.
    let other = ask(
        &setup,
        mention("who owns payments?", "U0BOB00002", "C0CHAN0001"),
    )
    .await;
    assert!(block_text(&other).contains("Answered by"));

    clock.advance(std::time::Duration::from_secs(60));
    let again = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert!(
        block_text(&again).contains("Answered by"),
        "the limit reset: {:?}",
        again.text
    );
    setup.bot.stop().await;
}

async fn agent_request_limit_refuses_then_resets(database: TestDatabase) {
    let (setup, clock) = limited_setup(&database, "  requests_per_minute_per_agent: 2").await;
    ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    ask(
        &setup,
        mention("who owns payments?", "U0BOB00002", "C0CHAN0001"),
    )
    .await;
    let refused = ask(
        &setup,
        mention("who owns payments?", "U0CAROL003", "C0CHAN0001"),
    )
    .await;
    let text = refused.text.clone().unwrap_or_default();
    assert!(
        text.contains("agent") && text.contains("2 requests per minute"),
        "{text}"
    );

    // Another agent has its own window.
    let triage = ask(
        &setup,
        mention("triage who owns payments?", "U0CAROL003", "C0CHAN0001"),
    )
    .await;
    assert!(block_text(&triage).contains("Answered by *Request Triage*"));

    clock.advance(std::time::Duration::from_secs(60));
    let again = ask(
        &setup,
        mention("who owns payments?", "U0CAROL003", "C0CHAN0001"),
    )
    .await;
    assert!(block_text(&again).contains("Answered by *Service Explorer*"));
    setup.bot.stop().await;
}

async fn token_budget_is_exhausted_until_next_utc_day(database: TestDatabase) {
    let (setup, clock) = limited_setup(
        &database,
        "  daily_tokens_per_user: 50\n  daily_tokens_per_workspace: 100000",
    )
    .await;
    let first = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert!(block_text(&first).contains("Answered by"));
    let used = latest_invocation(&setup).await;
    assert!(
        used.tokens_in + used.tokens_out >= 50,
        "the first answer uses the budget: {used:?}"
    );

    let refused = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let text = refused.text.clone().unwrap_or_default();
    assert!(text.contains("daily budget of 50 tokens"), "{text}");
    assert_eq!(latest_invocation(&setup).await.status, Status::Refused);

    clock.advance(std::time::Duration::from_secs(24 * 60 * 60));
    let next_day = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert!(
        block_text(&next_day).contains("Answered by"),
        "{:?}",
        next_day.text
    );
    setup.bot.stop().await;
}

async fn workspace_token_budget_covers_every_user(database: TestDatabase) {
    let (setup, _clock) = limited_setup(&database, "  daily_tokens_per_workspace: 50").await;
    ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let refused = ask(
        &setup,
        mention("who owns payments?", "U0BOB00002", "C0CHAN0001"),
    )
    .await;
    let text = refused.text.clone().unwrap_or_default();
    assert!(
        text.contains("workspace") && text.contains("50 tokens"),
        "{text}"
    );
    setup.bot.stop().await;
}

/// A click on a feedback button, shaped like Slack's block_actions.
fn feedback_click(invocation_id: &str, user: &str, action_id: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("block_actions_approve_envelope.json"));
    envelope["envelope_id"] = json!(format!("{}-{action_id}-{user}", &invocation_id[..8]));
    let payload = &mut envelope["payload"];
    payload["user"]["id"] = json!(user);
    payload["actions"][0]["action_id"] = json!(action_id);
    payload["actions"][0]["value"] = json!(invocation_id);
    payload["actions"][0]["block_id"] = json!(format!("feedback-{invocation_id}"));
    envelope
}

async fn feedback_is_stored_once_per_user(database: TestDatabase) {
    let setup = setup(&database, AGENTS, false).await;
    let reply = ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let blocks = reply.blocks.clone().unwrap_or_default().to_string();
    assert!(
        blocks.contains("feedback_up") && blocks.contains("feedback_down"),
        "{blocks}"
    );
    let invocation = latest_invocation(&setup).await;

    let store = setup.bot.app.store.clone();
    let votes = || {
        let store = store.clone();
        let id = invocation.id.clone();
        async move {
            agentdesk::store::feedback::votes_for(&store, &id)
                .await
                .expect("votes")
        }
    };
    let ack = setup
        .bot
        .send(feedback_click(&invocation.id, "U0ALICE001", "feedback_up"))
        .await;
    // Slack allows 3 s; a loaded test machine gets some slack below that.
    assert!(
        ack.latency < std::time::Duration::from_millis(2_500),
        "ack took {:?}",
        ack.latency
    );
    setup
        .bot
        .send(feedback_click(&invocation.id, "U0ALICE001", "feedback_up"))
        .await;
    setup
        .bot
        .slack
        .wait_for_calls("chat.postEphemeral", 2, WAIT)
        .await
        .expect("confirmations");
    let recorded = votes().await;
    assert_eq!(recorded.len(), 1, "one vote per user: {recorded:?}");
    assert_eq!(recorded[0].1, agentdesk::store::feedback::Vote::Up);

    setup
        .bot
        .send(feedback_click(
            &invocation.id,
            "U0ALICE001",
            "feedback_down",
        ))
        .await;
    setup
        .bot
        .send(feedback_click(&invocation.id, "U0BOB00002", "feedback_up"))
        .await;
    setup
        .bot
        .slack
        .wait_for_calls("chat.postEphemeral", 4, WAIT)
        .await
        .expect("confirmations");
    let recorded = votes().await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(
        recorded[0],
        (
            "U0ALICE001".to_string(),
            agentdesk::store::feedback::Vote::Down
        ),
        "alice changed her vote"
    );
    assert_eq!(
        recorded[1],
        (
            "U0BOB00002".to_string(),
            agentdesk::store::feedback::Vote::Up
        )
    );
    setup.bot.stop().await;
}

async fn metadata_only_stores_no_text(database: TestDatabase) {
    let agents = format!("retention:\n  metadata_only: true\n{AGENTS}");
    let setup = setup(&database, &agents, false).await;
    ask(
        &setup,
        mention("who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.status, Status::Completed);
    assert_eq!(invocation.prompt, "");
    assert_eq!(invocation.answer, None);
    assert!(!invocation.tool_calls.is_empty(), "tool names are kept");
    assert!(
        invocation
            .tool_calls
            .iter()
            .all(|call| call.arguments.is_empty()),
        "{:?}",
        invocation.tool_calls
    );
    assert!(invocation.tokens_in > 0, "metadata such as tokens is kept");
    setup.bot.stop().await;
}

async fn retention_task_in_serve_deletes_old_invocations(database: TestDatabase) {
    use agentdesk::clock::{Clock, ManualClock, SystemClock};
    use agentdesk::store::invocations::{NewInvocation, Outcome, Source, StoragePolicy};

    let directory = TempDir::new().expect("temp dir");
    let agents_path = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, format!("retention:\n  days: 7\n{AGENTS}")).expect("written");
    let agents_path = agents_path.display().to_string();
    let now = SystemClock.now_millis();
    let clock = std::sync::Arc::new(ManualClock::new(now));
    let shared: agentdesk::clock::SharedClock = clock.clone();

    // Two invocations before the bot starts: one 10 days old, one 1 day old.
    let store = database.store().await;
    for (id, age_days) in [("old-invocation", 10), ("new-invocation", 1)] {
        clock.set(now - age_days * 24 * 60 * 60 * 1000);
        let new = NewInvocation {
            id: id.to_string(),
            source: Source::Slack,
            agent: "explorer".into(),
            team_id: None,
            channel_id: None,
            thread_ts: None,
            message_ts: None,
            user_id: None,
            prompt: "q".into(),
            backend: "offline".into(),
            model: "offline-rules".into(),
        };
        invocations::start(&store, &shared, &new, StoragePolicy::Full)
            .await
            .expect("start");
        let outcome = Outcome {
            status: Status::Completed,
            answer: Some("a".into()),
            error: None,
            refusal: None,
            usage: Default::default(),
            tool_calls: Vec::new(),
        };
        invocations::finish(&store, &shared, id, &outcome, StoragePolicy::Full)
            .await
            .expect("finish");
    }
    clock.set(now);
    store.close().await;

    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let bot = crate::helpers::bot::start_bot_with_clock(
        slack,
        database.url(),
        &[
            ("AGENTDESK_CONFIG", agents_path.as_str()),
            ("AGENTDESK_RETENTION_INTERVAL_SECS", "1"),
        ],
        clock.clone(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let old = invocations::get(&bot.app.store, "old-invocation")
            .await
            .expect("read");
        if old.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old invocation was never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let kept = invocations::get(&bot.app.store, "new-invocation")
        .await
        .expect("read");
    assert!(kept.is_some(), "the new invocation is kept");
    bot.stop().await;
}

async fn agent_backend_and_model_override_the_environment(database: TestDatabase) {
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    model.push(Reply::Text("From the configured model.".into()));
    let agents = AGENTS.replace(
        "    title: Request Triage\n",
        "    title: Request Triage\n    backend: openai\n    model: triage-model-7\n",
    );
    let directory = TempDir::new().expect("temp dir");
    let agents_path = directory.path().join("agentdesk.yaml");
    std::fs::write(&agents_path, agents).expect("agents file written");
    let agents_path = agents_path.display().to_string();
    let base_url = model.base_url();
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    // The environment selects the offline backend; only triage uses OpenAI.
    let bot = start_bot(
        slack,
        database.url(),
        &[
            ("AGENTDESK_CONFIG", agents_path.as_str()),
            ("AGENTDESK_BACKEND", "offline"),
            ("OPENAI_BASE_URL", base_url.as_str()),
        ],
    )
    .await;
    let setup = Setup {
        bot,
        model: None,
        _directory: directory,
    };

    let reply = ask(
        &setup,
        mention("triage who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert_eq!(reply.text.as_deref(), Some("From the configured model."));
    assert_eq!(model.requests()[0]["model"], "triage-model-7");
    let invocation = latest_invocation(&setup).await;
    assert_eq!(invocation.backend, "openai");
    assert_eq!(invocation.model, "triage-model-7");

    ask(
        &setup,
        mention("explorer who owns payments?", "U0ALICE001", "C0CHAN0001"),
    )
    .await;
    assert_eq!(latest_invocation(&setup).await.backend, "offline");
    assert_eq!(
        model.requests().len(),
        1,
        "the explorer did not call the model"
    );
    setup.bot.stop().await;
}
