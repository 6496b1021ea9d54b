//! `search_entities`: find entities by free text, blueprint and filters.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::filters::{parse_filters, resolve_blueprint};
use super::{Tool, ToolContext, ToolError, arguments};
use crate::catalog::SearchRequest;
use crate::catalog::search::MAX_LIMIT;

pub struct SearchEntities;

/// Results returned when the model asks for no particular number.
const DEFAULT_LIMIT: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    query: Option<String>,
    blueprint: Option<String>,
    filters: Option<Map<String, Value>>,
    sort_by: Option<String>,
    order: Option<String>,
    // Signed, so a negative value gets the range message below instead of
    // serde's "expected usize", which does not name the argument.
    limit: Option<i64>,
    offset: Option<i64>,
}

#[async_trait]
impl Tool for SearchEntities {
    fn name(&self) -> &str {
        "search_entities"
    }

    fn description(&self) -> &str {
        "Search the software catalog. `query` is free text matched against identifiers, titles, \
         tags and descriptions; it tolerates case, separators and small typos, and exact \
         matches come first (marked exact_match). `blueprint` limits results to one entity \
         type. `filters` keeps entities whose property, or relation target identifier, equals \
         one of the given values, e.g. {\"lifecycle\": \"production\"} or {\"service\": \
         \"checkout\", \"status\": [\"open\", \"triggered\"]}. `sort_by` orders by a property \
         (for example a date), with `order` asc or desc. Returns the total and one page of \
         entities with their properties and relations."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "description": "Free text, such as a name or a few words." },
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
                "sort_by": { "type": "string", "description": "Property to order by, or title or identifier." },
                "order": { "type": "string", "enum": ["asc", "desc"] },
                "limit": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT },
                "offset": { "type": "integer", "minimum": 0, "default": 0 }
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, context: &ToolContext, raw: Value) -> Result<Value, ToolError> {
        let arguments: Arguments = arguments(raw)?;
        let descending = match arguments.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ToolError::InvalidArguments(format!(
                    "order must be \"asc\" or \"desc\", got {other:?}"
                )));
            }
        };
        let limit = match arguments.limit {
            None => DEFAULT_LIMIT,
            Some(limit) if (1..=MAX_LIMIT as i64).contains(&limit) => limit as usize,
            Some(limit) => {
                return Err(ToolError::InvalidArguments(format!(
                    "limit must be from 1 to {MAX_LIMIT}, got {limit}"
                )));
            }
        };
        let offset = match arguments.offset {
            None => 0,
            Some(offset) if offset >= 0 => offset as usize,
            Some(offset) => {
                return Err(ToolError::InvalidArguments(format!(
                    "offset must be 0 or more, got {offset}"
                )));
            }
        };
        let query = arguments.query.filter(|query| !query.trim().is_empty());
        let blueprint = match arguments
            .blueprint
            .filter(|blueprint| !blueprint.trim().is_empty())
        {
            Some(given) => Some(resolve_blueprint(&context.catalog, &context.scope, &given).await?),
            None => None,
        };
        let filters = parse_filters(arguments.filters)?;
        if query.is_none() && blueprint.is_none() && filters.is_empty() {
            return Err(ToolError::InvalidArguments(
                "give a query, a blueprint or filters; to see what the catalog holds, call \
                 list_blueprints"
                    .to_string(),
            ));
        }

        let request = SearchRequest {
            text: query,
            blueprint,
            filters,
            sort_by: arguments
                .sort_by
                .filter(|property| !property.trim().is_empty()),
            descending,
            limit,
            offset,
        };
        let response = context.catalog.search(&context.scope, &request).await?;
        let mut output = serde_json::to_value(&response).map_err(anyhow::Error::from)?;
        if response.results.is_empty() {
            output["hint"] = json!(
                "nothing matched; try fewer or other words, drop a filter, or check names with \
                 list_blueprints"
            );
        }
        Ok(output)
    }
}
