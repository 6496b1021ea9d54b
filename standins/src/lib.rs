//! Local stand-ins for the services agentdesk talks to, for tests and
//! benchmarks. Each stand-in listens on 127.0.0.1 on a port chosen by the
//! system, speaks the real service's wire format, records what the product
//! sent and injects faults on request.
//!
//! - [`slack`]: the Slack Web API and Socket Mode.
//! - [`openai`]: the OpenAI Chat Completions API.
//! - [`anthropic`]: the Anthropic Messages API.
//! - [`webhook`]: a receiver for agentdesk's signed action webhooks.
//! - [`github`]: GitHub Actions workflow dispatch and the runs list.
//!
//! Both model stand-ins are scripted with [`Reply`] values.

pub mod anthropic;
pub mod github;
pub mod openai;
mod script;
pub mod slack;
pub mod webhook;

pub use script::Reply;
