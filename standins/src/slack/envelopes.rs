//! Rewrites of fixture envelopes for tests that send one fixture more than
//! once.
//!
//! The product drops a delivery it has seen before: by `payload.event_id`
//! and, for messages, by `(channel, ts)`. [`with_fresh_ids`] turns a fixture
//! into a new message that passes both checks; [`as_redelivery`] turns it
//! into Slack's retry of the same event.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use uuid::Uuid;

/// Counts the timestamps handed out by [`with_fresh_ids`] in this process.
/// They start 10,000 seconds after the ones `chat.postMessage` hands out, so
/// the two series do not collide.
static FRESH_TS_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns a copy of `envelope` that reads as a new delivery of a new
/// message.
///
/// - `envelope_id` gets a new UUID.
/// - `payload.event_id`, when present, gets a new `Ev...` id.
/// - `payload.event.ts`, when present, gets a new timestamp, and so do
///   `event_ts` and a `thread_ts` equal to the old ts (a thread parent).
///   A `thread_ts` that names another message stays, so a reply stays in
///   its thread.
/// - `payload.event.client_msg_id`, when present, gets a new UUID.
///
/// Interactive and slash command envelopes carry none of the event fields,
/// so only their `envelope_id` changes.
///
/// # Panics
///
/// Panics when `envelope` is not a JSON object.
pub fn with_fresh_ids(envelope: &Value) -> Value {
    let mut fresh = envelope.clone();
    fresh["envelope_id"] = Value::String(Uuid::new_v4().to_string());

    let Some(payload) = fresh.get_mut("payload").and_then(Value::as_object_mut) else {
        return fresh;
    };
    if payload.contains_key("event_id") {
        payload.insert("event_id".into(), Value::String(fresh_event_id()));
    }

    let Some(event) = payload.get_mut("event").and_then(Value::as_object_mut) else {
        return fresh;
    };
    if let Some(old_ts) = event.get("ts").cloned() {
        let new_ts = Value::String(fresh_ts());
        event.insert("ts".into(), new_ts.clone());
        if event.contains_key("event_ts") {
            event.insert("event_ts".into(), new_ts.clone());
        }
        if event.get("thread_ts") == Some(&old_ts) {
            event.insert("thread_ts".into(), new_ts);
        }
    }
    if event.contains_key("client_msg_id") {
        let client_msg_id = Value::String(Uuid::new_v4().to_string());
        event.insert("client_msg_id".into(), client_msg_id);
    }
    fresh
}

/// Returns a copy of `envelope` as Slack redelivers an `events_api` envelope
/// that was not acked in time: a new `envelope_id`, the same `event_id` and
/// message, `retry_attempt` set to `attempt` (1 to 3 at Slack) and
/// `retry_reason` set to `"timeout"`.
///
/// # Panics
///
/// Panics when `envelope` is not a JSON object.
pub fn as_redelivery(envelope: &Value, attempt: u32) -> Value {
    let mut retry = envelope.clone();
    retry["envelope_id"] = Value::String(Uuid::new_v4().to_string());
    retry["retry_attempt"] = Value::from(attempt);
    retry["retry_reason"] = Value::String("timeout".into());
    retry
}

fn fresh_event_id() -> String {
    let unique = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("Ev{}", &unique[..12])
}

/// Returns "1717190000.000001", then "1717190000.000002" and so on.
fn fresh_ts() -> String {
    const FIRST_SECOND: u64 = 1_717_190_000;

    let micros = FRESH_TS_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    format!(
        "{}.{:06}",
        FIRST_SECOND + micros / 1_000_000,
        micros % 1_000_000
    )
}
