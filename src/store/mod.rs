//! The database: one sqlx pool over SQLite (the default, a file) or
//! PostgreSQL (for several replicas), with the same queries on both.
//!
//! Queries go through sqlx's `Any` driver, so each statement is written once
//! with `$1`-style parameters, which both SQLite and PostgreSQL accept. Only
//! the schema differs by dialect (column types), and each dialect has its own
//! migration folder with the same versions. Values crossing this boundary are
//! limited to what `Any` carries: `i64`, `f64`, `String` and `NULL`. Times are
//! milliseconds since the Unix epoch and JSON documents are text.

pub mod action_runs;
pub mod audit;
pub mod dedupe;
pub mod feedback;
pub mod invocations;
pub mod leases;
pub mod migrations;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A migrated connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

/// How long the first connection may take before start-up fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a pooled connection by default.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SQLite connection waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

impl Store {
    /// Connects to `url`, creating a SQLite file when missing, and applies
    /// pending migrations.
    ///
    /// Accepted forms: `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`,
    /// `postgres://...` and `postgresql://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_timeout(url, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// Connects like [`Store::connect`]; a query that cannot get a pooled
    /// connection within `acquire_timeout` fails, which bounds how long
    /// work waits while the database is down.
    pub async fn connect_with_timeout(url: &str, acquire_timeout: Duration) -> Result<Self> {
        sqlx::any::install_default_drivers();
        crate::install_crypto_provider();

        let (dialect, url) = normalize_url(url)?;
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("invalid DATABASE_URL {}", redact_url(&url)))?;

        let pool_options = match dialect {
            Dialect::Sqlite => sqlite_pool_options(&url),
            Dialect::Postgres => postgres_pool_options(),
        };
        let options = options
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let failure = || {
            format!(
                "could not connect to the database at {}: check DATABASE_URL and that the server \
                 is running and accepts connections",
                redact_url(&url)
            )
        };
        // One direct connection first, so a refused connection, a wrong
        // password or a read-only file reports its cause at once instead of
        // a pool timeout.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}"))
            .with_context(failure)?
            .with_context(failure)?;
        let mut probe = probe;
        if dialect == Dialect::Sqlite {
            // WAL needs write access, so a read-only file fails here.
            probe
                .execute("PRAGMA journal_mode = WAL")
                .await
                .with_context(failure)?;
        }
        probe.close().await.ok();

        let pool = pool_options
            .acquire_timeout(acquire_timeout.max(Duration::from_millis(100)))
            .connect_with(options)
            .await
            .with_context(failure)?;

        let store = Self { pool, dialect };
        migrations::run(&store)
            .await
            .context("could not apply database migrations")?;
        Ok(store)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Refreshes the query planner's statistics of the catalog tables, so
    /// searches right after a large import use their indexes well. On
    /// SQLite it samples at most 1,000 rows per index, which keeps it fast
    /// on a large catalog. On PostgreSQL it also vacuums them, which marks
    /// the new rows visible to all, so searches read the indexes alone
    /// instead of visiting each row.
    pub async fn refresh_catalog_statistics(&self) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                let mut connection = self.pool.acquire().await?;
                sqlx::query("PRAGMA analysis_limit = 1000")
                    .execute(&mut *connection)
                    .await?;
                sqlx::query("ANALYZE").execute(&mut *connection).await?;
            }
            Dialect::Postgres => {
                sqlx::query(
                    // Without TRUNCATE, VACUUM takes no lock that would
                    // pause searches running meanwhile.
                    "VACUUM (ANALYZE, TRUNCATE false) entities, entity_relations, \
                     entity_property_values, search_terms, search_vocab, search_grams",
                )
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Closes every connection; used at shutdown so SQLite checkpoints its
    /// write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn postgres_pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(16)
        .after_connect(|connection, _| {
            Box::pin(async move {
                // Search terms are skewed: one word may have a handful of
                // postings and another every entity of a blueprint. After
                // five runs of a prepared statement PostgreSQL may switch
                // to one plan for every value, chosen for an average term,
                // which read 20,000 rows where the term in hand needed a
                // few hundred. Planning each run costs well under a
                // millisecond.
                connection
                    .execute("SET plan_cache_mode = force_custom_plan")
                    .await?;
                Ok(())
            })
        })
}

fn sqlite_pool_options(url: &str) -> AnyPoolOptions {
    // An in-memory database exists once per connection, so it gets one.
    let max_connections = if url.contains(":memory:") { 1 } else { 8 };

    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(|connection, _| {
            Box::pin(async move {
                // WAL lets readers run beside one writer, and the busy timeout
                // makes writers from several processes wait instead of failing.
                connection.execute("PRAGMA journal_mode = WAL").await?;
                connection
                    .execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                    )))
                    .await?;
                connection.execute("PRAGMA foreign_keys = ON").await?;
                connection.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
}

/// Splits a database URL into its dialect and the URL sqlx understands.
fn normalize_url(url: &str) -> Result<(Dialect, String)> {
    let url = url.trim();

    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Dialect::Postgres, url.to_string()));
    }

    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.contains(":memory:") {
            return Ok((Dialect::Sqlite, "sqlite::memory:".to_string()));
        }
        let path = rest.trim_start_matches("//");
        if path.is_empty() {
            bail!("invalid DATABASE_URL {url:?}: the SQLite file path is empty");
        }
        let separator = if path.contains('?') { '&' } else { '?' };
        let mode = if path.contains("mode=") {
            String::new()
        } else {
            format!("{separator}mode=rwc")
        };
        return Ok((Dialect::Sqlite, format!("sqlite://{path}{mode}")));
    }

    bail!(
        "invalid DATABASE_URL {:?}: expected sqlite://PATH or postgres://USER@HOST/DB",
        redact_url(url)
    )
}

/// Removes a password from a URL before it reaches a message or log.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match base.split_once("://") {
        // The last `@` ends the credentials: a password may contain `@`.
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&parameters.join("&"));
    }
    shown
}
