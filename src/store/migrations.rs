//! Schema migrations, embedded in the binary, one folder per dialect.
//!
//! Both folders carry the same versions; sqlx records applied versions in
//! `_sqlx_migrations` and takes a lock while migrating, so replicas starting
//! together apply each migration once.

use anyhow::Result;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::{Dialect, Store};

/// (version, description, SQLite text, PostgreSQL text)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "catalog, invocations and dedupe keys",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "usage counters, feedback and leases",
        include_str!("../../migrations/sqlite/0002_governance.sql"),
        include_str!("../../migrations/postgres/0002_governance.sql"),
    ),
    (
        3,
        "action runs",
        include_str!("../../migrations/sqlite/0003_action_runs.sql"),
        include_str!("../../migrations/postgres/0003_action_runs.sql"),
    ),
    (
        4,
        "catalog index rows without foreign key checks on PostgreSQL",
        include_str!("../../migrations/sqlite/0004_index_without_foreign_keys.sql"),
        include_str!("../../migrations/postgres/0004_index_without_foreign_keys.sql"),
    ),
];

/// Number of migrations embedded in this build.
pub fn count() -> usize {
    MIGRATIONS.len()
}

pub(super) async fn run(store: &Store) -> Result<()> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sqlite, postgres)| {
            let sql = match store.dialect() {
                Dialect::Sqlite => *sqlite,
                Dialect::Postgres => *postgres,
            };
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();

    Migrator::with_migrations(migrations)
        .run(store.pool())
        .await?;
    Ok(())
}
