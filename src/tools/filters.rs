//! Argument pieces shared by the search and count tools.

use serde_json::{Map, Value};

use super::ToolError;
use crate::catalog::{Catalog, Filter, Scope};

/// Reads `{"name": value or [values]}` into filters.
pub(super) fn parse_filters(filters: Option<Map<String, Value>>) -> Result<Vec<Filter>, ToolError> {
    let mut parsed = Vec::new();
    for (name, value) in filters.unwrap_or_default() {
        let values = match value {
            Value::Array(items) => items
                .iter()
                .map(|item| scalar_text(&name, item))
                .collect::<Result<_, _>>()?,
            other => vec![scalar_text(&name, &other)?],
        };
        parsed.push(Filter { name, values });
    }
    Ok(parsed)
}

fn scalar_text(name: &str, value: &Value) -> Result<String, ToolError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(ToolError::InvalidArguments(format!(
            "filter {name:?} must be a string, number or boolean, or a list of them, got {other}"
        ))),
    }
}

/// Resolves a blueprint given by identifier or title, in any case and in
/// singular or plural, to its identifier; an unknown one is an error that
/// lists the known blueprints.
pub(super) async fn resolve_blueprint(
    catalog: &Catalog,
    scope: &Scope,
    given: &str,
) -> Result<String, ToolError> {
    let blueprints = catalog.list_blueprints(scope).await?;
    let wanted = crate::catalog::normalize::compact(given);
    let singular = wanted.strip_suffix('s').unwrap_or(&wanted).to_string();

    for blueprint in &blueprints {
        if blueprint.identifier == given {
            return Ok(blueprint.identifier.clone());
        }
    }
    for blueprint in &blueprints {
        let identifier = crate::catalog::normalize::compact(&blueprint.identifier);
        let title = crate::catalog::normalize::compact(&blueprint.title);
        if [&wanted, &singular]
            .iter()
            .any(|name| **name == identifier || **name == title)
        {
            return Ok(blueprint.identifier.clone());
        }
    }

    let known: Vec<&str> = blueprints
        .iter()
        .map(|blueprint| blueprint.identifier.as_str())
        .collect();
    Err(ToolError::NotFound(format!(
        "unknown blueprint {given:?}; the catalog has: {}",
        known.join(", ")
    )))
}
