//! Turns [`RawInputs`] into input specs, reporting every problem with the
//! line and column of the key or value at fault.
//!
//! An input with an unknown or missing `type` is reported and skipped, so
//! its other keys are not checked against a guessed type. Everything else
//! is checked even after a problem, so one pass lists all of them.

use std::cmp::Ordering;

use serde_json::{Number, Value};
use serde_saphyr::{Location, Spanned};

use super::check::{self, Coercion};
use super::raw::{RawEntry, RawInputs, RawNode};
use super::{
    ArrayRules, InputKind, InputProblem, InputSpec, MAX_ARRAY_ITEMS, NumberRules, Pattern,
    StringRules,
};

/// The input types, as written in `type:`.
const TYPES: &[&str] = &["string", "number", "integer", "boolean", "entity", "array"];

/// Keys every input may have.
const COMMON_KEYS: &[&str] = &["type", "required", "default", "title", "description"];

/// Keys that belong to one type or more, with the types they belong to.
const TYPE_KEYS: &[(&str, &[&str])] = &[
    ("enum", &["string"]),
    ("pattern", &["string"]),
    ("min_length", &["string"]),
    ("max_length", &["string"]),
    ("minimum", &["number", "integer"]),
    ("maximum", &["number", "integer"]),
    ("blueprint", &["entity"]),
    ("items", &["array"]),
    ("min_items", &["array"]),
    ("max_items", &["array"]),
];

/// Maximum length of an input name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// Position of a definition: an input of its own, or the `items` of an
/// array input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Input,
    Items,
}

/// Checks every input and returns the specs in file order, or every
/// problem found.
pub(super) fn parse_schema(raw: &RawInputs) -> Result<Vec<(String, InputSpec)>, Vec<InputProblem>> {
    let mut problems = Problems::default();
    let mut inputs = Vec::new();

    for (name, node) in &raw.entries {
        let field = format!("inputs.{}", name.value);
        if !is_input_name(&name.value) {
            problems.report(
                &name.referenced,
                &field,
                format!(
                    "{:?} is not a valid input name; use lower-case letters, digits and _, \
                     starting with a letter, at most {MAX_NAME_CHARS} characters",
                    name.value
                ),
            );
        }
        if let Some(spec) = parse_input(node, &name.referenced, &field, Level::Input, &mut problems)
        {
            inputs.push((name.value.clone(), spec));
        }
    }

    if problems.0.is_empty() {
        Ok(inputs)
    } else {
        Err(problems.0)
    }
}

#[derive(Default)]
struct Problems(Vec<InputProblem>);

impl Problems {
    fn report(&mut self, at: &Location, field: &str, message: impl Into<String>) {
        let known = at.line() > 0;
        self.0.push(InputProblem {
            line: known.then(|| at.line()),
            column: known.then(|| at.column()),
            field: field.to_string(),
            message: message.into(),
        });
    }
}

/// One input definition (a mapping) being read.
struct Definition<'a> {
    /// Dotted path of the definition, such as `inputs.version`.
    field: &'a str,
    /// Location of the input's name, for problems about a missing key.
    name_at: &'a Location,
    entries: &'a [RawEntry],
}

impl<'a> Definition<'a> {
    fn get(&self, key: &str) -> Option<&'a Spanned<RawNode>> {
        self.entries
            .iter()
            .find(|(name, _)| name.value == key)
            .map(|(_, value)| value)
    }

    fn field_of(&self, key: &str) -> String {
        format!("{}.{key}", self.field)
    }

    /// Reads an optional string key.
    fn text(&self, key: &str, problems: &mut Problems) -> Option<String> {
        let node = self.get(key)?;
        match &node.value {
            RawNode::String(text) => Some(text.clone()),
            other => {
                problems.report(
                    &node.referenced,
                    &self.field_of(key),
                    format!("must be a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// Reads an optional boolean key.
    fn flag(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        let node = self.get(key)?;
        match &node.value {
            RawNode::Bool(flag) => Some(*flag),
            other => {
                problems.report(
                    &node.referenced,
                    &self.field_of(key),
                    format!("must be true or false, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// Reads an optional count: a whole number of 0 or more.
    fn count(&self, key: &str, problems: &mut Problems) -> Option<u64> {
        let node = self.get(key)?;
        if let RawNode::Number(number) = &node.value
            && let Some(count) = check::whole_number(number).and_then(|whole| whole.as_u64())
        {
            return Some(count);
        }
        problems.report(
            &node.referenced,
            &self.field_of(key),
            format!(
                "must be a whole number of 0 or more, found {}",
                shown(&node.value)
            ),
        );
        None
    }

    /// Reads an optional numeric bound; whole numbers only for integers.
    fn bound(&self, key: &str, integer: bool, problems: &mut Problems) -> Option<Number> {
        let node = self.get(key)?;
        let RawNode::Number(number) = &node.value else {
            problems.report(
                &node.referenced,
                &self.field_of(key),
                format!("must be a number, found {}", shown(&node.value)),
            );
            return None;
        };
        if !integer {
            return Some(number.clone());
        }
        let whole = check::whole_number(number);
        if whole.is_none() {
            problems.report(
                &node.referenced,
                &self.field_of(key),
                format!("must be a whole number for an integer input, found {number}"),
            );
        }
        whole
    }

    /// Reports a pair of limits where the lower one exceeds the upper one,
    /// at the upper one.
    fn check_order(
        &self,
        (min_key, min): (&str, Option<String>),
        (max_key, max): (&str, Option<String>),
        ordering: Option<Ordering>,
        problems: &mut Problems,
    ) {
        if let (Some(min), Some(max), Some(Ordering::Greater)) = (min, max, ordering)
            && let Some(node) = self.get(max_key)
        {
            problems.report(
                &node.referenced,
                &self.field_of(max_key),
                format!("{max_key} ({max}) is less than {min_key} ({min})"),
            );
        }
    }
}

fn parse_input(
    node: &Spanned<RawNode>,
    name_at: &Location,
    field: &str,
    level: Level,
    problems: &mut Problems,
) -> Option<InputSpec> {
    let RawNode::Map(entries) = &node.value else {
        problems.report(
            &node.referenced,
            field,
            format!(
                "must be a mapping such as {{ type: string }}, found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    let definition = Definition {
        field,
        name_at,
        entries,
    };

    check_keys(&definition, level, problems);
    let type_name = type_name(&definition, level, problems)?;
    check_keys_apply(&definition, type_name, problems);

    let kind = match type_name {
        "string" => InputKind::String(string_rules(&definition, problems)),
        "number" => InputKind::Number(number_rules(&definition, false, problems)),
        "integer" => InputKind::Integer(number_rules(&definition, true, problems)),
        "boolean" => InputKind::Boolean,
        "entity" => InputKind::Entity {
            blueprint: blueprint(&definition, problems)?,
        },
        _ => InputKind::Array(array_rules(&definition, problems)?),
    };

    let mut spec = InputSpec {
        kind,
        required: definition.flag("required", problems).unwrap_or(false),
        default: None,
        title: definition.text("title", problems),
        description: definition.text("description", problems),
    };
    spec.default = default(&definition, &spec, problems);
    Some(spec)
}

/// Reports keys that no type has, and the keys an array's `items` must
/// not have.
fn check_keys(definition: &Definition<'_>, level: Level, problems: &mut Problems) {
    for (key, _) in definition.entries {
        let name = key.value.as_str();
        let field = definition.field_of(name);
        if !is_known_key(name) {
            problems.report(&key.referenced, &field, unknown_key_message(name));
        } else if level == Level::Items && matches!(name, "required" | "default") {
            problems.report(
                &key.referenced,
                &field,
                format!("is not allowed inside items; set {name} on the array input itself"),
            );
        }
    }
}

fn unknown_key_message(name: &str) -> String {
    let snake = to_snake_case(name);
    if snake != name && is_known_key(&snake) {
        return format!("unknown key; did you mean {snake}?");
    }
    let mut keys: Vec<&str> = COMMON_KEYS.to_vec();
    keys.extend(TYPE_KEYS.iter().map(|(key, _)| *key));
    format!("unknown key; the keys are {}", keys.join(", "))
}

fn is_known_key(key: &str) -> bool {
    COMMON_KEYS.contains(&key) || TYPE_KEYS.iter().any(|(known, _)| *known == key)
}

/// Reports keys of another type, such as `pattern` on a number.
fn check_keys_apply(definition: &Definition<'_>, type_name: &str, problems: &mut Problems) {
    for (key, _) in definition.entries {
        let Some((_, types)) = TYPE_KEYS.iter().find(|(known, _)| *known == key.value) else {
            continue;
        };
        if !types.contains(&type_name) {
            problems.report(
                &key.referenced,
                &definition.field_of(&key.value),
                format!(
                    "applies only to {} inputs, and this input is {type_name}; remove it or \
                     change the type",
                    types.join(" and ")
                ),
            );
        }
    }
}

fn type_name(
    definition: &Definition<'_>,
    level: Level,
    problems: &mut Problems,
) -> Option<&'static str> {
    let field = definition.field_of("type");
    let Some(node) = definition.get("type") else {
        problems.report(
            definition.name_at,
            &field,
            format!("missing; use one of {}", TYPES.join(", ")),
        );
        return None;
    };
    let written = match &node.value {
        RawNode::String(text) => text.as_str(),
        _ => "",
    };
    let Some(type_name) = TYPES.iter().copied().find(|known| *known == written) else {
        problems.report(
            &node.referenced,
            &field,
            format!(
                "{} is not an input type; use one of {}",
                shown(&node.value),
                TYPES.join(", ")
            ),
        );
        return None;
    };
    if level == Level::Items && type_name == "array" {
        problems.report(
            &node.referenced,
            &field,
            "nested arrays are not allowed; items must be string, number, integer, boolean or entity",
        );
        return None;
    }
    Some(type_name)
}

fn string_rules(definition: &Definition<'_>, problems: &mut Problems) -> StringRules {
    let min_length = definition.count("min_length", problems);
    let max_length = definition.count("max_length", problems);
    definition.check_order(
        ("min_length", min_length.map(|min| min.to_string())),
        ("max_length", max_length.map(|max| max.to_string())),
        min_length.zip(max_length).map(|(min, max)| min.cmp(&max)),
        problems,
    );

    let mut rules = StringRules {
        allowed: None,
        pattern: pattern(definition, problems),
        min_length,
        max_length,
    };
    rules.allowed = allowed_values(definition, &rules, problems);
    rules
}

fn pattern(definition: &Definition<'_>, problems: &mut Problems) -> Option<Pattern> {
    let source = definition.text("pattern", problems)?;
    let node = definition.get("pattern")?;
    match Pattern::new(&source) {
        Ok(pattern) => Some(pattern),
        Err(error) => {
            problems.report(
                &node.referenced,
                &definition.field_of("pattern"),
                format!(
                    "{source:?} is not a valid regular expression: {}",
                    regex_problem(&error)
                ),
            );
            None
        }
    }
}

/// Reads `enum`: a non-empty list of distinct strings, each valid under
/// the input's other rules.
fn allowed_values(
    definition: &Definition<'_>,
    rules: &StringRules,
    problems: &mut Problems,
) -> Option<Vec<String>> {
    let node = definition.get("enum")?;
    let field = definition.field_of("enum");
    let RawNode::List(items) = &node.value else {
        problems.report(
            &node.referenced,
            &field,
            format!(
                "must be a list such as [staging, production], found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    if items.is_empty() {
        problems.report(
            &node.referenced,
            &field,
            "is empty; list the allowed values, or remove enum",
        );
        return None;
    }

    let mut allowed: Vec<String> = Vec::new();
    for item in items {
        let RawNode::String(text) = &item.value else {
            let hint = match &item.value {
                RawNode::Number(_) | RawNode::Bool(_) => {
                    format!("; quote it: \"{}\"", item.value.to_json())
                }
                _ => String::new(),
            };
            problems.report(
                &item.referenced,
                &field,
                format!(
                    "{} is {}, but this input is a string{hint}",
                    shown(&item.value),
                    item.value.kind()
                ),
            );
            continue;
        };
        if allowed.contains(text) {
            problems.report(
                &item.referenced,
                &field,
                format!("{text:?} is listed twice"),
            );
            continue;
        }
        for error in check::check_text(rules, text) {
            problems.report(&item.referenced, &field, format!("value {text:?} {error}"));
        }
        allowed.push(text.clone());
    }
    Some(allowed)
}

fn number_rules(
    definition: &Definition<'_>,
    integer: bool,
    problems: &mut Problems,
) -> NumberRules {
    let minimum = definition.bound("minimum", integer, problems);
    let maximum = definition.bound("maximum", integer, problems);
    definition.check_order(
        ("minimum", minimum.as_ref().map(Number::to_string)),
        ("maximum", maximum.as_ref().map(Number::to_string)),
        minimum
            .as_ref()
            .zip(maximum.as_ref())
            .map(|(min, max)| check::compare(min, max)),
        problems,
    );
    NumberRules { minimum, maximum }
}

fn blueprint(definition: &Definition<'_>, problems: &mut Problems) -> Option<String> {
    let field = definition.field_of("blueprint");
    let Some(node) = definition.get("blueprint") else {
        problems.report(
            definition.name_at,
            &field,
            "missing; an entity input needs the blueprint of the entities it names, such as \
             blueprint: service",
        );
        return None;
    };
    let blueprint = definition.text("blueprint", problems)?;
    let blueprint = blueprint.trim();
    if blueprint.is_empty() || blueprint.contains(':') {
        problems.report(
            &node.referenced,
            &field,
            "must be a blueprint identifier such as service, with no colon",
        );
        return None;
    }
    Some(blueprint.to_string())
}

fn array_rules(definition: &Definition<'_>, problems: &mut Problems) -> Option<ArrayRules> {
    let min_items = definition.count("min_items", problems);
    let max_items = definition.count("max_items", problems);
    definition.check_order(
        ("min_items", min_items.map(|min| min.to_string())),
        ("max_items", max_items.map(|max| max.to_string())),
        min_items.zip(max_items).map(|(min, max)| min.cmp(&max)),
        problems,
    );
    if let (Some(max), Some(node)) = (max_items, definition.get("max_items"))
        && max > MAX_ARRAY_ITEMS
    {
        problems.report(
            &node.referenced,
            &definition.field_of("max_items"),
            format!("is {max}; an array input takes at most {MAX_ARRAY_ITEMS} items"),
        );
    }
    if let (Some(min), Some(node)) = (min_items, definition.get("min_items"))
        && min > MAX_ARRAY_ITEMS
    {
        problems.report(
            &node.referenced,
            &definition.field_of("min_items"),
            format!("is {min}; an array input takes at most {MAX_ARRAY_ITEMS} items"),
        );
    }

    let field = definition.field_of("items");
    let Some(node) = definition.get("items") else {
        problems.report(
            definition.name_at,
            &field,
            "missing; an array input needs items such as { type: string }",
        );
        return None;
    };
    let items = parse_input(node, &node.referenced, &field, Level::Items, problems)?;
    Some(ArrayRules {
        items: Box::new(items),
        min_items,
        max_items,
    })
}

/// Reads `default` and checks it like a proposed value, but strictly: a
/// number written as a string is a mistake in the file.
fn default(
    definition: &Definition<'_>,
    spec: &InputSpec,
    problems: &mut Problems,
) -> Option<Value> {
    let node = definition.get("default")?;
    let field = definition.field_of("default");
    if spec.required
        && let Some(required) = definition.get("required")
    {
        problems.report(
            &required.referenced,
            &definition.field_of("required"),
            "an input with a default is never missing; remove required or the default",
        );
    }
    match check::check_value(&spec.kind, &node.value.to_json(), Coercion::Strict) {
        Ok(checked) => Some(checked.value),
        Err(errors) => {
            for error in errors {
                problems.report(&node.referenced, &field, error);
            }
            None
        }
    }
}

fn is_input_name(name: &str) -> bool {
    let mut characters = name.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_lowercase())
        && name.len() <= MAX_NAME_CHARS
        && characters.all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
        })
}

fn to_snake_case(name: &str) -> String {
    let mut snake = String::new();
    for character in name.chars() {
        if character.is_ascii_uppercase() {
            snake.push('_');
            snake.push(character.to_ascii_lowercase());
        } else if character == '-' {
            snake.push('_');
        } else {
            snake.push(character);
        }
    }
    snake
}

fn shown(node: &RawNode) -> String {
    check::shown(&node.to_json())
}

/// Returns the cause line of a regex error, which spans several lines.
fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid pattern"))
        .to_string()
}
