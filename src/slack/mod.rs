//! Slack: the Socket Mode listener, event filtering and replies.

pub mod serve;
