//! Plans: how each kind of question is answered with the catalog tools.
//!
//! Each plan calls tools through a [`Replay`] and writes its answer from
//! their results. A plan that finds nothing for its subject hands the
//! question to [`query`], which reads it against the catalog's own words
//! (blueprints, property values, entity names); what that cannot place
//! gets the help text.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::format::{help, join, label, label_of, linked, quoted, value_text};
use super::intent::{self, Intent};
use super::vocabulary::{Property, Vocabulary, property_in};
use super::{Replay, Stop};
use crate::catalog::normalize::{allowed_typos, compact, edit_distance, terms};
use list::{Mode, query};

mod list;

type Step<T> = Result<T, Stop>;

/// Entities of one lookup that an answer covers at most.
const MAX_SUBJECTS: usize = 3;

/// Entities listed in one answer at most.
const MAX_LISTED: usize = 50;

/// Answers a question, or stops for the next tool call.
pub(super) fn answer(replay: &mut Replay, question: &str, earlier: &[String]) -> Step<String> {
    let mut intent = intent::parse(question);
    resolve_pronoun(&mut intent, earlier);

    match intent {
        Intent::Owner(subject) => owner(replay, &subject, question),
        Intent::Owned(subject) => owned(replay, &subject, question),
        Intent::Members(subject) => members(replay, &subject, question),
        Intent::Dependencies {
            subject,
            consumes_only,
        } => dependencies(replay, &subject, consumes_only, question),
        Intent::Dependents(subject) => dependents(replay, &subject, question),
        Intent::Provides(subject) => provides(replay, &subject, question),
        Intent::PartOf(subject) => part_of(replay, &subject, question),
        Intent::Property { property, subject } => {
            property_of(replay, &property, &subject, question)
        }
        Intent::Describe(subject) => describe(replay, &subject, question),
        Intent::Find(text) => find(replay, &text, question),
        Intent::Count(rest) => query(replay, &rest, Mode::Count),
        Intent::Query(text) => query(replay, &text, Mode::List),
    }
}

/// Replaces "it", "that" and similar subjects with the subject of the
/// latest earlier question in the thread that named one.
fn resolve_pronoun(intent: &mut Intent, earlier: &[String]) {
    const PRONOUNS: &[&str] = &[
        "it",
        "its",
        "that",
        "this",
        "them",
        "they",
        "that one",
        "this one",
        "that service",
        "this service",
    ];
    let Some(subject) = subject_mut(intent) else {
        return;
    };
    if !PRONOUNS.contains(&subject.as_str()) {
        return;
    }
    for question in earlier.iter().rev() {
        let mut previous = intent::parse(question);
        if let Some(previous_subject) = subject_mut(&mut previous)
            && !PRONOUNS.contains(&previous_subject.as_str())
        {
            *subject = previous_subject.clone();
            return;
        }
    }
}

fn subject_mut(intent: &mut Intent) -> Option<&mut String> {
    match intent {
        Intent::Owner(subject)
        | Intent::Owned(subject)
        | Intent::Members(subject)
        | Intent::Dependents(subject)
        | Intent::Provides(subject)
        | Intent::PartOf(subject)
        | Intent::Describe(subject)
        | Intent::Dependencies { subject, .. }
        | Intent::Property { subject, .. } => Some(subject),
        Intent::Count(_) | Intent::Query(_) | Intent::Find(_) => None,
    }
}

/// Entities found for a subject, with `get_entity` details.
struct Lookup {
    details: Vec<Value>,
    /// Said before the answer when the match was not exact or not unique.
    preface: Option<String>,
}

/// Finds the entities a subject names: every exact match (up to
/// [`MAX_SUBJECTS`]), else the closest search result. `None` when nothing
/// matches at all.
fn look_up(replay: &mut Replay, subject: &str) -> Step<Option<Lookup>> {
    let results = match replay.call("search_entities", json!({ "query": subject, "limit": 10 }))? {
        Ok(response) => results_of(&response),
        Err(_) => Vec::new(),
    };
    if results.is_empty() {
        return Ok(None);
    }

    let exact: Vec<&Value> = results
        .iter()
        .filter(|result| result.get("exact_match").and_then(Value::as_bool) == Some(true))
        .collect();
    let (chosen, preface): (Vec<&Value>, Option<String>) = match exact.len() {
        0 => {
            // Entities of different kinds that share the closest name are
            // all candidates, as exact matches would be.
            let closest_identifier = results[0].get("identifier");
            let closest: Vec<&Value> = results
                .iter()
                .filter(|result| result.get("identifier") == closest_identifier)
                .take(MAX_SUBJECTS)
                .collect();
            let labels: Vec<String> = closest.iter().map(|entity| label_of(entity)).collect();
            let preface = format!(
                "I found no entity named exactly {}; the closest {} {}.",
                quoted(subject),
                if closest.len() == 1 {
                    "match is"
                } else {
                    "matches are"
                },
                join(&labels)
            );
            (closest, Some(preface))
        }
        1 => (exact, None),
        count => {
            let preface = format!(
                "{} matches {count} entities: {}.",
                quoted(subject),
                join(
                    &exact
                        .iter()
                        .map(|entity| label_of(entity))
                        .collect::<Vec<_>>()
                )
            );
            (
                exact.into_iter().take(MAX_SUBJECTS).collect(),
                Some(preface),
            )
        }
    };

    let mut details = Vec::new();
    for entity in chosen {
        let reference = entity
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Ok(detail) = replay.call("get_entity", json!({ "entity": reference }))? {
            details.push(detail);
        }
    }
    Ok(Some(Lookup { details, preface }))
}

fn results_of(response: &Value) -> Vec<Value> {
    response
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Runs `write` for each entity found for the subject and joins the
/// answers; falls back to [`query`] when nothing matches.
fn per_entity(
    replay: &mut Replay,
    subject: &str,
    question: &str,
    write: impl Fn(&Value) -> String,
) -> Step<String> {
    let Some(lookup) = look_up(replay, subject)? else {
        return query(replay, &intent::normalize(question), Mode::List);
    };
    let mut parts: Vec<String> = lookup.preface.into_iter().collect();
    let answers: Vec<String> = lookup.details.iter().map(write).collect();
    if answers.len() > 1 {
        parts.extend(answers.iter().map(|answer| format!("- {answer}")));
    } else {
        parts.extend(answers);
    }
    Ok(parts.join("\n"))
}

fn links<'a>(detail: &'a Value, key: &str) -> Vec<&'a Value> {
    detail
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

/// Targets of the entity's own relations with one of the names.
fn outgoing(detail: &Value, names: &[&str]) -> Vec<String> {
    links(detail, "relations")
        .into_iter()
        .filter(|link| {
            link.get("relation")
                .and_then(Value::as_str)
                .is_some_and(|name| names.contains(&name))
        })
        .filter_map(|link| link.get("target").map(linked))
        .collect()
}

/// Sources of relations to the entity with one of the names.
fn incoming(detail: &Value, names: &[&str]) -> Vec<String> {
    links(detail, "referenced_by")
        .into_iter()
        .filter(|link| {
            link.get("relation")
                .and_then(Value::as_str)
                .is_some_and(|name| names.contains(&name))
        })
        .filter_map(|link| link.get("source").map(linked))
        .collect()
}

fn owner(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    per_entity(replay, subject, question, |detail| {
        let owners: Vec<String> = links(detail, "owners").into_iter().map(linked).collect();
        if owners.is_empty() {
            format!("{} has no owner recorded in the catalog.", label_of(detail))
        } else {
            format!("{} is owned by {}.", label_of(detail), join(&owners))
        }
    })
}

fn owned(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    let Some(lookup) = look_up(replay, subject)? else {
        return query(replay, &intent::normalize(question), Mode::List);
    };
    let mut parts: Vec<String> = lookup.preface.clone().into_iter().collect();
    for detail in &lookup.details {
        let listed: Vec<&Value> = links(detail, "referenced_by")
            .into_iter()
            .filter(|link| link.get("relation").and_then(Value::as_str) == Some("ownedBy"))
            .collect();
        let mut owned: Vec<(String, String)> = listed
            .iter()
            .filter_map(|link| link.get("source"))
            .map(|source| (kind_of_link(source), linked(source)))
            .collect();
        let mut total = owned.len();
        if is_cut(detail, "referenced_by") {
            // The detail lists only part of what points at the entity.
            let (found, found_total) = related_search(replay, "ownedBy", detail)?;
            owned = found;
            total = found_total;
        }
        if owned.is_empty() {
            parts.push(format!("{} owns nothing in the catalog.", label_of(detail)));
            continue;
        }
        let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (kind, label) in &owned {
            by_kind.entry(kind.clone()).or_default().push(label.clone());
        }
        parts.push(format!(
            "{} owns {}:",
            label_of(detail),
            count_words(total, "entity", "entities")
        ));
        for (kind, items) in by_kind {
            parts.push(format!("- {kind}: {}", join(&items)));
        }
        if total > owned.len() {
            parts.push(format!("(showing {} of {total})", owned.len()));
        }
    }
    Ok(parts.join("\n"))
}

fn members(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    let Some(lookup) = look_up(replay, subject)? else {
        return query(replay, &intent::normalize(question), Mode::List);
    };
    let mut parts: Vec<String> = lookup.preface.clone().into_iter().collect();
    for detail in &lookup.details {
        let mut members = incoming(detail, &["memberOf"]);
        let mut total = members.len();
        if is_cut(detail, "referenced_by") {
            let (found, found_total) = related_search(replay, "memberOf", detail)?;
            members = found.into_iter().map(|(_, label)| label).collect();
            total = found_total;
        }
        for member in outgoing(detail, &["hasMember"]) {
            if !members.contains(&member) {
                members.push(member);
                total += 1;
            }
        }
        if members.is_empty() {
            parts.push(format!(
                "{} has no members recorded in the catalog.",
                label_of(detail)
            ));
        } else {
            let more = if total > members.len() {
                format!(" (showing {} of {total})", members.len())
            } else {
                String::new()
            };
            parts.push(format!(
                "{} has {}: {}{more}.",
                label_of(detail),
                count_words(total, "member", "members"),
                join(&members)
            ));
        }
    }
    Ok(parts.join("\n"))
}

/// Reports whether an entity detail lists fewer links than exist.
fn is_cut(detail: &Value, key: &str) -> bool {
    let listed = links(detail, key).len() as u64;
    let total_key = format!("{key}_total");
    detail
        .get(&total_key)
        .and_then(Value::as_u64)
        .is_some_and(|total| total > listed)
}

/// Lists the entities whose `relation` points at the entity, through a
/// search with a relation filter; returns (kind, label) pairs and the total.
fn related_search(
    replay: &mut Replay,
    relation: &str,
    detail: &Value,
) -> Step<(Vec<(String, String)>, usize)> {
    let identifier = detail
        .get("identifier")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = json!({ "filters": { relation: identifier }, "limit": MAX_LISTED });
    let response = match replay.call("search_entities", arguments)? {
        Ok(response) => response,
        Err(_) => return Ok((Vec::new(), 0)),
    };
    let results = results_of(&response);
    let total = response
        .get("total")
        .and_then(Value::as_u64)
        .unwrap_or(results.len() as u64) as usize;
    let found = results
        .iter()
        .map(|result| (kind_of_link(result), label_of(result)))
        .collect();
    Ok((found, total))
}

/// The blueprint part of an entity's reference.
fn kind_of_link(entity: &Value) -> String {
    let reference = entity.get("ref").and_then(Value::as_str).unwrap_or("?");
    reference
        .split_once(':')
        .map_or("", |(kind, _)| kind)
        .to_string()
}

fn dependencies(
    replay: &mut Replay,
    subject: &str,
    consumes_only: bool,
    question: &str,
) -> Step<String> {
    per_entity(replay, subject, question, |detail| {
        let consumed = outgoing(detail, &["consumesApi"]);
        let depends = outgoing(detail, &["dependsOn"]);
        let mut sentences = Vec::new();
        if !consumed.is_empty() {
            sentences.push(format!("consumes {}", join(&consumed)));
        }
        // "What does X consume" lists consumed APIs, and dependencies only
        // when it consumes none.
        if !depends.is_empty() && (!consumes_only || consumed.is_empty()) {
            sentences.push(format!("depends on {}", join(&depends)));
        }
        if sentences.is_empty() {
            format!(
                "{} has no dependencies recorded in the catalog.",
                label_of(detail)
            )
        } else {
            format!("{} {}.", label_of(detail), sentences.join("; it "))
        }
    })
}

fn dependents(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    per_entity(replay, subject, question, |detail| {
        let depending = incoming(detail, &["dependsOn"]);
        let consuming = incoming(detail, &["consumesApi"]);
        let mut sentences = Vec::new();
        if !depending.is_empty() {
            sentences.push(format!("{} depend on it", join(&depending)));
        }
        if !consuming.is_empty() {
            sentences.push(format!("{} consume it", join(&consuming)));
        }
        if sentences.is_empty() {
            format!("Nothing in the catalog depends on {}.", label_of(detail))
        } else {
            format!("{}: {}.", label_of(detail), sentences.join("; "))
        }
    })
}

fn provides(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    per_entity(replay, subject, question, |detail| {
        let provided = outgoing(detail, &["providesApi"]);
        let provided_by = incoming(detail, &["providesApi"]);
        if !provided.is_empty() {
            format!("{} provides {}.", label_of(detail), join(&provided))
        } else if !provided_by.is_empty() {
            format!(
                "{} is provided by {}.",
                label_of(detail),
                join(&provided_by)
            )
        } else {
            format!("{} provides no APIs in the catalog.", label_of(detail))
        }
    })
}

fn part_of(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    per_entity(replay, subject, question, |detail| {
        let parents = outgoing(detail, &["partOf", "childOf"]);
        if parents.is_empty() {
            format!(
                "{} is not part of any system or domain in the catalog.",
                label_of(detail)
            )
        } else {
            format!("{} is part of {}.", label_of(detail), join(&parents))
        }
    })
}

/// Lists the entities that best match free text.
fn find(replay: &mut Replay, text: &str, question: &str) -> Step<String> {
    let response = match replay.call("search_entities", json!({ "query": text, "limit": 5 }))? {
        Ok(response) => response,
        Err(_) => return query(replay, &intent::normalize(question), Mode::List),
    };
    let results = results_of(&response);
    if results.is_empty() {
        return query(replay, &intent::normalize(question), Mode::List);
    }
    let lines: Vec<String> = results
        .iter()
        .map(|result| {
            let description = result
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            if description.is_empty() {
                format!("- {}", label_of(result))
            } else {
                format!("- {}: {description}", label_of(result))
            }
        })
        .collect();
    Ok(format!(
        "These entities best match {}:\n{}",
        quoted(text),
        lines.join("\n")
    ))
}

/// Words that make a "what is the X of Y" question a list or a latest-of
/// question rather than a property lookup.
const SUPERLATIVES: &[&str] = &[
    "last", "latest", "newest", "recent", "first", "earliest", "oldest", "previous",
];

fn property_of(replay: &mut Replay, property: &str, subject: &str, question: &str) -> Step<String> {
    let property_words = terms(property);
    if property_words
        .iter()
        .any(|word| SUPERLATIVES.contains(&word.as_str()))
    {
        return query(replay, &intent::normalize(question), Mode::List);
    }
    let Some(lookup) = look_up(replay, subject)? else {
        return query(replay, &intent::normalize(question), Mode::List);
    };
    if lookup.preface.is_some() && lookup.details.len() < 2 {
        // "list of services": not an entity and a property, but a list.
        let vocabulary = vocabulary(replay)?;
        let words = terms(subject);
        let names = lookup.details.first().map(entity_terms).unwrap_or_default();
        let names_kind = !vocabulary.kind_mentions(&words).is_empty();
        let names_entity = words.iter().all(|word| names.contains(word));
        if names_kind && !names_entity {
            return query(replay, &intent::normalize(question), Mode::List);
        }
    }

    let mut answers = Vec::new();
    let mut missing = Vec::new();
    for detail in &lookup.details {
        match read_property(detail, property) {
            Some(text) => answers.push(text),
            None => missing.push(detail),
        }
    }

    if answers.is_empty() {
        // Maybe the "property" is a kind of entity: "which teams is Elena in".
        let vocabulary = vocabulary(replay)?;
        let names_kind = property_words
            .iter()
            .any(|word| vocabulary.kind_for_word(word).is_some())
            || vocabulary.kind_for_word(&compact(property)).is_some();
        if names_kind {
            return query(replay, &intent::normalize(question), Mode::List);
        }
        let described: Vec<String> = lookup.details.iter().map(describe_detail).collect();
        let mut parts: Vec<String> = lookup.preface.into_iter().collect();
        parts.push(format!(
            "I found no property called {}; here is what the catalog holds:",
            quoted(property)
        ));
        parts.extend(described);
        return Ok(parts.join("\n\n"));
    }

    let mut parts: Vec<String> = lookup.preface.into_iter().collect();
    parts.extend(answers);
    for detail in missing {
        parts.push(format!(
            "{} has no {} recorded.",
            label_of(detail),
            quoted(property)
        ));
    }
    Ok(parts.join("\n"))
}

/// Reads the property everyday words name from an entity detail.
fn read_property(detail: &Value, words: &str) -> Option<String> {
    let wanted = compact(words);
    let entity = label_of(detail);
    match wanted.as_str() {
        "description" | "purpose" | "summary" => {
            let description = detail
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !description.is_empty() {
                return Some(format!("{entity}: {description}"));
            }
        }
        "title" | "name" | "displayname" | "fullname" => {
            let title = detail.get("title").and_then(Value::as_str).unwrap_or("");
            return Some(format!("The name of {entity} is **{title}**."));
        }
        _ => {}
    }

    let properties = detail.get("properties").and_then(Value::as_object)?;
    let listed: Vec<Property> = properties
        .keys()
        .map(|name| Property {
            name: name.clone(),
            title: None,
            format: None,
            values: Vec::new(),
        })
        .collect();
    let name = property_in(&listed, words)?;
    let value = value_text(&properties[&name]);
    Some(format!("The {words} of {entity} is **{value}**."))
}

fn describe(replay: &mut Replay, subject: &str, question: &str) -> Step<String> {
    let Some(lookup) = look_up(replay, subject)? else {
        return query(replay, &intent::normalize(question), Mode::List);
    };
    let exact = lookup.preface.is_none() || lookup.details.len() > 1;
    if !exact {
        // "what are the open incidents" reads like a description request
        // but names a kind of entity: list those instead, unless the
        // closest entity carries every other word of the subject.
        let vocabulary = vocabulary(replay)?;
        let words = terms(subject);
        let kinds = vocabulary.kind_mentions(&words);
        if !kinds.is_empty() {
            let mut is_kind_word = vec![false; words.len()];
            for (start, length, _) in &kinds {
                is_kind_word[*start..*start + *length]
                    .iter_mut()
                    .for_each(|flag| *flag = true);
            }
            let names = lookup.details.first().map(entity_terms).unwrap_or_default();
            let named = words
                .iter()
                .zip(&is_kind_word)
                .filter(|(_, is_kind)| !**is_kind)
                .all(|(word, _)| names.contains(word));
            if !named {
                return query(replay, &intent::normalize(question), Mode::List);
            }
        }
    }
    let mut parts: Vec<String> = lookup.preface.into_iter().collect();
    parts.extend(lookup.details.iter().map(describe_detail));
    Ok(parts.join("\n\n"))
}

/// The terms of an entity's identifier and title.
fn entity_terms(entity: &Value) -> Vec<String> {
    let mut names = terms(
        entity
            .get("identifier")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    names.extend(terms(
        entity.get("title").and_then(Value::as_str).unwrap_or(""),
    ));
    names
}

/// Properties too bulky or technical for a summary.
const HIDDEN_PROPERTIES: &[&str] = &[
    "annotations",
    "labels",
    "links",
    "definition",
    "picture",
    "namespace",
];

fn describe_detail(detail: &Value) -> String {
    let mut lines = Vec::new();
    let kind = detail
        .get("blueprint_title")
        .and_then(Value::as_str)
        .unwrap_or("entity");
    lines.push(format!("{} is a {kind}.", label_of(detail)));

    if let Some(description) = detail
        .get("description")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
    {
        lines.push(description.to_string());
    }
    let owners: Vec<String> = links(detail, "owners").into_iter().map(linked).collect();
    if !owners.is_empty() {
        lines.push(format!("Owned by {}.", join(&owners)));
    }

    if let Some(properties) = detail.get("properties").and_then(Value::as_object) {
        let shown: Vec<String> = properties
            .iter()
            .filter(|(name, value)| {
                !HIDDEN_PROPERTIES.contains(&name.as_str())
                    && name.as_str() != "description"
                    && !value.is_object()
                    && !value.is_null()
            })
            .map(|(name, value)| format!("{name}: {}", value_text(value)))
            .filter(|text| text.chars().count() <= 160)
            .take(12)
            .collect();
        if !shown.is_empty() {
            lines.push(format!("Properties: {}.", shown.join("; ")));
        }
    }

    let mut by_relation: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links(detail, "relations") {
        let name = link
            .get("relation")
            .and_then(Value::as_str)
            .unwrap_or("related to");
        if let Some(target) = link.get("target") {
            by_relation
                .entry(name.to_string())
                .or_default()
                .push(linked(target));
        }
    }
    for (name, targets) in by_relation {
        lines.push(format!("{name}: {}.", join(&targets)));
    }

    let mut referenced: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links(detail, "referenced_by") {
        let name = link
            .get("inverse")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "referenced as {}",
                    link.get("relation").and_then(Value::as_str).unwrap_or("?")
                )
            });
        if let Some(source) = link.get("source") {
            referenced.entry(name).or_default().push(linked(source));
        }
    }
    for (name, sources) in referenced {
        let shown: Vec<String> = sources.iter().take(10).cloned().collect();
        let more = if sources.len() > shown.len() {
            format!(" and {} more", sources.len() - shown.len())
        } else {
            String::new()
        };
        lines.push(format!("{name}: {}{more}.", join(&shown)));
    }
    lines.join("\n")
}

fn vocabulary(replay: &mut Replay) -> Step<Vocabulary> {
    if let Some(vocabulary) = &replay.vocabulary {
        return Ok(vocabulary.clone());
    }
    let vocabulary = match replay.call("list_blueprints", json!({}))? {
        Ok(result) => Vocabulary::from_result(&result),
        Err(_) => Vocabulary::default(),
    };
    replay.vocabulary = Some(vocabulary.clone());
    Ok(vocabulary)
}

fn count_words(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}
