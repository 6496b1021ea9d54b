//! Invocation records: one row per question, from arrival to answer.
//!
//! A row is inserted as `in_progress` when work starts and finished exactly
//! once: the final update only applies to a row still in progress, so a
//! late finisher cannot overwrite an `interrupted` mark set at shutdown.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::clock::SharedClock;
use crate::llm::Usage;

/// Where a question came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Slack,
    Cli,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Cli => "cli",
            Self::Api => "api",
        }
    }
}

/// Lifecycle of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InProgress,
    Completed,
    Failed,
    /// A forbidden user or an exceeded limit.
    Refused,
    /// Found still in progress at shutdown or after a crash.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "refused" => Self::Refused,
            "interrupted" => Self::Interrupted,
            other => bail!(
                "unknown invocation status {other:?}: expected in_progress, completed, failed, \
                 refused or interrupted"
            ),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool call made during an invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub name: String,
    /// The arguments as the model sent them (JSON text, possibly invalid).
    pub arguments: String,
    pub duration_ms: u64,
    /// Size of the result in bytes before any cut.
    pub result_bytes: usize,
    /// Whether the result was cut to the size limit before the model saw it.
    pub truncated: bool,
    pub error: Option<String>,
}

/// Who asked what, recorded when work starts.
#[derive(Debug, Clone)]
pub struct NewInvocation {
    pub id: String,
    pub source: Source,
    pub agent: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    pub message_ts: Option<String>,
    pub user_id: Option<String>,
    pub prompt: String,
    pub backend: String,
    pub model: String,
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub answer: Option<String>,
    pub error: Option<String>,
    /// The reason a `refused` invocation was turned away (a forbidden user,
    /// an exceeded limit); `None` for every other status.
    pub refusal: Option<String>,
    pub usage: Usage,
    pub tool_calls: Vec<ToolCallRecord>,
}

/// A stored invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub id: String,
    pub source: String,
    pub agent: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    pub message_ts: Option<String>,
    pub user_id: Option<String>,
    pub prompt: String,
    pub answer: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    pub refusal: Option<String>,
    pub backend: String,
    pub model: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub tool_calls: Vec<ToolCallRecord>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// The parts of a question and its answer that are written to the database.
///
/// The policy is a parameter of [`start`] and [`finish`], so no caller can
/// store text that the configuration excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoragePolicy {
    /// Everything: prompt, answer, tool arguments.
    #[default]
    Full,
    /// No text a user or the model wrote: the prompt is stored as `''`, the
    /// answer as NULL and each tool call's arguments as `""`. Status, agent,
    /// user, channel, times, tokens, tool names and durations, errors and
    /// refusals are kept.
    ///
    /// NOTE: error texts are kept as they are, and a tool's error can quote
    /// an argument value (for example the entity name it did not find).
    MetadataOnly,
}

impl StoragePolicy {
    /// Returns the policy for a `metadata_only` setting.
    pub fn from_metadata_only(metadata_only: bool) -> Self {
        if metadata_only {
            Self::MetadataOnly
        } else {
            Self::Full
        }
    }

    fn keeps_text(self) -> bool {
        self == Self::Full
    }
}

/// A new time-ordered invocation id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts an invocation in progress; under [`StoragePolicy::MetadataOnly`]
/// the prompt is stored as `''`.
pub async fn start(
    store: &Store,
    clock: &SharedClock,
    new: &NewInvocation,
    policy: StoragePolicy,
) -> Result<()> {
    let prompt = if policy.keeps_text() {
        new.prompt.clone()
    } else {
        String::new()
    };
    sqlx::query(
        "INSERT INTO invocations (id, source, agent, team_id, channel_id, thread_ts, message_ts, \
         user_id, prompt, status, backend, model, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(new.id.clone())
    .bind(new.source.as_str())
    .bind(new.agent.clone())
    .bind(new.team_id.clone())
    .bind(new.channel_id.clone())
    .bind(new.thread_ts.clone())
    .bind(new.message_ts.clone())
    .bind(new.user_id.clone())
    .bind(prompt)
    .bind(Status::InProgress.as_str())
    .bind(new.backend.clone())
    .bind(new.model.clone())
    .bind(clock.now_millis())
    .execute(store.pool())
    .await
    .context("could not record the invocation")?;
    Ok(())
}

/// Records how an invocation ended. Returns `false` when the row was no
/// longer in progress (already finished or marked interrupted).
///
/// Under [`StoragePolicy::MetadataOnly`] the answer is stored as NULL and
/// each tool call's arguments as `""`.
pub async fn finish(
    store: &Store,
    clock: &SharedClock,
    id: &str,
    outcome: &Outcome,
    policy: StoragePolicy,
) -> Result<bool> {
    let (answer, tool_calls) = if policy.keeps_text() {
        (outcome.answer.clone(), outcome.tool_calls.clone())
    } else {
        (None, without_arguments(&outcome.tool_calls))
    };
    let tool_calls = serde_json::to_string(&tool_calls).context("could not encode tool calls")?;
    let result = sqlx::query(
        "UPDATE invocations SET status = $1, answer = $2, error = $3, refusal = $4, \
         tokens_in = $5, tokens_out = $6, tool_calls_json = $7, finished_at = $8 \
         WHERE id = $9 AND status = 'in_progress'",
    )
    .bind(outcome.status.as_str())
    .bind(answer)
    .bind(outcome.error.clone())
    .bind(outcome.refusal.clone())
    .bind(outcome.usage.input_tokens as i64)
    .bind(outcome.usage.output_tokens as i64)
    .bind(tool_calls)
    .bind(clock.now_millis())
    .bind(id.to_string())
    .execute(store.pool())
    .await
    .context("could not record the end of the invocation")?;
    Ok(result.rows_affected() == 1)
}

/// Copies tool calls with their arguments blanked.
fn without_arguments(tool_calls: &[ToolCallRecord]) -> Vec<ToolCallRecord> {
    tool_calls
        .iter()
        .map(|call| ToolCallRecord {
            arguments: String::new(),
            ..call.clone()
        })
        .collect()
}

/// The columns [`decode`] reads, in table order.
pub(super) const COLUMNS: &str = "id, source, agent, team_id, channel_id, thread_ts, \
     message_ts, user_id, prompt, answer, status, error, refusal, backend, model, tokens_in, \
     tokens_out, tool_calls_json, started_at, finished_at";

/// Loads one invocation by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<Invocation>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invocations WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .context("could not load the invocation")?;
    row.map(|row| decode(&row)).transpose()
}

/// One earlier question and its answer in a Slack thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub question: String,
    pub answer: String,
}

/// Loads the completed turns of a thread that started before `before_millis`,
/// oldest first, at most `limit` of the latest ones.
pub async fn thread_turns(
    store: &Store,
    channel_id: &str,
    thread_ts: &str,
    before_millis: i64,
    limit: usize,
) -> Result<Vec<Turn>> {
    let rows = sqlx::query(
        "SELECT prompt, answer FROM invocations \
         WHERE channel_id = $1 AND thread_ts = $2 AND status = 'completed' AND started_at < $3 \
         AND answer IS NOT NULL ORDER BY started_at DESC LIMIT $4",
    )
    .bind(channel_id.to_string())
    .bind(thread_ts.to_string())
    .bind(before_millis)
    .bind(limit as i64)
    .fetch_all(store.pool())
    .await
    .context("could not load the thread's earlier turns")?;

    let mut turns = rows
        .iter()
        .map(|row| {
            Ok(Turn {
                question: row.try_get("prompt")?,
                answer: row.try_get("answer")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    turns.reverse();
    Ok(turns)
}

/// Marks invocations still in progress that started before `started_before`
/// as interrupted, and returns their ids.
///
/// An invocation cannot legitimately run longer than the loop's time budget,
/// so a caller passes a cutoff older than that budget; rows of other live
/// replicas are then left alone.
pub async fn interrupt_stale(
    store: &Store,
    clock: &SharedClock,
    started_before: i64,
    reason: &str,
) -> Result<Vec<String>> {
    let rows =
        sqlx::query("SELECT id FROM invocations WHERE status = 'in_progress' AND started_at < $1")
            .bind(started_before)
            .fetch_all(store.pool())
            .await
            .context("could not look for stale invocations")?;

    let mut interrupted = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if interrupt(store, clock, &id, reason).await? {
            interrupted.push(id);
        }
    }
    Ok(interrupted)
}

/// Marks one invocation interrupted if it is still in progress.
pub async fn interrupt(store: &Store, clock: &SharedClock, id: &str, reason: &str) -> Result<bool> {
    let result = sqlx::query(
        "UPDATE invocations SET status = 'interrupted', error = $1, finished_at = $2 \
         WHERE id = $3 AND status = 'in_progress'",
    )
    .bind(reason.to_string())
    .bind(clock.now_millis())
    .bind(id.to_string())
    .execute(store.pool())
    .await
    .context("could not mark the invocation interrupted")?;
    Ok(result.rows_affected() == 1)
}

/// Counts invocations, optionally by status; used by tests and stats.
pub async fn count(store: &Store, status: Option<Status>) -> Result<i64> {
    let row = match status {
        Some(status) => {
            sqlx::query("SELECT COUNT(*) AS n FROM invocations WHERE status = $1")
                .bind(status.as_str())
                .fetch_one(store.pool())
                .await?
        }
        None => {
            sqlx::query("SELECT COUNT(*) AS n FROM invocations")
                .fetch_one(store.pool())
                .await?
        }
    };
    Ok(row.try_get("n")?)
}

/// Lists the latest invocations, newest first.
pub async fn recent(store: &Store, limit: usize) -> Result<Vec<Invocation>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invocations ORDER BY started_at DESC, id DESC LIMIT $1"
    )))
    .bind(limit as i64)
    .fetch_all(store.pool())
    .await
    .context("could not list invocations")?;
    rows.iter().map(decode).collect()
}

/// Decodes a row that holds [`COLUMNS`].
pub(super) fn decode(row: &AnyRow) -> Result<Invocation> {
    let status: String = row.try_get("status")?;
    let tool_calls: String = row.try_get("tool_calls_json")?;
    Ok(Invocation {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        agent: row.try_get("agent")?,
        team_id: row.try_get("team_id")?,
        channel_id: row.try_get("channel_id")?,
        thread_ts: row.try_get("thread_ts")?,
        message_ts: row.try_get("message_ts")?,
        user_id: row.try_get("user_id")?,
        prompt: row.try_get("prompt")?,
        answer: row.try_get("answer")?,
        status: Status::parse(&status)?,
        error: row.try_get("error")?,
        refusal: row.try_get("refusal")?,
        backend: row.try_get("backend")?,
        model: row.try_get("model")?,
        tokens_in: row.try_get("tokens_in")?,
        tokens_out: row.try_get("tokens_out")?,
        tool_calls: serde_json::from_str(&tool_calls)
            .context("stored tool calls are not valid JSON")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
