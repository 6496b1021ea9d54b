//! Tools offered to a model: catalog lookups with JSON schemas.
//!
//! Every tool declares whether it only reads, so an agent can be limited to
//! read-only tools. The [`ToolRegistry`] runs a model's tool call safely: an
//! unknown tool, arguments that are not JSON, or arguments that do not fit
//! the schema produce an error result the model can read and correct, never
//! a failure of the invocation. Tool output is JSON text; the agent loop
//! cuts it to a size the model can take.

mod count_entities;
mod filters;
mod get_entity;
mod list_blueprints;
mod search_entities;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, instrument, warn};

use crate::catalog::{Catalog, Scope};
use crate::llm::{ToolCall, ToolSpec};

pub use count_entities::CountEntities;
pub use get_entity::GetEntity;
pub use list_blueprints::ListBlueprints;
pub use search_entities::SearchEntities;

/// What a tool may read.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub catalog: Catalog,
    /// Blueprints the agent may see; entities outside are invisible.
    pub scope: Scope,
    /// The conversation the tools run in, which action proposals record
    /// runs for; `None` outside a conversation.
    pub session: Option<std::sync::Arc<crate::actions::proposal::ProposalSession>>,
}

/// Why a tool call failed; the message goes back to the model.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the tool failed: {0:#}")]
    Failed(#[from] anyhow::Error),
}

/// A capability the model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn input_schema(&self) -> Value;
    /// True when the tool never changes anything.
    fn is_read_only(&self) -> bool;
    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolError>;
}

/// The result of one tool call as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// JSON text: the tool's output, or `{"error": "..."}`.
    pub content: String,
    pub is_error: bool,
    /// The error message, for the invocation record.
    pub error: Option<String>,
}

/// The tools one agent may use.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl ToolRegistry {
    /// Every catalog lookup tool.
    pub fn catalog_tools() -> Self {
        Self {
            tools: vec![
                Arc::new(ListBlueprints),
                Arc::new(SearchEntities),
                Arc::new(GetEntity),
                Arc::new(CountEntities),
            ],
        }
    }

    /// Adds tools.
    pub fn with(mut self, tools: Vec<Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Keeps only the tools for which `keep` returns true.
    pub fn filtered(&self, keep: impl Fn(&dyn Tool) -> bool) -> Self {
        Self {
            tools: self
                .tools
                .iter()
                .filter(|tool| keep(tool.as_ref()))
                .cloned()
                .collect(),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|tool| tool.name()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|tool| tool.name() == name)
    }

    /// Describes the tools for a model request.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name().to_string(),
                description: tool.description().to_string(),
                input_schema: tool.input_schema(),
            })
            .collect()
    }

    /// Runs one tool call from a model. Every failure becomes an error
    /// result for the model to read.
    #[instrument(skip_all, fields(tool = %call.name))]
    pub async fn execute(&self, context: &ToolContext, call: &ToolCall) -> ToolOutcome {
        let Some(tool) = self.get(&call.name) else {
            let message = format!(
                "unknown tool {:?}; the available tools are: {}",
                call.name,
                self.names().join(", ")
            );
            warn!(tool = %call.name, "model called an unknown tool");
            return error_outcome(message);
        };

        let arguments = match parse_arguments(&call.arguments) {
            Ok(arguments) => arguments,
            Err(message) => {
                warn!(tool = %call.name, "model sent tool arguments that are not a JSON object");
                return error_outcome(message);
            }
        };

        let started = Instant::now();
        let result = tool.call(context, arguments).await;
        debug!(
            tool = %call.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "tool call finished"
        );

        match result {
            Ok(output) => ToolOutcome {
                content: output.to_string(),
                is_error: false,
                error: None,
            },
            Err(error) => {
                if let ToolError::Failed(cause) = &error {
                    warn!(tool = %call.name, error = %format!("{cause:#}"), "tool call failed");
                }
                error_outcome(error.to_string())
            }
        }
    }
}

fn error_outcome(message: String) -> ToolOutcome {
    ToolOutcome {
        content: serde_json::json!({ "error": message }).to_string(),
        is_error: true,
        error: Some(message),
    }
}

/// Parses a model's argument text: a JSON object, or nothing at all.
fn parse_arguments(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(other) => Err(format!(
            "the arguments must be a JSON object, got {}; send an object matching the tool's \
             schema",
            short(&other.to_string())
        )),
        Err(error) => Err(format!(
            "the arguments are not valid JSON ({error}); send an object matching the tool's \
             schema"
        )),
    }
}

fn short(text: &str) -> String {
    crate::catalog::truncate_chars(text, 80)
}

/// Reads a tool's arguments into its argument type, turning serde's message
/// into one the model can act on.
pub(crate) fn arguments<T: DeserializeOwned>(arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|error| {
        ToolError::InvalidArguments(format!(
            "{error}; send arguments that match the tool's input schema"
        ))
    })
}
