//! The one integration test binary: each area of the product is a module.

mod helpers;
mod llm_clients;
mod slack_serve;
mod slack_standin;
mod slack_text;
