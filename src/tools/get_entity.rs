//! `get_entity`: one entity with its relations in both directions.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::filters::resolve_blueprint;
use super::{Tool, ToolContext, ToolError, arguments};
use crate::catalog::{EntityRef, SearchRequest};

pub struct GetEntity;

/// Candidates listed when a name matches several entities.
const MAX_CANDIDATES: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    entity: String,
    blueprint: Option<String>,
}

#[async_trait]
impl Tool for GetEntity {
    fn name(&self) -> &str {
        "get_entity"
    }

    fn description(&self) -> &str {
        "Get one entity by reference (`blueprint:identifier`, as search results give it) or by \
         its bare identifier or name, with its properties, its owners, the relations it \
         declares (what it depends on, consumes, belongs to) and the relations other entities \
         declare to it (what depends on it, its members, what it owns). When a bare name \
         matches several entities, all candidates are returned instead of one; call again \
         with the reference you mean."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "entity": { "type": "string", "description": "blueprint:identifier, or a bare identifier or name." },
                "blueprint": { "type": "string", "description": "Optional blueprint, to pick among same-named entities." }
            },
            "required": ["entity"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, context: &ToolContext, raw: Value) -> Result<Value, ToolError> {
        let arguments: Arguments = arguments(raw)?;
        let name = arguments.entity.trim();
        if name.is_empty() {
            return Err(ToolError::InvalidArguments(
                "entity must not be empty".to_string(),
            ));
        }
        let blueprint = match arguments
            .blueprint
            .filter(|blueprint| !blueprint.trim().is_empty())
        {
            Some(given) => Some(resolve_blueprint(&context.catalog, &context.scope, &given).await?),
            None => None,
        };

        let mut matches = context.catalog.resolve(&context.scope, name).await?;
        if let Some(blueprint) = &blueprint {
            matches.retain(|reference| &reference.blueprint == blueprint);
            if matches.is_empty() {
                let reference = EntityRef::new(blueprint, name);
                if let Some(detail) = context.catalog.get(&context.scope, &reference).await? {
                    return Ok(serde_json::to_value(detail).map_err(anyhow::Error::from)?);
                }
            }
        }

        match matches.len() {
            0 => Err(ToolError::NotFound(
                self.not_found_message(context, name).await?,
            )),
            1 => {
                let detail = context
                    .catalog
                    .get(&context.scope, &matches[0])
                    .await?
                    .ok_or_else(|| {
                        ToolError::NotFound(format!("{} is not in the catalog", matches[0]))
                    })?;
                Ok(serde_json::to_value(detail).map_err(anyhow::Error::from)?)
            }
            count => {
                let candidates: Vec<String> = matches
                    .iter()
                    .take(MAX_CANDIDATES)
                    .map(ToString::to_string)
                    .collect();
                Ok(json!({
                    "ambiguous": true,
                    "message": format!(
                        "{count} entities are named {name:?}; call get_entity again with one of \
                         these references"
                    ),
                    "candidates": candidates,
                }))
            }
        }
    }
}

impl GetEntity {
    async fn not_found_message(
        &self,
        context: &ToolContext,
        name: &str,
    ) -> Result<String, ToolError> {
        let request = SearchRequest {
            text: Some(name.to_string()),
            limit: 5,
            ..SearchRequest::default()
        };
        let similar = context.catalog.search(&context.scope, &request).await?;
        if similar.results.is_empty() {
            return Ok(format!(
                "no entity is named {name:?}; use search_entities to look for it by other words"
            ));
        }
        let references: Vec<String> = similar
            .results
            .iter()
            .map(|summary| summary.reference.clone())
            .collect();
        Ok(format!(
            "no entity is named exactly {name:?}; the closest matches are: {}",
            references.join(", ")
        ))
    }
}
