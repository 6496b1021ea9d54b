//! The store on SQLite and PostgreSQL: migrations, invocation records and
//! Slack dedupe keys.

use std::sync::Arc;
use std::time::Duration;

use agentdesk::clock::{ManualClock, SharedClock};
use agentdesk::llm::Usage;
use agentdesk::store::invocations::{
    self, NewInvocation, Outcome, Source, Status, StoragePolicy, ToolCallRecord, Turn,
};
use agentdesk::store::{Dialect, Store, dedupe};
use sqlx::Row;

use crate::helpers::{DatabaseKind, TestDatabase, manual_clock, on_both_databases, shared};

on_both_databases!(
    catalog_statistics_refresh_succeeds,
    migrations_apply_on_fresh_database_and_again,
    invocation_round_trip_keeps_tool_calls,
    finish_leaves_interrupted_row_alone,
    thread_turns_are_oldest_first_and_per_thread,
    interrupt_stale_touches_only_old_in_progress,
    claim_message_drops_redeliveries_and_twins,
    purge_expired_removes_only_old_keys,
    concurrent_claims_have_one_winner,
);

fn new_invocation(
    id: &str,
    channel: Option<&str>,
    thread: Option<&str>,
    prompt: &str,
) -> NewInvocation {
    NewInvocation {
        id: id.to_string(),
        source: Source::Slack,
        agent: "default".to_string(),
        team_id: Some("T0001".to_string()),
        channel_id: channel.map(str::to_string),
        thread_ts: thread.map(str::to_string),
        message_ts: Some("1735689600.000100".to_string()),
        user_id: Some("U0001".to_string()),
        prompt: prompt.to_string(),
        backend: "openai".to_string(),
        model: "gpt-test".to_string(),
    }
}

fn completed(answer: &str) -> Outcome {
    Outcome {
        status: Status::Completed,
        answer: Some(answer.to_string()),
        error: None,
        refusal: None,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
        },
        tool_calls: Vec::new(),
    }
}

/// Refreshing planner statistics runs outside a transaction on both
/// databases; PostgreSQL rejects VACUUM inside one.
async fn catalog_statistics_refresh_succeeds(database: TestDatabase) {
    let store = database.store().await;
    store
        .refresh_catalog_statistics()
        .await
        .expect("statistics are refreshed");
    store.close().await;
}

async fn get(store: &Store, id: &str) -> invocations::Invocation {
    invocations::get(store, id)
        .await
        .expect("the invocation loads")
        .unwrap_or_else(|| panic!("invocation {id} is not stored"))
}

async fn migrations_apply_on_fresh_database_and_again(database: TestDatabase) {
    let first = database.store().await;
    let expected = match database.kind() {
        DatabaseKind::Sqlite => Dialect::Sqlite,
        DatabaseKind::Postgres => Dialect::Postgres,
    };
    assert_eq!(first.dialect(), expected);
    first.close().await;

    let second = database.store().await;
    let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(second.pool())
        .await
        .expect("the migrations table exists")
        .try_get("n")
        .expect("a count");
    assert_eq!(
        applied,
        agentdesk::store::migrations::count() as i64,
        "each migration is recorded once"
    );

    for table in [
        "blueprints",
        "entities",
        "entity_relations",
        "entity_property_values",
        "search_terms",
        "search_vocab",
        "search_grams",
        "invocations",
        "usage_counters",
        "feedback",
        "leases",
        "action_runs",
        "slack_dedupe",
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let rows: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(second.pool())
            .await
            .unwrap_or_else(|error| panic!("table {table} is missing: {error}"))
            .try_get("n")
            .expect("a count");
        assert_eq!(rows, 0, "table {table} starts empty");
    }
    second.close().await;
}

async fn invocation_round_trip_keeps_tool_calls(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let new = new_invocation(
        "inv-1",
        Some("C0001"),
        Some("1735689600.000100"),
        "Who owns payments?",
    );

    invocations::start(&store, &shared_clock, &new, StoragePolicy::Full)
        .await
        .unwrap();
    let started = get(&store, "inv-1").await;
    assert_eq!(started.status, Status::InProgress);
    assert_eq!(started.started_at, 1_735_689_600_000);
    assert_eq!(started.finished_at, None);
    assert_eq!(started.answer, None);
    assert!(started.tool_calls.is_empty());

    let tool_calls = vec![
        ToolCallRecord {
            name: "search_entities".to_string(),
            arguments: r#"{"query":"payments"}"#.to_string(),
            duration_ms: 12,
            result_bytes: 2_048,
            truncated: false,
            error: None,
        },
        ToolCallRecord {
            name: "get_entity".to_string(),
            arguments: r#"{"entity": "payments"#.to_string(),
            duration_ms: 0,
            result_bytes: 90,
            truncated: true,
            error: Some("the arguments are not valid JSON".to_string()),
        },
    ];
    clock.advance(Duration::from_millis(1_500));
    let outcome = Outcome {
        tool_calls: tool_calls.clone(),
        usage: Usage {
            input_tokens: 1_234,
            output_tokens: 56,
        },
        ..completed("Billing owns payments.")
    };
    let finished = invocations::finish(
        &store,
        &shared_clock,
        "inv-1",
        &outcome,
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    assert!(finished, "finish applies to a row in progress");

    let stored = get(&store, "inv-1").await;
    assert_eq!(stored.id, "inv-1");
    assert_eq!(stored.source, "slack");
    assert_eq!(stored.agent, "default");
    assert_eq!(stored.team_id.as_deref(), Some("T0001"));
    assert_eq!(stored.channel_id.as_deref(), Some("C0001"));
    assert_eq!(stored.thread_ts.as_deref(), Some("1735689600.000100"));
    assert_eq!(stored.user_id.as_deref(), Some("U0001"));
    assert_eq!(stored.prompt, "Who owns payments?");
    assert_eq!(stored.answer.as_deref(), Some("Billing owns payments."));
    assert_eq!(stored.status, Status::Completed);
    assert_eq!(stored.error, None);
    assert_eq!(stored.backend, "openai");
    assert_eq!(stored.model, "gpt-test");
    assert_eq!(stored.tokens_in, 1_234);
    assert_eq!(stored.tokens_out, 56);
    assert_eq!(stored.tool_calls, tool_calls);
    assert_eq!(stored.started_at, 1_735_689_600_000);
    assert_eq!(stored.finished_at, Some(1_735_689_601_500));

    let again = invocations::finish(
        &store,
        &shared_clock,
        "inv-1",
        &completed("other"),
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    assert!(!again, "a finished row is finished only once");
    assert_eq!(
        get(&store, "inv-1").await.answer.as_deref(),
        Some("Billing owns payments.")
    );
    assert_eq!(
        invocations::count(&store, Some(Status::Completed))
            .await
            .unwrap(),
        1
    );
    assert!(invocations::get(&store, "missing").await.unwrap().is_none());
}

async fn finish_leaves_interrupted_row_alone(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let new = new_invocation("inv-2", None, None, "How many services are there?");
    invocations::start(&store, &clock, &new, StoragePolicy::Full)
        .await
        .unwrap();

    let interrupted = invocations::interrupt(&store, &clock, "inv-2", "shut down")
        .await
        .unwrap();
    assert!(interrupted);

    let finished = invocations::finish(
        &store,
        &clock,
        "inv-2",
        &completed("16 services."),
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    assert!(!finished, "finish must not apply to an interrupted row");

    let stored = get(&store, "inv-2").await;
    assert_eq!(stored.status, Status::Interrupted);
    assert_eq!(stored.error.as_deref(), Some("shut down"));
    assert_eq!(stored.answer, None);
    assert_eq!(stored.tokens_in, 0);
}

/// Records one invocation a second after the previous one, finished with
/// `status` unless that is `None`.
async fn record_turn(
    store: &Store,
    clock: &Arc<ManualClock>,
    id: &str,
    channel: &str,
    thread_ts: Option<&str>,
    status: Option<Status>,
) {
    clock.advance(Duration::from_secs(1));
    let shared_clock = shared(clock);
    let prompt = format!("question {id}");
    let new = new_invocation(id, Some(channel), thread_ts, &prompt);
    invocations::start(store, &shared_clock, &new, StoragePolicy::Full)
        .await
        .unwrap();

    let outcome = match status {
        None => return,
        Some(Status::Completed) => completed(&format!("answer {id}")),
        Some(other) => Outcome {
            status: other,
            answer: None,
            error: Some("failed".to_string()),
            ..completed("")
        },
    };
    invocations::finish(store, &shared_clock, id, &outcome, StoragePolicy::Full)
        .await
        .unwrap();
}

async fn thread_turns_are_oldest_first_and_per_thread(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let thread = Some("1735689600.000100");

    let completed_turn = Some(Status::Completed);
    for (id, channel, thread_ts, status) in [
        ("t1", "C0001", thread, completed_turn),
        (
            "other-thread",
            "C0001",
            Some("1735689999.000200"),
            completed_turn,
        ),
        ("other-channel", "C0002", thread, completed_turn),
        ("t2", "C0001", thread, completed_turn),
        ("failed", "C0001", thread, Some(Status::Failed)),
        ("running", "C0001", thread, None),
        ("t3", "C0001", thread, completed_turn),
    ] {
        record_turn(&store, &clock, id, channel, thread_ts, status).await;
    }
    let before_t4 = shared_clock.now_millis() + 1;
    record_turn(&store, &clock, "t4", "C0001", thread, completed_turn).await;

    let turns = invocations::thread_turns(&store, "C0001", "1735689600.000100", before_t4, 10)
        .await
        .unwrap();
    let expected: Vec<Turn> = ["t1", "t2", "t3"]
        .iter()
        .map(|id| Turn {
            question: format!("question {id}"),
            answer: format!("answer {id}"),
        })
        .collect();
    assert_eq!(turns, expected);

    let latest_two = invocations::thread_turns(&store, "C0001", "1735689600.000100", before_t4, 2)
        .await
        .unwrap();
    let questions: Vec<&str> = latest_two
        .iter()
        .map(|turn| turn.question.as_str())
        .collect();
    assert_eq!(
        questions,
        ["question t2", "question t3"],
        "the latest turns, oldest first"
    );

    let none = invocations::thread_turns(&store, "C0003", "1735689600.000100", i64::MAX, 10)
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn interrupt_stale_touches_only_old_in_progress(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);

    invocations::start(
        &store,
        &shared_clock,
        &new_invocation("old-running", None, None, "q"),
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    invocations::start(
        &store,
        &shared_clock,
        &new_invocation("old-done", None, None, "q"),
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    invocations::finish(
        &store,
        &shared_clock,
        "old-done",
        &completed("a"),
        StoragePolicy::Full,
    )
    .await
    .unwrap();
    clock.advance(Duration::from_secs(600));
    let cutoff = shared_clock.now_millis();
    clock.advance(Duration::from_secs(1));
    invocations::start(
        &store,
        &shared_clock,
        &new_invocation("new-running", None, None, "q"),
        StoragePolicy::Full,
    )
    .await
    .unwrap();

    let interrupted =
        invocations::interrupt_stale(&store, &shared_clock, cutoff, "process restarted")
            .await
            .unwrap();
    assert_eq!(interrupted, ["old-running"]);

    let old = get(&store, "old-running").await;
    assert_eq!(old.status, Status::Interrupted);
    assert_eq!(old.error.as_deref(), Some("process restarted"));
    assert_eq!(old.finished_at, Some(shared_clock.now_millis()));
    assert_eq!(get(&store, "old-done").await.status, Status::Completed);
    assert_eq!(get(&store, "new-running").await.status, Status::InProgress);

    let again = invocations::interrupt_stale(&store, &shared_clock, cutoff, "again")
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "an interrupted row is not interrupted twice"
    );
}

async fn claim_message_drops_redeliveries_and_twins(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let first = dedupe::claim_message(&store, &clock, Some("Ev001"), "C0001", "1735689600.000100")
        .await
        .unwrap();
    assert!(first, "the first delivery is claimed");

    let retry = dedupe::claim_message(&store, &clock, Some("Ev001"), "C0001", "1735689600.000100")
        .await
        .unwrap();
    assert!(!retry, "a redelivery with the same event id is dropped");

    let twin = dedupe::claim_message(&store, &clock, Some("Ev002"), "C0001", "1735689600.000100")
        .await
        .unwrap();
    assert!(
        !twin,
        "a twin (new event id, same channel and ts) is dropped"
    );

    let twin_retry =
        dedupe::claim_message(&store, &clock, Some("Ev002"), "C0001", "1735689600.000100")
            .await
            .unwrap();
    assert!(!twin_retry, "a redelivery of the twin is dropped too");

    let same_ts_other_channel =
        dedupe::claim_message(&store, &clock, Some("Ev003"), "C0002", "1735689600.000100")
            .await
            .unwrap();
    assert!(
        same_ts_other_channel,
        "the same ts in another channel is another message"
    );

    // The first delivery of this message was lost; its retry is the first
    // copy seen, so it is claimed.
    let first_seen_retry =
        dedupe::claim_message(&store, &clock, Some("Ev004"), "C0001", "1735689700.000300")
            .await
            .unwrap();
    assert!(
        first_seen_retry,
        "a redelivery seen for the first time is claimed"
    );

    let without_event_id =
        dedupe::claim_message(&store, &clock, None, "C0001", "1735689800.000400")
            .await
            .unwrap();
    assert!(without_event_id);
    let without_event_id_again =
        dedupe::claim_message(&store, &clock, None, "C0001", "1735689800.000400")
            .await
            .unwrap();
    assert!(!without_event_id_again);
}

async fn purge_expired_removes_only_old_keys(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let ttl = Duration::from_secs(3_600);

    assert!(
        dedupe::claim(&store, &shared_clock, "action:old")
            .await
            .unwrap()
    );
    assert!(
        dedupe::claim_message(&store, &shared_clock, Some("EvOld"), "C0001", "1.000100")
            .await
            .unwrap()
    );
    clock.advance(Duration::from_secs(2 * 3_600));
    assert!(
        dedupe::claim(&store, &shared_clock, "action:new")
            .await
            .unwrap()
    );
    clock.advance(Duration::from_secs(60));

    let purged = dedupe::purge_expired(&store, &shared_clock, ttl)
        .await
        .unwrap();
    assert_eq!(
        purged, 3,
        "the old action key and both keys of the old message"
    );

    assert!(
        dedupe::claim(&store, &shared_clock, "action:old")
            .await
            .unwrap(),
        "a purged key can be claimed again"
    );
    assert!(
        dedupe::claim_message(&store, &shared_clock, Some("EvOld"), "C0001", "1.000100")
            .await
            .unwrap(),
        "a purged message can be claimed again"
    );
    assert!(
        !dedupe::claim(&store, &shared_clock, "action:new")
            .await
            .unwrap(),
        "a key younger than the time to live stays"
    );

    let nothing_left = dedupe::purge_expired(&store, &shared_clock, ttl)
        .await
        .unwrap();
    assert_eq!(nothing_left, 0);
}

async fn concurrent_claims_have_one_winner(database: TestDatabase) {
    const CLAIMERS: usize = 32;
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let mut same_event = Vec::new();
    let mut twins = Vec::new();
    let mut same_key = Vec::new();
    for index in 0..CLAIMERS {
        let (store_a, clock_a) = (store.clone(), clock.clone());
        same_event.push(tokio::spawn(async move {
            dedupe::claim_message(&store_a, &clock_a, Some("EvSame"), "C0001", "2.000100").await
        }));
        let (store_b, clock_b) = (store.clone(), clock.clone());
        twins.push(tokio::spawn(async move {
            let event_id = format!("EvTwin{index}");
            dedupe::claim_message(&store_b, &clock_b, Some(&event_id), "C0001", "3.000100").await
        }));
        let (store_c, clock_c) = (store.clone(), clock.clone());
        same_key.push(tokio::spawn(async move {
            dedupe::claim(&store_c, &clock_c, "action:same").await
        }));
    }

    for (case, handles) in [
        ("the same event id", same_event),
        ("twins of one message", twins),
        ("one key", same_key),
    ] {
        let mut winners = 0;
        for handle in handles {
            let claimed = handle
                .await
                .expect("the claiming task finishes")
                .unwrap_or_else(|error| panic!("a claim of {case} failed: {error:#}"));
            winners += usize::from(claimed);
        }
        assert_eq!(winners, 1, "{CLAIMERS} concurrent claims of {case}");
    }
}
