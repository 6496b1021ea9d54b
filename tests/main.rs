//! The one integration test binary: each area of the product is a module.

mod helpers;

mod action_executors;
mod action_inputs;
mod action_regressions;
mod agent_loop;
mod agents_file;
mod audit;
mod catalog_import;
mod database_faults;
mod limits;
mod llm_clients;
mod llm_faults;
mod properties;
mod questions;
mod redaction;
mod regressions;
mod replicas;
mod search;
mod shutdown;
mod slack_actions;
mod slack_agents;
mod slack_faults;
mod slack_serve;
mod slack_standin;
mod slack_text;
mod store;
mod tools;
