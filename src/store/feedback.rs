//! Answer feedback: a thumbs up or down per user per invocation.
//!
//! Each user has at most one vote on an invocation; a later click by the
//! same user replaces it. Votes are stored as +1 (up) and -1 (down).
//! Retention deletes the votes of the invocations it deletes.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::Store;
use crate::clock::SharedClock;

/// A user's verdict on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    Up,
    Down,
}

impl Vote {
    /// Returns the stored value: +1 for up, -1 for down.
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Up => 1,
            Self::Down => -1,
        }
    }

    /// Reads a stored value; anything other than +1 or -1 is an error.
    pub fn from_i64(value: i64) -> Result<Self> {
        match value {
            1 => Ok(Self::Up),
            -1 => Ok(Self::Down),
            other => anyhow::bail!("invalid stored vote {other}: expected 1 or -1"),
        }
    }
}

/// The effect of [`record_vote`] on the user's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteChange {
    /// The user had not voted on this invocation before.
    New,
    /// The user's earlier vote was the other one and is replaced.
    Changed,
    /// The user had already cast this vote; nothing changed.
    Unchanged,
}

/// The error [`record_vote`] returns when no invocation has the given id.
///
/// It travels inside `anyhow::Error`; check for it with
/// `error.is::<UnknownInvocation>()`.
#[derive(Debug, thiserror::Error)]
#[error("no invocation with id {0:?}")]
pub struct UnknownInvocation(pub String);

/// Records `user_id`'s vote on an invocation, replacing an earlier vote.
///
/// The write is one upsert that applies only while the invocation exists,
/// so a vote is never stored for an unknown invocation. Whether the vote is
/// new or changed comes from a read just before the write. Two clicks by
/// the same user at the same instant may therefore both report `New`, but
/// the stored vote is the last one written.
pub async fn record_vote(
    store: &Store,
    clock: &SharedClock,
    invocation_id: &str,
    user_id: &str,
    vote: Vote,
) -> Result<VoteChange> {
    let previous = stored_vote(store, invocation_id, user_id).await?;

    // The update applies only when the vote differs, so a repeated click
    // affects no row and keeps `updated_at`.
    let written = sqlx::query(
        "INSERT INTO feedback (invocation_id, user_id, vote, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM invocations WHERE id = $1) \
         ON CONFLICT (invocation_id, user_id) DO UPDATE \
         SET vote = excluded.vote, updated_at = excluded.updated_at \
         WHERE feedback.vote <> excluded.vote",
    )
    .bind(invocation_id.to_string())
    .bind(user_id.to_string())
    .bind(vote.as_i64())
    .bind(clock.now_millis())
    .execute(store.pool())
    .await
    .context("could not record the vote")?
    .rows_affected();

    match (written, previous) {
        // No row was written and none was read before: either the
        // invocation is unknown, or a concurrent click by the same user
        // stored this same vote in between.
        (0, None) => match stored_vote(store, invocation_id, user_id).await? {
            Some(_) => Ok(VoteChange::Unchanged),
            None => Err(UnknownInvocation(invocation_id.to_string()).into()),
        },
        (0, Some(_)) => Ok(VoteChange::Unchanged),
        (_, None) => Ok(VoteChange::New),
        (_, Some(_)) => Ok(VoteChange::Changed),
    }
}

/// Lists the votes on an invocation as `(user_id, vote)`, ordered by user
/// id. An unknown invocation has no votes.
pub async fn votes_for(store: &Store, invocation_id: &str) -> Result<Vec<(String, Vote)>> {
    let rows =
        sqlx::query("SELECT user_id, vote FROM feedback WHERE invocation_id = $1 ORDER BY user_id")
            .bind(invocation_id.to_string())
            .fetch_all(store.pool())
            .await
            .context("could not load the votes")?;

    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("user_id")?,
                Vote::from_i64(row.try_get("vote")?)?,
            ))
        })
        .collect()
}

async fn stored_vote(store: &Store, invocation_id: &str, user_id: &str) -> Result<Option<Vote>> {
    let row = sqlx::query("SELECT vote FROM feedback WHERE invocation_id = $1 AND user_id = $2")
        .bind(invocation_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(store.pool())
        .await
        .context("could not load the earlier vote")?;
    row.map(|row| Vote::from_i64(row.try_get("vote")?))
        .transpose()
}
