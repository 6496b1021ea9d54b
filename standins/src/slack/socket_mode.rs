//! The Socket Mode side of the stand-in: one-shot connection tickets, the
//! WebSocket server, and one task per socket that writes queued frames and
//! records what the client sends.
//!
//! Each open socket has an unbounded queue of outgoing text frames. Removing
//! the queue's sender from [`SocketModeState`] closes the socket once the
//! frames queued before are written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, Uri};

use super::{Ack, ClientFrame, Shared, SlackStandin, parse_urlencoded};

/// Sockets, tickets and what the client sent over them.
#[derive(Default)]
pub(super) struct SocketModeState {
    /// Tickets issued by `apps.connections.open` and not used yet.
    tickets: HashSet<String>,
    /// Outgoing frame queues of the open sockets, by socket index.
    sockets: BTreeMap<usize, mpsc::UnboundedSender<String>>,
    /// Switches that make an open socket go silent, by socket index.
    silencers: HashMap<usize, watch::Sender<bool>>,
    next_socket: usize,
    /// The lowest socket index that round robin picks next.
    round_robin: usize,
    /// Whether the next socket to open gets no `hello` frame.
    pub(super) withhold_next_hello: bool,
    /// When each envelope still waiting for its first ack was queued.
    sent_at: HashMap<String, Instant>,
    pub(super) frames: Vec<ClientFrame>,
    pub(super) acks: Vec<Ack>,
    /// Position in `acks` of the first ack of each envelope id.
    first_ack: HashMap<String, usize>,
}

impl SocketModeState {
    /// Issues a ticket for one connection and returns the Socket Mode URL
    /// that carries it.
    pub(super) fn issue_url(&mut self, ws_addr: std::net::SocketAddr) -> String {
        let ticket = uuid::Uuid::new_v4().to_string();
        let url = format!(
            "ws://{ws_addr}/link/?ticket={ticket}&app_id={}",
            SlackStandin::APP_ID
        );
        self.tickets.insert(ticket);
        url
    }

    /// Uses up the ticket in a connection request. Returns whether the
    /// request carried a ticket that was issued and not used yet.
    fn take_ticket(&mut self, uri: &Uri) -> bool {
        if !uri.path().starts_with("/link") {
            return false;
        }
        let query = uri.query().unwrap_or_default();
        parse_urlencoded(query)
            .into_iter()
            .find(|(name, _)| name == "ticket")
            .is_some_and(|(_, ticket)| self.tickets.remove(&ticket))
    }

    /// Registers a new socket and queues its `hello` frame ahead of any
    /// envelope, unless the hello is withheld. Returns the socket's index.
    fn register(
        &mut self,
        queue: mpsc::UnboundedSender<String>,
        silencer: watch::Sender<bool>,
    ) -> usize {
        let socket = self.next_socket;
        self.next_socket += 1;
        self.silencers.insert(socket, silencer);

        let hello = hello_frame(self.sockets.len() + 1);
        if !std::mem::take(&mut self.withhold_next_hello) {
            // The caller owns the receiver, so the queue is open.
            let _ = queue.send(hello.to_string());
        }
        self.sockets.insert(socket, queue);
        socket
    }

    pub(super) fn open_sockets(&self) -> Vec<usize> {
        self.sockets.keys().copied().collect()
    }

    /// Queues an envelope on the next open socket in round-robin order and
    /// returns that socket's index.
    pub(super) fn send_round_robin(
        &mut self,
        envelope_id: String,
        frame: String,
    ) -> anyhow::Result<usize> {
        let socket = self
            .sockets
            .range(self.round_robin..)
            .chain(self.sockets.range(..self.round_robin))
            .map(|(socket, _)| *socket)
            .next()
            .context("no Socket Mode socket is open")?;
        self.round_robin = socket + 1;
        self.send(socket, Some(envelope_id), frame)?;
        Ok(socket)
    }

    /// Queues a frame on one socket. With an envelope id, the ack clock
    /// starts now, unless an earlier send of the same id is still unacked.
    pub(super) fn send(
        &mut self,
        socket: usize,
        envelope_id: Option<String>,
        frame: String,
    ) -> anyhow::Result<()> {
        let queue = self
            .sockets
            .get(&socket)
            .with_context(|| format!("Socket Mode socket {socket} is not open"))?;
        queue
            .send(frame)
            .map_err(|_| anyhow!("Socket Mode socket {socket} is closing"))?;
        if let Some(envelope_id) = envelope_id {
            self.sent_at.entry(envelope_id).or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Closes a socket after the frames already queued on it.
    pub(super) fn close(&mut self, socket: usize) {
        self.sockets.remove(&socket);
        self.silencers.remove(&socket);
    }

    /// Makes a socket go silent: it stops reading, writing and answering
    /// pings, but the TCP connection stays open, as a connection behind a
    /// dead proxy does. Returns false for a socket that is not open.
    pub(super) fn silence(&mut self, socket: usize) -> bool {
        match self.silencers.get(&socket) {
            Some(silencer) => silencer.send(true).is_ok(),
            None => false,
        }
    }

    /// Records a text frame from the client. A JSON object whose
    /// `envelope_id` names an unacked envelope also becomes an [`Ack`].
    fn record_frame(&mut self, socket: usize, text: &str) {
        let frame = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        let sent_at = frame["envelope_id"]
            .as_str()
            .and_then(|envelope_id| self.sent_at.remove_entry(envelope_id));
        if let Some((envelope_id, sent_at)) = sent_at {
            self.first_ack
                .entry(envelope_id.clone())
                .or_insert(self.acks.len());
            self.acks.push(Ack {
                envelope_id,
                payload: frame.get("payload").cloned(),
                socket,
                latency: sent_at.elapsed(),
            });
        }
        self.frames.push(ClientFrame { socket, frame });
    }

    pub(super) fn find_ack(&self, envelope_id: &str) -> Option<Ack> {
        let position = *self.first_ack.get(envelope_id)?;
        self.acks.get(position).cloned()
    }
}

/// Builds a `hello` frame shaped like Slack's, which the client reads first.
fn hello_frame(num_connections: usize) -> Value {
    json!({
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {
            "host": "applink-standin",
            "build_number": 10,
            // About 5 hours, the value in the hello fixture.
            "approximate_connection_time": 18060
        },
        "connection_info": { "app_id": SlackStandin::APP_ID }
    })
}

/// Accepts WebSocket connections until shutdown.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_socket(stream, shared.clone(), shutdown.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "socket mode accept failed");
                // Errors such as running out of file descriptors repeat at
                // once; pausing keeps the loop from spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs one socket from the handshake to the close.
// tungstenite fixes the handshake callback's error type, a full HTTP response.
#[allow(clippy::result_large_err)]
async fn serve_socket(stream: TcpStream, shared: Arc<Shared>, shutdown: watch::Receiver<()>) {
    let handshake_shared = shared.clone();
    let check_ticket = move |request: &Request, response: Response| {
        if handshake_shared.socket_mode().take_ticket(request.uri()) {
            Ok(response)
        } else {
            Err(reject_ticket())
        }
    };
    let websocket = match tokio_tungstenite::accept_hdr_async(stream, check_ticket).await {
        Ok(websocket) => websocket,
        Err(error) => {
            tracing::debug!(%error, "socket mode handshake failed");
            return;
        }
    };

    let (queue, outgoing) = mpsc::unbounded_channel();
    let (silencer, silenced) = watch::channel(false);
    let socket = shared.socket_mode().register(queue, silencer);
    shared.notify();
    tracing::debug!(socket, "socket mode connection opened");

    exchange_frames(websocket, socket, outgoing, &shared, shutdown, silenced).await;

    shared.socket_mode().close(socket);
    shared.notify();
    tracing::debug!(socket, "socket mode connection closed");
}

/// Builds the handshake rejection for a missing, unknown or used ticket.
// NOTE: the HTTP status Slack returns for a used ticket is not known, so
// 401 is a guess. Clients only see that the handshake failed.
fn reject_ticket() -> ErrorResponse {
    let mut response = ErrorResponse::new(Some("invalid or already used ticket".to_owned()));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

/// Writes queued frames and records the client's frames until either side
/// closes the socket or the stand-in shuts down. tungstenite replies to
/// pings with pongs while reading.
async fn exchange_frames(
    mut websocket: WebSocketStream<TcpStream>,
    socket: usize,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    shared: &Shared,
    mut shutdown: watch::Receiver<()>,
    mut silenced: watch::Receiver<bool>,
) {
    let mut closing = false;
    loop {
        tokio::select! {
            changed = silenced.changed() => {
                if changed.is_ok() && *silenced.borrow() {
                    tracing::debug!(socket, "socket mode connection silenced");
                    // Hold the connection without reading or writing until
                    // the client gives up on it or the stand-in stops.
                    let _held = websocket;
                    let _ = shutdown.changed().await;
                    return;
                }
            }
            frame = outgoing.recv(), if !closing => match frame {
                Some(frame) => {
                    if let Err(error) = websocket.send(Message::text(frame)).await {
                        tracing::debug!(socket, %error, "socket mode write failed");
                        return;
                    }
                }
                // The stand-in closed this socket. Keep reading until the
                // client replies to the close frame.
                None => {
                    closing = true;
                    if websocket.close(None).await.is_err() {
                        return;
                    }
                }
            },
            incoming = websocket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    shared.socket_mode().record_frame(socket, text.as_str());
                    shared.notify();
                }
                // After a close frame from the client the next read ends the stream.
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(socket, %error, "socket mode read failed");
                    return;
                }
                None => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}
