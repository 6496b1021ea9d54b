//! Retention: deletion of old invocations, their feedback and old usage
//! counters, by one replica at a time.
//!
//! [`run_once`] deletes what is older than the configured number of days.
//! [`run_periodically`] calls it on every tick, but only while it holds the
//! lease [`LEASE_NAME`], so replicas sharing a PostgreSQL database never
//! delete at the same time. The replica that holds the lease keeps renewing
//! it; when it stops, another takes over once the lease expires.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::SharedClock;
use crate::store::{Store, leases};

/// The lease that [`run_periodically`] takes before each run.
pub const LEASE_NAME: &str = "retention";

const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// Usage counter windows are kept this long: rate limits count minutes and
/// budgets count UTC days, so older windows are never read again.
const USAGE_COUNTER_DAYS: i64 = 2;

/// Invocations deleted per statement, so one run keeps SQLite's write
/// lock only briefly and new invocations can still be recorded.
const DELETE_BATCH: i64 = 1_000;

/// How much is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Invocations that started more than this many days ago are deleted,
    /// with their feedback. Default 30; must be at least 1.
    pub days: u32,
    /// Stores invocations without prompts, answers or tool arguments.
    /// Default false.
    pub metadata_only: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            days: 30,
            metadata_only: false,
        }
    }
}

impl Retention {
    /// Rejects 0 days, which would delete invocations still in progress.
    pub fn validate(&self) -> Result<()> {
        if self.days == 0 {
            bail!("invalid retention days 0: keep invocations for at least 1 day, for example 30");
        }
        Ok(())
    }
}

/// The counts of rows one run deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Invocations that started before this time (milliseconds since the
    /// Unix epoch) were deleted.
    pub cutoff: i64,
    pub invocations: u64,
    /// Votes whose invocation no longer exists.
    pub feedback: u64,
    pub usage_counters: u64,
    /// Finished action runs created before the cutoff.
    pub action_runs: u64,
}

/// Deletes invocations older than `retention.days`, the feedback of
/// invocations that no longer exist, finished action runs older than
/// `retention.days`, and usage counter windows older than two days.
pub async fn run_once(
    store: &Store,
    clock: &SharedClock,
    retention: &Retention,
) -> Result<RetentionReport> {
    retention.validate()?;
    let now = clock.now_millis();
    let cutoff = now - i64::from(retention.days) * MILLIS_PER_DAY;

    let invocations = delete_invocations_before(store, cutoff).await?;
    let feedback = sqlx::query(
        "DELETE FROM feedback WHERE NOT EXISTS \
         (SELECT 1 FROM invocations WHERE invocations.id = feedback.invocation_id)",
    )
    .execute(store.pool())
    .await
    .context("could not delete feedback")?
    .rows_affected();
    let usage_counters = sqlx::query("DELETE FROM usage_counters WHERE window_start < $1")
        .bind(now - USAGE_COUNTER_DAYS * MILLIS_PER_DAY)
        .execute(store.pool())
        .await
        .context("could not delete usage counters")?
        .rows_affected();
    let action_runs = crate::store::action_runs::delete_finished_before(store, cutoff).await?;

    Ok(RetentionReport {
        cutoff,
        invocations,
        feedback,
        usage_counters,
        action_runs,
    })
}

async fn delete_invocations_before(store: &Store, cutoff: i64) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query(
            "DELETE FROM invocations WHERE id IN \
             (SELECT id FROM invocations WHERE started_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(DELETE_BATCH)
        .execute(store.pool())
        .await
        .context("could not delete old invocations")?
        .rows_affected();
        deleted += batch;
        if batch == 0 {
            return Ok(deleted);
        }
    }
}

/// Runs [`run_once`] if `holder` can take or renew the lease [`LEASE_NAME`]
/// for `ttl`; returns `None` when another holder has it.
pub async fn run_with_lease(
    store: &Store,
    clock: &SharedClock,
    retention: &Retention,
    holder: &str,
    ttl: Duration,
) -> Result<Option<RetentionReport>> {
    if !leases::try_acquire(store, clock, LEASE_NAME, holder, ttl).await? {
        return Ok(None);
    }
    run_once(store, clock, retention).await.map(Some)
}

/// Runs retention every `interval` until `stop` is cancelled, on this
/// replica only while it holds the lease, and releases the lease at the end.
///
/// The first run starts at once. The lease lasts three intervals and is
/// renewed on every tick, so another replica takes over about three
/// intervals after this one stops renewing. A run that fails is logged at
/// warn and tried again on the next tick.
///
/// NOTE: a run that takes longer than three intervals outlives its lease,
/// and another replica may then start one beside it. Deletes are batched
/// and idempotent, so the overlap costs work, not data.
pub async fn run_periodically(
    store: Store,
    clock: SharedClock,
    retention: Retention,
    holder: String,
    interval: Duration,
    stop: CancellationToken,
) {
    let ttl = interval.saturating_mul(3);
    let mut ticks = tokio::time::interval(interval);
    // After a slow run, wait a full interval instead of catching up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match run_with_lease(&store, &clock, &retention, &holder, ttl).await {
            Ok(Some(report)) => info!(
                holder = %holder,
                invocations = report.invocations,
                feedback = report.feedback,
                usage_counters = report.usage_counters,
                action_runs = report.action_runs,
                cutoff = report.cutoff,
                "retention run finished"
            ),
            Ok(None) => debug!(holder = %holder, "retention lease held by another replica"),
            Err(error) => {
                warn!(holder = %holder, error = %format!("{error:#}"), "retention run failed")
            }
        }
    }

    if let Err(error) = leases::release(&store, LEASE_NAME, &holder).await {
        warn!(holder = %holder, error = %format!("{error:#}"), "could not release the retention lease");
    }
}
