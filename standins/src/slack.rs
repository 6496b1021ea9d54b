//! A stand-in for Slack on 127.0.0.1: the Web API over HTTP and Socket Mode
//! over WebSocket, speaking the wire formats that slack-morphism 2.31.1 sends
//! and parses.
//!
//! A test starts a [`SlackStandin`], points the product's Slack client at
//! [`SlackStandin::api_url`] and gives it [`SlackStandin::BOT_TOKEN`] and
//! [`SlackStandin::APP_TOKEN`]. The product then finds the Socket Mode URL
//! itself through `apps.connections.open`, as it would against Slack.
//!
//! Terms used below:
//!
//! - A *socket* is one open Socket Mode connection, named by an index that
//!   counts up from 0 in the order connections were accepted.
//! - An *envelope* is a Socket Mode frame that carries an `envelope_id`
//!   (`events_api`, `interactive`, `slash_commands`); the test pushes it to a
//!   socket and the client must reply with an *ack* frame on that socket.
//! - A *call* is one Web API request; a *post* is a call that wrote a message
//!   (`chat.postMessage`, `chat.update`, `chat.postEphemeral`).
//!
//! The stand-in records calls, posts, acks and every frame the client sends,
//! and tests wait on those records with a timeout. Faults (rate limits, Slack
//! errors, HTTP errors, closed sockets, `disconnect` frames) are injected on
//! demand. Ids match the Socket Mode fixtures: team `T0TEAM0001`, app
//! `A0APP00001`, bot user `U0BOT00001`, bot `B0BOT00001`.

mod envelopes;
mod socket_mode;
mod web_api;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use envelopes::{as_redelivery, with_fresh_ids};

use socket_mode::SocketModeState;
use web_api::WebApiState;

/// A running stand-in for Slack.
///
/// Dropping it stops both servers and closes every open socket.
pub struct SlackStandin {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    /// Every server task watches the receiving side and stops when a value
    /// arrives or this sender is dropped.
    shutdown: watch::Sender<()>,
}

/// An ack frame the client sent for an envelope that this stand-in sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    pub envelope_id: String,
    /// The `payload` of the ack frame, present only for responses such as a
    /// slash command reply or a `view_submission` `response_action`.
    pub payload: Option<Value>,
    /// Index of the socket the ack arrived on.
    pub socket: usize,
    /// Time from queueing the envelope on its socket to receiving the ack.
    pub latency: Duration,
}

/// A text frame the client sent on a socket, acks included.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFrame {
    pub socket: usize,
    /// The frame parsed as JSON, or the raw text as a JSON string when it
    /// does not parse.
    pub frame: Value,
}

/// One Web API request, recorded before faults and token checks apply.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiCall {
    /// The Slack method name, such as `chat.postMessage`.
    pub method: String,
    /// Query string, form fields and JSON body merged into one JSON object.
    /// Form and query values stay strings, and the `token` field is removed.
    pub params: Value,
    /// The token from `Authorization: Bearer`, or else from a `token` field.
    pub token: Option<String>,
}

/// A message that a successful `chat.postMessage`, `chat.update` or
/// `chat.postEphemeral` call wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct PostedMessage {
    pub method: String,
    pub channel: String,
    /// The new message's ts, the updated message's ts for `chat.update`, or
    /// the `message_ts` returned by `chat.postEphemeral`.
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: Option<String>,
    /// The `blocks` array, parsed from a JSON string when sent as a form field.
    pub blocks: Option<Value>,
    /// The recipient of an ephemeral message.
    pub user: Option<String>,
}

/// A failure that the next call to one Web API method returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 200 with `{"ok":false,"error":<code>}`.
    SlackError(String),
    /// The given HTTP status with `{"ok":false,"error":"internal_error"}`.
    Http(u16),
}

/// State shared by the public handle and the server tasks.
///
/// Each part has its own std mutex, held only for short synchronous updates
/// and never across an await, so the HTTP and WebSocket tasks do not wait on
/// each other.
struct Shared {
    ws_addr: SocketAddr,
    web_api: Mutex<WebApiState>,
    socket_mode: Mutex<SocketModeState>,
    /// Counts message timestamps handed out by `chat.*` methods.
    ts_counter: AtomicU64,
    /// Bumped after every change to the records, so waiters re-check.
    changes: watch::Sender<u64>,
}

impl SlackStandin {
    /// Bot token (`xoxb-`) for every Web API method except
    /// `apps.connections.open`.
    pub const BOT_TOKEN: &'static str = "xoxb-standin-bot";
    /// App-level token (`xapp-`) that `apps.connections.open` requires.
    pub const APP_TOKEN: &'static str = "xapp-standin-app";
    pub const TEAM_ID: &'static str = "T0TEAM0001";
    pub const TEAM_NAME: &'static str = "Acme";
    pub const APP_ID: &'static str = "A0APP00001";
    pub const BOT_USER_ID: &'static str = "U0BOT00001";
    pub const BOT_ID: &'static str = "B0BOT00001";
    /// The bot user's name, as `auth.test` returns it.
    pub const BOT_NAME: &'static str = "agentdesk";

    /// Binds the Web API and the Socket Mode server on two ports of
    /// 127.0.0.1 chosen by the system, and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let api_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the Web API listener on 127.0.0.1")?;
        let ws_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the Socket Mode listener on 127.0.0.1")?;
        let api_addr = api_listener.local_addr()?;
        let ws_addr = ws_listener.local_addr()?;

        let shared = Arc::new(Shared {
            ws_addr,
            web_api: Mutex::new(WebApiState::new()),
            socket_mode: Mutex::new(SocketModeState::default()),
            ts_counter: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        });
        let (shutdown, shutdown_signal) = watch::channel(());

        tokio::spawn(web_api::serve(
            api_listener,
            shared.clone(),
            shutdown_signal.clone(),
        ));
        tokio::spawn(socket_mode::serve(
            ws_listener,
            shared.clone(),
            shutdown_signal,
        ));
        tracing::debug!(%api_addr, %ws_addr, "slack stand-in started");

        Ok(Self {
            shared,
            api_addr,
            shutdown,
        })
    }

    /// Returns the Web API base URL without a trailing slash, such as
    /// `http://127.0.0.1:4242/api`.
    ///
    /// slack-morphism joins the base and the method name with a `/`, as in
    /// its default `https://slack.com/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.api_addr)
    }

    /// Waits until at least `count` sockets are open.
    pub async fn wait_for_sockets(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let found = self
            .shared
            .wait_until(timeout, || (self.open_sockets() >= count).then_some(()))
            .await;
        if found.is_none() {
            bail!(
                "timed out after {timeout:?} waiting for {count} open sockets; {} are open",
                self.open_sockets()
            );
        }
        Ok(())
    }

    /// Waits until no socket is open, for example after the client shut down.
    pub async fn wait_for_sockets_closed(&self, timeout: Duration) -> anyhow::Result<()> {
        let found = self
            .shared
            .wait_until(timeout, || (self.open_sockets() == 0).then_some(()))
            .await;
        if found.is_none() {
            bail!(
                "timed out after {timeout:?} waiting for all sockets to close; {} are open",
                self.open_sockets()
            );
        }
        Ok(())
    }

    /// Returns how many sockets are open now.
    pub fn open_sockets(&self) -> usize {
        self.shared.socket_mode().open_sockets().len()
    }

    /// Returns the indexes of the open sockets in ascending order. A
    /// reconnect shows up as a new, higher index.
    pub fn open_socket_ids(&self) -> Vec<usize> {
        self.shared.socket_mode().open_sockets()
    }

    /// Sends an envelope to the next open socket in round-robin order, as
    /// Slack spreads envelopes over an app's sockets, and returns that
    /// socket's index.
    ///
    /// Fails when no socket is open or the envelope has no `envelope_id`.
    pub async fn send_envelope(&self, envelope: Value) -> anyhow::Result<usize> {
        let envelope_id = envelope_id_of(&envelope)?;
        let frame = envelope.to_string();
        self.shared
            .socket_mode()
            .send_round_robin(envelope_id, frame)
    }

    /// Sends an envelope to one socket and starts the clock for its ack.
    pub async fn send_envelope_to(&self, socket: usize, envelope: Value) -> anyhow::Result<()> {
        let envelope_id = envelope_id_of(&envelope)?;
        let frame = envelope.to_string();
        self.shared
            .socket_mode()
            .send(socket, Some(envelope_id), frame)
    }

    /// Sends any frame to one socket, such as a `disconnect` frame.
    pub async fn send_frame_to(&self, socket: usize, frame: Value) -> anyhow::Result<()> {
        self.shared
            .socket_mode()
            .send(socket, None, frame.to_string())
    }

    /// Makes one socket go silent: the stand-in stops reading and writing on
    /// it and answers no pings, but keeps the TCP connection open, so only a
    /// client that watches for silence notices. The socket still counts as
    /// open. Returns false for an index that is not open.
    pub fn silence_socket(&self, socket: usize) -> bool {
        self.shared.socket_mode().silence(socket)
    }

    /// Makes the next socket that opens send no `hello`, as a Slack that
    /// accepts the connection but never readies it. It still replies to pings.
    pub fn withhold_next_hello(&self) {
        self.shared.socket_mode().withhold_next_hello = true;
    }

    /// Closes one socket from the server side with a WebSocket close frame.
    /// The socket stops counting as open at once. An unknown index is ignored.
    pub async fn close_socket(&self, socket: usize) {
        self.shared.socket_mode().close(socket);
        self.shared.notify();
    }

    /// Waits for the first ack of an envelope that this stand-in sent.
    ///
    /// An envelope sent twice with the same id matches the first ack, so
    /// resend fixtures through [`with_fresh_ids`] to tell the deliveries apart.
    pub async fn wait_for_ack(&self, envelope_id: &str, timeout: Duration) -> anyhow::Result<Ack> {
        let found = self
            .shared
            .wait_until(timeout, || self.shared.socket_mode().find_ack(envelope_id))
            .await;
        found.with_context(|| {
            format!("timed out after {timeout:?} waiting for the ack of envelope {envelope_id}")
        })
    }

    /// Returns the acks of envelopes sent by this stand-in, in arrival order.
    /// An ack naming an envelope id that was never sent appears only in
    /// [`SlackStandin::client_frames`].
    pub fn acks(&self) -> Vec<Ack> {
        self.shared.socket_mode().acks.clone()
    }

    /// Returns every text frame the client sent, in arrival order.
    pub fn client_frames(&self) -> Vec<ClientFrame> {
        self.shared.socket_mode().frames.clone()
    }

    /// Waits until at least `count` messages were posted and returns all
    /// posts so far.
    pub async fn wait_for_posts(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<PostedMessage>> {
        let found = self
            .shared
            .wait_until(timeout, || {
                let state = self.shared.web_api();
                (state.posts.len() >= count).then(|| state.posts.clone())
            })
            .await;
        found.with_context(|| {
            format!(
                "timed out after {timeout:?} waiting for {count} posts; got {:?}",
                self.posts()
            )
        })
    }

    /// Returns the messages written so far, in call order.
    pub fn posts(&self) -> Vec<PostedMessage> {
        self.shared.web_api().posts.clone()
    }

    /// Waits until `method` was called at least `count` times and returns
    /// those calls.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ApiCall>> {
        let count_calls = || self.shared.web_api().count_calls(method);
        let found = self
            .shared
            .wait_until(timeout, || {
                (count_calls() >= count).then(|| self.shared.web_api().calls_of(method))
            })
            .await;
        found.with_context(|| {
            format!(
                "timed out after {timeout:?} waiting for {count} {method} calls; got {}",
                count_calls()
            )
        })
    }

    /// Returns every Web API call so far, in arrival order.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.shared.web_api().calls.clone()
    }

    /// Makes the next call to `method` fail with `fault`. Faults for one
    /// method queue up and are used one per call.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.shared
            .web_api()
            .faults
            .entry(method.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Adds or replaces the user that `users.info` returns for `user["id"]`.
    /// The bot user and the fixture users `U0ALICE001` and `U0BOB00002` are
    /// present from the start.
    ///
    /// # Panics
    ///
    /// Panics when `user` has no string `id`, which is a mistake in the test.
    pub fn set_user(&self, user: Value) {
        let id = user["id"]
            .as_str()
            .unwrap_or_else(|| panic!("set_user needs a user with a string id, got {user}"))
            .to_owned();
        self.shared.web_api().users.insert(id, user);
    }

    /// Adds or replaces a user group, so `usergroups.users.list` returns
    /// `users` for `id` (an ID such as `S0ONCALL01`). No group exists at
    /// the start.
    pub fn set_usergroup(&self, id: &str, users: &[&str]) {
        let users = users.iter().map(|user| (*user).to_owned()).collect();
        self.shared
            .web_api()
            .usergroups
            .insert(id.to_owned(), users);
    }

    /// Adds a message to a channel's history, so `conversations.replies`
    /// returns it and `chat.update` finds it. `chat.postMessage` adds the
    /// bot's own messages, so this is for user messages and for bot messages
    /// that a fixture refers to.
    ///
    /// # Panics
    ///
    /// Panics when `message` has no string `ts`, which is a mistake in the test.
    pub fn add_message(&self, channel: &str, message: Value) {
        assert!(
            message["ts"].is_string(),
            "add_message needs a message with a string ts, got {message}"
        );
        self.shared.web_api().add_message(channel, message);
    }
}

impl Drop for SlackStandin {
    fn drop(&mut self) {
        self.shutdown.send_replace(());
    }
}

impl Shared {
    fn web_api(&self) -> MutexGuard<'_, WebApiState> {
        lock(&self.web_api)
    }

    fn socket_mode(&self) -> MutexGuard<'_, SocketModeState> {
        lock(&self.socket_mode)
    }

    /// Wakes every waiter so it re-checks its condition.
    fn notify(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Returns a fresh message timestamp: "1717180000.000100", then
    /// "1717180000.000200" and so on, always increasing and fixed-width so
    /// that string order is time order.
    fn next_ts(&self) -> String {
        const FIRST_SECOND: u64 = 1_717_180_000;
        const STEP_MICROS: u64 = 100;

        let count = self.ts_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let micros = count * STEP_MICROS;
        format!(
            "{}.{:06}",
            FIRST_SECOND + micros / 1_000_000,
            micros % 1_000_000
        )
    }

    /// Re-checks `check` after every change until it returns a value or the
    /// timeout passes. Subscribing before the first check means no change
    /// between the check and the wait is missed.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = check() {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return check();
            }
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// the records stay usable for the test that reports the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn envelope_id_of(envelope: &Value) -> anyhow::Result<String> {
    envelope["envelope_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the envelope has no string envelope_id: {envelope}"))
}

/// Decodes `application/x-www-form-urlencoded` text, as used in query
/// strings and form bodies, into name and value pairs. Invalid percent
/// escapes are kept as written.
fn parse_urlencoded(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[index], escaped) {
            (_, Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                index += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
