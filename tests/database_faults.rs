//! The database going away: at start, and while the bot runs (through a
//! TCP proxy in front of PostgreSQL that the test cuts and restores).

use std::time::{Duration, Instant};

use agentdesk_standins::slack::{PostedMessage, SlackStandin, with_fresh_ids};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::bot::{WAIT, start_bot};
use crate::helpers::proxy::TcpProxy;
use crate::helpers::{TestDatabase, describe_output, run_agentdesk, slack_fixture};

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn unreachable_database_stops_start_with_clear_error() {
    let directory = TempDir::new().expect("temp dir");
    let url = format!(
        "postgres://agentdesk:s3cret-pass@127.0.0.1:{}/agentdesk",
        closed_port()
    );
    for args in [vec!["serve"], vec!["ask", "who owns payments?"]] {
        let started = Instant::now();
        let output = run_agentdesk(
            directory.path(),
            &[
                ("DATABASE_URL", url.as_str()),
                ("SLACK_BOT_TOKEN", "xoxb-test"),
                ("SLACK_APP_TOKEN", "xapp-test"),
                ("AGENTDESK_HTTP_ADDR", "127.0.0.1:0"),
            ],
            &args,
        );
        assert!(!output.status.success(), "{}", describe_output(&output));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gave up in {:?}",
            started.elapsed()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("could not connect to the database"),
            "{stderr}"
        );
        assert!(stderr.contains("DATABASE_URL"), "{stderr}");
        assert!(
            !stderr.contains("s3cret-pass"),
            "the password is hidden: {stderr}"
        );
    }
}

/// A mention in a thread of the ops channel.
fn mention_in_thread(text: &str, thread_ts: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    let event = &mut envelope["payload"]["event"];
    event["text"] = json!(format!("<@U0BOT00001> {text}"));
    event["thread_ts"] = json!(thread_ts);
    envelope
}

fn texts(posts: &[PostedMessage]) -> Vec<String> {
    posts
        .iter()
        .map(|post| post.text.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_gets_one_notice_per_conversation_and_recovers() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut url = reqwest::Url::parse(database.url()).expect("a URL");
    url.set_port(Some(proxy.address().port())).expect("a port");
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let bot = start_bot(
        slack,
        url.as_str(),
        &[
            ("AGENTDESK_DATABASE_TIMEOUT_SECS", "1"),
            ("AGENTDESK_SOCKET_PING_SECS", "0.5"),
        ],
    )
    .await;

    bot.send(mention_in_thread("who owns payments?", "1700000000.000001"))
        .await;
    bot.slack.wait_for_posts(1, WAIT).await.expect("answered");

    proxy.cut();
    // Three questions in one conversation and one in another, all while
    // the database is gone: each is acked at once.
    for (text, thread) in [
        ("who owns checkout?", "1700000000.000002"),
        ("what does checkout depend on?", "1700000000.000002"),
        ("and payments?", "1700000000.000002"),
        ("who owns search?", "1700000000.000003"),
    ] {
        let ack = bot.send(mention_in_thread(text, thread)).await;
        assert!(
            ack.latency < Duration::from_millis(2_500),
            "{:?}",
            ack.latency
        );
    }
    bot.slack.wait_for_posts(3, WAIT).await.expect("notices");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = bot.slack.posts();
    assert_eq!(
        posts.len(),
        3,
        "one notice per conversation: {:#?}",
        texts(&posts)
    );
    let mut threads = Vec::new();
    for post in &posts[1..] {
        let text = post.text.clone().unwrap_or_default();
        assert!(text.contains("can't reach my database"), "{text}");
        threads.push(post.thread_ts.clone().unwrap_or_default());
    }
    threads.sort();
    assert_eq!(threads, ["1700000000.000002", "1700000000.000003"]);

    proxy.restore();
    let deadline = Instant::now() + WAIT;
    for attempt in 4.. {
        let before = bot.slack.posts().len();
        let thread = format!("1700000000.{attempt:06}");
        bot.send(mention_in_thread("who owns payments?", &thread))
            .await;
        let posts = bot
            .slack
            .wait_for_posts(before + 1, WAIT)
            .await
            .expect("a reply");
        let text = posts[before].text.clone().unwrap_or_default();
        if !text.contains("can't reach my database") {
            assert!(text.contains("Payments"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the bot never recovered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bot.stop().await;
}
