//! Robustness properties: arbitrary and mutated input never panics the
//! Slack event handling, the catalog import or the agents file parser, and
//! every error about a file names that file.
//!
//! Slack input is arbitrary JSON and mutations of the Socket Mode fixtures
//! (fields removed, types swapped, Unicode strings, huge numbers, deep
//! nesting). It goes through `classify` directly, and as frame text through
//! slack-morphism's parser into the real listener callbacks of a bot on a
//! SQLite database and the stand-in Slack. Catalog and agents file input is
//! YAML and JSON text built from pieces that resemble real files, with
//! random field types, anchors, aliases and oversized values.
//!
//! Each property sets its case count. `PROPTEST_CASES` overrides them all,
//! for a longer hunt.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};

use agentdesk::agent::agents_file::AgentsFile;
use agentdesk::app::App;
use agentdesk::catalog::import::{ImportError, ImportReport, import_paths};
use agentdesk::catalog::{Catalog, EntityRef, Scope};
use agentdesk::clock::SharedClock;
use agentdesk::config::Secret;
use agentdesk::slack::client::SlackApi;
use agentdesk::slack::events::{BotIdentity, Verdict, classify};
use agentdesk::slack::listener::{
    Bot, handle_events_api, handle_interactive, handle_slash_command,
};
use agentdesk::slack::socket::{ParsedFrame, parse_frame};
use agentdesk::slack::text::decode_incoming;
use agentdesk::tools::ToolRegistry;
use agentdesk_standins::slack::{SlackStandin, with_fresh_ids};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

use crate::helpers::bot::bot_settings;
use crate::helpers::{TestDatabase, fixture_path, manual_clock, on_both_databases, slack_client};

/// Returns a proptest configuration with `cases` cases, unless
/// `PROPTEST_CASES` sets another number.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

/// Runs one property outside the `proptest!` macro, for properties that
/// share a running bot or runtime between their cases.
fn check_property<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------
// Generated JSON

const BOT_USER: &str = SlackStandin::BOT_USER_ID;
const BOT_ID: &str = SlackStandin::BOT_ID;

fn identity() -> BotIdentity {
    BotIdentity {
        user_id: BOT_USER.to_string(),
        bot_id: Some(BOT_ID.to_string()),
        team_id: Some(SlackStandin::TEAM_ID.to_string()),
    }
}

/// Words that steer the Slack handling: event types, subtypes, ids of the
/// fixtures, mention tokens, subcommands, button ids, and awkward text.
const SLACK_WORDS: &[&str] = &[
    "message",
    "app_mention",
    "im",
    "channel",
    "group",
    "file_share",
    "thread_broadcast",
    "bot_message",
    "message_changed",
    "U0BOT00001",
    "B0BOT00001",
    "U0ALICE001",
    "C0CHAN0001",
    "D0DMALICE1",
    "T0TEAM0001",
    "1717171717.000200",
    "<@U0BOT00001>",
    "<@U0BOT00001|agentdesk>",
    "<@U0BOT00001> who owns payments?",
    "&amp;&lt;&gt;",
    "<!here>",
    "event_callback",
    "events_api",
    "slash_commands",
    "interactive",
    "block_actions",
    "action_approve",
    "action_reject",
    "feedback_up",
    "feedback_down",
    "help",
    "agents",
    "usage",
    "",
    "   ",
    "\u{0}",
    "\u{202e}gnp.exe",
    "\u{feff}",
    "👩‍👩‍👧",
    "e\u{301}\u{302}",
    "İ",
    "ß",
];

/// Object keys the Slack handling reads, so generated objects reach past
/// the first check.
const EVENT_KEYS: &[&str] = &[
    "type",
    "subtype",
    "channel_type",
    "hidden",
    "bot_id",
    "bot_profile",
    "user",
    "edited",
    "channel",
    "ts",
    "text",
    "thread_ts",
    "team",
    "event",
    "payload",
    "envelope_id",
    "message",
    "blocks",
    "id",
    "value",
    "action_id",
];

/// Generates text: arbitrary Unicode (control characters included), the
/// words above, mention tokens around them, and a long run of a multi-byte
/// character.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        2 => any::<String>(),
        3 => select(SLACK_WORDS).prop_map(str::to_string),
        1 => (select(SLACK_WORDS), "\\PC{0,8}")
            .prop_map(|(word, tail)| format!("<@{word}{tail}>")),
        // Slack accepts message text up to 40,000 characters.
        1 => (1usize..40_000).prop_map(|length| "é".repeat(length)),
    ]
}

/// Generates numbers at the edges of what JSON numbers and Rust integers
/// can contain.
fn huge_number() -> impl Strategy<Value = Value> {
    select(vec![
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(f64::MAX),
        json!(-f64::MAX),
        json!(f64::MIN_POSITIVE),
        json!(1e300),
        json!(-0.0),
        json!(0),
    ])
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| {
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        }),
        huge_number(),
        tricky_text().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(EVENT_KEYS).prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ]
}

/// Generates any JSON value a few levels deep, with keys the Slack
/// handling reads.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Generates a value for one event field: mostly a word that matters,
/// sometimes anything.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => select(SLACK_WORDS).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => json_value(),
    ]
}

/// Generates an object that looks like a message or mention event, with
/// random fields of random types.
fn event_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => select(vec!["message", "app_mention"]).prop_map(Value::from),
            1 => field_value(),
        ],
        prop::collection::vec((select(EVENT_KEYS), field_value()), 0..12),
    )
        .prop_map(|(kind, fields)| {
            let mut event = Map::new();
            event.insert("type".to_string(), kind);
            for (key, value) in fields {
                event.insert(key.to_string(), value);
            }
            Value::Object(event)
        })
}

// ---------------------------------------------------------------------------
// Fixture mutations

/// One change to a JSON document, applied at a position picked by an index.
#[derive(Debug, Clone)]
enum Mutation {
    /// Removes the field or array item (the root becomes `null`).
    Remove,
    /// Puts any value, usually of another type, in its place.
    Replace(Value),
    /// Replaces a string with other text.
    Text(String),
    /// Replaces a number with one at the edge of the range.
    Number(Value),
    /// Wraps the value in this many arrays, or objects when `in_objects`.
    Nest { depth: usize, in_objects: bool },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        2 => json_value().prop_map(Mutation::Replace),
        2 => tricky_text().prop_map(Mutation::Text),
        1 => huge_number().prop_map(Mutation::Number),
        // serde_json stops parsing at 128 levels; go past it too.
        1 => (1usize..140, any::<bool>())
            .prop_map(|(depth, in_objects)| Mutation::Nest { depth, in_objects }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Item(usize),
}

/// Lists the positions in `value`, root first, that `accepts` allows.
fn positions(value: &Value, accepts: &dyn Fn(&Value) -> bool) -> Vec<Vec<Step>> {
    fn walk(
        value: &Value,
        path: &mut Vec<Step>,
        accepts: &dyn Fn(&Value) -> bool,
        found: &mut Vec<Vec<Step>>,
    ) {
        if accepts(value) {
            found.push(path.clone());
        }
        match value {
            Value::Object(object) => {
                for (key, child) in object {
                    path.push(Step::Key(key.clone()));
                    walk(child, path, accepts, found);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    path.push(Step::Item(index));
                    walk(child, path, accepts, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    let mut found = Vec::new();
    walk(value, &mut Vec::new(), accepts, &mut found);
    found
}

fn child_mut<'a>(value: &'a mut Value, step: &Step) -> Option<&'a mut Value> {
    match (value, step) {
        (Value::Object(object), Step::Key(key)) => object.get_mut(key),
        (Value::Array(items), Step::Item(index)) => items.get_mut(*index),
        _ => None,
    }
}

/// Applies `mutation` to `document` at the position `at` picks among those
/// the mutation can change.
fn mutate(document: &mut Value, at: &Index, mutation: &Mutation) {
    let accepts: &dyn Fn(&Value) -> bool = match mutation {
        Mutation::Text(_) => &Value::is_string,
        Mutation::Number(_) => &Value::is_number,
        _ => &|_| true,
    };
    let mut candidates = positions(document, accepts);
    if candidates.is_empty() {
        candidates = positions(document, &|_| true);
    }
    let path = candidates.swap_remove(at.index(candidates.len()));

    if let Mutation::Remove = mutation {
        let Some((last, parent_path)) = path.split_last() else {
            *document = Value::Null;
            return;
        };
        let mut parent = &mut *document;
        for step in parent_path {
            parent = child_mut(parent, step).expect("the position was just listed");
        }
        match (parent, last) {
            (Value::Object(object), Step::Key(key)) => {
                object.remove(key);
            }
            (Value::Array(items), Step::Item(index)) => {
                items.remove(*index);
            }
            _ => unreachable!("positions pair keys with objects and items with arrays"),
        }
        return;
    }

    let mut target = &mut *document;
    for step in &path {
        target = child_mut(target, step).expect("the position was just listed");
    }
    *target = match mutation {
        Mutation::Remove => unreachable!("handled above"),
        Mutation::Replace(value) | Mutation::Number(value) => value.clone(),
        Mutation::Text(text) => Value::String(text.clone()),
        Mutation::Nest { depth, in_objects } => {
            let mut nested = target.take();
            for _ in 0..*depth {
                nested = if *in_objects {
                    json!({ "nested": nested })
                } else {
                    json!([nested])
                };
            }
            nested
        }
    };
}

/// Returns the Slack input fixtures by file name. `ack_frames.json`
/// contains frames the bot sends, so it is left out.
fn slack_fixtures() -> &'static Vec<(String, Value)> {
    static FIXTURES: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let folder = fixture_path("slack");
        let mut fixtures: Vec<(String, Value)> = std::fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()))
            .map(|entry| entry.expect("a readable folder entry").path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "json")
            })
            .filter(|path| !path.ends_with("ack_frames.json"))
            .map(|path| {
                let name = path
                    .file_name()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned();
                (name.clone(), crate::helpers::slack_fixture(&name))
            })
            .collect();
        fixtures.sort_by(|left, right| left.0.cmp(&right.0));
        assert!(
            fixtures.len() >= 10,
            "expected the Socket Mode fixtures in {}",
            folder.display()
        );
        fixtures
    })
}

fn slack_fixture(name: &str) -> Value {
    slack_fixtures()
        .iter()
        .find(|(fixture, _)| fixture == name)
        .unwrap_or_else(|| panic!("no Slack fixture {name}"))
        .1
        .clone()
}

/// A fixture from `names` (all of them when empty) after fewer than
/// `mutations` mutations; zero mutations keep it as recorded.
fn mutated_fixture(names: &[&str], mutations: usize) -> impl Strategy<Value = Value> + use<> {
    let names: Vec<String> = if names.is_empty() {
        slack_fixtures()
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    } else {
        names.iter().map(|name| name.to_string()).collect()
    };
    (
        select(names),
        prop::collection::vec((any::<Index>(), mutation()), 0..mutations),
    )
        .prop_map(|(name, mutations)| {
            let mut document = slack_fixture(&name);
            for (at, mutation) in &mutations {
                mutate(&mut document, at, mutation);
            }
            document
        })
}

/// Generates an event object, or takes a mutated fixture's
/// `payload.event`.
fn any_event() -> impl Strategy<Value = Value> {
    let fixture_event = mutated_fixture(&[], 5).prop_map(|envelope| {
        envelope
            .pointer("/payload/event")
            .cloned()
            .unwrap_or(envelope)
    });
    prop_oneof![event_like(), fixture_event, json_value()]
}

// ---------------------------------------------------------------------------
// Slack: classify and decode_incoming

/// How a message shows that our own bot sent it.
#[derive(Debug, Clone, Copy)]
enum OwnMark {
    User,
    BotId,
    BotProfile,
}

fn own_mark() -> impl Strategy<Value = OwnMark> {
    select(vec![OwnMark::User, OwnMark::BotId, OwnMark::BotProfile])
}

/// Makes `event` an object, keeping what it was as its text otherwise.
fn as_object(event: &mut Value) -> &mut Map<String, Value> {
    if !event.is_object() {
        *event = json!({ "type": "message", "text": event.take() });
    }
    event.as_object_mut().expect("made an object above")
}

/// Marks `event` as sent by our bot in one way.
fn mark_as_own(event: &mut Value, mark: OwnMark) {
    let object = as_object(event);
    match mark {
        OwnMark::User => object.insert("user".into(), json!(BOT_USER)),
        OwnMark::BotId => object.insert("bot_id".into(), json!(BOT_ID)),
        OwnMark::BotProfile => object.insert("bot_profile".into(), bot_profile(BOT_ID)),
    };
}

fn bot_profile(bot_id: &str) -> Value {
    json!({ "id": bot_id, "app_id": "A0OTHER001", "name": "somebot", "deleted": false })
}

/// Which bot fields a bot's message carries besides its user.
#[derive(Debug, Clone, Copy)]
struct BotFields {
    bot_id: bool,
    bot_profile: bool,
}

fn bot_fields() -> impl Strategy<Value = BotFields> {
    (any::<bool>(), any::<bool>()).prop_map(|(bot_id, bot_profile)| BotFields {
        bot_id,
        bot_profile,
    })
}

/// Marks `event` as written by the bot user `user` with id `bot_id`, as
/// Slack shows a bot's message.
fn mark_as_bot(event: &mut Value, user: &str, bot_id: &str, fields: BotFields) {
    let object = as_object(event);
    object.insert("user".into(), json!(user));
    if fields.bot_id {
        object.insert("bot_id".into(), json!(bot_id));
    }
    if fields.bot_profile {
        object.insert("bot_profile".into(), bot_profile(bot_id));
    }
}

/// Checks what a question verdict promises, and decodes its text.
fn check_verdict(verdict: &Verdict) -> Result<(), TestCaseError> {
    let Verdict::Question(message) = verdict else {
        return Ok(());
    };
    prop_assert_ne!(message.user.as_str(), BOT_USER);
    prop_assert!(!message.user.is_empty());
    prop_assert!(!message.channel.is_empty());
    prop_assert!(!message.ts.is_empty());
    prop_assert!(!message.reply_thread_ts().is_empty());
    decode_incoming(&message.text, Some(BOT_USER));
    decode_incoming(&message.text, None);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn classify_survives_any_json(value in json_value()) {
        let bot = identity();
        check_verdict(&classify(&value, None, None, &bot))?;
        check_verdict(&classify(&value, Some("Ev1"), Some("T1"), &bot))?;
        for pointer in ["/event", "/payload/event"] {
            if let Some(event) = value.pointer(pointer) {
                check_verdict(&classify(event, None, None, &bot))?;
            }
        }
    }

    #[test]
    fn classify_survives_event_shapes(event in any_event()) {
        let bot = identity();
        check_verdict(&classify(&event, Some("Ev1"), Some("T0TEAM0001"), &bot))?;
    }

    #[test]
    fn own_bot_message_is_never_question(mut event in any_event(), mark in own_mark()) {
        mark_as_own(&mut event, mark);

        let verdict = classify(&event, Some("Ev1"), Some("T0TEAM0001"), &identity());

        prop_assert!(
            !matches!(verdict, Verdict::Question(_)),
            "a message marked {:?} as our bot's became a question: {:?}",
            mark,
            verdict
        );
    }
}

// ---------------------------------------------------------------------------
// Slack: frames through the listener callbacks

/// Name of the harness runtime's worker threads, where the work that the
/// callbacks spawn runs.
const WORKER_THREAD: &str = "property-slack-worker";

/// Panics seen on [`WORKER_THREAD`] threads. Tokio catches a panic in a
/// spawned task and the callbacks drop their join handles, so without this
/// count such a panic would only be printed.
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(WORKER_THREAD) {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// A bot on a SQLite copy of the demo catalog, talking to the stand-in
/// Slack. Fields drop in order, so the runtime goes last.
struct SlackHarness {
    bot: Arc<Bot>,
    slack: SlackStandin,
    _database: TestDatabase,
    runtime: Runtime,
}

impl SlackHarness {
    fn start() -> Self {
        count_worker_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(WORKER_THREAD)
            .enable_all()
            .build()
            .expect("build the harness runtime");
        let database = TestDatabase::sqlite_with_demo();

        let (slack, bot) = runtime.block_on(async {
            let slack = SlackStandin::start()
                .await
                .expect("the stand-in Slack starts");
            let clock: SharedClock = manual_clock();
            let app = App::start(bot_settings(&slack, database.url(), &[]), clock)
                .await
                .expect("the app starts");
            let client = slack_client(&slack.api_url());
            let api = SlackApi::new(
                client,
                &Secret::new(SlackStandin::BOT_TOKEN),
                app.metrics.clone(),
            );
            let identity = api.identify().await.expect("auth.test answers");
            (slack, Arc::new(Bot::new(app, api, identity)))
        });

        Self {
            bot,
            slack,
            _database: database,
            runtime,
        }
    }

    /// Reads frame text as the Socket Mode loop of `serve` does and hands
    /// its payload to the same handler, then waits for the work it
    /// spawned. A frame that does not parse is fine: the loop drops it.
    async fn deliver(&self, frame: &str) -> Result<(), TestCaseError> {
        if let ParsedFrame::Envelope { kind, payload, .. } = parse_frame(frame) {
            match kind.as_str() {
                "events_api" => handle_events_api(&self.bot, payload),
                "interactive" => handle_interactive(&self.bot, payload),
                "slash_commands" => {
                    let response = handle_slash_command(&self.bot, payload).await;
                    let text = response["text"].as_str().unwrap_or_default();
                    prop_assert!(!text.trim().is_empty(), "the command reply is empty");
                }
                _ => {}
            }
        }

        self.bot.tasks.close();
        self.bot.tasks.wait().await;
        self.bot.tasks.reopen();
        Ok(())
    }

    /// Delivers `frame` and fails when it, or work it spawned, panicked.
    fn check_frame(&self, frame: &str) -> Result<(), TestCaseError> {
        let panics_before = WORKER_PANICS.load(Ordering::SeqCst);
        self.runtime.block_on(self.deliver(frame))?;
        let panics = WORKER_PANICS.load(Ordering::SeqCst) - panics_before;
        prop_assert_eq!(panics, 0, "work spawned for the frame panicked");
        Ok(())
    }

    fn messages_posted(&self) -> usize {
        self.slack
            .posts()
            .iter()
            .filter(|post| post.method == "chat.postMessage")
            .count()
    }
}

/// Writes a document as frame text, compactly or pretty.
fn frame_text(document: &Value, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(document)
    } else {
        serde_json::to_string(document)
    };
    text.expect("a JSON value serializes")
}

// Each frame that classify accepts runs a whole offline answer (about
// 50 ms in a debug build), so these properties run fewer cases than the
// pure ones above.

#[test]
fn mutated_frames_never_panic_listener() {
    let harness = SlackHarness::start();
    check_property(
        128,
        (mutated_fixture(&[], 4), any::<bool>()),
        |(document, pretty)| harness.check_frame(&frame_text(&document, pretty)),
    );
}

/// Fixtures of questions, and of our bot's own message, as bases for the
/// messages of bots.
const MESSAGE_FIXTURES: &[&str] = &[
    "message_from_own_bot_envelope.json",
    "message_im_envelope.json",
    "app_mention_envelope.json",
    "message_channel_with_mention_envelope.json",
];

/// A bot user of another app, added to the stand-in Slack's users.
const OTHER_BOT_USER: &str = "U0OTHERBT1";
const OTHER_BOT_ID: &str = "B0OTHERBT1";

/// Delivers `envelope` with its event marked as written by the bot user
/// `user`, and fails when the bot answered it.
fn check_no_reply(
    harness: &SlackHarness,
    mut envelope: Value,
    user: &str,
    bot_id: &str,
    fields: BotFields,
) -> Result<(), TestCaseError> {
    if let Some(event) = envelope.pointer_mut("/payload/event") {
        mark_as_bot(event, user, bot_id, fields);
    }
    let posted_before = harness.messages_posted();

    harness.check_frame(&frame_text(&envelope, false))?;

    prop_assert_eq!(
        harness.messages_posted(),
        posted_before,
        "the bot answered a message of the bot user {} with {:?}",
        user,
        fields
    );
    Ok(())
}

#[test]
fn own_bot_message_gets_no_reply() {
    let harness = SlackHarness::start();
    let messages = (mutated_fixture(MESSAGE_FIXTURES, 3), bot_fields());
    check_property(128, messages, |(envelope, fields)| {
        check_no_reply(&harness, envelope, BOT_USER, BOT_ID, fields)
    });
}

#[test]
fn other_bot_message_gets_no_reply() {
    let harness = SlackHarness::start();
    harness.slack.set_user(other_bot_user());
    let fields = bot_fields().prop_map(|fields| BotFields {
        bot_id: true,
        ..fields
    });
    let messages = (mutated_fixture(MESSAGE_FIXTURES, 3), fields);
    check_property(128, messages, |(envelope, fields)| {
        check_no_reply(&harness, envelope, OTHER_BOT_USER, OTHER_BOT_ID, fields)
    });
}

fn other_bot_user() -> Value {
    json!({ "id": OTHER_BOT_USER, "name": "alertbot", "is_bot": true, "deleted": false })
}

/// A mention written by another app gets no answer, so two bots cannot
/// keep answering each other.
#[test]
fn other_bot_mention_regression() {
    let harness = SlackHarness::start();
    harness.slack.set_user(other_bot_user());
    let mention = slack_fixture("app_mention_envelope.json");

    let from_person = frame_text(&with_fresh_ids(&mention), false);
    harness
        .check_frame(&from_person)
        .expect("a person's mention is handled");
    assert_eq!(
        harness.messages_posted(),
        1,
        "a person's mention is answered"
    );

    let mut from_bot = with_fresh_ids(&mention);
    mark_as_bot(
        &mut from_bot["payload"]["event"],
        OTHER_BOT_USER,
        OTHER_BOT_ID,
        BotFields {
            bot_id: true,
            bot_profile: true,
        },
    );
    harness
        .check_frame(&frame_text(&from_bot, false))
        .expect("a bot's mention is handled");
    assert_eq!(
        harness.messages_posted(),
        1,
        "a bot's mention is not answered"
    );
}

#[test]
fn slash_commands_always_get_reply() {
    let harness = SlackHarness::start();
    let subcommand = prop_oneof![
        select(vec![
            "help",
            "agents",
            "usage",
            "HELP",
            " usage  now",
            "",
            "\u{0}"
        ])
        .prop_map(str::to_string),
        tricky_text(),
    ];
    let commands = (
        mutated_fixture(&["slash_command_envelope.json"], 3),
        subcommand,
        tricky_text(),
    );
    check_property(128, commands, |(mut envelope, text, user)| {
        if let Some(payload) = envelope
            .pointer_mut("/payload")
            .and_then(Value::as_object_mut)
        {
            payload.insert("text".into(), json!(text));
            payload.insert("user_id".into(), json!(user));
        }
        harness.check_frame(&frame_text(&envelope, false))
    });
}

#[test]
fn button_clicks_never_panic() {
    let harness = SlackHarness::start();
    let action_id = prop_oneof![
        select(vec![
            "action_approve",
            "action_reject",
            "feedback_up",
            "feedback_down"
        ])
        .prop_map(str::to_string),
        tricky_text(),
    ];
    let clicks = (
        mutated_fixture(&["block_actions_approve_envelope.json"], 3),
        action_id,
        prop::option::of(tricky_text()),
    );
    check_property(128, clicks, |(mut envelope, action_id, value)| {
        if let Some(action) = envelope
            .pointer_mut("/payload/actions/0")
            .and_then(Value::as_object_mut)
        {
            action.insert("action_id".into(), json!(action_id));
            match value {
                Some(value) => action.insert("value".into(), json!(value)),
                None => action.remove("value"),
            };
        }
        harness.check_frame(&frame_text(&envelope, false))
    });
}

// ---------------------------------------------------------------------------
// Generated YAML

/// One YAML node, written in flow style so it fits after a key.
#[derive(Debug, Clone)]
enum Yaml {
    /// Written as is: plain scalars, tags, and text that may not be YAML.
    Raw(String),
    /// A double-quoted string; JSON's escapes are valid YAML escapes.
    Quoted(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
    Anchor(&'static str, Box<Yaml>),
    Alias(&'static str),
}

impl Yaml {
    fn text(text: &str) -> Self {
        Self::Quoted(text.to_string())
    }

    fn render(&self) -> String {
        match self {
            Yaml::Raw(text) => text.clone(),
            Yaml::Quoted(text) => serde_json::to_string(text).expect("a string serializes"),
            Yaml::Seq(items) => {
                let items: Vec<String> = items.iter().map(Yaml::render).collect();
                format!("[{}]", items.join(", "))
            }
            Yaml::Map(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("{}: {}", quote(key), value.render()))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            Yaml::Anchor(name, node) => format!("&{name} {}", node.render()),
            Yaml::Alias(name) => format!("*{name}"),
        }
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// Plain scalars YAML resolves in surprising ways, tags, and text that is
/// not valid YAML in flow context.
const YAML_SCALARS: &[&str] = &[
    "yes",
    "no",
    "on",
    "~",
    "null",
    "true",
    "0x1F",
    "0o17",
    "1e999",
    "-.inf",
    ".nan",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "2024-01-01",
    "12:30:00",
    "!!binary aGVsbG8=",
    "!!str 5",
    "!!int x",
    "!custom value",
    "'single ''quoted'''",
    "\"nul \\0 escaped\"",
    "@at",
    "`tick",
    "%percent",
    "a: b",
    "a #comment",
    "&",
    "*",
    "*undefined",
    "? key",
    "...",
    "---",
    "\"unterminated",
    "[unclosed",
    "{a: 1, a: 2}",
    "<<: *a",
];

const ANCHORS: &[&str] = &["a", "b", "c"];

fn yaml_scalar() -> impl Strategy<Value = Yaml> {
    prop_oneof![
        3 => select(YAML_SCALARS).prop_map(|text| Yaml::Raw(text.to_string())),
        3 => "\\PC{0,16}".prop_map(Yaml::Quoted),
        2 => "[a-zA-Z][a-zA-Z0-9_-]{0,12}".prop_map(Yaml::Raw),
        1 => any::<i64>().prop_map(|number| Yaml::Raw(number.to_string())),
        1 => any::<f64>().prop_map(|number| Yaml::Raw(format!("{number:e}"))),
        1 => select(ANCHORS).prop_map(Yaml::Alias),
    ]
}

/// Generates any YAML node a few levels deep, anchors included.
fn yaml_node() -> impl Strategy<Value = Yaml> {
    yaml_scalar().prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Yaml::Seq),
            prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..5).prop_map(Yaml::Map),
            (select(ANCHORS), inner).prop_map(|(name, node)| Yaml::Anchor(name, Box::new(node))),
        ]
    })
}

/// Generates a value for a field that expects `plausible`: usually one of
/// them, sometimes any node.
fn field(plausible: &[&'static str]) -> impl Strategy<Value = Yaml> + use<> {
    let plausible = plausible.to_vec();
    prop_oneof![
        3 => select(plausible).prop_map(Yaml::text),
        1 => yaml_node(),
    ]
}

/// Generates a list of values that each look like `plausible`, or any
/// node.
fn field_list(plausible: &[&'static str]) -> impl Strategy<Value = Yaml> + use<> {
    let plausible = plausible.to_vec();
    prop_oneof![
        3 => prop::collection::vec(select(plausible).prop_map(Yaml::text), 0..4)
            .prop_map(Yaml::Seq),
        1 => yaml_node(),
    ]
}

/// Writes a block mapping: `key: value` lines indented by `indent` spaces.
fn block(entries: &[(String, Yaml)], indent: usize) -> String {
    let padding = " ".repeat(indent);
    entries
        .iter()
        .map(|(key, value)| format!("{padding}{}: {}\n", quote(key), value.render()))
        .collect()
}

/// Generates optional fields, each present or not, in a fixed order.
fn some_fields(
    fields: Vec<(&'static str, BoxedStrategy<Yaml>)>,
) -> impl Strategy<Value = Vec<(String, Yaml)>> {
    let options: Vec<_> = fields
        .into_iter()
        .map(|(key, value)| {
            prop::option::weighted(0.6, value.prop_map(move |v| (key.to_string(), v)))
        })
        .collect();
    options.prop_map(|entries| entries.into_iter().flatten().collect())
}

/// Generates up to two extra keys with random values.
fn extra_fields() -> impl Strategy<Value = Vec<(String, Yaml)>> {
    prop::collection::vec(("\\PC{1,10}", yaml_node()), 0..3)
}

/// How often a field gets a random node in place of a value of its type,
/// against 20 for a well-typed value. One wrong type can stop a parse or an
/// import at the first problem, so well-typed files (no chaos) are what
/// reach the checks of each field and the database.
#[derive(Debug, Clone, Copy)]
struct Chaos(u32);

fn typed(chaos: Chaos, value: impl Strategy<Value = Yaml> + 'static) -> BoxedStrategy<Yaml> {
    if chaos.0 == 0 {
        value.boxed()
    } else {
        prop_oneof![20 => value, chaos.0 => yaml_node()].boxed()
    }
}

/// Generates a string: one of `plausible`, or any text.
fn text_of(plausible: &[&'static str]) -> impl Strategy<Value = Yaml> + use<> {
    let plausible = plausible.to_vec();
    prop_oneof![
        4 => select(plausible).prop_map(Yaml::text),
        1 => "\\PC{0,16}".prop_map(Yaml::Quoted),
    ]
}

/// Generates a list of up to five strings, one more than the longest list
/// allowed.
fn texts_of(plausible: &[&'static str]) -> impl Strategy<Value = Yaml> + use<> {
    prop::collection::vec(text_of(plausible), 0..6).prop_map(Yaml::Seq)
}

/// Generates a number written as is: one of `plausible`, or any `u32`.
fn number_of(plausible: &[&'static str]) -> impl Strategy<Value = Yaml> + use<> {
    let plausible = plausible.to_vec();
    prop_oneof![
        3 => select(plausible).prop_map(|number| Yaml::Raw(number.to_string())),
        1 => any::<u32>().prop_map(|number| Yaml::Raw(number.to_string())),
    ]
}

fn flag() -> impl Strategy<Value = Yaml> {
    select(vec!["true", "false"]).prop_map(|flag| Yaml::Raw(flag.to_string()))
}

/// Generates a mapping of optional fields, each present or not, plus,
/// with chaos, up to one unknown key.
fn mapping(chaos: Chaos, fields: Vec<(&'static str, BoxedStrategy<Yaml>)>) -> BoxedStrategy<Yaml> {
    mapping_with(chaos, Vec::new(), fields)
}

/// Like [`mapping`], with `required` fields that are always present.
fn mapping_with(
    chaos: Chaos,
    required: Vec<(&'static str, BoxedStrategy<Yaml>)>,
    optional: Vec<(&'static str, BoxedStrategy<Yaml>)>,
) -> BoxedStrategy<Yaml> {
    let required: Vec<_> = required
        .into_iter()
        .map(|(key, value)| value.prop_map(move |value| (key.to_string(), value)))
        .collect();
    let extra = if chaos.0 == 0 {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(("[a-z]{1,8}", yaml_node()), 0..2).boxed()
    };
    let mapping =
        (required, some_fields(optional), extra).prop_map(|(mut fields, optional, extra)| {
            fields.extend(optional);
            fields.extend(extra);
            Yaml::Map(fields)
        });
    typed(chaos, mapping)
}

// ---------------------------------------------------------------------------
// Catalog import

/// Files a Location target may name: generated files, missing ones, one
/// outside the imported folder, a URL and wildcards.
const LOCATION_TARGETS: &[&str] = &[
    "./a.yaml",
    "a.yaml",
    "sub/b.yml",
    "*.yaml",
    "sub/*",
    "*",
    "missing.yaml",
    "../outside.yaml",
    "sub/../a.yaml",
    "https://catalog.invalid/x.yaml",
    "",
    ".",
    "sub",
];

const KINDS: &[&str] = &[
    "Component",
    "API",
    "Group",
    "User",
    "System",
    "Domain",
    "Resource",
    "Location",
    "component",
    "KİND",
    "",
    "  ",
];

const NAMES: &[&str] = &["service-a", "team-a", "a", "ü/ñ", "a:b", "n\u{0}l", "", " "];

const REFERENCES: &[&str] = &[
    "team-a",
    "group:team-a",
    "group:default/team-a",
    "component:other/service",
    "service-a",
    ":",
    "a:b:c",
    "/",
    "x/",
    "",
    "Ünïcode",
];

/// Generates a reference field: a reference, a list of them, or any node
/// (the import ignores other types).
fn references() -> impl Strategy<Value = Yaml> {
    prop_oneof![
        3 => text_of(REFERENCES),
        3 => texts_of(REFERENCES),
        1 => yaml_node(),
    ]
}

fn metadata(chaos: Chaos) -> BoxedStrategy<Yaml> {
    mapping_with(
        chaos,
        vec![(
            "name",
            typed(
                chaos,
                prop_oneof![
                    6 => text_of(NAMES),
                    1 => (500usize..600).prop_map(|length| Yaml::Quoted("n".repeat(length))),
                ],
            ),
        )],
        vec![
            (
                "namespace",
                typed(chaos, text_of(&["default", "other", "DEFAULT", ""])),
            ),
            ("title", typed(chaos, text_of(&["A title", ""]))),
            ("description", typed(chaos, text_of(&["Does things.", ""]))),
            (
                "tags",
                prop_oneof![3 => texts_of(&["java", "tier-1", "", "İ"]), 1 => yaml_node()].boxed(),
            ),
            ("labels", yaml_node().boxed()),
            ("annotations", yaml_node().boxed()),
            ("links", yaml_node().boxed()),
        ],
    )
}

fn spec(chaos: Chaos) -> BoxedStrategy<Yaml> {
    mapping(
        chaos,
        vec![
            ("type", field(&["service", "website", ""]).boxed()),
            ("lifecycle", field(&["production", "experimental"]).boxed()),
            ("owner", references().boxed()),
            ("system", references().boxed()),
            ("dependsOn", references().boxed()),
            ("providesApis", references().boxed()),
            ("memberOf", references().boxed()),
            ("children", references().boxed()),
            ("members", references().boxed()),
            ("profile", yaml_node().boxed()),
            ("target", typed(chaos, text_of(LOCATION_TARGETS))),
            ("targets", typed(chaos, texts_of(LOCATION_TARGETS))),
            ("definition", yaml_node().boxed()),
        ],
    )
}

/// Generates one Backstage-like document in block style. Without chaos
/// every document has a kind and a name, so the import gets past them.
fn backstage_document(chaos: Chaos) -> impl Strategy<Value = String> {
    // Without chaos the required fields are always there.
    let required = |value: BoxedStrategy<Yaml>| {
        if chaos.0 == 0 {
            value.prop_map(Some).boxed()
        } else {
            prop::option::weighted(0.9, value).boxed()
        }
    };
    (
        required(typed(chaos, text_of(&["backstage.io/v1alpha1", "v1"]))),
        required(typed(chaos, text_of(KINDS))),
        required(metadata(chaos)),
        prop::option::weighted(0.8, spec(chaos)),
        if chaos.0 == 0 {
            Just(Vec::new()).boxed()
        } else {
            extra_fields().boxed()
        },
    )
        .prop_map(|(api_version, kind, metadata, spec, extra)| {
            let mut document = String::new();
            if let Some(api_version) = api_version {
                document.push_str(&format!("apiVersion: {}\n", api_version.render()));
            }
            if let Some(kind) = kind {
                document.push_str(&format!("kind: {}\n", kind.render()));
            }
            for (key, value) in [("metadata", metadata), ("spec", spec)] {
                match value {
                    Some(Yaml::Map(entries)) => {
                        document.push_str(&format!("{key}:\n{}", block(&entries, 2)));
                    }
                    Some(other) => document.push_str(&format!("{key}: {}\n", other.render())),
                    None => {}
                }
            }
            document.push_str(&block(&extra, 0));
            document
        })
}

/// Generates a document that nests up to 119 levels, past serde-saphyr's
/// default limit of 64.
fn deep_document() -> impl Strategy<Value = String> {
    (1usize..120, any::<bool>()).prop_map(|(depth, flow)| {
        let head = "apiVersion: v1\nkind: Component\nmetadata:\n  name: deep\nspec:\n";
        if flow {
            format!("{head}  deep: {}{}\n", "[".repeat(depth), "]".repeat(depth))
        } else {
            let mut text = head.to_string();
            for level in 0..depth {
                text.push_str(&format!("{}d:\n", " ".repeat(2 + 2 * level)));
            }
            text
        }
    })
}

/// Generates anchors that each repeat the previous one ten times: `levels`
/// levels expand to 10^levels strings. From 6 levels on, serde-saphyr's limit of
/// a million replayed events rejects the document, after about half a
/// second in a debug build.
fn alias_bomb() -> impl Strategy<Value = String> {
    prop_oneof![4 => 1usize..6, 1 => 6usize..8].prop_map(|levels| {
        let mut text =
            "apiVersion: v1\nkind: Component\nmetadata:\n  name: bomb\nspec:\n  l0: &l0 \"lol\"\n"
                .to_string();
        for level in 1..=levels {
            let previous = vec![format!("*l{}", level - 1); 10].join(", ");
            text.push_str(&format!("  l{level}: &l{level} [{previous}]\n"));
        }
        text
    })
}

/// Generates a document with one scalar of up to 1.5 MB.
fn huge_scalar_document() -> impl Strategy<Value = String> {
    (1usize..300_000, select(vec!["x", "ü", "word "])).prop_map(|(length, piece)| {
        format!(
            "apiVersion: v1\nkind: Component\nmetadata:\n  name: big\n  description: {}\n",
            quote(&piece.repeat(length))
        )
    })
}

/// Generates text made of YAML's special characters and arbitrary
/// Unicode.
fn yaml_noise() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "\\PC{0,12}",
        1 => select(vec![
            ":", "- ", "---\n", "...\n", "&a ", "*a", "!", "|\n", ">\n", "{", "}", "[", "]",
            "\n", "  ", "\t", "#", "'", "\"", "apiVersion: v1\n", "kind: Component\n", "\u{0}",
        ])
        .prop_map(str::to_string),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

/// Generates a YAML file: one to three documents of the kinds above.
fn catalog_yaml() -> impl Strategy<Value = String> {
    let document = prop_oneof![
        12 => backstage_document(Chaos(0)),
        4 => backstage_document(Chaos(2)),
        1 => deep_document(),
        1 => alias_bomb(),
        1 => huge_scalar_document(),
        2 => yaml_noise(),
    ];
    (
        prop::collection::vec(document, 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(documents, leading, trailing)| {
            let mut text = if leading {
                "---\n".to_string()
            } else {
                String::new()
            };
            text.push_str(&documents.join("\n---\n"));
            if trailing {
                text.push_str("\n...\n");
            }
            text
        })
}

/// Generates a JSON string: one of `plausible`, or any text.
fn json_text(plausible: &[&'static str]) -> impl Strategy<Value = Value> + use<> {
    text_of(plausible).prop_map(|text| match text {
        Yaml::Quoted(text) => Value::String(text),
        other => Value::String(other.render()),
    })
}

/// Generates a JSON value of the expected type, or with chaos sometimes
/// any value.
fn json_typed(chaos: Chaos, value: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    if chaos.0 == 0 {
        value.boxed()
    } else {
        prop_oneof![20 => value, chaos.0 => json_value()].boxed()
    }
}

fn port_blueprint(chaos: Chaos) -> impl Strategy<Value = Value> {
    let property = prop_oneof![
        3 => select(vec!["string", "number", "boolean", "array", "object", ""])
            .prop_map(|kind| json!({ "type": kind })),
        1 => json_value(),
    ];
    let relation = json_typed(
        chaos,
        (json_text(&["service", "_team", "missing"]), any::<bool>())
            .prop_map(|(target, many)| json!({ "target": target, "many": many })),
    );
    (
        json_typed(chaos, json_text(&["service", "_team", " "])),
        json_typed(
            chaos,
            prop::collection::btree_map("[a-z]{1,6}", property, 0..4)
                .prop_map(|properties| json!({ "properties": properties })),
        ),
        json_typed(
            chaos,
            prop::collection::btree_map("[a-z_]{1,6}", relation, 0..3)
                .prop_map(|relations| json!(relations)),
        ),
    )
        .prop_map(|(identifier, schema, relations)| {
            json!({ "identifier": identifier, "title": "T", "schema": schema, "relations": relations })
        })
}

fn port_entity(chaos: Chaos) -> impl Strategy<Value = Value> {
    let identifiers = || {
        prop_oneof![
            json_text(&["a", "b", ""]),
            prop::collection::vec(json_text(&["a", "b"]), 0..3).prop_map(Value::Array),
        ]
    };
    (
        json_typed(chaos, json_text(&["a", "b", "ü"])),
        json_text(&["service", "_team", "missing"]),
        json_typed(
            chaos,
            prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4)
                .prop_map(|properties| json!(properties)),
        ),
        json_typed(
            chaos,
            prop::collection::btree_map("[a-z_]{1,6}", identifiers(), 0..3)
                .prop_map(|relations| json!(relations)),
        ),
        prop::option::of(json_typed(chaos, identifiers())),
    )
        .prop_map(|(identifier, blueprint, properties, relations, team)| {
            let mut entity = json!({
                "identifier": identifier,
                "blueprint": blueprint,
                "properties": properties,
                "relations": relations,
            });
            if let Some(team) = team {
                entity["team"] = team;
            }
            entity
        })
}

/// Generates Port JSON in each accepted layout and in other shapes.
fn port_document(chaos: Chaos) -> impl Strategy<Value = Value> {
    let item = prop_oneof![
        3 => port_blueprint(chaos).boxed(),
        3 => port_entity(chaos).boxed(),
        chaos.0 => json_value().boxed(),
    ];
    let items = prop::collection::vec(item.clone(), 0..5);
    prop_oneof![
        3 => items.clone().prop_map(Value::Array),
        3 => (items.clone(), items).prop_map(|(blueprints, entities)| {
            json!({ "ok": true, "blueprints": blueprints, "entities": entities })
        }),
        1 => item.clone().prop_map(|item| json!({ "entity": item })),
        1 => item.clone().prop_map(|item| json!({ "blueprint": item })),
        1 => item,
        chaos.0 => json_value(),
    ]
}

/// Generates Port JSON text: well-typed, chaotic, or cut short.
fn port_json() -> impl Strategy<Value = String> {
    let document = prop_oneof![3 => port_document(Chaos(0)), 1 => port_document(Chaos(2))];
    (document, prop::option::weighted(0.1, any::<Index>())).prop_map(|(document, cut)| {
        let text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
        match cut {
            Some(at) => text
                .chars()
                .take(at.index(text.chars().count() + 1))
                .collect(),
            None => text,
        }
    })
}

/// Where generated YAML goes, inside the imported folder: nested folders,
/// a skipped folder, a hidden file and a name with a space and accents.
const YAML_FILES: &[&str] = &[
    "a.yaml",
    "sub/b.yml",
    "sub/deeper/c.yaml",
    "catalog info ü.yaml",
    "node_modules/d.yaml",
    ".hidden.yaml",
];

const JSON_FILES: &[&str] = &["blueprints.json", "sub/entities.json", "e.json"];

/// Generates the files of one import: (path inside the folder, contents).
/// Now and then YAML lands in a `.json` file, JSON in a `.yaml` one, or
/// either in a file the import does not read.
fn catalog_files() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let any_name = || {
        select(
            [YAML_FILES, JSON_FILES, &["README.md"]]
                .concat()
                .into_iter()
                .collect::<Vec<_>>(),
        )
    };
    let file = prop_oneof![
        6 => (select(YAML_FILES), catalog_yaml()),
        4 => (select(JSON_FILES), port_json()),
        1 => (any_name(), catalog_yaml()),
        1 => (any_name(), port_json()),
    ];
    prop::collection::vec(file, 1..5)
}

/// Checks an import's outcome: a report, or an [`ImportError`] whose every
/// problem starts with a path inside `boundary`.
fn check_import(
    outcome: anyhow::Result<ImportReport>,
    boundary: &Path,
) -> Result<(), TestCaseError> {
    let error = match outcome {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    let Some(import_error) = error.downcast_ref::<ImportError>() else {
        return Err(TestCaseError::fail(format!(
            "the import failed without naming a file: {error:#}"
        )));
    };
    prop_assert!(!import_error.problems.is_empty());
    let boundary = boundary.display().to_string();
    for problem in &import_error.problems {
        prop_assert!(
            problem.starts_with(&boundary),
            "the problem does not start with a path under {}: {}",
            boundary,
            problem
        );
    }
    Ok(())
}

/// Symbolic links a generated folder may hold: (path inside the folder,
/// target relative to the link).
const LINKS: &[(&str, &str)] = &[
    ("link-out.yaml", "../outside.yaml"),
    ("outside-folder", ".."),
    ("sub/up", ".."),
    ("self.yaml", "a.yaml"),
    ("broken.yaml", "missing.yaml"),
];

#[cfg(unix)]
fn create_link(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("create a symbolic link");
}

/// Symbolic links are a Unix matter here; elsewhere the folders hold none.
#[cfg(not(unix))]
fn create_link(_target: &str, _link: &Path) {}

/// Writes `files` and `links` under `root`, with `outside.yaml` (the
/// component `outside`) beside it.
fn write_folder(root: &Path, files: &[(&str, String)], links: &[(&str, &str)]) {
    for (name, contents) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a file has a folder"))
            .expect("create a folder for a generated file");
        std::fs::write(&path, contents).expect("write a generated file");
    }
    for (name, target) in links {
        let link = root.join(name);
        std::fs::create_dir_all(link.parent().expect("a link has a folder"))
            .expect("create a folder for a link");
        create_link(target, &link);
    }
    let outside = root
        .parent()
        .expect("the root has a parent")
        .join("outside.yaml");
    std::fs::write(
        &outside,
        "apiVersion: v1\nkind: Component\nmetadata:\n  name: outside\n",
    )
    .expect("write the file outside the imported folder");
}

/// Writes a folder as [`write_folder`] does, then imports the folder and
/// its first file into `database` and checks the outcomes.
async fn import_generated(
    database: &TestDatabase,
    root: &Path,
    files: &[(&str, String)],
    links: &[(&str, &str)],
) -> Result<(), TestCaseError> {
    write_folder(root, files, links);

    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let root = root.canonicalize().expect("the root exists");

    let outcome = import_paths(&store, &clock, std::slice::from_ref(&root)).await;
    check_import(outcome, &root)?;

    let first = root.join(files[0].0);
    let outcome = import_paths(&store, &clock, std::slice::from_ref(&first)).await;
    let folder = first.parent().expect("a file has a folder");
    check_import(outcome, &folder.canonicalize().expect("the folder exists"))?;

    let outside = Catalog::new(store.clone())
        .get(&Scope::All, &EntityRef::new("component", "outside"))
        .await
        .expect("the entity query runs");
    prop_assert!(
        outside.is_none(),
        "a file outside the imported folder was read"
    );

    store.close().await;
    Ok(())
}

/// Generated files and symbolic links of one imported folder.
type GeneratedFolder = (
    Vec<(&'static str, String)>,
    Vec<(&'static str, &'static str)>,
);

fn catalog_folders() -> impl Strategy<Value = GeneratedFolder> {
    (
        catalog_files(),
        prop::sample::subsequence(LINKS, 0..=LINKS.len()),
    )
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime")
}

// A case copies the demo database and runs two imports: 60 ms on average in
// a debug build on two cores, up to half a second with an alias bomb or a
// huge scalar. 64 cases take about 4 s.
#[test]
fn catalog_import_names_file_and_stays_inside() {
    let runtime = current_thread_runtime();
    check_property(64, catalog_folders(), |(files, links)| {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let root = folder.path().join("catalog");
        let database = TestDatabase::sqlite_with_demo();
        runtime.block_on(import_generated(&database, &root, &files, &links))
    });
}

// PostgreSQL refuses text that SQLite stores (NUL, index rows over 2,704
// bytes), so the property runs there too. Creating and dropping a database
// per case costs about 150 ms, so it runs 16 cases.
#[test]
fn catalog_import_on_postgres_names_file() {
    let runtime = current_thread_runtime();
    if runtime.block_on(TestDatabase::postgres()).is_none() {
        return;
    }
    check_property(16, catalog_folders(), |(files, links)| {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let root = folder.path().join("catalog");
        let database = runtime
            .block_on(TestDatabase::postgres())
            .expect("PostgreSQL answered a moment ago");
        runtime.block_on(import_generated(&database, &root, &files, &links))
    });
}

on_both_databases!(import_nul_regression);

/// PostgreSQL refused a NUL character in an imported string with a
/// database error that named no file.
async fn import_nul_regression(database: TestDatabase) {
    let folder = tempfile::tempdir().expect("create a temporary folder");
    let root = folder.path().join("catalog");
    let files = [
        (
            "a.yaml",
            "apiVersion: v1\nkind: Component\nmetadata:\n  name: a\n  description: \"x\\0y\"\n"
                .to_string(),
        ),
        (
            "e.json",
            r#"[{"identifier": "e", "blueprint": "service", "properties": {"k\u0000": 1}}]"#
                .to_string(),
        ),
    ];
    write_folder(&root, &files, &[]);
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let error = import_paths(&store, &clock, std::slice::from_ref(&root))
        .await
        .expect_err("a NUL character is rejected");

    let problems = &error
        .downcast_ref::<ImportError>()
        .unwrap_or_else(|| panic!("the error names no file: {error:#}"))
        .problems;
    let root = root.canonicalize().expect("the folder exists");
    assert_eq!(problems.len(), 2, "problems: {problems:#?}");
    for (problem, file) in problems.iter().zip(["a.yaml", "e.json"]) {
        let path = root.join(file).display().to_string();
        assert!(problem.starts_with(&path), "{problem}");
        assert!(problem.contains("NUL character"), "{problem}");
        assert!(
            !problem.contains('\0'),
            "the message holds a raw NUL: {problem:?}"
        );
    }
}

on_both_databases!(import_long_key_regression);

/// PostgreSQL refused an identifier too long for its index with a database
/// error that named no file.
async fn import_long_key_regression(database: TestDatabase) {
    let folder = tempfile::tempdir().expect("create a temporary folder");
    let root = folder.path().join("catalog");
    // Letters in no pattern, so PostgreSQL cannot compress the index row
    // under its limit.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let long_name: String = (0..3_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let files = [(
        "a.yaml",
        format!("apiVersion: v1\nkind: Component\nmetadata:\n  name: {long_name}\n"),
    )];
    write_folder(&root, &files, &[]);
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let error = import_paths(&store, &clock, std::slice::from_ref(&root))
        .await
        .expect_err("a name of 3,000 bytes is rejected");

    let problems = &error
        .downcast_ref::<ImportError>()
        .unwrap_or_else(|| panic!("the error names no file: {error:#}"))
        .problems;
    let path = root
        .canonicalize()
        .expect("the folder exists")
        .join("a.yaml");
    assert_eq!(problems.len(), 1, "problems: {problems:#?}");
    assert!(
        problems[0].starts_with(&path.display().to_string()),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("its identifier has 3000 bytes"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].len() < 400,
        "the message repeats the name: {}",
        problems[0]
    );
}

/// A folder walk followed symbolic links to files and folders outside the
/// imported folder and imported what it found there.
#[cfg(unix)]
#[tokio::test]
async fn import_link_outside_regression() {
    let folder = tempfile::tempdir().expect("create a temporary folder");
    let root = folder.path().join("catalog");
    let files = [(
        "a.yaml",
        "apiVersion: v1\nkind: Component\nmetadata:\n  name: inside\n".to_string(),
    )];
    let links = [
        ("link-out.yaml", "../outside.yaml"),
        ("outside-folder", ".."),
    ];

    write_folder(&root, &files, &links);

    let database = TestDatabase::sqlite();
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let report = import_paths(&store, &clock, std::slice::from_ref(&root))
        .await
        .expect("the folder imports");
    assert_eq!(report.created, 1, "only the component inside is imported");
    let skipped: Vec<&String> = report
        .warnings
        .iter()
        .filter(|warning| warning.contains("skipped: it leads to"))
        .collect();
    assert_eq!(skipped.len(), 2, "warnings: {:#?}", report.warnings);
    assert!(skipped[0].contains("link-out.yaml"), "{}", skipped[0]);
    assert!(skipped[1].contains("outside-folder"), "{}", skipped[1]);
}

// ---------------------------------------------------------------------------
// Agents file

const AGENT_IDS: &[&str] = &["explorer", "incidents", "Explorer", "", "a b", "ü"];

fn agent_entry(chaos: Chaos) -> BoxedStrategy<Yaml> {
    let access = mapping(
        chaos,
        vec![
            (
                "users",
                typed(chaos, texts_of(&["U0ALICE001", "W0ALICE001", "alice"])),
            ),
            (
                "user_groups",
                typed(chaos, texts_of(&["S0ONCALL", "oncall"])),
            ),
            ("channels", typed(chaos, texts_of(&["C0INCIDENTS", "#ops"]))),
        ],
    );
    let system_prompt = prop_oneof![
        3 => text_of(&["Be brief.", "", " "]),
        // The limit is 4,000 characters.
        1 => (3_990usize..4_010).prop_map(|length| Yaml::Quoted("p".repeat(length))),
    ];
    mapping(
        chaos,
        vec![
            ("id", typed(chaos, text_of(AGENT_IDS))),
            ("nickname", typed(chaos, text_of(AGENT_IDS))),
            ("title", typed(chaos, text_of(&["Explorer", ""]))),
            (
                "description",
                typed(chaos, text_of(&["Answers questions.", " "])),
            ),
            ("system_prompt", typed(chaos, system_prompt)),
            (
                "backend",
                typed(
                    chaos,
                    text_of(&["offline", "openai", "anthropic", "OpenAI"]),
                ),
            ),
            ("model", typed(chaos, text_of(&["gpt-4o-mini", ""]))),
            (
                "allowed_tools",
                typed(
                    chaos,
                    texts_of(&[
                        "search_entities",
                        "get_.*",
                        "(",
                        "a{99999}",
                        "\\p{Unknown}",
                        "",
                    ]),
                ),
            ),
            (
                "data_scope",
                typed(chaos, texts_of(&["service", "", "_team"])),
            ),
            (
                "conversation_starters",
                typed(chaos, texts_of(&["Who owns payments?", ""])),
            ),
            (
                "requests_per_minute",
                typed(chaos, number_of(&["0", "1", "60"])),
            ),
            ("access", access),
            (
                "actions",
                typed(chaos, texts_of(&["deploy", "restart", ""])),
            ),
        ],
    )
}

/// Generates an input definition. The inputs mapping takes any YAML, so
/// every field may be any node.
fn input_definition() -> impl Strategy<Value = Yaml> {
    let number = || {
        prop_oneof![
            3 => select(vec!["0", "1", "-1", "1.5", "1e400", "18446744073709551616", "100", "101"])
                .prop_map(|text| Yaml::Raw(text.to_string())),
            1 => yaml_node(),
        ]
    };
    let kinds = [
        "string", "number", "integer", "boolean", "entity", "array", "object",
    ];
    let item = some_fields(vec![
        ("type", field(&kinds).boxed()),
        ("blueprint", field(&["service"]).boxed()),
        ("items", yaml_node().boxed()),
    ])
    .prop_map(Yaml::Map);
    let fields = some_fields(vec![
        ("type", field(&kinds).boxed()),
        ("enum", field_list(&["staging", "production", ""]).boxed()),
        ("pattern", field(&["v?[0-9]+", "(", "a{99999}", ""]).boxed()),
        ("min_length", number().boxed()),
        ("max_length", number().boxed()),
        ("minimum", number().boxed()),
        ("maximum", number().boxed()),
        ("min_items", number().boxed()),
        ("max_items", number().boxed()),
        ("default", yaml_node().boxed()),
        (
            "required",
            prop_oneof![3 => flag(), 1 => yaml_node()].boxed(),
        ),
        ("blueprint", field(&["service", ""]).boxed()),
        ("items", prop_oneof![3 => item, 1 => yaml_node()].boxed()),
        ("title", field(&["Version"]).boxed()),
    ]);
    prop_oneof![6 => fields.prop_map(Yaml::Map), 1 => yaml_node()]
}

/// Generates an executor block of either type, or any node.
fn executor(chaos: Chaos) -> BoxedStrategy<Yaml> {
    let text = |plausible: &[&'static str]| typed(chaos, text_of(plausible));
    let timeout = || typed(chaos, number_of(&["0", "1", "300", "301"]));
    let templates = &[
        "{{inputs.version}}",
        "{{ target.ref }}",
        "{{approver}}-{{run_id}}",
        "{{unknown}}",
        "{{",
        "}}",
        "x",
    ];
    let headers = prop::collection::vec(
        (
            "[A-Za-z-]{1,8}|\\PC{1,4}",
            text_of(&[
                "${WEBHOOK_SECRET}",
                "${MISSING}",
                "${",
                "Bearer ${GITHUB_TOKEN}",
            ]),
        ),
        0..3,
    )
    .prop_map(Yaml::Map);
    let workflow_inputs =
        prop::collection::vec(("[a-z_]{1,8}", text_of(templates)), 0..3).prop_map(Yaml::Map);

    let webhook = mapping_with(
        chaos,
        vec![
            ("type", typed(chaos, Just(Yaml::text("webhook")))),
            (
                "url",
                text(&[
                    "https://hooks.invalid/x",
                    "http://127.0.0.1:1/",
                    "not a url",
                    "",
                ]),
            ),
            ("secret_env", text(&["WEBHOOK_SECRET", "MISSING", ""])),
        ],
        vec![
            ("method", text(&["POST", "GET", "put", ""])),
            ("headers", typed(chaos, headers)),
            ("timeout_secs", timeout()),
        ],
    );
    let github = mapping_with(
        chaos,
        vec![
            ("type", typed(chaos, Just(Yaml::text("github_workflow")))),
            ("owner", text(&["acme", "", "a/b"])),
            ("repository", text(&["deploy", "a/b"])),
            ("workflow", text(&["deploy.yml", "../x", "42", ""])),
            ("ref", text(&["main", "{{inputs.branch}}", ""])),
            ("token_env", text(&["GITHUB_TOKEN", "MISSING"])),
        ],
        vec![
            ("inputs", typed(chaos, workflow_inputs)),
            ("api_url", text(&["https://api.github.invalid", "nope"])),
            ("timeout_secs", timeout()),
        ],
    );
    prop_oneof![4 => webhook, 4 => github, 1 => yaml_node()].boxed()
}

fn action_entry(chaos: Chaos) -> BoxedStrategy<Yaml> {
    let approvers = mapping(
        chaos,
        vec![
            ("users", typed(chaos, texts_of(&["U0ALICE001", "alice"]))),
            ("user_groups", typed(chaos, texts_of(&["S0DEPLOYERS", "x"]))),
            ("owners_of_target", typed(chaos, flag())),
        ],
    );
    let durations = [
        "24h",
        "0",
        "366d",
        "367d",
        "1e400",
        ".5m",
        "-1h",
        "1.5.5h",
        "99999999999999999999d",
        "",
        "0.0000001s",
    ];
    let approval = mapping_with(
        chaos,
        vec![(
            "policy",
            typed(chaos, text_of(&["automatic", "approval_required", "maybe"])),
        )],
        vec![
            ("approvers", approvers),
            ("allow_self_approval", typed(chaos, flag())),
            ("expires_after", typed(chaos, text_of(&durations))),
        ],
    );
    let inputs = prop::collection::vec(("[a-z_]{1,8}|\\PC{1,4}", input_definition()), 0..4)
        .prop_map(Yaml::Map);
    mapping(
        chaos,
        vec![
            (
                "id",
                typed(chaos, text_of(&["deploy", "restart", "Deploy", ""])),
            ),
            ("title", typed(chaos, text_of(&["Deploy", ""]))),
            ("description", typed(chaos, text_of(&["Deploys.", ""]))),
            ("target_blueprint", typed(chaos, text_of(&["service", ""]))),
            ("inputs", typed(chaos, inputs)),
            ("approval", approval),
            ("executor", executor(chaos)),
        ],
    )
}

/// Generates an agents file: the known top-level keys, with agents and
/// actions written as flow mappings in block lists.
fn agents_document(chaos: Chaos) -> impl Strategy<Value = String> {
    let limits = mapping(
        chaos,
        vec![
            (
                "requests_per_minute_per_user",
                typed(chaos, number_of(&["0", "10"])),
            ),
            (
                "requests_per_minute_per_agent",
                typed(chaos, number_of(&["120"])),
            ),
            (
                "daily_tokens_per_user",
                typed(chaos, number_of(&["200000"])),
            ),
            (
                "daily_tokens_per_workspace",
                typed(chaos, number_of(&["18446744073709551615"])),
            ),
        ],
    );
    let retention = mapping(
        chaos,
        vec![
            ("days", typed(chaos, number_of(&["0", "1", "30"]))),
            ("metadata_only", typed(chaos, flag())),
        ],
    );
    let redaction = mapping(
        chaos,
        vec![
            ("secrets", typed(chaos, flag())),
            ("emails", typed(chaos, flag())),
        ],
    );
    let channels = prop::collection::vec(
        ("C0[A-Z0-9]{1,9}|G0X|D1|#ops|\\PC{1,6}", text_of(AGENT_IDS)),
        0..3,
    )
    .prop_map(Yaml::Map);
    let top = some_fields(vec![
        ("default_agent", typed(chaos, text_of(AGENT_IDS))),
        ("channels", typed(chaos, channels)),
        ("limits", limits),
        ("retention", retention),
        ("redaction", redaction),
    ]);
    (
        top,
        prop::option::weighted(0.5, prop::collection::vec(action_entry(chaos), 0..3)),
        prop::option::weighted(0.95, prop::collection::vec(agent_entry(chaos), 0..4)),
    )
        .prop_map(|(top, actions, agents)| {
            let mut text = block(&top, 0);
            for (key, entries) in [("actions", actions), ("agents", agents)] {
                let Some(entries) = entries else {
                    continue;
                };
                if entries.is_empty() {
                    text.push_str(&format!("{key}: []\n"));
                }
                for (index, entry) in entries.iter().enumerate() {
                    if index == 0 {
                        text.push_str(&format!("{key}:\n"));
                    }
                    text.push_str(&format!("  - {}\n", entry.render()));
                }
            }
            text
        })
}

/// Agents file text: structured, noise, deep, anchored or huge.
fn agents_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => agents_document(Chaos(0)),
        4 => agents_document(Chaos(1)),
        1 => yaml_noise(),
        1 => deep_document(),
        1 => alias_bomb(),
        1 => (agents_document(Chaos(0)), agents_document(Chaos(0)))
            .prop_map(|(first, second)| format!("{first}---\n{second}")),
    ]
}

fn agents_env(name: &str) -> Option<String> {
    match name {
        "WEBHOOK_SECRET" => Some("whsec_property_0123456789".to_string()),
        "GITHUB_TOKEN" => Some("ghp_property0123456789".to_string()),
        _ => None,
    }
}

fn tool_names() -> Vec<&'static str> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            ToolRegistry::catalog_tools()
                .names()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .iter()
        .map(String::as_str)
        .collect()
}

/// A path with a space and an accent, so a message that names it is easy
/// to tell from one that does not.
const AGENTS_PATH: &str = "/srv/agent desk/ägents.yaml";

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn agents_file_errors_name_file(text in agents_text()) {
        let path = Path::new(AGENTS_PATH);

        let parsed = AgentsFile::parse(&text, path, &tool_names(), &agents_env);

        match parsed {
            Ok(file) => {
                prop_assert_eq!(file.path.as_deref(), Some(path));
                prop_assert!(!file.agents.is_empty());
            }
            Err(error) => {
                prop_assert_eq!(error.path.as_path(), path);
                prop_assert!(!error.problems.is_empty());
                let message = error.to_string();
                let mut lines = message.lines();
                let heading = lines.next().unwrap_or_default();
                prop_assert!(heading.contains(AGENTS_PATH), "heading: {}", heading);
                for line in lines {
                    prop_assert!(
                        line.trim_start().starts_with(AGENTS_PATH),
                        "a problem does not start with the file: {}",
                        line
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn agents_file_load_names_file(bytes in prop_oneof![
        agents_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..200),
    ]) {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path: PathBuf = folder.path().join("ägents.yaml");
        std::fs::write(&path, &bytes).expect("write the agents file");

        if let Err(error) = AgentsFile::load(Some(&path), &tool_names(), &agents_env) {
            let message = format!("{error:#}");
            prop_assert!(
                message.contains(&path.display().to_string()),
                "the error does not name {}: {}",
                path.display(),
                message
            );
        }
    }
}
