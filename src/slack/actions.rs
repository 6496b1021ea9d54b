//! Action runs in Slack: approval cards, clicks on Approve and Reject,
//! automatic runs, and the sweep that expires unanswered requests.
//!
//! Every state change goes through the conditional updates in
//! [`crate::store::action_runs`], so the card is only ever updated by the
//! process whose update won, and a run executes once however many clicks,
//! redeliveries or replicas there are. All state is in the database: a card
//! posted before a restart still works.

use tracing::{error, info, warn};

use super::cards::{approval_card, settled_card};
use super::listener::Bot;
use crate::actions::approval::{self, ApprovalPolicy, Verdict};
use crate::actions::execution;
use crate::actions::proposal::Proposal;
use crate::store::action_runs::{self, ActionRun, Decision, RunStatus};

/// Posts the approval card, or runs an automatic action, for each run
/// proposed while answering a question.
pub async fn handle_proposals(bot: &Bot, channel: &str, thread_ts: &str, proposals: Vec<Proposal>) {
    for proposal in proposals {
        let run = match action_runs::get(&bot.app.store, &proposal.run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            Err(error) => {
                error!(run_id = %proposal.run_id, error = %format!("{error:#}"), "could not load a proposed run");
                continue;
            }
        };
        match (&proposal.action.approval, run.status) {
            (ApprovalPolicy::Required(approvers), RunStatus::WaitingForApproval) => {
                let (text, blocks) =
                    approval_card(&run, &proposal.action.title, &approval::describe(approvers));
                post_card(bot, channel, thread_ts, &run, &text, blocks).await;
            }
            (ApprovalPolicy::Automatic, RunStatus::InProgress) => {
                let (text, blocks) = settled_card(&run, &proposal.action.title);
                let Some(message_ts) =
                    post_card(bot, channel, thread_ts, &run, &text, blocks).await
                else {
                    // Without a note, still run it: the result is recorded.
                    run_and_report(bot, &proposal.action, &run, None).await;
                    continue;
                };
                run_and_report(bot, &proposal.action, &run, Some((channel, &message_ts))).await;
            }
            _ => {}
        }
    }
}

async fn post_card(
    bot: &Bot,
    channel: &str,
    thread_ts: &str,
    run: &ActionRun,
    text: &str,
    blocks: Vec<slack_morphism::prelude::SlackBlock>,
) -> Option<String> {
    match bot
        .api
        .post_in_thread(channel, thread_ts, text, blocks)
        .await
    {
        Ok(message_ts) => {
            if let Err(error) =
                action_runs::set_message(&bot.app.store, &run.id, channel, &message_ts).await
            {
                error!(run_id = %run.id, error = %format!("{error:#}"), "could not record the card of a run");
            }
            Some(message_ts)
        }
        Err(error) => {
            error!(run_id = %run.id, error = %format!("{error:#}"), "could not post the card of a run");
            None
        }
    }
}

/// Executes a run in progress and updates its card with the result.
async fn run_and_report(
    bot: &Bot,
    action: &crate::actions::definition::ActionDefinition,
    run: &ActionRun,
    card: Option<(&str, &str)>,
) {
    let finished = match execution::execute(&bot.app.store, &bot.app.clock, action, run).await {
        Ok(finished) => finished,
        Err(error) => {
            error!(run_id = %run.id, error = %format!("{error:#}"), "could not record the end of a run");
            return;
        }
    };
    info!(run_id = %run.id, status = %finished.status, "action run finished");
    if let Some((channel, message_ts)) = card {
        update_card(bot, channel, message_ts, &finished, &action.title).await;
    }
}

async fn update_card(bot: &Bot, channel: &str, message_ts: &str, run: &ActionRun, title: &str) {
    let (text, blocks) = settled_card(run, title);
    if let Err(error) = bot
        .api
        .update_message(channel, message_ts, &text, blocks)
        .await
    {
        warn!(run_id = %run.id, error = %format!("{error:#}"), "could not update the card of a run");
    }
}

/// A click on Approve or Reject.
pub struct Click {
    pub run_id: String,
    pub clicker: String,
    pub decision: Decision,
    /// Where the card is, from the click; the ephemeral reply goes there.
    pub channel: Option<String>,
    /// The card's ts, from the click.
    pub message_ts: Option<String>,
}

/// Decides a run for a click: checks the clicker, moves the run in one
/// conditional update, updates the card, and executes an approved run.
pub async fn handle_click(bot: &Bot, click: Click) {
    let app = &bot.app;
    let reply = |text: String| reply_to(bot, &click, text);

    let run = match action_runs::get(&app.store, &click.run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return reply("This request is not known any more, so nothing was done.".to_string())
                .await;
        }
        Err(error) => {
            error!(run_id = %click.run_id, error = %format!("{error:#}"), "could not load the run of a click");
            return reply("Something went wrong; please try again in a moment.".to_string()).await;
        }
    };
    let Some(action) = app.agents_file.action(&run.action_id).cloned() else {
        return reply(format!(
            "The action `{}` is not configured any more, so this request cannot be decided.",
            run.action_id
        ))
        .await;
    };
    let ApprovalPolicy::Required(approvers) = &action.approval else {
        return reply("This action runs without approval.".to_string()).await;
    };
    if run.status != RunStatus::WaitingForApproval {
        return reply(already_decided(&run)).await;
    }

    let verdict = match approval::check(&bot.api, &app.catalog, approvers, &run, &click.clicker)
        .await
    {
        Ok(verdict) => verdict,
        Err(error) => {
            error!(run_id = %run.id, error = %format!("{error:#}"), "could not check the approver");
            return reply(
                "I couldn't check whether you may approve this; nothing was changed.".to_string(),
            )
            .await;
        }
    };
    let refusal = match verdict {
        Verdict::Allowed => None,
        Verdict::Bot => Some("Bots cannot approve or reject requests.".to_string()),
        Verdict::SelfApproval => {
            Some("You asked for this run, so someone else must approve or reject it.".to_string())
        }
        Verdict::NotApprover => Some(format!(
            "You are not an approver of *{}*, so nothing was changed. Approvers: {}.",
            action.title,
            approval::describe(approvers)
        )),
    };
    if let Some(text) = refusal {
        info!(run_id = %run.id, clicker = %click.clicker, verdict = ?verdict, "click refused");
        return reply(text).await;
    }

    let decided = match action_runs::decide(
        &app.store,
        &app.clock,
        &run.id,
        &click.clicker,
        click.decision,
    )
    .await
    {
        Ok(Some(decided)) => decided,
        Ok(None) => {
            let current = action_runs::get(&app.store, &run.id)
                .await
                .ok()
                .flatten()
                .unwrap_or(run);
            if current.status == RunStatus::WaitingForApproval {
                // Still waiting, so its deadline passed before the sweep
                // marked it: mark it now, so its card loses the buttons.
                expire_due_runs(bot).await;
            }
            return reply(already_decided(&current)).await;
        }
        Err(error) => {
            error!(run_id = %run.id, error = %format!("{error:#}"), "could not record a decision");
            return reply(
                "Something went wrong; nothing was changed. Please try again.".to_string(),
            )
            .await;
        }
    };
    info!(run_id = %decided.id, decider = %click.clicker, status = %decided.status, "run decided");

    // A click can arrive before the card's ts is recorded; the click
    // itself says where the card is.
    let card = decided
        .channel_id
        .clone()
        .zip(decided.message_ts.clone())
        .or_else(|| click.channel.clone().zip(click.message_ts.clone()));
    if let Some((channel, message_ts)) = &card {
        update_card(bot, channel, message_ts, &decided, &action.title).await;
    }
    if decided.status == RunStatus::InProgress {
        let card = card
            .as_ref()
            .map(|(channel, ts)| (channel.as_str(), ts.as_str()));
        run_and_report(bot, &action, &decided, card).await;
    }
}

/// Answers the clicker only.
async fn reply_to(bot: &Bot, click: &Click, text: String) {
    if let Some(channel) = &click.channel
        && let Err(error) = bot
            .api
            .post_ephemeral(channel, &click.clicker, None, &text)
            .await
    {
        warn!(error = %format!("{error:#}"), "could not answer a click");
    }
}

fn already_decided(run: &ActionRun) -> String {
    match run.status {
        // A run still waiting that could not be decided is past its
        // deadline.
        RunStatus::Expired | RunStatus::WaitingForApproval => {
            "This request expired before anyone decided it, so nothing was done.".to_string()
        }
        RunStatus::Rejected => format!(
            "This request was already rejected{}.",
            run.decider
                .as_deref()
                .map(|decider| format!(" by <@{decider}>"))
                .unwrap_or_default()
        ),
        _ => format!(
            "This request was already approved{}.",
            run.decider
                .as_deref()
                .map(|decider| format!(" by <@{decider}>"))
                .unwrap_or_default()
        ),
    }
}

/// Expires requests nobody decided in time and fails runs a crash left in
/// progress, updating their cards. Safe on several replicas: each run is
/// changed by one of them.
pub async fn sweep(bot: &Bot) {
    let app = &bot.app;
    expire_due_runs(bot).await;

    let Some(stale_after) = app
        .agents_file
        .actions
        .iter()
        .map(|action| execution::stale_after(action))
        .max()
    else {
        return;
    };
    let cutoff = app.clock.now_millis() - stale_after.as_millis() as i64;
    match action_runs::fail_stale(
        &app.store,
        &app.clock,
        cutoff,
        "interrupted, outcome unknown",
    )
    .await
    {
        Ok(failed) => {
            for run in failed {
                warn!(run_id = %run.id, "run left in progress by a stopped process marked failed");
                refresh_card(bot, &run).await;
            }
        }
        Err(error) => warn!(error = %format!("{error:#}"), "could not fail interrupted runs"),
    }
}

/// Expires the requests whose deadline has passed and updates their cards.
async fn expire_due_runs(bot: &Bot) {
    match action_runs::expire_due(&bot.app.store, &bot.app.clock).await {
        Ok(expired) => {
            for run in expired {
                info!(run_id = %run.id, "approval request expired");
                refresh_card(bot, &run).await;
            }
        }
        Err(error) => warn!(error = %format!("{error:#}"), "could not expire approval requests"),
    }
}

async fn refresh_card(bot: &Bot, run: &ActionRun) {
    let title = bot
        .app
        .agents_file
        .action(&run.action_id)
        .map(|action| action.title.clone())
        .unwrap_or_else(|| run.action_id.clone());
    if let (Some(channel), Some(message_ts)) = (&run.channel_id, &run.message_ts) {
        update_card(bot, channel, message_ts, run, &title).await;
    }
}
