//! `list_blueprints`: the kinds of entity in the catalog.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, arguments};

pub struct ListBlueprints;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {}

#[async_trait]
impl Tool for ListBlueprints {
    fn name(&self) -> &str {
        "list_blueprints"
    }

    fn description(&self) -> &str {
        "List the blueprints (entity types such as service, team, deployment) in the software \
         catalog, with how many entities each has, their properties (type, allowed values and \
         the values most used) and their relations to other blueprints. Call this first to \
         learn which blueprint, property and value names to use in the other tools."
    }

    fn input_schema(&self) -> Value {
        json!({ "type": "object", "properties": {}, "additionalProperties": false })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, context: &ToolContext, raw: Value) -> Result<Value, ToolError> {
        let Arguments {} = arguments(raw)?;
        let blueprints = context.catalog.list_blueprints(&context.scope).await?;
        Ok(json!({ "blueprints": blueprints }))
    }
}
