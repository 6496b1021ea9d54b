//! The write side of the catalog: entity rows and the index rows derived
//! from them (relations, property values, search terms, vocabulary and
//! trigrams), written in batches inside the caller's transaction.
//!
//! Statements carry many rows each, because a round trip per row would keep
//! a large import far below its target rate. Each statement stays under
//! [`MAX_PARAMETERS`] bind parameters, well below SQLite's 32,766 and
//! PostgreSQL's 65,535.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::normalize::{compact, is_stopword, is_typo_tolerant, terms, trigrams};
use super::{EntityDoc, EntityRef};

const MAX_PARAMETERS: usize = 9_000;

/// Longest term or property value worth indexing, in characters.
const MAX_INDEXED_LEN: usize = 200;

/// Description terms indexed per entity.
const MAX_DESCRIPTION_TERMS: usize = 120;

/// Search field of a term, from most to least telling; the numbers are
/// stored, so they must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Field {
    Identifier = 0,
    Title = 1,
    Tag = 2,
    Description = 3,
    Blueprint = 4,
}

impl Field {
    pub(crate) fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Identifier,
            1 => Self::Title,
            2 => Self::Tag,
            3 => Self::Description,
            _ => Self::Blueprint,
        }
    }

    /// How much a match in this field counts toward an entity's score.
    pub(crate) fn weight(self) -> f64 {
        match self {
            Self::Identifier => 1.0,
            Self::Title => 0.9,
            Self::Tag => 0.6,
            Self::Description => 0.3,
            Self::Blueprint => 0.25,
        }
    }
}

/// An entity ready to be written, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct PendingEntity {
    pub doc: EntityDoc,
    pub source: String,
    pub is_demo: bool,
    pub content_hash: String,
    /// True when the entity was not stored before, so it has no index rows
    /// to clear.
    pub is_new: bool,
}

/// Returns a stable hash of everything stored for an entity, so a re-import
/// can skip unchanged entities. FNV-1a over canonical JSON: the standard
/// library's hasher may change between Rust releases.
pub(crate) fn content_hash(doc: &EntityDoc, source: &str) -> String {
    let canonical = serde_json::json!({
        "blueprint": doc.blueprint,
        "identifier": doc.identifier,
        "name": doc.name,
        "title": doc.title,
        "description": doc.description,
        "properties": doc.properties,
        "relations": doc.relations.iter().map(|(name, targets)| {
            (name.clone(), targets.iter().map(ToString::to_string).collect::<Vec<_>>())
        }).collect::<std::collections::BTreeMap<_, _>>(),
        "source": source,
    });
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in canonical.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Returns the search terms of an entity with the field each came from.
pub(crate) fn search_terms(doc: &EntityDoc, blueprint_title: &str) -> BTreeSet<(String, Field)> {
    let mut rows = BTreeSet::new();
    let mut add = |term: String, field: Field| {
        let length = term.chars().count();
        if length > 0 && length <= MAX_INDEXED_LEN {
            rows.insert((term, field));
        }
    };

    for text in [&doc.identifier, &doc.name] {
        for term in terms(text) {
            add(term, Field::Identifier);
        }
        add(compact(text), Field::Identifier);
    }

    for term in terms(&doc.title) {
        add(term, Field::Title);
    }
    add(compact(&doc.title), Field::Title);

    for tag in tags(doc) {
        for term in terms(&tag) {
            add(term, Field::Tag);
        }
        add(compact(&tag), Field::Tag);
    }

    for term in terms(&doc.description)
        .into_iter()
        .filter(|term| !is_stopword(term))
        .take(MAX_DESCRIPTION_TERMS)
    {
        add(term, Field::Description);
    }

    for text in [doc.blueprint.as_str(), blueprint_title] {
        for term in terms(text) {
            add(term, Field::Blueprint);
        }
    }
    rows
}

fn tags(doc: &EntityDoc) -> Vec<String> {
    match doc.properties.get("tags") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(tag)) => vec![tag.clone()],
        _ => Vec::new(),
    }
}

/// Returns the indexed values of an entity's properties: each scalar, and
/// each scalar element of an array, lower-cased, with numbers kept as
/// numbers too.
pub(crate) fn property_values(
    doc: &EntityDoc,
) -> BTreeSet<(String, String, Option<OrderedNumber>)> {
    let mut rows = BTreeSet::new();
    for (name, value) in &doc.properties {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let (text, number) = match item {
                Value::String(text) => (text.to_lowercase(), None),
                Value::Number(number) => (number.to_string(), number.as_f64()),
                Value::Bool(flag) => (flag.to_string(), None),
                _ => continue,
            };
            if text.chars().count() <= MAX_INDEXED_LEN {
                rows.insert((name.clone(), text, number.map(OrderedNumber)));
            }
        }
    }
    rows
}

/// An `f64` that sorts, for set membership of property rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrderedNumber(pub f64);

impl Eq for OrderedNumber {}

impl PartialOrd for OrderedNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Builds the placeholders of a multi-row statement whose only parameters
/// are its rows: `(?, ?), (?, ?)` on SQLite, `($1, $2), ($3, $4)` on
/// PostgreSQL.
///
/// SQLite resolves each numbered parameter by a linear search of the
/// statement's parameter names, so a statement with thousands of `$N`
/// parameters binds in quadratic time; anonymous `?` parameters bind in
/// constant time.
fn row_placeholders(connection: &AnyConnection, rows: usize, columns: usize) -> String {
    if is_sqlite(connection) {
        let row = format!("({})", vec!["?"; columns].join(", "));
        return vec![row; rows].join(", ");
    }
    placeholders(rows, columns)
}

/// Builds an `IN (...)` list that is a statement's only parameters.
fn id_placeholders(connection: &AnyConnection, count: usize) -> String {
    if is_sqlite(connection) {
        vec!["?"; count].join(", ")
    } else {
        list_placeholders(1, count)
    }
}

fn is_sqlite(connection: &AnyConnection) -> bool {
    connection.backend_name().eq_ignore_ascii_case("sqlite")
}

/// Builds `($1, $2), ($3, $4), ...` for a multi-row statement.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push('$');
            text.push_str(&(row * columns + column + 1).to_string());
        }
        text.push(')');
    }
    text
}

/// Builds `$1, $2, ...` for an `IN (...)` list starting at `first`.
pub(crate) fn list_placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes entities and their index rows; returns each entity's row id.
///
/// `known_terms` is the vocabulary already stored; it is extended with the
/// terms this call adds, so a long import checks each new term once.
pub(crate) async fn write_entities(
    connection: &mut AnyConnection,
    entities: &[PendingEntity],
    blueprint_titles: &HashMap<String, String>,
    known_terms: &mut HashSet<String>,
    now: i64,
) -> Result<Vec<i64>> {
    let ids = upsert_entity_rows(connection, entities, now).await?;
    let stored_before: Vec<i64> = entities
        .iter()
        .zip(&ids)
        .filter(|(entity, _)| !entity.is_new)
        .map(|(_, id)| *id)
        .collect();
    delete_index_rows(connection, &stored_before).await?;

    let mut relation_rows = Vec::new();
    let mut property_rows = Vec::new();
    let mut term_rows = Vec::new();
    let mut new_terms = BTreeSet::new();

    for (entity, id) in entities.iter().zip(&ids) {
        for (name, targets) in &entity.doc.relations {
            for target in targets {
                relation_rows.push((*id, name.clone(), target.clone()));
            }
        }
        for (name, value, number) in property_values(&entity.doc) {
            property_rows.push((*id, name, value, number.map(|number| number.0)));
        }
        let title = blueprint_titles
            .get(&entity.doc.blueprint)
            .map(String::as_str)
            .unwrap_or("");
        for (term, field) in search_terms(&entity.doc, title) {
            if !known_terms.contains(&term) {
                new_terms.insert(term.clone());
            }
            term_rows.push((term, *id, field as i64));
        }
    }

    insert_relations(connection, &relation_rows).await?;
    insert_properties(connection, &property_rows).await?;
    insert_terms(connection, &term_rows).await?;
    insert_vocabulary(connection, &new_terms).await?;
    known_terms.extend(new_terms);
    Ok(ids)
}

async fn upsert_entity_rows(
    connection: &mut AnyConnection,
    entities: &[PendingEntity],
    now: i64,
) -> Result<Vec<i64>> {
    const COLUMNS: usize = 10;
    let mut ids_by_ref: HashMap<EntityRef, i64> = HashMap::with_capacity(entities.len());

    for chunk in entities.chunks(MAX_PARAMETERS / COLUMNS) {
        let sql = format!(
            "INSERT INTO entities (blueprint, identifier, name, title, description, \
             properties_json, source, is_demo, content_hash, updated_at) VALUES {} \
             ON CONFLICT (blueprint, identifier) DO UPDATE SET name = excluded.name, \
             title = excluded.title, description = excluded.description, \
             properties_json = excluded.properties_json, source = excluded.source, \
             is_demo = excluded.is_demo, content_hash = excluded.content_hash, \
             updated_at = excluded.updated_at \
             RETURNING id, blueprint, identifier",
            row_placeholders(connection, chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for entity in chunk {
            let doc = &entity.doc;
            query = query
                .bind(doc.blueprint.clone())
                .bind(doc.identifier.clone())
                .bind(doc.name.to_lowercase())
                .bind(doc.title.clone())
                .bind(doc.description.clone())
                .bind(Value::Object(doc.properties.clone()).to_string())
                .bind(entity.source.clone())
                .bind(i64::from(entity.is_demo))
                .bind(entity.content_hash.clone())
                .bind(now);
        }
        let rows = query
            .fetch_all(&mut *connection)
            .await
            .context("could not write entities")?;
        for row in rows {
            let reference = EntityRef::new(
                row.try_get::<String, _>("blueprint")?,
                row.try_get::<String, _>("identifier")?,
            );
            ids_by_ref.insert(reference, row.try_get("id")?);
        }
    }

    entities
        .iter()
        .map(|entity| {
            let reference = EntityRef::new(&entity.doc.blueprint, &entity.doc.identifier);
            ids_by_ref
                .get(&reference)
                .copied()
                .with_context(|| format!("the database returned no id for {reference}"))
        })
        .collect()
}

async fn delete_index_rows(connection: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    let statements = [
        "DELETE FROM entity_relations WHERE source_id IN",
        "DELETE FROM entity_property_values WHERE entity_id IN",
        "DELETE FROM search_terms WHERE entity_id IN",
    ];
    for chunk in ids.chunks(MAX_PARAMETERS) {
        for statement in statements {
            let sql = format!("{statement} ({})", id_placeholders(connection, chunk.len()));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            query
                .execute(&mut *connection)
                .await
                .context("could not clear an entity's index rows")?;
        }
    }
    Ok(())
}

async fn insert_relations(
    connection: &mut AnyConnection,
    rows: &[(i64, String, EntityRef)],
) -> Result<()> {
    const COLUMNS: usize = 4;
    for chunk in rows.chunks(MAX_PARAMETERS / COLUMNS) {
        let sql = format!(
            "INSERT INTO entity_relations (source_id, name, target_blueprint, target_identifier) \
             VALUES {} ON CONFLICT DO NOTHING",
            row_placeholders(connection, chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, name, target) in chunk {
            query = query
                .bind(*id)
                .bind(name.clone())
                .bind(target.blueprint.clone())
                .bind(target.identifier.clone());
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not write entity relations")?;
    }
    Ok(())
}

async fn insert_properties(
    connection: &mut AnyConnection,
    rows: &[(i64, String, String, Option<f64>)],
) -> Result<()> {
    const COLUMNS: usize = 4;
    for chunk in rows.chunks(MAX_PARAMETERS / COLUMNS) {
        let sql = format!(
            "INSERT INTO entity_property_values (entity_id, name, value, num_value) VALUES {} \
             ON CONFLICT DO NOTHING",
            row_placeholders(connection, chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, name, value, number) in chunk {
            query = query
                .bind(*id)
                .bind(name.clone())
                .bind(value.clone())
                .bind(*number);
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not write entity property values")?;
    }
    Ok(())
}

async fn insert_terms(connection: &mut AnyConnection, rows: &[(String, i64, i64)]) -> Result<()> {
    const COLUMNS: usize = 3;
    for chunk in rows.chunks(MAX_PARAMETERS / COLUMNS) {
        let sql = format!(
            "INSERT INTO search_terms (term, entity_id, field) VALUES {} ON CONFLICT DO NOTHING",
            row_placeholders(connection, chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (term, id, field) in chunk {
            query = query.bind(term.clone()).bind(*id).bind(*field);
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not write search terms")?;
    }
    Ok(())
}

async fn insert_vocabulary(connection: &mut AnyConnection, terms: &BTreeSet<String>) -> Result<()> {
    let terms: Vec<&String> = terms.iter().collect();
    for chunk in terms.chunks(MAX_PARAMETERS) {
        let sql = format!(
            "INSERT INTO search_vocab (term) VALUES {} ON CONFLICT DO NOTHING",
            row_placeholders(connection, chunk.len(), 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for term in chunk {
            query = query.bind((*term).clone());
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not write the search vocabulary")?;
    }

    let mut gram_rows = Vec::new();
    for term in terms.into_iter().filter(|term| is_typo_tolerant(term)) {
        let length = term.chars().count() as i64;
        for gram in trigrams(term) {
            gram_rows.push((gram, length, term.clone()));
        }
    }
    const COLUMNS: usize = 3;
    for chunk in gram_rows.chunks(MAX_PARAMETERS / COLUMNS) {
        let sql = format!(
            "INSERT INTO search_grams (gram, term_length, term) VALUES {} ON CONFLICT DO NOTHING",
            row_placeholders(connection, chunk.len(), COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (gram, length, term) in chunk {
            query = query.bind(gram.clone()).bind(*length).bind(term.clone());
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not write search trigrams")?;
    }
    Ok(())
}

/// Loads the stored vocabulary.
pub(crate) async fn load_vocabulary(connection: &mut AnyConnection) -> Result<HashSet<String>> {
    let rows = sqlx::query("SELECT term FROM search_vocab")
        .fetch_all(&mut *connection)
        .await
        .context("could not read the search vocabulary")?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("term").map_err(Into::into))
        .collect()
}

/// Deletes entities (their index rows go with them) by row id.
pub(crate) async fn delete_entities(connection: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    // Index rows are deleted explicitly as well as by cascade, so a SQLite
    // connection opened without foreign keys cannot leave orphans behind.
    delete_index_rows(connection, ids).await?;
    for chunk in ids.chunks(MAX_PARAMETERS) {
        let sql = format!(
            "DELETE FROM entities WHERE id IN ({})",
            id_placeholders(connection, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(*id);
        }
        query
            .execute(&mut *connection)
            .await
            .context("could not delete entities")?;
    }
    Ok(())
}

/// Removes vocabulary terms, and their trigrams, that no entity uses any more.
pub(crate) async fn prune_vocabulary(connection: &mut AnyConnection) -> Result<()> {
    sqlx::query(
        "DELETE FROM search_vocab WHERE NOT EXISTS \
         (SELECT 1 FROM search_terms t WHERE t.term = search_vocab.term)",
    )
    .execute(&mut *connection)
    .await
    .context("could not prune the search vocabulary")?;
    sqlx::query(
        "DELETE FROM search_grams WHERE NOT EXISTS \
         (SELECT 1 FROM search_vocab v WHERE v.term = search_grams.term)",
    )
    .execute(&mut *connection)
    .await
    .context("could not prune search trigrams")?;
    Ok(())
}

/// Most distinct values a property may have for its values to be listed as
/// the blueprint's common values (enum-like properties).
const MAX_SAMPLED_VALUES: usize = 25;

/// Recomputes the common property values stored with each given blueprint,
/// which `list_blueprints` shows so a model knows what to filter on.
pub(crate) async fn refresh_value_samples(
    connection: &mut AnyConnection,
    blueprints: &BTreeSet<String>,
) -> Result<()> {
    for blueprint in blueprints {
        let rows = sqlx::query(
            "SELECT p.name AS name, p.value AS value, COUNT(*) AS n \
             FROM entity_property_values p JOIN entities e ON e.id = p.entity_id \
             WHERE e.blueprint = $1 GROUP BY p.name, p.value",
        )
        .bind(blueprint.clone())
        .fetch_all(&mut *connection)
        .await
        .context("could not count property values")?;

        let mut by_property: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for row in rows {
            by_property
                .entry(row.try_get("name")?)
                .or_default()
                .push((row.try_get("n")?, row.try_get("value")?));
        }

        let mut samples = serde_json::Map::new();
        for (property, mut values) in by_property {
            if values.len() > MAX_SAMPLED_VALUES {
                continue;
            }
            values.sort_by(|left, right| right.0.cmp(&left.0).then(left.1.cmp(&right.1)));
            samples.insert(
                property,
                Value::Array(
                    values
                        .into_iter()
                        .map(|(_, value)| Value::String(value))
                        .collect(),
                ),
            );
        }

        sqlx::query("UPDATE blueprints SET value_samples_json = $1 WHERE identifier = $2")
            .bind(Value::Object(samples).to_string())
            .bind(blueprint.clone())
            .execute(&mut *connection)
            .await
            .context("could not store common property values")?;
    }
    Ok(())
}
