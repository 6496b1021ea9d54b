//! Local stand-ins for the services agentdesk talks to, used by its tests
//! and benchmarks. Each one is a real HTTP server on 127.0.0.1 speaking the
//! service's wire format, scripted by the caller.
//!
//! - [`openai`]: the OpenAI Chat Completions API.
//! - [`anthropic`]: the Anthropic Messages API.
//!
//! Both model stand-ins are scripted with [`Reply`] values.

pub mod anthropic;
pub mod openai;
mod script;

pub use script::Reply;
