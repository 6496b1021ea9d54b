//! Reading of the agents file's raw YAML into checked agents, collecting
//! every problem with its line, agent and field.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) default_agent: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) channels: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    pub(super) limits: Option<Limits>,
    #[serde(default)]
    pub(super) retention: Option<Spanned<Retention>>,
    #[serde(default)]
    pub(super) redaction: Option<RedactionSettings>,
    #[serde(default)]
    pub(super) actions: Vec<Spanned<RawAction>>,
    pub(super) agents: Spanned<Vec<Spanned<RawAgent>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) id: Option<Spanned<String>>,
    pub(super) nickname: Option<Spanned<String>>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) description: Option<Spanned<String>>,
    pub(super) system_prompt: Option<Spanned<String>>,
    pub(super) backend: Option<Spanned<String>>,
    pub(super) model: Option<Spanned<String>>,
    pub(super) allowed_tools: Option<Vec<Spanned<String>>>,
    pub(super) data_scope: Option<Vec<Spanned<String>>>,
    pub(super) conversation_starters: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) requests_per_minute: Option<Spanned<u32>>,
    pub(super) access: Option<Spanned<RawAccess>>,
    pub(super) actions: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default)]
    pub(super) users: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) user_groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) channels: Vec<Spanned<String>>,
}

/// Collects problems for one agent.
pub(super) struct Checker<'a> {
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

pub(super) fn validate(
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

pub(super) fn validate_actions(
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
pub(super) fn check_action_scope(
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

pub(super) fn validate_agent(
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

pub(super) fn required_text(
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

pub(super) fn is_identifier(text: &str) -> bool {
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
pub(super) fn is_slack_id(text: &str, prefixes: &[char]) -> bool {
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if prefixes.contains(&first))
        && text.len() >= 3
        && characters.all(|character| character.is_ascii_uppercase() || character.is_ascii_digit())
}
