//! Proposing an action: the tool a model calls, and the conversation it
//! records runs for.
//!
//! Each action an agent may propose becomes a tool named `propose_<id>`,
//! marked as not read-only, whose arguments are the action's inputs (plus
//! `target` when the action has a target blueprint). A call never runs
//! anything by itself: code validates the inputs against the schema and the
//! catalog, records a run (waiting for approval, or in progress for an
//! automatic action), and returns the run id to the model. Invalid inputs
//! come back as an error the model can correct. The front end then posts
//! the approval card, or runs an automatic action, for each proposal.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tracing::info;

use super::approval::ApprovalPolicy;
use super::definition::ActionDefinition;
use super::inputs::EntityLookup;
use crate::catalog::Scope;
use crate::clock::SharedClock;
use crate::store::Store;
use crate::store::action_runs::{self, NewRun, RunStatus};
use crate::store::invocations;
use crate::tools::{Tool, ToolContext, ToolError};

/// The conversation a tool call belongs to.
pub struct ProposalSession {
    pub store: Store,
    pub clock: SharedClock,
    pub invocation_id: String,
    pub agent: String,
    /// Slack user id of the asker, or `cli`.
    pub requester: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub thread_ts: Option<String>,
    /// Runs proposed during the conversation, in order. A std mutex:
    /// never held across an await.
    proposals: Mutex<Vec<Proposal>>,
}

impl std::fmt::Debug for ProposalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposalSession")
            .field("invocation_id", &self.invocation_id)
            .field("agent", &self.agent)
            .finish()
    }
}

/// One run proposed during a conversation.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub run_id: String,
    pub action: Arc<ActionDefinition>,
    /// The action, target and inputs as one canonical JSON text: a second
    /// call with the same ones returns this run instead of a new one.
    signature: String,
    status: RunStatus,
}

impl ProposalSession {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        clock: SharedClock,
        invocation_id: String,
        agent: String,
        requester: String,
        team_id: Option<String>,
        channel_id: Option<String>,
        thread_ts: Option<String>,
    ) -> Self {
        Self {
            store,
            clock,
            invocation_id,
            agent,
            requester,
            team_id,
            channel_id,
            thread_ts,
            proposals: Mutex::new(Vec::new()),
        }
    }

    /// Takes the runs proposed so far.
    pub fn take_proposals(&self) -> Vec<Proposal> {
        self.proposals
            .lock()
            .map(|mut proposals| std::mem::take(&mut *proposals))
            .unwrap_or_default()
    }

    pub(crate) fn record(&self, proposal: Proposal) {
        if let Ok(mut proposals) = self.proposals.lock() {
            proposals.push(proposal);
        }
    }

    /// Finds a run proposed earlier in the conversation with the same
    /// signature.
    fn find(&self, signature: &str) -> Option<Proposal> {
        self.proposals.lock().ok().and_then(|proposals| {
            proposals
                .iter()
                .find(|proposal| proposal.signature == signature)
                .cloned()
        })
    }
}

/// The tool that proposes one action.
pub struct ProposeAction {
    action: Arc<ActionDefinition>,
    name: String,
    description: String,
}

impl ProposeAction {
    pub fn new(action: Arc<ActionDefinition>) -> Self {
        let approval = match &action.approval {
            ApprovalPolicy::Automatic => "It runs at once, without approval.".to_string(),
            ApprovalPolicy::Required(_) => {
                "A person must approve it in Slack before it runs; tell the user it awaits approval."
                    .to_string()
            }
        };
        let description = format!(
            "Propose the action \"{}\" ({}): {} {approval} Only call it when the user asks for \
             this action; fill the inputs from the conversation, and ask the user for any you \
             do not know.",
            action.title, action.id, action.description
        );
        Self {
            name: tool_name(&action.id),
            description,
            action,
        }
    }
}

/// The tool name of an action.
pub fn tool_name(action_id: &str) -> String {
    format!("propose_{}", action_id.replace('-', "_"))
}

#[async_trait]
impl Tool for ProposeAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        self.action.tool_schema()
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<Value, ToolError> {
        let Some(session) = &context.session else {
            return Err(ToolError::InvalidArguments(
                "actions can only be proposed in a conversation".to_string(),
            ));
        };
        let Value::Object(mut arguments) = arguments else {
            return Err(ToolError::InvalidArguments(
                "the arguments must be an object".to_string(),
            ));
        };

        let target = match &self.action.target_blueprint {
            Some(blueprint) => Some(
                self.resolve_target(context, blueprint, arguments.remove("target"))
                    .await?,
            ),
            None => None,
        };
        let inputs = self
            .action
            .inputs
            .validate(&Value::Object(arguments), context)
            .await
            .map_err(|errors| {
                ToolError::InvalidArguments(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;

        // Models sometimes repeat a call, in parallel or after another
        // tool's error; a second run of the same request would act twice.
        let signature = json!({
            "action": self.action.id,
            "target": target.as_ref().map(|(reference, _)| reference),
            "inputs": inputs.0,
        })
        .to_string();
        if let Some(earlier) = session.find(&signature) {
            info!(run_id = %earlier.run_id, action = %self.action.id, "repeated proposal not recorded");
            let message = format!(
                "This action was already proposed with the same target and inputs in this \
                 conversation as run {}; it was not proposed again.",
                earlier.run_id
            );
            return Ok(proposal_output(
                &earlier.run_id,
                &self.action.id,
                earlier.status,
                target.as_ref(),
                inputs.0,
                &message,
            ));
        }

        let (status, decider, expires_at) = match &self.action.approval {
            ApprovalPolicy::Automatic => {
                (RunStatus::InProgress, Some("automatic".to_string()), None)
            }
            ApprovalPolicy::Required(approvers) => (
                RunStatus::WaitingForApproval,
                None,
                Some(session.clock.now_millis() + approvers.expires_after.as_millis() as i64),
            ),
        };
        let run = NewRun {
            id: invocations::new_id(),
            action_id: self.action.id.clone(),
            agent: session.agent.clone(),
            invocation_id: Some(session.invocation_id.clone()),
            inputs: inputs.0,
            target_ref: target.as_ref().map(|(reference, _)| reference.clone()),
            target_title: target.as_ref().map(|(_, title)| title.clone()),
            requester: session.requester.clone(),
            team_id: session.team_id.clone(),
            channel_id: session.channel_id.clone(),
            thread_ts: session.thread_ts.clone(),
            status,
            decider,
            expires_at,
        };
        action_runs::create(&session.store, &session.clock, &run).await?;
        info!(run_id = %run.id, action = %self.action.id, status = %status, "action proposed");
        session.record(Proposal {
            run_id: run.id.clone(),
            action: self.action.clone(),
            signature,
            status,
        });

        let message = match status {
            RunStatus::InProgress => {
                "The action is running now; its result will be posted in the thread."
            }
            _ => {
                "The action is proposed and waits for approval in Slack; an approver must approve it before it runs."
            }
        };
        Ok(proposal_output(
            &run.id,
            &self.action.id,
            status,
            target.as_ref(),
            run.inputs,
            message,
        ))
    }
}

/// The tool's result for a recorded run.
fn proposal_output(
    run_id: &str,
    action_id: &str,
    status: RunStatus,
    target: Option<&(String, String)>,
    inputs: Map<String, Value>,
    message: &str,
) -> Value {
    let mut output = Map::new();
    output.insert("run_id".into(), json!(run_id));
    output.insert("action".into(), json!(action_id));
    output.insert("status".into(), json!(status.as_str()));
    if let Some((reference, title)) = target {
        output.insert("target".into(), json!(reference));
        output.insert("target_title".into(), json!(title));
    }
    output.insert("inputs".into(), Value::Object(inputs));
    output.insert("message".into(), json!(message));
    Value::Object(output)
}

impl ProposeAction {
    /// Resolves the `target` argument to one entity of the target
    /// blueprint, within the agent's data scope.
    async fn resolve_target(
        &self,
        context: &ToolContext,
        blueprint: &str,
        given: Option<Value>,
    ) -> Result<(String, String), ToolError> {
        let known = context.catalog.list_blueprints(&Scope::All).await?;
        if !known.iter().any(|known| known.identifier == blueprint) {
            return Err(ToolError::NotFound(format!(
                "the action's target blueprint {blueprint:?} is not in the catalog, so it cannot \
                 be proposed; an administrator must import it or fix the action"
            )));
        }
        let text = match given {
            Some(Value::String(text)) if !text.trim().is_empty() => text,
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(ToolError::InvalidArguments(format!(
                    "target is required: the identifier of the {blueprint} the action is for"
                )));
            }
            Some(other) => {
                return Err(ToolError::InvalidArguments(format!(
                    "target must be a string, the identifier of the {blueprint} the action is \
                     for, such as \"{blueprint}:name\" (got {})",
                    crate::catalog::truncate_chars(&other.to_string(), 60)
                )));
            }
        };
        let found = context
            .find(blueprint, &text)
            .await
            .map_err(ToolError::Failed)?;
        let reference = match found.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(ToolError::NotFound(format!(
                    "target: no {blueprint} named {text:?}; give the identifier of an existing {blueprint}"
                )));
            }
            several => {
                let names: Vec<String> = several.iter().map(ToString::to_string).collect();
                return Err(ToolError::InvalidArguments(format!(
                    "target: {text:?} matches several entities ({}); give one of these",
                    names.join(", ")
                )));
            }
        };
        let title = context
            .catalog
            .get(&context.scope, &reference)
            .await?
            .map(|detail| detail.title)
            .unwrap_or_else(|| reference.identifier.clone());
        Ok((reference.to_string(), title))
    }
}
