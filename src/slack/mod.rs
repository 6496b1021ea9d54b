//! Slack: the Socket Mode listener, event filtering, and reply text.
//!
//! - [`text`]: incoming message text, with Slack's `<...>` tokens and
//!   escapes, decoded to plain text for the model.
//! - [`mrkdwn`]: the model's Markdown converted to Slack mrkdwn, with
//!   broadcast mentions neutralised.
//! - [`split`]: mrkdwn split into chunks under Slack's size limits.
//! - [`serve`]: `agentdesk serve`, the Socket Mode loop.

pub mod mrkdwn;
pub mod serve;
pub mod split;
pub mod text;
