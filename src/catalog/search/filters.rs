//! SQL for the scope, blueprint and property filters of a search, and for
//! ordering results by a property.

use super::super::Scope;
use super::super::index::list_placeholders;
use super::super::query::scope_clause;
use super::{Filter, SearchRequest};

/// The scope, blueprint and filters of a text search, applied while
/// postings are read, so a common term cannot fill the candidates with
/// entities the filters drop.
pub(super) struct Restriction {
    scope: Scope,
    blueprint: Option<String>,
    filters: Vec<Filter>,
    /// The values the restriction binds, after the query terms.
    pub(super) values: Vec<String>,
    /// Whether anything is restricted at all.
    restricts: bool,
}

impl Restriction {
    pub(super) fn new(scope: &Scope, request: &SearchRequest) -> Self {
        let (sql, values) = filter_sql(scope, request.blueprint.as_deref(), &request.filters, 1);
        Self {
            scope: scope.clone(),
            blueprint: request.blueprint.clone(),
            filters: request.filters.clone(),
            values,
            restricts: sql != "1 = 1",
        }
    }

    /// Builds the `FROM` clause (postings as `t`) and the condition to
    /// append after a `WHERE`, numbering parameters after `terms` query
    /// terms.
    pub(super) fn sql(&self, terms: usize) -> (String, String) {
        if !self.restricts {
            return ("search_terms t".to_string(), String::new());
        }
        let (sql, _) = filter_sql(
            &self.scope,
            self.blueprint.as_deref(),
            &self.filters,
            terms + 1,
        );
        (
            "search_terms t JOIN entities e ON e.id = t.entity_id".to_string(),
            format!(" AND {sql}"),
        )
    }
}

/// Builds the `WHERE` condition for scope, blueprint and filters over
/// `entities e`, with parameters numbered from `first`.
pub(crate) fn filter_sql(
    scope: &Scope,
    blueprint: Option<&str>,
    filters: &[Filter],
    first: usize,
) -> (String, Vec<String>) {
    let mut sql = String::from("1 = 1");
    let mut values = Vec::new();

    let (scope_sql, scope_values) = scope_clause(scope, "e.blueprint", first);
    sql.push_str(&scope_sql);
    values.extend(scope_values);

    if let Some(blueprint) = blueprint {
        values.push(blueprint.to_string());
        sql.push_str(&format!(" AND e.blueprint = ${}", first + values.len() - 1));
    }

    for filter in filters {
        if filter.values.is_empty() {
            continue;
        }
        let name_parameter = first + values.len();
        values.push(filter.name.clone());

        let lowered: Vec<String> = filter
            .values
            .iter()
            .map(|value| value.trim().to_lowercase())
            .collect();
        let value_start = first + values.len();
        values.extend(lowered.iter().cloned());
        let value_list = list_placeholders(value_start, lowered.len());

        // A relation value may name its target with or without blueprint.
        let bare: Vec<String> = lowered
            .iter()
            .map(|value| {
                value
                    .split_once(':')
                    .map_or(value.clone(), |(_, identifier)| identifier.to_string())
            })
            .collect();
        let bare_start = first + values.len();
        values.extend(bare);
        let bare_list = list_placeholders(bare_start, lowered.len());

        sql.push_str(&format!(
            " AND (EXISTS (SELECT 1 FROM entity_property_values p WHERE p.entity_id = e.id \
             AND p.name = ${name_parameter} AND p.value IN ({value_list})) \
             OR EXISTS (SELECT 1 FROM entity_relations r WHERE r.source_id = e.id \
             AND r.name = ${name_parameter} AND LOWER(r.target_identifier) IN ({bare_list})))"
        ));
    }
    (sql, values)
}

/// Builds an `ORDER BY` over a property bound at `parameter`, entities
/// without it last, numbers by value, then text.
pub(super) fn order_by_property(property: &str, descending: bool, parameter: usize) -> String {
    let direction = if descending { "DESC" } else { "ASC" };
    match property {
        "title" => format!("LOWER(e.title) {direction}, e.identifier"),
        "identifier" => format!("e.identifier {direction}"),
        _ => {
            let value = |column: &str| {
                format!(
                    "(SELECT MAX(p.{column}) FROM entity_property_values p \
                     WHERE p.entity_id = e.id AND p.name = ${parameter})"
                )
            };
            format!(
                "CASE WHEN {} IS NULL THEN 1 ELSE 0 END, {} {direction}, {} {direction}, \
                 e.identifier",
                value("value"),
                value("num_value"),
                value("value")
            )
        }
    }
}
