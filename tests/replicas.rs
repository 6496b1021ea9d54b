//! Several `serve` replicas sharing one database and one Slack app: Slack
//! spreads events over their sockets and may redeliver an event to another
//! replica.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentdesk::app::App;
use agentdesk::clock::system_clock;
use agentdesk::store::leases;
use agentdesk_standins::slack::{SlackStandin, as_redelivery, with_fresh_ids};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::bot::{WAIT, bot_settings};
use crate::helpers::{TestDatabase, on_both_databases, slack_fixture};

/// Replicas of `serve` on one database, each with one socket to the
/// stand-in.
struct Replicas {
    slack: SlackStandin,
    apps: Vec<App>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    /// The socket of each replica, in the order of `apps`.
    sockets: Vec<usize>,
    _database: TestDatabase,
    _directory: TempDir,
}

impl Replicas {
    async fn start(database: TestDatabase, count: usize, agents_file: Option<&str>) -> Self {
        let slack = SlackStandin::start().await.expect("stand-in Slack starts");
        let directory = TempDir::new().expect("temp dir");
        let agents_path: PathBuf = directory.path().join("agentdesk.yaml");
        let agents_path = agents_path.display().to_string();
        let mut extra = vec![];
        if let Some(text) = agents_file {
            std::fs::write(&agents_path, text).expect("agents file written");
            extra.push(("AGENTDESK_CONFIG", agents_path.as_str()));
        }
        let mut replicas = Self {
            slack,
            apps: Vec::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
            sockets: Vec::new(),
            _database: database,
            _directory: directory,
        };
        for index in 0..count {
            let settings = bot_settings(&replicas.slack, replicas._database.url(), &extra);
            let app = App::start(settings, system_clock())
                .await
                .expect("a replica starts");
            let (stop, stopped) = oneshot::channel::<()>();
            replicas
                .tasks
                .push(tokio::spawn(agentdesk::slack::serve::run_until(
                    app.clone(),
                    async move {
                        let _ = stopped.await;
                    },
                )));
            replicas.stops.push(stop);
            replicas.apps.push(app);
            replicas
                .slack
                .wait_for_sockets(index + 1, WAIT)
                .await
                .expect("the replica's socket opens");
            let socket = replicas
                .slack
                .open_socket_ids()
                .into_iter()
                .find(|socket| !replicas.sockets.contains(socket))
                .expect("a new socket");
            replicas.sockets.push(socket);
        }
        replicas
    }

    /// Stops every replica and hands back their database.
    async fn stop(self) -> TestDatabase {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            task.await
                .expect("no panic")
                .expect("the replica stops cleanly");
        }
        self._database
    }
}

fn mention(text: &str, user: &str) -> Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    envelope["payload"]["event"]["text"] = json!(format!("<@U0BOT00001> {text}"));
    envelope["payload"]["event"]["user"] = json!(user);
    envelope
}

/// Every event goes to one replica and Slack's retry of it to the other, at
/// the same moment: each question is answered exactly once.
async fn redelivered_events_are_answered_once(database: TestDatabase) {
    let replicas = Replicas::start(database, 2, None).await;
    const QUESTIONS: usize = 10;
    let mut sends = Vec::new();
    for index in 0..QUESTIONS {
        let original = mention(&format!("who owns payments? ({index})"), "U0ALICE001");
        let retry = as_redelivery(&original, 1);
        let (first, second) = if index % 2 == 0 {
            (replicas.sockets[0], replicas.sockets[1])
        } else {
            (replicas.sockets[1], replicas.sockets[0])
        };
        sends.push(replicas.slack.send_envelope_to(first, original));
        sends.push(replicas.slack.send_envelope_to(second, retry));
    }
    for sent in futures_util::future::join_all(sends).await {
        sent.expect("envelope sent");
    }
    replicas
        .slack
        .wait_for_posts(QUESTIONS, WAIT)
        .await
        .expect("every question is answered");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts = replicas.slack.posts();
    assert_eq!(posts.len(), QUESTIONS, "no question answered twice");
    let acks = replicas.slack.acks();
    assert_eq!(acks.len(), QUESTIONS * 2, "every delivery is acked");
    let deduplicated: u64 = replicas
        .apps
        .iter()
        .map(|app| {
            app.metrics
                .counter("agentdesk_slack_events_deduplicated_total", &[])
        })
        .sum();
    assert_eq!(deduplicated, QUESTIONS as u64);
    replicas.stop().await;
}

/// Rate limits are counted in the database, so the replicas share them.
async fn rate_limits_are_shared_by_replicas(database: TestDatabase) {
    let agents = "limits:\n  requests_per_minute_per_user: 2\nagents:\n  - id: explorer\n    \
                  title: Explorer\n    description: Services.\n";
    let replicas = Replicas::start(database, 2, Some(agents)).await;
    for index in 0..4 {
        let socket = replicas.sockets[index % 2];
        replicas
            .slack
            .send_envelope_to(socket, mention("who owns payments?", "U0ALICE001"))
            .await
            .expect("sent");
        replicas
            .slack
            .wait_for_posts(index + 1, WAIT)
            .await
            .expect("a reply");
    }
    let texts: Vec<String> = replicas
        .slack
        .posts()
        .iter()
        .map(|post| post.text.clone().unwrap_or_default())
        .collect();
    let refused = texts
        .iter()
        .filter(|text| text.contains("requests per minute"))
        .count();
    assert_eq!(refused, 2, "{texts:#?}");
    replicas.stop().await;
}

/// Replicas that stop release the retention lease before they close the
/// database, so a replica that stays takes over retention at once instead
/// of after the lease expires.
async fn stopped_replicas_release_retention_lease(database: TestDatabase) {
    let replicas = Replicas::start(database, 2, None).await;
    let store = replicas._database.store().await;
    let deadline = Instant::now() + WAIT;
    while leases::get(&store, "retention")
        .await
        .expect("the lease is readable")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "no replica took the retention lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let database = replicas.stop().await;
    let lease = leases::get(&store, "retention")
        .await
        .expect("the lease is readable");
    assert!(lease.is_none(), "the lease outlived its replica: {lease:?}");
    store.close().await;
    drop(database);
}

on_both_databases!(
    redelivered_events_are_answered_once,
    rate_limits_are_shared_by_replicas,
    stopped_replicas_release_retention_lease,
);
