//! Slack delivery dedupe keys.
//!
//! Slack delivers events at least once: a retry carries the same `event_id`,
//! and a user message can arrive twice under different event ids (as
//! `message` and as `app_mention`) with the same `(channel, ts)`. A question
//! is answered only by the caller that inserts both keys first. The keys
//! live in the database, so they survive restarts and hold across replicas;
//! [`purge_expired`] removes keys older than the configured time to live.

use std::time::Duration;

use anyhow::{Context, Result};

use super::Store;
use crate::clock::SharedClock;

/// Claims a user message for answering.
///
/// Returns `true` when neither the event id nor the `(channel, ts)` pair was
/// seen before, and records both. Returns `false` for a redelivery or a twin;
/// a twin still records its own event id, so its redeliveries stay dropped.
pub async fn claim_message(
    store: &Store,
    clock: &SharedClock,
    event_id: Option<&str>,
    channel: &str,
    ts: &str,
) -> Result<bool> {
    let now = clock.now_millis();
    let message_key = format!("msg:{channel}:{ts}");

    let inserted = match event_id {
        Some(event_id) => {
            let event_key = format!("event:{event_id}");
            sqlx::query(
                "INSERT INTO slack_dedupe (dedupe_key, created_at) VALUES ($1, $3), ($2, $3) \
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(event_key)
            .bind(message_key)
            .bind(now)
            .execute(store.pool())
            .await
            .context("could not record Slack dedupe keys")?
            .rows_affected()
                == 2
        }
        None => claim_key(store, now, &message_key).await?,
    };
    Ok(inserted)
}

/// Claims any single key, such as an interaction's id; `true` when new.
pub async fn claim(store: &Store, clock: &SharedClock, key: &str) -> Result<bool> {
    claim_key(store, clock.now_millis(), key).await
}

async fn claim_key(store: &Store, now: i64, key: &str) -> Result<bool> {
    let result = sqlx::query(
        "INSERT INTO slack_dedupe (dedupe_key, created_at) VALUES ($1, $2) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(key.to_string())
    .bind(now)
    .execute(store.pool())
    .await
    .context("could not record a Slack dedupe key")?;
    Ok(result.rows_affected() == 1)
}

/// Deletes keys older than `ttl` and returns how many went.
pub async fn purge_expired(store: &Store, clock: &SharedClock, ttl: Duration) -> Result<u64> {
    let cutoff = clock.now_millis() - ttl.as_millis() as i64;
    let result = sqlx::query("DELETE FROM slack_dedupe WHERE created_at < $1")
        .bind(cutoff)
        .execute(store.pool())
        .await
        .context("could not purge expired Slack dedupe keys")?;
    Ok(result.rows_affected())
}
