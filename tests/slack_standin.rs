//! The Slack stand-in, driven by a raw WebSocket client, by plain HTTP and by
//! slack-morphism, the client the product uses.

use std::sync::Arc;
use std::time::Duration;

use agentdesk_standins::slack::{Fault, SlackStandin, as_redelivery, with_fresh_ids};
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{slack_client, slack_fixture};

const TIMEOUT: Duration = Duration::from_secs(5);

type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn http_client() -> reqwest::Client {
    agentdesk::install_crypto_provider();
    reqwest::Client::new()
}

/// Calls `apps.connections.open` with the app token and returns the URL.
async fn open_connection_url(standin: &SlackStandin) -> anyhow::Result<String> {
    let reply: Value = http_client()
        .post(format!("{}/apps.connections.open", standin.api_url()))
        .bearer_auth(SlackStandin::APP_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(reply["ok"], true, "apps.connections.open failed: {reply}");
    reply["url"]
        .as_str()
        .map(str::to_owned)
        .context("apps.connections.open returned no url")
}

/// Opens a socket like a client does and returns it with its hello frame.
async fn connect_raw(standin: &SlackStandin) -> anyhow::Result<(RawSocket, Value)> {
    let url = open_connection_url(standin).await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await?;
    let hello = next_json(&mut socket).await?;
    Ok((socket, hello))
}

/// Reads the next text frame as JSON, skipping control frames.
async fn next_json(socket: &mut RawSocket) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .context("timed out waiting for a frame")?
            .context("the socket closed")??;
        if let Message::Text(text) = message {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
}

async fn send_json(socket: &mut RawSocket, frame: Value) -> anyhow::Result<()> {
    socket.send(Message::text(frame.to_string())).await?;
    Ok(())
}

async fn post_form(standin: &SlackStandin, method: &str, form: &[(&str, &str)]) -> Value {
    http_client()
        .post(format!("{}/{method}", standin.api_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(form))
        .send()
        .await
        .expect("the stand-in responds")
        .json()
        .await
        .expect("the stand-in responds with JSON")
}

/// Encodes the few characters the tests use that a form body must escape.
fn encode_form(form: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        text.replace('%', "%25")
            .replace('&', "%26")
            .replace('=', "%3D")
            .replace('+', "%2B")
            .replace(' ', "+")
    };
    form.iter()
        .map(|(name, value)| format!("{}={}", escape(name), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn bot_token() -> SlackApiToken {
    SlackApiToken::new(SlackStandin::BOT_TOKEN.into())
}

#[tokio::test]
async fn raw_client_gets_hello_and_acks_envelope() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;

    let (mut socket, hello) = connect_raw(&standin).await?;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], SlackStandin::APP_ID);
    assert_eq!(hello["debug_info"]["approximate_connection_time"], 18060);
    standin.wait_for_sockets(1, TIMEOUT).await?;

    let envelope = slack_fixture("app_mention_envelope.json");
    let sent_on = standin.send_envelope(envelope.clone()).await?;
    let received = next_json(&mut socket).await?;
    assert_eq!(received, envelope);

    let envelope_id = envelope["envelope_id"].as_str().unwrap_or_default();
    send_json(&mut socket, json!({ "envelope_id": envelope_id })).await?;
    let ack = standin.wait_for_ack(envelope_id, TIMEOUT).await?;
    assert_eq!(ack.envelope_id, envelope_id);
    assert_eq!(ack.socket, sent_on);
    assert_eq!(ack.payload, None);
    assert!(ack.latency > Duration::ZERO);
    assert!(ack.latency < TIMEOUT);
    assert_eq!(standin.acks(), vec![ack]);
    Ok(())
}

#[tokio::test]
async fn connection_ticket_works_once() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let url = open_connection_url(&standin).await?;
    assert!(url.starts_with("ws://127.0.0.1:"), "unexpected url {url}");
    assert!(url.contains("/link/?ticket="), "unexpected url {url}");
    assert!(url.ends_with("&app_id=A0APP00001"), "unexpected url {url}");

    let first = tokio_tungstenite::connect_async(&url).await;
    assert!(first.is_ok(), "first connect failed: {:?}", first.err());

    let reused = tokio_tungstenite::connect_async(&url).await;
    match reused {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a reused ticket connected: {other:?}"),
    }
    assert_eq!(standin.open_sockets(), 1);
    Ok(())
}

#[tokio::test]
async fn envelope_without_open_socket_fails() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let envelope = slack_fixture("app_mention_envelope.json");

    assert!(standin.send_envelope(envelope.clone()).await.is_err());
    assert!(standin.send_envelope_to(0, envelope).await.is_err());
    let disconnect = slack_fixture("disconnect_warning.json");
    assert!(standin.send_frame_to(0, disconnect).await.is_err());
    Ok(())
}

#[tokio::test]
async fn envelopes_rotate_over_open_sockets() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let (mut first, first_hello) = connect_raw(&standin).await?;
    let (mut second, second_hello) = connect_raw(&standin).await?;
    assert_eq!(first_hello["num_connections"], 1);
    assert_eq!(second_hello["num_connections"], 2);
    assert_eq!(standin.open_socket_ids(), vec![0, 1]);

    let envelope = slack_fixture("message_im_envelope.json");
    let first_target = standin.send_envelope(with_fresh_ids(&envelope)).await?;
    let second_target = standin.send_envelope(with_fresh_ids(&envelope)).await?;
    let third_target = standin.send_envelope(with_fresh_ids(&envelope)).await?;
    assert_eq!((first_target, second_target, third_target), (0, 1, 0));

    let on_first = next_json(&mut first).await?;
    let on_second = next_json(&mut second).await?;
    assert_ne!(on_first["envelope_id"], on_second["envelope_id"]);
    Ok(())
}

#[tokio::test]
async fn ack_payload_is_recorded() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let (mut socket, _) = connect_raw(&standin).await?;

    let command = slack_fixture("slash_command_envelope.json");
    standin.send_envelope_to(0, command.clone()).await?;
    next_json(&mut socket).await?;
    let envelope_id = command["envelope_id"].as_str().unwrap_or_default();
    let reply = json!({ "text": "Working on it" });
    let ack_frame = json!({ "envelope_id": envelope_id, "payload": reply });
    send_json(&mut socket, ack_frame.clone()).await?;

    let ack = standin.wait_for_ack(envelope_id, TIMEOUT).await?;
    assert_eq!(ack.payload, Some(reply));
    let frames = standin.client_frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].frame, ack_frame);
    Ok(())
}

#[tokio::test]
async fn ack_of_unknown_envelope_is_only_a_frame() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let (mut socket, _) = connect_raw(&standin).await?;

    send_json(&mut socket, json!({ "envelope_id": "never-sent" })).await?;
    let wait = standin
        .wait_for_ack("never-sent", Duration::from_millis(200))
        .await;

    assert!(wait.is_err());
    assert!(standin.acks().is_empty());
    assert_eq!(standin.client_frames().len(), 1);
    Ok(())
}

#[tokio::test]
async fn closed_socket_stops_counting_as_open() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let (mut socket, _) = connect_raw(&standin).await?;

    let disconnect = slack_fixture("disconnect_refresh_requested.json");
    standin.send_frame_to(0, disconnect.clone()).await?;
    standin.close_socket(0).await;

    assert_eq!(standin.open_sockets(), 0);
    assert_eq!(next_json(&mut socket).await?, disconnect);
    let after_close = tokio::time::timeout(TIMEOUT, socket.next()).await?;
    assert!(
        matches!(after_close, Some(Ok(Message::Close(_)))),
        "expected a close frame, got {after_close:?}"
    );
    let envelope = slack_fixture("app_mention_envelope.json");
    assert!(standin.send_envelope_to(0, envelope).await.is_err());
    Ok(())
}

#[tokio::test]
async fn slack_morphism_web_api_calls_are_recorded() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let client = slack_client(&standin.api_url());
    let token = bot_token();
    let session = client.open_session(&token);

    let identity = session.auth_test().await?;
    assert_eq!(identity.user_id.0, SlackStandin::BOT_USER_ID);
    assert_eq!(
        identity.bot_id.map(|id| id.0),
        Some(SlackStandin::BOT_ID.into())
    );
    assert_eq!(identity.team_id.0, SlackStandin::TEAM_ID);

    let parent_ts = "1717171000.000100";
    standin.add_message(
        "C0CHAN0001",
        json!({ "type": "message", "user": "U0BOB00002", "text": "deploy is red", "ts": parent_ts }),
    );
    let reply = SlackApiChatPostMessageRequest::new(
        "C0CHAN0001".into(),
        SlackMessageContent::new().with_text("Looking into it.".into()),
    )
    .with_thread_ts(parent_ts.into());
    let posted = session.chat_post_message(&reply).await?;
    assert_eq!(posted.channel.0, "C0CHAN0001");
    assert_eq!(
        posted.message.sender.bot_id.map(|id| id.0),
        Some(SlackStandin::BOT_ID.into())
    );

    let posts = standin.wait_for_posts(1, TIMEOUT).await?;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].method, "chat.postMessage");
    assert_eq!(posts[0].channel, "C0CHAN0001");
    assert_eq!(posts[0].ts, posted.ts.0);
    assert_eq!(posts[0].thread_ts.as_deref(), Some(parent_ts));
    assert_eq!(posts[0].text.as_deref(), Some("Looking into it."));

    let calls = standin.calls();
    let methods: Vec<&str> = calls.iter().map(|call| call.method.as_str()).collect();
    assert_eq!(methods, ["auth.test", "chat.postMessage"]);
    assert!(
        calls
            .iter()
            .all(|call| call.token.as_deref() == Some(SlackStandin::BOT_TOKEN))
    );
    assert_eq!(calls[1].params["thread_ts"], parent_ts);

    let thread = session
        .conversations_replies(&SlackApiConversationsRepliesRequest::new(
            "C0CHAN0001".into(),
            parent_ts.into(),
        ))
        .await?;
    let thread_ts: Vec<&str> = thread
        .messages
        .iter()
        .map(|message| message.origin.ts.0.as_str())
        .collect();
    assert_eq!(thread_ts, [parent_ts, posted.ts.0.as_str()]);

    let alice = session
        .users_info(&SlackApiUsersInfoRequest::new("U0ALICE001".into()))
        .await?;
    assert_eq!(alice.user.name.as_deref(), Some("alice"));
    Ok(())
}

#[tokio::test]
async fn slack_morphism_updates_and_reactions_work() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let client = slack_client(&standin.api_url());
    let token = bot_token();
    let session = client.open_session(&token);
    let content = |text: &str| SlackMessageContent::new().with_text(text.into());

    let posted = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            "C0CHAN0001".into(),
            content("Approve?"),
        ))
        .await?;
    session
        .chat_update(&SlackApiChatUpdateRequest::new(
            "C0CHAN0001".into(),
            content("Approved by <@U0BOB00002>"),
            posted.ts.clone(),
        ))
        .await?;
    session
        .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
            "C0CHAN0001".into(),
            "U0ALICE001".into(),
            content("Only you can see this."),
        ))
        .await?;
    let reaction = SlackApiReactionsAddRequest::new(
        "C0CHAN0001".into(),
        SlackReactionName::new("eyes".into()),
        "1717171717.000200".into(),
    );
    session.reactions_add(&reaction).await?;
    let second_reaction = session.reactions_add(&reaction).await;
    session
        .assistant_threads_set_status(&SlackApiAssistantThreadsSetStatusRequest::new(
            "D0DMALICE1".into(),
            "is thinking...".into(),
            "1729999327.187299".into(),
        ))
        .await?;

    let posts = standin.posts();
    let methods: Vec<&str> = posts.iter().map(|post| post.method.as_str()).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.update", "chat.postEphemeral"]
    );
    assert_eq!(posts[1].ts, posted.ts.0);
    assert_eq!(posts[1].text.as_deref(), Some("Approved by <@U0BOB00002>"));
    assert_eq!(posts[2].user.as_deref(), Some("U0ALICE001"));
    assert!(posts[2].ts > posts[0].ts);
    match second_reaction {
        Err(SlackClientError::ApiError(error)) => assert_eq!(error.code, "already_reacted"),
        other => panic!("a repeated reaction succeeded: {other:?}"),
    }
    let statuses = standin
        .wait_for_calls("assistant.threads.setStatus", 1, TIMEOUT)
        .await?;
    assert_eq!(statuses[0].params["status"], "is thinking...");
    Ok(())
}

#[tokio::test]
async fn update_of_unknown_message_fails() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let client = slack_client(&standin.api_url());
    let token = bot_token();
    let session = client.open_session(&token);

    let update = SlackApiChatUpdateRequest::new(
        "C0CHAN0001".into(),
        SlackMessageContent::new().with_text("edited".into()),
        "1717171800.000300".into(),
    );
    let result = session.chat_update(&update).await;

    match result {
        Err(SlackClientError::ApiError(error)) => assert_eq!(error.code, "message_not_found"),
        other => panic!("updating an unknown message succeeded: {other:?}"),
    }
    assert!(standin.posts().is_empty());
    Ok(())
}

/// Sends each push event the listener receives to the test.
async fn forward_push_event(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let states = states.read().await;
    if let Some(events) = states.get_user_state::<mpsc::UnboundedSender<SlackPushEventCallback>>() {
        let _ = events.send(event);
    }
    Ok(())
}

#[tokio::test]
async fn slack_morphism_listener_acks_app_mention() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let client = slack_client(&standin.api_url());
    let (events_sender, mut events) = mpsc::unbounded_channel::<SlackPushEventCallback>();
    let environment =
        Arc::new(SlackClientEventsListenerEnvironment::new(client).with_user_state(events_sender));
    let callbacks = SlackSocketModeListenerCallbacks::new().with_push_events(forward_push_event);
    let config = SlackClientSocketModeConfig::new()
        .with_max_connections_count(1)
        .with_initial_backoff_in_seconds(0);
    let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
    listener
        .listen_for(&SlackApiToken::new(SlackStandin::APP_TOKEN.into()))
        .await?;
    listener.start().await;
    standin.wait_for_sockets(1, TIMEOUT).await?;

    let envelope = slack_fixture("app_mention_envelope.json");
    let sent_on = standin.send_envelope(envelope.clone()).await?;
    let event = tokio::time::timeout(TIMEOUT, events.recv())
        .await?
        .context("the listener stopped")?;
    let envelope_id = envelope["envelope_id"].as_str().unwrap_or_default();
    let ack = standin.wait_for_ack(envelope_id, TIMEOUT).await?;

    assert_eq!(event.event_id.0, "Ev0MENTION01");
    match &event.event {
        SlackEventCallbackBody::AppMention(mention) => {
            assert_eq!(mention.channel.0, "C0CHAN0001");
            assert_eq!(mention.origin.ts.0, "1717171717.000200");
            assert_eq!(
                mention.origin.thread_ts.as_ref().map(|ts| ts.0.as_str()),
                Some("1717171000.000100")
            );
        }
        other => panic!("expected an app_mention, got {other:?}"),
    }
    assert_eq!(ack.socket, sent_on);
    assert_eq!(ack.payload, None);
    let connection_calls = standin.calls();
    assert_eq!(connection_calls[0].method, "apps.connections.open");
    assert_eq!(
        connection_calls[0].token.as_deref(),
        Some(SlackStandin::APP_TOKEN)
    );

    listener.shutdown().await;
    standin.wait_for_sockets_closed(TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn rate_limit_fault_returns_429_with_retry_after() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    standin.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    let url = format!("{}/chat.postMessage", standin.api_url());
    let message = json!({ "channel": "C0CHAN0001", "text": "hi" });

    let limited = http_client()
        .post(&url)
        .bearer_auth(SlackStandin::BOT_TOKEN)
        .json(&message)
        .send()
        .await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(limited.headers()["content-type"], "application/json");
    let body: Value = limited.json().await?;
    assert_eq!(body, json!({ "ok": false, "error": "ratelimited" }));

    let next: Value = http_client()
        .post(&url)
        .bearer_auth(SlackStandin::BOT_TOKEN)
        .json(&message)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(next["ok"], true, "the fault was used twice: {next}");
    assert_eq!(standin.calls().len(), 2);
    assert_eq!(standin.posts().len(), 1);
    Ok(())
}

#[tokio::test]
async fn slack_morphism_sees_rate_limit() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    standin.fail_next(
        "auth.test",
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    let client = slack_client(&standin.api_url());

    let token = bot_token();
    let result = client.open_session(&token).auth_test().await;

    match result {
        Err(SlackClientError::RateLimitError(error)) => {
            assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn other_faults_return_their_error() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    standin.fail_next("chat.postMessage", Fault::SlackError("msg_too_long".into()));
    standin.fail_next("chat.postMessage", Fault::Http(503));
    let form = [
        ("token", SlackStandin::BOT_TOKEN),
        ("channel", "C0CHAN0001"),
        ("text", "hi"),
    ];

    let slack_error = post_form(&standin, "chat.postMessage", &form).await;
    let server_error = http_client()
        .post(format!("{}/chat.postMessage", standin.api_url()))
        .bearer_auth(SlackStandin::BOT_TOKEN)
        .send()
        .await?;

    assert_eq!(slack_error, json!({ "ok": false, "error": "msg_too_long" }));
    assert_eq!(server_error.status(), 503);
    assert!(standin.posts().is_empty());
    Ok(())
}

#[tokio::test]
async fn wrong_token_is_invalid_auth() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;

    let wrong = post_form(&standin, "auth.test", &[("token", "xoxb-wrong")]).await;
    let missing = post_form(&standin, "auth.test", &[]).await;
    let app_token_for_bot_method =
        post_form(&standin, "auth.test", &[("token", SlackStandin::APP_TOKEN)]).await;
    let app_token_as_field = post_form(
        &standin,
        "apps.connections.open",
        &[("token", SlackStandin::APP_TOKEN)],
    )
    .await;

    assert_eq!(wrong, json!({ "ok": false, "error": "invalid_auth" }));
    assert_eq!(missing, json!({ "ok": false, "error": "not_authed" }));
    assert_eq!(app_token_for_bot_method["error"], "not_allowed_token_type");
    assert_eq!(app_token_as_field["error"], "not_authed");
    assert_eq!(standin.calls()[0].token.as_deref(), Some("xoxb-wrong"));
    Ok(())
}

#[tokio::test]
async fn unknown_method_is_rejected() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;

    let reply = post_form(
        &standin,
        "chat.teleport",
        &[("token", SlackStandin::BOT_TOKEN)],
    )
    .await;

    assert_eq!(reply, json!({ "ok": false, "error": "unknown_method" }));
    assert_eq!(standin.calls()[0].method, "chat.teleport");
    Ok(())
}

#[tokio::test]
async fn query_and_form_params_are_merged() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    let blocks = r#"[{"type":"section","text":{"type":"mrkdwn","text":"a & b"}}]"#;

    let reply: Value = http_client()
        .post(format!(
            "{}/chat.postMessage?channel=C0CHAN0001",
            standin.api_url()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&[
            ("token", SlackStandin::BOT_TOKEN),
            ("text", "a & b"),
            ("blocks", blocks),
        ]))
        .send()
        .await?
        .json()
        .await?;

    assert_eq!(reply["ok"], true, "{reply}");
    let post = &standin.posts()[0];
    assert_eq!(post.channel, "C0CHAN0001");
    assert_eq!(post.text.as_deref(), Some("a & b"));
    assert_eq!(
        post.blocks.as_ref(),
        Some(&serde_json::from_str::<Value>(blocks)?)
    );
    let call = &standin.calls()[0];
    assert_eq!(call.params["channel"], "C0CHAN0001");
    assert!(call.params.get("token").is_none());
    Ok(())
}

#[test]
fn fresh_ids_make_a_new_message() {
    let mention = slack_fixture("app_mention_envelope.json");

    let fresh = with_fresh_ids(&mention);
    let again = with_fresh_ids(&mention);

    assert_ne!(fresh["envelope_id"], mention["envelope_id"]);
    assert_ne!(fresh["payload"]["event_id"], mention["payload"]["event_id"]);
    assert_ne!(fresh["payload"]["event_id"], again["payload"]["event_id"]);
    assert_ne!(
        fresh["payload"]["event"]["ts"],
        mention["payload"]["event"]["ts"]
    );
    assert_ne!(
        fresh["payload"]["event"]["ts"],
        again["payload"]["event"]["ts"]
    );
    assert_eq!(
        fresh["payload"]["event"]["event_ts"],
        fresh["payload"]["event"]["ts"]
    );
    assert_eq!(fresh["payload"]["event"]["thread_ts"], "1717171000.000100");
    assert_eq!(
        fresh["payload"]["event"]["text"],
        mention["payload"]["event"]["text"]
    );
    let event_id = fresh["payload"]["event_id"].as_str().unwrap_or_default();
    assert!(event_id.starts_with("Ev"), "unexpected event id {event_id}");
}

#[test]
fn redelivery_keeps_the_event() {
    let mention = slack_fixture("app_mention_envelope.json");

    let retry = as_redelivery(&mention, 2);

    assert_ne!(retry["envelope_id"], mention["envelope_id"]);
    assert_eq!(retry["payload"], mention["payload"]);
    assert_eq!(retry["retry_attempt"], 2);
    assert_eq!(retry["retry_reason"], "timeout");
}

#[tokio::test]
async fn slack_morphism_lists_usergroup_members() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    standin.set_usergroup("S0ONCALL01", &["U0ALICE001", "U0BOB00002"]);
    let client = slack_client(&standin.api_url());
    let token = bot_token();
    let session = client.open_session(&token);

    let request =
        SlackApiUserGroupsUsersListRequest::new("S0ONCALL01".into()).with_include_disabled(true);
    let members = session.usergroups_users_list(&request).await?;
    let unknown = session
        .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(
            "S0MISSING1".into(),
        ))
        .await;

    let member_ids: Vec<&str> = members.users.iter().map(|user| user.0.as_str()).collect();
    assert_eq!(member_ids, ["U0ALICE001", "U0BOB00002"]);
    match unknown {
        Err(SlackClientError::ApiError(error)) => assert_eq!(error.code, "no_such_subteam"),
        other => panic!("listing an unknown user group succeeded: {other:?}"),
    }
    let calls = standin.calls();
    let methods: Vec<&str> = calls.iter().map(|call| call.method.as_str()).collect();
    assert_eq!(methods, ["usergroups.users.list", "usergroups.users.list"]);
    assert_eq!(calls[0].params["usergroup"], "S0ONCALL01");
    assert_eq!(calls[0].params["include_disabled"], "true");
    assert_eq!(calls[0].token.as_deref(), Some(SlackStandin::BOT_TOKEN));
    Ok(())
}

#[tokio::test]
async fn usergroup_members_come_from_form_and_json() -> anyhow::Result<()> {
    let standin = SlackStandin::start().await?;
    standin.set_usergroup("S0ONCALL01", &["U0ALICE001"]);
    standin.set_usergroup("S0ONCALL01", &["U0BOB00002"]);
    standin.set_usergroup("S0EMPTY001", &[]);

    let from_form = post_form(
        &standin,
        "usergroups.users.list",
        &[
            ("token", SlackStandin::BOT_TOKEN),
            ("usergroup", "S0ONCALL01"),
        ],
    )
    .await;
    let from_json: Value = http_client()
        .post(format!("{}/usergroups.users.list", standin.api_url()))
        .bearer_auth(SlackStandin::BOT_TOKEN)
        .json(&json!({ "usergroup": "S0EMPTY001", "include_disabled": false }))
        .send()
        .await?
        .json()
        .await?;
    let missing = post_form(
        &standin,
        "usergroups.users.list",
        &[("token", SlackStandin::BOT_TOKEN)],
    )
    .await;
    let app_token = post_form(
        &standin,
        "usergroups.users.list",
        &[
            ("token", SlackStandin::APP_TOKEN),
            ("usergroup", "S0ONCALL01"),
        ],
    )
    .await;

    assert_eq!(from_form, json!({ "ok": true, "users": ["U0BOB00002"] }));
    assert_eq!(from_json, json!({ "ok": true, "users": [] }));
    assert_eq!(
        missing,
        json!({ "ok": false, "error": "invalid_arguments" })
    );
    assert_eq!(app_token["error"], "not_allowed_token_type");
    assert_eq!(standin.calls().len(), 4);
    Ok(())
}
