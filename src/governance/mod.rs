//! Governance: who may use which agent, how much, and what is kept.
//!
//! - [`limits`]: requests per minute and daily token budgets, counted in the
//!   database so every replica sees the same numbers.
//! - [`redaction`]: secrets (and optionally e-mail addresses) removed from
//!   text before it reaches a model or the database.
//! - [`retention`]: deletion of old invocations by one replica at a time.

pub mod limits;
pub mod redaction;
pub mod retention;
