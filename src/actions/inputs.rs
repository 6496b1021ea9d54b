//! The input schema of an action: a subset of JSON Schema written in the
//! agents file, checked when the file is loaded and used to validate the
//! inputs a model (or a person) proposes.
//!
//! ```yaml
//! inputs:
//!   environment: { type: string, enum: [staging, production], default: staging }
//!   version: { type: string, pattern: "^v?[0-9]+\\.[0-9]+\\.[0-9]+$", max_length: 40, required: true }
//!   replicas: { type: integer, minimum: 1, maximum: 20 }
//!   notify: { type: boolean, default: true }
//!   service: { type: entity, blueprint: service, required: true }
//!   reviewers: { type: array, items: { type: entity, blueprint: _user }, min_items: 1, max_items: 5 }
//! ```
//!
//! Types and their keys:
//!
//! - `string`: `enum` (the allowed values), `pattern` (a regular expression
//!   in the `regex` crate's syntax that must match the whole value),
//!   `min_length` and `max_length` (in Unicode scalar values).
//! - `number` and `integer` (whole numbers only): `minimum` and `maximum`,
//!   both inclusive.
//! - `boolean`.
//! - `entity`: a reference to a catalog entity of `blueprint`. The model
//!   is given a string, and a validated value is always
//!   `blueprint:identifier`.
//! - `array`: `items` (one of the types above, never another array),
//!   `min_items` and `max_items`. No array takes more than
//!   [`MAX_ARRAY_ITEMS`] items.
//!
//! Every input may also have `required` (default false), `default` (which
//! must itself be valid), `title` and `description`. Input names are
//! lower-case letters, digits and `_`, start with a letter and are at most
//! 64 characters long.
//!
//! Reading happens in two steps: serde-saphyr deserializes [`RawInputs`], a
//! loose tree that keeps the line and column of every key and value, and
//! [`InputSchema::from_raw`] checks it and reports every problem at once.

mod check;
mod json_schema;
mod lookup;
mod parse;
pub(crate) mod raw;

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;
use serde_json::{Number, Value};

pub use lookup::EntityLookup;
pub use raw::RawInputs;

/// Maximum number of items in any array input: `max_items` may not exceed
/// it, and an array without `max_items` is capped at it. Each entity item
/// costs a catalog lookup, so a proposal cannot ask for thousands of them.
pub const MAX_ARRAY_ITEMS: u64 = 100;

/// A checked input schema: the inputs of one action, in file order.
#[derive(Debug, Clone, Default)]
pub struct InputSchema {
    inputs: Vec<(String, InputSpec)>,
}

/// One input: its type with the type's rules, and the keys every type
/// shares.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub kind: InputKind,
    /// Whether a proposal must give a value. Never true together with a
    /// default, which `from_raw` rejects.
    pub required: bool,
    /// Value used when a proposal gives none, already checked against the
    /// type. An entity default is the text as written and is resolved
    /// against the catalog at validation, like a proposed value.
    pub default: Option<Value>,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// The type of an input and the rules that come with it.
#[derive(Debug, Clone)]
pub enum InputKind {
    String(StringRules),
    /// Any finite number.
    Number(NumberRules),
    /// Whole numbers only.
    Integer(NumberRules),
    Boolean,
    Entity {
        /// Blueprint the referenced entity must belong to.
        blueprint: String,
    },
    Array(ArrayRules),
}

/// Rules of a `string` input.
#[derive(Debug, Clone, Default)]
pub struct StringRules {
    /// Allowed values, when the input is an enumeration.
    pub allowed: Option<Vec<String>>,
    pub pattern: Option<Pattern>,
    /// Lengths in Unicode scalar values (`char`s), inclusive.
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
}

/// Inclusive bounds of a `number` or `integer` input, as written.
#[derive(Debug, Clone, Default)]
pub struct NumberRules {
    pub minimum: Option<Number>,
    pub maximum: Option<Number>,
}

/// Rules of an `array` input.
#[derive(Debug, Clone)]
pub struct ArrayRules {
    /// Type and rules of each item: never an array, never required, and
    /// without a default.
    pub items: Box<InputSpec>,
    pub min_items: Option<u64>,
    /// At most [`MAX_ARRAY_ITEMS`].
    pub max_items: Option<u64>,
}

/// A `pattern` as written, and compiled to match whole values.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    whole: Regex,
}

impl Pattern {
    /// Compiles `source` wrapped as `^(?:source)$`, so it must match the
    /// whole value.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            source: source.to_string(),
            whole: Regex::new(&format!("^(?:{source})$"))?,
        })
    }

    /// Returns the pattern as written in the agents file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Returns the anchored form, `^(?:source)$`, that values are matched
    /// against.
    pub fn anchored(&self) -> &str {
        self.whole.as_str()
    }

    /// Reports whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.whole.is_match(text)
    }
}

/// One problem in an input schema, with where it is in the agents file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// Dotted path of the offending key, such as `inputs.version.pattern`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One reason a proposal's inputs were rejected, worded so that the model
/// can correct its proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The input concerned (possibly one the schema does not define); empty
    /// when the proposal as a whole is wrong, for example not an object.
    pub input: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.input.is_empty() {
            write!(f, "inputs: {}", self.message)
        } else {
            write!(f, "input `{}`: {}", self.input, self.message)
        }
    }
}

/// Inputs that passed validation: every input with a value or a default,
/// entity references written `blueprint:identifier`, numeric and boolean
/// strings converted to numbers and booleans.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValidatedInputs(pub serde_json::Map<String, Value>);

impl InputSchema {
    /// Checks a schema read from the agents file, returning every problem
    /// found rather than the first.
    pub fn from_raw(raw: &RawInputs) -> Result<InputSchema, Vec<InputProblem>> {
        parse::parse_schema(raw).map(|inputs| InputSchema { inputs })
    }

    /// Returns the schema of an action that takes no inputs.
    pub fn empty() -> InputSchema {
        InputSchema::default()
    }

    /// Returns the names and specs of the inputs, in file order.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, &InputSpec)> {
        self.inputs.iter().map(|(name, spec)| (name.as_str(), spec))
    }

    /// Finds an input by name.
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs
            .iter()
            .find(|(input, _)| input == name)
            .map(|(_, spec)| spec)
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Returns the blueprints that entity inputs (array items included)
    /// refer to, so a caller can check that the catalog has them.
    pub fn blueprints(&self) -> BTreeSet<&str> {
        let mut blueprints = BTreeSet::new();
        for (_, spec) in &self.inputs {
            let kind = match &spec.kind {
                InputKind::Array(rules) => &rules.items.kind,
                kind => kind,
            };
            if let InputKind::Entity { blueprint } = kind {
                blueprints.insert(blueprint.as_str());
            }
        }
        blueprints
    }

    /// Builds the JSON Schema of the inputs for a model's tool definition:
    /// `{"type": "object", "properties": {...}, "required": [...],
    /// "additionalProperties": false}`. Entity inputs are strings whose
    /// description names the blueprint they refer to.
    pub fn to_json_schema(&self) -> Value {
        json_schema::object_schema(self)
    }

    /// Validates inputs proposed by a model or a person and fills in
    /// defaults, collecting every error rather than the first.
    ///
    /// Types are strict, with two exceptions because models often quote
    /// scalars: a `number` or `integer` input accepts a string holding a
    /// JSON number (`"3"`), and a `boolean` input accepts the strings
    /// `"true"` and `"false"` in any letter case. A `null` value counts as
    /// absent, so the default applies or a required input is reported
    /// missing. Entity references are resolved through `entities`; they are
    /// the only lookups, and they run concurrently.
    pub async fn validate(
        &self,
        proposed: &Value,
        entities: &dyn EntityLookup,
    ) -> Result<ValidatedInputs, Vec<InputError>> {
        lookup::validate(self, proposed, entities).await
    }
}
