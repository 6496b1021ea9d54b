//! Checks one value against an input's type and rules, with no catalog
//! access: entity references are only checked to be non-empty strings and
//! come back as [`Reference`]s for the caller to resolve.
//!
//! The same checks serve a schema's `default` and `enum` values (strictly)
//! and a proposal's values (leniently, see [`Coercion`]). Messages are
//! fragments such as `must be at most 20 (got 25)` that the caller prefixes
//! with the input or the schema field.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{ArrayRules, InputKind, MAX_ARRAY_ITEMS, NumberRules, StringRules};
use crate::catalog::truncate_chars;

/// Most item errors reported for one array; the rest are counted.
const MAX_ITEM_ERRORS: usize = 10;

/// Characters of a rejected value quoted back in a message.
const SHOWN_VALUE_CHARS: usize = 60;

/// Strictness with which scalar types are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coercion {
    /// Types must match exactly: values written in the agents file.
    Strict,
    /// A number may come as a string holding a JSON number, and a boolean
    /// as `"true"` or `"false"` in any letter case: proposed values.
    Lenient,
}

/// An entity reference that passed the local checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    /// Position in the array, for an array item.
    pub index: Option<usize>,
    pub blueprint: String,
    /// The text as given, trimmed.
    pub text: String,
}

/// A value that passed the local checks. Entity references are still the
/// text given, and `references` records where they are.
#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub value: Value,
    pub references: Vec<Reference>,
}

/// Checks `value` against `kind`, returning every problem.
pub(super) fn check_value(
    kind: &InputKind,
    value: &Value,
    coercion: Coercion,
) -> Result<Checked, Vec<String>> {
    if let InputKind::Array(rules) = kind {
        return check_array(rules, value, coercion);
    }
    let value = check_scalar(kind, value, coercion)?;
    let references = match kind {
        InputKind::Entity { blueprint } => vec![reference(None, blueprint, &value)],
        _ => Vec::new(),
    };
    Ok(Checked { value, references })
}

/// Checks text against a string input's rules. With an `enum`, only
/// membership is reported, because enum values were checked against the
/// other rules when the schema was read.
pub(super) fn check_text(rules: &StringRules, text: &str) -> Vec<String> {
    if let Some(allowed) = &rules.allowed
        && !allowed.iter().any(|value| value == text)
    {
        return vec![format!(
            "must be one of {} (got {})",
            quoted_list(allowed),
            shown(&Value::String(text.to_string()))
        )];
    }

    let mut errors = Vec::new();
    let length = text.chars().count() as u64;
    if let Some(min) = rules.min_length
        && length < min
    {
        errors.push(format!(
            "must be at least {} long (got {length})",
            plural(min, "character")
        ));
    }
    if let Some(max) = rules.max_length
        && length > max
    {
        errors.push(format!(
            "must be at most {} long (got {length})",
            plural(max, "character")
        ));
    }
    if let Some(pattern) = &rules.pattern
        && !pattern.is_match(text)
    {
        errors.push(format!(
            "must match {} (got {})",
            pattern.as_str(),
            shown(&Value::String(text.to_string()))
        ));
    }
    errors
}

/// Describes what an input takes, for "is required" messages:
/// `a whole number from 1 to 20`, `one of "staging", "production"`.
pub(super) fn describe(kind: &InputKind) -> String {
    match kind {
        InputKind::String(rules) => describe_string(rules),
        InputKind::Number(rules) => format!("a number{}", describe_range(rules)),
        InputKind::Integer(rules) => format!("a whole number{}", describe_range(rules)),
        InputKind::Boolean => "true or false".to_string(),
        InputKind::Entity { blueprint } => describe_entity(blueprint),
        InputKind::Array(rules) => {
            let count = match (rules.min_items, effective_max_items(rules)) {
                (Some(min), max) if min == max => plural(min, "item"),
                (Some(min), max) => format!("{min} to {max} items"),
                (None, max) => format!("at most {}", plural(max, "item")),
            };
            format!("a list of {count}, each {}", describe(&rules.items.kind))
        }
    }
}

/// Describes an entity reference: the text the model is given for an
/// entity input.
pub(super) fn describe_entity(blueprint: &str) -> String {
    format!("a reference to a {blueprint} entity: its identifier or {blueprint}:identifier")
}

/// Quotes a rejected value back, cut to a readable length.
pub(super) fn shown(value: &Value) -> String {
    truncate_chars(&value.to_string(), SHOWN_VALUE_CHARS)
}

/// Writes `count` and the noun, adding `s` unless the count is one.
pub(super) fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Orders two JSON numbers: exactly when both are integers, as `f64`
/// otherwise.
pub(super) fn compare(left: &Number, right: &Number) -> Ordering {
    match (as_integer(left), as_integer(right)) {
        (Some(left), Some(right)) => left.cmp(&right),
        _ => {
            let left = left.as_f64().unwrap_or(f64::NAN);
            let right = right.as_f64().unwrap_or(f64::NAN);
            left.partial_cmp(&right).unwrap_or(Ordering::Equal)
        }
    }
}

/// Returns the number as an integer when it is a whole number within the
/// range of `i64` or `u64`, such as `3` or `3.0`.
pub(super) fn whole_number(number: &Number) -> Option<Number> {
    if number.is_i64() || number.is_u64() {
        return Some(number.clone());
    }
    let float = number.as_f64()?;
    // Beyond 2^63 an f64 cannot be converted exactly, so such values are
    // not accepted as whole numbers.
    let in_range = float.fract() == 0.0 && float.abs() < 9.0e18;
    in_range.then(|| Number::from(float as i64))
}

/// Returns the largest item count an array input accepts.
pub(super) fn effective_max_items(rules: &ArrayRules) -> u64 {
    rules
        .max_items
        .unwrap_or(MAX_ARRAY_ITEMS)
        .min(MAX_ARRAY_ITEMS)
}

fn check_scalar(kind: &InputKind, value: &Value, coercion: Coercion) -> Result<Value, Vec<String>> {
    match kind {
        InputKind::String(rules) => check_string(rules, value),
        InputKind::Number(rules) => check_number(rules, value, false, coercion),
        InputKind::Integer(rules) => check_number(rules, value, true, coercion),
        InputKind::Boolean => check_boolean(value, coercion),
        InputKind::Entity { blueprint } => check_entity(blueprint, value),
        InputKind::Array(_) => Err(vec![
            "must not be a list inside a list: nested arrays are not supported".to_string(),
        ]),
    }
}

fn check_string(rules: &StringRules, value: &Value) -> Result<Value, Vec<String>> {
    let Value::String(text) = value else {
        let hint = match value {
            Value::Number(_) | Value::Bool(_) => format!("; quote it: \"{value}\""),
            _ => String::new(),
        };
        return Err(vec![format!(
            "must be a string (got {}){hint}",
            shown(value)
        )]);
    };
    let errors = check_text(rules, text);
    if errors.is_empty() {
        Ok(value.clone())
    } else {
        Err(errors)
    }
}

fn check_number(
    rules: &NumberRules,
    value: &Value,
    integer: bool,
    coercion: Coercion,
) -> Result<Value, Vec<String>> {
    let expected = if integer {
        "a whole number"
    } else {
        "a number"
    };
    let number = match value {
        Value::Number(number) => number.clone(),
        Value::String(text) if coercion == Coercion::Lenient => text
            .trim()
            .parse::<Number>()
            .map_err(|_| vec![format!("must be {expected} (got {})", shown(value))])?,
        _ => return Err(vec![format!("must be {expected} (got {})", shown(value))]),
    };
    let number = if integer {
        whole_number(&number)
            .ok_or_else(|| vec![format!("must be a whole number (got {number})")])?
    } else {
        number
    };

    let mut errors = Vec::new();
    if let Some(minimum) = &rules.minimum
        && compare(&number, minimum) == Ordering::Less
    {
        errors.push(format!("must be at least {minimum} (got {number})"));
    }
    if let Some(maximum) = &rules.maximum
        && compare(&number, maximum) == Ordering::Greater
    {
        errors.push(format!("must be at most {maximum} (got {number})"));
    }
    if errors.is_empty() {
        Ok(Value::Number(number))
    } else {
        Err(errors)
    }
}

fn check_boolean(value: &Value, coercion: Coercion) -> Result<Value, Vec<String>> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(text) if coercion == Coercion::Lenient => {
            match text.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(vec![format!(
                    "must be true or false (got {})",
                    shown(value)
                )]),
            }
        }
        _ => Err(vec![format!(
            "must be true or false (got {})",
            shown(value)
        )]),
    }
}

fn check_entity(blueprint: &str, value: &Value) -> Result<Value, Vec<String>> {
    match value {
        Value::String(text) if !text.trim().is_empty() => {
            Ok(Value::String(text.trim().to_string()))
        }
        Value::String(_) => Err(vec![format!(
            "is empty; give {}",
            describe_entity(blueprint)
        )]),
        _ => Err(vec![format!(
            "must be a string, {} (got {})",
            describe_entity(blueprint),
            shown(value)
        )]),
    }
}

fn check_array(
    rules: &ArrayRules,
    value: &Value,
    coercion: Coercion,
) -> Result<Checked, Vec<String>> {
    let Value::Array(items) = value else {
        return Err(vec![format!(
            "must be a list (a JSON array), each item {} (got {})",
            describe(&rules.items.kind),
            shown(value)
        )]);
    };

    let count = items.len() as u64;
    let max = effective_max_items(rules);
    let mut errors = Vec::new();
    if let Some(min) = rules.min_items
        && count < min
    {
        errors.push(format!(
            "must have at least {} (got {count})",
            plural(min, "item")
        ));
    }
    if count > max {
        errors.push(format!(
            "must have at most {} (got {count})",
            plural(max, "item")
        ));
        return Err(errors);
    }

    let mut checked = Vec::new();
    let mut references = Vec::new();
    let mut failed_items = 0;
    for (index, item) in items.iter().enumerate() {
        match check_scalar(&rules.items.kind, item, coercion) {
            Ok(value) => {
                if let InputKind::Entity { blueprint } = &rules.items.kind {
                    references.push(reference(Some(index), blueprint, &value));
                }
                checked.push(value);
            }
            Err(item_errors) => {
                failed_items += 1;
                if failed_items <= MAX_ITEM_ERRORS {
                    errors.extend(
                        item_errors
                            .into_iter()
                            .map(|error| format!("item at index {index}: {error}")),
                    );
                }
            }
        }
    }
    if failed_items > MAX_ITEM_ERRORS {
        errors.push(format!(
            "{} more items are invalid in the same ways",
            failed_items - MAX_ITEM_ERRORS
        ));
    }

    if errors.is_empty() {
        Ok(Checked {
            value: Value::Array(checked),
            references,
        })
    } else {
        Err(errors)
    }
}

fn reference(index: Option<usize>, blueprint: &str, value: &Value) -> Reference {
    Reference {
        index,
        blueprint: blueprint.to_string(),
        text: value.as_str().unwrap_or_default().to_string(),
    }
}

fn describe_string(rules: &StringRules) -> String {
    if let Some(allowed) = &rules.allowed {
        return format!("one of {}", quoted_list(allowed));
    }
    let mut description = "a string".to_string();
    if let Some(pattern) = &rules.pattern {
        description.push_str(&format!(" matching {}", pattern.as_str()));
    }
    match (rules.min_length, rules.max_length) {
        (Some(min), Some(max)) => {
            description.push_str(&format!(", {min} to {max} characters long"))
        }
        (Some(min), None) => {
            description.push_str(&format!(", at least {} long", plural(min, "character")))
        }
        (None, Some(max)) => {
            description.push_str(&format!(", at most {} long", plural(max, "character")))
        }
        (None, None) => {}
    }
    description
}

fn describe_range(rules: &NumberRules) -> String {
    match (&rules.minimum, &rules.maximum) {
        (Some(minimum), Some(maximum)) => format!(" from {minimum} to {maximum}"),
        (Some(minimum), None) => format!(" of at least {minimum}"),
        (None, Some(maximum)) => format!(" of at most {maximum}"),
        (None, None) => String::new(),
    }
}

fn quoted_list(values: &[String]) -> String {
    values
        .iter()
        .map(|value| Value::String(value.clone()).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}
