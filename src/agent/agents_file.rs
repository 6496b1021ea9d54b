//! The agents file: a YAML file (path in `AGENTDESK_CONFIG`, default
//! `agentdesk.yaml` in the working directory) that defines the agents and
//! the governance settings around them.
//!
//! Without the file the built-in `default` agent answers with every
//! read-only tool over the whole catalog. With it, the file is validated as
//! a whole at start: every problem is reported with the file, line and
//! column, the agent and the field, and the program does not start until
//! the file is fixed. `agentdesk config check [FILE]` runs the same checks
//! and prints what each agent can reach.
//!
//! ```yaml
//! default_agent: explorer          # when routing finds no better agent
//! channels:                        # a channel's default agent
//!   C0INCIDENTS1: incidents
//! limits:                          # all optional; absent means unlimited
//!   requests_per_minute_per_user: 10
//!   requests_per_minute_per_agent: 60
//!   daily_tokens_per_user: 200000
//!   daily_tokens_per_workspace: 2000000
//! retention: { days: 30, metadata_only: false }
//! redaction: { secrets: true, emails: false }
//! agents:
//!   - id: explorer
//!     nickname: explorer           # "@agentdesk explorer who owns X?"
//!     title: Service Explorer
//!     description: Owners, dependencies and lifecycle of services.
//!     system_prompt: ...           # at most 4,000 characters
//!     backend: openai              # offline, openai or anthropic
//!     model: gpt-4o-mini
//!     allowed_tools: ["search_entities", "get_.*"]   # whole-name regexes
//!     data_scope: [service, _team, _user]            # readable blueprints
//!     conversation_starters: ["Who owns payments?"]
//!     requests_per_minute: 30      # overrides requests_per_minute_per_agent
//!     access:                      # any entry admits; absent admits all
//!       users: [U0ALICE001]
//!       user_groups: [S0PLATFORM1]
//!       channels: [C0PLATFORM1]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::actions::definition::{self, ActionDefinition, RawAction};
use crate::actions::proposal::tool_name;
use crate::config::BackendKind;
use crate::governance::limits::Limits;
use crate::governance::redaction::RedactionSettings;
use crate::governance::retention::Retention;

/// Agents file read when `AGENTDESK_CONFIG` is not set.
pub const DEFAULT_AGENTS_FILE: &str = "agentdesk.yaml";

/// Longest system prompt, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 4_000;

/// Conversation starters per agent; Slack shows up to four suggested
/// prompts in the assistant pane.
pub const MAX_CONVERSATION_STARTERS: usize = 4;

/// A validated agents file.
#[derive(Debug, Clone)]
pub struct AgentsFile {
    /// Where it was read from; `None` for the built-in defaults.
    pub path: Option<PathBuf>,
    pub agents: Vec<AgentSpec>,
    /// Agent that answers when routing finds no better one.
    pub default_agent: String,
    /// Channel id to the agent that answers there by default.
    pub channel_defaults: BTreeMap<String, String>,
    pub limits: Limits,
    pub retention: Retention,
    pub redaction: RedactionSettings,
    /// Self-service actions the agents may propose.
    pub actions: Vec<std::sync::Arc<ActionDefinition>>,
}

/// One agent as the file defines it.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub id: String,
    pub nickname: String,
    pub title: String,
    pub description: String,
    /// `None` uses the built-in prompt.
    pub system_prompt: Option<String>,
    /// `None` uses `AGENTDESK_BACKEND`.
    pub backend: Option<BackendKind>,
    /// `None` uses the backend's configured model.
    pub model: Option<String>,
    /// Whole-name patterns of the tools the agent may call; empty means
    /// every read-only tool.
    pub allowed_tools: Vec<Regex>,
    /// The patterns as written, for messages.
    pub allowed_tool_patterns: Vec<String>,
    /// Blueprints its tools may read; `None` means all.
    pub data_scope: Option<BTreeSet<String>>,
    pub conversation_starters: Vec<String>,
    /// Who may use the agent; `None` admits everyone.
    pub access: Option<Access>,
    /// Requests per minute for this agent, overriding the file's
    /// `requests_per_minute_per_agent`.
    pub requests_per_minute: Option<u32>,
    /// Ids of the actions the agent may propose.
    pub actions: Vec<String>,
}

/// Who may use an agent: any listed user, any member of a listed user
/// group, or anyone asking in a listed channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub users: BTreeSet<String>,
    pub user_groups: BTreeSet<String>,
    pub channels: BTreeSet<String>,
}

/// One problem in an agents file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub agent: Option<String>,
    pub action: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

/// Every problem found in an agents file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AgentsFileError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for AgentsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the agents file {} is invalid ({} problem(s)); fix it and start again:",
            self.path.display(),
            self.problems.len()
        )?;
        for problem in &self.problems {
            write!(f, "  {}", self.path.display())?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
                if let Some(column) = problem.column {
                    write!(f, ":{column}")?;
                }
            }
            write!(f, ": ")?;
            if let Some(agent) = &problem.agent {
                write!(f, "agent {agent:?}, ")?;
            }
            if let Some(action) = &problem.action {
                write!(f, "action {action:?}, ")?;
            }
            if let Some(field) = &problem.field {
                write!(f, "field {field}: ")?;
            }
            writeln!(f, "{}", problem.message)?;
        }
        Ok(())
    }
}

impl AgentsFile {
    /// The built-in configuration: one `default` agent, no limits.
    pub fn built_in() -> Self {
        Self {
            path: None,
            agents: vec![AgentSpec::built_in()],
            default_agent: super::DEFAULT_AGENT_ID.to_string(),
            channel_defaults: BTreeMap::new(),
            limits: Limits::default(),
            retention: Retention::default(),
            redaction: RedactionSettings::default(),
            actions: Vec::new(),
        }
    }

    /// Loads the agents file: `explicit` (from `AGENTDESK_CONFIG`) must
    /// exist; without it, `agentdesk.yaml` in the working directory is used
    /// when present, else the built-in configuration.
    /// `env` reads the environment variables actions name (secrets,
    /// tokens).
    pub fn load(
        explicit: Option<&Path>,
        tool_names: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let default = PathBuf::from(DEFAULT_AGENTS_FILE);
                if !default.exists() {
                    return Ok(Self::built_in());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|error| {
            anyhow::anyhow!(
                "cannot read the agents file {} ({error}); check AGENTDESK_CONFIG or create the \
                 file (see examples/agentdesk.yaml)",
                path.display()
            )
        })?;
        Ok(Self::parse(&text, &path, tool_names, env)?)
    }

    /// Parses and validates agents file text. `tool_names` are the tools an
    /// `allowed_tools` pattern may match.
    pub fn parse(
        text: &str,
        path: &Path,
        tool_names: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, AgentsFileError> {
        let fail = |problems: Vec<Problem>| AgentsFileError {
            path: path.to_path_buf(),
            problems,
        };
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|error| {
            let location = error.location();
            let agent = location
                .as_ref()
                .and_then(|location| agent_at_line(text, location.line()));
            // Outside the agents, the top-level key is the field.
            let field = match (&agent, &location) {
                (None, Some(location)) => section_at_line(text, location.line()),
                _ => None,
            };
            fail(vec![Problem {
                line: location.as_ref().map(|location| location.line()),
                column: location.as_ref().map(|location| location.column()),
                agent,
                action: None,
                field,
                message: first_line(&error.to_string()),
            }])
        })?;

        let mut problems = Vec::new();
        let file = validate(raw, tool_names, env, &mut problems);
        if problems.is_empty() {
            Ok(Self {
                path: Some(path.to_path_buf()),
                ..file
            })
        } else {
            Err(fail(problems))
        }
    }

    /// Finds an agent by id.
    pub fn agent(&self, id: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|agent| agent.id == id)
    }

    /// Finds an action by id.
    pub fn action(&self, id: &str) -> Option<&std::sync::Arc<ActionDefinition>> {
        self.actions.iter().find(|action| action.id == id)
    }
}

impl AgentSpec {
    /// The built-in agent: every read-only tool, the whole catalog.
    pub fn built_in() -> Self {
        Self {
            id: super::DEFAULT_AGENT_ID.to_string(),
            nickname: super::DEFAULT_AGENT_ID.to_string(),
            title: "Catalog assistant".to_string(),
            description: "Answers questions about the software catalog: services, owners, \
                          teams, dependencies, deployments, incidents and vulnerabilities."
                .to_string(),
            system_prompt: None,
            backend: None,
            model: None,
            allowed_tools: Vec::new(),
            allowed_tool_patterns: Vec::new(),
            data_scope: None,
            conversation_starters: vec![
                "Who owns the payments service?".to_string(),
                "Which services have open critical vulnerabilities?".to_string(),
                "When was the last successful deployment of checkout?".to_string(),
            ],
            access: None,
            requests_per_minute: None,
            actions: Vec::new(),
        }
    }

    /// Reports whether the agent may call a tool with this name and
    /// read-only flag.
    pub fn allows_tool(&self, name: &str, is_read_only: bool) -> bool {
        if self.allowed_tools.is_empty() {
            is_read_only
        } else {
            self.allowed_tools
                .iter()
                .any(|pattern| pattern.is_match(name))
        }
    }
}

/// The cause line of a regex error, which spans several lines.
fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid pattern"))
        .to_string()
}

/// The first line of a parser error; the rest is a source excerpt.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // The location is reported separately.
    match line.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("line ") => rest.to_string(),
        _ => line.to_string(),
    }
}

/// Finds the id of the agent whose entry contains `line`, by reading the
/// file leniently, so a structural error can still name its agent.
fn agent_at_line(text: &str, line: u64) -> Option<String> {
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(default)]
        agents: Vec<Spanned<LenientAgent>>,
    }
    #[derive(Deserialize)]
    struct LenientAgent {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }

    if section_at_line(text, line)? != "agents" {
        return None;
    }
    let lenient: Lenient = serde_saphyr::from_str(text).ok()?;
    lenient
        .agents
        .iter()
        .rfind(|agent| agent.referenced.line() <= line)
        .and_then(|agent| agent.value.id.as_ref())
        .and_then(|id| id.as_str().map(str::to_string))
}

/// Finds the top-level key, such as `agents` or `actions`, whose value
/// contains `line`: the one whose value starts last at or before it.
fn section_at_line(text: &str, line: u64) -> Option<String> {
    let sections: BTreeMap<String, Spanned<serde::de::IgnoredAny>> =
        serde_saphyr::from_str(text).ok()?;
    sections
        .into_iter()
        .filter(|(_, value)| value.referenced.line() <= line)
        .max_by_key(|(_, value)| value.referenced.line())
        .map(|(name, _)| name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    default_agent: Option<Spanned<String>>,
    #[serde(default)]
    channels: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    retention: Option<Spanned<Retention>>,
    #[serde(default)]
    redaction: Option<RedactionSettings>,
    #[serde(default)]
    actions: Vec<Spanned<RawAction>>,
    agents: Spanned<Vec<Spanned<RawAgent>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Option<Spanned<String>>,
    nickname: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    system_prompt: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    allowed_tools: Option<Vec<Spanned<String>>>,
    data_scope: Option<Vec<Spanned<String>>>,
    conversation_starters: Option<Spanned<Vec<Spanned<String>>>>,
    requests_per_minute: Option<Spanned<u32>>,
    access: Option<Spanned<RawAccess>>,
    actions: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    user_groups: Vec<Spanned<String>>,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
}

/// Collects problems for one agent.
struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
    agent: Option<String>,
}

impl Checker<'_> {
    fn report<T>(&mut self, at: Option<&Spanned<T>>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: at.map(|spanned| spanned.referenced.line()),
            column: at.map(|spanned| spanned.referenced.column()),
            agent: self.agent.clone(),
            action: None,
            field: Some(field.to_string()),
            message: message.into(),
        });
    }
}

fn validate(
    raw: RawFile,
    tool_names: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> AgentsFile {
    let actions = validate_actions(&raw.actions, env, problems);
    let action_ids: Vec<String> = raw
        .actions
        .iter()
        .filter_map(|entry| {
            entry
                .value
                .id
                .as_ref()
                .map(|id| id.value.trim().to_string())
        })
        .collect();

    let mut agents: Vec<AgentSpec> = Vec::new();
    if raw.agents.value.is_empty() {
        Checker { problems, agent: None }.report(
            Some(&raw.agents),
            "agents",
            "the list is empty; define at least one agent, or delete the file to use the built-in agent",
        );
    }

    for entry in &raw.agents.value {
        if let Some(agent) = validate_agent(entry, tool_names, &action_ids, problems) {
            let mut checker = Checker {
                problems,
                agent: Some(agent.id.clone()),
            };
            if agents.iter().any(|other| other.id == agent.id) {
                checker.report(
                    entry.value.id.as_ref(),
                    "id",
                    "another agent already uses this id; ids must be unique",
                );
            }
            check_action_scope(entry, &agent, &actions, &mut checker);
            if agents.iter().any(|other| other.nickname == agent.nickname) {
                let at = entry.value.nickname.as_ref().or(entry.value.id.as_ref());
                checker.report(
                    at,
                    "nickname",
                    "another agent already uses this nickname; nicknames must be unique",
                );
            }
            agents.push(agent);
        }
    }

    let known = |id: &str| agents.iter().any(|agent| agent.id == id);
    let mut top = Checker {
        problems,
        agent: None,
    };

    let default_agent = match &raw.default_agent {
        Some(default) if !known(&default.value) => {
            top.report(
                Some(default),
                "default_agent",
                format!("no agent has the id {:?}", default.value),
            );
            default.value.clone()
        }
        Some(default) => default.value.clone(),
        None => agents
            .first()
            .map(|agent| agent.id.clone())
            .unwrap_or_default(),
    };

    let mut channel_defaults = BTreeMap::new();
    if let Some(channels) = &raw.channels {
        for (channel, agent) in &channels.value {
            if !is_slack_id(channel, &['C', 'G', 'D']) {
                top.report(
                    Some(agent),
                    "channels",
                    format!("{channel:?} is not a Slack channel id (like C0123ABCD); use the id, not the name"),
                );
            }
            if !known(&agent.value) {
                top.report(
                    Some(agent),
                    "channels",
                    format!("no agent has the id {:?}", agent.value),
                );
            }
            channel_defaults.insert(channel.clone(), agent.value.clone());
        }
    }

    let retention = match raw.retention {
        Some(retention) => {
            if retention.value.days == 0 {
                top.report(Some(&retention), "retention.days", "must be at least 1");
            }
            retention.value
        }
        None => Retention::default(),
    };

    AgentsFile {
        path: None,
        agents,
        default_agent,
        channel_defaults,
        limits: raw.limits.unwrap_or_default(),
        retention,
        redaction: raw.redaction.unwrap_or_default(),
        actions,
    }
}

fn validate_actions(
    raw: &[Spanned<RawAction>],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<std::sync::Arc<ActionDefinition>> {
    let mut actions: Vec<std::sync::Arc<ActionDefinition>> = Vec::new();
    for entry in raw {
        let name = entry
            .value
            .id
            .as_ref()
            .map(|id| id.value.trim().to_string());
        match definition::build(entry, env) {
            Ok(action) => {
                // `propose_<id>` with `-` as `_` names the tool, so two ids
                // that differ only there would share one tool.
                let tool = tool_name(&action.id);
                if let Some(other) = actions.iter().find(|other| tool_name(&other.id) == tool) {
                    let message = if other.id == action.id {
                        "another action already uses this id; ids must be unique".to_string()
                    } else {
                        format!(
                            "the action {:?} has the same tool name {tool}, because - and _ \
                             both become _ in it; rename one of them",
                            other.id
                        )
                    };
                    problems.push(Problem {
                        line: Some(entry.referenced.line()),
                        column: Some(entry.referenced.column()),
                        agent: None,
                        action: name.clone(),
                        field: Some("id".to_string()),
                        message,
                    });
                }
                actions.push(action);
            }
            Err(action_problems) => {
                for (line, column, field, message) in action_problems {
                    problems.push(Problem {
                        line,
                        column,
                        agent: None,
                        action: name.clone(),
                        field: Some(field),
                        message,
                    });
                }
            }
        }
    }
    actions
}

/// Reports each action the agent lists whose target or entity inputs are
/// outside the agent's data scope: the agent could never name their
/// entities, so every proposal would fail.
fn check_action_scope(
    entry: &Spanned<RawAgent>,
    agent: &AgentSpec,
    actions: &[std::sync::Arc<ActionDefinition>],
    checker: &mut Checker<'_>,
) {
    let Some(scope) = &agent.data_scope else {
        return;
    };
    for listed in entry.value.actions.iter().flatten() {
        let Some(action) = actions
            .iter()
            .find(|action| action.id == listed.value.trim())
        else {
            continue;
        };
        let outside: Vec<&str> = action
            .blueprints()
            .into_iter()
            .filter(|blueprint| !scope.contains(*blueprint))
            .collect();
        if !outside.is_empty() {
            checker.report(
                Some(listed),
                "actions",
                format!(
                    "action {:?} names {} entities, which the agent's data_scope leaves out, so \
                     the agent could never propose it; add them to data_scope or remove the \
                     action",
                    action.id,
                    outside.join(" and ")
                ),
            );
        }
    }
}

fn validate_agent(
    entry: &Spanned<RawAgent>,
    tool_names: &[&str],
    action_ids: &[String],
    problems: &mut Vec<Problem>,
) -> Option<AgentSpec> {
    let raw = &entry.value;
    let id = raw.id.as_ref().map(|id| id.value.trim().to_string());
    let mut checker = Checker {
        problems,
        agent: id.clone(),
    };

    let Some(id) = id else {
        checker.report(
            Some(entry),
            "id",
            "missing; every agent needs an id such as \"explorer\"",
        );
        return None;
    };
    if !is_identifier(&id) {
        checker.report(
            raw.id.as_ref(),
            "id",
            "use lower-case letters, digits, - and _ (at most 64), starting with a letter or digit",
        );
    }

    let nickname = raw
        .nickname
        .as_ref()
        .map(|nickname| nickname.value.trim().to_lowercase())
        .unwrap_or_else(|| id.clone());
    if !is_identifier(&nickname) {
        checker.report(
            raw.nickname.as_ref(),
            "nickname",
            "use one word of lower-case letters, digits, - and _, so it can lead a message",
        );
    }

    let title = required_text(&mut checker, raw.title.as_ref(), entry, "title");
    let description = required_text(&mut checker, raw.description.as_ref(), entry, "description");

    let system_prompt = raw
        .system_prompt
        .as_ref()
        .map(|prompt| prompt.value.trim().to_string());
    if let (Some(prompt), Some(at)) = (&system_prompt, raw.system_prompt.as_ref()) {
        let length = prompt.chars().count();
        if length > MAX_SYSTEM_PROMPT_CHARS {
            checker.report(
                Some(at),
                "system_prompt",
                format!("has {length} characters; the limit is {MAX_SYSTEM_PROMPT_CHARS}"),
            );
        }
        if prompt.is_empty() {
            checker.report(
                Some(at),
                "system_prompt",
                "is empty; remove the field to use the built-in prompt",
            );
        }
    }

    let backend =
        raw.backend
            .as_ref()
            .and_then(|backend| match BackendKind::parse(&backend.value) {
                Ok(kind) => Some(kind),
                Err(_) => {
                    checker.report(
                        Some(backend),
                        "backend",
                        format!(
                            "{:?} is not a backend; use offline, openai or anthropic",
                            backend.value
                        ),
                    );
                    None
                }
            });
    let model = raw
        .model
        .as_ref()
        .map(|model| model.value.trim().to_string());
    if let (Some(model_at), Some(BackendKind::Offline)) = (raw.model.as_ref(), backend) {
        checker.report(
            Some(model_at),
            "model",
            "the offline backend has no models; remove the model or pick openai or anthropic",
        );
    }
    if model.as_deref() == Some("") {
        checker.report(raw.model.as_ref(), "model", "is empty");
    }

    let mut allowed_tools = Vec::new();
    let mut allowed_tool_patterns = Vec::new();
    for pattern in raw.allowed_tools.iter().flatten() {
        match Regex::new(&format!("^(?:{})$", pattern.value)) {
            Ok(regex) => {
                if !tool_names.iter().any(|name| regex.is_match(name)) {
                    checker.report(
                        Some(pattern),
                        "allowed_tools",
                        format!(
                            "{:?} matches no tool; the tools are: {}",
                            pattern.value,
                            tool_names.join(", ")
                        ),
                    );
                }
                allowed_tools.push(regex);
                allowed_tool_patterns.push(pattern.value.clone());
            }
            Err(error) => checker.report(
                Some(pattern),
                "allowed_tools",
                format!(
                    "{:?} is not a valid regular expression: {}",
                    pattern.value,
                    regex_problem(&error)
                ),
            ),
        }
    }

    let data_scope = raw.data_scope.as_ref().map(|scope| {
        let mut blueprints = BTreeSet::new();
        for blueprint in scope {
            if blueprint.value.trim().is_empty() {
                checker.report(
                    Some(blueprint),
                    "data_scope",
                    "a blueprint identifier is empty",
                );
            }
            blueprints.insert(blueprint.value.trim().to_string());
        }
        blueprints
    });

    let mut conversation_starters = Vec::new();
    if let Some(starters) = &raw.conversation_starters {
        if starters.value.len() > MAX_CONVERSATION_STARTERS {
            checker.report(
                Some(starters),
                "conversation_starters",
                format!(
                    "has {} entries; Slack shows at most {MAX_CONVERSATION_STARTERS}",
                    starters.value.len()
                ),
            );
        }
        for starter in &starters.value {
            let text = starter.value.trim();
            if text.is_empty() || text.chars().count() > 200 {
                checker.report(
                    Some(starter),
                    "conversation_starters",
                    "each starter needs 1 to 200 characters",
                );
            }
            conversation_starters.push(text.to_string());
        }
    }

    if let Some(limit) = &raw.requests_per_minute
        && limit.value == 0
    {
        checker.report(
            Some(limit),
            "requests_per_minute",
            "must be at least 1; remove it for no limit",
        );
    }

    let access = raw.access.as_ref().map(|access| {
        let mut result = Access::default();
        for user in &access.value.users {
            if !is_slack_id(&user.value, &['U', 'W']) {
                checker.report(Some(user), "access.users", format!("{:?} is not a Slack user id (like U0123ABCD)", user.value));
            }
            result.users.insert(user.value.clone());
        }
        for group in &access.value.user_groups {
            if !is_slack_id(&group.value, &['S']) {
                checker.report(Some(group), "access.user_groups", format!("{:?} is not a Slack user group id (like S0123ABCD)", group.value));
            }
            result.user_groups.insert(group.value.clone());
        }
        for channel in &access.value.channels {
            if !is_slack_id(&channel.value, &['C', 'G', 'D']) {
                checker.report(Some(channel), "access.channels", format!("{:?} is not a Slack channel id (like C0123ABCD)", channel.value));
            }
            result.channels.insert(channel.value.clone());
        }
        if result.users.is_empty() && result.user_groups.is_empty() && result.channels.is_empty() {
            checker.report(Some(access), "access", "lists nobody, so nobody could use the agent; list users, user_groups or channels, or remove access to admit everyone");
        }
        result
    });

    let mut actions = Vec::new();
    for action in raw.actions.iter().flatten() {
        let name = action.value.trim().to_string();
        if !action_ids.contains(&name) {
            checker.report(
                Some(action),
                "actions",
                format!("no action has the id {name:?}; define it under the top-level actions"),
            );
        }
        actions.push(name);
    }

    Some(AgentSpec {
        id,
        nickname,
        title,
        description,
        system_prompt,
        backend,
        model,
        allowed_tools,
        allowed_tool_patterns,
        data_scope,
        conversation_starters,
        access,
        requests_per_minute: raw.requests_per_minute.as_ref().map(|limit| limit.value),
        actions,
    })
}

fn required_text(
    checker: &mut Checker<'_>,
    value: Option<&Spanned<String>>,
    entry: &Spanned<RawAgent>,
    field: &str,
) -> String {
    match value {
        Some(text) if !text.value.trim().is_empty() => text.value.trim().to_string(),
        Some(text) => {
            checker.report(Some(text), field, "is empty");
            String::new()
        }
        None => {
            checker.report(
                Some(entry),
                field,
                "missing; every agent needs a title and a description (used to route questions)",
            );
            String::new()
        }
    }
}

fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit())
        && text.len() <= 64
        && characters.all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '-'
                || character == '_'
        })
}

/// Slack ids: a known prefix letter, then upper-case letters and digits.
fn is_slack_id(text: &str, prefixes: &[char]) -> bool {
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if prefixes.contains(&first))
        && text.len() >= 3
        && characters.all(|character| character.is_ascii_uppercase() || character.is_ascii_digit())
}

/// Describes what each agent can reach, for `agentdesk config check`.
pub fn describe(file: &AgentsFile, tools: &crate::tools::ToolRegistry) -> String {
    let mut out = String::new();
    let source = match &file.path {
        Some(path) => format!("{}", path.display()),
        None => "built-in configuration (no agents file)".to_string(),
    };
    out.push_str(&format!(
        "Agents file: {source}: valid, {} agent(s)\n",
        file.agents.len()
    ));
    out.push_str(&format!("Default agent: {}\n", file.default_agent));
    for (channel, agent) in &file.channel_defaults {
        out.push_str(&format!("Channel {channel} defaults to {agent}\n"));
    }

    for agent in &file.agents {
        let offered: Vec<&str> = tools
            .names()
            .into_iter()
            .filter(|name| {
                let read_only = tools.get(name).is_some_and(|tool| tool.is_read_only());
                agent.allows_tool(name, read_only)
            })
            .collect();
        out.push_str(&format!(
            "\n{} ({}), nickname {}\n",
            agent.id, agent.title, agent.nickname
        ));
        out.push_str(&format!("  description: {}\n", agent.description));
        let backend = agent
            .backend
            .map_or("from AGENTDESK_BACKEND".to_string(), |kind| {
                kind.as_str().to_string()
            });
        let model = agent
            .model
            .clone()
            .unwrap_or_else(|| "the backend's default".to_string());
        out.push_str(&format!("  backend: {backend}, model: {model}\n"));
        out.push_str(&format!(
            "  tools: {}\n",
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        ));
        let scope = match &agent.data_scope {
            Some(blueprints) => blueprints.iter().cloned().collect::<Vec<_>>().join(", "),
            None => "the whole catalog".to_string(),
        };
        out.push_str(&format!("  data scope: {scope}\n"));
        match &agent.access {
            None => out.push_str("  access: everyone\n"),
            Some(access) => {
                let join =
                    |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
                out.push_str(&format!(
                    "  access: users [{}], user groups [{}], channels [{}]\n",
                    join(&access.users),
                    join(&access.user_groups),
                    join(&access.channels)
                ));
            }
        }
        if let Some(limit) = agent.requests_per_minute {
            out.push_str(&format!("  requests per minute: {limit}\n"));
        }
        if !agent.actions.is_empty() {
            out.push_str(&format!(
                "  actions it may propose: {}\n",
                agent.actions.join(", ")
            ));
        }
        for starter in &agent.conversation_starters {
            out.push_str(&format!("  starter: {starter}\n"));
        }
    }

    let limit =
        |value: Option<u64>| value.map_or("unlimited".to_string(), |value| value.to_string());
    let limits = &file.limits;
    out.push_str(&format!(
        "\nLimits: {} requests per minute per user, {} per agent, {} tokens per user per day, {} per workspace per day\n",
        limit(limits.requests_per_minute_per_user.map(u64::from)),
        limit(limits.requests_per_minute_per_agent.map(u64::from)),
        limit(limits.daily_tokens_per_user),
        limit(limits.daily_tokens_per_workspace)
    ));
    out.push_str(&format!(
        "Retention: {} days{}\n",
        file.retention.days,
        if file.retention.metadata_only {
            ", metadata only"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "Redaction: secrets {}, e-mail addresses {}\n",
        if file.redaction.secrets { "on" } else { "off" },
        if file.redaction.emails { "on" } else { "off" }
    ));
    if !file.actions.is_empty() {
        out.push_str("\nActions:\n");
        out.push_str(&crate::actions::describe(file));
    }
    out
}
