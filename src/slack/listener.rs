//! What happens to each Socket Mode envelope once it is acked.
//!
//! The connection loop ([`super::socket`]) acks an envelope before it hands
//! the payload here, and these handlers only judge the payload (no I/O)
//! and spawn the real work: dedupe in the database, the agent run, the
//! reply. One slow answer therefore never delays another envelope's ack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use slack_morphism::prelude::*;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::actions::{Click, handle_click, handle_proposals};
use super::blocks::{FEEDBACK_DOWN, FEEDBACK_UP};
use super::cards::{APPROVE, REJECT};
use super::client::SlackApi;
use super::events::{BotIdentity, IncomingMessage, Verdict, classify};
use super::reply::{Footer, post_answer};
use super::text::decode_incoming;
use crate::app::{App, Question};
use crate::store::action_runs::Decision;
use crate::store::dedupe;
use crate::store::feedback::{self, Vote, VoteChange};
use crate::store::invocations::{self, Source, Status};

/// Where an answer in progress is going, so shutdown can tell its asker.
#[derive(Debug, Clone)]
struct InFlight {
    channel: String,
    thread_ts: String,
}

/// State shared by the callbacks of every socket.
pub struct Bot {
    pub app: App,
    pub api: SlackApi,
    pub identity: BotIdentity,
    /// Tracks every spawned answer; shutdown closes it and waits.
    pub tasks: TaskTracker,
    /// Bounds answers running at once (`AGENTDESK_MAX_CONCURRENT_INVOCATIONS`).
    permits: Arc<Semaphore>,
    /// Answers in progress by invocation id. A std mutex: it is never held
    /// across an await.
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Conversations already told that the database is unreachable, with
    /// when. Kept in memory because the database cannot record it.
    outage_notices: Mutex<HashMap<(String, String), tokio::time::Instant>>,
}

/// How long a conversation told about a database outage is not told again.
const OUTAGE_NOTICE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Conversations remembered at most; older notices are forgotten first.
const MAX_OUTAGE_NOTICES: usize = 10_000;

/// The reply when the database cannot be reached.
const OUTAGE_REPLY: &str = "I can't reach my database right now, so I can't answer. It is \
                            probably temporary: please ask again in a few minutes.";

impl Bot {
    pub fn new(app: App, api: SlackApi, identity: BotIdentity) -> Self {
        let permits = Arc::new(Semaphore::new(app.settings.max_concurrent_invocations));
        Self {
            app,
            api,
            identity,
            tasks: TaskTracker::new(),
            permits,
            in_flight: Mutex::new(HashMap::new()),
            outage_notices: Mutex::new(HashMap::new()),
        }
    }

    /// Reports whether this conversation should be told about a database
    /// outage now: true the first time within [`OUTAGE_NOTICE_TTL`].
    fn first_outage_notice(&self, channel: &str, thread_ts: &str) -> bool {
        let Ok(mut notices) = self.outage_notices.lock() else {
            return true;
        };
        let now = tokio::time::Instant::now();
        notices.retain(|_, told_at| now.duration_since(*told_at) < OUTAGE_NOTICE_TTL);
        if notices.len() >= MAX_OUTAGE_NOTICES
            && let Some(oldest) = notices
                .iter()
                .min_by_key(|(_, told_at)| **told_at)
                .map(|(key, _)| key.clone())
        {
            notices.remove(&oldest);
        }
        let key = (channel.to_string(), thread_ts.to_string());
        if notices.contains_key(&key) {
            return false;
        }
        notices.insert(key, now);
        true
    }

    /// Marks every answer still running as interrupted and tells each asker;
    /// called when the shutdown grace period is over.
    pub async fn abandon_in_flight(&self) {
        let running: Vec<(String, InFlight)> = self
            .in_flight
            .lock()
            .map(|map| {
                map.iter()
                    .map(|(id, flight)| (id.clone(), flight.clone()))
                    .collect()
            })
            .unwrap_or_default();

        for (invocation_id, flight) in running {
            let reason = "the bot shut down before the answer was ready";
            match invocations::interrupt(&self.app.store, &self.app.clock, &invocation_id, reason)
                .await
            {
                Ok(true) => {
                    let text = format!(
                        "Sorry, I was restarted before I could finish answering. Please ask \
                         again. (invocation {invocation_id})"
                    );
                    if let Err(error) = self
                        .api
                        .post_in_thread(&flight.channel, &flight.thread_ts, &text, Vec::new())
                        .await
                    {
                        warn!(invocation_id, error = %format!("{error:#}"), "could not tell the asker about the interruption");
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    error!(invocation_id, error = %format!("{error:#}"), "could not mark the invocation interrupted");
                }
            }
        }
    }

    fn track(&self, invocation_id: &str, flight: InFlight) {
        match self.in_flight.lock() {
            Ok(mut map) => {
                map.insert(invocation_id.to_string(), flight);
            }
            Err(_) => warn!(
                invocation_id,
                "in-flight registry unusable; shutdown cannot tell this asker"
            ),
        }
    }

    fn untrack(&self, invocation_id: &str) {
        if let Ok(mut map) = self.in_flight.lock() {
            map.remove(invocation_id);
        }
    }
}

/// Handles an `events_api` envelope's payload (an `event_callback`): judges
/// the event and spawns the answer. Does no I/O, so the ack is never held.
pub fn handle_events_api(bot: &Arc<Bot>, payload: Value) {
    let metrics = &bot.app.metrics;
    if payload.get("type").and_then(Value::as_str) != Some("event_callback") {
        debug!(
            payload_type = payload
                .get("type")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?"),
            "events_api payload that is not an event callback; ignored"
        );
        metrics.event_dropped("not an event callback");
        return;
    }
    let text = |field: &str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let event_id = text("event_id").unwrap_or_default();
    let team_id = text("team_id");
    let Some(body) = payload.get("event").filter(|event| event.is_object()) else {
        warn!(event_id = %event_id, "event callback without an event; ignored");
        metrics.event_dropped("event callback without an event");
        return;
    };

    if body.get("type").and_then(Value::as_str) == Some("assistant_thread_started") {
        let worker = bot.clone();
        let thread = body.get("assistant_thread").cloned().unwrap_or(Value::Null);
        bot.tasks
            .spawn(async move { suggest_prompts(&worker, thread).await });
        return;
    }
    let event_id_field = (!event_id.is_empty()).then_some(event_id.as_str());
    match classify(body, event_id_field, team_id.as_deref(), &bot.identity) {
        Verdict::Question(message) => {
            let span = info_span!(
                "slack_question",
                event_id = %event_id,
                channel = %message.channel,
                thread_ts = %message.reply_thread_ts(),
                invocation_id = tracing::field::Empty,
            );
            let worker = bot.clone();
            bot.tasks
                .spawn(async move { answer_message(&worker, message).await }.instrument(span));
        }
        Verdict::Ignore(reason) => {
            let event_type = body.get("type").and_then(Value::as_str).unwrap_or("?");
            debug!(event_id = %event_id, event_type, reason, "event ignored");
            metrics.event_dropped(reason);
        }
    }
}

/// Claims, answers and replies to one question.
async fn answer_message(bot: &Bot, message: IncomingMessage) {
    let app = &bot.app;
    let claimed = dedupe::claim_message(
        &app.store,
        &app.clock,
        message.event_id.as_deref(),
        &message.channel,
        &message.ts,
    )
    .await;
    match claimed {
        Ok(true) => {}
        Ok(false) => {
            debug!("question already delivered; dropped");
            app.metrics.event_deduplicated();
            return;
        }
        Err(error) => {
            error!(error = %format!("{error:#}"), "could not check for duplicate delivery; not answering");
            tell_about_outage(bot, &message).await;
            return;
        }
    }

    let Ok(_permit) = bot.permits.clone().acquire_owned().await else {
        return;
    };
    let invocation_id = invocations::new_id();
    tracing::Span::current().record("invocation_id", invocation_id.as_str());
    bot.track(
        &invocation_id,
        InFlight {
            channel: message.channel.clone(),
            thread_ts: message.reply_thread_ts().to_string(),
        },
    );

    let question = Question {
        text: decode_incoming(&message.text, Some(&bot.identity.user_id)),
        source: Source::Slack,
        agent: None,
        team_id: message.team_id.clone(),
        channel_id: Some(message.channel.clone()),
        thread_ts: Some(message.reply_thread_ts().to_string()),
        message_ts: Some(message.ts.clone()),
        user_id: Some(message.user.clone()),
        invocation_id: Some(invocation_id.clone()),
    };
    let result = app.answer(question).await;
    bot.untrack(&invocation_id);

    match result {
        // Shutdown marked this answer interrupted first and told the asker.
        Ok(answer) if !answer.recorded => {
            debug!("answer finished after it was marked interrupted; not posted");
        }
        Ok(answer) => {
            let footer = (answer.status != Status::Refused).then(|| Footer {
                agent_title: answer.agent_title.clone(),
                invocation_id: answer.invocation_id.clone(),
                with_feedback: answer.status == Status::Completed,
            });
            post_or_log(bot, &message, &answer.answer, footer.as_ref()).await;
            if !answer.proposals.is_empty() {
                handle_proposals(
                    bot,
                    &message.channel,
                    message.reply_thread_ts(),
                    answer.proposals,
                )
                .await;
            }
        }
        // Recording the invocation failed, which means the database.
        Err(error) => {
            error!(error = %format!("{error:#}"), "question failed before it could be answered");
            tell_about_outage(bot, &message).await;
        }
    }
}

/// Posts the outage reply, once per conversation while the outage lasts.
async fn tell_about_outage(bot: &Bot, message: &IncomingMessage) {
    if bot.first_outage_notice(&message.channel, message.reply_thread_ts()) {
        post_or_log(bot, message, OUTAGE_REPLY, None).await;
    } else {
        debug!("conversation already told about the database outage; not posting again");
    }
}

async fn post_or_log(
    bot: &Bot,
    message: &IncomingMessage,
    markdown: &str,
    footer: Option<&Footer>,
) {
    let max_chars = bot.app.settings.slack.max_message_chars;
    let posted = post_answer(
        &bot.api,
        &message.channel,
        message.reply_thread_ts(),
        markdown,
        max_chars,
        footer,
    )
    .await;
    if let Err(error) = posted {
        error!(error = %format!("{error:#}"), "could not post the answer to Slack");
    }
}

/// Handles an `interactive` envelope's payload: button clicks on approval
/// cards and feedback buttons. Spawns the work, like every other handler,
/// so the envelope is acked at once.
pub fn handle_interactive(bot: &Arc<Bot>, payload: Value) {
    let event: SlackInteractionEvent = match serde_json::from_value(payload) {
        Ok(event) => event,
        Err(error) => {
            warn!(error = %error, "Slack sent an interaction payload that could not be read; acked and dropped");
            bot.app.metrics.event_dropped("malformed interaction");
            return;
        }
    };
    let SlackInteractionEvent::BlockActions(click) = event else {
        debug!("interactive event acknowledged; no handler for its type");
        bot.app
            .metrics
            .event_dropped("interaction type not handled");
        return;
    };
    let Some(user) = click.user.as_ref().map(|user| user.id.to_string()) else {
        warn!("button click without a user; dropped");
        bot.app.metrics.event_dropped("click without a user");
        return;
    };
    let (channel, message_ts) = match &click.container {
        SlackInteractionActionContainer::Message(container) => (
            container
                .channel_id
                .as_ref()
                .map(|channel| channel.to_string()),
            Some(container.message_ts.to_string()),
        ),
        _ => (
            click.channel.as_ref().map(|channel| channel.id.to_string()),
            None,
        ),
    };
    for action in click.actions.iter().flatten() {
        let decision = match action.action_id.to_string().as_str() {
            APPROVE => Some(Decision::Approve),
            REJECT => Some(Decision::Reject),
            _ => None,
        };
        if let Some(decision) = decision {
            // A click without a run id finds no run, and the clicker is
            // told that nothing was done.
            let run_id = action.value.clone().unwrap_or_else(|| {
                warn!("approval click without a run id");
                String::new()
            });
            let click = Click {
                run_id: run_id.clone(),
                clicker: user.clone(),
                decision,
                channel: channel.clone(),
                message_ts: message_ts.clone(),
            };
            let worker = bot.clone();
            let span = info_span!("decision", run_id = %run_id, user = %user);
            bot.tasks
                .spawn(async move { handle_click(&worker, click).await }.instrument(span));
            continue;
        }
        let vote = match action.action_id.to_string().as_str() {
            FEEDBACK_UP => Vote::Up,
            FEEDBACK_DOWN => Vote::Down,
            other => {
                debug!(
                    action_id = other,
                    "click on an unknown button; acknowledged"
                );
                continue;
            }
        };
        let Some(invocation_id) = action.value.clone() else {
            warn!("feedback click without an invocation id; dropped");
            continue;
        };
        let worker = bot.clone();
        let user = user.clone();
        let channel = channel.clone();
        let span = info_span!("feedback", invocation_id = %invocation_id, user = %user);
        bot.tasks.spawn(
            async move {
                record_feedback(&worker, &invocation_id, &user, channel.as_deref(), vote).await
            }
            .instrument(span),
        );
    }
}

async fn record_feedback(
    bot: &Bot,
    invocation_id: &str,
    user: &str,
    channel: Option<&str>,
    vote: Vote,
) {
    let app = &bot.app;
    let change =
        match feedback::record_vote(&app.store, &app.clock, invocation_id, user, vote).await {
            Ok(change) => change,
            Err(error) => {
                error!(error = %format!("{error:#}"), "could not record feedback");
                return;
            }
        };
    info!(vote = ?vote, change = ?change, "feedback recorded");
    let text = match (change, vote) {
        (VoteChange::Unchanged, _) => "You already gave this answer that rating.",
        (_, Vote::Up) => "Thanks, your :+1: is recorded.",
        (_, Vote::Down) => "Thanks, your :-1: is recorded. It helps us improve the answers.",
    };
    if let Some(channel) = channel
        && let Err(error) = bot.api.post_ephemeral(channel, user, None, text).await
    {
        warn!(error = %format!("{error:#}"), "could not confirm the feedback");
    }
}

/// Shows the conversation starters of the agent for a new assistant
/// thread: the agent of the channel the user is looking at, or the default.
async fn suggest_prompts(bot: &Bot, value: Value) {
    let field = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(|field| field.as_str())
            .map(str::to_string)
    };
    let (Some(channel), Some(thread_ts)) = (field("/channel_id"), field("/thread_ts")) else {
        warn!("assistant thread without a channel or thread; no prompts shown");
        return;
    };
    let context_channel = field("/context/channel_id");
    let agents = &bot.app.agents;
    let agent = context_channel
        .as_deref()
        .and_then(|channel| agents.channel_default(channel))
        .unwrap_or_else(|| agents.default.clone());
    if agent.conversation_starters.is_empty() {
        return;
    }
    if let Some(user) = field("/user_id") {
        match bot
            .app
            .access
            .may_use(&agent, &user, context_channel.as_deref())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                warn!(error = %format!("{error:#}"), "could not check access for suggested prompts");
                return;
            }
        }
    }
    let title = format!("Ask {}", agent.title);
    if let Err(error) = bot
        .api
        .set_suggested_prompts(&channel, &thread_ts, &title, &agent.conversation_starters)
        .await
    {
        warn!(error = %format!("{error:#}"), "could not show suggested prompts");
    }
}

/// Answers `/agentdesk help`, `/agentdesk agents` and `/agentdesk usage`
/// from a `slash_commands` envelope's payload. Returns the response payload
/// for the ack, which Slack shows to the user only.
pub async fn handle_slash_command(bot: &Arc<Bot>, payload: Value) -> Value {
    let reply = match serde_json::from_value::<SlackCommandEvent>(payload) {
        Ok(event) => {
            let work = super::commands::reply(bot, &event);
            match tokio::time::timeout(COMMAND_DEADLINE, work).await {
                Ok(text) => text,
                Err(_) => {
                    warn!(command = %event.command, "slash command took too long; answered with a retry hint");
                    "That took too long; please try again in a moment.".to_string()
                }
            }
        }
        Err(error) => {
            warn!(error = %error, "Slack sent a slash command payload that could not be read");
            bot.app.metrics.event_dropped("malformed slash command");
            "Sorry, I could not read that command. Try `/agentdesk help`.".to_string()
        }
    };
    serde_json::json!({ "response_type": "ephemeral", "text": reply })
}

/// Slack drops a slash command whose ack takes over 3 seconds.
const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2_500);
