//! Port JSON files: blueprints as Port's integrations ship them, and
//! entities in the shape Port's API returns them.
//!
//! Accepted layouts: a JSON array of blueprints and/or entities; an object
//! with an `entities` and/or `blueprints` array (Port's API wraps lists as
//! `{"ok": true, "entities": [...]}`); an object with a single `entity` or
//! `blueprint`; or one bare blueprint or entity. An object with `blueprint`
//! and `identifier` strings is an entity; one with `identifier` and a
//! `schema` or `relations` object is a blueprint.
//!
//! An entity's relation values are identifiers; the blueprint they point at
//! comes from the relation's `target` in the entity's blueprint, resolved
//! when the import is applied, so blueprints and entities may come from
//! different files. Port's `team` field (the owning teams) becomes the
//! `ownedBy` relation to `_team` entities.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Parsed;
use crate::catalog::{BlueprintDef, EntityDoc, EntityRef, OWNED_BY, RelationDef};

/// Blueprint that Port's `team` field points at.
pub(crate) const TEAM_BLUEPRINT: &str = "_team";

/// Parses Port JSON text into `parsed`.
pub(crate) fn parse_file(text: &str, shown: &str, parsed: &mut Parsed) -> Result<(), Vec<String>> {
    let root: Value = serde_json::from_str(text).map_err(|error| {
        vec![format!(
            "{shown}: invalid JSON at line {} column {}: {error}",
            error.line(),
            error.column()
        )]
    })?;

    let items = top_level_items(&root).map_err(|problem| vec![format!("{shown}: {problem}")])?;
    let mut problems = Vec::new();

    for (index, item) in items.iter().enumerate() {
        let place = format!("{shown} (item {})", index + 1);
        let Value::Object(object) = item else {
            problems.push(format!(
                "{place}: expected a JSON object, found {}",
                describe(item)
            ));
            continue;
        };
        let result = if object.get("blueprint").is_some_and(Value::is_string) {
            parse_entity(object, &place).map(|entity| parsed.entities.push(entity))
        } else if is_blueprint(object) {
            parse_blueprint(object, &place).map(|blueprint| parsed.blueprints.push(blueprint))
        } else {
            Err(format!(
                "{place}: neither a Port blueprint (identifier and schema) nor a Port entity \
                 (identifier and blueprint)"
            ))
        };
        if let Err(problem) = result {
            problems.push(problem);
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn top_level_items(root: &Value) -> Result<Vec<Value>, String> {
    match root {
        Value::Array(items) => Ok(items.clone()),
        Value::Object(object) => {
            let mut items = Vec::new();
            for key in ["blueprints", "entities"] {
                match object.get(key) {
                    Some(Value::Array(list)) => items.extend(list.iter().cloned()),
                    Some(other) if !other.is_null() => {
                        return Err(format!("{key} must be a list, found {}", describe(other)));
                    }
                    _ => {}
                }
            }
            for key in ["blueprint", "entity"] {
                if let Some(Value::Object(single)) = object.get(key) {
                    items.push(Value::Object(single.clone()));
                }
            }
            if items.is_empty()
                && !object.contains_key("entities")
                && !object.contains_key("blueprints")
            {
                items.push(root.clone());
            }
            Ok(items)
        }
        other => Err(format!(
            "expected a JSON array or object of Port blueprints or entities, found {}",
            describe(other)
        )),
    }
}

fn is_blueprint(object: &Map<String, Value>) -> bool {
    object.get("identifier").is_some_and(Value::is_string)
        && (object.get("schema").is_some_and(Value::is_object)
            || object.get("relations").is_some_and(Value::is_object))
}

fn parse_blueprint(object: &Map<String, Value>, place: &str) -> Result<BlueprintDef, String> {
    let identifier = non_empty(object.get("identifier"), place, "identifier")?;
    let place = format!("{place}, blueprint {identifier}");

    let schema = match object.get("schema") {
        None | Some(Value::Null) => serde_json::json!({ "properties": {}, "required": [] }),
        Some(Value::Object(schema)) => {
            if let Some(properties) = schema.get("properties")
                && !properties.is_object()
            {
                return Err(format!("{place}: schema.properties must be an object"));
            }
            Value::Object(schema.clone())
        }
        Some(other) => {
            return Err(format!(
                "{place}: schema must be an object, found {}",
                describe(other)
            ));
        }
    };

    let mut relations = BTreeMap::new();
    if let Some(declared) = object.get("relations").filter(|value| !value.is_null()) {
        let Value::Object(declared) = declared else {
            return Err(format!("{place}: relations must be an object"));
        };
        for (name, relation) in declared {
            let target = relation
                .get("target")
                .and_then(Value::as_str)
                .filter(|target| !target.trim().is_empty())
                .ok_or_else(|| {
                    format!("{place}: relation {name} needs a target blueprint identifier")
                })?;
            relations.insert(
                name.clone(),
                RelationDef {
                    title: relation
                        .get("title")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    target: target.trim().to_string(),
                    many: relation
                        .get("many")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    required: relation
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                },
            );
        }
    }

    Ok(BlueprintDef {
        identifier: identifier.to_string(),
        title: string_or(object.get("title"), identifier),
        description: string_or(object.get("description"), ""),
        schema,
        relations,
    })
}

fn parse_entity(object: &Map<String, Value>, place: &str) -> Result<EntityDoc, String> {
    let identifier = non_empty(object.get("identifier"), place, "identifier")?;
    let blueprint = non_empty(object.get("blueprint"), place, "blueprint")?;
    let place = format!("{place}, entity {blueprint}:{identifier}");

    let properties = match object.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(properties)) => properties.clone(),
        Some(other) => {
            return Err(format!(
                "{place}: properties must be an object, found {}",
                describe(other)
            ));
        }
    };

    let mut relations: BTreeMap<String, Vec<EntityRef>> = BTreeMap::new();
    match object.get("relations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(declared)) => {
            for (name, value) in declared {
                let identifiers = relation_identifiers(value)
                    .map_err(|problem| format!("{place}: relation {name} {problem}"))?;
                if !identifiers.is_empty() {
                    // The target blueprint is filled in when the import is
                    // applied, from the entity's blueprint definition.
                    relations.insert(
                        name.clone(),
                        identifiers
                            .into_iter()
                            .map(|identifier| EntityRef::new("", identifier))
                            .collect(),
                    );
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "{place}: relations must be an object, found {}",
                describe(other)
            ));
        }
    }

    let teams = relation_identifiers(object.get("team").unwrap_or(&Value::Null))
        .map_err(|problem| format!("{place}: team {problem}"))?;
    if !teams.is_empty() {
        relations.insert(
            OWNED_BY.to_string(),
            teams
                .into_iter()
                .map(|team| EntityRef::new(TEAM_BLUEPRINT, team))
                .collect(),
        );
    }

    let description = properties
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    Ok(EntityDoc {
        blueprint: blueprint.to_string(),
        identifier: identifier.to_string(),
        name: identifier.to_string(),
        title: string_or(object.get("title"), identifier),
        description,
        properties,
        relations,
    })
}

/// Reads a relation value: an identifier, a list of them, or nothing.
fn relation_identifiers(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(identifier) if identifier.trim().is_empty() => Ok(Vec::new()),
        Value::String(identifier) => Ok(vec![identifier.trim().to_string()]),
        Value::Array(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .map(|item| {
                item.as_str()
                    .map(|identifier| identifier.trim().to_string())
                    .ok_or_else(|| {
                        format!("must hold identifiers (strings), found {}", describe(item))
                    })
            })
            .collect(),
        other => Err(format!(
            "must be an identifier or a list of identifiers, found {}",
            describe(other)
        )),
    }
}

fn non_empty<'a>(value: Option<&'a Value>, place: &str, field: &str) -> Result<&'a str, String> {
    match value {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(other) => Err(format!(
            "{place}: {field} must be a non-empty string, found {}",
            describe(other)
        )),
        None => Err(format!("{place}: {field} is missing")),
    }
}

/// Describes a JSON value for an error message: its kind and, for a short
/// one, the value itself, so an error never repeats a huge input.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let text = value.to_string();
    if text.chars().count() <= 60 {
        format!("{kind} {text}")
    } else {
        kind.to_string()
    }
}

/// Reports whether JSON text looks like Port data: blueprints or entities
/// (objects with an `identifier`), or a wrapper with `entities` or
/// `blueprints`. Files found while walking a folder that do not are skipped.
pub(super) fn looks_like_port_data(text: &str) -> bool {
    let Ok(root) = serde_json::from_str::<Value>(text) else {
        // Broken JSON is reported by the parser, not skipped.
        return true;
    };
    let is_item = |value: &Value| value.get("identifier").is_some();
    match &root {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_item),
        Value::Object(object) => {
            object.contains_key("entities")
                || object.contains_key("blueprints")
                || object.contains_key("entity")
                || object.contains_key("blueprint")
                || is_item(&root)
        }
        _ => false,
    }
}

fn string_or(value: Option<&Value>, default: &str) -> String {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .unwrap_or(default)
        .to_string()
}
