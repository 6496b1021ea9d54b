//! Picking the agent for a question.
//!
//! In order: a message whose first word is an agent's nickname goes to that
//! agent (the nickname is removed from the question); a channel may name a
//! default agent; otherwise the agent whose title, description and
//! conversation starters (and the titles and descriptions of the actions it
//! may propose) share the most distinctive words with the
//! question answers, and when none shares any, the default agent does.
//! Words every agent's description uses count for nothing, so a generic
//! word such as "service" cannot decide the route.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Agent, Agents};
use crate::catalog::normalize::{is_stopword, terms};

/// Why an agent was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteReason {
    /// Asked for by id (the `--agent` option).
    Requested,
    Nickname,
    ChannelDefault,
    Description,
    Default,
}

/// The chosen agent and the question it gets.
#[derive(Debug, Clone)]
pub struct Route {
    pub agent: Arc<Agent>,
    /// The question without a leading nickname.
    pub question: String,
    pub reason: RouteReason,
}

impl Agents {
    /// Routes a question asked in `channel` (if any).
    pub fn route(&self, question: &str, channel: Option<&str>) -> Route {
        if let Some((agent, rest)) = self.by_nickname(question) {
            return Route {
                agent,
                question: rest,
                reason: RouteReason::Nickname,
            };
        }
        if let Some(agent) = channel.and_then(|channel| self.channel_default(channel)) {
            return Route {
                agent,
                question: question.to_string(),
                reason: RouteReason::ChannelDefault,
            };
        }
        match self.by_description(question) {
            Some(agent) => Route {
                agent,
                question: question.to_string(),
                reason: RouteReason::Description,
            },
            None => Route {
                agent: self.default.clone(),
                question: question.to_string(),
                reason: RouteReason::Default,
            },
        }
    }

    fn by_nickname(&self, question: &str) -> Option<(Arc<Agent>, String)> {
        let trimmed = question.trim_start();
        let end = trimmed
            .find(|character: char| character.is_whitespace())
            .unwrap_or(trimmed.len());
        let first = trimmed[..end]
            .trim_end_matches([':', ',', '.', '!', '?', ';'])
            .trim_start_matches('@')
            .to_lowercase();
        if first.is_empty() {
            return None;
        }
        let agent = self.list.iter().find(|agent| agent.nickname == first)?;
        Some((agent.clone(), trimmed[end..].trim().to_string()))
    }

    fn by_description(&self, question: &str) -> Option<Arc<Agent>> {
        if self.list.len() < 2 {
            return None;
        }
        let vocabularies: Vec<HashSet<String>> =
            self.list.iter().map(|agent| agent_terms(agent)).collect();
        let mut spread: HashMap<&str, usize> = HashMap::new();
        for vocabulary in &vocabularies {
            for term in vocabulary {
                *spread.entry(term.as_str()).or_default() += 1;
            }
        }

        // Each distinct word of the question counts once, through the best
        // of its forms: "payments" and its stem "payment" are one word.
        let asked: Vec<Vec<String>> = terms(question)
            .into_iter()
            .filter(|term| !is_stopword(term) && term.len() > 1)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|term| stems(&term))
            .collect();
        let agents = self.list.len() as f64;
        let mut best: Option<(f64, usize)> = None;
        for (index, vocabulary) in vocabularies.iter().enumerate() {
            let score: f64 = asked
                .iter()
                .map(|forms| {
                    forms
                        .iter()
                        .filter(|form| vocabulary.contains(*form))
                        .map(|form| {
                            let shared_by = spread.get(form.as_str()).copied().unwrap_or(1) as f64;
                            (agents / shared_by).ln()
                        })
                        .fold(0.0, f64::max)
                })
                .sum();
            let better = match best {
                None => score > 0.0,
                Some((best_score, _)) => score > best_score + f64::EPSILON,
            };
            if better {
                best = Some((score, index));
            }
        }
        best.map(|(_, index)| self.list[index].clone())
    }
}

/// The words that describe an agent, with simple stems.
fn agent_terms(agent: &Agent) -> HashSet<String> {
    let mut text = format!("{} {} {}", agent.nickname, agent.title, agent.description);
    for starter in &agent.conversation_starters {
        text.push(' ');
        text.push_str(starter);
    }
    // "Open an incident for payments" fits the agent that may open one.
    for action in &agent.actions {
        text.push_str(&format!(
            " {} {} {}",
            action.id, action.title, action.description
        ));
    }
    terms(&text)
        .into_iter()
        .filter(|term| !is_stopword(term) && term.len() > 1)
        .flat_map(|term| stems(&term))
        .collect()
}

/// A word and its plain stem ("incidents" also gives "incident"), so plural
/// and singular meet.
fn stems(term: &str) -> Vec<String> {
    let mut forms = vec![term.to_string()];
    for suffix in ["ies", "es", "s", "ing", "ed"] {
        if let Some(stem) = term.strip_suffix(suffix)
            && stem.len() >= 3
        {
            forms.push(stem.to_string());
        }
    }
    forms
}
