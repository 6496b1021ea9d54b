//! The bundled demo catalog: Bramblewick, an invented outdoor-gear shop.
//!
//! It is embedded in the binary (so the container image has it too) and
//! loaded when the database holds no catalog at all, so a first question
//! works with no configuration. Its rows are marked as demo data, and the
//! first import of real data removes them.

use anyhow::{Context, Result};
use sqlx::Row;
use tracing::info;

use super::import::{self, ImportReport, Parsed, SourceKey};
use crate::clock::SharedClock;
use crate::store::Store;

/// Source key recorded on demo rows.
pub const DEMO_SOURCE: &str = "demo";

const BLUEPRINTS: &str = include_str!("demo/blueprints.json");
const ENTITIES: &str = include_str!("demo/entities.json");

/// Loads the demo catalog when no blueprint and no entity is stored.
/// Returns whether it was loaded.
pub async fn load_if_empty(store: &Store, clock: &SharedClock) -> Result<bool> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM entities) AS entities, \
         (SELECT COUNT(*) FROM blueprints) AS blueprints",
    )
    .fetch_one(store.pool())
    .await
    .context("could not check whether the catalog is empty")?;
    let entities: i64 = row.try_get("entities")?;
    let blueprints: i64 = row.try_get("blueprints")?;
    if entities > 0 || blueprints > 0 {
        return Ok(false);
    }

    let report = load(store, clock).await?;
    info!(
        entities = report.created,
        blueprints = report.blueprints,
        "loaded the demo catalog; import real catalog data to replace it"
    );
    Ok(true)
}

/// Writes the demo catalog.
pub async fn load(store: &Store, clock: &SharedClock) -> Result<ImportReport> {
    let mut parsed = Parsed::default();
    for (name, text) in [
        ("demo/blueprints.json", BLUEPRINTS),
        ("demo/entities.json", ENTITIES),
    ] {
        import::parse_port_text(text, name, &mut parsed).map_err(|problems| {
            anyhow::anyhow!(
                "the bundled demo catalog is invalid: {}",
                problems.join("; ")
            )
        })?;
    }
    let source = SourceKey {
        key: DEMO_SOURCE.to_string(),
        is_demo: true,
    };
    import::apply(store, clock, vec![(source, parsed)]).await
}

/// Reports whether the stored catalog is the demo catalog.
pub async fn is_loaded(store: &Store) -> Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM entities WHERE is_demo = 1")
        .fetch_one(store.pool())
        .await
        .context("could not check for the demo catalog")?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}
