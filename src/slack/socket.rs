//! The Socket Mode connections: opening them, reading envelopes, acking
//! them, and replacing connections that Slack closes or that go quiet.
//!
//! slack-morphism's own listener reconnects after every disconnect and has
//! no hook for the cases below, so this loop is written on
//! tokio-tungstenite. slack-morphism still provides the Web API client
//! (`apps.connections.open`) and the payload types.
//!
//! Each of the configured connections is a *slot* that keeps one socket
//! open:
//!
//! - `hello` marks the socket ready (counted in `/readyz` and `/metrics`).
//! - An envelope (`events_api`, `interactive`, `slash_commands`) is acked
//!   at once, before any work, and the work is spawned, so a slow answer
//!   never delays an ack. A slash command's ack carries its reply, which
//!   is computed within Slack's three seconds.
//! - `disconnect` with `warning` or `refresh_requested`: Slack will close
//!   the socket soon. A replacement is opened at once, and the old socket
//!   keeps being read (and acked) until Slack closes it, so no envelope
//!   sent in between is lost.
//! - `disconnect` with `link_disabled`: Socket Mode was turned off for the
//!   app. Every slot stops, and the log says how to fix it.
//! - `disconnect` with `too_many_websockets`: the app has more than Slack's
//!   ten connections across its processes. The slot waits
//!   `AGENTDESK_SOCKET_TOO_MANY_SECS` (plus jitter) instead of reconnecting
//!   at once, which would make the storm worse.
//! - A socket with no frame for `AGENTDESK_SOCKET_PING_SECS` gets a ping;
//!   with none for `AGENTDESK_SOCKET_SILENCE_SECS` it is replaced.
//! - Failures to open a connection (`apps.connections.open` errors, a
//!   failed handshake) back off exponentially from
//!   `AGENTDESK_SOCKET_RECONNECT_SECS` to `AGENTDESK_SOCKET_RECONNECT_MAX_SECS`
//!   with random jitter; a 429's `Retry-After` is honoured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use super::listener::{Bot, handle_events_api, handle_interactive, handle_slash_command};
use crate::config::SlackSettings;

/// Maximum wait for the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum wait at shutdown for slash command replies still being
/// computed: Slack drops a slash command that is not acked within 3 s.
const PENDING_REPLIES_WAIT: Duration = Duration::from_secs(3);

/// Timings of the connection loop, from the settings.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub connections: u32,
    pub stagger: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub too_many_sockets_delay: Duration,
    pub ping_interval: Duration,
    pub silence_timeout: Duration,
}

impl SocketOptions {
    pub fn from_settings(settings: &SlackSettings) -> Self {
        Self {
            connections: settings.socket_connections,
            stagger: settings.socket_stagger,
            reconnect_initial: settings.reconnect_delay,
            reconnect_max: settings.reconnect_max.max(settings.reconnect_delay),
            too_many_sockets_delay: settings.too_many_sockets_delay,
            ping_interval: settings.ping_interval.max(Duration::from_millis(50)),
            silence_timeout: settings.silence_timeout.max(Duration::from_millis(100)),
        }
    }
}

/// The running connections.
pub struct SocketPool {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl SocketPool {
    /// Closes every socket and waits until each slot has stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// State shared by the slots.
struct Shared {
    bot: Arc<Bot>,
    client: Arc<SlackHyperClient>,
    app_token: SlackApiToken,
    options: SocketOptions,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Set after Slack sent `link_disabled`, so no slot reconnects.
    disabled: AtomicBool,
}

/// Opens the configured number of connections, `stagger` apart.
pub fn start(
    bot: Arc<Bot>,
    client: Arc<SlackHyperClient>,
    app_token: SlackApiToken,
    options: SocketOptions,
) -> SocketPool {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let shared = Arc::new(Shared {
        bot,
        client,
        app_token,
        options,
        stop: stop.clone(),
        tasks: tasks.clone(),
        disabled: AtomicBool::new(false),
    });
    for slot in 0..shared.options.connections {
        let delay = shared.options.stagger * slot;
        spawn_slot(shared.clone(), slot, delay);
    }
    SocketPool { stop, tasks }
}

fn spawn_slot(shared: Arc<Shared>, slot: u32, delay: Duration) {
    let span = info_span!("socket", slot);
    let tasks = shared.tasks.clone();
    tasks.spawn(run_slot(shared, slot, delay).instrument(span));
}

/// The reason a connection ended.
enum Ended {
    /// Shutdown closed it.
    Stopped,
    /// Slack sent `link_disabled`.
    LinkDisabled,
    /// Slack sent `too_many_websockets`.
    TooManySockets,
    /// Slack asked for a new connection; a replacement is already open and
    /// this one was read until it closed.
    Replaced,
    /// No frame arrived within the silence timeout.
    Silent,
    /// The socket closed or failed.
    Closed(String),
}

/// Keeps one connection open until shutdown or `link_disabled`.
async fn run_slot(shared: Arc<Shared>, slot: u32, delay: Duration) {
    if sleep_or_stop(&shared, delay).await {
        return;
    }
    let mut failures: u32 = 0;
    loop {
        if shared.stop.is_cancelled() || shared.disabled.load(Ordering::SeqCst) {
            return;
        }
        let url = match open_url(&shared).await {
            Ok(url) => url,
            Err(retry_after) => {
                shared.bot.app.metrics.socket_connect("open_failed");
                let wait = retry_after.unwrap_or_else(|| backoff(&shared.options, failures));
                failures = failures.saturating_add(1);
                info!(
                    wait_ms = wait.as_millis() as u64,
                    failures, "waiting before the next Socket Mode connection attempt"
                );
                if sleep_or_stop(&shared, wait).await {
                    return;
                }
                continue;
            }
        };
        let connected =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(&url)).await;
        let socket = match connected {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(error)) => {
                warn!(error = %error, "the Socket Mode handshake failed");
                shared.bot.app.metrics.socket_connect("handshake_failed");
                let wait = backoff(&shared.options, failures);
                failures = failures.saturating_add(1);
                if sleep_or_stop(&shared, wait).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                warn!(
                    timeout_secs = HANDSHAKE_TIMEOUT.as_secs(),
                    "the Socket Mode handshake timed out"
                );
                shared.bot.app.metrics.socket_connect("handshake_failed");
                let wait = backoff(&shared.options, failures);
                failures = failures.saturating_add(1);
                if sleep_or_stop(&shared, wait).await {
                    return;
                }
                continue;
            }
        };
        shared.bot.app.metrics.socket_connect("connected");

        let (ended, said_hello) = run_connection(&shared, slot, socket).await;
        if said_hello {
            failures = 0;
        }
        match ended {
            Ended::Stopped | Ended::Replaced => return,
            Ended::LinkDisabled => {
                shared.disabled.store(true, Ordering::SeqCst);
                let reason = "Slack closed the connection with link_disabled: Socket Mode is \
                              turned off for this app. Turn it on under Socket Mode in the app \
                              settings (or reinstall the app from manifest.yml), then restart \
                              agentdesk";
                error!("{reason}; not reconnecting");
                if let Ok(mut stopped) = shared.bot.app.status.sockets_stopped.lock() {
                    *stopped = Some(reason.to_string());
                }
                // Wake the other slots from their waits.
                return;
            }
            Ended::TooManySockets => {
                let wait = with_jitter(shared.options.too_many_sockets_delay, 1.0, 1.5);
                warn!(
                    wait_ms = wait.as_millis() as u64,
                    "Slack closed the connection with too_many_websockets: the app has more \
                     than 10 Socket Mode connections across its processes; lower \
                     AGENTDESK_SOCKET_CONNECTIONS or the number of replicas. Waiting before \
                     reconnecting"
                );
                if sleep_or_stop(&shared, wait).await {
                    return;
                }
            }
            Ended::Silent => {
                warn!(
                    silence_secs = shared.options.silence_timeout.as_secs_f64(),
                    "the Socket Mode connection went silent; replacing it"
                );
            }
            Ended::Closed(why) => {
                let wait = if said_hello {
                    Duration::ZERO
                } else {
                    failures = failures.saturating_add(1);
                    backoff(&shared.options, failures - 1)
                };
                info!(
                    reason = %why,
                    wait_ms = wait.as_millis() as u64,
                    "the Socket Mode connection closed; reconnecting"
                );
                if sleep_or_stop(&shared, wait).await {
                    return;
                }
            }
        }
    }
}

/// Asks Slack for a Socket Mode URL. On failure, returns Slack's
/// `Retry-After` when it sent one.
async fn open_url(shared: &Shared) -> Result<String, Option<Duration>> {
    let session = shared.client.open_session(&shared.app_token);
    match session
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
    {
        Ok(response) => Ok(response.url.0.to_string()),
        Err(SlackClientError::RateLimitError(limit)) => {
            warn!(
                retry_after_ms = limit.retry_after.map(|wait| wait.as_millis() as u64),
                "apps.connections.open was rate-limited"
            );
            shared
                .bot
                .app
                .metrics
                .slack_api_error("apps.connections.open", "ratelimited");
            Err(limit.retry_after)
        }
        Err(error) => {
            let label = match &error {
                SlackClientError::ApiError(api) => api.code.clone(),
                SlackClientError::HttpError(http) => format!("http_{}", http.status_code.as_u16()),
                _ => "transport".to_string(),
            };
            warn!(error = %error, "apps.connections.open failed");
            shared
                .bot
                .app
                .metrics
                .slack_api_error("apps.connections.open", &label);
            Err(None)
        }
    }
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one socket until it ends. Returns why it ended and whether it
/// received `hello`.
async fn run_connection(shared: &Arc<Shared>, slot: u32, socket: WebSocket) -> (Ended, bool) {
    let (mut sink, mut stream) = socket.split();
    // Acks computed by spawned work (slash command replies) come back here,
    // so only this task writes to the socket.
    let (replies, mut outgoing) = mpsc::unbounded_channel::<Message>();
    let metrics = shared.bot.app.metrics.clone();
    let options = &shared.options;
    let mut said_hello = false;
    let connected_at = Instant::now();
    let mut last_frame = connected_at;
    let mut ticks = tokio::time::interval(options.ping_interval.min(options.silence_timeout));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set once a replacement was opened: read until Slack closes this one.
    let mut draining_since: Option<Instant> = None;

    let ended = loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                // Slash command replies still being computed would be lost
                // with the socket, and Slack would show their users an
                // error, so they are sent before the close.
                drop(replies);
                send_pending_replies(&mut sink, &mut outgoing).await;
                let _ = sink.send(Message::Close(None)).await;
                break Ended::Stopped;
            }
            Some(message) = outgoing.recv() => {
                if let Err(error) = sink.send(message).await {
                    break Ended::Closed(format!("write failed: {error}"));
                }
            }
            frame = stream.next() => {
                let frame = match frame {
                    None => break Ended::Closed("closed by Slack".to_string()),
                    Some(Err(error)) => break Ended::Closed(format!("read failed: {error}")),
                    Some(Ok(frame)) => frame,
                };
                last_frame = Instant::now();
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Ping(payload) => {
                        if let Err(error) = sink.send(Message::Pong(payload)).await {
                            break Ended::Closed(format!("write failed: {error}"));
                        }
                        continue;
                    }
                    Message::Close(_) => break Ended::Closed("closed by Slack".to_string()),
                    _ => continue,
                };
                match read_frame(shared, text.as_str(), &replies) {
                    Frame::Hello => {
                        if !said_hello {
                            said_hello = true;
                            metrics.socket_opened();
                        }
                    }
                    Frame::Ack(ack, label) => {
                        if let Err(error) = sink.send(Message::text(ack)).await {
                            break Ended::Closed(format!("write failed: {error}"));
                        }
                        shared.bot.app.metrics.event_acked(label);
                    }
                    Frame::Disconnect(reason) => match reason.as_str() {
                        "link_disabled" => break Ended::LinkDisabled,
                        "too_many_websockets" => break Ended::TooManySockets,
                        // A connection Slack never readied counts as a
                        // failed attempt, so repeated early disconnects
                        // back off instead of reconnecting at once.
                        _ if !said_hello => {
                            let _ = sink.send(Message::Close(None)).await;
                            break Ended::Closed(format!("Slack sent disconnect ({reason}) before hello"));
                        }
                        _ if draining_since.is_none() => {
                            info!(reason = %reason, "Slack asked for a new connection; opening it and reading this one until it closes");
                            draining_since = Some(Instant::now());
                            spawn_slot(shared.clone(), slot, Duration::ZERO);
                        }
                        _ => {}
                    },
                    Frame::Nothing => {}
                }
            }
            _ = ticks.tick() => {
                let quiet = last_frame.elapsed();
                if let Some(since) = draining_since
                    && since.elapsed() >= options.silence_timeout
                {
                    let _ = sink.send(Message::Close(None)).await;
                    break Ended::Replaced;
                }
                if quiet >= options.silence_timeout {
                    break Ended::Silent;
                }
                // Pongs keep a socket without `hello` from going silent, but
                // Slack sends no envelope on it, so it counts as a failed
                // attempt.
                if !said_hello && connected_at.elapsed() >= options.silence_timeout {
                    break Ended::Closed("no hello from Slack".to_string());
                }
                if quiet >= options.ping_interval
                    && let Err(error) = sink.send(Message::Ping(Vec::new().into())).await
                {
                    break Ended::Closed(format!("ping failed: {error}"));
                }
            }
        }
    };
    if said_hello {
        metrics.socket_closed();
    }
    let ended = match ended {
        // A draining socket that closes was replaced, not lost.
        Ended::Closed(_) | Ended::Silent if draining_since.is_some() => Ended::Replaced,
        other => other,
    };
    (ended, said_hello)
}

/// Sends the slash command replies that spawned work still computes, until
/// every reply is sent or [`PENDING_REPLIES_WAIT`] passes. Returns at once
/// when none is pending, because each reply task owns a sender of
/// `outgoing` and the caller has dropped its own.
async fn send_pending_replies(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    outgoing: &mut mpsc::UnboundedReceiver<Message>,
) {
    let deadline = Instant::now() + PENDING_REPLIES_WAIT;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, outgoing.recv()).await {
        if let Err(error) = sink.send(reply).await {
            warn!(error = %error, "could not send a slash command reply during shutdown");
            return;
        }
    }
}

/// The loop's next step after one text frame.
enum Frame {
    Hello,
    /// An ack frame to send now, and the envelope type to count it under
    /// once it is written.
    Ack(String, &'static str),
    Disconnect(String),
    Nothing,
}

/// A Socket Mode frame as read from its text.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedFrame {
    Hello {
        num_connections: Option<u64>,
    },
    Disconnect {
        reason: String,
    },
    /// An envelope to ack: `kind` is `events_api`, `interactive`,
    /// `slash_commands` or another type Slack may add.
    Envelope {
        envelope_id: String,
        kind: String,
        payload: Value,
    },
    /// A frame that is not JSON, or has no envelope id to ack; the reason
    /// is a short label for logs and metrics.
    Ignored {
        reason: &'static str,
    },
}

/// Reads a text frame. Any text gives a result; property tests check that
/// none panics.
pub fn parse_frame(text: &str) -> ParsedFrame {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return ParsedFrame::Ignored {
            reason: "malformed_frame",
        };
    };
    let kind = frame.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "hello" => {
            return ParsedFrame::Hello {
                num_connections: frame.get("num_connections").and_then(Value::as_u64),
            };
        }
        "disconnect" => {
            return ParsedFrame::Disconnect {
                reason: frame
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
            };
        }
        _ => {}
    }
    match frame
        .get("envelope_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        Some(envelope_id) => ParsedFrame::Envelope {
            envelope_id: envelope_id.to_string(),
            kind: kind.to_string(),
            payload: frame.get("payload").cloned().unwrap_or(Value::Null),
        },
        None => ParsedFrame::Ignored {
            reason: "no_envelope_id",
        },
    }
}

/// Reads a text frame: hands envelopes to the listener and returns their
/// ack. A frame that cannot be read is logged, counted and, when it has an
/// envelope id, acked so Slack does not send it again.
fn read_frame(shared: &Arc<Shared>, text: &str, replies: &mpsc::UnboundedSender<Message>) -> Frame {
    let bot = &shared.bot;
    let metrics = &bot.app.metrics;
    let (envelope_id, kind, payload) = match parse_frame(text) {
        ParsedFrame::Hello { num_connections } => {
            info!(num_connections, "Socket Mode connection ready");
            return Frame::Hello;
        }
        ParsedFrame::Disconnect { reason } => {
            info!(reason = %reason, "Slack sent disconnect");
            return Frame::Disconnect(reason);
        }
        ParsedFrame::Ignored { reason } => {
            warn!(reason, bytes = text.len(), "Socket Mode frame ignored");
            metrics.event_dropped(reason);
            return Frame::Nothing;
        }
        ParsedFrame::Envelope {
            envelope_id,
            kind,
            payload,
        } => (envelope_id, kind, payload),
    };
    let label = match kind.as_str() {
        "events_api" => "events_api",
        "interactive" => "interactive",
        "slash_commands" => "slash_commands",
        _ => "unknown",
    };
    metrics.event_received(label);
    let ack = json!({ "envelope_id": envelope_id }).to_string();

    match kind.as_str() {
        "events_api" => {
            handle_events_api(bot, payload);
            Frame::Ack(ack, label)
        }
        "interactive" => {
            handle_interactive(bot, payload);
            Frame::Ack(ack, label)
        }
        "slash_commands" => {
            // The reply goes in the ack, so the ack waits for it; the
            // listener bounds the wait well under Slack's three seconds.
            let worker = bot.clone();
            let replies = replies.clone();
            let metrics = metrics.clone();
            bot.tasks.spawn(async move {
                let response = handle_slash_command(&worker, payload).await;
                let ack = json!({ "envelope_id": envelope_id, "payload": response }).to_string();
                if replies.send(Message::text(ack)).is_ok() {
                    metrics.event_acked("slash_commands");
                } else {
                    warn!("the connection closed before the slash command reply was sent");
                }
            });
            Frame::Nothing
        }
        other => {
            warn!(
                frame_type = other,
                "Socket Mode envelope of an unknown type; acked and dropped"
            );
            metrics.event_dropped("unknown_envelope_type");
            Frame::Ack(ack, label)
        }
    }
}

/// Waits, or returns true at once when shutdown or `link_disabled` stops
/// the slots.
async fn sleep_or_stop(shared: &Shared, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if shared.disabled.load(Ordering::SeqCst) {
            return true;
        }
        let step = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        if step.is_zero() {
            return shared.stop.is_cancelled();
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return true,
            _ = tokio::time::sleep(step) => {}
        }
    }
}

/// Computes the wait after `failures` failed attempts: the initial delay
/// doubled per failure and capped, times a random factor from 0.5 to 1.0,
/// so replicas that failed together do not retry together.
fn backoff(options: &SocketOptions, failures: u32) -> Duration {
    let base = options
        .reconnect_initial
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(options.reconnect_max);
    with_jitter(base, 0.5, 1.0)
}

/// Multiplies a duration by a random factor in `[low, high)`.
fn with_jitter(duration: Duration, low: f64, high: f64) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
    duration.mul_f64(low + (high - low) * random)
}
