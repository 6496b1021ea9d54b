//! Templates for values an executor fills from a run, such as GitHub
//! workflow inputs.
//!
//! A template is literal text with `{{placeholder}}`s (spaces inside the
//! braces are allowed):
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{inputs.NAME}}` | the action input `NAME` |
//! | `{{target.ref}}` | `blueprint:identifier` of the target entity |
//! | `{{target.blueprint}}`, `{{target.identifier}}`, `{{target.title}}` | parts of the target entity |
//! | `{{run_id}}` | the run's id |
//! | `{{action.id}}` | the action's id |
//! | `{{requester}}` | Slack user id of the requester, or `cli` |
//! | `{{approver}}` | Slack user id of the approver |
//! | `{{invocation_id}}` | the invocation the action was proposed in |
//!
//! An unknown placeholder is an error when the template is parsed, at
//! start. A placeholder with no value in a run (an input that was not
//! given, a target or approver the run does not have) fails that run
//! before anything is sent. Input values that are not strings are written
//! as JSON (`3`, `true`, `["a","b"]`).

use serde_json::Value;

use super::RunRequest;

const KNOWN_PLACEHOLDERS: &str = "{{inputs.NAME}}, {{target.ref}}, {{target.blueprint}}, \
     {{target.identifier}}, {{target.title}}, {{run_id}}, {{action.id}}, {{requester}}, \
     {{approver}} or {{invocation_id}}";

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    Input(String),
    TargetRef,
    TargetBlueprint,
    TargetIdentifier,
    TargetTitle,
    RunId,
    ActionId,
    Requester,
    Approver,
    InvocationId,
}

impl Template {
    /// Parses a template, rejecting unclosed and unknown placeholders.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;

        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after_open = &rest[open + 2..];
            let close = after_open
                .find("}}")
                .ok_or_else(|| format!("unclosed placeholder in {text:?}: add the closing }}}}"))?;
            let name = after_open[..close].trim();
            parts.push(Part::Placeholder(Placeholder::parse(name)?));
            rest = &after_open[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }

        Ok(Self { parts })
    }

    /// Fills the placeholders from a run.
    pub(super) fn render(&self, request: &RunRequest) -> Result<String, String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Placeholder(placeholder) => text.push_str(&placeholder.value(request)?),
            }
        }
        Ok(text)
    }

    /// Returns the names of the inputs the template refers to.
    pub(super) fn input_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Placeholder(Placeholder::Input(name)) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Reports whether the template refers to the target entity.
    pub(super) fn uses_target(&self) -> bool {
        self.parts.iter().any(|part| {
            matches!(
                part,
                Part::Placeholder(
                    Placeholder::TargetRef
                        | Placeholder::TargetBlueprint
                        | Placeholder::TargetIdentifier
                        | Placeholder::TargetTitle
                )
            )
        })
    }

    /// Reports whether the template refers to the approver.
    pub(super) fn uses_approver(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Placeholder(Placeholder::Approver)))
    }
}

impl Placeholder {
    fn parse(name: &str) -> Result<Self, String> {
        let placeholder = match name {
            "target.ref" => Self::TargetRef,
            "target.blueprint" => Self::TargetBlueprint,
            "target.identifier" => Self::TargetIdentifier,
            "target.title" => Self::TargetTitle,
            "run_id" => Self::RunId,
            "action.id" => Self::ActionId,
            "requester" => Self::Requester,
            "approver" => Self::Approver,
            "invocation_id" => Self::InvocationId,
            _ => match name.strip_prefix("inputs.") {
                Some(input) if is_input_name(input) => Self::Input(input.to_string()),
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{{{name}}}}}: use {KNOWN_PLACEHOLDERS}"
                    ));
                }
            },
        };
        Ok(placeholder)
    }

    fn value(&self, request: &RunRequest) -> Result<String, String> {
        let target = || {
            request
                .target
                .as_ref()
                .ok_or_else(|| format!("{self} has no value: the run has no target entity"))
        };

        let value = match self {
            Self::Input(name) => match request.inputs.get(name) {
                None | Some(Value::Null) => {
                    return Err(format!(
                        "{self} has no value: the run has no input {name:?}"
                    ));
                }
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            },
            Self::TargetRef => target()?.reference.clone(),
            Self::TargetBlueprint => target()?.blueprint.clone(),
            Self::TargetIdentifier => target()?.identifier.clone(),
            Self::TargetTitle => target()?.title.clone(),
            Self::RunId => request.run_id.clone(),
            Self::ActionId => request.action_id.clone(),
            Self::Requester => request.requester.clone(),
            Self::Approver => request.approver.clone().ok_or_else(|| {
                format!("{self} has no value: the run was not approved by anyone")
            })?,
            Self::InvocationId => request
                .invocation_id
                .clone()
                .ok_or_else(|| format!("{self} has no value: the run has no invocation"))?,
        };
        Ok(value)
    }
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Input(name) => return write!(f, "{{{{inputs.{name}}}}}"),
            Self::TargetRef => "target.ref",
            Self::TargetBlueprint => "target.blueprint",
            Self::TargetIdentifier => "target.identifier",
            Self::TargetTitle => "target.title",
            Self::RunId => "run_id",
            Self::ActionId => "action.id",
            Self::Requester => "requester",
            Self::Approver => "approver",
            Self::InvocationId => "invocation_id",
        };
        write!(f, "{{{{{name}}}}}")
    }
}

/// Input names are identifiers: letters, digits, `_` and `-`.
fn is_input_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
