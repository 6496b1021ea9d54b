//! Regression tests for faults found by feeding agentdesk hostile or odd
//! input: long questions, large teams, empty mentions, symlink loops,
//! Location targets outside the imported folder, duplicate entities across
//! paths, extreme settings, an unreachable database, a shutdown that races
//! a finishing answer and a double click on a feedback button. Tests that
//! touch the database run on SQLite and PostgreSQL.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentdesk::app::{App, Question};
use agentdesk::catalog::import::import_paths;
use agentdesk::clock::{SharedClock, system_clock};
use agentdesk::config::Settings;
use agentdesk::slack::serve;
use agentdesk::store::feedback::{self, Vote};
use agentdesk::store::invocations::{self, NewInvocation, Source, Status, StoragePolicy};
use agentdesk::store::{Store, redact_url};
use agentdesk_standins::Reply;
use agentdesk_standins::anthropic::AnthropicStandin;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{Fault, SlackStandin, with_fresh_ids};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{
    TestDatabase, agentdesk_binary, describe_output, import, manual_clock, on_both_databases,
    on_both_databases_with_demo, run_agentdesk, slack_fixture,
};

// Apps started on an empty database load the demo catalog, so their tests
// start from a copy of it.
on_both_databases_with_demo!(
    long_question_answer_keeps_time_budget,
    long_question_answer_is_not_echoed,
    owned_entities_answered_for_large_team,
    bare_mention_never_sends_empty_text,
    answer_finished_during_shutdown_reaches_asker,
    huge_duration_settings_are_rejected,
    name_with_a_stop_word_is_found_exactly,
);

on_both_databases!(
    symlink_loop_import_finishes_once,
    import_error_never_quotes_files_outside,
    import_error_for_huge_value_stays_short,
    reimport_of_entity_in_two_paths_changes_nothing,
    folder_import_skips_non_catalog_files,
    dotenv_is_read_only_from_working_directory,
    closed_stdout_does_not_panic,
    same_vote_clicked_twice_at_once_is_recorded,
);

const WAIT: Duration = Duration::from_secs(10);

/// Builds settings for an app on `database`, offline unless `extra` sets a
/// backend.
fn settings(database: &TestDatabase, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".to_string(), database.url().to_string());
    for (name, value) in extra {
        vars.insert(name.to_string(), value.to_string());
    }
    Settings::from_map(&vars).expect("the test settings are valid")
}

async fn start_app(database: &TestDatabase, extra: &[(&str, &str)]) -> App {
    App::start(settings(database, extra), system_clock())
        .await
        .expect("the app starts")
}

async fn ask(app: &App, text: &str) -> agentdesk::app::Answer {
    app.answer(Question::from_cli(text, None))
        .await
        .expect("the question is recorded")
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the parent folder");
    }
    std::fs::write(path, text).expect("write the file");
}

fn component_yaml(name: &str, owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
    )
}

/// Runs the binary like `helpers::run_agentdesk`, but kills it after
/// `limit`. Returns `None` when it had to be killed.
fn run_agentdesk_within(
    workdir: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    limit: Duration,
) -> Option<std::process::Output> {
    let mut command = Command::new(agentdesk_binary());
    command
        .current_dir(workdir)
        .args(args)
        .env_remove("AGENTDESK_BACKEND")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");

    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().expect("the child can be polled").is_some() {
            return Some(child.wait_with_output().expect("the output is readable"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Builds a question of `words` words. The offline backend needs seconds
/// per thousand characters for it, as for a pasted log.
fn long_question(words: usize) -> String {
    const WORDS: [&str; 10] = [
        "payments",
        "checkout",
        "billing",
        "service",
        "team",
        "orders",
        "inventory",
        "pricing",
        "gateway",
        "cart",
    ];
    let body: Vec<&str> = (0..words).map(|index| WORDS[(index * 7) % 10]).collect();
    format!("what is {}", body.join(" "))
}

async fn long_question_answer_keeps_time_budget(database: TestDatabase) {
    // The answer runs on a runtime of its own, so a stuck answer cannot
    // stop this test's timer.
    let (sender, receiver) = oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let status = runtime.block_on(async {
            let app = start_app(&database, &[("AGENTDESK_TIME_BUDGET_SECS", "2")]).await;
            ask(&app, &long_question(1_000)).await.status
        });
        let _ = sender.send(status);
    });

    // The budget is 2 s, and 12 s leaves room for a slow debug build.
    let status = tokio::time::timeout(Duration::from_secs(12), receiver).await;
    assert!(
        status.is_ok(),
        "a 1,000-word question still runs 12 s after its 2 s time budget"
    );
}

async fn long_question_answer_is_not_echoed(database: TestDatabase) {
    let app = start_app(&database, &[]).await;
    let question = format!(
        "who owns payments? {}",
        "lorem ipsum dolor sit amet ".repeat(400)
    );

    let answer = ask(&app, &question).await;

    let length = answer.answer.chars().count();
    assert!(
        length < 2_000,
        "a {}-character question got a {length}-character answer",
        question.chars().count()
    );
}

/// Writes a group with `members` users and one component it owns.
fn large_team_catalog(folder: &Path, members: usize) -> PathBuf {
    let names: Vec<String> = (0..members)
        .map(|index| format!("user-{index:03}"))
        .collect();
    let mut documents = vec![format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: platform\n\
         spec:\n  type: team\n  children: []\n  members: [{}]\n",
        names.join(", ")
    )];
    for name in &names {
        documents.push(format!(
            "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: {name}\n\
             spec:\n  profile:\n    displayName: Person {name}\n  memberOf: [platform]\n"
        ));
    }
    documents.push(component_yaml("billing-svc", "platform"));
    let path = folder.join("team.yaml");
    write(&path, &documents.join("---\n"));
    path
}

async fn owned_entities_answered_for_large_team(database: TestDatabase) {
    let app = start_app(&database, &[]).await;
    let folder = tempfile::tempdir().expect("a temporary folder");
    let catalog = large_team_catalog(folder.path(), 300);
    import(&app.store, &app.clock, &[catalog]).await;

    let answer = ask(&app, "What does platform own?").await;

    assert_eq!(
        answer.status,
        Status::Completed,
        "the question failed: {:?}",
        answer.error
    );
    assert!(
        answer.answer.contains("billing-svc"),
        "the owned component is missing: {}",
        answer.answer
    );
}

async fn bare_mention_never_sends_empty_text(database: TestDatabase) {
    let model = AnthropicStandin::start()
        .await
        .expect("the stand-in starts");
    model.push(Reply::Text("How can I help?".into()));
    let base_url = model.base_url();
    let app = start_app(
        &database,
        &[
            ("AGENTDESK_BACKEND", "anthropic"),
            ("ANTHROPIC_BASE_URL", base_url.as_str()),
            ("ANTHROPIC_API_KEY", "sk-ant-standin"),
        ],
    )
    .await;

    // A mention with only the bot's name decodes to an empty question.
    ask(&app, "").await;

    // Anthropic rejects a text block that is empty or only whitespace.
    for request in model.requests() {
        for message in request["messages"].as_array().into_iter().flatten() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "text" {
                    let text = block["text"].as_str().unwrap_or_default();
                    assert!(
                        !text.trim().is_empty(),
                        "an empty text block was sent: {request}"
                    );
                }
            }
        }
    }
}

async fn answer_finished_during_shutdown_reaches_asker(database: TestDatabase) {
    let model = OpenAiStandin::start()
        .await
        .expect("the model stand-in starts");
    let slack = SlackStandin::start()
        .await
        .expect("the Slack stand-in starts");
    model.set_responder(|request| {
        let question = request["messages"]
            .as_array()
            .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|message| message["content"].as_str())
            .unwrap_or_default()
            .to_string();
        // With a 1 s grace period, "fast" finishes 0.4 s after it ends,
        // while the others are still running.
        let delay = if question.starts_with("fast") {
            Duration::from_millis(1_400)
        } else {
            Duration::from_secs(20)
        };
        Reply::Delayed(
            delay,
            Box::new(Reply::Text(format!("answer to {question}"))),
        )
    });

    let base_url = model.base_url();
    let api_url = slack.api_url();
    let app = start_app(
        &database,
        &[
            ("AGENTDESK_BACKEND", "openai"),
            ("OPENAI_BASE_URL", base_url.as_str()),
            ("SLACK_BOT_TOKEN", SlackStandin::BOT_TOKEN),
            ("SLACK_APP_TOKEN", SlackStandin::APP_TOKEN),
            ("SLACK_API_URL", api_url.as_str()),
            ("AGENTDESK_SOCKET_CONNECTIONS", "1"),
            ("AGENTDESK_SOCKET_STAGGER_SECS", "0"),
            ("AGENTDESK_SHUTDOWN_GRACE_SECS", "1"),
            ("AGENTDESK_LLM_TIMEOUT_SECS", "30"),
            ("AGENTDESK_HTTP_ADDR", "127.0.0.1:0"),
        ],
    )
    .await;
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(serve::run_until(app.clone(), async move {
        let _ = stopped.await;
    }));
    slack.wait_for_sockets(1, WAIT).await.expect("a socket");

    let mut fast_thread = String::new();
    for question in ["slow 1", "slow 2", "slow 3", "slow 4", "slow 5", "fast"] {
        let mut envelope = with_fresh_ids(&slack_fixture("message_im_envelope.json"));
        envelope["payload"]["event"]["text"] = json!(question);
        if question == "fast" {
            fast_thread = envelope["payload"]["event"]["ts"]
                .as_str()
                .expect("a ts")
                .to_string();
        }
        let envelope_id = envelope["envelope_id"].as_str().expect("an id").to_string();
        slack.send_envelope(envelope).await.expect("sent");
        slack.wait_for_ack(&envelope_id, WAIT).await.expect("acked");
    }
    model.wait_for_requests(6, WAIT).await.expect("all started");

    // The first interruption notice is rate-limited for a second, so the
    // shutdown is still telling askers when "fast" finishes.
    slack.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let _ = stop.send(());
    serving
        .await
        .expect("serve does not panic")
        .expect("serve stops cleanly");

    let posts = slack.posts();
    assert!(
        posts
            .iter()
            .any(|post| post.thread_ts.as_deref() == Some(fast_thread.as_str())),
        "the question that finished during shutdown got neither its answer nor a notice: \
         {posts:#?}"
    );
}

async fn symlink_loop_import_finishes_once(database: TestDatabase) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let catalog = folder.path().join("catalog");
    write(
        &catalog.join("sub/service.yaml"),
        &component_yaml("looped", "team-a"),
    );
    std::os::unix::fs::symlink("..", catalog.join("sub/up")).expect("a symlink");
    std::os::unix::fs::symlink(".", catalog.join("self")).expect("a symlink");

    let output = run_agentdesk_within(
        folder.path(),
        &[("DATABASE_URL", database.url())],
        &["catalog", "import", "--json", "catalog"],
        Duration::from_secs(30),
    );

    let output = output.expect("the import of a folder with symlink loops still runs after 30 s");
    assert!(output.status.success(), "{}", describe_output(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(report["files"], 1, "one file, read once: {report}");
}

async fn import_error_never_quotes_files_outside(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::tempdir().expect("a temporary folder");
    write(
        &folder.path().join("private/credentials.yml"),
        "user: deploy\nAPI_KEY = \"sk-live-0123456789\"\n",
    );
    let location = folder.path().join("catalog/location.yaml");
    write(
        &location,
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: escape\n\
         spec:\n  targets:\n    - ../private/credentials.yml\n",
    );

    let result = import_paths(&store, &clock, &[location]).await;

    let message = format!(
        "{:#}",
        result.expect_err("the broken target fails the import")
    );
    assert!(
        !message.contains("sk-live-0123456789"),
        "the error quotes a file outside the imported folder:\n{message}"
    );
}

async fn import_error_for_huge_value_stays_short(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::tempdir().expect("a temporary folder");
    let file = folder.path().join("entities.json");
    let entities = json!([{
        "identifier": "svc",
        "blueprint": "service",
        "properties": "x".repeat(1_000_000),
    }]);
    write(&file, &entities.to_string());

    let result = import_paths(&store, &clock, &[file]).await;

    let message = format!("{:#}", result.expect_err("properties must be an object"));
    assert!(
        message.len() < 10_000,
        "the error is {} bytes long: {}...",
        message.len(),
        &message[..300]
    );
}

async fn reimport_of_entity_in_two_paths_changes_nothing(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::tempdir().expect("a temporary folder");
    let first = folder.path().join("one");
    let second = folder.path().join("two");
    write(&first.join("a.yaml"), &component_yaml("shared", "team-one"));
    write(
        &second.join("b.yaml"),
        &component_yaml("shared", "team-two"),
    );
    let paths = [first, second];
    import(&store, &clock, &paths).await;

    let again = import(&store, &clock, &paths).await;

    assert_eq!(again.created, 0, "{again:?}");
    assert_eq!(
        again.updated, 0,
        "the same files changed something: {again:?}"
    );
    assert_eq!(again.removed, 0, "{again:?}");
}

async fn folder_import_skips_non_catalog_files(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::tempdir().expect("a temporary folder");
    let repository = folder.path().join("shop");
    write(
        &repository.join("catalog-info.yaml"),
        &component_yaml("shop", "team-shop"),
    );
    // What a service repository keeps beside its catalog-info.yaml.
    write(
        &repository.join("openapi.yaml"),
        "openapi: 3.0.0\ninfo:\n  title: Shop\n  version: 1.0.0\npaths: {}\n",
    );
    write(
        &repository.join("docker-compose.yml"),
        "services:\n  web:\n    image: nginx\n",
    );
    write(
        &repository.join("package.json"),
        "{\"name\": \"shop\", \"version\": \"1.0.0\"}",
    );

    let result = import_paths(&store, &clock, &[repository]).await;

    let report = result.unwrap_or_else(|error| panic!("the import failed: {error:#}"));
    assert_eq!(report.created, 1, "{report:?}");
}

async fn huge_duration_settings_are_rejected(database: TestDatabase) {
    for value in ["1e30", "1e19"] {
        let mut vars = HashMap::new();
        vars.insert("AGENTDESK_TIME_BUDGET_SECS".to_string(), value.to_string());
        let parsed = std::panic::catch_unwind(|| Settings::from_map(&vars));
        let parsed = parsed.unwrap_or_else(|_| {
            panic!("AGENTDESK_TIME_BUDGET_SECS={value} panics instead of failing")
        });
        let Ok(settings) = parsed else {
            continue;
        };

        // When the value is accepted, a question must not panic either.
        let mut settings = settings;
        settings.database_url = database.url().to_string();
        let app = App::start(settings, system_clock())
            .await
            .expect("the app starts");
        let answered =
            tokio::spawn(async move { ask(&app, "who owns payments?").await.status }).await;
        assert!(
            answered.is_ok(),
            "AGENTDESK_TIME_BUDGET_SECS={value} was accepted and the first question panicked"
        );
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_with_cause() {
    let started = Instant::now();

    let result = Store::connect("postgres://postgres@127.0.0.1:1/postgres").await;

    let elapsed = started.elapsed();
    let message = format!("{:#}", result.expect_err("nothing listens on port 1"));
    assert!(
        elapsed < Duration::from_secs(5),
        "the error took {elapsed:?}"
    );
    assert!(
        message.to_lowercase().contains("refused"),
        "the error hides why it failed: {message}"
    );
}

/// Timings that must be above zero. Zero made a failing
/// `apps.connections.open` retry in a tight loop, every question fail its
/// time budget, and the database and sweep waits silently become 100 ms.
const POSITIVE_TIMINGS: [&str; 11] = [
    "AGENTDESK_DATABASE_TIMEOUT_SECS",
    "AGENTDESK_SOCKET_RECONNECT_SECS",
    "AGENTDESK_SOCKET_RECONNECT_MAX_SECS",
    "AGENTDESK_SOCKET_TOO_MANY_SECS",
    "AGENTDESK_SOCKET_PING_SECS",
    "AGENTDESK_SOCKET_SILENCE_SECS",
    "AGENTDESK_DEDUPE_TTL_SECS",
    "AGENTDESK_TIME_BUDGET_SECS",
    "AGENTDESK_LLM_TIMEOUT_SECS",
    "AGENTDESK_APPROVAL_SWEEP_SECS",
    "AGENTDESK_RETENTION_INTERVAL_SECS",
];

#[test]
fn zero_timing_settings_are_rejected() {
    for name in POSITIVE_TIMINGS {
        // 1e-400 parses as 0.0, and 1e-12 rounds to a zero duration.
        for value in ["0", "0.0", "-0", "1e-400", "1e-12"] {
            let vars = HashMap::from([(name.to_string(), value.to_string())]);

            let result = Settings::from_map(&vars);

            let message = format!(
                "{:#}",
                result.expect_err(&format!("{name}={value} accepted"))
            );
            assert!(message.contains(name), "{message}");
            assert!(message.contains("above 0"), "{message}");
        }
    }
}

#[test]
fn zero_grace_and_stagger_are_accepted() {
    for name in [
        "AGENTDESK_SHUTDOWN_GRACE_SECS",
        "AGENTDESK_SOCKET_STAGGER_SECS",
    ] {
        let vars = HashMap::from([(name.to_string(), "0".to_string())]);

        let result = Settings::from_map(&vars);

        assert!(result.is_ok(), "{name}=0: {:#}", result.unwrap_err());
    }
}

#[test]
fn silence_timeout_must_exceed_ping_interval() {
    let vars = HashMap::from([
        ("AGENTDESK_SOCKET_PING_SECS".to_string(), "10".to_string()),
        (
            "AGENTDESK_SOCKET_SILENCE_SECS".to_string(),
            "10".to_string(),
        ),
    ]);

    let result = Settings::from_map(&vars);

    let message = format!("{:#}", result.expect_err("silence equal to ping accepted"));
    assert!(
        message.contains("AGENTDESK_SOCKET_SILENCE_SECS"),
        "{message}"
    );
    assert!(message.contains("AGENTDESK_SOCKET_PING_SECS"), "{message}");
}

#[test]
fn redact_url_hides_every_password_form() {
    for (url, secret) in [
        ("postgres://app:p@ss@db.internal/agentdesk", "ss@"),
        (
            "postgres://db.internal/agentdesk?password=topsecret",
            "topsecret",
        ),
        (
            "postgres://db.internal/agentdesk?user=app&password=topsecret&sslmode=require",
            "topsecret",
        ),
    ] {
        let shown = redact_url(url);
        assert!(!shown.contains(secret), "{url} is shown as {shown}");
    }
}

async fn dotenv_is_read_only_from_working_directory(database: TestDatabase) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    write(&folder.path().join(".env"), "AGENTDESK_BACKEND=bogus\n");
    let workdir = folder.path().join("project");
    std::fs::create_dir_all(&workdir).expect("the working directory");

    let output = run_agentdesk(
        &workdir,
        &[("DATABASE_URL", database.url())],
        &["ask", "who owns payments?"],
    );

    assert!(
        output.status.success(),
        "a .env in the parent folder was read: {}",
        describe_output(&output)
    );
}

async fn closed_stdout_does_not_panic(database: TestDatabase) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);

    let mut child = Command::new(agentdesk_binary())
        .current_dir(folder.path())
        .args(["ask", "who owns payments?"])
        .env("DATABASE_URL", database.url())
        .env_remove("AGENTDESK_BACKEND")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr is readable");
    child.wait().expect("the binary exits");

    assert!(
        !stderr.contains("panicked"),
        "writing to a closed pipe panics:\n{stderr}"
    );
}

/// A name made of a word and a stop word ("team-a") is an exact match,
/// although search drops the stop word from its terms.
async fn name_with_a_stop_word_is_found_exactly(database: TestDatabase) {
    let app = start_app(&database, &[]).await;
    import(
        &app.store,
        &app.clock,
        &[crate::helpers::backstage_fixtures()],
    )
    .await;

    let answer = ask(&app, "who is in team-a?").await;

    assert!(
        answer.answer.contains("`group:team-a`") && !answer.answer.contains("closest match"),
        "team-a is named exactly: {}",
        answer.answer
    );
    assert!(answer.answer.contains("Janelle Dawe"), "{}", answer.answer);
}

/// Two clicks of the same feedback button by one user, handled at once,
/// both succeed. Both may read no earlier vote, and the click whose write
/// then changes no row must not be taken for a vote on an unknown
/// invocation.
async fn same_vote_clicked_twice_at_once_is_recorded(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    // The clicks race, so several rounds make a lost race likely.
    for round in 0..20 {
        let id = format!("invocation-{round}");
        let new = NewInvocation {
            id: id.clone(),
            source: Source::Slack,
            agent: "default".into(),
            team_id: None,
            channel_id: None,
            thread_ts: None,
            message_ts: None,
            user_id: Some("U0ALICE001".into()),
            prompt: "who owns payments?".into(),
            backend: "offline".into(),
            model: "offline-rules".into(),
        };
        invocations::start(&store, &clock, &new, StoragePolicy::Full)
            .await
            .expect("the invocation is recorded");

        let clicks = [(); 2].map(|()| {
            let (store, clock, id) = (store.clone(), clock.clone(), id.clone());
            tokio::spawn(async move {
                feedback::record_vote(&store, &clock, &id, "U0ALICE001", Vote::Up).await
            })
        });
        for click in clicks {
            if let Err(error) = click.await.expect("the click does not panic") {
                panic!("round {round}: a double click failed: {error:#}");
            }
        }
        let votes = feedback::votes_for(&store, &id).await.expect("votes");
        assert_eq!(
            votes,
            [("U0ALICE001".to_string(), Vote::Up)],
            "round {round}"
        );
    }
}
