//! Self-service actions: definitions in the agents file, their inputs,
//! approval, and runs.
//!
//! An agent proposes an action through a tool; code validates its inputs
//! ([`inputs`]), records a run, and either runs it at once (`automatic`) or
//! posts an approval card in Slack ([`approval`]). A person approves or
//! rejects it there; the run moves out of `waiting_for_approval` in one
//! conditional update, so it executes exactly once, through its
//! [`executor`]: a signed webhook or a GitHub Actions workflow dispatch.

pub mod approval;
pub mod executor;
pub mod inputs;
