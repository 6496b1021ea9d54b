//! A running `serve` loop against the stand-in Slack, for tests.

use std::collections::HashMap;
use std::time::Duration;

use agentdesk::app::App;
use agentdesk::clock::{SharedClock, system_clock};
use agentdesk::config::Settings;
use agentdesk::slack::serve;
use agentdesk_standins::slack::{PostedMessage, SlackStandin, with_fresh_ids};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::slack_fixture;

/// How long a test waits for an ack, a post or a socket.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running bot: the stand-in Slack it talks to and its app.
pub struct RunningBot {
    pub slack: SlackStandin,
    pub app: App,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningBot {
    /// Stops `serve` and waits for it to finish cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the serve task panicked")
                .expect("serve failed");
        }
    }

    /// Sends an envelope and waits for its ack.
    pub async fn send(&self, envelope: Value) -> agentdesk_standins::slack::Ack {
        let envelope_id = envelope["envelope_id"]
            .as_str()
            .expect("envelope id")
            .to_string();
        self.slack
            .send_envelope(envelope)
            .await
            .expect("envelope sent");
        self.slack
            .wait_for_ack(&envelope_id, WAIT)
            .await
            .expect("envelope acked")
    }

    /// Sends a plain DM question that is always answered, and waits for
    /// `expected_posts` posts in all; proves earlier events were dropped
    /// rather than still pending.
    pub async fn barrier(&self, expected_posts: usize) -> Vec<PostedMessage> {
        self.send(with_fresh_ids(&slack_fixture("message_im_envelope.json")))
            .await;
        let posts = self
            .slack
            .wait_for_posts(expected_posts, WAIT)
            .await
            .expect("posts arrive");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled = self.slack.posts();
        assert_eq!(
            settled.len(),
            expected_posts,
            "unexpected extra posts: {settled:#?}"
        );
        posts
    }
}

/// Settings for a bot on `database` talking to `slack`, plus overrides.
pub fn bot_settings(slack: &SlackStandin, database: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), database.into());
    vars.insert("SLACK_BOT_TOKEN".into(), SlackStandin::BOT_TOKEN.into());
    vars.insert("SLACK_APP_TOKEN".into(), SlackStandin::APP_TOKEN.into());
    vars.insert("SLACK_API_URL".into(), slack.api_url());
    vars.insert("AGENTDESK_SOCKET_CONNECTIONS".into(), "1".into());
    vars.insert("AGENTDESK_SOCKET_STAGGER_SECS".into(), "0".into());
    vars.insert("AGENTDESK_SOCKET_RECONNECT_SECS".into(), "1".into());
    vars.insert("AGENTDESK_SHUTDOWN_GRACE_SECS".into(), "5".into());
    // Any free port, so bots in parallel tests do not collide.
    vars.insert("AGENTDESK_HTTP_ADDR".into(), "127.0.0.1:0".into());
    for (name, value) in extra {
        vars.insert((*name).into(), (*value).into());
    }
    Settings::from_map(&vars).expect("valid test settings")
}

/// Starts `serve` with the system clock.
pub async fn start_bot(slack: SlackStandin, database: &str, extra: &[(&str, &str)]) -> RunningBot {
    start_bot_with_clock(slack, database, extra, system_clock()).await
}

/// Starts `serve` with the given clock.
pub async fn start_bot_with_clock(
    slack: SlackStandin,
    database: &str,
    extra: &[(&str, &str)],
    clock: SharedClock,
) -> RunningBot {
    let app = App::start(bot_settings(&slack, database, extra), clock)
        .await
        .expect("app starts");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve::run_until(app.clone(), async move {
        let _ = stopped.await;
    }));
    slack
        .wait_for_sockets(1, WAIT)
        .await
        .expect("the bot opens a socket");
    RunningBot {
        slack,
        app,
        stop: Some(stop),
        task: Some(task),
    }
}

/// The mrkdwn texts of every block of a posted message, joined.
pub fn block_text(post: &PostedMessage) -> String {
    let mut texts = Vec::new();
    collect_texts(post.blocks.as_ref().unwrap_or(&Value::Null), &mut texts);
    texts.join("\n")
}

fn collect_texts(value: &Value, texts: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(text)) = object.get("text") {
                texts.push(text.clone());
            }
            for child in object.values() {
                collect_texts(child, texts);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_texts(item, texts);
            }
        }
        _ => {}
    }
}
