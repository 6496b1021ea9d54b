//! The software catalog: blueprints (entity types), entities, relations and
//! search, stored in the database.
//!
//! The model follows Port: a *blueprint* has an identifier, a title, a
//! property schema and named relations to other blueprints; an *entity*
//! belongs to one blueprint and is identified by the blueprint and its
//! identifier together ([`EntityRef`], written `blueprint:identifier`).
//! Backstage entities map kind to blueprint (`component`, `api`, `group`,
//! ...); one outside the `default` namespace keeps it in its identifier
//! (`development/guest`), so same-named entities never merge. Relations
//! point at references that may not exist; those stay visible as dangling
//! references instead of disappearing.
//!
//! [`import`] writes the catalog, [`Catalog`] reads it, [`search`] finds
//! entities by free text, and [`demo`] holds the bundled demo catalog.

pub mod demo;
pub mod import;
mod index;
pub mod normalize;
mod query;
pub mod search;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use query::truncate_chars;
pub use query::{
    BlueprintInfo, CountResult, EntityDetail, EntitySummary, IncomingLink, LinkedEntity,
    OutgoingLink, PropertyInfo,
};
pub use search::{Filter, SearchRequest, SearchResponse};

use crate::store::Store;

/// A reference to an entity: its blueprint and identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityRef {
    pub blueprint: String,
    pub identifier: String,
}

impl EntityRef {
    pub fn new(blueprint: impl Into<String>, identifier: impl Into<String>) -> Self {
        Self {
            blueprint: blueprint.into(),
            identifier: identifier.into(),
        }
    }

    /// Parses `blueprint:identifier`; returns `None` without a colon or with
    /// an empty side.
    pub fn parse(text: &str) -> Option<Self> {
        let (blueprint, identifier) = text.trim().split_once(':')?;
        let (blueprint, identifier) = (blueprint.trim(), identifier.trim());
        if blueprint.is_empty() || identifier.is_empty() {
            return None;
        }
        Some(Self::new(blueprint, identifier))
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.blueprint, self.identifier)
    }
}

/// A relation declared by a blueprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Blueprint the relation points at; empty when it may point at several
    /// (a Backstage owner is a group or a user).
    pub target: String,
    #[serde(default)]
    pub many: bool,
    #[serde(default)]
    pub required: bool,
}

/// A blueprint as imported.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueprintDef {
    pub identifier: String,
    pub title: String,
    pub description: String,
    /// JSON Schema subset: `{"properties": {...}, "required": [...]}`.
    pub schema: serde_json::Value,
    pub relations: BTreeMap<String, RelationDef>,
}

/// An entity as imported.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDoc {
    pub blueprint: String,
    pub identifier: String,
    /// The bare name people use for it: Backstage `metadata.name` without
    /// the namespace, or the Port identifier.
    pub name: String,
    pub title: String,
    pub description: String,
    pub properties: serde_json::Map<String, serde_json::Value>,
    pub relations: BTreeMap<String, Vec<EntityRef>>,
}

/// The blueprints a caller may read. Entities outside the scope are
/// invisible to every query: search, get, counts, relations and lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    Blueprints(BTreeSet<String>),
}

impl Scope {
    pub fn allows(&self, blueprint: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Blueprints(allowed) => allowed.contains(blueprint),
        }
    }
}

/// Name of the relation that records ownership: Backstage `spec.owner` and
/// Port's `team` field both become this relation.
pub const OWNED_BY: &str = "ownedBy";

/// Returns the name of a relation seen from its target, for the relations
/// Backstage defines; other relations have no inverse name.
pub fn inverse_relation(name: &str) -> Option<&'static str> {
    Some(match name {
        "ownedBy" => "ownerOf",
        "partOf" => "hasPart",
        "dependsOn" => "dependencyOf",
        "dependencyOf" => "dependsOn",
        "providesApi" => "apiProvidedBy",
        "consumesApi" => "apiConsumedBy",
        "memberOf" => "hasMember",
        "hasMember" => "memberOf",
        "childOf" => "parentOf",
        "parentOf" => "childOf",
        _ => return None,
    })
}

/// Read access to the catalog in the database.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
