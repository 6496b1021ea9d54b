//! Rate limits and token budgets, counted in the database.
//!
//! A *limit* caps what one user, one agent or one workspace may use in a
//! fixed *window*: requests in a one-minute window aligned to the minute, or
//! model tokens in a UTC day. A limit set to `None` is unlimited. Each limit
//! reads one *counter*, a row of `usage_counters` named by its counter key
//! and the start of its window:
//!
//! | limit | counter key | window |
//! | --- | --- | --- |
//! | `requests_per_minute_per_user` | `rpm:user:<workspace>:<user>` | minute |
//! | `requests_per_minute_per_agent` | `rpm:agent:<workspace>:<agent>` | minute |
//! | `daily_tokens_per_user` | `tokens:user:<workspace>:<user>` | UTC day |
//! | `daily_tokens_per_workspace` | `tokens:workspace:<workspace>` | UTC day |
//!
//! Each id in a key has `%` written as `%25` and `:` as `%3A`, so an id
//! that contains `:` cannot make two different users, agents or workspaces
//! share a key. A counter window starts at a
//! multiple of its length in milliseconds since the Unix epoch and resets at
//! the next multiple: the next minute, or 00:00 UTC.
//!
//! [`admit`] runs before a request is answered. It checks the daily token
//! budgets first, because a spent budget stays refused until the next UTC day
//! and telling the user to wait a minute would mislead them. Then it counts
//! the request against both per-minute windows in one transaction. A refused
//! request counts against no window: when either per-minute limit is exceeded
//! the transaction rolls back, so a user over their own limit cannot use up
//! the agent's requests, and a retry after a refusal costs nothing. Counters
//! are kept even for unlimited limits, so [`usage`] can show them.
//! [`record_tokens`] adds the tokens of a finished invocation, and
//! [`purge_counters`] deletes windows that have ended.
//!
//! Because the counters live in the database, every replica sharing it sees
//! the same counts, and the per-minute limits are exact under concurrency:
//! each increment is an atomic upsert that returns the new count, and the
//! counter stays locked until the transaction ends (its row on PostgreSQL,
//! the whole database on SQLite).

mod report;
mod utc;

use anyhow::{Context, Result};
use sqlx::Row;
use sqlx::any::Any;
use tracing::{debug, instrument};

use crate::clock::SharedClock;
use crate::store::Store;

pub use report::{UsageLine, UsageReport};

const MINUTE_MILLIS: i64 = 60_000;
const DAY_MILLIS: i64 = 86_400_000;

/// Limits from the agents file; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests one user may make in a minute, across agents.
    pub requests_per_minute_per_user: Option<u32>,
    /// Requests one agent may take in a minute, across users.
    pub requests_per_minute_per_agent: Option<u32>,
    /// Model tokens one user may use in a UTC day.
    pub daily_tokens_per_user: Option<u64>,
    /// Model tokens all users of one workspace may use in a UTC day.
    pub daily_tokens_per_workspace: Option<u64>,
}

/// One of the four limits in [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    UserRequestsPerMinute,
    AgentRequestsPerMinute,
    UserDailyTokens,
    WorkspaceDailyTokens,
}

impl LimitKind {
    /// Every kind, in the order [`UsageReport`] lists them.
    pub const ALL: [LimitKind; 4] = [
        Self::UserRequestsPerMinute,
        Self::AgentRequestsPerMinute,
        Self::UserDailyTokens,
        Self::WorkspaceDailyTokens,
    ];

    /// Returns the name of this limit's field in [`Limits`] and in the agents
    /// file.
    pub fn setting_name(self) -> &'static str {
        match self {
            Self::UserRequestsPerMinute => "requests_per_minute_per_user",
            Self::AgentRequestsPerMinute => "requests_per_minute_per_agent",
            Self::UserDailyTokens => "daily_tokens_per_user",
            Self::WorkspaceDailyTokens => "daily_tokens_per_workspace",
        }
    }

    /// Returns the configured value of this limit, or `None` when unlimited.
    pub fn limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Self::UserRequestsPerMinute => limits.requests_per_minute_per_user.map(u64::from),
            Self::AgentRequestsPerMinute => limits.requests_per_minute_per_agent.map(u64::from),
            Self::UserDailyTokens => limits.daily_tokens_per_user,
            Self::WorkspaceDailyTokens => limits.daily_tokens_per_workspace,
        }
    }

    /// Builds the key of the counter this limit reads for `key`.
    pub fn counter_key(self, key: &RequestKey<'_>) -> String {
        let workspace = escape_id(key.workspace);
        match self {
            Self::UserRequestsPerMinute => format!("rpm:user:{workspace}:{}", escape_id(key.user)),
            Self::AgentRequestsPerMinute => {
                format!("rpm:agent:{workspace}:{}", escape_id(key.agent))
            }
            Self::UserDailyTokens => format!("tokens:user:{workspace}:{}", escape_id(key.user)),
            Self::WorkspaceDailyTokens => format!("tokens:workspace:{workspace}"),
        }
    }

    fn window_millis(self) -> i64 {
        match self {
            Self::UserRequestsPerMinute | Self::AgentRequestsPerMinute => MINUTE_MILLIS,
            Self::UserDailyTokens | Self::WorkspaceDailyTokens => DAY_MILLIS,
        }
    }

    /// Returns the start of the window that contains `now_millis`.
    fn window_start(self, now_millis: i64) -> i64 {
        now_millis - now_millis.rem_euclid(self.window_millis())
    }
}

/// A refusal: the first limit a request exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub kind: LimitKind,
    /// The configured limit: requests per minute, or tokens per UTC day.
    pub limit: u64,
    /// When the exceeded window ends, in milliseconds since the Unix epoch.
    pub resets_at: i64,
}

impl LimitExceeded {
    /// Builds the short reply for the user: which limit, and when it resets.
    ///
    /// For example: "You have reached the limit of 10 requests per minute
    /// per user. It resets at 14:03:00 UTC (in 42 s)."
    pub fn user_message(&self, now_millis: i64) -> String {
        let limit = self.limit;
        let what = match self.kind {
            LimitKind::UserRequestsPerMinute => {
                format!("You have reached the limit of {limit} requests per minute per user.")
            }
            LimitKind::AgentRequestsPerMinute => {
                format!("This agent has reached its limit of {limit} requests per minute.")
            }
            LimitKind::UserDailyTokens => {
                format!("You have used your daily budget of {limit} tokens.")
            }
            LimitKind::WorkspaceDailyTokens => {
                format!("This workspace has used its daily budget of {limit} tokens.")
            }
        };
        format!(
            "{what} It resets at {} (in {}).",
            utc::format_reset_time(self.resets_at, now_millis),
            utc::format_wait(self.resets_at - now_millis)
        )
    }

    /// Builds the stable machine text for the invocation record, such as
    /// `requests_per_minute_per_user: 10`.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.kind.setting_name(), self.limit)
    }
}

/// The user, agent and workspace of one request, which name its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestKey<'a> {
    pub user: &'a str,
    pub agent: &'a str,
    pub workspace: &'a str,
}

/// Counts one request against the per-minute limits and checks the daily
/// token budgets, and returns the first limit exceeded, if any.
///
/// Token budgets are checked first, and a request is refused when the day's
/// tokens have already reached the budget. A refused request counts against
/// no window. Two requests racing for the last slot of a window never both
/// get it, on either database.
#[instrument(skip_all, fields(user = key.user, agent = key.agent, workspace = key.workspace))]
pub async fn admit(
    store: &Store,
    clock: &SharedClock,
    limits: &Limits,
    key: &RequestKey<'_>,
) -> Result<Option<LimitExceeded>> {
    let now = clock.now_millis();

    let mut exceeded = check_token_budgets(store, now, limits, key).await?;
    if exceeded.is_none() {
        exceeded = count_request(store, now, limits, key).await?;
    }

    if let Some(exceeded) = &exceeded {
        debug!(limit = exceeded.reason(), "request refused by a limit");
    }
    Ok(exceeded)
}

/// Returns the first daily token budget that the day's tokens have reached.
async fn check_token_budgets(
    store: &Store,
    now: i64,
    limits: &Limits,
    key: &RequestKey<'_>,
) -> Result<Option<LimitExceeded>> {
    // NOTE: tokens are added when a run finishes, so runs admitted before
    // the budget was reached can together go over it.
    for kind in [LimitKind::UserDailyTokens, LimitKind::WorkspaceDailyTokens] {
        let Some(budget) = kind.limit(limits) else {
            continue;
        };
        let window_start = kind.window_start(now);
        let used = read_count(store, &kind.counter_key(key), window_start).await?;
        if used >= budget {
            return Ok(Some(LimitExceeded {
                kind,
                limit: budget,
                resets_at: window_start + kind.window_millis(),
            }));
        }
    }
    Ok(None)
}

/// Adds the request to both per-minute counters, or to neither when one of
/// them would go over its limit.
async fn count_request(
    store: &Store,
    now: i64,
    limits: &Limits,
    key: &RequestKey<'_>,
) -> Result<Option<LimitExceeded>> {
    // Both counters are always locked in this order (user, then agent), so
    // concurrent transactions on PostgreSQL cannot deadlock. On SQLite the
    // first upsert takes the database's write lock, which waits for other
    // writers up to the busy timeout.
    let mut transaction = store
        .pool()
        .begin()
        .await
        .context("could not start a transaction to count a request")?;

    for kind in [
        LimitKind::UserRequestsPerMinute,
        LimitKind::AgentRequestsPerMinute,
    ] {
        let window_start = kind.window_start(now);
        let count =
            increment_request_counter(&mut transaction, &kind.counter_key(key), window_start)
                .await?;

        if let Some(limit) = kind.limit(limits)
            && count > limit
        {
            transaction
                .rollback()
                .await
                .context("could not roll back the count of a refused request")?;
            return Ok(Some(LimitExceeded {
                kind,
                limit,
                resets_at: window_start + kind.window_millis(),
            }));
        }
    }

    transaction
        .commit()
        .await
        .context("could not save the request counters")?;
    Ok(None)
}

/// Adds one to a counter and returns its new count.
async fn increment_request_counter(
    transaction: &mut sqlx::Transaction<'_, Any>,
    counter_key: &str,
    window_start: i64,
) -> Result<u64> {
    let row = sqlx::query(
        "INSERT INTO usage_counters (counter_key, window_start, count) VALUES ($1, $2, 1) \
         ON CONFLICT (counter_key, window_start) \
         DO UPDATE SET count = usage_counters.count + 1 \
         RETURNING count",
    )
    .bind(counter_key.to_string())
    .bind(window_start)
    .fetch_one(&mut **transaction)
    .await
    .with_context(|| format!("could not count a request against {counter_key}"))?;

    let count: i64 = row.try_get("count")?;
    Ok(count_from_column(count))
}

/// Adds the tokens of a finished invocation to the user's and the
/// workspace's counters for the current UTC day.
///
/// The tokens count on the day the invocation finished, even when it
/// started the day before.
#[instrument(skip_all, fields(user = key.user, workspace = key.workspace, tokens = tokens))]
pub async fn record_tokens(
    store: &Store,
    clock: &SharedClock,
    key: &RequestKey<'_>,
    tokens: u64,
) -> Result<()> {
    if tokens == 0 {
        return Ok(());
    }
    let tokens = i64::try_from(tokens)
        .with_context(|| format!("invalid token count {tokens}: larger than {}", i64::MAX))?;
    let window_start = LimitKind::UserDailyTokens.window_start(clock.now_millis());

    // One statement updates both rows, so a reader never sees one of them
    // without the other.
    sqlx::query(
        "INSERT INTO usage_counters (counter_key, window_start, count) \
         VALUES ($1, $3, $4), ($2, $3, $4) \
         ON CONFLICT (counter_key, window_start) \
         DO UPDATE SET count = usage_counters.count + EXCLUDED.count",
    )
    .bind(LimitKind::UserDailyTokens.counter_key(key))
    .bind(LimitKind::WorkspaceDailyTokens.counter_key(key))
    .bind(window_start)
    .bind(tokens)
    .execute(store.pool())
    .await
    .context("could not record the tokens of an invocation")?;
    Ok(())
}

/// Reads this user's usage against every limit, for `/agentdesk usage`.
pub async fn usage(
    store: &Store,
    clock: &SharedClock,
    limits: &Limits,
    key: &RequestKey<'_>,
) -> Result<UsageReport> {
    let now = clock.now_millis();

    let mut lines = Vec::with_capacity(LimitKind::ALL.len());
    for kind in LimitKind::ALL {
        let window_start = kind.window_start(now);
        lines.push(UsageLine {
            kind,
            used: read_count(store, &kind.counter_key(key), window_start).await?,
            limit: kind.limit(limits),
            resets_at: window_start + kind.window_millis(),
        });
    }
    Ok(UsageReport {
        agent: key.agent.to_string(),
        lines,
    })
}

/// Deletes counter windows that ended before `before_millis` and returns
/// the number of rows deleted. The retention task calls it.
///
/// A window ends when the next one starts, so a minute window starting at
/// 14:02 ends at 14:03 and goes with any `before_millis` from 14:03 on.
/// Counters with keys this module does not write are left alone.
pub async fn purge_counters(store: &Store, before_millis: i64) -> Result<u64> {
    let result = sqlx::query(
        "DELETE FROM usage_counters \
         WHERE (counter_key LIKE 'rpm:%' AND window_start <= $1) \
            OR (counter_key LIKE 'tokens:%' AND window_start <= $2)",
    )
    .bind(before_millis.saturating_sub(MINUTE_MILLIS))
    .bind(before_millis.saturating_sub(DAY_MILLIS))
    .execute(store.pool())
    .await
    .context("could not purge ended usage counter windows")?;
    Ok(result.rows_affected())
}

/// Reads a counter, which is zero when its row does not exist.
async fn read_count(store: &Store, counter_key: &str, window_start: i64) -> Result<u64> {
    let row = sqlx::query(
        "SELECT count FROM usage_counters WHERE counter_key = $1 AND window_start = $2",
    )
    .bind(counter_key.to_string())
    .bind(window_start)
    .fetch_optional(store.pool())
    .await
    .with_context(|| format!("could not read the usage counter {counter_key}"))?;

    match row {
        Some(row) => Ok(count_from_column(row.try_get("count")?)),
        None => Ok(0),
    }
}

/// Converts a stored count, which this module never makes negative.
fn count_from_column(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// Escapes the separator of counter keys out of an id.
fn escape_id(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}
