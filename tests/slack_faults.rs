//! Slack faults the connection loop must survive, produced by the stand-in
//! Slack, and the operations endpoints that report on them.

use std::time::{Duration, Instant};

use agentdesk_standins::slack::{Fault, SlackStandin, with_fresh_ids};
use serde_json::{Value, json};

use crate::helpers::bot::{RunningBot, WAIT, start_bot};
use crate::helpers::{TestDatabase, on_both_databases, slack_fixture};

/// Fast socket timings, so each fault plays out in about a second.
const FAST: [(&str, &str); 4] = [
    ("AGENTDESK_SOCKET_RECONNECT_SECS", "0.2"),
    ("AGENTDESK_SOCKET_RECONNECT_MAX_SECS", "2"),
    ("AGENTDESK_SOCKET_PING_SECS", "0.2"),
    ("AGENTDESK_SOCKET_SILENCE_SECS", "0.8"),
];

async fn bot_with(database: &TestDatabase, extra: &[(&str, &str)]) -> RunningBot {
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let mut settings: Vec<(&str, &str)> = FAST.to_vec();
    settings.extend_from_slice(extra);
    start_bot(slack, database.url(), &settings).await
}

fn question(text: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    envelope["payload"]["event"]["text"] = json!(format!("<@U0BOT00001> {text}"));
    envelope
}

/// Sends a question to one socket and waits for its answer.
async fn ask_on(bot: &RunningBot, socket: usize, text: &str) {
    let before = bot.slack.posts().len();
    let envelope = question(text);
    let envelope_id = envelope["envelope_id"].as_str().unwrap().to_string();
    bot.slack
        .send_envelope_to(socket, envelope)
        .await
        .expect("envelope sent");
    let ack = bot
        .slack
        .wait_for_ack(&envelope_id, WAIT)
        .await
        .expect("envelope acked");
    assert_eq!(ack.socket, socket, "acked on the socket it came from");
    bot.slack
        .wait_for_posts(before + 1, WAIT)
        .await
        .expect("the question is answered");
}

fn connection_opens(slack: &SlackStandin) -> usize {
    slack
        .calls()
        .iter()
        .filter(|call| call.method == "apps.connections.open")
        .count()
}

/// Waits until a new socket (one not in `known`) is open, and returns it.
async fn new_socket(slack: &SlackStandin, known: &[usize]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(socket) = slack
            .open_socket_ids()
            .into_iter()
            .find(|socket| !known.contains(socket))
        {
            return socket;
        }
        assert!(Instant::now() < deadline, "no new socket was opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(bot: &RunningBot, path: &str) -> (u16, String) {
    let address = *bot
        .app
        .status
        .ops_addr
        .get()
        .expect("the operations endpoints are bound");
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("the operations endpoint answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

async fn operations_endpoints_report_health_and_metrics(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;

    assert_eq!(get(&bot, "/healthz").await, (200, "ok\n".to_string()));
    let (status, body) = get(&bot, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    ask_on(&bot, bot.slack.open_socket_ids()[0], "who owns payments?").await;
    bot.send(with_fresh_ids(&slack_fixture(
        "message_from_own_bot_envelope.json",
    )))
    .await;

    let (status, metrics) = get(&bot, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "agentdesk_slack_events_received_total{type=\"events_api\"} 2",
        "agentdesk_slack_events_acked_total{type=\"events_api\"} 2",
        "agentdesk_slack_events_dropped_total{reason=\"message from a bot\"} 1",
        "agentdesk_invocations_total{agent=\"default\",status=\"completed\"} 1",
        "agentdesk_llm_request_seconds_count{backend=\"offline\",outcome=\"ok\"}",
        "agentdesk_tool_calls_total{tool=\"search_entities\",outcome=\"ok\"}",
        "agentdesk_llm_tokens_total{backend=\"offline\",direction=\"input\"}",
        "agentdesk_slack_open_sockets 1",
        "# TYPE agentdesk_llm_request_seconds histogram",
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }

    let (status, _) = get(&bot, "/nowhere").await;
    assert_eq!(status, 404);
    bot.stop().await;
}

/// A client that sends part of a request and stalls keeps its connection
/// only until the header read timeout, and other requests are answered
/// meanwhile.
async fn stalled_operations_client_is_disconnected(database: TestDatabase) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let bot = bot_with(&database, &[]).await;
    let address = *bot.app.status.ops_addr.get().expect("bound");
    let mut stalled = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial request sent");

    assert_eq!(get(&bot, "/healthz").await, (200, "ok\n".to_string()));
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stalled.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the stalled connection is still open");
    bot.stop().await;
}

async fn taken_operations_port_stops_startup(database: TestDatabase) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let settings = crate::helpers::bot::bot_settings(
        &slack,
        database.url(),
        &[("AGENTDESK_HTTP_ADDR", address.as_str())],
    );
    let app = agentdesk::app::App::start(settings, agentdesk::clock::system_clock())
        .await
        .expect("app starts");
    let error = agentdesk::slack::serve::run_until(app, std::future::pending())
        .await
        .expect_err("a taken port is an error");
    let message = format!("{error:#}");
    assert!(message.contains("AGENTDESK_HTTP_ADDR"), "{message}");
    assert!(message.contains(&address), "{message}");
    assert_eq!(slack.open_sockets(), 0, "no socket is opened");
}

async fn rate_limited_calls_are_retried_after_retry_after(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    bot.slack.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    bot.slack.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    ask_on(&bot, bot.slack.open_socket_ids()[0], "who owns payments?").await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "each Retry-After was waited out: {:?}",
        started.elapsed()
    );
    assert_eq!(
        bot.app
            .metrics
            .counter("agentdesk_slack_api_retries_total", &["chat.postMessage"]),
        2
    );
    bot.stop().await;
}

async fn disconnect_warning_replaces_socket_and_loses_nothing(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let old = bot.slack.open_socket_ids()[0];
    bot.slack
        .send_frame_to(old, slack_fixture("disconnect_warning.json"))
        .await
        .expect("warning sent");
    let replacement = new_socket(&bot.slack, &[old]).await;

    // The old socket is still read until Slack closes it.
    ask_on(&bot, old, "who owns payments?").await;
    bot.slack.close_socket(old).await;
    ask_on(&bot, replacement, "who owns checkout?").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bot.slack.open_socket_ids(),
        vec![replacement],
        "one connection, not two"
    );
    bot.stop().await;
}

async fn refresh_requested_reconnects_with_nothing_lost(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let old = bot.slack.open_socket_ids()[0];
    bot.slack
        .send_frame_to(old, slack_fixture("disconnect_refresh_requested.json"))
        .await
        .expect("refresh sent");
    let replacement = new_socket(&bot.slack, &[old]).await;
    bot.slack.close_socket(old).await;
    ask_on(&bot, replacement, "who owns payments?").await;
    bot.stop().await;
}

async fn link_disabled_stops_reconnecting(database: TestDatabase) {
    let bot = bot_with(&database, &[("AGENTDESK_SOCKET_CONNECTIONS", "2")]).await;
    bot.slack
        .wait_for_sockets(2, WAIT)
        .await
        .expect("two sockets");
    let opens = connection_opens(&bot.slack);
    for socket in bot.slack.open_socket_ids() {
        bot.slack
            .send_frame_to(socket, slack_fixture("disconnect_link_disabled.json"))
            .await
            .expect("link_disabled sent");
        bot.slack.close_socket(socket).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(connection_opens(&bot.slack), opens, "no reconnection");
    assert_eq!(bot.slack.open_sockets(), 0);

    let (status, body) = get(&bot, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("link_disabled"), "{body}");
    bot.stop().await;
}

async fn too_many_websockets_backs_off(database: TestDatabase) {
    let bot = bot_with(&database, &[("AGENTDESK_SOCKET_TOO_MANY_SECS", "1.5")]).await;
    let socket = bot.slack.open_socket_ids()[0];
    let opens = connection_opens(&bot.slack);
    bot.slack
        .send_frame_to(socket, slack_fixture("disconnect_too_many_websockets.json"))
        .await
        .expect("too_many_websockets sent");
    bot.slack.close_socket(socket).await;
    let closed = Instant::now();

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        connection_opens(&bot.slack),
        opens,
        "no reconnection before the back-off"
    );
    let replacement = new_socket(&bot.slack, &[socket]).await;
    assert!(closed.elapsed() >= Duration::from_millis(1_500));
    ask_on(&bot, replacement, "who owns payments?").await;
    bot.stop().await;
}

async fn silent_socket_is_replaced(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let silent = bot.slack.open_socket_ids()[0];
    assert!(bot.slack.silence_socket(silent));
    let started = Instant::now();
    let replacement = new_socket(&bot.slack, &[silent]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "replaced only after the silence timeout: {:?}",
        started.elapsed()
    );
    ask_on(&bot, replacement, "who owns payments?").await;
    bot.stop().await;
}

/// A socket that Slack accepts but never sends `hello` on is replaced
/// after the silence timeout, even though it replies to pings.
async fn socket_without_hello_is_replaced(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let first = bot.slack.open_socket_ids()[0];
    bot.slack.withhold_next_hello();
    bot.slack.close_socket(first).await;
    let mute = new_socket(&bot.slack, &[first]).await;

    let replacement = new_socket(&bot.slack, &[first, mute]).await;

    assert!(!bot.slack.open_socket_ids().contains(&mute));
    ask_on(&bot, replacement, "who owns payments?").await;
    let (status, body) = get(&bot, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    bot.stop().await;
}

/// A `warning` disconnect before `hello` counts as a failed attempt: the
/// next connection waits for the back-off instead of opening at once.
async fn disconnect_before_hello_backs_off(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let first = bot.slack.open_socket_ids()[0];
    bot.slack.withhold_next_hello();
    bot.slack.close_socket(first).await;
    let early = new_socket(&bot.slack, &[first]).await;
    let opens = connection_opens(&bot.slack);

    bot.slack
        .send_frame_to(early, json!({"type": "disconnect", "reason": "warning"}))
        .await
        .expect("sent");
    let sent = Instant::now();
    while connection_opens(&bot.slack) == opens {
        assert!(sent.elapsed() < WAIT, "no new connection was opened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first back-off is 0.2 s times a factor from 0.5 to 1.
    assert!(
        sent.elapsed() >= Duration::from_millis(80),
        "reconnected after {:?}",
        sent.elapsed()
    );
    let replacement = new_socket(&bot.slack, &[first, early]).await;
    ask_on(&bot, replacement, "who owns payments?").await;
    bot.stop().await;
}

async fn failed_connection_opens_back_off_with_jitter(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let socket = bot.slack.open_socket_ids()[0];
    for _ in 0..4 {
        bot.slack
            .fail_next("apps.connections.open", Fault::Http(500));
    }
    let opens = connection_opens(&bot.slack);
    bot.slack.close_socket(socket).await;

    // Note when each attempt arrives.
    let mut arrivals = Vec::new();
    let started = Instant::now();
    while arrivals.len() < 5 {
        assert!(started.elapsed() < WAIT, "only {} attempts", arrivals.len());
        let count = connection_opens(&bot.slack) - opens;
        while arrivals.len() < count {
            arrivals.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    new_socket(&bot.slack, &[socket]).await;
    let gaps: Vec<Duration> = arrivals.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // Waits of 0.2, 0.4, 0.8 and 1.6 s, each times a factor from 0.5 to 1.
    for (gap, base_ms) in gaps.iter().zip([200u64, 400, 800, 1_600]) {
        assert!(
            *gap >= Duration::from_millis(base_ms / 2 - 20),
            "gaps {gaps:?}"
        );
        assert!(
            *gap <= Duration::from_millis(base_ms + 400),
            "gaps {gaps:?}"
        );
    }
    assert!(
        bot.app
            .metrics
            .counter("agentdesk_slack_socket_connects_total", &["open_failed"])
            >= 4
    );
    bot.stop().await;
}

async fn socket_count_is_configurable(database: TestDatabase) {
    let bot = bot_with(
        &database,
        &[
            ("AGENTDESK_SOCKET_CONNECTIONS", "3"),
            ("AGENTDESK_SOCKET_STAGGER_SECS", "0.1"),
        ],
    )
    .await;
    bot.slack
        .wait_for_sockets(3, WAIT)
        .await
        .expect("three sockets");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bot.slack.open_sockets(), 3);
    assert_eq!(bot.app.metrics.open_sockets(), 3);
    let sockets = bot.slack.open_socket_ids();
    for socket in sockets {
        ask_on(&bot, socket, "who owns payments?").await;
    }
    bot.stop().await;
}

async fn malformed_frames_are_acked_and_dropped(database: TestDatabase) {
    let bot = bot_with(&database, &[]).await;
    let socket = bot.slack.open_socket_ids()[0];
    bot.slack
        .send_frame_to(socket, json!("not an object"))
        .await
        .expect("sent");
    for envelope in [
        json!({"envelope_id": "bad-1", "type": "events_api", "payload": {"type": "event_callback"}}),
        json!({"envelope_id": "bad-2", "type": "interactive", "payload": {"type": 7}}),
        json!({"envelope_id": "bad-3", "type": "mystery", "payload": {}}),
        json!({"envelope_id": "bad-4", "type": "events_api", "payload": null}),
    ] {
        let id = envelope["envelope_id"].as_str().unwrap().to_string();
        bot.slack
            .send_envelope_to(socket, envelope)
            .await
            .expect("sent");
        bot.slack.wait_for_ack(&id, WAIT).await.expect("acked");
    }
    // The connection still works.
    ask_on(&bot, socket, "who owns payments?").await;
    assert_eq!(bot.slack.open_socket_ids(), vec![socket]);
    bot.stop().await;
}

on_both_databases!(
    operations_endpoints_report_health_and_metrics,
    stalled_operations_client_is_disconnected,
    taken_operations_port_stops_startup,
    rate_limited_calls_are_retried_after_retry_after,
    disconnect_warning_replaces_socket_and_loses_nothing,
    refresh_requested_reconnects_with_nothing_lost,
    link_disabled_stops_reconnecting,
    too_many_websockets_backs_off,
    silent_socket_is_replaced,
    socket_without_hello_is_replaced,
    disconnect_before_hello_backs_off,
    failed_connection_opens_back_off_with_jitter,
    socket_count_is_configurable,
    malformed_frames_are_acked_and_dropped,
);

mod frames {
    use agentdesk::slack::socket::{ParsedFrame, parse_frame};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|number| json!(number)),
            any::<f64>().prop_map(|number| json!(number)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map(
                    prop_oneof![
                        Just("type".to_string()),
                        Just("envelope_id".to_string()),
                        Just("payload".to_string()),
                        Just("reason".to_string()),
                        ".*",
                    ],
                    inner,
                    0..8
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            parse_frame(&text);
        }

        #[test]
        fn arbitrary_json_never_panics(frame in any_json()) {
            parse_frame(&frame.to_string());
        }

        #[test]
        fn envelope_id_is_always_kept(
            envelope_id in "[^\u{0}]{1,40}",
            kind in prop_oneof![
                Just("events_api".to_string()),
                Just("interactive".to_string()),
                ".*",
            ],
            payload in any_json(),
        ) {
            prop_assume!(kind != "hello" && kind != "disconnect");
            let frame = json!({"envelope_id": envelope_id, "type": kind, "payload": payload});
            match parse_frame(&frame.to_string()) {
                ParsedFrame::Envelope { envelope_id: read, .. } => prop_assert_eq!(read, envelope_id),
                other => prop_assert!(false, "read as {:?}", other),
            }
        }
    }
}
