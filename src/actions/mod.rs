//! Self-service actions: definitions in the agents file, approval, and runs.
//!
//! An agent proposes an action through a tool; code validates its inputs,
//! records a run, and either runs it at once (`automatic`) or posts an
//! approval card in Slack. A person approves or rejects it there; the run
//! moves out of `waiting_for_approval` in one conditional update, so it
//! executes exactly once.

pub mod approval;
