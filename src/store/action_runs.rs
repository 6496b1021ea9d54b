//! Runs of self-service actions.
//!
//! A run is created when an agent proposes an action: `waiting_for_approval`
//! for actions that need a person's decision, `in_progress` for automatic
//! ones. Every later change is one conditional update that names the state
//! it leaves, so a double click, two approvers clicking together, a
//! redelivered click or two replicas sharing the database move a run at
//! most once, and an approved run executes exactly once:
//!
//! ```text
//! waiting_for_approval -> in_progress -> success | failure
//!                      -> rejected
//!                      -> expired
//! ```

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Store;
use crate::clock::SharedClock;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    WaitingForApproval,
    Rejected,
    Expired,
    InProgress,
    Success,
    Failure,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForApproval => "waiting_for_approval",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::InProgress => "in_progress",
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "waiting_for_approval" => Self::WaitingForApproval,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            "in_progress" => Self::InProgress,
            "success" => Self::Success,
            "failure" => Self::Failure,
            other => bail!(
                "unknown run status {other:?}: expected waiting_for_approval, rejected, expired, \
                 in_progress, success or failure"
            ),
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as proposed.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub action_id: String,
    pub agent: String,
    pub invocation_id: Option<String>,
    pub inputs: Map<String, Value>,
    pub target_ref: Option<String>,
    pub target_title: Option<String>,
    /// Slack user id of the asker, or `cli`.
    pub requester: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    /// `WaitingForApproval`, or `InProgress` for an automatic action.
    pub status: RunStatus,
    /// Who decided, for automatic actions (`automatic`).
    pub decider: Option<String>,
    pub expires_at: Option<i64>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    pub id: String,
    pub action_id: String,
    pub agent: String,
    pub invocation_id: Option<String>,
    pub inputs: Map<String, Value>,
    pub target_ref: Option<String>,
    pub target_title: Option<String>,
    pub requester: String,
    pub team_id: Option<String>,
    pub decider: Option<String>,
    pub status: RunStatus,
    /// Short result for the card: "HTTP 200", "timed out, outcome unknown".
    pub summary: Option<String>,
    /// Where the run can be followed, such as a GitHub Actions run.
    pub link: Option<String>,
    pub http_status: Option<i64>,
    /// The executor's details (never secrets).
    pub result: Option<Value>,
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    /// The approval card or note, once posted.
    pub message_ts: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// How a run ended, from its executor.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub success: bool,
    pub summary: String,
    pub http_status: Option<u16>,
    pub link: Option<String>,
    pub detail: Value,
}

const COLUMNS: &str = "id, action_id, agent, invocation_id, inputs_json, target_ref, \
     target_title, requester, team_id, decider, status, summary, link, http_status, result_json, \
     channel_id, thread_ts, message_ts, created_at, expires_at, decided_at, started_at, \
     finished_at";

/// Records a proposed run.
pub async fn create(store: &Store, clock: &SharedClock, run: &NewRun) -> Result<()> {
    let now = clock.now_millis();
    let started_at = (run.status == RunStatus::InProgress).then_some(now);
    sqlx::query(
        "INSERT INTO action_runs (id, action_id, agent, invocation_id, inputs_json, target_ref, \
         target_title, requester, team_id, decider, status, channel_id, thread_ts, created_at, \
         expires_at, decided_at, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(run.id.clone())
    .bind(run.action_id.clone())
    .bind(run.agent.clone())
    .bind(run.invocation_id.clone())
    .bind(Value::Object(run.inputs.clone()).to_string())
    .bind(run.target_ref.clone())
    .bind(run.target_title.clone())
    .bind(run.requester.clone())
    .bind(run.team_id.clone())
    .bind(run.decider.clone())
    .bind(run.status.as_str())
    .bind(run.channel_id.clone())
    .bind(run.thread_ts.clone())
    .bind(now)
    .bind(run.expires_at)
    .bind(run.decider.as_ref().map(|_| now))
    .bind(started_at)
    .execute(store.pool())
    .await
    .context("could not record the action run")?;
    Ok(())
}

/// Loads a run by id.
pub async fn get(store: &Store, id: &str) -> Result<Option<ActionRun>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM action_runs WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .context("could not load the action run")?;
    row.map(|row| decode(&row)).transpose()
}

/// Records where a run's card or note was posted.
pub async fn set_message(store: &Store, id: &str, channel: &str, message_ts: &str) -> Result<()> {
    sqlx::query("UPDATE action_runs SET channel_id = $1, message_ts = $2 WHERE id = $3")
        .bind(channel.to_string())
        .bind(message_ts.to_string())
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .context("could not record the run's Slack message")?;
    Ok(())
}

/// Applies an approver's decision if the run is still waiting and not
/// expired. Returns the run as changed when this call made the change, and
/// `None` when another click (or the expiry task) got there first.
pub async fn decide(
    store: &Store,
    clock: &SharedClock,
    id: &str,
    decider: &str,
    decision: Decision,
) -> Result<Option<ActionRun>> {
    let now = clock.now_millis();
    let (status, started_at) = match decision {
        Decision::Approve => (RunStatus::InProgress, Some(now)),
        Decision::Reject => (RunStatus::Rejected, None),
    };
    let finished_at = (decision == Decision::Reject).then_some(now);
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET status = $1, decider = $2, decided_at = $3, started_at = $4, \
         finished_at = $5 \
         WHERE id = $6 AND status = 'waiting_for_approval' \
         AND (expires_at IS NULL OR expires_at > $3) RETURNING {COLUMNS}"
    )))
    .bind(status.as_str())
    .bind(decider.to_string())
    .bind(now)
    .bind(started_at)
    .bind(finished_at)
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .context("could not record the decision")?;
    row.map(|row| decode(&row)).transpose()
}

/// Marks the moment a run's executor starts, if the run is still in
/// progress. Returns the run when it may execute, and `None` when it ended
/// meanwhile, for example when a sweep failed it as interrupted: it must
/// not execute then, since its record already says how it ended.
pub async fn start(store: &Store, clock: &SharedClock, id: &str) -> Result<Option<ActionRun>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET started_at = $1 WHERE id = $2 AND status = 'in_progress' \
         RETURNING {COLUMNS}"
    )))
    .bind(clock.now_millis())
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .context("could not record the start of the action run")?;
    row.map(|row| decode(&row)).transpose()
}

/// Records how a run in progress ended. Returns the run when this call
/// ended it, `None` when it was not in progress any more.
pub async fn finish(
    store: &Store,
    clock: &SharedClock,
    id: &str,
    end: &RunEnd,
) -> Result<Option<ActionRun>> {
    let status = if end.success {
        RunStatus::Success
    } else {
        RunStatus::Failure
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET status = $1, summary = $2, http_status = $3, link = $4, \
         result_json = $5, finished_at = $6 WHERE id = $7 AND status = 'in_progress' \
         RETURNING {COLUMNS}"
    )))
    .bind(status.as_str())
    .bind(end.summary.clone())
    .bind(end.http_status.map(i64::from))
    .bind(end.link.clone())
    .bind(end.detail.to_string())
    .bind(clock.now_millis())
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .context("could not record the end of the action run")?;
    row.map(|row| decode(&row)).transpose()
}

/// Marks waiting runs whose time is up as expired and returns the runs this
/// call expired (another replica's sweep gets the others).
pub async fn expire_due(store: &Store, clock: &SharedClock) -> Result<Vec<ActionRun>> {
    let now = clock.now_millis();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET status = 'expired', finished_at = $1 \
         WHERE status = 'waiting_for_approval' AND expires_at IS NOT NULL AND expires_at <= $1 \
         RETURNING {COLUMNS}"
    )))
    .bind(now)
    .fetch_all(store.pool())
    .await
    .context("could not expire action runs")?;
    rows.iter().map(decode).collect()
}

/// Fails runs still in progress that started before `started_before`: a
/// crash left them, and their outcome is unknown, so they never run again.
pub async fn fail_stale(
    store: &Store,
    clock: &SharedClock,
    started_before: i64,
    reason: &str,
) -> Result<Vec<ActionRun>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE action_runs SET status = 'failure', summary = $1, finished_at = $2 \
         WHERE status = 'in_progress' AND started_at < $3 RETURNING {COLUMNS}"
    )))
    .bind(reason.to_string())
    .bind(clock.now_millis())
    .bind(started_before)
    .fetch_all(store.pool())
    .await
    .context("could not fail interrupted action runs")?;
    rows.iter().map(decode).collect()
}

/// Lists runs, newest first, optionally of one status.
pub async fn list(
    store: &Store,
    status: Option<RunStatus>,
    limit: usize,
) -> Result<Vec<ActionRun>> {
    let rows = match status {
        Some(status) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM action_runs WHERE status = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2"
            )))
            .bind(status.as_str())
            .bind(limit as i64)
            .fetch_all(store.pool())
            .await
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM action_runs ORDER BY created_at DESC, id DESC LIMIT $1"
            )))
            .bind(limit as i64)
            .fetch_all(store.pool())
            .await
        }
    }
    .context("could not list action runs")?;
    rows.iter().map(decode).collect()
}

/// Deletes finished runs created before `cutoff` (retention); waiting and
/// running ones stay.
pub async fn delete_finished_before(store: &Store, cutoff: i64) -> Result<u64> {
    let result = sqlx::query(
        "DELETE FROM action_runs WHERE created_at < $1 \
         AND status NOT IN ('waiting_for_approval', 'in_progress')",
    )
    .bind(cutoff)
    .execute(store.pool())
    .await
    .context("could not delete old action runs")?;
    Ok(result.rows_affected())
}

fn decode(row: &AnyRow) -> Result<ActionRun> {
    let inputs: String = row.try_get("inputs_json")?;
    let result: Option<String> = row.try_get("result_json")?;
    let status: String = row.try_get("status")?;
    Ok(ActionRun {
        id: row.try_get("id")?,
        action_id: row.try_get("action_id")?,
        agent: row.try_get("agent")?,
        invocation_id: row.try_get("invocation_id")?,
        inputs: match serde_json::from_str(&inputs).context("stored run inputs are not JSON")? {
            Value::Object(inputs) => inputs,
            _ => Map::new(),
        },
        target_ref: row.try_get("target_ref")?,
        target_title: row.try_get("target_title")?,
        requester: row.try_get("requester")?,
        team_id: row.try_get("team_id")?,
        decider: row.try_get("decider")?,
        status: RunStatus::parse(&status)?,
        summary: row.try_get("summary")?,
        link: row.try_get("link")?,
        http_status: row.try_get("http_status")?,
        result: result
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .context("a stored run result is not JSON")?,
        channel_id: row.try_get("channel_id")?,
        thread_ts: row.try_get("thread_ts")?,
        message_ts: row.try_get("message_ts")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        decided_at: row.try_get("decided_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
