//! SIGTERM to a real `agentdesk serve` process while it answers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentdesk_standins::Reply;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{Fault, SlackStandin, with_fresh_ids};
use serde_json::json;
use tempfile::TempDir;

use crate::helpers::bot::{WAIT, start_bot};
use crate::helpers::{
    TestDatabase, agentdesk_binary, on_both_databases, on_both_databases_with_demo, slack_fixture,
};

/// Starts `serve` against the stand-ins, logging to a file in `directory`.
fn spawn_serve(
    directory: &TempDir,
    database: &TestDatabase,
    slack: &SlackStandin,
    model: &OpenAiStandin,
    grace_secs: &str,
) -> Child {
    let log = std::fs::File::create(directory.path().join("serve.log")).expect("log file");
    let mut command = Command::new(agentdesk_binary());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AGENTDESK_")
            || name.starts_with("SLACK_")
            || name.starts_with("OPENAI_")
            || name == "RUST_LOG"
        {
            command.env_remove(name);
        }
    }
    command
        .current_dir(directory.path())
        .arg("serve")
        .envs([
            ("DATABASE_URL", database.url().to_string()),
            ("SLACK_BOT_TOKEN", SlackStandin::BOT_TOKEN.to_string()),
            ("SLACK_APP_TOKEN", SlackStandin::APP_TOKEN.to_string()),
            ("SLACK_API_URL", slack.api_url()),
            ("AGENTDESK_BACKEND", "openai".to_string()),
            ("OPENAI_BASE_URL", model.base_url()),
            ("AGENTDESK_SOCKET_CONNECTIONS", "1".to_string()),
            ("AGENTDESK_SHUTDOWN_GRACE_SECS", grace_secs.to_string()),
            ("AGENTDESK_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ])
        .stdout(Stdio::null())
        .stderr(log.try_clone().expect("log handle"));
    command.spawn().expect("serve starts")
}

fn terminate(child: &Child) {
    // SAFETY: signalling a child this test started and still owns.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// Waits for the child to exit, killing it after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be polled") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_of(directory: &TempDir) -> String {
    std::fs::read_to_string(directory.path().join("serve.log")).unwrap_or_default()
}

fn question() -> serde_json::Value {
    let mut envelope = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    envelope["payload"]["event"]["text"] = json!("<@U0BOT00001> who owns payments?");
    envelope
}

/// SIGTERM closes the socket first, lets the running answer finish within
/// the grace period, and exits cleanly.
async fn sigterm_lets_running_answer_finish(database: TestDatabase) {
    let directory = TempDir::new().expect("temp dir");
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    model.push(Reply::Delayed(
        Duration::from_secs(2),
        Box::new(Reply::Text(
            "Payments is owned by the billing team.".to_string(),
        )),
    ));
    let mut child = spawn_serve(&directory, &database, &slack, &model, "10");
    slack
        .wait_for_sockets(1, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}: {}", log_of(&directory)));

    slack.send_envelope(question()).await.expect("sent");
    model
        .wait_for_requests(1, WAIT)
        .await
        .expect("the model is asked");
    terminate(&child);
    let signalled = Instant::now();
    slack
        .wait_for_sockets_closed(Duration::from_secs(2))
        .await
        .expect("the socket closes first");
    assert!(
        slack.posts().is_empty(),
        "the socket closed before the answer was posted"
    );

    let posts = slack
        .wait_for_posts(1, WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}: {}", log_of(&directory)));
    assert!(
        posts[0]
            .text
            .as_deref()
            .unwrap_or_default()
            .contains("billing team"),
        "{posts:#?}"
    );
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}: {}", log_of(&directory));
    assert!(signalled.elapsed() >= Duration::from_millis(1_000));
    assert!(log_of(&directory).contains("SIGTERM received"));
}

/// An answer still running when the grace period ends is marked
/// interrupted, and its asker is told.
async fn sigterm_interrupts_answer_past_grace_period(database: TestDatabase) {
    let directory = TempDir::new().expect("temp dir");
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    model.push(Reply::Delayed(
        Duration::from_secs(20),
        Box::new(Reply::Text("too late".to_string())),
    ));
    let mut child = spawn_serve(&directory, &database, &slack, &model, "0.5");
    slack.wait_for_sockets(1, WAIT).await.expect("a socket");

    slack.send_envelope(question()).await.expect("sent");
    model
        .wait_for_requests(1, WAIT)
        .await
        .expect("the model is asked");
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", log_of(&directory));

    let posts = slack.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let text = posts[0].text.clone().unwrap_or_default();
    assert!(text.contains("restarted"), "{text}");

    let store = database.store().await;
    let invocation = agentdesk::store::invocations::recent(&store, 1)
        .await
        .expect("invocations")
        .remove(0);
    assert_eq!(
        invocation.status,
        agentdesk::store::invocations::Status::Interrupted
    );
}

/// A second SIGTERM ends the process at once, without waiting out the
/// grace period for the running answer, and the next start marks that
/// answer interrupted.
async fn second_sigterm_exits_at_once(database: TestDatabase) {
    let directory = TempDir::new().expect("temp dir");
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    model.push(Reply::Delayed(
        Duration::from_secs(30),
        Box::new(Reply::Text("too late".to_string())),
    ));
    let mut child = spawn_serve(&directory, &database, &slack, &model, "60");
    slack.wait_for_sockets(1, WAIT).await.expect("a socket");
    slack.send_envelope(question()).await.expect("sent");
    model
        .wait_for_requests(1, WAIT)
        .await
        .expect("the model is asked");

    terminate(&child);
    slack
        .wait_for_sockets_closed(Duration::from_secs(5))
        .await
        .expect("the first SIGTERM closes the socket");
    let signalled = Instant::now();
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));

    assert_eq!(
        status.code(),
        Some(agentdesk::slack::serve::EXIT_ON_SECOND_SIGNAL),
        "{status}: {}",
        log_of(&directory)
    );
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(log_of(&directory).contains("second stop signal"));
    let store = database.store().await;
    let invocation = agentdesk::store::invocations::recent(&store, 1)
        .await
        .expect("invocations")
        .remove(0);
    assert_eq!(
        invocation.status,
        agentdesk::store::invocations::Status::InProgress,
        "left for the next start to mark interrupted"
    );
}

on_both_databases_with_demo!(
    sigterm_lets_running_answer_finish,
    sigterm_interrupts_answer_past_grace_period,
    second_sigterm_exits_at_once,
);

/// Shutdown that starts while a slash command's reply is being computed
/// still sends that reply in the ack, because Slack shows the user an error
/// for a slash command that is never acked.
async fn shutdown_sends_pending_slash_reply(database: TestDatabase) {
    let directory = TempDir::new().expect("temp dir");
    let agents_path = directory.path().join("agentdesk.yaml");
    std::fs::write(
        &agents_path,
        "agents:\n  - id: oncall\n    title: On-call\n    description: Pages.\n    \
         access:\n      user_groups: [S0ONCALL]\n",
    )
    .expect("agents file written");
    let agents_path = agents_path.display().to_string();
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    // The access check waits out a one-second Retry-After, so the reply
    // is still being computed when shutdown starts.
    slack.fail_next(
        "usergroups.users.list",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let mut bot = start_bot(slack, database.url(), &[("AGENTDESK_CONFIG", &agents_path)]).await;
    let slack = &bot.slack;

    let mut command = slack_fixture("slash_command_envelope.json");
    command["payload"]["text"] = json!("agents");
    let envelope_id = command["envelope_id"].as_str().expect("an id").to_string();
    slack.send_envelope(command).await.expect("sent");
    slack
        .wait_for_calls("usergroups.users.list", 1, WAIT)
        .await
        .expect("the access check starts");
    let _ = bot.stop.take().expect("running").send(());

    let ack = slack
        .wait_for_ack(&envelope_id, WAIT)
        .await
        .expect("the slash command is acked before the socket closes");
    let text = ack
        .payload
        .as_ref()
        .and_then(|payload| payload["text"].as_str())
        .unwrap_or_default();
    assert!(text.contains("any agent"), "{text}");
    bot.task
        .take()
        .expect("running")
        .await
        .expect("the serve task panicked")
        .expect("serve failed");
}

on_both_databases!(shutdown_sends_pending_slash_reply);
