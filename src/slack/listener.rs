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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::client::SlackApi;
use super::events::{BotIdentity, IncomingMessage, Verdict, classify};
use super::reply::post_answer;
use super::text::decode_incoming;
use crate::app::{App, Question};
use crate::store::dedupe;
use crate::store::invocations::{self, Source};

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
    /// Cancelled when the shutdown grace period ends: from then on, running
    /// answers are marked interrupted and must not post.
    abandoned: CancellationToken,
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
            abandoned: CancellationToken::new(),
        }
    }

    /// Marks every answer still running as interrupted and tells each asker;
    /// called when the shutdown grace period is over.
    pub async fn abandon_in_flight(&self) {
        self.abandoned.cancel();
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
                        .post_in_thread(&flight.channel, &flight.thread_ts, &text)
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
        if let Ok(mut map) = self.in_flight.lock() {
            map.insert(invocation_id.to_string(), flight);
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
            post_or_log(bot, &message, text).await;
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

    if bot.abandoned.is_cancelled() {
        // Shutdown already marked this answer interrupted and said so.
        return;
    }
    let text = match result {
        Ok(answer) => answer.answer,
        Err(error) => {
            error!(error = %format!("{error:#}"), "question failed before it could be answered");
            format!(
                "Sorry, something went wrong while answering. An administrator can look up \
                 invocation {invocation_id}."
            )
        }
    };
    post_or_log(bot, &message, &text).await;
}

async fn post_or_log(bot: &Bot, message: &IncomingMessage, markdown: &str) {
    let max_chars = bot.app.settings.slack.max_message_chars;
    if let Err(error) = post_answer(
        &bot.api,
        &message.channel,
        message.reply_thread_ts(),
        markdown,
        max_chars,
    )
    .await
    {
        error!(error = %format!("{error:#}"), "could not post the answer to Slack");
    }
}

/// Acks interactive envelopes; buttons are not part of the bot yet.
pub async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let kind = serde_json::to_value(&event)
        .ok()
        .and_then(|value| {
            value
                .get("type")
                .and_then(|kind| kind.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    debug!(interaction = %kind, "interactive event acknowledged; no handler for it");
    Ok(())
}

/// Answers slash commands with how to ask a question.
pub async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    debug!(command = %event.command, "slash command received");
    Ok(SlackCommandEventResponse::new(
        SlackMessageContent::new().with_text(
            "Mention me in a channel or send me a direct message with your question about the \
         software catalog."
                .to_string(),
        ),
    ))
}

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
