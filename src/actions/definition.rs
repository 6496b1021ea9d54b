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
//! field. A missing secret variable stops the program at start, and so does
//! an executor placeholder that a run could have no value for.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use serde_saphyr::{Location, Spanned};

use super::approval::ApprovalPolicy;
use super::entry::{ActionFields, problem_at};
use super::executor::{Executor, PlaceholderValues};
use super::inputs::InputSchema;

pub(crate) use super::entry::RawAction;

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
    /// Returns the blueprints whose entities the action names: its
    /// target's and its entity inputs'.
    pub fn blueprints(&self) -> BTreeSet<&str> {
        let mut blueprints = self.inputs.blueprints();
        blueprints.extend(self.target_blueprint.as_deref());
        blueprints
    }

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
    let Some(fields) = ActionFields::of(raw, &mut problems) else {
        return Err(problems);
    };

    let id = fields.required_text("id", &mut problems);
    if let Some(id) = &id
        && !is_identifier(&id.value)
    {
        problems.push(problem_at(
            &id.referenced,
            "id",
            "use lower-case letters, digits, - and _ (at most 64), starting with a letter",
        ));
    }
    let title = fields.required_text("title", &mut problems);
    let description = fields.required_text("description", &mut problems);
    let target_blueprint = fields.text("target_blueprint", &mut problems);

    let inputs = fields.inputs(target_blueprint.is_some(), &mut problems);
    let approval = fields.approval(target_blueprint.is_some(), &mut problems);
    let config = fields.executor(&mut problems);
    let executor = config.as_ref().and_then(|config| {
        let built = config.value.build(env);
        report_at(&config.referenced, built, &mut problems)
    });
    if let (Some(config), Some(approval)) = (&config, &approval) {
        let names: Vec<&str> = inputs.inputs().map(|(name, _)| name).collect();
        let values = PlaceholderValues {
            inputs: &names,
            has_target: target_blueprint.is_some(),
            has_approver: matches!(approval, ApprovalPolicy::Required(_)),
        };
        for (field, message) in config.value.check_placeholders(&values) {
            problems.push(problem_at(&config.referenced, &field, message));
        }
    }

    match (id, title, description, approval, executor) {
        (Some(id), Some(title), Some(description), Some(approval), Some(executor))
            if problems.is_empty() =>
        {
            Ok(Arc::new(ActionDefinition {
                id: id.value,
                title: title.value,
                description: description.value,
                target_blueprint,
                inputs,
                approval,
                executor,
            }))
        }
        _ => Err(problems),
    }
}

/// Returns the value of a check whose problems, (field, message) pairs,
/// all belong at `at`; records the problems otherwise.
fn report_at<T>(
    at: &Location,
    result: Result<T, Vec<(String, String)>>,
    problems: &mut Vec<ActionProblem>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(found) => {
            for (field, message) in found {
                problems.push(problem_at(at, &field, message));
            }
            None
        }
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
