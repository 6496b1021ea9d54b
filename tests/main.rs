//! The one integration test binary: each area of the product is a module.

mod helpers;

mod agent_loop;
mod audit;
mod catalog_import;
mod llm_clients;
mod questions;
mod search;
mod slack_serve;
mod slack_standin;
mod slack_text;
mod store;
mod tools;
