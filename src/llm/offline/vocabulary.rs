//! The catalog's words, read from a `list_blueprints` result: which words
//! in a question name a blueprint (kind), which name a property value, and
//! which name a property.

use serde_json::Value;

use crate::catalog::normalize::{compact, terms};

/// One blueprint as `list_blueprints` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub identifier: String,
    pub title: String,
    pub properties: Vec<Property>,
    pub relations: Vec<Relation>,
}

#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub name: String,
    pub target: String,
    pub many: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Property {
    pub name: String,
    pub title: Option<String>,
    pub format: Option<String>,
    /// Allowed and common values, lower-cased.
    pub values: Vec<String>,
}

/// A property value the question names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueMention {
    pub blueprint: String,
    pub property: String,
    pub values: Vec<String>,
    /// Index of the first question word it covers, and how many.
    pub start: usize,
    pub length: usize,
}

/// Everything `list_blueprints` said.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vocabulary {
    pub kinds: Vec<Kind>,
}

/// Everyday words for kinds of entity, mapped to the word a blueprint
/// identifier or title would use.
const KIND_SYNONYMS: &[(&str, &str)] = &[
    ("people", "user"),
    ("person", "user"),
    ("persons", "user"),
    ("engineer", "user"),
    ("engineers", "user"),
    ("developer", "user"),
    ("developers", "user"),
    ("member", "user"),
    ("members", "user"),
    ("employees", "user"),
    ("squad", "team"),
    ("squads", "team"),
    ("pr", "pullrequest"),
    ("prs", "pullrequest"),
    ("mr", "pullrequest"),
    ("mrs", "pullrequest"),
    ("vuln", "vulnerability"),
    ("vulns", "vulnerability"),
    ("cve", "vulnerability"),
    ("cves", "vulnerability"),
    ("deploy", "deployment"),
    ("deploys", "deployment"),
    ("deployed", "deployment"),
    ("release", "deployment"),
    ("releases", "deployment"),
    ("released", "deployment"),
    ("rollout", "deployment"),
    ("rollouts", "deployment"),
    ("outage", "incident"),
    ("outages", "incident"),
    ("fire", "incident"),
    ("fires", "incident"),
    ("securityissue", "vulnerability"),
    ("securityissues", "vulnerability"),
    ("securityhole", "vulnerability"),
    ("securityholes", "vulnerability"),
    ("securityfinding", "vulnerability"),
    ("securityfindings", "vulnerability"),
    ("repo", "repository"),
    ("repos", "repository"),
    ("env", "environment"),
    ("envs", "environment"),
];

/// Everyday words for property values, mapped to the values they may mean.
#[rustfmt::skip]
const VALUE_SYNONYMS: &[(&str, &[&str])] = &[
    ("open", &["open", "opened", "triggered", "acknowledged", "active", "in_progress", "investigating"]),
    ("active", &["active", "open", "triggered", "acknowledged"]),
    ("ongoing", &["open", "triggered", "acknowledged", "active", "in_progress", "investigating"]),
    ("unresolved", &["open", "triggered", "acknowledged", "active"]),
    ("unpatched", &["open", "unfixed", "unresolved"]),
    ("unfixed", &["open", "unfixed", "unresolved"]),
    ("outstanding", &["open", "triggered", "acknowledged"]),
    ("pending", &["open", "pending", "waiting", "in_review"]),
    ("closed", &["closed", "resolved", "fixed", "merged", "done"]),
    ("resolved", &["resolved", "closed", "fixed"]),
    ("fixed", &["fixed", "resolved", "closed"]),
    ("patched", &["fixed", "resolved", "closed"]),
    ("successful", &["success", "succeeded", "successful", "passed"]),
    ("successfully", &["success", "succeeded", "successful", "passed"]),
    ("succeeded", &["success", "succeeded", "successful", "passed"]),
    ("good", &["success", "succeeded", "successful", "passed"]),
    ("failed", &["failed", "failure", "error", "errored"]),
    ("failing", &["failed", "failure", "error", "errored"]),
    ("broken", &["failed", "failure", "error"]),
    ("unsuccessful", &["failed", "failure", "error"]),
    ("retired", &["deprecated", "retired", "decommissioned", "sunset"]),
    ("retiring", &["deprecated", "retired", "decommissioned", "sunset"]),
    ("sunset", &["deprecated", "retired", "decommissioned", "sunset"]),
    ("sunsetting", &["deprecated", "retired", "decommissioned", "sunset"]),
    ("legacy", &["deprecated", "legacy"]),
    ("obsolete", &["deprecated", "obsolete"]),
    ("eol", &["deprecated", "retired"]),
    ("prod", &["production"]),
    ("live", &["production"]),
    ("stage", &["staging"]),
    ("dev", &["development"]),
];

/// Words that turn the value after them into "any other value".
const NEGATIONS: &[&str] = &[
    "not",
    "non",
    "without",
    "never",
    "no",
    "except",
    "excluding",
];

/// Words that never name a property value on their own, even when a value
/// happens to be spelled that way.
const NOT_VALUES: &[&str] = &[
    "a", "an", "and", "any", "are", "do", "does", "for", "has", "have", "in", "is", "it", "of",
    "on", "or", "the", "to", "we", "what", "which", "who", "with", "true", "false", "yes", "no",
];

impl Vocabulary {
    /// Reads a `list_blueprints` result.
    pub fn from_result(result: &Value) -> Self {
        let kinds = result
            .get("blueprints")
            .and_then(Value::as_array)
            .map(|blueprints| blueprints.iter().filter_map(read_kind).collect())
            .unwrap_or_default();
        Self { kinds }
    }

    pub fn kind(&self, identifier: &str) -> Option<&Kind> {
        self.kinds.iter().find(|kind| kind.identifier == identifier)
    }

    /// Finds the blueprints the words name, in order of appearance, with
    /// the index and length of the words.
    pub fn kind_mentions(&self, words: &[String]) -> Vec<(usize, usize, String)> {
        let mut mentions = Vec::new();
        let mut index = 0;
        while index < words.len() {
            let mut found = None;
            for length in (1..=3).rev() {
                if index + length > words.len() {
                    continue;
                }
                let phrase = words[index..index + length].concat();
                if let Some(kind) = self.kind_for_word(&phrase) {
                    found = Some((length, kind));
                    break;
                }
            }
            match found {
                Some((length, kind)) => {
                    mentions.push((index, length, kind));
                    index += length;
                }
                None => index += 1,
            }
        }
        mentions
    }

    /// Returns the blueprint a single word (or joined phrase) names.
    pub fn kind_for_word(&self, word: &str) -> Option<String> {
        let word = KIND_SYNONYMS
            .iter()
            .find(|(synonym, _)| *synonym == word)
            .map(|(_, canonical)| canonical.to_string())
            .unwrap_or_else(|| word.to_string());
        if word.len() < 2 {
            return None;
        }

        let forms = singular_forms(&word);
        let names = |kind: &Kind| [compact(&kind.identifier), compact(&kind.title)];
        for kind in &self.kinds {
            if names(kind)
                .iter()
                .any(|name| forms.iter().any(|form| form == name))
            {
                return Some(kind.identifier.clone());
            }
        }
        // Blueprint names with a vendor prefix, such as githubPullRequest
        // or pagerdutyIncident, still answer to their last word.
        for kind in &self.kinds {
            let last_word = terms(&kind.identifier).last().cloned().unwrap_or_default();
            let title_last = terms(&kind.title).last().cloned().unwrap_or_default();
            let identifier = compact(&kind.identifier);
            let matches = forms.iter().any(|form| {
                form.len() >= 4
                    && (*form == last_word
                        || *form == title_last
                        || identifier.ends_with(form.as_str()))
            });
            if matches {
                return Some(kind.identifier.clone());
            }
        }
        None
    }

    /// Finds property values the words name, preferring properties of the
    /// given blueprints; each word is used at most once.
    pub fn value_mentions(
        &self,
        words: &[String],
        preferred: &[String],
        skip: &[bool],
    ) -> Vec<ValueMention> {
        let mut mentions = Vec::new();
        let mut used = skip.to_vec();
        used.resize(words.len(), false);

        for length in (1..=3).rev() {
            for start in 0..words.len() {
                if start + length > words.len()
                    || used[start..start + length].iter().any(|used| *used)
                {
                    continue;
                }
                let phrase = words[start..start + length].concat();
                if length == 1 && NOT_VALUES.contains(&phrase.as_str()) {
                    continue;
                }
                if let Some((blueprint, property, mut values)) = self.find_value(&phrase, preferred)
                {
                    used[start..start + length]
                        .iter_mut()
                        .for_each(|used| *used = true);
                    // "without failing", "not deprecated": every other value.
                    let negated = start > 0 && NEGATIONS.contains(&words[start - 1].as_str());
                    if negated {
                        let all = self
                            .kind(&blueprint)
                            .and_then(|kind| {
                                kind.properties
                                    .iter()
                                    .find(|candidate| candidate.name == property)
                            })
                            .map(|property| property.values.clone())
                            .unwrap_or_default();
                        values = all
                            .into_iter()
                            .filter(|value| !values.contains(value))
                            .collect();
                    }
                    if values.is_empty() {
                        continue;
                    }
                    mentions.push(ValueMention {
                        blueprint,
                        property,
                        values,
                        start,
                        length,
                    });
                }
            }
        }
        mentions.sort_by_key(|mention| mention.start);
        mentions
    }

    /// Finds a value a phrase names among one blueprint's properties only.
    pub fn find_value_in(&self, phrase: &str, blueprint: &str) -> Option<(String, Vec<String>)> {
        let kind = self.kind(blueprint)?;
        let only = Vocabulary {
            kinds: vec![kind.clone()],
        };
        only.find_value(phrase, &[])
            .map(|(_, property, values)| (property, values))
    }

    fn find_value(
        &self,
        phrase: &str,
        preferred: &[String],
    ) -> Option<(String, String, Vec<String>)> {
        let candidates: Vec<String> = VALUE_SYNONYMS
            .iter()
            .find(|(word, _)| *word == phrase)
            .map(|(_, values)| values.iter().map(|value| value.to_string()).collect())
            .unwrap_or_else(|| vec![phrase.to_string()]);

        let ordered: Vec<&Kind> = preferred
            .iter()
            .filter_map(|identifier| self.kind(identifier))
            .chain(
                self.kinds
                    .iter()
                    .filter(|kind| !preferred.contains(&kind.identifier)),
            )
            .collect();
        for kind in ordered {
            for property in &kind.properties {
                let matched: Vec<String> = property
                    .values
                    .iter()
                    .filter(|value| {
                        let value = compact(value);
                        !value.is_empty()
                            && candidates.iter().any(|candidate| {
                                *candidate == value
                                    || (candidate.len() >= 6
                                        && value.len() >= 5
                                        && candidate.starts_with(&value))
                            })
                    })
                    .cloned()
                    .collect();
                if !matched.is_empty() {
                    return Some((kind.identifier.clone(), property.name.clone(), matched));
                }
            }
        }
        None
    }

    /// Returns a blueprint's date property, preferring one whose name
    /// shares a stem with the blueprint (deployedAt for deployment).
    pub fn date_property(&self, blueprint: &str) -> Option<String> {
        let kind = self.kind(blueprint)?;
        let dates: Vec<&Property> = kind
            .properties
            .iter()
            .filter(|property| {
                property.format.as_deref() == Some("date-time")
                    || property.format.as_deref() == Some("date")
                    || property.name.to_lowercase().ends_with("at")
                        && property.values.is_empty()
                        && property.name.len() > 4
            })
            .collect();
        let stem: String = compact(&kind.identifier).chars().take(5).collect();
        dates
            .iter()
            .find(|property| compact(&property.name).starts_with(&stem))
            .or_else(|| {
                dates
                    .iter()
                    .find(|property| compact(&property.name).starts_with("created"))
            })
            .or_else(|| dates.first())
            .map(|property| property.name.clone())
    }
}

/// Finds a property by everyday words among a list.
pub(super) fn property_in(properties: &[Property], words: &str) -> Option<String> {
    let wanted = compact(words);
    if wanted.is_empty() {
        return None;
    }
    let forms = singular_forms(&wanted);
    properties
        .iter()
        .find(|property| {
            let names = [
                Some(compact(&property.name)),
                property.title.as_deref().map(compact),
            ];
            names.iter().flatten().any(|name| forms.contains(name))
        })
        .or_else(|| {
            properties.iter().find(|property| {
                let name = compact(&property.name);
                name.len() >= 4 && (name.starts_with(&wanted) || wanted.starts_with(&name))
            })
        })
        .map(|property| property.name.clone())
}

/// The word and its singular forms: "vulnerabilities" gives
/// "vulnerability", "services" gives "service", "statuses" gives "status".
pub(super) fn singular_forms(word: &str) -> Vec<String> {
    let mut forms = vec![word.to_string()];
    if let Some(stem) = word.strip_suffix("ies") {
        forms.push(format!("{stem}y"));
    }
    if let Some(stem) = word.strip_suffix("es") {
        forms.push(stem.to_string());
    }
    if let Some(stem) = word.strip_suffix('s') {
        forms.push(stem.to_string());
    }
    forms
}

fn read_kind(blueprint: &Value) -> Option<Kind> {
    let identifier = blueprint.get("identifier")?.as_str()?.to_string();
    let title = blueprint
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or(&identifier)
        .to_string();

    let properties = blueprint
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, info)| {
                    let mut values: Vec<String> = Vec::new();
                    for key in ["enum", "common_values"] {
                        for value in info
                            .get(key)
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let text = match value {
                                Value::String(text) => text.to_lowercase(),
                                other => other.to_string(),
                            };
                            if !values.contains(&text) {
                                values.push(text);
                            }
                        }
                    }
                    Property {
                        name: name.clone(),
                        title: info
                            .get("title")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        format: info
                            .get("format")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        values,
                    }
                })
                .collect()
        })
        .unwrap_or_default();

    let relations = blueprint
        .get("relations")
        .and_then(Value::as_object)
        .map(|relations| {
            relations
                .iter()
                .map(|(name, relation)| Relation {
                    name: name.clone(),
                    target: relation
                        .get("target")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    many: relation
                        .get("many")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                })
                .collect()
        })
        .unwrap_or_default();

    Some(Kind {
        identifier,
        title,
        properties,
        relations,
    })
}
