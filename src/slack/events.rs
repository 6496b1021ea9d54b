//! Deciding whether a Slack event is a question for the bot.
//!
//! Every event is judged from its JSON, whether slack-morphism could type it
//! or not (it puts events it cannot type, such as an `app_mention` carrying
//! an empty `edited` object, in a catch-all variant), so both paths follow
//! the same rules:
//!
//! - `app_mention` anywhere, and `message` in a DM (`channel_type` `im`),
//!   are questions; a channel `message` is one only when it mentions the
//!   bot (a workspace that also subscribes to channel messages then gets
//!   twins, which dedupe removes).
//! - Never the bot itself or any other bot (`bot_id`, or `user` equal to
//!   the bot user), never an edit (an `edited` object with a user and ts),
//!   never a hidden message, and never a subtype other than `file_share`
//!   and `thread_broadcast`: new subtypes appear regularly, so unknown ones
//!   are ignored.

use serde_json::Value;

/// Who the bot is, from `auth.test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    pub bot_id: Option<String>,
    pub team_id: Option<String>,
}

/// How a question reached the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Mention,
    DirectMessage,
    ChannelMessage,
}

/// A user message the bot should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub event_id: Option<String>,
    pub team_id: Option<String>,
    pub channel: String,
    pub user: String,
    /// The text as Slack sent it, with `<...>` tokens and escapes.
    pub text: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub kind: MessageKind,
}

impl IncomingMessage {
    /// The thread the answer belongs in: the message's thread, or a new
    /// thread under the message itself.
    pub fn reply_thread_ts(&self) -> &str {
        self.thread_ts.as_deref().unwrap_or(&self.ts)
    }
}

/// What to do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Question(IncomingMessage),
    /// Not a question; the reason is logged at debug.
    Ignore(&'static str),
}

/// Subtypes that still carry a user's own words.
const ANSWERED_SUBTYPES: &[&str] = &["file_share", "thread_broadcast"];

/// Judges one event body (the `event` object of an `event_callback`).
pub fn classify(
    event: &Value,
    event_id: Option<&str>,
    team_id: Option<&str>,
    bot: &BotIdentity,
) -> Verdict {
    let kind = match text_field(event, "type") {
        Some("app_mention") => MessageKind::Mention,
        Some("message") => match text_field(event, "channel_type") {
            Some("im") => MessageKind::DirectMessage,
            _ => MessageKind::ChannelMessage,
        },
        _ => return Verdict::Ignore("not a message or mention"),
    };

    if let Some(subtype) = text_field(event, "subtype")
        && !ANSWERED_SUBTYPES.contains(&subtype)
    {
        return Verdict::Ignore("message subtype that is not a user question");
    }
    if event.get("hidden").and_then(Value::as_bool) == Some(true) {
        return Verdict::Ignore("hidden message");
    }
    if event.get("bot_id").is_some_and(|bot_id| !bot_id.is_null())
        || event.get("bot_profile").is_some()
    {
        return Verdict::Ignore("message from a bot");
    }
    let Some(user) = text_field(event, "user") else {
        return Verdict::Ignore("message without a user");
    };
    if user == bot.user_id {
        return Verdict::Ignore("message from this bot");
    }
    if is_edit(event) {
        return Verdict::Ignore("edited message");
    }
    let (Some(channel), Some(ts)) = (text_field(event, "channel"), text_field(event, "ts")) else {
        return Verdict::Ignore("message without a channel or timestamp");
    };
    let text = text_field(event, "text").unwrap_or_default();
    if kind == MessageKind::ChannelMessage && !mentions(text, &bot.user_id) {
        return Verdict::Ignore("channel message that does not mention the bot");
    }

    Verdict::Question(IncomingMessage {
        event_id: event_id.map(str::to_string),
        team_id: team_id
            .map(str::to_string)
            .or_else(|| text_field(event, "team").map(str::to_string)),
        channel: channel.to_string(),
        user: user.to_string(),
        text: text.to_string(),
        ts: ts.to_string(),
        thread_ts: text_field(event, "thread_ts").map(str::to_string),
        kind,
    })
}

fn text_field<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// An edit carries `edited` with the editor and the time. Slack also sends
/// an empty `edited` object on some messages that were never edited.
fn is_edit(event: &Value) -> bool {
    event
        .get("edited")
        .and_then(Value::as_object)
        .is_some_and(|edited| edited.contains_key("user") || edited.contains_key("ts"))
}

fn mentions(text: &str, user_id: &str) -> bool {
    text.contains(&format!("<@{user_id}>")) || text.contains(&format!("<@{user_id}|"))
}
