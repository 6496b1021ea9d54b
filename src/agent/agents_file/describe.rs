//! The `agentdesk config check` report of what each agent can reach.

use super::*;

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
