//! The Web API side of the stand-in: `/api/{method}` over HTTP/1.1.
//!
//! A request goes through the same steps as at Slack: parameters are read
//! from the query string and from a JSON or form body, the call is recorded,
//! an injected [`Fault`] replaces the method's response if one is queued,
//! then the method name and the token are checked and the method runs.
//! Errors are HTTP 200 with `{"ok":false,"error":<code>}` except for rate
//! limits (HTTP 429) and injected HTTP faults. Every response is JSON.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{ApiCall, Fault, PostedMessage, Shared, SlackStandin, parse_urlencoded};

type Params = Map<String, Value>;

/// A method's result: the response fields besides `ok`, or a Slack error code.
type MethodResult = Result<Value, &'static str>;

type Method = fn(&Shared, &Params) -> MethodResult;

/// Calls, posts and the workspace data that methods read and write.
pub(super) struct WebApiState {
    pub(super) calls: Vec<ApiCall>,
    call_counts: HashMap<String, usize>,
    pub(super) posts: Vec<PostedMessage>,
    pub(super) faults: HashMap<String, VecDeque<Fault>>,
    pub(super) users: HashMap<String, Value>,
    /// Member user IDs by user group ID, in the order they were set.
    pub(super) usergroups: HashMap<String, Vec<String>>,
    /// Channel history by `(channel, ts)`.
    messages: HashMap<(String, String), Value>,
    /// Reply timestamps by `(channel, thread_ts)`. The set keeps them in
    /// time order because every ts has the same width.
    threads: HashMap<(String, String), BTreeSet<String>>,
    /// Reactions added so far, as `(channel, ts, name)`.
    reactions: HashSet<(String, String, String)>,
}

impl WebApiState {
    pub(super) fn new() -> Self {
        Self {
            calls: Vec::new(),
            call_counts: HashMap::new(),
            posts: Vec::new(),
            faults: HashMap::new(),
            users: default_users(),
            usergroups: HashMap::new(),
            messages: HashMap::new(),
            threads: HashMap::new(),
            reactions: HashSet::new(),
        }
    }

    pub(super) fn count_calls(&self, method: &str) -> usize {
        self.call_counts.get(method).copied().unwrap_or(0)
    }

    pub(super) fn calls_of(&self, method: &str) -> Vec<ApiCall> {
        self.calls
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// Stores a message in a channel's history. `message["ts"]` must be a string.
    pub(super) fn add_message(&mut self, channel: &str, message: Value) {
        let ts = message["ts"].as_str().unwrap_or_default().to_owned();
        if let Some(thread_ts) = message["thread_ts"].as_str().filter(|parent| *parent != ts) {
            self.threads
                .entry((channel.to_owned(), thread_ts.to_owned()))
                .or_default()
                .insert(ts.clone());
        }
        self.messages.insert((channel.to_owned(), ts), message);
    }

    fn record_call(&mut self, call: ApiCall) {
        *self.call_counts.entry(call.method.clone()).or_default() += 1;
        self.calls.push(call);
    }

    fn take_fault(&mut self, method: &str) -> Option<Fault> {
        self.faults.get_mut(method)?.pop_front()
    }
}

/// Serves the Web API until shutdown.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    let app = Router::new()
        .route("/api/{method}", any(handle_call))
        .fallback(handle_unknown_path)
        .with_state(shared);
    let stopped = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(%error, "slack stand-in web api stopped");
    }
}

async fn handle_call(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let response = shared.handle_call(&method, &headers, query.as_deref(), &body);
    shared.notify();
    response
}

async fn handle_unknown_path() -> Response {
    let body = json!({ "ok": false, "error": "not_found" });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

impl Shared {
    fn handle_call(
        &self,
        method: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Response {
        let bearer = bearer_token(headers);
        let (mut params, parse_error) = match read_params(headers, query, body) {
            Ok(params) => (params, None),
            Err(code) => (Params::new(), Some(code)),
        };
        let field_token = match params.remove("token") {
            Some(Value::String(token)) => Some(token),
            _ => None,
        };

        let fault = {
            let mut state = self.web_api();
            state.record_call(ApiCall {
                method: method.to_owned(),
                params: Value::Object(params.clone()),
                token: bearer.clone().or_else(|| field_token.clone()),
            });
            state.take_fault(method)
        };
        if let Some(fault) = fault {
            return fault_response(fault);
        }
        if let Some(code) = parse_error {
            return error_response(code);
        }
        let Some(run_method) = find_method(method) else {
            return error_response("unknown_method");
        };
        if let Err(code) = check_token(method, bearer.as_deref(), field_token.as_deref()) {
            return error_response(code);
        }

        match run_method(self, &params) {
            Ok(fields) => ok_response(fields),
            Err(code) => error_response(code),
        }
    }
}

fn find_method(method: &str) -> Option<Method> {
    let run: Method = match method {
        "auth.test" => auth_test,
        "apps.connections.open" => apps_connections_open,
        "chat.postMessage" => chat_post_message,
        "chat.update" => chat_update,
        "chat.postEphemeral" => chat_post_ephemeral,
        "reactions.add" => reactions_add,
        "conversations.replies" => conversations_replies,
        "users.info" => users_info,
        "users.lookupByEmail" => users_lookup_by_email,
        "usergroups.users.list" => usergroups_users_list,
        "assistant.threads.setStatus" => assistant_threads_set_status,
        "assistant.threads.setSuggestedPrompts" => assistant_threads_set_suggested_prompts,
        "assistant.threads.setTitle" => assistant_threads_set_title,
        _ => return None,
    };
    Some(run)
}

/// Checks the token as Slack does: `apps.connections.open` takes the
/// app-level token from the `Authorization` header only, every other method
/// takes the bot token from the header or from a `token` field.
fn check_token(
    method: &str,
    bearer: Option<&str>,
    field_token: Option<&str>,
) -> Result<(), &'static str> {
    let (token, expected, other_kind) = if method == "apps.connections.open" {
        (bearer, SlackStandin::APP_TOKEN, SlackStandin::BOT_TOKEN)
    } else {
        (
            bearer.or(field_token),
            SlackStandin::BOT_TOKEN,
            SlackStandin::APP_TOKEN,
        )
    };
    match token {
        None => Err("not_authed"),
        Some(token) if token == expected => Ok(()),
        Some(token) if token == other_kind => Err("not_allowed_token_type"),
        Some(_) => Err("invalid_auth"),
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

/// Merges the query string and the body into one object. A JSON body must
/// be an object; any other body is read as form fields.
fn read_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Params, &'static str> {
    let mut params: Params = parse_urlencoded(query.unwrap_or_default())
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    if body.is_empty() {
        return Ok(params);
    }

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            _ => return Err("invalid_json"),
        }
    } else {
        // Multipart bodies (file uploads) come out as garbled form fields,
        // but none of the methods served here take them.
        let form = std::str::from_utf8(body).map_err(|_| "invalid_form_data")?;
        for (name, value) in parse_urlencoded(form) {
            params.insert(name, Value::String(value));
        }
    }
    Ok(params)
}

fn ok_response(fields: Value) -> Response {
    let mut body = fields;
    body["ok"] = Value::Bool(true);
    (StatusCode::OK, Json(body)).into_response()
}

fn error_response(code: &str) -> Response {
    let body = json!({ "ok": false, "error": code });
    (StatusCode::OK, Json(body)).into_response()
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let body = json!({ "ok": false, "error": "ratelimited" });
            let retry_after = [(header::RETRY_AFTER, retry_after_secs.to_string())];
            (StatusCode::TOO_MANY_REQUESTS, retry_after, Json(body)).into_response()
        }
        Fault::SlackError(code) => error_response(&code),
        Fault::Http(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({ "ok": false, "error": "internal_error" });
            (status, Json(body)).into_response()
        }
    }
}

fn text_param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name)?.as_str()
}

/// Reads a parameter that contains JSON: a JSON body carries it as a value,
/// a form or query string as a string of JSON.
fn json_param(params: &Params, name: &str) -> Result<Option<Value>, &'static str> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text)
            .map(Some)
            .map_err(|_| "invalid_arguments"),
        Some(value) => Ok(Some(value.clone())),
    }
}

fn require(params: &Params, names: &[&str]) -> Result<(), &'static str> {
    if names.iter().all(|name| params.contains_key(*name)) {
        Ok(())
    } else {
        Err("invalid_arguments")
    }
}

/// Returns the message text to store: `text`, or else `markdown_text`.
fn message_text(params: &Params) -> Option<&str> {
    text_param(params, "text").or_else(|| text_param(params, "markdown_text"))
}

fn has_content(params: &Params) -> bool {
    ["text", "markdown_text", "blocks", "attachments"]
        .iter()
        .any(|name| params.contains_key(*name))
}

/// Builds a message as Slack stores one that the bot posted.
fn bot_message(ts: &str, thread_ts: Option<&str>, text: &str, blocks: Option<&Value>) -> Value {
    let mut message = json!({
        "type": "message",
        "user": SlackStandin::BOT_USER_ID,
        "bot_id": SlackStandin::BOT_ID,
        "app_id": SlackStandin::APP_ID,
        "team": SlackStandin::TEAM_ID,
        "text": text,
        "ts": ts,
    });
    if let Some(thread_ts) = thread_ts {
        message["thread_ts"] = Value::from(thread_ts);
    }
    if let Some(blocks) = blocks {
        message["blocks"] = blocks.clone();
    }
    message
}

fn auth_test(_shared: &Shared, _params: &Params) -> MethodResult {
    Ok(json!({
        "url": "https://acme.slack.com/",
        "team": SlackStandin::TEAM_NAME,
        "user": SlackStandin::BOT_NAME,
        "team_id": SlackStandin::TEAM_ID,
        "user_id": SlackStandin::BOT_USER_ID,
        "bot_id": SlackStandin::BOT_ID,
        "is_enterprise_install": false,
    }))
}

fn apps_connections_open(shared: &Shared, _params: &Params) -> MethodResult {
    let url = shared.socket_mode().issue_url(shared.ws_addr);
    Ok(json!({ "url": url }))
}

fn chat_post_message(shared: &Shared, params: &Params) -> MethodResult {
    let channel = text_param(params, "channel").ok_or("channel_not_found")?;
    if !has_content(params) {
        return Err("no_text");
    }
    let blocks = json_param(params, "blocks")?;
    let thread_ts = text_param(params, "thread_ts");
    let text = message_text(params);

    let mut state = shared.web_api();
    let ts = shared.next_ts();
    let message = bot_message(&ts, thread_ts, text.unwrap_or_default(), blocks.as_ref());
    state.add_message(channel, message.clone());
    state.posts.push(PostedMessage {
        method: "chat.postMessage".into(),
        channel: channel.to_owned(),
        ts: ts.clone(),
        thread_ts: thread_ts.map(str::to_owned),
        text: text.map(str::to_owned),
        blocks,
        user: None,
    });
    Ok(json!({ "channel": channel, "ts": ts, "message": message }))
}

fn chat_update(shared: &Shared, params: &Params) -> MethodResult {
    let channel = text_param(params, "channel").ok_or("channel_not_found")?;
    let ts = text_param(params, "ts").ok_or("message_not_found")?;
    let blocks = json_param(params, "blocks")?;
    let text = message_text(params);

    let mut state = shared.web_api();
    let key = (channel.to_owned(), ts.to_owned());
    let message = state.messages.get_mut(&key).ok_or("message_not_found")?;
    if message["bot_id"] != SlackStandin::BOT_ID {
        return Err("cant_update_message");
    }
    if let Some(text) = text {
        message["text"] = Value::from(text);
    }
    if let Some(blocks) = &blocks {
        message["blocks"] = blocks.clone();
    }
    let updated = message.clone();
    let thread_ts = updated["thread_ts"].as_str().map(str::to_owned);

    state.posts.push(PostedMessage {
        method: "chat.update".into(),
        channel: channel.to_owned(),
        ts: ts.to_owned(),
        thread_ts: thread_ts.clone(),
        text: text.map(str::to_owned),
        blocks,
        user: None,
    });
    let mut fields = json!({
        "channel": channel,
        "ts": ts,
        "text": updated["text"],
        "message": updated,
    });
    if let Some(thread_ts) = thread_ts {
        fields["thread_ts"] = Value::from(thread_ts);
    }
    Ok(fields)
}

/// Ephemeral messages are not stored in the channel history, as at Slack.
fn chat_post_ephemeral(shared: &Shared, params: &Params) -> MethodResult {
    let channel = text_param(params, "channel").ok_or("channel_not_found")?;
    let user = text_param(params, "user").ok_or("user_not_in_channel")?;
    if !has_content(params) {
        return Err("no_text");
    }
    let blocks = json_param(params, "blocks")?;

    let mut state = shared.web_api();
    let ts = shared.next_ts();
    state.posts.push(PostedMessage {
        method: "chat.postEphemeral".into(),
        channel: channel.to_owned(),
        ts: ts.clone(),
        thread_ts: text_param(params, "thread_ts").map(str::to_owned),
        text: message_text(params).map(str::to_owned),
        blocks,
        user: Some(user.to_owned()),
    });
    Ok(json!({ "message_ts": ts }))
}

/// Adds a reaction once. A second identical one returns `already_reacted`.
// NOTE: the message is not looked up, so reacting to a ts that was never
// posted succeeds here, while Slack returns `message_not_found`.
fn reactions_add(shared: &Shared, params: &Params) -> MethodResult {
    let channel = text_param(params, "channel").ok_or("no_item_specified")?;
    let timestamp = text_param(params, "timestamp").ok_or("no_item_specified")?;
    let name = text_param(params, "name").ok_or("invalid_name")?;

    let reaction = (channel.to_owned(), timestamp.to_owned(), name.to_owned());
    if !shared.web_api().reactions.insert(reaction) {
        return Err("already_reacted");
    }
    Ok(json!({}))
}

/// Returns the parent and its replies in time order.
// NOTE: `cursor`, `oldest`, `latest` and `inclusive` are ignored, so every
// reply comes in one page. `limit` cuts the page and sets `has_more`.
fn conversations_replies(shared: &Shared, params: &Params) -> MethodResult {
    let channel = text_param(params, "channel").ok_or("channel_not_found")?;
    let ts = text_param(params, "ts").ok_or("thread_not_found")?;
    let limit = params.get("limit").and_then(|limit| match limit {
        Value::String(text) => text.parse::<usize>().ok(),
        other => other.as_u64().map(|limit| limit as usize),
    });

    let state = shared.web_api();
    let key = (channel.to_owned(), ts.to_owned());
    let parent = state.messages.get(&key);
    let replies = state
        .threads
        .get(&key)
        .into_iter()
        .flatten()
        .filter_map(|reply_ts| state.messages.get(&(channel.to_owned(), reply_ts.clone())));
    let mut messages: Vec<Value> = parent.into_iter().chain(replies).cloned().collect();
    if messages.is_empty() {
        return Err("thread_not_found");
    }

    let has_more = limit.is_some_and(|limit| messages.len() > limit);
    if let Some(limit) = limit {
        messages.truncate(limit);
    }
    Ok(json!({ "messages": messages, "has_more": has_more }))
}

fn users_info(shared: &Shared, params: &Params) -> MethodResult {
    let id = text_param(params, "user").ok_or("user_not_found")?;
    let user = shared.web_api().users.get(id).cloned();
    let user = user.ok_or("user_not_found")?;
    Ok(json!({ "user": user }))
}

/// Finds a user set with [`SlackStandin::set_user`] by `profile.email`,
/// ignoring case, as Slack does.
fn users_lookup_by_email(shared: &Shared, params: &Params) -> MethodResult {
    let email = text_param(params, "email")
        .ok_or("invalid_arguments")?
        .to_lowercase();
    let web_api = shared.web_api();
    let user = web_api
        .users
        .values()
        .find(|user| {
            user.pointer("/profile/email")
                .and_then(Value::as_str)
                .is_some_and(|found| found.to_lowercase() == email)
        })
        .cloned();
    let user = user.ok_or("users_not_found")?;
    Ok(json!({ "user": user }))
}

/// Returns the members of a user group set with
/// [`SlackStandin::set_usergroup`].
// NOTE: no group here is disabled, so `include_disabled` is accepted and
// changes nothing. `team_id` (for org-wide tokens) is ignored too.
fn usergroups_users_list(shared: &Shared, params: &Params) -> MethodResult {
    let id = text_param(params, "usergroup").ok_or("invalid_arguments")?;
    let users = shared.web_api().usergroups.get(id).cloned();
    let users = users.ok_or("no_such_subteam")?;
    Ok(json!({ "users": users }))
}

fn assistant_threads_set_status(_shared: &Shared, params: &Params) -> MethodResult {
    require(params, &["channel_id", "thread_ts", "status"])?;
    Ok(json!({}))
}

/// `thread_ts` is optional here: apps in the agent view pin prompts to the
/// Messages tab rather than to a thread.
fn assistant_threads_set_suggested_prompts(_shared: &Shared, params: &Params) -> MethodResult {
    require(params, &["channel_id", "prompts"])?;
    Ok(json!({}))
}

fn assistant_threads_set_title(_shared: &Shared, params: &Params) -> MethodResult {
    require(params, &["channel_id", "thread_ts", "title"])?;
    Ok(json!({}))
}

/// Builds the bot user and the two people of the Socket Mode fixtures.
fn default_users() -> HashMap<String, Value> {
    let bot = json!({
        "id": SlackStandin::BOT_USER_ID,
        "team_id": SlackStandin::TEAM_ID,
        "name": SlackStandin::BOT_NAME,
        "real_name": SlackStandin::BOT_NAME,
        "is_bot": true,
        "deleted": false,
        "profile": {
            "display_name": SlackStandin::BOT_NAME,
            "real_name": SlackStandin::BOT_NAME,
            "bot_id": SlackStandin::BOT_ID,
        },
    });
    let alice = person("U0ALICE001", "alice", "Alice Example");
    let bob = person("U0BOB00002", "bob", "Bob Example");
    [bot, alice, bob]
        .into_iter()
        .map(|user| (user["id"].as_str().unwrap_or_default().to_owned(), user))
        .collect()
}

fn person(id: &str, name: &str, real_name: &str) -> Value {
    json!({
        "id": id,
        "team_id": SlackStandin::TEAM_ID,
        "name": name,
        "real_name": real_name,
        "is_bot": false,
        "deleted": false,
        "tz": "Europe/Berlin",
        "tz_offset": 3600,
        "profile": {
            "display_name": name,
            "real_name": real_name,
        },
    })
}
