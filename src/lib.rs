//! agentdesk: a self-hosted Slack agent for developer portals.
//!
//! People @mention the bot in a channel or DM it; an agent answers from the
//! software catalog through lookup tools and replies in the thread. Every
//! question is recorded as an invocation.
//!
//! The main parts, in the order a question travels through them:
//!
//! - [`slack`]: Socket Mode listener, event filtering and dedupe, reply
//!   formatting (Markdown to mrkdwn, splitting under Slack's limits).
//! - [`agent`]: the built-in agent and the tool-calling loop with its budgets.
//! - [`actions`]: self-service actions, starting with their input schema.
//! - [`llm`]: the [`llm::LlmBackend`] trait and the offline, OpenAI and
//!   Anthropic backends.
//! - [`tools`]: catalog lookups offered to the model, with JSON schemas.
//! - [`catalog`]: blueprints, entities, relations, search and the importers.
//! - [`store`]: the database pool, migrations, invocations, feedback, leases
//!   and dedupe keys.
//! - [`config`] and [`clock`]: settings from the environment and the one
//!   clock that time-based logic reads.
//! - [`audit`]: the `invocations list` and `invocations export` commands.
//! - [`actions`]: self-service actions and the executors that run them.

pub mod actions;
pub mod agent;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod governance;
pub mod llm;
pub mod metrics;
pub mod ops;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod tools;

/// Installs ring as the process-wide TLS crypto provider.
///
/// reqwest (built with `rustls-no-provider`), sqlx and slack-morphism all use
/// rustls; with no provider installed the first TLS handshake panics. Call
/// this before building any client. Installing twice is harmless: the error
/// for an already installed provider is ignored.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
