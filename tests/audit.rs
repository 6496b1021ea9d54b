//! Audit and governance of invocations on SQLite and PostgreSQL: feedback
//! votes, leases, retention, metadata-only storage, filtered listing, the
//! CSV and JSON Lines export, and the `agentdesk invocations` commands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentdesk::app::{App, Question};
use agentdesk::audit::export::{CSV_COLUMNS, ExportFormat, export};
use agentdesk::audit::time::parse_time;
use agentdesk::clock::{ManualClock, SharedClock, system_clock};
use agentdesk::config::Settings;
use agentdesk::governance::retention::{self, LEASE_NAME, Retention};
use agentdesk::llm::Usage;
use agentdesk::store::Store;
use agentdesk::store::audit::{self, InvocationFilter};
use agentdesk::store::feedback::{self, UnknownInvocation, Vote, VoteChange};
use agentdesk::store::invocations::{
    self, Invocation, NewInvocation, Outcome, Source, Status, StoragePolicy, ToolCallRecord,
};
use agentdesk::store::leases;
use serde_json::Value;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    TestDatabase, describe_output, manual_clock, on_both_databases, on_both_databases_with_demo,
    run_agentdesk, shared,
};

on_both_databases!(
    vote_is_kept_once_per_user,
    changed_vote_replaces_old_one,
    two_users_get_two_votes,
    vote_on_unknown_invocation_is_rejected,
    simultaneous_same_votes_all_succeed,
    lease_blocks_second_holder_while_valid,
    lease_passes_to_second_holder_after_expiry,
    lease_is_reentrant_for_its_holder,
    lease_release_applies_only_to_holder,
    concurrent_lease_takers_have_one_winner,
    concurrent_retention_runs_have_one_winner,
    periodic_retention_runs_on_one_replica,
    retention_deletes_only_old_rows,
    retention_deletes_old_finished_action_runs,
    metadata_only_stores_no_text,
    csv_export_round_trips_every_field,
    jsonl_export_round_trips_every_field,
    csv_export_tells_null_from_empty_text,
    export_range_is_oldest_first,
    list_filters_by_each_field,
    cli_lists_and_exports,
);

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Returns a minimal invocation by `user_id` (none when `None`).
fn new_invocation(id: &str, agent: &str, user_id: Option<&str>, prompt: &str) -> NewInvocation {
    NewInvocation {
        id: id.to_string(),
        source: Source::Slack,
        agent: agent.to_string(),
        team_id: Some("T0001".to_string()),
        channel_id: Some("C0001".to_string()),
        thread_ts: Some("1735689600.000100".to_string()),
        message_ts: Some("1735689600.000200".to_string()),
        user_id: user_id.map(str::to_string),
        prompt: prompt.to_string(),
        backend: "offline".to_string(),
        model: "offline".to_string(),
    }
}

fn outcome(status: Status) -> Outcome {
    Outcome {
        status,
        answer: None,
        error: None,
        refusal: None,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
        },
        tool_calls: Vec::new(),
    }
}

fn completed(answer: &str) -> Outcome {
    Outcome {
        answer: Some(answer.to_string()),
        ..outcome(Status::Completed)
    }
}

/// Starts an invocation at the clock's time and, given an outcome,
/// finishes it one second later.
async fn record(
    store: &Store,
    clock: &Arc<ManualClock>,
    new: &NewInvocation,
    end: Option<&Outcome>,
) {
    let shared_clock = shared(clock);
    invocations::start(store, &shared_clock, new, StoragePolicy::Full)
        .await
        .unwrap();
    if let Some(end) = end {
        clock.advance(Duration::from_secs(1));
        let finished = invocations::finish(store, &shared_clock, &new.id, end, StoragePolicy::Full)
            .await
            .unwrap();
        assert!(finished, "{} is finished once", new.id);
    }
}

/// Records a completed invocation `id` by `U0001` at the clock's time.
async fn record_simple(store: &Store, clock: &Arc<ManualClock>, id: &str) {
    let new = new_invocation(id, "default", Some("U0001"), "Who owns payments?");
    record(store, clock, &new, Some(&completed("Billing."))).await;
}

async fn get(store: &Store, id: &str) -> Invocation {
    invocations::get(store, id)
        .await
        .expect("the invocation loads")
        .unwrap_or_else(|| panic!("invocation {id} is stored"))
}

async fn count_rows(store: &Store, table: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

// Feedback.

async fn vote_is_kept_once_per_user(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    record_simple(&store, &clock, "inv-1").await;

    let first = feedback::record_vote(&store, &shared_clock, "inv-1", "U0001", Vote::Up)
        .await
        .unwrap();
    assert_eq!(first, VoteChange::New);
    let again = feedback::record_vote(&store, &shared_clock, "inv-1", "U0001", Vote::Up)
        .await
        .unwrap();
    assert_eq!(again, VoteChange::Unchanged);

    let votes = feedback::votes_for(&store, "inv-1").await.unwrap();
    assert_eq!(votes, [("U0001".to_string(), Vote::Up)]);
    assert_eq!(count_rows(&store, "feedback").await, 1);
}

async fn changed_vote_replaces_old_one(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    record_simple(&store, &clock, "inv-1").await;
    let first_at = shared_clock.now_millis();

    feedback::record_vote(&store, &shared_clock, "inv-1", "U0001", Vote::Up)
        .await
        .unwrap();
    clock.advance(MINUTE);
    let change = feedback::record_vote(&store, &shared_clock, "inv-1", "U0001", Vote::Down)
        .await
        .unwrap();
    assert_eq!(change, VoteChange::Changed);

    let votes = feedback::votes_for(&store, "inv-1").await.unwrap();
    assert_eq!(votes, [("U0001".to_string(), Vote::Down)]);

    let row = sqlx::query("SELECT vote, created_at, updated_at FROM feedback")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>("vote").unwrap(), -1);
    assert_eq!(row.try_get::<i64, _>("created_at").unwrap(), first_at);
    assert_eq!(
        row.try_get::<i64, _>("updated_at").unwrap(),
        first_at + 60_000,
        "the change moves updated_at"
    );
    assert_eq!(count_rows(&store, "feedback").await, 1);
}

async fn two_users_get_two_votes(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    record_simple(&store, &clock, "inv-1").await;

    for (user, vote) in [("U0002", Vote::Down), ("U0001", Vote::Up)] {
        let change = feedback::record_vote(&store, &shared_clock, "inv-1", user, vote)
            .await
            .unwrap();
        assert_eq!(change, VoteChange::New, "the first vote of {user}");
    }

    let votes = feedback::votes_for(&store, "inv-1").await.unwrap();
    assert_eq!(
        votes,
        [
            ("U0001".to_string(), Vote::Up),
            ("U0002".to_string(), Vote::Down)
        ]
    );
    assert_eq!(count_rows(&store, "feedback").await, 2);
}

async fn vote_on_unknown_invocation_is_rejected(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let error = feedback::record_vote(&store, &clock, "missing", "U0001", Vote::Up)
        .await
        .expect_err("a vote needs an invocation");
    assert!(
        error.is::<UnknownInvocation>(),
        "the error is typed: {error:#}"
    );
    assert_eq!(count_rows(&store, "feedback").await, 0);
    assert!(
        feedback::votes_for(&store, "missing")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A double click sends the same vote twice at once; both succeed and one
/// vote is stored.
async fn simultaneous_same_votes_all_succeed(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    record_simple(&store, &clock, "inv-1").await;
    let shared_clock: SharedClock = clock.clone();

    let mut clicks = Vec::new();
    for _ in 0..8 {
        let (store, clock) = (store.clone(), shared_clock.clone());
        clicks.push(tokio::spawn(async move {
            feedback::record_vote(&store, &clock, "inv-1", "U0001", Vote::Up).await
        }));
    }
    let mut new_votes = 0;
    for click in clicks {
        let change = click.await.unwrap().expect("every click succeeds");
        if change == VoteChange::New {
            new_votes += 1;
        }
    }
    assert!(new_votes >= 1, "one click stored the vote");
    assert_eq!(
        feedback::votes_for(&store, "inv-1").await.unwrap(),
        vec![("U0001".to_string(), Vote::Up)]
    );
}

// Leases.

const TTL: Duration = Duration::from_secs(30);

async fn lease_blocks_second_holder_while_valid(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);

    assert!(
        leases::try_acquire(&store, &shared_clock, "job", "replica-a", TTL)
            .await
            .unwrap(),
        "a free lease is taken"
    );
    clock.advance(TTL - Duration::from_millis(1));
    assert!(
        !leases::try_acquire(&store, &shared_clock, "job", "replica-b", TTL)
            .await
            .unwrap(),
        "a valid lease is not taken by another holder"
    );
    assert!(
        leases::try_acquire(&store, &shared_clock, "other-job", "replica-b", TTL)
            .await
            .unwrap(),
        "leases of other names are independent"
    );

    let lease = leases::get(&store, "job").await.unwrap().unwrap();
    assert_eq!(lease.holder, "replica-a");
}

async fn lease_passes_to_second_holder_after_expiry(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let start = shared_clock.now_millis();

    assert!(
        leases::try_acquire(&store, &shared_clock, "job", "replica-a", TTL)
            .await
            .unwrap()
    );
    clock.advance(TTL);
    assert!(
        leases::try_acquire(&store, &shared_clock, "job", "replica-b", TTL)
            .await
            .unwrap(),
        "an expired lease is taken by another holder"
    );
    assert!(
        !leases::try_acquire(&store, &shared_clock, "job", "replica-a", TTL)
            .await
            .unwrap(),
        "the former holder lost it"
    );

    let lease = leases::get(&store, "job").await.unwrap().unwrap();
    assert_eq!(lease.holder, "replica-b");
    assert_eq!(lease.expires_at, start + 2 * 30_000);
}

async fn lease_is_reentrant_for_its_holder(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let start = shared_clock.now_millis();

    assert!(
        leases::try_acquire(&store, &shared_clock, "job", "replica-a", TTL)
            .await
            .unwrap()
    );
    clock.advance(Duration::from_secs(10));
    assert!(
        leases::try_acquire(&store, &shared_clock, "job", "replica-a", TTL)
            .await
            .unwrap(),
        "the holder takes its own valid lease again"
    );

    let lease = leases::get(&store, "job").await.unwrap().unwrap();
    assert_eq!(
        lease.expires_at,
        start + 40_000,
        "taking it again extends it"
    );
    clock.advance(Duration::from_secs(25));
    assert!(
        !leases::try_acquire(&store, &shared_clock, "job", "replica-b", TTL)
            .await
            .unwrap(),
        "the extended lease still holds past the first expiry"
    );
}

async fn lease_release_applies_only_to_holder(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    assert!(
        leases::try_acquire(&store, &clock, "job", "replica-a", TTL)
            .await
            .unwrap()
    );
    leases::release(&store, "job", "replica-b").await.unwrap();
    assert!(
        !leases::try_acquire(&store, &clock, "job", "replica-b", TTL)
            .await
            .unwrap(),
        "another holder cannot release the lease"
    );

    leases::release(&store, "job", "replica-a").await.unwrap();
    assert!(leases::get(&store, "job").await.unwrap().is_none());
    assert!(
        leases::try_acquire(&store, &clock, "job", "replica-b", TTL)
            .await
            .unwrap(),
        "a released lease is free"
    );
}

async fn concurrent_lease_takers_have_one_winner(database: TestDatabase) {
    const TAKERS: usize = 16;
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);

    // First race for a lease no one holds, then for one that has expired.
    for round in ["free", "expired"] {
        if round == "expired" {
            clock.advance(TTL);
        }
        let mut handles = Vec::new();
        for index in 0..TAKERS {
            let (store, clock) = (store.clone(), shared_clock.clone());
            handles.push(tokio::spawn(async move {
                let holder = format!("{round}-{index}");
                leases::try_acquire(&store, &clock, "job", &holder, TTL).await
            }));
        }
        let mut winners = 0;
        for handle in handles {
            winners += usize::from(handle.await.unwrap().unwrap());
        }
        assert_eq!(winners, 1, "{TAKERS} takers of a {round} lease");
    }
}

// Retention.

async fn concurrent_retention_runs_have_one_winner(database: TestDatabase) {
    const REPLICAS: usize = 8;
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    for index in 0..5 {
        record_simple(&store, &clock, &format!("old-{index}")).await;
    }
    clock.advance(31 * DAY);

    let mut handles = Vec::new();
    for index in 0..REPLICAS {
        let (store, clock) = (store.clone(), shared_clock.clone());
        handles.push(tokio::spawn(async move {
            let holder = format!("replica-{index}");
            retention::run_with_lease(&store, &clock, &Retention::default(), &holder, TTL).await
        }));
    }

    let mut reports = Vec::new();
    for handle in handles {
        if let Some(report) = handle.await.unwrap().unwrap() {
            reports.push(report);
        }
    }
    assert_eq!(reports.len(), 1, "only the lease holder runs");
    assert_eq!(reports[0].invocations, 5);
    assert_eq!(count_rows(&store, "invocations").await, 0);
}

/// Waits until `condition` holds, checking every 10 ms for up to 10 s.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn lease_holder(store: &Store) -> Option<String> {
    leases::get(store, LEASE_NAME)
        .await
        .unwrap()
        .map(|lease| lease.holder)
}

async fn periodic_retention_runs_on_one_replica(database: TestDatabase) {
    const INTERVAL: Duration = Duration::from_millis(20);
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    record_simple(&store, &clock, "old-1").await;
    clock.advance(31 * DAY);

    let spawn_replica = |holder: &str, stop: &CancellationToken| {
        tokio::spawn(retention::run_periodically(
            store.clone(),
            shared_clock.clone(),
            Retention::default(),
            holder.to_string(),
            INTERVAL,
            stop.clone(),
        ))
    };
    let stop_a = CancellationToken::new();
    let replica_a = spawn_replica("replica-a", &stop_a);
    wait_until("replica-a holds the lease", || async {
        lease_holder(&store).await.as_deref() == Some("replica-a")
    })
    .await;
    wait_until("replica-a deleted the old invocation", || async {
        count_rows(&store, "invocations").await == 0
    })
    .await;

    // The clock does not move, so replica-a's renewed lease stays valid and
    // replica-b must never take it while replica-a is alive.
    let stop_b = CancellationToken::new();
    let replica_b = spawn_replica("replica-b", &stop_b);
    for _ in 0..10 {
        tokio::time::sleep(INTERVAL).await;
        assert_eq!(lease_holder(&store).await.as_deref(), Some("replica-a"));
    }

    // A replica that dies without releasing: replica-b waits for expiry.
    replica_a.abort();
    let _ = replica_a.await;
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(
        lease_holder(&store).await.as_deref(),
        Some("replica-a"),
        "the dead holder's lease holds until it expires"
    );
    record_simple(&store, &clock, "old-2").await;
    clock.advance(31 * DAY);
    wait_until("replica-b takes over the expired lease", || async {
        lease_holder(&store).await.as_deref() == Some("replica-b")
    })
    .await;
    wait_until("replica-b deleted the second old invocation", || async {
        count_rows(&store, "invocations").await == 0
    })
    .await;

    stop_b.cancel();
    replica_b.await.unwrap();
    assert_eq!(
        lease_holder(&store).await,
        None,
        "a stopped replica releases the lease"
    );
}

async fn retention_deletes_only_old_rows(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);

    record_simple(&store, &clock, "old-1").await;
    record_simple(&store, &clock, "old-2").await;
    let boundary_start = {
        clock.advance(MINUTE);
        shared_clock.now_millis()
    };
    record_simple(&store, &clock, "boundary").await;
    for (id, user, vote) in [
        ("old-1", "U0001", Vote::Up),
        ("old-1", "U0002", Vote::Down),
        ("old-2", "U0001", Vote::Down),
        ("boundary", "U0001", Vote::Up),
    ] {
        feedback::record_vote(&store, &shared_clock, id, user, vote)
            .await
            .unwrap();
    }
    clock.advance(20 * DAY);
    record_simple(&store, &clock, "recent").await;
    feedback::record_vote(&store, &shared_clock, "recent", "U0003", Vote::Up)
        .await
        .unwrap();

    // Exactly 30 days after "boundary" started: it is not older than 30 days.
    clock.set(boundary_start + 30 * 86_400_000);
    let now = shared_clock.now_millis();
    for (window_start, key) in [
        (now - 3 * 86_400_000, "tokens:old"),
        (now - 86_400_000, "tokens:yesterday"),
        (now - 60_000, "requests:now"),
    ] {
        sqlx::query(
            "INSERT INTO usage_counters (counter_key, window_start, count) VALUES ($1, $2, 1)",
        )
        .bind(key)
        .bind(window_start)
        .execute(store.pool())
        .await
        .unwrap();
    }

    let report = retention::run_once(&store, &shared_clock, &Retention::default())
        .await
        .unwrap();
    assert_eq!(report.cutoff, boundary_start);
    assert_eq!(report.invocations, 2, "old-1 and old-2");
    assert_eq!(report.feedback, 3, "the votes on old-1 and old-2");
    assert_eq!(report.usage_counters, 1, "the window of three days ago");

    for id in ["old-1", "old-2"] {
        assert!(
            invocations::get(&store, id).await.unwrap().is_none(),
            "{id}"
        );
        assert!(feedback::votes_for(&store, id).await.unwrap().is_empty());
    }
    for id in ["boundary", "recent"] {
        assert!(
            invocations::get(&store, id).await.unwrap().is_some(),
            "{id}"
        );
        assert_eq!(feedback::votes_for(&store, id).await.unwrap().len(), 1);
    }
    assert_eq!(count_rows(&store, "usage_counters").await, 2);

    let again = retention::run_once(&store, &shared_clock, &Retention::default())
        .await
        .unwrap();
    assert_eq!(
        (again.invocations, again.feedback, again.usage_counters),
        (0, 0, 0),
        "a second run finds nothing"
    );

    clock.advance(Duration::from_millis(1));
    let shorter = Retention {
        days: 10,
        ..Retention::default()
    };
    let report = retention::run_once(&store, &shared_clock, &shorter)
        .await
        .unwrap();
    assert_eq!(report.invocations, 1, "boundary is now older than 10 days");
    assert!(invocations::get(&store, "recent").await.unwrap().is_some());

    let never = Retention {
        days: 0,
        ..Retention::default()
    };
    let error = retention::run_once(&store, &shared_clock, &never)
        .await
        .expect_err("0 days is rejected");
    assert!(error.to_string().contains("at least 1 day"), "{error}");
    assert_eq!(count_rows(&store, "invocations").await, 1);
}

#[test]
fn retention_settings_default_and_reject_unknown_fields() {
    let defaults: Retention = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, Retention::default());
    assert_eq!(defaults.days, 30);
    assert!(!defaults.metadata_only);

    let custom: Retention = serde_json::from_str(r#"{"days": 7, "metadata_only": true}"#).unwrap();
    assert_eq!(
        custom,
        Retention {
            days: 7,
            metadata_only: true
        }
    );

    let error = serde_json::from_str::<Retention>(r#"{"dayz": 7}"#).unwrap_err();
    assert!(error.to_string().contains("unknown field"), "{error}");
}

// Metadata-only storage.

fn tool_call(name: &str, arguments: &str) -> ToolCallRecord {
    ToolCallRecord {
        name: name.to_string(),
        arguments: arguments.to_string(),
        duration_ms: 42,
        result_bytes: 1_024,
        truncated: false,
        error: None,
    }
}

async fn raw_text_columns(store: &Store, id: &str) -> (String, Option<String>, Value) {
    let row = sqlx::query("SELECT prompt, answer, tool_calls_json FROM invocations WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
    let tool_calls: String = row.try_get("tool_calls_json").unwrap();
    (
        row.try_get("prompt").unwrap(),
        row.try_get("answer").unwrap(),
        serde_json::from_str(&tool_calls).unwrap(),
    )
}

async fn metadata_only_stores_no_text(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let new = new_invocation("inv-1", "default", Some("U0001"), "Who owns payments?");
    invocations::start(&store, &shared_clock, &new, StoragePolicy::MetadataOnly)
        .await
        .unwrap();
    let (prompt, _, _) = raw_text_columns(&store, "inv-1").await;
    assert_eq!(prompt, "", "the prompt is blank from the start");

    clock.advance(Duration::from_secs(2));
    let end = Outcome {
        error: Some("get_entity: not found".to_string()),
        tool_calls: vec![
            tool_call("search_entities", r#"{"query": "payments"}"#),
            tool_call("get_entity", r#"{"entity": "payments"}"#),
        ],
        ..completed("Billing owns payments.")
    };
    invocations::finish(
        &store,
        &shared_clock,
        "inv-1",
        &end,
        StoragePolicy::MetadataOnly,
    )
    .await
    .unwrap();

    let (prompt, answer, tool_calls) = raw_text_columns(&store, "inv-1").await;
    assert_eq!(prompt, "");
    assert_eq!(answer, None);
    let arguments: Vec<&Value> = tool_calls
        .as_array()
        .unwrap()
        .iter()
        .map(|call| &call["arguments"])
        .collect();
    assert_eq!(arguments, [&Value::from(""), &Value::from("")]);

    let stored = get(&store, "inv-1").await;
    assert_eq!(stored.status, Status::Completed);
    assert_eq!(stored.agent, "default");
    assert_eq!(stored.user_id.as_deref(), Some("U0001"));
    assert_eq!(stored.channel_id.as_deref(), Some("C0001"));
    assert_eq!(stored.tokens_in, 100);
    assert_eq!(stored.tokens_out, 20);
    assert_eq!(stored.error.as_deref(), Some("get_entity: not found"));
    assert_eq!(stored.finished_at, Some(stored.started_at + 2_000));
    let kept: Vec<(&str, u64)> = stored
        .tool_calls
        .iter()
        .map(|call| (call.name.as_str(), call.duration_ms))
        .collect();
    assert_eq!(kept, [("search_entities", 42), ("get_entity", 42)]);

    let full = new_invocation("inv-2", "default", Some("U0001"), "Who owns checkout?");
    record(&store, &clock, &full, Some(&completed("Storefront."))).await;
    let (prompt, answer, _) = raw_text_columns(&store, "inv-2").await;
    assert_eq!(prompt, "Who owns checkout?", "the full policy keeps text");
    assert_eq!(answer.as_deref(), Some("Storefront."));
}

async fn app_in_metadata_only_mode_stores_no_text(database: TestDatabase) {
    let vars = HashMap::from([("DATABASE_URL".to_string(), database.url().to_string())]);
    let settings = Settings::from_map(&vars).unwrap();
    let mut app = App::start(settings, system_clock()).await.unwrap();
    app.metadata_only = true;

    let answer = app
        .answer(Question::from_cli("Who owns the payments service?", None))
        .await
        .unwrap();
    assert_eq!(answer.status, Status::Completed, "{answer:?}");
    assert!(!answer.answer.is_empty(), "the asker still gets the answer");
    assert!(
        !answer.tool_calls.is_empty(),
        "the offline backend looked something up"
    );

    let (prompt, stored_answer, tool_calls) =
        raw_text_columns(&app.store, &answer.invocation_id).await;
    assert_eq!(prompt, "");
    assert_eq!(stored_answer, None);
    for call in tool_calls.as_array().unwrap() {
        assert_eq!(call["arguments"], "", "{call}");
        assert!(!call["name"].as_str().unwrap().is_empty());
    }
    let stored = get(&app.store, &answer.invocation_id).await;
    assert_eq!(stored.tool_calls.len(), answer.tool_calls.len());
    assert_eq!(stored.tokens_in as u64, answer.tokens_in);
}

// Export.

/// Records invocations whose text trips up naive CSV and JSON writers, with
/// votes, one second apart, and returns their ids oldest first.
async fn record_awkward_invocations(store: &Store, clock: &Arc<ManualClock>) -> Vec<String> {
    let shared_clock = shared(clock);

    let mut answered = new_invocation(
        "awkward-1",
        "default",
        Some("U0001"),
        "Who owns \"payments\", billing, or checkout?\nAnd why?",
    );
    answered.source = Source::Api;
    let mut tool = tool_call(
        "search_entities",
        "{\"query\": \"pay, \\\"ments\\\"\\n\", \"limit\": 5}",
    );
    tool.error = Some("bad, \"argument\"\nsecond line".to_string());
    tool.truncated = true;
    let answered_end = Outcome {
        tool_calls: vec![tool, tool_call("get_entity", "{\"entity\": \"payments\"")],
        ..completed("Billing owns it 🎉, see \"docs\";\r\nline two\n")
    };
    record(store, clock, &answered, Some(&answered_end)).await;

    clock.advance(Duration::from_secs(1));
    let refused = new_invocation(
        "awkward-2",
        "ops",
        Some("U0002"),
        "  leading and trailing spaces  ",
    );
    let refused_end = Outcome {
        refusal: Some("rate limit: 10 requests, per minute".to_string()),
        ..outcome(Status::Refused)
    };
    record(store, clock, &refused, Some(&refused_end)).await;

    clock.advance(Duration::from_secs(1));
    let mut running = new_invocation(
        "awkward-3",
        "default",
        None,
        "ünïcödé 日本語 👩‍👩‍👧 naïve\r\nsecond line",
    );
    running.source = Source::Cli;
    running.team_id = None;
    running.channel_id = None;
    running.thread_ts = None;
    running.message_ts = None;
    record(store, clock, &running, None).await;

    clock.advance(Duration::from_secs(1));
    let failed = new_invocation("awkward-4", "default", Some("U0001"), "a,b,c");
    let failed_end = Outcome {
        error: Some("model: 429 \"slow down\"\nretry, later".to_string()),
        ..outcome(Status::Failed)
    };
    record(store, clock, &failed, Some(&failed_end)).await;

    clock.advance(Duration::from_secs(1));
    let formula = new_invocation("awkward-5", "default", Some("U0003"), "=SUM(A1:A3)");
    record(
        store,
        clock,
        &formula,
        Some(&completed("'quoted' \\ back\tslash\nnext line")),
    )
    .await;

    for (id, user, vote) in [
        ("awkward-1", "U0001", Vote::Up),
        ("awkward-1", "U0002", Vote::Up),
        ("awkward-1", "U0003", Vote::Down),
        ("awkward-4", "U0001", Vote::Down),
    ] {
        feedback::record_vote(store, &shared_clock, id, user, vote)
            .await
            .unwrap();
    }

    (1..=5).map(|index| format!("awkward-{index}")).collect()
}

async fn export_to_string(
    store: &Store,
    filter: &InvocationFilter,
    format: ExportFormat,
) -> String {
    let mut out = Vec::new();
    export(store, filter, format, &mut out).await.unwrap();
    String::from_utf8(out).expect("the export is UTF-8")
}

/// Parses a CSV export into each invocation with its up and down vote
/// counts.
fn parse_csv(text: &str) -> Vec<(Invocation, i64, i64)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, CSV_COLUMNS);

    reader
        .records()
        .map(|record| {
            let record = record.expect("a valid CSV record");
            let field = |name: &str| {
                let index = header.iter().position(|column| column == name).unwrap();
                record[index].to_string()
            };
            let optional = |name: &str| Some(field(name)).filter(|value| !value.is_empty());
            let number = |name: &str| field(name).parse::<i64>().unwrap();
            let invocation = Invocation {
                id: field("id"),
                source: field("source"),
                agent: field("agent"),
                team_id: optional("team_id"),
                channel_id: optional("channel_id"),
                thread_ts: optional("thread_ts"),
                message_ts: optional("message_ts"),
                user_id: optional("user_id"),
                prompt: field("prompt"),
                answer: optional("answer"),
                status: Status::parse(&field("status")).unwrap(),
                error: optional("error"),
                refusal: optional("refusal"),
                backend: field("backend"),
                model: field("model"),
                tokens_in: number("tokens_in"),
                tokens_out: number("tokens_out"),
                tool_calls: serde_json::from_str(&field("tool_calls")).unwrap(),
                started_at: number("started_at"),
                finished_at: optional("finished_at").map(|value| value.parse().unwrap()),
            };
            (invocation, number("feedback_up"), number("feedback_down"))
        })
        .collect()
}

async fn csv_export_round_trips_every_field(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let ids = record_awkward_invocations(&store, &clock).await;

    let text = export_to_string(&store, &InvocationFilter::default(), ExportFormat::Csv).await;
    let rows = parse_csv(&text);

    assert_eq!(rows.len(), ids.len(), "{text}");
    for ((exported, up, down), id) in rows.iter().zip(&ids) {
        assert_eq!(exported, &get(&store, id).await, "{id}");
        let votes = feedback::votes_for(&store, id).await.unwrap();
        let count = |wanted: Vote| votes.iter().filter(|(_, vote)| *vote == wanted).count();
        assert_eq!(*up as usize, count(Vote::Up), "up votes of {id}");
        assert_eq!(*down as usize, count(Vote::Down), "down votes of {id}");
    }
    assert_eq!((rows[0].1, rows[0].2), (2, 1), "awkward-1 has 2 up, 1 down");
    assert!(rows[1].0.refusal.is_some(), "the refusal is exported");
    assert!(text.starts_with("id,source,agent,"), "{text}");
    assert!(text.ends_with("\r\n"), "records end with CRLF");
}

async fn jsonl_export_round_trips_every_field(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let ids = record_awkward_invocations(&store, &clock).await;

    let text = export_to_string(&store, &InvocationFilter::default(), ExportFormat::Jsonl).await;
    let lines: Vec<&str> = text.lines().collect();

    assert_eq!(lines.len(), ids.len(), "one line per invocation: {text}");
    for (line, id) in lines.iter().zip(&ids) {
        let exported: Invocation = serde_json::from_str(line).unwrap();
        assert_eq!(exported, get(&store, id).await, "{id}");

        let value: Value = serde_json::from_str(line).unwrap();
        let votes: Vec<(String, Vote)> = value["feedback"]
            .as_array()
            .unwrap()
            .iter()
            .map(|vote| {
                (
                    vote["user"].as_str().unwrap().to_string(),
                    serde_json::from_value(vote["vote"].clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            votes,
            feedback::votes_for(&store, id).await.unwrap(),
            "{id}"
        );
        let up = votes.iter().filter(|(_, vote)| *vote == Vote::Up).count();
        assert_eq!(value["feedback_up"], up, "{id}");
        assert_eq!(value["feedback_down"], votes.len() - up, "{id}");
        assert!(
            value["tool_calls"].is_array(),
            "tool calls are an array: {line}"
        );
    }
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["feedback"][2]["vote"], "down");
    assert_eq!(first["status"], "completed");
}

async fn csv_export_tells_null_from_empty_text(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let new = new_invocation("inv-1", "default", None, "question");
    record(&store, &clock, &new, Some(&completed(""))).await;

    let text = export_to_string(&store, &InvocationFilter::default(), ExportFormat::Csv).await;
    let row = text.lines().nth(1).expect("a data row");
    let fields: Vec<&str> = row.trim_end_matches('\r').split(',').collect();
    let column = |name: &str| {
        CSV_COLUMNS
            .iter()
            .position(|column| *column == name)
            .unwrap()
    };

    assert_eq!(fields.len(), CSV_COLUMNS.len(), "{row}");
    assert_eq!(
        fields[column("answer")],
        "\"\"",
        "an empty answer is quoted"
    );
    assert_eq!(
        fields[column("error")],
        "",
        "a NULL error is an empty field"
    );
    assert_eq!(fields[column("user_id")], "");
    assert_eq!(fields[column("tool_calls")], "[]");
}

async fn export_range_is_oldest_first(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let mut starts = Vec::new();
    for index in 0..4 {
        starts.push(shared_clock.now_millis());
        record_simple(&store, &clock, &format!("inv-{index}")).await;
        clock.advance(Duration::from_secs(60));
    }

    let filter = InvocationFilter {
        since: Some(starts[1]),
        until: Some(starts[3]),
        ..InvocationFilter::default()
    };
    let text = export_to_string(&store, &filter, ExportFormat::Jsonl).await;
    let ids: Vec<String> = text
        .lines()
        .map(|line| serde_json::from_str::<Invocation>(line).unwrap().id)
        .collect();
    assert_eq!(
        ids,
        ["inv-1", "inv-2"],
        "since is inclusive, until exclusive"
    );

    let mut visited = Vec::new();
    let count = audit::for_each_record(&store, &InvocationFilter::default(), |record| {
        visited.push(record.invocation.id);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(count, 4);
    assert_eq!(visited, ["inv-0", "inv-1", "inv-2", "inv-3"]);

    let empty = InvocationFilter {
        since: Some(starts[3] + 1),
        ..InvocationFilter::default()
    };
    let text = export_to_string(&store, &empty, ExportFormat::Csv).await;
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
}

// Listing.

async fn list_filters_by_each_field(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);
    let start = shared_clock.now_millis();
    let hour = 3_600_000;

    let cases = [
        ("h0", "default", "U0001", Status::Completed),
        ("h1", "ops", "U0002", Status::Failed),
        ("h2", "default", "U0002", Status::Refused),
        ("h3", "ops", "U0001", Status::Completed),
        ("h4", "default", "U0001", Status::InProgress),
    ];
    for (index, (id, agent, user, status)) in cases.iter().enumerate() {
        clock.set(start + index as i64 * hour);
        let new = new_invocation(id, agent, Some(user), "question");
        let end = (*status != Status::InProgress).then(|| outcome(*status));
        record(&store, &clock, &new, end.as_ref()).await;
    }

    let ids = |filter: InvocationFilter| {
        let store = store.clone();
        async move {
            audit::list(&store, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|invocation| invocation.id)
                .collect::<Vec<_>>()
        }
    };
    let all = InvocationFilter::default;

    assert_eq!(
        ids(all()).await,
        ["h4", "h3", "h2", "h1", "h0"],
        "newest first"
    );
    assert_eq!(
        ids(InvocationFilter {
            agent: Some("ops".into()),
            ..all()
        })
        .await,
        ["h3", "h1"]
    );
    assert_eq!(
        ids(InvocationFilter {
            user: Some("U0002".into()),
            ..all()
        })
        .await,
        ["h2", "h1"]
    );
    assert_eq!(
        ids(InvocationFilter {
            status: Some(Status::Completed),
            ..all()
        })
        .await,
        ["h3", "h0"]
    );
    assert_eq!(
        ids(InvocationFilter {
            since: Some(start + hour),
            until: Some(start + 3 * hour),
            ..all()
        })
        .await,
        ["h2", "h1"],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        ids(InvocationFilter {
            agent: Some("default".into()),
            user: Some("U0001".into()),
            since: Some(start + 1),
            ..all()
        })
        .await,
        ["h4"]
    );
    assert_eq!(
        ids(InvocationFilter {
            limit: Some(2),
            ..all()
        })
        .await,
        ["h4", "h3"],
        "the limit keeps the newest"
    );
    assert!(
        ids(InvocationFilter {
            agent: Some("nobody".into()),
            ..all()
        })
        .await
        .is_empty()
    );
}

#[test]
fn time_arguments_accept_three_forms() {
    let now = 1_764_547_200_000; // 2025-12-01T00:00:00Z
    let cases = [
        ("2026-12-01T00:00:00Z", 1_796_083_200_000),
        ("2026-12-01T01:30:00+01:00", 1_796_085_000_000),
        ("2026-12-01", 1_796_083_200_000),
        ("30m", now - 30 * 60_000),
        ("24h", now - 86_400_000),
        ("7d", now - 7 * 86_400_000),
        ("2w", now - 14 * 86_400_000),
        ("90s", now - 90_000),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_time(input, now).unwrap(), expected, "{input}");
    }

    for input in ["yesterday", "", "7", "d", "-7d", "7x", "2026-13-01", "1.5h"] {
        let error = parse_time(input, now).expect_err(input).to_string();
        assert!(error.contains("2026-12-01T00:00:00Z"), "{input}: {error}");
        assert!(error.contains("7d"), "{input}: {error}");
    }
}

// The command line.

async fn cli_lists_and_exports(database: TestDatabase) {
    let store = database.store().await;
    let clock = manual_clock();
    let ids = record_awkward_invocations(&store, &clock).await;
    store.close().await;

    let workdir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database.url())];
    let run = |args: &[&str]| {
        let output = run_agentdesk(workdir.path(), &env, args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            describe_output(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let table = run(&["invocations", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STARTED (UTC)"), "{table}");
    assert_eq!(lines.len(), ids.len() + 1, "{table}");
    assert!(lines[1].contains("awkward-5"), "newest first: {table}");
    assert!(lines[1].starts_with("2025-01-01 00:00:"), "{table}");
    assert!(table.contains("refused"), "{table}");

    let listed: Vec<Invocation> =
        serde_json::from_str(&run(&["invocations", "list", "--json", "--agent", "ops"])).unwrap();
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|invocation| invocation.id.as_str())
        .collect();
    assert_eq!(listed_ids, ["awkward-2"]);

    let listed: Vec<Invocation> = serde_json::from_str(&run(&[
        "invocations",
        "list",
        "--json",
        "--user",
        "U0001",
        "--status",
        "failed",
        "--since",
        "2025-01-01",
        "--until",
        "2025-01-02T00:00:00Z",
        "--limit",
        "10",
    ]))
    .unwrap();
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|invocation| invocation.id.as_str())
        .collect();
    assert_eq!(listed_ids, ["awkward-4"]);

    let csv_text = run(&["invocations", "export", "--format", "csv"]);
    let exported: Vec<String> = parse_csv(&csv_text)
        .into_iter()
        .map(|(invocation, _, _)| invocation.id)
        .collect();
    assert_eq!(exported, ids, "oldest first");

    let path = workdir.path().join("export.jsonl");
    let message = run(&[
        "invocations",
        "export",
        "--format",
        "jsonl",
        "--since",
        "100000d",
        "--output",
        path.to_str().unwrap(),
    ]);
    assert!(message.contains("Exported 5 invocation(s)"), "{message}");
    let jsonl = std::fs::read_to_string(&path).unwrap();
    assert_eq!(jsonl.lines().count(), 5, "{jsonl}");

    let recent_only = run(&[
        "invocations",
        "export",
        "--format",
        "jsonl",
        "--since",
        "1h",
    ]);
    assert_eq!(recent_only, "", "the data is from 2025, older than an hour");

    let bad = run_agentdesk(
        workdir.path(),
        &env,
        &["invocations", "list", "--since", "yesterday"],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid --since"), "{stderr}");
    assert!(stderr.contains("\"yesterday\""), "{stderr}");
    assert!(stderr.contains("2026-12-01T00:00:00Z"), "{stderr}");

    let bad_status = run_agentdesk(
        workdir.path(),
        &env,
        &["invocations", "list", "--status", "done"],
    );
    assert!(!bad_status.status.success());
    let stderr = String::from_utf8_lossy(&bad_status.stderr);
    assert!(
        stderr.contains("expected in_progress, completed"),
        "{stderr}"
    );

    let bad_format = run_agentdesk(
        workdir.path(),
        &env,
        &["invocations", "export", "--format", "xml"],
    );
    assert!(!bad_format.status.success());
    assert!(
        String::from_utf8_lossy(&bad_format.stderr).contains("csv"),
        "{}",
        describe_output(&bad_format)
    );
}

fn new_run(
    id: &str,
    status: agentdesk::store::action_runs::RunStatus,
) -> agentdesk::store::action_runs::NewRun {
    agentdesk::store::action_runs::NewRun {
        id: id.to_string(),
        action_id: "deploy".to_string(),
        agent: "ops".to_string(),
        invocation_id: None,
        inputs: serde_json::Map::new(),
        target_ref: Some("service:checkout".to_string()),
        target_title: None,
        requester: "U0ALICE001".to_string(),
        team_id: None,
        channel_id: None,
        thread_ts: None,
        status,
        decider: None,
        expires_at: None,
    }
}

/// Finished runs older than the retention are deleted; runs still waiting
/// or running are kept, whatever their age.
async fn retention_deletes_old_finished_action_runs(database: TestDatabase) {
    use agentdesk::store::action_runs::{self, Decision, RunEnd, RunStatus};
    let store = database.store().await;
    let clock = manual_clock();
    let shared_clock = shared(&clock);

    for id in ["old-done", "old-rejected", "old-waiting", "old-running"] {
        let status = if id == "old-running" {
            RunStatus::InProgress
        } else {
            RunStatus::WaitingForApproval
        };
        action_runs::create(&store, &shared_clock, &new_run(id, status))
            .await
            .unwrap();
    }
    let end = RunEnd {
        success: true,
        summary: "HTTP 200".to_string(),
        http_status: Some(200),
        link: None,
        detail: Value::Null,
    };
    action_runs::decide(
        &store,
        &shared_clock,
        "old-done",
        "U0BOB00002",
        Decision::Approve,
    )
    .await
    .unwrap()
    .expect("decided");
    action_runs::finish(&store, &shared_clock, "old-done", &end)
        .await
        .unwrap()
        .expect("finished");
    action_runs::decide(
        &store,
        &shared_clock,
        "old-rejected",
        "U0BOB00002",
        Decision::Reject,
    )
    .await
    .unwrap()
    .expect("rejected");
    clock.advance(25 * DAY);
    action_runs::create(
        &store,
        &shared_clock,
        &new_run("recent", RunStatus::InProgress),
    )
    .await
    .unwrap();
    action_runs::finish(&store, &shared_clock, "recent", &end)
        .await
        .unwrap()
        .expect("finished");
    clock.advance(6 * DAY);

    let report = retention::run_once(&store, &shared_clock, &Retention::default())
        .await
        .unwrap();
    assert_eq!(report.action_runs, 2, "old-done and old-rejected");
    for (id, kept) in [
        ("old-done", false),
        ("old-rejected", false),
        ("old-waiting", true),
        ("old-running", true),
        ("recent", true),
    ] {
        assert_eq!(
            action_runs::get(&store, id).await.unwrap().is_some(),
            kept,
            "{id}"
        );
    }
}

on_both_databases_with_demo!(app_in_metadata_only_mode_stores_no_text);
