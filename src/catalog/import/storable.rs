//! Checks that imported text fits the database.
//!
//! PostgreSQL cannot store NUL (U+0000) in text, which the escapes of YAML
//! (`"\0"`) and JSON (`"\u0000"`) can produce, and its btree indexes take
//! at most 2,704 bytes per row, which a long identifier, relation name or
//! property name exceeds. Either would fail the whole write with a database
//! error that names no file, so both are rejected while reading, on every
//! database, with the file named.

use serde_json::Value;

use crate::catalog::{BlueprintDef, EntityDoc};

/// Maximum length of a blueprint identifier, entity identifier, relation
/// name or property name, in bytes. Up to three of them share an index row,
/// so three at the maximum stay well under PostgreSQL's 2,704 bytes.
pub(super) const MAX_KEY_BYTES: usize = 512;

/// Lists a problem naming `shown` for each entity or blueprint that
/// contains NUL anywhere, or a key longer than [`MAX_KEY_BYTES`].
pub(super) fn storage_problems(
    shown: &str,
    entities: &[EntityDoc],
    blueprints: &[BlueprintDef],
) -> Vec<String> {
    let mut problems = Vec::new();

    for entity in entities {
        let what = format!(
            "entity {}",
            excerpt(&format!("{}:{}", entity.blueprint, entity.identifier))
        );
        if entity_has_nul(entity) {
            problems.push(nul_problem(shown, &what));
        }
        if let Some((key, length)) = long_entity_key(entity) {
            problems.push(long_key_problem(shown, &what, key, length));
        }
    }
    for blueprint in blueprints {
        let what = format!("blueprint {}", excerpt(&blueprint.identifier));
        if blueprint_has_nul(blueprint) {
            problems.push(nul_problem(shown, &what));
        }
        let length = blueprint.identifier.len();
        if length > MAX_KEY_BYTES {
            problems.push(long_key_problem(shown, &what, "identifier", length));
        }
    }
    problems
}

fn nul_problem(shown: &str, what: &str) -> String {
    format!(
        "{shown}: {what} contains a NUL character (\\0), which PostgreSQL cannot store; remove it"
    )
}

fn long_key_problem(shown: &str, what: &str, key: &str, length: usize) -> String {
    format!(
        "{shown}: {what}: its {key} has {length} bytes; identifiers, relation names and \
         property names may have at most {MAX_KEY_BYTES} bytes"
    )
}

/// Quotes the first 60 characters of `text`, escaped, so a message never
/// repeats a huge or unprintable value.
fn excerpt(text: &str) -> String {
    let mut shown: String = text.chars().take(60).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Finds the first key of `entity` over the limit: its name and length.
fn long_entity_key(entity: &EntityDoc) -> Option<(&'static str, usize)> {
    let mut keys: Vec<(&'static str, &str)> = vec![
        ("blueprint", &entity.blueprint),
        ("identifier", &entity.identifier),
        ("name", &entity.name),
    ];
    keys.extend(
        entity
            .properties
            .keys()
            .map(|name| ("property name", name.as_str())),
    );
    for (name, targets) in &entity.relations {
        keys.push(("relation name", name));
        for target in targets {
            keys.push(("relation target blueprint", &target.blueprint));
            keys.push(("relation target", &target.identifier));
        }
    }
    keys.into_iter()
        .map(|(key, text)| (key, text.len()))
        .find(|(_, length)| *length > MAX_KEY_BYTES)
}

fn entity_has_nul(entity: &EntityDoc) -> bool {
    let texts = [
        &entity.blueprint,
        &entity.identifier,
        &entity.name,
        &entity.title,
        &entity.description,
    ];
    texts.iter().any(|text| has_nul(text))
        || entity
            .properties
            .iter()
            .any(|(name, value)| has_nul(name) || value_has_nul(value))
        || entity.relations.iter().any(|(name, targets)| {
            has_nul(name)
                || targets
                    .iter()
                    .any(|target| has_nul(&target.blueprint) || has_nul(&target.identifier))
        })
}

fn blueprint_has_nul(blueprint: &BlueprintDef) -> bool {
    let texts = [
        &blueprint.identifier,
        &blueprint.title,
        &blueprint.description,
    ];
    texts.iter().any(|text| has_nul(text))
        || value_has_nul(&blueprint.schema)
        || blueprint.relations.iter().any(|(name, relation)| {
            has_nul(name)
                || has_nul(&relation.target)
                || relation.title.as_deref().is_some_and(has_nul)
        })
}

fn value_has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => has_nul(text),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(object) => object
            .iter()
            .any(|(name, value)| has_nul(name) || value_has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn has_nul(text: &str) -> bool {
    text.contains('\0')
}
