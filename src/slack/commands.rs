//! The `/agentdesk` slash command: `help` (what the bot does and the
//! conversation starters), `agents` (the agents this user may use) and
//! `usage` (this user's usage against their limits).

use slack_morphism::prelude::*;
use tracing::warn;

use super::listener::Bot;
use crate::governance::limits::{self, RequestKey};

/// Builds the reply to a slash command.
pub async fn reply(bot: &Bot, event: &SlackCommandEvent) -> String {
    let text = event.text.as_deref().unwrap_or("").trim().to_lowercase();
    let subcommand = text.split_whitespace().next().unwrap_or("help");
    let user = event.user_id.to_string();
    let channel = event.channel_id.to_string();
    let team = event.team_id.to_string();

    match subcommand {
        "help" | "" => help(bot, &user, &channel).await,
        "agents" => agents(bot, &user, &channel).await,
        "usage" => usage(bot, &user, &team).await,
        other => format!(
            "I don't know the subcommand `{}`. Try `/agentdesk help`, `/agentdesk agents` or \
             `/agentdesk usage`.",
            super::mrkdwn::escape_mrkdwn(other)
        ),
    }
}

async fn help(bot: &Bot, user: &str, channel: &str) -> String {
    let mut lines = vec![
        "*agentdesk* answers questions about the software catalog: owners, teams, \
         dependencies, deployments, incidents and vulnerabilities. Mention me in a channel \
         or send me a direct message. Start a message with an agent's nickname to ask that \
         agent."
            .to_string(),
    ];
    let usable = usable_agents(bot, user, channel).await;
    let starters: Vec<String> = usable
        .iter()
        .flat_map(|agent| agent.conversation_starters.iter().cloned())
        .take(8)
        .collect();
    if !starters.is_empty() {
        lines.push("*Try asking:*".to_string());
        lines.extend(
            starters
                .iter()
                .map(|starter| format!("• {}", super::mrkdwn::escape_mrkdwn(starter))),
        );
    }
    lines.push(
        "`/agentdesk agents` lists the agents you can use; `/agentdesk usage` shows your usage."
            .to_string(),
    );
    lines.join("\n")
}

async fn agents(bot: &Bot, user: &str, channel: &str) -> String {
    let usable = usable_agents(bot, user, channel).await;
    if usable.is_empty() {
        return "You don't have access to any agent here. Ask your platform team for access."
            .to_string();
    }
    let mut lines = vec![format!("You can use {} agent(s):", usable.len())];
    for agent in usable {
        let default = if agent.id == bot.app.agents.default.id {
            " (default)"
        } else {
            ""
        };
        lines.push(format!(
            "• *{}*{default} — nickname `{}`: {}",
            super::mrkdwn::escape_mrkdwn(&agent.title),
            agent.nickname,
            super::mrkdwn::escape_mrkdwn(&agent.description)
        ));
    }
    lines.join("\n")
}

async fn usage(bot: &Bot, user: &str, team: &str) -> String {
    let app = &bot.app;
    let key = RequestKey {
        user,
        agent: &app.agents.default.id,
        workspace: team,
    };
    match limits::usage(&app.store, &app.clock, &app.agents_file.limits, &key).await {
        Ok(report) => report.to_markdown(app.clock.now_millis()),
        Err(error) => {
            warn!(error = %format!("{error:#}"), "could not read usage for /agentdesk usage");
            "I couldn't read your usage right now; please try again shortly.".to_string()
        }
    }
}

async fn usable_agents(
    bot: &Bot,
    user: &str,
    channel: &str,
) -> Vec<std::sync::Arc<crate::agent::Agent>> {
    let mut usable = Vec::new();
    for agent in &bot.app.agents.list {
        match bot.app.access.may_use(agent, user, Some(channel)).await {
            Ok(true) => usable.push(agent.clone()),
            Ok(false) => {}
            Err(error) => {
                warn!(agent = %agent.id, error = %format!("{error:#}"), "could not check access")
            }
        }
    }
    usable
}
