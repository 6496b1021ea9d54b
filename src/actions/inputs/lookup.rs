//! Validation of proposed inputs, and the catalog lookups that resolve
//! entity references.
//!
//! Local checks run first for every input; then each entity reference that
//! passed them is looked up, a few at a time. A reference must name exactly
//! one entity of the input's blueprint, and comes out as
//! `blueprint:identifier`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::{Map, Value};
use tracing::{error, warn};

use super::check::{self, Coercion, Reference};
use super::{InputError, InputSchema, ValidatedInputs};
use crate::catalog::normalize::{allowed_typos, compact, edit_distance};
use crate::catalog::{Catalog, EntityRef, Scope, SearchRequest};
use crate::tools::ToolContext;

/// Lookups one validation runs at once, so a long list of entity items
/// does not take every database connection.
const CONCURRENT_LOOKUPS: usize = 8;

/// Candidates listed when a reference is ambiguous; the rest are counted.
const MAX_LISTED_CANDIDATES: usize = 10;

/// Similar entities offered when a reference names none.
const SUGGESTIONS: usize = 3;

/// Search results read to pick suggestions from.
const SUGGESTION_CANDIDATES: usize = 20;

/// Shortest name that counts as a suggestion because the text contains
/// it; shorter names such as `api` are inside too many words.
const MIN_CONTAINED_CHARS: usize = 4;

/// Finds the entities an entity input's text may mean.
#[async_trait]
pub trait EntityLookup: Send + Sync {
    /// Entities of `blueprint` that `text` names (an identifier,
    /// `blueprint:identifier`, or a bare name); empty when none.
    async fn find(&self, blueprint: &str, text: &str) -> anyhow::Result<Vec<EntityRef>>;

    /// Up to `limit` entities of `blueprint` whose names resemble `text`,
    /// offered in the error when `find` returns none. The default offers
    /// none.
    async fn suggest(
        &self,
        _blueprint: &str,
        _text: &str,
        _limit: usize,
    ) -> anyhow::Result<Vec<EntityRef>> {
        Ok(Vec::new())
    }
}

/// Looks entities up in the whole catalog.
#[async_trait]
impl EntityLookup for Catalog {
    async fn find(&self, blueprint: &str, text: &str) -> anyhow::Result<Vec<EntityRef>> {
        find_in_scope(self, &Scope::All, blueprint, text).await
    }

    async fn suggest(
        &self,
        blueprint: &str,
        text: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<EntityRef>> {
        suggest_in_scope(self, &Scope::All, blueprint, text, limit).await
    }
}

/// Looks entities up within an agent's data scope: an entity the agent
/// cannot see is not found.
#[async_trait]
impl EntityLookup for ToolContext {
    async fn find(&self, blueprint: &str, text: &str) -> anyhow::Result<Vec<EntityRef>> {
        find_in_scope(&self.catalog, &self.scope, blueprint, text).await
    }

    async fn suggest(
        &self,
        blueprint: &str,
        text: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<EntityRef>> {
        suggest_in_scope(&self.catalog, &self.scope, blueprint, text, limit).await
    }
}

/// Resolves `text` among the entities of `blueprint`: first as a
/// reference, an identifier or a name (`Catalog::resolve`), then as a title,
/// which search marks as an exact match of the whole text.
async fn find_in_scope(
    catalog: &Catalog,
    scope: &Scope,
    blueprint: &str,
    text: &str,
) -> anyhow::Result<Vec<EntityRef>> {
    if !scope.allows(blueprint) {
        return Ok(Vec::new());
    }
    let only = Scope::Blueprints(BTreeSet::from([blueprint.to_string()]));
    let found = catalog.resolve(&only, text).await?;
    if !found.is_empty() {
        return Ok(found);
    }

    let request = SearchRequest {
        text: Some(text.to_string()),
        blueprint: Some(blueprint.to_string()),
        limit: MAX_LISTED_CANDIDATES + 1,
        ..SearchRequest::default()
    };
    let response = catalog.search(&only, &request).await?;
    Ok(response
        .results
        .into_iter()
        .filter(|summary| summary.exact_match)
        .map(|summary| EntityRef::new(summary.blueprint, summary.identifier))
        .collect())
}

/// Offers entities whose identifier or title resembles `text`. Search also
/// matches descriptions and relations, which make poor suggestions, so a
/// result is kept only when a name contains the text, is contained in it,
/// or is a few typos away from it.
async fn suggest_in_scope(
    catalog: &Catalog,
    scope: &Scope,
    blueprint: &str,
    text: &str,
    limit: usize,
) -> anyhow::Result<Vec<EntityRef>> {
    if !scope.allows(blueprint) {
        return Ok(Vec::new());
    }
    let only = Scope::Blueprints(BTreeSet::from([blueprint.to_string()]));
    let request = SearchRequest {
        text: Some(text.to_string()),
        blueprint: Some(blueprint.to_string()),
        limit: SUGGESTION_CANDIDATES,
        ..SearchRequest::default()
    };
    let response = catalog.search(&only, &request).await?;
    Ok(response
        .results
        .into_iter()
        .filter(|summary| resembles(text, &summary.identifier) || resembles(text, &summary.title))
        .take(limit)
        .map(|summary| EntityRef::new(summary.blueprint, summary.identifier))
        .collect())
}

fn resembles(text: &str, name: &str) -> bool {
    let text = compact(text);
    let name = compact(name);
    if text.is_empty() || name.is_empty() {
        return false;
    }
    name.contains(&text)
        || (name.chars().count() >= MIN_CONTAINED_CHARS && text.contains(&name))
        || edit_distance(&text, &name, allowed_typos(&text)).is_some()
}

/// An entity reference waiting for its lookup.
struct Pending<'a> {
    /// Position of the input in the schema, to order errors.
    position: usize,
    input: &'a str,
    reference: Reference,
}

/// Validates a proposal; see [`InputSchema::validate`].
pub(super) async fn validate(
    schema: &InputSchema,
    proposed: &Value,
    entities: &dyn EntityLookup,
) -> Result<ValidatedInputs, Vec<InputError>> {
    let Value::Object(proposal) = proposed else {
        return Err(vec![InputError {
            input: String::new(),
            message: format!(
                "must be a JSON object of input names to values (got {}); {}",
                check::shown(proposed),
                list_inputs(schema)
            ),
        }]);
    };

    // Errors carry the position of their input so they come out in schema
    // order; unknown inputs (position 0) come first.
    let mut errors: Vec<(usize, InputError)> = Vec::new();
    for name in proposal.keys() {
        if schema.input(name).is_none() {
            let message = format!("is not an input of this action; {}", list_inputs(schema));
            errors.push((0, input_error(name, message)));
        }
    }

    let mut values = Map::new();
    let mut pending = Vec::new();
    for (index, (name, spec)) in schema.inputs().enumerate() {
        let position = index + 1;
        let given = proposal.get(name).filter(|value| !value.is_null());
        let (value, coercion) = match (given, &spec.default) {
            (Some(value), _) => (value, Coercion::Lenient),
            (None, Some(default)) => (default, Coercion::Strict),
            (None, None) => {
                if spec.required {
                    let message = format!("is required: give {}", check::describe(&spec.kind));
                    errors.push((position, input_error(name, message)));
                }
                continue;
            }
        };
        match check::check_value(&spec.kind, value, coercion) {
            Ok(checked) => {
                values.insert(name.to_string(), checked.value);
                pending.extend(checked.references.into_iter().map(|reference| Pending {
                    position,
                    input: name,
                    reference,
                }));
            }
            Err(messages) => errors.extend(
                messages
                    .into_iter()
                    .map(|message| (position, input_error(name, message))),
            ),
        }
    }

    // The stream yields owned references: a closure over borrowed items
    // makes the future lose `Send` (rustc cannot prove the closure works
    // for every lifetime), and callers run validation in spawned tasks.
    let references: Vec<Reference> = pending.iter().map(|item| item.reference.clone()).collect();
    let outcomes: Vec<Result<EntityRef, String>> = stream::iter(references)
        .map(|reference| async move { resolve(entities, &reference).await })
        .buffered(CONCURRENT_LOOKUPS)
        .collect()
        .await;
    for (item, outcome) in pending.iter().zip(outcomes) {
        match outcome {
            Ok(entity) => store_reference(&mut values, item, entity),
            Err(message) => {
                let message = match item.reference.index {
                    Some(index) => format!("item at index {index}: {message}"),
                    None => message,
                };
                errors.push((item.position, input_error(item.input, message)));
            }
        }
    }

    if errors.is_empty() {
        Ok(ValidatedInputs(values))
    } else {
        errors.sort_by_key(|(position, _)| *position);
        Err(errors.into_iter().map(|(_, error)| error).collect())
    }
}

/// Resolves one reference to exactly one entity, or explains why not.
async fn resolve(entities: &dyn EntityLookup, reference: &Reference) -> Result<EntityRef, String> {
    let Reference {
        blueprint, text, ..
    } = reference;
    let mut found = match entities.find(blueprint, text).await {
        Ok(found) => found,
        Err(cause) => {
            error!(blueprint = %blueprint, error = %format!("{cause:#}"), "entity lookup failed");
            return Err(format!(
                "could not look up the {blueprint} entity {text:?} because the catalog lookup \
                 failed; try again"
            ));
        }
    };
    // The lookup promises entities of the blueprint; this keeps a careless
    // implementation from letting another blueprint through.
    found.retain(|entity| entity.blueprint == *blueprint);
    found.sort();
    found.dedup();

    match found.len() {
        0 => Err(not_found(entities, reference).await),
        1 => Ok(found.remove(0)),
        count => Err(format!(
            "{text:?} matches {count} {blueprint} entities: {}; give one of these references",
            list_references(&found)
        )),
    }
}

async fn not_found(entities: &dyn EntityLookup, reference: &Reference) -> String {
    let Reference {
        blueprint, text, ..
    } = reference;
    if let Some(other) = EntityRef::parse(text)
        && other.blueprint != *blueprint
    {
        return format!(
            "{text:?} refers to a {} entity, but this input takes {}",
            other.blueprint,
            check::describe_entity(blueprint)
        );
    }

    let suggestions = match entities.suggest(blueprint, text, SUGGESTIONS).await {
        Ok(suggestions) => suggestions,
        Err(cause) => {
            warn!(blueprint = %blueprint, error = %format!("{cause:#}"), "entity suggestions failed");
            Vec::new()
        }
    };
    let hint = if suggestions.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = suggestions.iter().map(EntityRef::to_string).collect();
        format!(" (did you mean {}?)", names.join(" or "))
    };
    format!(
        "no {blueprint} named {text:?}{hint}; give the identifier or {blueprint}:identifier of an \
         existing {blueprint} entity"
    )
}

fn store_reference(values: &mut Map<String, Value>, item: &Pending<'_>, entity: EntityRef) {
    let Some(value) = values.get_mut(item.input) else {
        return;
    };
    let slot = match item.reference.index {
        Some(index) => value.get_mut(index),
        None => Some(value),
    };
    if let Some(slot) = slot {
        *slot = Value::String(entity.to_string());
    }
}

fn list_references(references: &[EntityRef]) -> String {
    let mut listed: Vec<String> = references
        .iter()
        .take(MAX_LISTED_CANDIDATES)
        .map(EntityRef::to_string)
        .collect();
    if references.len() > MAX_LISTED_CANDIDATES {
        listed.push(format!(
            "and {} more",
            references.len() - MAX_LISTED_CANDIDATES
        ));
    }
    listed.join(", ")
}

fn list_inputs(schema: &InputSchema) -> String {
    if schema.is_empty() {
        return "this action takes no inputs, so send {}".to_string();
    }
    let names: Vec<&str> = schema.inputs().map(|(name, _)| name).collect();
    format!("the inputs are: {}", names.join(", "))
}

fn input_error(input: &str, message: String) -> InputError {
    InputError {
        input: input.to_string(),
        message,
    }
}
