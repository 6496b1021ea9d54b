//! Action definitions from the agents file.
//!
//! ```yaml
//! actions:
//!   - id: deploy
//!     title: Deploy a service
//!     description: Deploys a version of a service to an environment.
//!     target_blueprint: service          # the model names the target entity
//!     inputs:
//!       environment: { type: string, enum: [staging, production], default: staging }
//!       version: { type: string, pattern: "v?[0-9]+\\.[0-9]+\\.[0-9]+", required: true }
//!     approval:
//!       policy: approval_required        # or automatic
//!       approvers: { users: [U0ALICE001], user_groups: [S0DEPLOYERS], owners_of_target: true }
//!       allow_self_approval: false
//!       expires_after: 24h
//!     executor:
//!       type: webhook
//!       url: https://deploy.example.com/hooks/agentdesk
//!       secret_env: AGENTDESK_WEBHOOK_SECRET
//! ```
//!
//! Agents list the actions they may propose under `actions`. Problems are
//! reported like every other agents file problem: file, line, action and
//! field; a missing secret variable stops the program at start.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::approval::{ApprovalPolicy, RawApproval};
use super::executor::{Executor, ExecutorConfig};
use super::inputs::{InputSchema, RawInputs};

/// An action as the agents file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub id: Option<Spanned<String>>,
    pub title: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub target_blueprint: Option<Spanned<String>>,
    #[serde(default)]
    pub inputs: Option<Spanned<RawInputs>>,
    pub approval: Option<Spanned<RawApproval>>,
    pub executor: Option<Spanned<ExecutorConfig>>,
}

/// A validated action, ready to propose and run.
pub struct ActionDefinition {
    pub id: String,
    pub title: String,
    pub description: String,
    /// Blueprint of the entity the action is for; the model names the
    /// entity in the `target` argument.
    pub target_blueprint: Option<String>,
    pub inputs: InputSchema,
    pub approval: ApprovalPolicy,
    pub executor: Executor,
}

impl std::fmt::Debug for ActionDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionDefinition")
            .field("id", &self.id)
            .field("target_blueprint", &self.target_blueprint)
            .field("approval", &self.approval)
            .field("executor", &self.executor.kind())
            .finish()
    }
}

impl ActionDefinition {
    /// The JSON Schema of the proposing tool's arguments: the inputs, and a
    /// required `target` when the action has a target blueprint.
    pub fn tool_schema(&self) -> Value {
        let mut schema = self.inputs.to_json_schema();
        if let Some(blueprint) = &self.target_blueprint {
            schema["properties"]["target"] = json!({
                "type": "string",
                "description": format!(
                    "The {blueprint} the action is for: its identifier or {blueprint}:identifier."
                ),
                "x-agentdesk-blueprint": blueprint,
            });
            let mut required = vec![json!("target")];
            if let Some(Value::Array(existing)) = schema.get("required") {
                required.extend(existing.iter().cloned());
            }
            schema["required"] = Value::Array(required);
        }
        schema
    }
}

/// A problem found in one action: (line, column, field, message).
pub(crate) type ActionProblem = (Option<u64>, Option<u64>, String, String);

/// Validates one action.
pub(crate) fn build(
    raw: &Spanned<RawAction>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<ActionDefinition>, Vec<ActionProblem>> {
    let mut problems: Vec<ActionProblem> = Vec::new();
    let at = |spanned_line: u64, spanned_column: u64| (Some(spanned_line), Some(spanned_column));
    let whole = at(raw.referenced.line(), raw.referenced.column());
    let value = &raw.value;

    let required_text = |field: &str,
                         text: &Option<Spanned<String>>,
                         problems: &mut Vec<ActionProblem>|
     -> String {
        match text {
            Some(text) if !text.value.trim().is_empty() => text.value.trim().to_string(),
            Some(text) => {
                problems.push((
                    Some(text.referenced.line()),
                    Some(text.referenced.column()),
                    field.to_string(),
                    "is empty".to_string(),
                ));
                String::new()
            }
            None => {
                problems.push((whole.0, whole.1, field.to_string(), "missing; every action needs an id, a title, a description, an approval policy and an executor".to_string()));
                String::new()
            }
        }
    };

    let id = required_text("id", &value.id, &mut problems);
    if !id.is_empty() && !is_identifier(&id) {
        let spot = value
            .id
            .as_ref()
            .map(|id| (id.referenced.line(), id.referenced.column()));
        problems.push((
            spot.map(|spot| spot.0),
            spot.map(|spot| spot.1),
            "id".to_string(),
            "use lower-case letters, digits, - and _ (at most 64), starting with a letter"
                .to_string(),
        ));
    }
    let title = required_text("title", &value.title, &mut problems);
    let description = required_text("description", &value.description, &mut problems);
    let target_blueprint = value
        .target_blueprint
        .as_ref()
        .map(|blueprint| blueprint.value.trim().to_string())
        .filter(|blueprint| !blueprint.is_empty());

    let inputs = match &value.inputs {
        Some(raw_inputs) => match InputSchema::from_raw(&raw_inputs.value) {
            Ok(schema) => {
                if target_blueprint.is_some() && schema.input("target").is_some() {
                    problems.push((Some(raw_inputs.referenced.line()), Some(raw_inputs.referenced.column()), "inputs.target".to_string(), "`target` is reserved for the target entity of an action with target_blueprint; rename the input".to_string()));
                }
                schema
            }
            Err(input_problems) => {
                for problem in input_problems {
                    problems.push((problem.line, problem.column, problem.field, problem.message));
                }
                InputSchema::empty()
            }
        },
        None => InputSchema::empty(),
    };

    let approval = match &value.approval {
        Some(raw_approval) => match raw_approval.value.build(target_blueprint.is_some()) {
            Ok(policy) => Some(policy),
            Err(approval_problems) => {
                for (field, message) in approval_problems {
                    problems.push((
                        Some(raw_approval.referenced.line()),
                        Some(raw_approval.referenced.column()),
                        field,
                        message,
                    ));
                }
                None
            }
        },
        None => {
            problems.push((
                whole.0,
                whole.1,
                "approval".to_string(),
                "missing; set policy: automatic or policy: approval_required with approvers"
                    .to_string(),
            ));
            None
        }
    };

    let executor = match &value.executor {
        Some(config) => match config.value.build(env) {
            Ok(executor) => Some(executor),
            Err(executor_problems) => {
                // Executor fields already start with `executor`.
                for (field, message) in executor_problems {
                    problems.push((
                        Some(config.referenced.line()),
                        Some(config.referenced.column()),
                        field,
                        message,
                    ));
                }
                None
            }
        },
        None => {
            problems.push((
                whole.0,
                whole.1,
                "executor".to_string(),
                "missing; set type: webhook or type: github_workflow".to_string(),
            ));
            None
        }
    };

    match (approval, executor) {
        (Some(approval), Some(executor)) if problems.is_empty() => Ok(Arc::new(ActionDefinition {
            id,
            title,
            description,
            target_blueprint,
            inputs,
            approval,
            executor,
        })),
        _ => Err(problems),
    }
}

fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    matches!(characters.next(), Some(first) if first.is_ascii_lowercase())
        && text.len() <= 64
        && characters.all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '-'
                || character == '_'
        })
}
