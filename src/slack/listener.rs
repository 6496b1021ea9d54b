//! The Socket Mode callbacks and the work they hand off.
//!
//! slack-morphism sends an envelope's ack only after its callback returns
//! and reads no further frame on that socket meanwhile, so each callback
//! only judges the event (no I/O) and spawns the real work: dedupe in the
//! database, the agent run, the reply. One slow answer therefore never
//! delays another envelope's ack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slack_morphism::errors::SlackClientError;
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
}

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
        }
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

async fn bot_from(states: &SlackClientEventsUserState) -> Option<Arc<Bot>> {
    states.read().await.get_user_state::<Arc<Bot>>().cloned()
}

/// Handles an Events API envelope: judge it, and spawn the answer.
pub async fn on_push_event(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let Some(bot) = bot_from(&states).await else {
        error!("the Slack listener has no bot state; event dropped");
        return Ok(());
    };

    let body = match &event.event {
        SlackEventCallbackBody::Unknown(raw) => {
            let event_type = raw
                .get("type")
                .and_then(|value| value.as_str())
                .unwrap_or("?");
            info!(event_type, event_id = %event.event_id, "event the Slack library could not type; judging it from its JSON");
            raw.clone()
        }
        typed => match serde_json::to_value(typed) {
            Ok(value) => value,
            Err(error) => {
                warn!(event_id = %event.event_id, error = %error, "could not read a Slack event; event dropped");
                return Ok(());
            }
        },
    };

    let event_id = event.event_id.to_string();
    let team_id = event.team_id.to_string();
    if let SlackEventCallbackBody::AssistantThreadStarted(started) = &event.event {
        let worker = bot.clone();
        let thread = started.assistant_thread.clone();
        bot.tasks
            .spawn(async move { suggest_prompts(&worker, thread).await });
        return Ok(());
    }
    match classify(&body, Some(&event_id), Some(&team_id), &bot.identity) {
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
            let event_type = body
                .get("type")
                .and_then(|value| value.as_str())
                .unwrap_or("?");
            debug!(event_id = %event_id, event_type, reason, "event ignored");
        }
    }
    Ok(())
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
            return;
        }
        Err(error) => {
            error!(error = %format!("{error:#}"), "could not check for duplicate delivery; not answering");
            let text = "I can't reach my database right now, so I can't answer. Please try again in a few minutes.";
            post_or_log(bot, &message, text, None).await;
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
        Err(error) => {
            error!(error = %format!("{error:#}"), "question failed before it could be answered");
            // The invocation may not have been recorded, so no id is shown;
            // the log line carries it.
            let text = "Sorry, something went wrong while answering. Please try again in a \
                        moment.";
            post_or_log(bot, &message, text, None).await;
        }
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

/// Handles button clicks: acks at once and records feedback in a spawned
/// task, like every other piece of work.
pub async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let SlackInteractionEvent::BlockActions(click) = event else {
        debug!("interactive event acknowledged; no handler for its type");
        return Ok(());
    };
    let Some(bot) = bot_from(&states).await else {
        error!("the Slack listener has no bot state; click dropped");
        return Ok(());
    };
    let Some(user) = click.user.as_ref().map(|user| user.id.to_string()) else {
        warn!("button click without a user; dropped");
        return Ok(());
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
    Ok(())
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
async fn suggest_prompts(bot: &Bot, thread: SlackAssistantThread) {
    let value = serde_json::to_value(&thread).unwrap_or_default();
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
/// in the ack itself, which Slack shows to the user only.
pub async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let reply = match bot_from(&states).await {
        Some(bot) => {
            let work = super::commands::reply(&bot, &event);
            match tokio::time::timeout(COMMAND_DEADLINE, work).await {
                Ok(text) => text,
                Err(_) => {
                    warn!(command = %event.command, "slash command took too long; answered with a retry hint");
                    "That took too long; please try again in a moment.".to_string()
                }
            }
        }
        None => "agentdesk is starting up; please try again in a moment.".to_string(),
    };
    Ok(
        SlackCommandEventResponse::new(SlackMessageContent::new().with_text(reply))
            .with_response_type(SlackMessageResponseType::Ephemeral),
    )
}

/// Slack drops a slash command whose ack takes over 3 seconds.
const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2_500);

/// Logs each new Socket Mode connection. Generic because slack-morphism
/// does not export its hello event type; it is read through serde.
pub async fn on_hello<Hello: serde::Serialize>(
    event: Hello,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) {
    let hello = serde_json::to_value(&event).unwrap_or_default();
    info!(
        num_connections = hello
            .get("num_connections")
            .and_then(|count| count.as_u64()),
        "Socket Mode connection ready"
    );
}

/// Logs errors from the listener, such as a payload that does not parse,
/// and lets the envelope be acked: a malformed payload never parses better
/// on redelivery.
pub fn on_listener_error(
    error: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    match error.downcast_ref::<SlackClientError>() {
        Some(SlackClientError::ProtocolError(protocol)) => {
            let size = protocol.json_body.as_ref().map_or(0, String::len);
            warn!(
                error = %protocol.json_error,
                payload_bytes = size,
                "Slack sent a payload that could not be read; acknowledged and dropped"
            );
            debug!(payload = ?protocol.json_body, "unreadable Slack payload");
        }
        _ => warn!(error = %error, "Slack listener error"),
    }
    HttpStatusCode::OK
}
