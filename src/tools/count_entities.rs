//! `count_entities`: how many entities, per blueprint or property value.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::filters::{parse_filters, resolve_blueprint};
use super::{Tool, ToolContext, ToolError, arguments};

pub struct CountEntities;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    blueprint: Option<String>,
    filters: Option<Map<String, Value>>,
    group_by: Option<String>,
}

#[async_trait]
impl Tool for CountEntities {
    fn name(&self) -> &str {
        "count_entities"
    }

    fn description(&self) -> &str {
        "Count entities in the catalog, optionally of one blueprint and matching filters (the \
         same form as search_entities), with counts per blueprint, and optionally per value of \
         the property named in group_by."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "blueprint": { "type": "string", "description": "Blueprint identifier, from list_blueprints." },
                "filters": {
                    "type": "object",
                    "description": "Property or relation name mapped to a value or a list of accepted values.",
                    "additionalProperties": {
                        "anyOf": [
                            { "type": ["string", "number", "boolean"] },
                            { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
                        ]
                    }
                },
                "group_by": { "type": "string", "description": "Property whose values to count separately." }
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, context: &ToolContext, raw: Value) -> Result<Value, ToolError> {
        let arguments: Arguments = arguments(raw)?;
        let blueprint = match arguments
            .blueprint
            .filter(|blueprint| !blueprint.trim().is_empty())
        {
            Some(given) => Some(resolve_blueprint(&context.catalog, &context.scope, &given).await?),
            None => None,
        };
        let filters = parse_filters(arguments.filters)?;
        let result = context
            .catalog
            .count(
                &context.scope,
                blueprint.as_deref(),
                &filters,
                arguments
                    .group_by
                    .as_deref()
                    .filter(|property| !property.trim().is_empty()),
            )
            .await?;
        Ok(serde_json::to_value(result).map_err(anyhow::Error::from)?)
    }
}
