//! The read side of the catalog: blueprint lists, entity details with
//! relations in both directions, name resolution, counts and stats.
//!
//! Every query takes a [`Scope`] and never returns an entity outside it,
//! not even as the far end of a relation.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

use super::index::list_placeholders;
use super::normalize::compact;
use super::search::{Filter, filter_sql};
use super::{Catalog, EntityRef, OWNED_BY, RelationDef, Scope, inverse_relation};

/// Longest string property value shown, in characters; longer ones are cut
/// with a note.
const MAX_VALUE_CHARS: usize = 400;

/// Common values shown per property, and the longest value worth showing.
const MAX_SAMPLES_SHOWN: usize = 12;
const MAX_SAMPLE_CHARS: usize = 40;

/// Relations listed per entity in each direction; the totals are reported
/// beside them, so a team with hundreds of members stays a small result.
/// Search with a relation filter lists the rest.
const MAX_INCOMING: i64 = 50;
const MAX_OUTGOING: usize = 50;

/// What `list_blueprints` shows about one property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyInfo {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Values the schema allows.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Values found in the catalog, most frequent first, for properties
    /// with few distinct values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_values: Option<Vec<String>>,
}

/// A blueprint with its schema and how many entities it has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlueprintInfo {
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub entity_count: i64,
    pub properties: BTreeMap<String, PropertyInfo>,
    pub relations: BTreeMap<String, RelationDef>,
}

/// The far end of a relation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkedEntity {
    #[serde(rename = "ref")]
    pub reference: String,
    pub title: Option<String>,
    /// False for a dangling reference: no such entity is in the catalog.
    pub found: bool,
}

/// A relation from the entity to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutgoingLink {
    pub relation: String,
    pub target: LinkedEntity,
}

/// A relation from another entity to this one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncomingLink {
    /// The relation as the other entity declares it.
    pub relation: String,
    /// The same relation read from this side, where it has a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inverse: Option<&'static str>,
    pub source: LinkedEntity,
}

/// One entity with its relations in both directions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityDetail {
    #[serde(rename = "ref")]
    pub reference: String,
    pub blueprint: String,
    pub blueprint_title: String,
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub properties: Map<String, Value>,
    /// Entities it is owned by (the `ownedBy` relation).
    pub owners: Vec<LinkedEntity>,
    /// Relations it declares, ownership excluded; at most 50.
    pub relations: Vec<OutgoingLink>,
    /// How many relations it declares, ownership excluded.
    pub relations_total: usize,
    /// Relations other entities declare to it.
    pub referenced_by: Vec<IncomingLink>,
    /// How many incoming relations exist; `referenced_by` lists at most 50.
    pub referenced_by_total: i64,
}

/// An entity as listed in search results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntitySummary {
    #[serde(rename = "ref")]
    pub reference: String,
    pub blueprint: String,
    pub identifier: String,
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub properties: Map<String, Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, Vec<String>>,
    /// Set in text search when the whole query is this entity's identifier,
    /// name or title.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exact_match: bool,
}

/// The answer of a count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountResult {
    pub total: i64,
    pub by_blueprint: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_value: Option<BTreeMap<String, i64>>,
}

/// One line of `catalog stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlueprintCount {
    pub identifier: String,
    pub title: String,
    pub entities: i64,
    pub is_demo: bool,
}

impl Catalog {
    /// Lists the blueprints in scope with their schemas and entity counts.
    pub async fn list_blueprints(&self, scope: &Scope) -> Result<Vec<BlueprintInfo>> {
        let counts = self.entity_counts().await?;
        let rows = sqlx::query(
            "SELECT identifier, title, description, schema_json, relations_json, \
             value_samples_json FROM blueprints ORDER BY identifier",
        )
        .fetch_all(self.store().pool())
        .await
        .context("could not list blueprints")?;

        let mut blueprints = Vec::new();
        for row in rows {
            let identifier: String = row.try_get("identifier")?;
            if !scope.allows(&identifier) {
                continue;
            }
            let schema: Value = parse_json(&row.try_get::<String, _>("schema_json")?)?;
            let samples: Value = parse_json(&row.try_get::<String, _>("value_samples_json")?)?;
            let mut relations: BTreeMap<String, RelationDef> =
                serde_json::from_str(&row.try_get::<String, _>("relations_json")?)
                    .context("stored relations are not valid JSON")?;
            relations
                .retain(|_, relation| relation.target.is_empty() || scope.allows(&relation.target));

            blueprints.push(BlueprintInfo {
                entity_count: counts.get(&identifier).copied().unwrap_or(0),
                identifier,
                title: row.try_get("title")?,
                description: row.try_get("description")?,
                properties: property_infos(&schema, &samples),
                relations,
            });
        }
        Ok(blueprints)
    }

    async fn entity_counts(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT blueprint, COUNT(*) AS n FROM entities GROUP BY blueprint")
            .fetch_all(self.store().pool())
            .await
            .context("could not count entities")?;
        rows.iter()
            .map(|row| Ok((row.try_get("blueprint")?, row.try_get("n")?)))
            .collect()
    }

    /// Counts entities per blueprint for `catalog stats`.
    pub async fn stats(&self) -> Result<Vec<BlueprintCount>> {
        let rows = sqlx::query(
            "SELECT b.identifier AS identifier, b.title AS title, b.is_demo AS is_demo, \
             (SELECT COUNT(*) FROM entities e WHERE e.blueprint = b.identifier) AS n \
             FROM blueprints b ORDER BY b.identifier",
        )
        .fetch_all(self.store().pool())
        .await
        .context("could not count entities per blueprint")?;
        rows.iter()
            .map(|row| {
                Ok(BlueprintCount {
                    identifier: row.try_get("identifier")?,
                    title: row.try_get("title")?,
                    entities: row.try_get("n")?,
                    is_demo: row.try_get::<i64, _>("is_demo")? != 0,
                })
            })
            .collect()
    }

    /// Finds the entities a name may mean: an exact `blueprint:identifier`,
    /// else every entity with that identifier or bare name in any
    /// blueprint. Several matches are all returned, never one picked.
    pub async fn resolve(&self, scope: &Scope, name: &str) -> Result<Vec<EntityRef>> {
        let name = name.trim();
        if let Some(reference) = EntityRef::parse(name)
            && scope.allows(&reference.blueprint)
            && self.entity_id(&reference).await?.is_some()
        {
            return Ok(vec![reference]);
        }

        let rows = sqlx::query(
            "SELECT blueprint, identifier FROM entities WHERE identifier = $1 OR name = $2 \
             ORDER BY blueprint, identifier LIMIT 50",
        )
        .bind(name.to_string())
        .bind(name.to_lowercase())
        .fetch_all(self.store().pool())
        .await
        .context("could not look up the entity name")?;

        let mut matches = Vec::new();
        for row in rows {
            let reference = EntityRef::new(
                row.try_get::<String, _>("blueprint")?,
                row.try_get::<String, _>("identifier")?,
            );
            if scope.allows(&reference.blueprint) {
                matches.push(reference);
            }
        }
        Ok(matches)
    }

    async fn entity_id(&self, reference: &EntityRef) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM entities WHERE blueprint = $1 AND identifier = $2")
            .bind(reference.blueprint.clone())
            .bind(reference.identifier.clone())
            .fetch_optional(self.store().pool())
            .await
            .context("could not look up the entity")?;
        row.map(|row| row.try_get("id"))
            .transpose()
            .map_err(Into::into)
    }

    /// Loads one entity with its relations in both directions.
    pub async fn get(&self, scope: &Scope, reference: &EntityRef) -> Result<Option<EntityDetail>> {
        if !scope.allows(&reference.blueprint) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT e.id AS id, e.title AS title, e.description AS description, \
             e.properties_json AS properties_json, b.title AS blueprint_title \
             FROM entities e LEFT JOIN blueprints b ON b.identifier = e.blueprint \
             WHERE e.blueprint = $1 AND e.identifier = $2",
        )
        .bind(reference.blueprint.clone())
        .bind(reference.identifier.clone())
        .fetch_optional(self.store().pool())
        .await
        .context("could not load the entity")?;
        let Some(row) = row else {
            return Ok(None);
        };

        let id: i64 = row.try_get("id")?;
        let properties = match parse_json(&row.try_get::<String, _>("properties_json")?)? {
            Value::Object(properties) => bounded_properties(&properties, MAX_VALUE_CHARS),
            _ => Map::new(),
        };
        let (owners, mut relations) = self.outgoing(scope, id).await?;
        let relations_total = relations.len();
        relations.truncate(MAX_OUTGOING);
        let (referenced_by, referenced_by_total) = self.incoming(scope, reference).await?;

        Ok(Some(EntityDetail {
            reference: reference.to_string(),
            blueprint: reference.blueprint.clone(),
            blueprint_title: row
                .try_get::<Option<String>, _>("blueprint_title")?
                .unwrap_or_else(|| reference.blueprint.clone()),
            identifier: reference.identifier.clone(),
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            properties,
            owners,
            relations,
            relations_total,
            referenced_by,
            referenced_by_total,
        }))
    }

    async fn outgoing(
        &self,
        scope: &Scope,
        id: i64,
    ) -> Result<(Vec<LinkedEntity>, Vec<OutgoingLink>)> {
        let rows = sqlx::query(
            "SELECT r.name AS name, r.target_blueprint AS target_blueprint, \
             r.target_identifier AS target_identifier, e.title AS title, e.id AS target_id \
             FROM entity_relations r LEFT JOIN entities e \
             ON e.blueprint = r.target_blueprint AND e.identifier = r.target_identifier \
             WHERE r.source_id = $1 ORDER BY r.name, r.target_blueprint, r.target_identifier",
        )
        .bind(id)
        .fetch_all(self.store().pool())
        .await
        .context("could not load the entity's relations")?;

        let mut owners = Vec::new();
        let mut links = Vec::new();
        for row in rows {
            let target = EntityRef::new(
                row.try_get::<String, _>("target_blueprint")?,
                row.try_get::<String, _>("target_identifier")?,
            );
            if !target.blueprint.is_empty() && !scope.allows(&target.blueprint) {
                continue;
            }
            let name: String = row.try_get("name")?;
            let linked = LinkedEntity {
                reference: target.to_string(),
                title: row.try_get("title")?,
                found: row.try_get::<Option<i64>, _>("target_id")?.is_some(),
            };
            if name == OWNED_BY {
                owners.push(linked);
            } else {
                links.push(OutgoingLink {
                    relation: name,
                    target: linked,
                });
            }
        }
        Ok((owners, links))
    }

    async fn incoming(
        &self,
        scope: &Scope,
        reference: &EntityRef,
    ) -> Result<(Vec<IncomingLink>, i64)> {
        let (scope_sql, scope_values) = scope_clause(scope, "e.blueprint", 3);
        let sql = format!(
            "SELECT r.name AS name, e.blueprint AS blueprint, e.identifier AS identifier, \
             e.title AS title FROM entity_relations r JOIN entities e ON e.id = r.source_id \
             WHERE r.target_blueprint = $1 AND r.target_identifier = $2{scope_sql} \
             ORDER BY r.name, e.blueprint, e.identifier LIMIT {MAX_INCOMING}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference.blueprint.clone())
            .bind(reference.identifier.clone());
        for value in &scope_values {
            query = query.bind(value.clone());
        }
        let rows = query
            .fetch_all(self.store().pool())
            .await
            .context("could not load the relations to the entity")?;

        let mut links = Vec::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            let source = EntityRef::new(
                row.try_get::<String, _>("blueprint")?,
                row.try_get::<String, _>("identifier")?,
            );
            links.push(IncomingLink {
                inverse: inverse_relation(&name),
                relation: name,
                source: LinkedEntity {
                    reference: source.to_string(),
                    title: row.try_get("title")?,
                    found: true,
                },
            });
        }

        let total = if (links.len() as i64) < MAX_INCOMING {
            links.len() as i64
        } else {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM entity_relations r JOIN entities e ON e.id = r.source_id \
                 WHERE r.target_blueprint = $1 AND r.target_identifier = $2{scope_sql}"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(reference.blueprint.clone())
                .bind(reference.identifier.clone());
            for value in &scope_values {
                query = query.bind(value.clone());
            }
            query
                .fetch_one(self.store().pool())
                .await
                .context("could not count the relations to the entity")?
                .try_get("n")?
        };
        Ok((links, total))
    }

    /// Counts entities in scope, optionally of one blueprint, matching the
    /// filters, and optionally grouped by the values of one property.
    pub async fn count(
        &self,
        scope: &Scope,
        blueprint: Option<&str>,
        filters: &[Filter],
        group_by: Option<&str>,
    ) -> Result<CountResult> {
        let (where_sql, values) = filter_sql(scope, blueprint, filters, 1);
        let sql = format!(
            "SELECT e.blueprint AS blueprint, COUNT(*) AS n FROM entities e WHERE {where_sql} \
             GROUP BY e.blueprint"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in &values {
            query = query.bind(value.clone());
        }
        let rows = query
            .fetch_all(self.store().pool())
            .await
            .context("could not count entities")?;

        let mut by_blueprint = BTreeMap::new();
        for row in rows {
            by_blueprint.insert(
                row.try_get::<String, _>("blueprint")?,
                row.try_get::<i64, _>("n")?,
            );
        }
        let total = by_blueprint.values().sum();

        let by_value = match group_by {
            Some(property) => Some(self.count_by_value(&where_sql, &values, property).await?),
            None => None,
        };
        Ok(CountResult {
            total,
            by_blueprint,
            by_value,
        })
    }

    async fn count_by_value(
        &self,
        where_sql: &str,
        values: &[String],
        property: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let parameter = values.len() + 1;
        let sql = format!(
            "SELECT p.value AS value, COUNT(*) AS n FROM entities e \
             JOIN entity_property_values p ON p.entity_id = e.id AND p.name = ${parameter} \
             WHERE {where_sql} GROUP BY p.value ORDER BY n DESC LIMIT 100"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in values {
            query = query.bind(value.clone());
        }
        let rows = query
            .bind(property.to_string())
            .fetch_all(self.store().pool())
            .await
            .context("could not count entities by property value")?;
        rows.iter()
            .map(|row| Ok((row.try_get("value")?, row.try_get("n")?)))
            .collect()
    }

    /// Loads search-result summaries for row ids, in the order given.
    pub(crate) async fn summaries(&self, scope: &Scope, ids: &[i64]) -> Result<Vec<EntitySummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, blueprint, identifier, title, description, properties_json \
             FROM entities WHERE id IN ({})",
            list_placeholders(1, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query
            .fetch_all(self.store().pool())
            .await
            .context("could not load search results")?;

        let relations = self.relation_lists(scope, ids).await?;
        let mut by_id = HashMap::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let blueprint: String = row.try_get("blueprint")?;
            let identifier: String = row.try_get("identifier")?;
            let properties = match parse_json(&row.try_get::<String, _>("properties_json")?)? {
                Value::Object(properties) => summary_properties(&properties),
                _ => Map::new(),
            };
            let description: String = row.try_get("description")?;
            by_id.insert(
                id,
                EntitySummary {
                    reference: EntityRef::new(&blueprint, &identifier).to_string(),
                    blueprint,
                    identifier,
                    title: row.try_get("title")?,
                    description: truncate_chars(&description, 300),
                    properties,
                    relations: relations.get(&id).cloned().unwrap_or_default(),
                    exact_match: false,
                },
            );
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn relation_lists(
        &self,
        scope: &Scope,
        ids: &[i64],
    ) -> Result<HashMap<i64, BTreeMap<String, Vec<String>>>> {
        let sql = format!(
            "SELECT source_id, name, target_blueprint, target_identifier FROM entity_relations \
             WHERE source_id IN ({}) ORDER BY name, target_identifier",
            list_placeholders(1, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query
            .fetch_all(self.store().pool())
            .await
            .context("could not load relations of search results")?;

        let mut relations: HashMap<i64, BTreeMap<String, Vec<String>>> = HashMap::new();
        for row in rows {
            let target = EntityRef::new(
                row.try_get::<String, _>("target_blueprint")?,
                row.try_get::<String, _>("target_identifier")?,
            );
            if !target.blueprint.is_empty() && !scope.allows(&target.blueprint) {
                continue;
            }
            relations
                .entry(row.try_get("source_id")?)
                .or_default()
                .entry(row.try_get("name")?)
                .or_default()
                .push(target.to_string());
        }
        Ok(relations)
    }
}

/// Builds ` AND column IN (...)` for a scope, with parameters from `first`.
pub(crate) fn scope_clause(scope: &Scope, column: &str, first: usize) -> (String, Vec<String>) {
    match scope {
        Scope::All => (String::new(), Vec::new()),
        Scope::Blueprints(allowed) if allowed.is_empty() => (" AND 1 = 0".to_string(), Vec::new()),
        Scope::Blueprints(allowed) => (
            format!(
                " AND {column} IN ({})",
                list_placeholders(first, allowed.len())
            ),
            allowed.iter().cloned().collect(),
        ),
    }
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).context("a stored JSON document is invalid")
}

fn property_infos(schema: &Value, samples: &Value) -> BTreeMap<String, PropertyInfo> {
    let mut infos = BTreeMap::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, definition) in properties {
            let text = |key: &str| {
                definition
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            infos.insert(
                name.clone(),
                PropertyInfo {
                    value_type: text("type"),
                    title: text("title").filter(|title| compact(title) != compact(name)),
                    format: text("format"),
                    allowed: definition.get("enum").and_then(Value::as_array).cloned(),
                    common_values: None,
                },
            );
        }
    }
    if let Some(samples) = samples.as_object() {
        for (name, values) in samples {
            let values: Vec<String> = values
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let info = infos.entry(name.clone()).or_insert_with(|| PropertyInfo {
                value_type: None,
                title: None,
                format: None,
                allowed: None,
                common_values: None,
            });
            // Values only help where they work like an enum: not for
            // e-mails, URLs or dates, not beside a declared enum, and not
            // for long free text.
            let is_enum_like = info.format.is_none()
                && info.allowed.is_none()
                && values
                    .iter()
                    .all(|value| value.chars().count() <= MAX_SAMPLE_CHARS);
            if is_enum_like && !values.is_empty() {
                info.common_values = Some(values.into_iter().take(MAX_SAMPLES_SHOWN).collect());
            }
        }
    }
    infos
}

/// Cuts long string values (also inside arrays and objects) to `max`
/// characters, saying so.
pub(crate) fn bounded_properties(
    properties: &Map<String, Value>,
    max: usize,
) -> Map<String, Value> {
    properties
        .iter()
        .map(|(name, value)| (name.clone(), bounded_value(value, max)))
        .collect()
}

fn bounded_value(value: &Value, max: usize) -> Value {
    match value {
        Value::String(text) => Value::String(truncate_chars(text, max)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| bounded_value(item, max)).collect())
        }
        Value::Object(object) => Value::Object(bounded_properties(object, max)),
        other => other.clone(),
    }
}

/// Keeps the properties worth showing in a result list: scalars and short
/// lists, with long text cut.
fn summary_properties(properties: &Map<String, Value>) -> Map<String, Value> {
    properties
        .iter()
        .filter(|(_, value)| match value {
            Value::Object(_) => false,
            Value::Array(items) => items.len() <= 10 && items.iter().all(|item| !item.is_object()),
            _ => true,
        })
        .map(|(name, value)| (name.clone(), bounded_value(value, 120)))
        .collect()
}

/// Cuts text to `max` characters, appending a note when it cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!(
            "{}… (cut, {} characters in all)",
            &text[..cut],
            text.chars().count()
        ),
        None => text.to_string(),
    }
}
