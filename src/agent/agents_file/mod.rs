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
use check::{RawFile, validate};

mod check;
mod describe;

pub use describe::describe;

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
