//! An action entry of the agents file as read, before it is checked.
//!
//! The entry is kept as a tree of YAML nodes ([`RawNode`]), so a wrongly
//! typed value never fails the whole file. [`ActionFields`] reads each key
//! on its own and reports a mistake with its line, column and dotted field
//! (`executor.timeout_secs`), and the other actions are still checked.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use super::approval::{ApprovalPolicy, RawApproval};
use super::definition::ActionProblem;
use super::executor::{ExecutorConfig, GithubWorkflowConfig, WebhookConfig};
use super::inputs::raw::{RawEntry, RawNode};
use super::inputs::{InputSchema, RawInputs};
use super::node::{self, NodeError};

/// The keys of an action.
const ACTION_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "target_blueprint",
    "inputs",
    "approval",
    "executor",
];

/// An action as the agents file writes it, checked by
/// [`super::definition::build`].
pub(crate) struct RawAction {
    /// The `id`, when it is text, so that every problem can name the
    /// action.
    pub id: Option<Spanned<String>>,
    node: RawNode,
}

impl<'de> Deserialize<'de> for RawAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = RawNode::deserialize(deserializer)?;
        let id = match &node {
            RawNode::Map(entries) => entries.iter().find(|(key, _)| key.value == "id").and_then(
                |(_, value)| match &value.value {
                    RawNode::String(text) => {
                        Some(Spanned::new(text.clone(), value.referenced, value.defined))
                    }
                    _ => None,
                },
            ),
            _ => None,
        };
        Ok(Self { id, node })
    }
}

/// The keys of one action entry, read one at a time.
pub(super) struct ActionFields<'a> {
    entries: &'a [RawEntry],
    /// Start of the entry, for problems about a missing key.
    at: Location,
}

impl<'a> ActionFields<'a> {
    /// Opens an entry, or reports that it is not a mapping.
    pub(super) fn of(
        raw: &'a Spanned<RawAction>,
        problems: &mut Vec<ActionProblem>,
    ) -> Option<Self> {
        let RawNode::Map(entries) = &raw.value.node else {
            problems.push(problem_at(
                &raw.referenced,
                "action",
                format!(
                    "must be a mapping with an id, a title, a description, an approval policy \
                     and an executor, found {}",
                    raw.value.node.kind()
                ),
            ));
            return None;
        };
        let fields = Self {
            entries,
            at: raw.referenced,
        };
        fields.report_unknown_keys(problems);
        Some(fields)
    }

    fn report_unknown_keys(&self, problems: &mut Vec<ActionProblem>) {
        for (key, _) in self.entries {
            if !ACTION_KEYS.contains(&key.value.as_str()) {
                problems.push(problem_at(
                    &key.referenced,
                    &key.value,
                    format!("unknown key; the keys are {}", ACTION_KEYS.join(", ")),
                ));
            }
        }
    }

    /// Returns the value of `key`; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Spanned<RawNode>> {
        self.entries
            .iter()
            .find(|(name, _)| name.value == key)
            .map(|(_, value)| value)
            .filter(|value| !matches!(value.value, RawNode::Null))
    }

    /// Reads `key` as `T`, or reports why it cannot be read.
    fn read<T: DeserializeOwned>(
        &self,
        key: &str,
        problems: &mut Vec<ActionProblem>,
    ) -> Option<Spanned<T>> {
        let node = self.get(key)?;
        match node::read::<T>(node, key) {
            Ok(value) => Some(Spanned::new(value, node.referenced, node.defined)),
            Err(error) => {
                problems.push(node_problem(error));
                None
            }
        }
    }

    /// Reads an optional text key, trimmed; empty text counts as absent.
    pub(super) fn text(&self, key: &str, problems: &mut Vec<ActionProblem>) -> Option<String> {
        self.read::<String>(key, problems)
            .map(|text| text.value.trim().to_string())
            .filter(|text| !text.is_empty())
    }

    /// Reads a text key every action needs, reporting it when missing or
    /// empty. Returns the trimmed text and where it is.
    pub(super) fn required_text(
        &self,
        key: &str,
        problems: &mut Vec<ActionProblem>,
    ) -> Option<Spanned<String>> {
        if self.get(key).is_none() {
            problems.push(problem_at(
                &self.at,
                key,
                "missing; every action needs an id, a title, a description, an approval \
                 policy and an executor",
            ));
            return None;
        }
        let text = self.read::<String>(key, problems)?;
        if text.value.trim().is_empty() {
            problems.push(problem_at(&text.referenced, key, "is empty"));
            return None;
        }
        Some(Spanned::new(
            text.value.trim().to_string(),
            text.referenced,
            text.defined,
        ))
    }

    /// Reads and checks the `inputs` mapping. A problem leaves an empty
    /// schema.
    pub(super) fn inputs(
        &self,
        has_target: bool,
        problems: &mut Vec<ActionProblem>,
    ) -> InputSchema {
        let Some(node) = self.get("inputs") else {
            return InputSchema::empty();
        };
        let raw = match RawInputs::from_node(&node.value) {
            Ok(raw) => raw,
            Err(kind) => {
                problems.push(problem_at(
                    &node.referenced,
                    "inputs",
                    format!(
                        "must be a mapping of input names to definitions, such as \
                         version: {{ type: string }}, found {kind}"
                    ),
                ));
                return InputSchema::empty();
            }
        };
        match InputSchema::from_raw(&raw) {
            Ok(schema) => {
                if has_target && schema.input("target").is_some() {
                    problems.push(problem_at(
                        &node.referenced,
                        "inputs.target",
                        "`target` is reserved for the target entity of an action with \
                         target_blueprint; rename the input",
                    ));
                }
                schema
            }
            Err(input_problems) => {
                for problem in input_problems {
                    problems.push((problem.line, problem.column, problem.field, problem.message));
                }
                InputSchema::empty()
            }
        }
    }

    /// Reads and checks the `approval` block.
    pub(super) fn approval(
        &self,
        has_target: bool,
        problems: &mut Vec<ActionProblem>,
    ) -> Option<ApprovalPolicy> {
        if self.get("approval").is_none() {
            problems.push(problem_at(
                &self.at,
                "approval",
                "missing; set policy: automatic or policy: approval_required with approvers",
            ));
            return None;
        }
        let raw = self.read::<RawApproval>("approval", problems)?;
        match raw.value.build(has_target) {
            Ok(policy) => Some(policy),
            Err(approval_problems) => {
                for (field, message) in approval_problems {
                    problems.push(problem_at(&raw.referenced, &field, message));
                }
                None
            }
        }
    }

    /// Reads the `executor` block: its `type` first, then the keys of that
    /// type, so a mistake in a key is reported at that key.
    pub(super) fn executor(
        &self,
        problems: &mut Vec<ActionProblem>,
    ) -> Option<Spanned<ExecutorConfig>> {
        let Some(node) = self.get("executor") else {
            problems.push(problem_at(
                &self.at,
                "executor",
                "missing; set type: webhook or type: github_workflow",
            ));
            return None;
        };
        read_executor(node)
            .map_err(|error| problems.push(node_problem(error)))
            .ok()
    }
}

fn read_executor(node: &Spanned<RawNode>) -> Result<Spanned<ExecutorConfig>, NodeError> {
    let RawNode::Map(entries) = &node.value else {
        return Err(NodeError::at(
            &node.referenced,
            "executor",
            format!(
                "must be a mapping such as {{ type: webhook, url: ..., secret_env: ... }}, \
                 found {}",
                node.value.kind()
            ),
        ));
    };
    let Some((_, kind)) = entries.iter().find(|(key, _)| key.value == "type") else {
        return Err(NodeError::at(
            &node.referenced,
            "executor.type",
            "missing; set type: webhook or type: github_workflow",
        ));
    };
    let rest = Spanned::new(
        RawNode::Map(
            entries
                .iter()
                .filter(|(key, _)| key.value != "type")
                .cloned()
                .collect(),
        ),
        node.referenced,
        node.defined,
    );

    let config = match &kind.value {
        RawNode::String(text) if text == "webhook" => {
            ExecutorConfig::Webhook(node::read::<WebhookConfig>(&rest, "executor")?)
        }
        RawNode::String(text) if text == "github_workflow" => {
            ExecutorConfig::GithubWorkflow(node::read::<GithubWorkflowConfig>(&rest, "executor")?)
        }
        other => {
            let shown = match other {
                RawNode::String(text) => format!("{text:?}"),
                other => other.kind().to_string(),
            };
            return Err(NodeError::at(
                &kind.referenced,
                "executor.type",
                format!("{shown} is not an executor type; use webhook or github_workflow"),
            ));
        }
    };
    Ok(Spanned::new(config, node.referenced, node.defined))
}

/// Builds a problem at a location.
pub(super) fn problem_at(at: &Location, field: &str, message: impl Into<String>) -> ActionProblem {
    let known = at.line() > 0;
    (
        known.then(|| at.line()),
        known.then(|| at.column()),
        field.to_string(),
        message.into(),
    )
}

fn node_problem(error: NodeError) -> ActionProblem {
    (error.line, error.column, error.field, error.message)
}
