//! Requests for self-service actions: the offline backend proposes an
//! action when a request names it, filling what inputs it can from the
//! words of the request.
//!
//! A request names an action when, after polite openings ("please", "can
//! you", "I'd like to"), it starts with the first word of the action's title
//! or identifier ("deploy checkout to staging" for "Deploy a service"), or
//! contains the identifier as one word ("run restart-service for
//! checkout"). A
//! sentence that ends with a question mark and has no polite opening is read
//! as a question, not a request, so "open incidents for payments?" lists
//! incidents instead of opening one.
//!
//! Inputs are filled only where the words leave no doubt: one value of an
//! enum, one token matching a pattern, a number next to the input's name,
//! a yes/no input named in the request, and free-text inputs such as a
//! reason with the request itself. The target entity is searched for with
//! the words that remain, and used only when the request spells out its
//! identifier or title. Whatever is missing or wrong comes back from the
//! proposal tool as a validation error, which the answer passes on.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use super::format::{join, label, value_text};
use super::{Replay, Stop};
use crate::actions::proposal::tool_name;
use crate::catalog::normalize::{compact, is_stopword, terms};
use crate::llm::ToolSpec;

type Step<T> = Result<T, Stop>;

/// An action the agent offers, read from its tool definition.
#[derive(Debug, Clone)]
pub(super) struct OfferedAction {
    tool: String,
    id: String,
    title: String,
    schema: Value,
}

/// The start of a proposal tool's description: `Propose the action
/// "TITLE" (ID): ...`. A title may itself contain quotes and parentheses,
/// so every `" (ID):` in the text is tried, and the one whose identifier
/// gives the tool's name wins.
static DESCRIPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"" \((?P<id>[a-z][a-z0-9_-]*)\):"#)
        .expect("the proposal description pattern is valid")
});

/// The opening of a proposal tool's description, before the title.
const DESCRIPTION_OPENING: &str = "Propose the action \"";

/// The actions among the offered tools.
pub(super) fn offered(tools: &[ToolSpec]) -> Vec<OfferedAction> {
    tools
        .iter()
        .filter(|tool| tool.name.starts_with("propose_"))
        .filter_map(|tool| {
            let rest = tool.description.strip_prefix(DESCRIPTION_OPENING)?;
            let (title, id) = DESCRIPTION.captures_iter(rest).find_map(|captures| {
                let id = captures.name("id")?;
                let end = captures.get(0)?.start();
                (tool_name(id.as_str()) == tool.name).then(|| (&rest[..end], id.as_str()))
            })?;
            Some(OfferedAction {
                tool: tool.name.clone(),
                id: id.to_string(),
                title: title.to_string(),
                schema: tool.input_schema.clone(),
            })
        })
        .collect()
}

/// Words that open a polite request and are skipped.
const POLITE: &[&str] = &[
    "please", "pls", "plz", "kindly", "can", "could", "would", "will", "you", "i", "d", "we",
    "want", "need", "like", "to", "let", "s", "lets", "go", "ahead", "and", "hey", "hi", "hello",
    "just", "ok", "okay",
];

/// Words of a request that never name the target.
const FILLER: &[&str] = &[
    "please",
    "now",
    "asap",
    "thanks",
    "thank",
    "me",
    "us",
    "it",
    "this",
    "that",
    "env",
    "environment",
    "version",
    "service",
    "component",
    "at",
    "from",
    "into",
    "as",
    "by",
    "pls",
];

/// Free-text inputs filled with the request itself when required.
const FREE_TEXT: &[&str] = &[
    "reason",
    "summary",
    "description",
    "title",
    "message",
    "details",
    "note",
    "comment",
    "justification",
];

/// The request's words, with what the filling has used up.
struct Words {
    terms: Vec<String>,
    used: HashSet<usize>,
}

impl Words {
    /// Positions where `needle` (a run of terms) appears.
    fn find(&self, needle: &[String]) -> Vec<usize> {
        if needle.is_empty() || needle.len() > self.terms.len() {
            return Vec::new();
        }
        (0..=self.terms.len() - needle.len())
            .filter(|start| self.terms[*start..*start + needle.len()] == *needle)
            .collect()
    }

    fn use_run(&mut self, start: usize, len: usize) {
        self.used.extend(start..start + len);
    }
}

/// Proposes an action when the request names one. `None` when it does
/// not, so the question is answered as a question.
pub(super) fn answer(
    replay: &mut Replay,
    question: &str,
    actions: &[OfferedAction],
) -> Option<Step<String>> {
    if actions.is_empty() {
        return None;
    }
    let all_terms = terms(question);
    let skip = all_terms
        .iter()
        .take_while(|term| POLITE.contains(&term.as_str()))
        .count();
    let polite = skip > 0;
    if !polite && question.trim_end().ends_with('?') {
        return None;
    }
    let first = all_terms.get(skip)?;
    let request_tokens = tokens(question);

    let mut scored: Vec<(usize, &OfferedAction)> = actions
        .iter()
        .filter_map(|action| {
            let title_terms = content_terms(&action.title);
            let id_terms = terms(&action.id);
            let named_by_id = id_terms.len() > 1 && names_identifier(&request_tokens, &action.id);
            let starts_with_verb =
                title_terms.first() == Some(first) || id_terms.first() == Some(first);
            if !named_by_id && !starts_with_verb {
                return None;
            }
            let shared = title_terms
                .iter()
                .chain(id_terms.iter())
                .collect::<HashSet<_>>()
                .into_iter()
                .filter(|term| all_terms.contains(term))
                .count();
            Some((shared + if named_by_id { 10 } else { 0 }, action))
        })
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    let best = scored.first()?.0;
    let tied: Vec<&OfferedAction> = scored
        .iter()
        .filter(|(score, _)| *score == best)
        .map(|(_, action)| *action)
        .collect();
    if let [action] = tied.as_slice() {
        Some(propose(replay, question, &all_terms, skip, action))
    } else {
        let names: Vec<String> = tied
            .iter()
            .map(|action| format!("*{}* (`{}`)", action.title, action.id))
            .collect();
        Some(Ok(format!(
            "That could be any of these actions: {}. Name the one you mean, for example by its \
             identifier.",
            join(&names)
        )))
    }
}

/// Reports whether a word of the request is the action's identifier as
/// written, with `-` or `_` between its parts ("run open-incident for
/// payments"), or its tool's name. Words that only contain its letters,
/// as "open incidents" does for `open-incident`, do not count: they are
/// common in questions.
fn names_identifier(tokens: &[String], id: &str) -> bool {
    let id = id.to_lowercase().replace('_', "-");
    tokens.iter().any(|token| {
        let token = token.to_lowercase().replace('_', "-");
        token == id || token.strip_prefix("propose-") == Some(id.as_str())
    })
}

fn content_terms(text: &str) -> Vec<String> {
    terms(text)
        .into_iter()
        .filter(|term| !is_stopword(term))
        .collect()
}

/// Fills the action's inputs, finds its target and calls its tool.
fn propose(
    replay: &mut Replay,
    question: &str,
    all_terms: &[String],
    skip: usize,
    action: &OfferedAction,
) -> Step<String> {
    let mut words = Words {
        terms: all_terms.to_vec(),
        used: (0..skip).collect(),
    };
    for term in content_terms(&action.title)
        .into_iter()
        .chain(terms(&action.id))
    {
        let positions = words.find(std::slice::from_ref(&term));
        for position in positions {
            words.use_run(position, 1);
        }
    }

    let properties = action
        .schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: HashSet<String> = action
        .schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    // Input names are words of the request too ("version 1.2.3").
    for name in properties.keys() {
        let name_terms = terms(name);
        for position in words.find(&name_terms) {
            words.use_run(position, name_terms.len());
        }
    }

    let mut arguments = Map::new();
    let tokens = tokens(question);
    let mut used_tokens: HashSet<usize> = HashSet::new();
    for (name, schema) in &properties {
        if name == "target" && schema.get("x-agentdesk-blueprint").is_some() {
            continue;
        }
        if let Some(value) = fill(
            name,
            schema,
            required.contains(name),
            question,
            &tokens,
            &mut used_tokens,
            &mut words,
        ) {
            arguments.insert(name.clone(), value);
        }
    }

    if let Some(blueprint) = properties
        .get("target")
        .and_then(|target| target.get("x-agentdesk-blueprint"))
        .and_then(Value::as_str)
    {
        let rest: Vec<&str> = words
            .terms
            .iter()
            .enumerate()
            .filter(|(index, term)| {
                !words.used.contains(index)
                    && !is_stopword(term)
                    && !FILLER.contains(&term.as_str())
            })
            .map(|(_, term)| term.as_str())
            .collect();
        if !rest.is_empty() {
            let text = rest.join(" ");
            let target = find_target(replay, blueprint, &text, question)?;
            arguments.insert("target".to_string(), Value::String(target));
        }
    }

    match replay.call(&action.tool, Value::Object(arguments))? {
        Ok(result) => Ok(proposed(action, &result)),
        Err(error) => Ok(not_proposed(action, &error, &properties, &required)),
    }
}

/// A word of the request as typed, without surrounding punctuation.
fn tokens(question: &str) -> Vec<String> {
    question
        .split_whitespace()
        .map(|token| {
            token
                .trim_matches(|character: char| {
                    matches!(
                        character,
                        ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '`' | '(' | ')' | '“' | '”'
                    )
                })
                .trim_end_matches('.')
                .to_string()
        })
        .filter(|token| !token.is_empty())
        .collect()
}

/// Fills one input from the request, or leaves it to its default.
fn fill(
    name: &str,
    schema: &Value,
    required: bool,
    question: &str,
    tokens: &[String],
    used_tokens: &mut HashSet<usize>,
    words: &mut Words,
) -> Option<Value> {
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let mut found: Vec<(&str, usize, usize)> = Vec::new();
        for value in values.iter().filter_map(Value::as_str) {
            let value_terms = terms(value);
            if let Some(position) = words.find(&value_terms).first() {
                found.push((value, *position, value_terms.len()));
            }
        }
        // "prod" inside "production" is not a second match: keep the
        // longest values where one contains another.
        found.sort_by_key(|(_, _, len)| std::cmp::Reverse(*len));
        let mut kept: Vec<(&str, usize, usize)> = Vec::new();
        for candidate in found {
            let overlaps = kept.iter().any(|(_, start, len)| {
                candidate.1 < start + len && *start < candidate.1 + candidate.2
            });
            if !overlaps {
                kept.push(candidate);
            }
        }
        if let [(value, start, len)] = kept.as_slice() {
            words.use_run(*start, *len);
            return Some(Value::String(value.to_string()));
        }
        return None;
    }
    if kind == "string" && schema.get("x-agentdesk-blueprint").is_none() {
        if let Some(pattern) = schema
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|pattern| Regex::new(pattern).ok())
        {
            let matching: Vec<usize> = (0..tokens.len())
                .filter(|index| !used_tokens.contains(index) && pattern.is_match(&tokens[*index]))
                .collect();
            if let [index] = matching.as_slice() {
                used_tokens.insert(*index);
                for term in terms(&tokens[*index]) {
                    for position in words.find(std::slice::from_ref(&term)) {
                        words.use_run(position, 1);
                    }
                }
                return Some(Value::String(tokens[*index].clone()));
            }
            return None;
        }
        let named = terms(name)
            .iter()
            .any(|term| FREE_TEXT.contains(&term.as_str()));
        if required && named {
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .unwrap_or(500) as usize;
            // "open an incident for payments: checkout fails" gives
            // "checkout fails"; without a colon, the whole request.
            let text = question
                .split_once(':')
                .map(|(_, after)| after.trim())
                .filter(|after| after.chars().count() >= 5)
                .unwrap_or(question.trim());
            let text: String = text.chars().take(max).collect();
            return Some(Value::String(text));
        }
        return None;
    }
    if kind == "number" || kind == "integer" {
        let name_terms = terms(name);
        let numbers: Vec<usize> = (0..tokens.len())
            .filter(|index| !used_tokens.contains(index) && tokens[*index].parse::<f64>().is_ok())
            .collect();
        let beside_name = numbers.iter().copied().find(|index| {
            let near = |offset: isize| {
                let position = *index as isize + offset;
                position >= 0
                    && (position as usize) < tokens.len()
                    && terms(&tokens[position as usize])
                        .iter()
                        .any(|term| name_terms.contains(term))
            };
            near(-1) || near(1) || near(-2)
        });
        let chosen = beside_name.or(match numbers.as_slice() {
            [only] if required => Some(*only),
            _ => None,
        })?;
        used_tokens.insert(chosen);
        let token = &tokens[chosen];
        for position in words.find(&terms(token)) {
            words.use_run(position, 1);
        }
        return if kind == "integer" {
            token.parse::<i64>().ok().map(Value::from)
        } else {
            token
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        };
    }
    if kind == "boolean" {
        let name_terms = terms(name);
        let start = *words.find(&name_terms).first()?;
        let negated = start > 0
            && matches!(
                words.terms[start - 1].as_str(),
                "no" | "not" | "without" | "skip" | "dont" | "t"
            );
        return Some(Value::Bool(!negated));
    }
    None
}

/// Finds the target entity among the entities of `blueprint`: the search
/// result whose identifier or title the request spells out in whole words.
/// Without one, the words themselves go to the tool, which accepts only an
/// exact identifier, name or title. A near match is never used in their
/// place: "checkout-v2" must not become `service:checkout`, because an
/// automatic action would then run on an entity nobody named.
fn find_target(replay: &mut Replay, blueprint: &str, text: &str, question: &str) -> Step<String> {
    let response = replay.call(
        "search_entities",
        json!({ "query": text, "blueprint": blueprint, "limit": 5 }),
    );
    let results = match response {
        Ok(Ok(response)) => response
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Ok(Err(_)) => Vec::new(),
        // Without search the tool still resolves an identifier.
        Err(Stop::Unavailable(_)) => Vec::new(),
        Err(stop) => return Err(stop),
    };
    // The entity named first in the request wins: in "open an incident for
    // payments: checkout fails", the incident is about payments.
    let words: Vec<String> = tokens(question)
        .iter()
        .map(|token| compact(token))
        .filter(|word| !word.is_empty())
        .collect();
    let named = results
        .iter()
        .filter_map(|result| {
            ["identifier", "title"]
                .iter()
                .filter_map(|field| named_at(&words, result.get(*field)?.as_str()?))
                .min()
                .map(|position| (position, result))
        })
        .min_by_key(|(position, _)| *position)
        .map(|(_, result)| result);
    Ok(named
        .and_then(|result| result.get("ref").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| text.to_string()))
}

/// Returns the position of the first of the request's words that, with the
/// words after it, spell `name`: "Checkout Service" is named by the words
/// "checkout service", but not by "checkout-v2" or "checkouts". `words`
/// are the request's words in [`compact`] form.
fn named_at(words: &[String], name: &str) -> Option<usize> {
    let name = compact(name);
    if name.is_empty() {
        return None;
    }
    (0..words.len()).find(|start| {
        let mut spelled = String::new();
        for word in &words[*start..] {
            spelled.push_str(word);
            if !name.starts_with(&spelled) {
                return false;
            }
            if spelled.len() == name.len() {
                return true;
            }
        }
        false
    })
}

/// The answer once the tool recorded the run.
fn proposed(action: &OfferedAction, result: &Value) -> String {
    let run_id = result.get("run_id").and_then(Value::as_str).unwrap_or("?");
    let target = result
        .get("target")
        .and_then(Value::as_str)
        .map(|reference| {
            let title = result.get("target_title").and_then(Value::as_str);
            format!(" for {}", label(reference, title))
        })
        .unwrap_or_default();
    let inputs: Vec<String> = result
        .get("inputs")
        .and_then(Value::as_object)
        .map(|inputs| {
            inputs
                .iter()
                .map(|(name, value)| format!("{name} `{}`", value_text(value)))
                .collect()
        })
        .unwrap_or_default();
    let with = if inputs.is_empty() {
        String::new()
    } else {
        format!(" with {}", join(&inputs))
    };
    match result.get("status").and_then(Value::as_str) {
        Some("in_progress") => format!(
            "Running **{}**{target}{with} now (run `{run_id}`); its result follows.",
            action.title
        ),
        _ => format!(
            "I proposed **{}**{target}{with} (run `{run_id}`). It waits for approval: nothing \
             runs until an approver approves it.",
            action.title
        ),
    }
}

/// The answer when the tool refused the proposal: its reason, and what
/// the action takes.
fn not_proposed(
    action: &OfferedAction,
    error: &str,
    properties: &Map<String, Value>,
    required: &HashSet<String>,
) -> String {
    let mut inputs: Vec<String> = properties
        .iter()
        .map(|(name, schema)| {
            let mut line = format!("`{name}`");
            let mut notes = Vec::new();
            if required.contains(name) {
                notes.push("required".to_string());
            }
            if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                let values: Vec<String> = values.iter().map(value_text).collect();
                notes.push(format!("one of {}", values.join(", ")));
            } else if let Some(blueprint) =
                schema.get("x-agentdesk-blueprint").and_then(Value::as_str)
            {
                notes.push(format!("a {blueprint}"));
            } else if let Some(kind) = schema.get("type").and_then(Value::as_str) {
                notes.push(kind.to_string());
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                notes.push(format!("matching `{pattern}`"));
            }
            if let Some(default) = schema.get("default") {
                notes.push(format!("default {}", value_text(default)));
            }
            line.push_str(&format!(" ({})", notes.join(", ")));
            line
        })
        .collect();
    inputs.sort();
    format!(
        "I could not propose **{}** (`{}`) yet: {error}\n\nIt takes: {}. Ask again with what \
         is missing or wrong.",
        action.title,
        action.id,
        inputs.join("; ")
    )
}
