//! List and count questions: reading a question against the catalog's
//! kinds, property values and relations, then searching with filters.

use super::*;

/// Whether a query lists entities or counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    List,
    Count,
}

/// Phrases that only say "in the catalog" or "do we have".
const NOISE_PHRASES: &[&str] = &[
    "in the software catalog",
    "in our software catalog",
    "in the catalog",
    "in our catalog",
    "in the catalogue",
    "do we have",
    "do we own",
    "are there",
    "is there",
    "right now",
    "at the moment",
    "these days",
    "so far",
];

/// Words that carry no subject in a list question.
#[rustfmt::skip]
const FILLER: &[&str] = &[
    "a", "all", "an", "and", "any", "anything", "are", "at", "be", "been", "by", "can",
    "currently", "did", "do", "does", "each", "every", "exist", "exists", "find", "for", "from",
    "get", "give", "happened", "happen", "happening", "has", "have", "how", "i", "in", "info",
    "is", "it", "its", "list", "many", "me", "much", "my", "now", "of", "on", "or", "our",
    "please", "show", "so", "state", "status", "still", "tell", "that", "the", "their", "them",
    "there", "these", "they", "this", "those", "to", "total", "was", "we", "were", "what",
    "whats", "when", "where", "which", "who", "whose", "with", "number", "count", "details",
    "going", "recently", "one", "ones", "registered", "listed", "known", "tracked", "recorded",
    "defined", "available", "catalogued", "cataloged", "altogether", "overall", "entries",
    "entry", "right", "today", "having", "got", "seeing", "experiencing", "belong", "belongs",
    "belonging", "member", "part", "sit", "sits", "work", "works", "without", "not", "no", "non",
    "never", "except", "excluding", "being", "will", "would", "should", "could", "up", "go",
    "went", "if",
];

/// Everyday words for where an entity lives that name no entity of their
/// own, unless the catalog has a blueprint by that name.
const GENERIC_NOUNS: &[&str] = &[
    "repo",
    "repos",
    "repository",
    "repositories",
    "codebase",
    "project",
    "app",
    "application",
    "thing",
    "things",
    "stuff",
];

/// Words that mean "at present": with a kind that has open and closed
/// states, they ask for the open ones.
const PRESENT: &[&str] = &["now", "currently", "ongoing", "active", "today", "fire"];

/// Reads a question against the catalog's own words: the kind of entity
/// asked for, property values that filter it, an entity it must be related
/// to, and whether the latest or earliest one is wanted.
pub(super) fn query(replay: &mut Replay, text: &str, mode: Mode) -> Step<String> {
    let vocabulary = vocabulary(replay)?;
    let mut cleaned = format!(" {} ", intent::normalize(text));
    let present_phrase = ["right now", "at the moment", "these days", "at present"]
        .iter()
        .any(|phrase| cleaned.contains(&format!(" {phrase} ")));
    for phrase in NOISE_PHRASES {
        cleaned = cleaned.replace(&format!(" {phrase} "), " ");
    }
    let words: Vec<String> = terms(&cleaned);

    let newest = words.iter().any(|word| {
        matches!(
            word.as_str(),
            "last" | "latest" | "newest" | "recent" | "previous"
        )
    });
    let oldest = words
        .iter()
        .any(|word| matches!(word.as_str(), "first" | "earliest" | "oldest"));
    let present = present_phrase || words.iter().any(|word| PRESENT.contains(&word.as_str()));

    let kinds = vocabulary.kind_mentions(&words);
    let mut used = vec![false; words.len()];
    // "most critical services": "most" and its adjective rank rather than
    // filter ("most recent" is handled as newest above).
    for index in 0..words.len() {
        if words[index] != "most" {
            continue;
        }
        used[index] = true;
        let next_is_kind = kinds.iter().any(|(start, _, _)| *start == index + 1);
        if let Some(next) = words.get(index + 1)
            && next != "recent"
            && !next_is_kind
        {
            used[index + 1] = true;
        }
    }
    for (start, length, _) in &kinds {
        used[*start..*start + *length]
            .iter_mut()
            .for_each(|used| *used = true);
    }
    for (index, word) in words.iter().enumerate() {
        if FILLER.contains(&word.as_str()) || SUPERLATIVES.contains(&word.as_str()) {
            used[index] = true;
        }
    }
    let kind_ids: Vec<String> = kinds.iter().map(|(_, _, kind)| kind.clone()).collect();
    let mut values = vocabulary.value_mentions(&words, &kind_ids, &used);
    // When the values point at other kinds, read them again preferring the
    // kind most of them point at, so "open critical security issues" reads
    // both words on vulnerabilities.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for mention in values
        .iter()
        .filter(|mention| !kind_ids.contains(&mention.blueprint))
    {
        *counts.entry(mention.blueprint.as_str()).or_default() += 1;
    }
    if let Some((dominant, _)) = counts.iter().max_by_key(|(_, count)| **count) {
        let mut preferred = kind_ids.clone();
        preferred.push(dominant.to_string());
        values = vocabulary.value_mentions(&words, &preferred, &used);
    }
    for mention in &values {
        used[mention.start..mention.start + mention.length]
            .iter_mut()
            .for_each(|used| *used = true);
    }
    // "components with lifecycle production": the property's own name
    // carries no subject.
    for (index, word) in words.iter().enumerate() {
        let names_property = kind_ids
            .iter()
            .chain(values.iter().map(|mention| &mention.blueprint))
            .any(|kind| {
                vocabulary.kind(kind).is_some_and(|kind| {
                    property_in(&kind.properties, word).is_some_and(|name| compact(&name) == *word)
                })
            });
        if names_property {
            used[index] = true;
        }
    }
    for (index, word) in words.iter().enumerate() {
        if GENERIC_NOUNS.contains(&word.as_str()) || PRESENT.contains(&word.as_str()) {
            used[index] = true;
        }
    }
    let rest: Vec<String> = words
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(word, _)| word.clone())
        .collect();

    let target = kind_ids
        .first()
        .cloned()
        .or_else(|| values.first().map(|mention| mention.blueprint.clone()));
    let Some(target) = target else {
        return entity_or_help(replay, &words);
    };
    let singular = kinds
        .first()
        .map(|(start, length, _)| !words[*start..*start + *length].concat().ends_with('s'))
        .unwrap_or(false);

    let mut plan = ListPlan {
        target: target.clone(),
        filters: Map::new(),
        conditions: Vec::new(),
        free_text: None,
        related: None,
        sort: None,
        limit: MAX_LISTED,
    };

    // Values of the target itself filter it directly; values of another
    // kind filter that kind, which is then followed to the target.
    let mut other_values: BTreeMap<String, Vec<&super::super::vocabulary::ValueMention>> =
        BTreeMap::new();
    for mention in &values {
        if mention.blueprint == target {
            plan.add_filter(&mention.property, &mention.values);
        } else {
            other_values
                .entry(mention.blueprint.clone())
                .or_default()
                .push(mention);
        }
    }
    if present
        && !values.iter().any(|mention| mention.blueprint == target)
        && let Some((property, open)) = vocabulary.find_value_in("open", &target)
    {
        plan.add_filter(&property, &open);
    }

    if !rest.is_empty() {
        let phrase = rest.join(" ");
        match related_entity(replay, &phrase, &target)? {
            Some(entity) => plan.related = Some(entity),
            None => plan.free_text = Some(phrase),
        }
    }

    if (newest || oldest)
        && let Some(property) = vocabulary.date_property(&target)
    {
        plan.sort = Some((property, newest));
        if singular || mode == Mode::List && newest != oldest && kinds.len() <= 1 {
            plan.limit = if singular { 1 } else { 5 };
        }
    }

    if let Some((kind, mentions)) = other_values.into_iter().next() {
        return through_related_kind(replay, &vocabulary, &plan, &kind, &mentions, mode);
    }
    if let Some(related) = plan.related.clone() {
        let kind = vocabulary.kind(&target);
        let relation = kind.and_then(|kind| {
            kind.relations
                .iter()
                .find(|relation| relation.target == related.blueprint)
                .map(|relation| relation.name.clone())
        });
        match relation {
            Some(relation) => {
                plan.conditions
                    .push(format!("related to {}", related.label));
                plan.filters.insert(relation, json!(related.identifier));
            }
            None => return from_related_entity(replay, &vocabulary, &plan, &related),
        }
    }
    run_list(replay, &vocabulary, &plan, mode)
}

/// Answers a question that names no kind of entity: the words may name an
/// entity ("artist-lookup?"), or an entity and one of its properties
/// ("artist lookup lifecycle"); anything else gets the help text.
fn entity_or_help(replay: &mut Replay, words: &[String]) -> Step<String> {
    let meaningful: Vec<&String> = words
        .iter()
        .filter(|word| !FILLER.contains(&word.as_str()))
        .collect();
    if meaningful.is_empty() || meaningful.len() > 6 {
        return Ok(help());
    }
    let phrase = meaningful
        .iter()
        .map(|word| word.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(lookup) = look_up(replay, &phrase)?
        && lookup.preface.is_none()
    {
        return Ok(lookup
            .details
            .iter()
            .map(describe_detail)
            .collect::<Vec<_>>()
            .join("\n\n"));
    }

    for property_words in 1..=2.min(meaningful.len().saturating_sub(1)) {
        let split = meaningful.len() - property_words;
        let subject = meaningful[..split]
            .iter()
            .map(|word| word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let property = meaningful[split..]
            .iter()
            .map(|word| word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let Some(lookup) = look_up(replay, &subject)? else {
            continue;
        };
        if lookup.preface.is_some() && lookup.details.len() < 2 {
            continue;
        }
        let answers: Vec<String> = lookup
            .details
            .iter()
            .filter_map(|detail| read_property(detail, &property))
            .collect();
        if !answers.is_empty() {
            return Ok(answers.join("\n"));
        }
    }
    Ok(help())
}

/// An entity a list question is about ("incidents for checkout").
#[derive(Debug, Clone)]
struct Related {
    reference: String,
    blueprint: String,
    identifier: String,
    label: String,
}

/// The list being built from a question.
#[derive(Debug, Clone)]
struct ListPlan {
    target: String,
    filters: Map<String, Value>,
    conditions: Vec<String>,
    free_text: Option<String>,
    related: Option<Related>,
    /// Property to sort by, and whether newest first.
    sort: Option<(String, bool)>,
    limit: usize,
}

impl ListPlan {
    fn add_filter(&mut self, property: &str, values: &[String]) {
        self.filters.insert(property.to_string(), json!(values));
        self.conditions
            .push(format!("{property} {}", values.join(" or ")));
    }
}

/// Finds an entity named by the leftover words of a list question, of a
/// kind other than the one listed: an exact match, or a top result that
/// carries every word in its identifier or title.
fn related_entity(replay: &mut Replay, phrase: &str, target: &str) -> Step<Option<Related>> {
    let response = match replay.call("search_entities", json!({ "query": phrase, "limit": 5 }))? {
        Ok(response) => response,
        Err(_) => return Ok(None),
    };
    let results = results_of(&response);
    let wanted = terms(phrase);
    let chosen = results
        .iter()
        .find(|result| result.get("exact_match").and_then(Value::as_bool) == Some(true))
        .or_else(|| {
            results.first().filter(|result| {
                let names = entity_terms(result);
                wanted.iter().all(|word| {
                    names.iter().any(|name| {
                        name == word || edit_distance(word, name, allowed_typos(word)).is_some()
                    })
                })
            })
        });
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    let blueprint = chosen
        .get("blueprint")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if blueprint == target {
        return Ok(None);
    }
    Ok(Some(Related {
        reference: chosen
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        blueprint,
        identifier: chosen
            .get("identifier")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        label: label_of(chosen),
    }))
}

/// Lists or counts the target kind with the plan's filters.
fn run_list(
    replay: &mut Replay,
    vocabulary: &Vocabulary,
    plan: &ListPlan,
    mode: Mode,
) -> Step<String> {
    let kind_title = vocabulary
        .kind(&plan.target)
        .map(|kind| kind.title.clone())
        .unwrap_or_else(|| plan.target.clone());
    let conditions = describe_conditions(plan);

    if mode == Mode::Count && plan.free_text.is_none() {
        let mut arguments = json!({ "blueprint": plan.target });
        if !plan.filters.is_empty() {
            arguments["filters"] = Value::Object(plan.filters.clone());
        }
        let total = match replay.call("count_entities", arguments)? {
            Ok(result) => result.get("total").and_then(Value::as_i64).unwrap_or(0),
            Err(error) => return Ok(format!("I could not count {kind_title} entities: {error}")),
        };
        return Ok(format!(
            "There {} {total} {} in the catalog{conditions}.",
            if total == 1 { "is" } else { "are" },
            plural(&kind_title, total as usize).to_lowercase()
        ));
    }

    let mut arguments = json!({ "blueprint": plan.target, "limit": plan.limit });
    if !plan.filters.is_empty() {
        arguments["filters"] = Value::Object(plan.filters.clone());
    }
    if let Some(text) = &plan.free_text {
        arguments["query"] = json!(text);
    }
    if let Some((property, newest)) = &plan.sort {
        arguments["sort_by"] = json!(property);
        arguments["order"] = json!(if *newest { "desc" } else { "asc" });
    }
    let response = match replay.call("search_entities", arguments)? {
        Ok(response) => response,
        Err(error) => {
            return Ok(format!(
                "I could not search the {kind_title} entities: {error}"
            ));
        }
    };
    let results = results_of(&response);
    let total = response
        .get("total")
        .and_then(Value::as_u64)
        .unwrap_or(results.len() as u64) as usize;

    if mode == Mode::Count {
        return Ok(format!(
            "{total} {} match{conditions}.",
            plural(&kind_title, total)
        ));
    }
    if results.is_empty() {
        return Ok(format!(
            "No {} in the catalog{conditions}.",
            plural(&kind_title, 2)
        ));
    }

    let shown_properties = shown_properties(plan);
    let single_relations: Vec<String> = vocabulary
        .kind(&plan.target)
        .map(|kind| {
            kind.relations
                .iter()
                .filter(|relation| !relation.many)
                .map(|relation| relation.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<String> = results
        .iter()
        .map(|result| {
            let summary = property_summary(result, &shown_properties, &single_relations);
            format!("- {}{summary}", label_of(result))
        })
        .collect();

    let heading = match &plan.sort {
        Some((_, newest)) if plan.limit == 1 => format!(
            "The {} {}{conditions} is:",
            if *newest { "latest" } else { "earliest" },
            kind_title.to_lowercase()
        ),
        Some((_, newest)) => format!(
            "The {} {}{conditions}, {} first:",
            plural(&kind_title, 2).to_lowercase(),
            "",
            if *newest { "newest" } else { "oldest" }
        )
        .replace("  ", " "),
        None if total > results.len() => format!(
            "{total} {}{conditions}; the first {} are:",
            plural(&kind_title, total).to_lowercase(),
            results.len()
        ),
        None => format!(
            "{total} {}{conditions}:",
            plural(&kind_title, total).to_lowercase()
        ),
    };
    Ok(format!("{heading}\n{}", lines.join("\n")))
}

fn describe_conditions(plan: &ListPlan) -> String {
    let mut conditions = plan.conditions.clone();
    if let Some(text) = &plan.free_text {
        conditions.push(format!("matching {}", quoted(text)));
    }
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" ({})", conditions.join(", "))
    }
}

/// Properties worth showing beside each listed entity.
fn shown_properties(plan: &ListPlan) -> Vec<String> {
    let mut shown: Vec<String> = plan.filters.keys().cloned().collect();
    if let Some((property, _)) = &plan.sort {
        shown.push(property.clone());
    }
    for common in [
        "status",
        "severity",
        "version",
        "lifecycle",
        "tier",
        "type",
        "environment",
    ] {
        shown.push(common.to_string());
    }
    let mut seen = Vec::new();
    shown.retain(|name| {
        let keep = !seen.contains(name);
        seen.push(name.clone());
        keep
    });
    shown
}

fn property_summary(result: &Value, names: &[String], single_relations: &[String]) -> String {
    let Some(properties) = result.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    let mut parts: Vec<String> = names
        .iter()
        .filter_map(|name| {
            properties
                .get(name)
                .filter(|value| !value.is_null() && !value.is_object())
                .map(|value| format!("{name}: {}", value_text(value)))
        })
        .take(4)
        .collect();
    if let Some(relations) = result.get("relations").and_then(Value::as_object) {
        for (name, targets) in relations {
            if !single_relations.contains(name) || parts.len() >= 6 {
                continue;
            }
            if let Some(targets) = targets.as_array() {
                let targets: Vec<String> = targets
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if targets.len() == 1 {
                    parts.push(format!("{name}: {}", targets[0]));
                }
            }
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" — {}", parts.join(", "))
    }
}

/// Answers "which services have open critical vulnerabilities": the values
/// belong to another kind, which is searched and followed to the target
/// through its relation.
fn through_related_kind(
    replay: &mut Replay,
    vocabulary: &Vocabulary,
    plan: &ListPlan,
    kind: &str,
    mentions: &[&super::super::vocabulary::ValueMention],
    mode: Mode,
) -> Step<String> {
    let Some(relation) = vocabulary.kind(kind).and_then(|other| {
        other
            .relations
            .iter()
            .find(|relation| relation.target == plan.target)
            .map(|relation| relation.name.clone())
    }) else {
        // No way to follow: list the kind the values belong to instead.
        let mut direct = plan.clone();
        direct.target = kind.to_string();
        direct.filters.clear();
        direct.conditions.clear();
        for mention in mentions {
            direct.add_filter(&mention.property, &mention.values);
        }
        return run_list(replay, vocabulary, &direct, mode);
    };

    let mut filters = Map::new();
    let mut conditions = Vec::new();
    for mention in mentions {
        filters.insert(mention.property.clone(), json!(mention.values));
        conditions.push(format!(
            "{} {}",
            mention.property,
            mention.values.join(" or ")
        ));
    }
    let response = match replay.call(
        "search_entities",
        json!({ "blueprint": kind, "filters": filters, "limit": 100 }),
    )? {
        Ok(response) => response,
        Err(error) => return Ok(format!("I could not search the {kind} entities: {error}")),
    };

    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for result in results_of(&response) {
        let Some(targets) = result
            .pointer(&format!("/relations/{relation}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for target in targets.iter().filter_map(Value::as_str) {
            by_target
                .entry(target.to_string())
                .or_default()
                .push(label_of(&result));
        }
    }
    if let Some(related) = &plan.related {
        by_target.retain(|target, _| *target == related.reference);
    }

    let target_title = vocabulary
        .kind(&plan.target)
        .map_or(plan.target.clone(), |kind| kind.title.clone());
    let kind_title = vocabulary
        .kind(kind)
        .map_or(kind.to_string(), |kind| kind.title.clone());
    let condition = format!(
        "{} with {}",
        plural(&kind_title, 2).to_lowercase(),
        conditions.join(", ")
    );
    if by_target.is_empty() {
        return Ok(format!(
            "No {} have {condition}.",
            plural(&target_title, 2).to_lowercase()
        ));
    }
    if mode == Mode::Count {
        return Ok(format!(
            "{} {} have {condition}.",
            by_target.len(),
            plural(&target_title, by_target.len()).to_lowercase()
        ));
    }
    let lines: Vec<String> = by_target
        .iter()
        .map(|(target, sources)| format!("- {}: {}", label(target, None), join(sources)))
        .collect();
    Ok(format!(
        "{} {} have {condition}:\n{}",
        by_target.len(),
        plural(&target_title, by_target.len()).to_lowercase(),
        lines.join("\n")
    ))
}

/// Answers "which teams is Elena in": the target kind has no relation to
/// the entity's kind, so the entity's own relations (either way) are read.
fn from_related_entity(
    replay: &mut Replay,
    vocabulary: &Vocabulary,
    plan: &ListPlan,
    related: &Related,
) -> Step<String> {
    let detail = match replay.call("get_entity", json!({ "entity": related.reference }))? {
        Ok(detail) => detail,
        Err(error) => return Ok(format!("I could not read {}: {error}", related.label)),
    };
    let prefix = format!("{}:", plan.target);
    let mut found = Vec::new();
    for link in links(&detail, "relations") {
        if let Some(target) = link.get("target")
            && target
                .get("ref")
                .and_then(Value::as_str)
                .is_some_and(|reference| reference.starts_with(&prefix))
        {
            let relation = link
                .get("relation")
                .and_then(Value::as_str)
                .unwrap_or("related");
            found.push(format!("{} ({relation})", linked(target)));
        }
    }
    for link in links(&detail, "referenced_by") {
        if let Some(source) = link.get("source")
            && source
                .get("ref")
                .and_then(Value::as_str)
                .is_some_and(|reference| reference.starts_with(&prefix))
        {
            let relation = link
                .get("relation")
                .and_then(Value::as_str)
                .unwrap_or("related");
            found.push(format!("{} ({relation})", linked(source)));
        }
    }

    let kind_title = vocabulary
        .kind(&plan.target)
        .map_or(plan.target.clone(), |kind| kind.title.clone());
    if found.is_empty() {
        return Ok(format!(
            "{} has no related {} in the catalog.",
            related.label,
            plural(&kind_title, 2).to_lowercase()
        ));
    }
    Ok(format!(
        "{} is related to {} {}: {}.",
        related.label,
        found.len(),
        plural(&kind_title, found.len()).to_lowercase(),
        join(&found)
    ))
}

fn plural(title: &str, count: usize) -> String {
    if count == 1 {
        return title.to_string();
    }
    let lower = title.to_lowercase();
    if lower.ends_with('y') && !lower.ends_with("ey") {
        format!("{}ies", &title[..title.len() - 1])
    } else if lower.ends_with('s') {
        format!("{title}es")
    } else {
        format!("{title}s")
    }
}
