//! Backstage descriptor files (YAML, one or more documents per file).
//!
//! Each document with `kind` and `metadata.name` becomes an entity of the
//! blueprint named after its kind in lower case (`Component` becomes
//! `component`). Spec fields that name other entities become relations
//! under Backstage's relation names (`spec.owner` becomes `ownedBy`,
//! `spec.system` becomes `partOf`, and so on); everything else in `spec`,
//! plus the namespace, tags, labels, annotations and links, becomes
//! properties. A blueprint per kind is inferred from what the files hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::Parsed;
use crate::catalog::{BlueprintDef, EntityDoc, EntityRef, OWNED_BY, RelationDef};

/// A spec field that references other entities: the relation it becomes and
/// the kind assumed when a reference names none.
struct RelationField {
    field: &'static str,
    relation: &'static str,
    default_kind: &'static str,
}

const RELATION_FIELDS: &[RelationField] = &[
    RelationField {
        field: "owner",
        relation: OWNED_BY,
        default_kind: "group",
    },
    RelationField {
        field: "system",
        relation: "partOf",
        default_kind: "system",
    },
    RelationField {
        field: "domain",
        relation: "partOf",
        default_kind: "domain",
    },
    RelationField {
        field: "subdomainOf",
        relation: "partOf",
        default_kind: "domain",
    },
    RelationField {
        field: "subcomponentOf",
        relation: "partOf",
        default_kind: "component",
    },
    RelationField {
        field: "dependsOn",
        relation: "dependsOn",
        default_kind: "component",
    },
    RelationField {
        field: "dependencyOf",
        relation: "dependencyOf",
        default_kind: "component",
    },
    RelationField {
        field: "providesApis",
        relation: "providesApi",
        default_kind: "api",
    },
    RelationField {
        field: "consumesApis",
        relation: "consumesApi",
        default_kind: "api",
    },
    RelationField {
        field: "memberOf",
        relation: "memberOf",
        default_kind: "group",
    },
    RelationField {
        field: "parent",
        relation: "childOf",
        default_kind: "group",
    },
    RelationField {
        field: "children",
        relation: "parentOf",
        default_kind: "group",
    },
    RelationField {
        field: "members",
        relation: "hasMember",
        default_kind: "user",
    },
];

/// Marks blueprints inferred from Backstage entities in their schema.
const INFERRED_MARKER: &str = "x-agentdesk-inferred";

/// The parser's message without its excerpt of the source, which could
/// quote a secret from a file the import was pointed at.
fn parser_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Reports whether YAML text looks like Backstage descriptors: a top-level
/// `apiVersion` and `kind`. Files found while walking a folder that do not
/// are skipped rather than failing the import.
pub(super) fn looks_like_descriptor(text: &str) -> bool {
    let has_key = |key: &str| {
        text.lines().any(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    };
    has_key("apiVersion") && has_key("kind")
}

/// Reports whether a blueprint was inferred from Backstage entities rather
/// than declared in a blueprint file.
pub(super) fn is_inferred(blueprint: &BlueprintDef) -> bool {
    blueprint.schema.get(INFERRED_MARKER) == Some(&Value::Bool(true))
}

/// Parses a YAML file into `parsed`; returns the files its Location
/// entities point at.
pub(super) fn parse_file(
    text: &str,
    shown: &str,
    base: &Path,
    boundary: &Path,
    parsed: &mut Parsed,
) -> Result<Vec<PathBuf>, Vec<String>> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|error| vec![format!("{shown}: invalid YAML: {}", parser_message(&error))])?;

    let mut problems = Vec::new();
    let mut targets = Vec::new();
    let several = documents.len() > 1;

    for (index, document) in documents.iter().enumerate() {
        let place = if several {
            format!("{shown} (document {})", index + 1)
        } else {
            shown.to_string()
        };
        let Value::Object(document) = document else {
            if !document.is_null() {
                problems.push(format!(
                    "{place}: expected a Backstage entity (a mapping with apiVersion, kind and \
                     metadata), found {}",
                    kind_of(document)
                ));
            }
            continue;
        };

        if is_port_mapping_config(document) {
            parsed.warnings.push(format!(
                "{place}: skipped a Port integration mapping config; it holds no catalog data"
            ));
            continue;
        }

        match parse_entity(document, &place) {
            Ok(entity) => {
                if entity.blueprint == "location" {
                    match location_targets(document, &place, base, boundary) {
                        Ok((files, warnings)) => {
                            targets.extend(files);
                            parsed.warnings.extend(warnings);
                        }
                        Err(problem) => problems.push(problem),
                    }
                }
                add_inferred_blueprint(parsed, document, &entity);
                parsed.entities.push(entity);
            }
            Err(problem) => problems.push(problem),
        }
    }

    if problems.is_empty() {
        Ok(targets)
    } else {
        Err(problems)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Port's integration config (`resources` with `port.entity.mappings`)
/// sits beside blueprint files but is no catalog data.
fn is_port_mapping_config(document: &Map<String, Value>) -> bool {
    !document.contains_key("kind")
        && document
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|resources| {
                resources
                    .iter()
                    .any(|resource| resource.pointer("/port/entity/mappings").is_some())
            })
}

fn parse_entity(document: &Map<String, Value>, place: &str) -> Result<EntityDoc, String> {
    let kind = required_string(document.get("kind"), place, "kind")?;
    let metadata = document
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            format!("{place}: metadata is missing; every Backstage entity needs metadata.name")
        })?;
    let name = required_string(metadata.get("name"), place, "metadata.name")?;
    let namespace = optional_string(metadata.get("namespace")).unwrap_or("default");
    let spec = document.get("spec").and_then(Value::as_object);
    let empty = Map::new();
    let spec = spec.unwrap_or(&empty);

    let display_name = spec
        .get("profile")
        .and_then(|profile| profile.get("displayName"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty());
    let title = optional_string(metadata.get("title"))
        .or(display_name)
        .unwrap_or(name)
        .to_string();

    Ok(EntityDoc {
        blueprint: kind.to_lowercase(),
        identifier: qualified_name(namespace, name),
        name: name.to_string(),
        title,
        description: optional_string(metadata.get("description"))
            .unwrap_or("")
            .to_string(),
        properties: properties(metadata, spec, namespace),
        relations: relations(spec, namespace),
    })
}

fn required_string<'a>(
    value: Option<&'a Value>,
    place: &str,
    field: &str,
) -> Result<&'a str, String> {
    match value {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(other) => Err(format!(
            "{place}: {field} must be a non-empty string, found {}",
            kind_of(other)
        )),
        None => Err(format!(
            "{place}: {field} is missing; every Backstage entity needs kind and metadata.name"
        )),
    }
}

fn optional_string(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Returns the identifier of an entity: its name in the default namespace,
/// `namespace/name` elsewhere.
fn qualified_name(namespace: &str, name: &str) -> String {
    if namespace.eq_ignore_ascii_case("default") {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

fn properties(
    metadata: &Map<String, Value>,
    spec: &Map<String, Value>,
    namespace: &str,
) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("namespace".into(), Value::String(namespace.to_string()));

    for field in ["tags", "labels", "annotations", "links"] {
        if let Some(value) = metadata.get(field).filter(|value| !value.is_null()) {
            properties.insert(field.into(), value.clone());
        }
    }

    for (field, value) in spec {
        let is_relation = RELATION_FIELDS
            .iter()
            .any(|relation| relation.field == field);
        if is_relation || value.is_null() {
            continue;
        }
        if field == "profile" {
            if let Some(profile) = value.as_object() {
                for (key, value) in profile {
                    if key != "displayName" && !value.is_null() {
                        properties.insert(key.clone(), value.clone());
                    }
                }
            }
            continue;
        }
        properties.insert(field.clone(), value.clone());
    }
    properties
}

fn relations(spec: &Map<String, Value>, namespace: &str) -> BTreeMap<String, Vec<EntityRef>> {
    let mut relations: BTreeMap<String, Vec<EntityRef>> = BTreeMap::new();
    for field in RELATION_FIELDS {
        let references: Vec<&str> = match spec.get(field.field) {
            Some(Value::String(reference)) => vec![reference.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for reference in references {
            if let Some(target) = parse_reference(reference, field.default_kind, namespace) {
                let targets = relations.entry(field.relation.to_string()).or_default();
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
    }
    relations
}

/// Parses a Backstage entity reference, `[kind:][namespace/]name`; the
/// namespace defaults to the referring entity's own.
pub(super) fn parse_reference(
    reference: &str,
    default_kind: &str,
    namespace: &str,
) -> Option<EntityRef> {
    let reference = reference.trim();
    let (kind, rest) = match reference.split_once(':') {
        Some((kind, rest)) => (kind.trim().to_lowercase(), rest.trim()),
        None => (default_kind.to_string(), reference),
    };
    let (target_namespace, name) = match rest.split_once('/') {
        Some((target_namespace, name)) => (target_namespace.trim(), name.trim()),
        None => (namespace, rest),
    };
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    Some(EntityRef::new(kind, qualified_name(target_namespace, name)))
}

fn location_targets(
    document: &Map<String, Value>,
    place: &str,
    base: &Path,
    boundary: &Path,
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let spec = document.get("spec").and_then(Value::as_object);
    let mut declared = Vec::new();
    if let Some(spec) = spec {
        if let Some(target) = spec.get("target").and_then(Value::as_str) {
            declared.push(target.to_string());
        }
        if let Some(targets) = spec.get("targets").and_then(Value::as_array) {
            declared.extend(targets.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }

    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for target in declared {
        if target.contains("://") {
            warnings.push(format!(
                "{place}: Location target {target} is a URL; only relative file targets are \
                 followed, so import that file directly"
            ));
            continue;
        }
        let resolved = base.join(&target);
        let missing = || {
            format!(
                "{place}: Location target {target} does not exist (looked for {}); fix the path \
                 or remove the target",
                resolved.display()
            )
        };
        let outside = || {
            format!(
                "{place}: Location target {target} points outside {}; only files inside the \
                 imported folder are followed, so import that file directly",
                boundary.display()
            )
        };
        let has_wildcard = resolved
            .file_name()
            .is_some_and(|name| name.to_string_lossy().contains('*'));
        if has_wildcard {
            let folder = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
            let folder = folder.canonicalize().map_err(|_| missing())?;
            if !folder.starts_with(boundary) {
                return Err(outside());
            }
            files.extend(
                expand_wildcard(&resolved)
                    .into_iter()
                    .filter(|file| file.starts_with(boundary)),
            );
            continue;
        }
        let file = resolved.canonicalize().map_err(|_| missing())?;
        if !file.starts_with(boundary) {
            return Err(outside());
        }
        files.push(file);
    }
    Ok((files, warnings))
}

/// Expands a `*` wildcard in the last path segment.
fn expand_wildcard(pattern: &Path) -> Vec<PathBuf> {
    let (Some(folder), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let parts: Vec<&str> = name.split('*').collect();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };

    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let file_name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            matches_wildcard(&file_name, &parts)
        })
        .filter_map(|path| path.canonicalize().ok())
        .collect();
    files.sort();
    files
}

fn matches_wildcard(name: &str, parts: &[&str]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return name.is_empty();
    };
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    for (index, part) in rest.iter().enumerate() {
        let is_last = index == rest.len() - 1;
        if is_last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(position) => remaining = &remaining[position + part.len()..],
            None => return false,
        }
    }
    remaining.is_empty()
}

fn add_inferred_blueprint(parsed: &mut Parsed, document: &Map<String, Value>, entity: &EntityDoc) {
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(&entity.blueprint)
        .trim()
        .to_string();

    let existing = parsed
        .blueprints
        .iter_mut()
        .find(|blueprint| blueprint.identifier == entity.blueprint);
    let blueprint = match existing {
        Some(blueprint) => blueprint,
        None => {
            parsed.blueprints.push(BlueprintDef {
                identifier: entity.blueprint.clone(),
                title: kind.clone(),
                description: format!("Backstage {kind} entities"),
                schema: json!({ "properties": {}, "required": [], INFERRED_MARKER: true }),
                relations: BTreeMap::new(),
            });
            parsed
                .blueprints
                .last_mut()
                .expect("a blueprint was just pushed")
        }
    };

    if let Some(properties) = blueprint
        .schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        for (name, value) in &entity.properties {
            properties
                .entry(name.clone())
                .or_insert_with(|| json!({ "type": json_type(value) }));
        }
    }

    let spec = document.get("spec").and_then(Value::as_object);
    for field in RELATION_FIELDS {
        let Some(value) = spec.and_then(|spec| spec.get(field.field)) else {
            continue;
        };
        let target = if field.relation == OWNED_BY {
            // An owner is a group or a user.
            String::new()
        } else {
            field.default_kind.to_string()
        };
        blueprint
            .relations
            .entry(field.relation.to_string())
            .or_insert(RelationDef {
                title: Some(field.field.to_string()),
                target,
                many: value.is_array(),
                required: false,
            });
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
