//! Named leases: a periodic task runs on one replica at a time.
//!
//! A lease row names a task, the holder (a replica's id) and the time it
//! expires. A replica takes the lease when no one holds it, when it has
//! expired, or when it already holds it (which extends it). Taking it is
//! one conditional upsert, so two replicas racing for it on SQLite or
//! PostgreSQL never both win. A holder that dies simply stops renewing, and
//! another replica takes over once the lease expires.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Row;

use super::Store;
use crate::clock::SharedClock;

/// Takes or renews the lease `name` for `holder` until now + `ttl`.
///
/// Returns `true` when `holder` now holds the lease, and `false` when
/// another holder's lease is still valid. A lease is valid while the clock
/// is before its `expires_at`.
pub async fn try_acquire(
    store: &Store,
    clock: &SharedClock,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    let now = clock.now_millis();
    let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));

    // On PostgreSQL the conflicting row is locked and the WHERE is checked
    // again against its latest version, and SQLite has one writer, so the
    // condition cannot pass for two holders at once.
    let result = sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
         expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
    )
    .bind(name.to_string())
    .bind(holder.to_string())
    .bind(expires_at)
    .bind(now)
    .execute(store.pool())
    .await
    .with_context(|| format!("could not take the lease {name:?}"))?;
    Ok(result.rows_affected() == 1)
}

/// Gives up the lease `name` if `holder` holds it; otherwise does nothing.
pub async fn release(store: &Store, name: &str, holder: &str) -> Result<()> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name.to_string())
        .bind(holder.to_string())
        .execute(store.pool())
        .await
        .with_context(|| format!("could not release the lease {name:?}"))?;
    Ok(())
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    /// Milliseconds since the Unix epoch; the lease is valid before it.
    pub expires_at: i64,
}

/// Loads the lease `name`, expired or not; `None` when no one holds it.
pub async fn get(store: &Store, name: &str) -> Result<Option<Lease>> {
    let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
        .bind(name.to_string())
        .fetch_optional(store.pool())
        .await
        .with_context(|| format!("could not read the lease {name:?}"))?;
    row.map(|row| {
        Ok(Lease {
            holder: row.try_get("holder")?,
            expires_at: row.try_get("expires_at")?,
        })
    })
    .transpose()
}
