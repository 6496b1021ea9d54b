//! Self-service actions: operations a person requests in Slack, someone
//! approves, and agentdesk runs exactly once.
//!
//! - [`executor`]: what runs an approved action (a signed webhook or a
//!   GitHub Actions workflow dispatch) and reports its outcome.

pub mod executor;
