//! Rate limits and token budgets.

/// Limits from the agents file; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub requests_per_minute_per_user: Option<u32>,
    pub requests_per_minute_per_agent: Option<u32>,
    pub daily_tokens_per_user: Option<u64>,
    pub daily_tokens_per_workspace: Option<u64>,
}

use crate::clock::SharedClock;
use crate::store::Store;

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    UserRequestsPerMinute,
    AgentRequestsPerMinute,
    UserDailyTokens,
    WorkspaceDailyTokens,
}

/// A request over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub kind: LimitKind,
    pub limit: u64,
    pub resets_at: i64,
}

impl LimitExceeded {
    pub fn user_message(&self, _now_millis: i64) -> String {
        format!("You have reached a usage limit ({:?}).", self.kind)
    }

    pub fn reason(&self) -> String {
        format!("{:?}: {}", self.kind, self.limit)
    }
}

/// Who is asking, for counting.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub user: &'a str,
    pub agent: &'a str,
    pub workspace: &'a str,
}

pub async fn admit(
    _store: &Store,
    _clock: &SharedClock,
    _limits: &Limits,
    _key: &RequestKey<'_>,
) -> anyhow::Result<Option<LimitExceeded>> {
    Ok(None)
}

pub async fn record_tokens(
    _store: &Store,
    _clock: &SharedClock,
    _key: &RequestKey<'_>,
    _tokens: u64,
) -> anyhow::Result<()> {
    Ok(())
}

/// A user's usage against the limits.
#[derive(Debug, Clone, Default)]
pub struct UsageReport;

impl UsageReport {
    pub fn to_markdown(&self, _now_millis: i64) -> String {
        "No limits are set.".to_string()
    }
}

pub async fn usage(
    _store: &Store,
    _clock: &SharedClock,
    _limits: &Limits,
    _key: &RequestKey<'_>,
) -> anyhow::Result<UsageReport> {
    Ok(UsageReport)
}
