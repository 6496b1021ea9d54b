//! The JSON Schema of an action's inputs, as given to a model in the
//! action's tool definition.
//!
//! It states what validation enforces: patterns in their anchored form,
//! entity inputs as strings with a description of what to put in them, and
//! `maxItems` on every array (see [`MAX_ARRAY_ITEMS`](super::MAX_ARRAY_ITEMS)). The looser reading
//! of numeric and boolean strings is not advertised. Patterns use the
//! `regex` crate's syntax, which agrees with the ECMA-262 syntax JSON Schema
//! names for common patterns but not for every feature.

use serde_json::{Map, Value, json};

use super::check::{describe_entity, effective_max_items};
use super::{InputKind, InputSchema, InputSpec};

/// Builds the object schema of all inputs.
pub(super) fn object_schema(schema: &InputSchema) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, spec) in schema.inputs() {
        properties.insert(name.to_string(), property_schema(spec));
        if spec.required {
            required.push(Value::String(name.to_string()));
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn property_schema(spec: &InputSpec) -> Value {
    let mut schema = kind_schema(&spec.kind);
    if let Some(title) = &spec.title {
        schema.insert("title".into(), Value::String(title.clone()));
    }
    let description = match (&spec.description, &spec.kind) {
        (Some(description), InputKind::Entity { blueprint }) => {
            Some(format!("{description} ({})", describe_entity(blueprint)))
        }
        (None, InputKind::Entity { blueprint }) => Some(describe_entity(blueprint)),
        (description, _) => description.clone(),
    };
    if let Some(description) = description {
        schema.insert("description".into(), Value::String(description));
    }
    if let Some(default) = &spec.default {
        schema.insert("default".into(), default.clone());
    }
    Value::Object(schema)
}

fn kind_schema(kind: &InputKind) -> Map<String, Value> {
    let mut schema = Map::new();
    match kind {
        InputKind::String(rules) => {
            schema.insert("type".into(), json!("string"));
            if let Some(allowed) = &rules.allowed {
                schema.insert("enum".into(), json!(allowed));
            }
            if let Some(pattern) = &rules.pattern {
                schema.insert("pattern".into(), json!(pattern.anchored()));
            }
            if let Some(min) = rules.min_length {
                schema.insert("minLength".into(), json!(min));
            }
            if let Some(max) = rules.max_length {
                schema.insert("maxLength".into(), json!(max));
            }
        }
        InputKind::Number(rules) | InputKind::Integer(rules) => {
            let name = if matches!(kind, InputKind::Integer(_)) {
                "integer"
            } else {
                "number"
            };
            schema.insert("type".into(), json!(name));
            if let Some(minimum) = &rules.minimum {
                schema.insert("minimum".into(), Value::Number(minimum.clone()));
            }
            if let Some(maximum) = &rules.maximum {
                schema.insert("maximum".into(), Value::Number(maximum.clone()));
            }
        }
        InputKind::Boolean => {
            schema.insert("type".into(), json!("boolean"));
        }
        InputKind::Entity { blueprint } => {
            schema.insert("type".into(), json!("string"));
            schema.insert("x-agentdesk-blueprint".into(), json!(blueprint));
        }
        InputKind::Array(rules) => {
            schema.insert("type".into(), json!("array"));
            schema.insert("items".into(), property_schema(&rules.items));
            if let Some(min) = rules.min_items {
                schema.insert("minItems".into(), json!(min));
            }
            schema.insert("maxItems".into(), json!(effective_max_items(rules)));
        }
    }
    schema
}
