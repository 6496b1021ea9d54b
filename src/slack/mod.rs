//! Slack: the Socket Mode listener, event filtering, and reply text.
//!
//! - [`text`]: incoming message text, with Slack's `<...>` tokens and
//!   escapes, decoded to plain text for the model.
//! - [`mrkdwn`]: the model's Markdown converted to Slack mrkdwn, with
//!   broadcast mentions neutralised.
//! - [`split`]: mrkdwn split into chunks under Slack's size limits.
//! - [`events`]: which events are questions for the bot.
//! - [`socket`]: the Socket Mode connections, acks and reconnection.
//! - [`listener`]: what each envelope starts: answers, clicks, commands.
//! - [`client`] and [`reply`]: Web API calls and posting answers.
//! - [`serve`]: `agentdesk serve`, start-up and shutdown.

pub mod actions;
pub mod blocks;
pub mod cards;
pub mod client;
pub mod commands;
pub mod events;
pub mod listener;
pub mod mrkdwn;
pub mod reply;
pub mod serve;
pub mod socket;
pub mod split;
pub mod text;
