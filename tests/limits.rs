//! Rate limits and token budgets counted in the database, on SQLite and
//! PostgreSQL.

use std::sync::Arc;

use agentdesk::clock::{ManualClock, SharedClock};
use agentdesk::governance::limits::{
    self, LimitExceeded, LimitKind, Limits, RequestKey, UsageReport,
};
use agentdesk::store::Store;
use sqlx::Row;

use crate::helpers::{TestDatabase, manual_clock, on_both_databases, shared};

on_both_databases!(
    user_requests_limit_resets_next_minute,
    agent_requests_limit_resets_next_minute,
    request_limits_separate_per_user,
    request_limits_separate_per_agent,
    refused_request_counts_against_no_window,
    user_token_budget_holds_until_midnight,
    workspace_token_budget_spans_users,
    token_budget_checked_before_requests,
    unset_limits_are_unlimited,
    concurrent_admits_take_exact_limit,
    usage_reports_counts_and_resets,
    purge_deletes_only_ended_windows,
);

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z, where [`manual_clock`] starts.
const NEW_YEAR: i64 = 1_735_689_600_000;
/// 2025-01-01T14:02:18Z.
const AFTERNOON: i64 = NEW_YEAR + (14 * 3600 + 2 * 60 + 18) * 1000;
/// 2025-01-01T14:03:00Z, the end of the minute window around [`AFTERNOON`].
const NEXT_MINUTE: i64 = NEW_YEAR + (14 * 3600 + 3 * 60) * 1000;

fn key<'a>(user: &'a str, agent: &'a str, workspace: &'a str) -> RequestKey<'a> {
    RequestKey {
        user,
        agent,
        workspace,
    }
}

const ALICE: RequestKey<'static> = RequestKey {
    user: "U0ALICE",
    agent: "default",
    workspace: "T0001",
};
const BOB: RequestKey<'static> = RequestKey {
    user: "U0BOB",
    agent: "default",
    workspace: "T0001",
};

struct Fixture {
    store: Store,
    manual: Arc<ManualClock>,
    clock: SharedClock,
}

impl Fixture {
    async fn new(database: &TestDatabase, now: i64) -> Self {
        let manual = manual_clock();
        manual.set(now);
        Self {
            store: database.store().await,
            clock: shared(&manual),
            manual,
        }
    }

    async fn admit(&self, limits: &Limits, key: &RequestKey<'_>) -> Option<LimitExceeded> {
        limits::admit(&self.store, &self.clock, limits, key)
            .await
            .unwrap_or_else(|error| panic!("admit failed for {key:?}: {error:#}"))
    }

    /// Admits `count` requests and panics naming the first one refused.
    async fn admit_all(&self, limits: &Limits, key: &RequestKey<'_>, count: usize) {
        for index in 1..=count {
            if let Some(exceeded) = self.admit(limits, key).await {
                panic!("request {index} of {count} for {key:?} was refused: {exceeded:?}");
            }
        }
    }

    async fn record_tokens(&self, key: &RequestKey<'_>, tokens: u64) {
        limits::record_tokens(&self.store, &self.clock, key, tokens)
            .await
            .unwrap_or_else(|error| panic!("record_tokens failed for {key:?}: {error:#}"));
    }

    async fn usage(&self, limits: &Limits, key: &RequestKey<'_>) -> UsageReport {
        limits::usage(&self.store, &self.clock, limits, key)
            .await
            .unwrap_or_else(|error| panic!("usage failed for {key:?}: {error:#}"))
    }

    async fn used(&self, key: &RequestKey<'_>, kind: LimitKind) -> u64 {
        let report = self.usage(&Limits::default(), key).await;
        report
            .line(kind)
            .unwrap_or_else(|| panic!("the usage report has no {kind:?} line"))
            .used
    }

    async fn counter_rows(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM usage_counters")
            .fetch_one(self.store.pool())
            .await
            .expect("usage_counters can be counted")
            .try_get("n")
            .expect("the count is an integer")
    }
}

fn exceeded(kind: LimitKind, limit: u64, resets_at: i64) -> Option<LimitExceeded> {
    Some(LimitExceeded {
        kind,
        limit,
        resets_at,
    })
}

async fn user_requests_limit_resets_next_minute(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_user: Some(3),
        ..Limits::default()
    };

    fixture.admit_all(&limits, &ALICE, 3).await;
    let refusal = exceeded(LimitKind::UserRequestsPerMinute, 3, NEXT_MINUTE);
    assert_eq!(fixture.admit(&limits, &ALICE).await, refusal);

    fixture.manual.set(NEXT_MINUTE - 1);
    assert_eq!(
        fixture.admit(&limits, &ALICE).await,
        refusal,
        "the last millisecond of the minute is still refused"
    );

    fixture.manual.set(NEXT_MINUTE);
    fixture.admit_all(&limits, &ALICE, 3).await;
    assert_eq!(
        fixture.admit(&limits, &ALICE).await,
        exceeded(LimitKind::UserRequestsPerMinute, 3, NEXT_MINUTE + MINUTE)
    );
}

async fn agent_requests_limit_resets_next_minute(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_agent: Some(2),
        ..Limits::default()
    };
    let carol = key("U0CAROL", "default", "T0001");

    fixture.admit_all(&limits, &ALICE, 1).await;
    fixture.admit_all(&limits, &BOB, 1).await;
    assert_eq!(
        fixture.admit(&limits, &carol).await,
        exceeded(LimitKind::AgentRequestsPerMinute, 2, NEXT_MINUTE)
    );

    fixture.manual.set(NEXT_MINUTE - 1);
    assert!(fixture.admit(&limits, &carol).await.is_some());

    fixture.manual.set(NEXT_MINUTE);
    fixture.admit_all(&limits, &carol, 2).await;
    assert_eq!(
        fixture.admit(&limits, &ALICE).await,
        exceeded(LimitKind::AgentRequestsPerMinute, 2, NEXT_MINUTE + MINUTE)
    );
}

async fn request_limits_separate_per_user(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_user: Some(2),
        ..Limits::default()
    };
    let alice_elsewhere = key(ALICE.user, ALICE.agent, "T0002");

    fixture.admit_all(&limits, &ALICE, 2).await;
    assert!(fixture.admit(&limits, &ALICE).await.is_some());

    fixture.admit_all(&limits, &BOB, 2).await;
    assert!(fixture.admit(&limits, &BOB).await.is_some());

    fixture.admit_all(&limits, &alice_elsewhere, 2).await;
}

async fn request_limits_separate_per_agent(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_agent: Some(2),
        ..Limits::default()
    };
    let triage = |user| key(user, "triage", "T0001");
    let oncall = |user| key(user, "oncall", "T0001");

    fixture.admit_all(&limits, &triage("U0ALICE"), 1).await;
    fixture.admit_all(&limits, &triage("U0BOB"), 1).await;
    assert_eq!(
        fixture.admit(&limits, &triage("U0CAROL")).await,
        exceeded(LimitKind::AgentRequestsPerMinute, 2, NEXT_MINUTE)
    );

    fixture.admit_all(&limits, &oncall("U0ALICE"), 1).await;
    fixture.admit_all(&limits, &oncall("U0CAROL"), 1).await;
    assert!(fixture.admit(&limits, &oncall("U0BOB")).await.is_some());
}

async fn refused_request_counts_against_no_window(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_user: Some(1),
        requests_per_minute_per_agent: Some(3),
        ..Limits::default()
    };
    let carol = key("U0CAROL", "default", "T0001");
    let dave = key("U0DAVE", "default", "T0001");

    fixture.admit_all(&limits, &ALICE, 1).await;
    for _ in 0..3 {
        assert_eq!(
            fixture.admit(&limits, &ALICE).await,
            exceeded(LimitKind::UserRequestsPerMinute, 1, NEXT_MINUTE)
        );
    }
    assert_eq!(
        fixture.used(&ALICE, LimitKind::UserRequestsPerMinute).await,
        1,
        "refusals by the user limit do not count against the user"
    );

    // Had Alice's refusals counted against the agent, Bob would be refused.
    fixture.admit_all(&limits, &BOB, 1).await;
    fixture.admit_all(&limits, &carol, 1).await;
    assert_eq!(
        fixture.admit(&limits, &dave).await,
        exceeded(LimitKind::AgentRequestsPerMinute, 3, NEXT_MINUTE)
    );
    assert_eq!(
        fixture.used(&dave, LimitKind::UserRequestsPerMinute).await,
        0,
        "a refusal by the agent limit does not count against the user"
    );
    assert_eq!(
        fixture.used(&dave, LimitKind::AgentRequestsPerMinute).await,
        3
    );
}

async fn user_token_budget_holds_until_midnight(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        daily_tokens_per_user: Some(100),
        ..Limits::default()
    };
    let midnight = NEW_YEAR + DAY;

    fixture.record_tokens(&ALICE, 99).await;
    fixture.admit_all(&limits, &ALICE, 1).await;

    fixture.record_tokens(&ALICE, 1).await;
    let refusal = exceeded(LimitKind::UserDailyTokens, 100, midnight);
    assert_eq!(fixture.admit(&limits, &ALICE).await, refusal);
    fixture.admit_all(&limits, &BOB, 1).await;

    fixture.manual.set(midnight - 1);
    assert_eq!(fixture.admit(&limits, &ALICE).await, refusal);

    fixture.manual.set(midnight);
    fixture.admit_all(&limits, &ALICE, 1).await;
}

async fn workspace_token_budget_spans_users(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        daily_tokens_per_workspace: Some(100),
        ..Limits::default()
    };
    let carol = key("U0CAROL", "default", "T0001");
    let erin_elsewhere = key("U0ERIN", "default", "T0002");
    let midnight = NEW_YEAR + DAY;

    fixture.record_tokens(&ALICE, 50).await;
    fixture.record_tokens(&BOB, 49).await;
    fixture.admit_all(&limits, &carol, 1).await;

    fixture.record_tokens(&BOB, 1).await;
    for user in [&ALICE, &BOB, &carol] {
        assert_eq!(
            fixture.admit(&limits, user).await,
            exceeded(LimitKind::WorkspaceDailyTokens, 100, midnight),
            "{user:?}"
        );
    }
    fixture.admit_all(&limits, &erin_elsewhere, 1).await;

    fixture.manual.set(midnight);
    fixture.admit_all(&limits, &carol, 1).await;
}

async fn token_budget_checked_before_requests(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_user: Some(1),
        daily_tokens_per_user: Some(10),
        ..Limits::default()
    };

    fixture.admit_all(&limits, &ALICE, 1).await;
    fixture.record_tokens(&ALICE, 10).await;
    assert_eq!(
        fixture.admit(&limits, &ALICE).await,
        exceeded(LimitKind::UserDailyTokens, 10, NEW_YEAR + DAY),
        "a spent budget is reported, not the minute that ends sooner"
    );
}

async fn unset_limits_are_unlimited(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let unlimited = Limits::default();

    fixture.record_tokens(&ALICE, 1_000_000_000).await;
    fixture.admit_all(&unlimited, &ALICE, 100).await;

    let report = fixture.usage(&unlimited, &ALICE).await;
    for line in &report.lines {
        assert_eq!(line.limit, None, "{:?}", line.kind);
    }
    assert_eq!(
        fixture.used(&ALICE, LimitKind::UserRequestsPerMinute).await,
        100,
        "requests are counted even without a limit"
    );
}

async fn concurrent_admits_take_exact_limit(database: TestDatabase) {
    const TASKS: usize = 50;
    const LIMIT: u32 = 10;
    let fixture = Fixture::new(&database, AFTERNOON).await;
    // Two pools on one database stand for two replicas of the service.
    let replicas = [fixture.store.clone(), database.store().await];

    let one_user = Limits {
        requests_per_minute_per_user: Some(LIMIT),
        ..Limits::default()
    };
    let one_agent = Limits {
        requests_per_minute_per_agent: Some(LIMIT),
        ..Limits::default()
    };
    let cases = [
        ("one user", one_user, false),
        ("one agent, many users", one_agent, true),
    ];

    for (case, limits, many_users) in cases {
        let mut tasks = Vec::new();
        for index in 0..TASKS {
            let store = replicas[index % replicas.len()].clone();
            let clock = fixture.clock.clone();
            let limits = limits.clone();
            tasks.push(tokio::spawn(async move {
                let user = if many_users {
                    format!("U{index:04}")
                } else {
                    ALICE.user.to_string()
                };
                let agent = if many_users { "busy" } else { ALICE.agent };
                limits::admit(&store, &clock, &limits, &key(&user, agent, "T0001")).await
            }));
        }

        let mut admitted = 0;
        for task in tasks {
            let refusal = task
                .await
                .expect("the admitting task finishes")
                .unwrap_or_else(|error| panic!("admit failed with {case}: {error:#}"));
            admitted += usize::from(refusal.is_none());
        }
        assert_eq!(
            admitted, LIMIT as usize,
            "{TASKS} concurrent requests with {case} limited to {LIMIT}"
        );
    }

    assert_eq!(
        fixture.used(&ALICE, LimitKind::UserRequestsPerMinute).await,
        u64::from(LIMIT)
    );
    let busy = key("U0000", "busy", "T0001");
    assert_eq!(
        fixture.used(&busy, LimitKind::AgentRequestsPerMinute).await,
        u64::from(LIMIT)
    );
}

async fn usage_reports_counts_and_resets(database: TestDatabase) {
    let fixture = Fixture::new(&database, AFTERNOON).await;
    let limits = Limits {
        requests_per_minute_per_user: Some(5),
        requests_per_minute_per_agent: None,
        daily_tokens_per_user: Some(1000),
        daily_tokens_per_workspace: None,
    };
    let midnight = NEW_YEAR + DAY;

    fixture.admit_all(&limits, &ALICE, 2).await;
    fixture.admit_all(&limits, &BOB, 1).await;
    fixture.record_tokens(&ALICE, 300).await;
    fixture.record_tokens(&BOB, 200).await;

    let report = fixture.usage(&limits, &ALICE).await;
    let expected = [
        (LimitKind::UserRequestsPerMinute, 2, Some(5), NEXT_MINUTE),
        (LimitKind::AgentRequestsPerMinute, 3, None, NEXT_MINUTE),
        (LimitKind::UserDailyTokens, 300, Some(1000), midnight),
        (LimitKind::WorkspaceDailyTokens, 500, None, midnight),
    ];
    assert_eq!(report.lines.len(), expected.len());
    for (line, (kind, used, limit, resets_at)) in report.lines.iter().zip(expected) {
        assert_eq!(line.kind, kind);
        assert_eq!(line.used, used, "{kind:?}");
        assert_eq!(line.limit, limit, "{kind:?}");
        assert_eq!(line.resets_at, resets_at, "{kind:?}");
    }

    let markdown = report.to_markdown(AFTERNOON);
    let lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(
        lines,
        [
            "- Your requests this minute: 2 of 5, resets at 14:03:00 UTC (in 42 s)",
            "- Requests to agent `default` this minute: 3 (no limit), resets at 14:03:00 UTC \
             (in 42 s)",
            "- Your tokens today: 300 of 1000, resets at 00:00:00 UTC (in 9 h 57 min)",
            "- Tokens of this workspace today: 500 (no limit), resets at 00:00:00 UTC \
             (in 9 h 57 min)",
        ]
    );

    fixture.manual.set(NEXT_MINUTE);
    let next_minute = fixture.usage(&limits, &ALICE).await;
    let requests = next_minute
        .line(LimitKind::UserRequestsPerMinute)
        .expect("a line for user requests");
    assert_eq!(requests.used, 0, "a new minute starts at zero");
    let tokens = next_minute
        .line(LimitKind::UserDailyTokens)
        .expect("a line for user tokens");
    assert_eq!(tokens.used, 300, "tokens stay until midnight");
}

async fn purge_deletes_only_ended_windows(database: TestDatabase) {
    let yesterday_noon = NEW_YEAR - DAY / 2;
    let fixture = Fixture::new(&database, yesterday_noon).await;
    let limits = Limits::default();
    let minute_before = AFTERNOON - MINUTE;
    let current_minute_start = NEXT_MINUTE - MINUTE;

    // Two rows per step: user and agent requests, or user and workspace
    // tokens.
    fixture.admit_all(&limits, &ALICE, 1).await;
    fixture.record_tokens(&ALICE, 10).await;
    fixture.manual.set(minute_before);
    fixture.admit_all(&limits, &ALICE, 1).await;
    fixture.manual.set(AFTERNOON);
    fixture.admit_all(&limits, &ALICE, 1).await;
    fixture.record_tokens(&ALICE, 20).await;
    sqlx::query(
        "INSERT INTO usage_counters (counter_key, window_start, count) \
         VALUES ('other:key', 0, 1)",
    )
    .execute(fixture.store.pool())
    .await
    .expect("a foreign counter is inserted");
    assert_eq!(fixture.counter_rows().await, 11);

    let cases = [
        (
            NEW_YEAR - 1,
            2,
            "yesterday's minute has ended by 23:59:59.999",
        ),
        (
            current_minute_start - 1,
            2,
            "yesterday's tokens have ended by 14:01:59.999",
        ),
        (
            current_minute_start,
            2,
            "the minute before has ended by 14:02:00",
        ),
        (AFTERNOON, 0, "the current windows have not ended"),
    ];
    for (before, expected, case) in cases {
        let purged = limits::purge_counters(&fixture.store, before)
            .await
            .unwrap_or_else(|error| panic!("purge before {before} failed: {error:#}"));
        assert_eq!(purged, expected, "{case}");
    }
    assert_eq!(fixture.counter_rows().await, 5);

    assert_eq!(
        fixture.used(&ALICE, LimitKind::UserRequestsPerMinute).await,
        1
    );
    assert_eq!(fixture.used(&ALICE, LimitKind::UserDailyTokens).await, 20);
    assert_eq!(
        fixture.used(&ALICE, LimitKind::WorkspaceDailyTokens).await,
        20
    );
}

#[test]
fn user_message_names_limit_and_reset_time() {
    let minute = |kind| LimitExceeded {
        kind,
        limit: 10,
        resets_at: NEXT_MINUTE,
    };
    let day = |kind| LimitExceeded {
        kind,
        limit: 50_000,
        resets_at: NEW_YEAR + DAY,
    };
    let cases = [
        (
            minute(LimitKind::UserRequestsPerMinute),
            "You have reached the limit of 10 requests per minute per user. \
             It resets at 14:03:00 UTC (in 42 s).",
        ),
        (
            minute(LimitKind::AgentRequestsPerMinute),
            "This agent has reached its limit of 10 requests per minute. \
             It resets at 14:03:00 UTC (in 42 s).",
        ),
        (
            day(LimitKind::UserDailyTokens),
            "You have used your daily budget of 50000 tokens. \
             It resets at 00:00:00 UTC (in 9 h 57 min).",
        ),
        (
            day(LimitKind::WorkspaceDailyTokens),
            "This workspace has used its daily budget of 50000 tokens. \
             It resets at 00:00:00 UTC (in 9 h 57 min).",
        ),
    ];
    for (exceeded, expected) in cases {
        assert_eq!(exceeded.user_message(AFTERNOON), expected);
    }
}

#[test]
fn user_message_dates_distant_resets() {
    let cases = [
        (NEW_YEAR + DAY, NEW_YEAR, "00:00:00 UTC (in 1 d)"),
        (
            NEW_YEAR + DAY + 1000,
            NEW_YEAR,
            "2025-01-02 00:00:01 UTC (in 1 d)",
        ),
        (
            1_709_164_800_000,
            NEW_YEAR - 400 * DAY,
            "2024-02-29 00:00:00 UTC",
        ),
        (4_107_542_400_000, NEW_YEAR, "2100-03-01 00:00:00 UTC"),
        (951_827_696_000, 0, "2000-02-29 12:34:56 UTC"),
        (1_767_225_599_000, NEW_YEAR, "2025-12-31 23:59:59 UTC"),
        (-1000, -10 * DAY, "1969-12-31 23:59:59 UTC"),
    ];
    for (resets_at, now, expected) in cases {
        let message = LimitExceeded {
            kind: LimitKind::UserRequestsPerMinute,
            limit: 1,
            resets_at,
        }
        .user_message(now);
        assert!(
            message.contains(&format!("It resets at {expected}")),
            "resets at {resets_at} seen at {now}: {message}"
        );
    }
}

#[test]
fn user_message_rounds_waits_up_to_seconds() {
    let cases = [
        (400, "(in 1 s)"),
        (0, "(in 0 s)"),
        (-5000, "(in 0 s)"),
        (59_001, "(in 1 min)"),
        (185_000, "(in 3 min 5 s)"),
        (3_600_000, "(in 1 h)"),
        (2 * DAY + 4 * 3_600_000 + 59_000, "(in 2 d 4 h)"),
    ];
    for (wait, expected) in cases {
        let message = LimitExceeded {
            kind: LimitKind::UserRequestsPerMinute,
            limit: 1,
            resets_at: AFTERNOON + wait,
        }
        .user_message(AFTERNOON);
        assert!(
            message.ends_with(&format!("{expected}.")),
            "a wait of {wait} ms: {message}"
        );
    }
}

#[test]
fn reason_names_setting_and_limit() {
    let cases = [
        (
            LimitKind::UserRequestsPerMinute,
            "requests_per_minute_per_user: 10",
        ),
        (
            LimitKind::AgentRequestsPerMinute,
            "requests_per_minute_per_agent: 10",
        ),
        (LimitKind::UserDailyTokens, "daily_tokens_per_user: 10"),
        (
            LimitKind::WorkspaceDailyTokens,
            "daily_tokens_per_workspace: 10",
        ),
    ];
    for (kind, expected) in cases {
        let exceeded = LimitExceeded {
            kind,
            limit: 10,
            resets_at: NEXT_MINUTE,
        };
        assert_eq!(exceeded.reason(), expected);
    }
}

#[test]
fn counter_keys_keep_ids_apart() {
    let plain = key("U1", "default", "T1");
    assert_eq!(
        LimitKind::UserRequestsPerMinute.counter_key(&plain),
        "rpm:user:T1:U1"
    );
    assert_eq!(
        LimitKind::AgentRequestsPerMinute.counter_key(&plain),
        "rpm:agent:T1:default"
    );
    assert_eq!(
        LimitKind::UserDailyTokens.counter_key(&plain),
        "tokens:user:T1:U1"
    );
    assert_eq!(
        LimitKind::WorkspaceDailyTokens.counter_key(&plain),
        "tokens:workspace:T1"
    );

    let split_left = key("c", "default", "a:b");
    let split_right = key("b:c", "default", "a");
    assert_ne!(
        LimitKind::UserRequestsPerMinute.counter_key(&split_left),
        LimitKind::UserRequestsPerMinute.counter_key(&split_right)
    );
}

#[test]
fn limits_yaml_rejects_unknown_fields() {
    let limits: Limits = serde_saphyr::from_str(
        "requests_per_minute_per_user: 10\ndaily_tokens_per_workspace: 2000000\n",
    )
    .expect("valid limits parse");
    assert_eq!(
        limits,
        Limits {
            requests_per_minute_per_user: Some(10),
            daily_tokens_per_workspace: Some(2_000_000),
            ..Limits::default()
        }
    );

    let misspelled = serde_saphyr::from_str::<Limits>("requests_per_minute: 10\n");
    assert!(misspelled.is_err(), "an unknown field is rejected");
}
