//! Slack text handling: what comes in and what goes out.
//!
//! - [`text`]: incoming message text, with Slack's `<...>` tokens and
//!   escapes, decoded to plain text for the model.
//! - [`mrkdwn`]: the model's Markdown converted to Slack mrkdwn, with
//!   broadcast mentions neutralised.
//! - [`split`]: mrkdwn split into chunks under Slack's size limits.

pub mod mrkdwn;
pub mod split;
pub mod text;
