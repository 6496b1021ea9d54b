//! Self-service actions: definitions in the agents file, their inputs,
//! approval, and runs.
//!
//! An agent proposes an action through a tool; code validates its inputs
//! ([`inputs`]), records a run, and either runs it at once (`automatic`) or
//! posts an approval card in Slack ([`approval`]). A person approves or
//! rejects it there; the run moves out of `waiting_for_approval` in one
//! conditional update, so it executes exactly once, through its
//! [`executor`]: a signed webhook or a GitHub Actions workflow dispatch.

pub mod approval;
pub mod definition;
mod entry;
pub mod execution;
pub mod executor;
pub mod inputs;
mod node;
pub mod proposal;

use std::fmt::Write;

use crate::agent::agents_file::AgentsFile;
use approval::ApprovalPolicy;

/// Describes the actions of an agents file, for `agentdesk actions list`.
pub fn describe(file: &AgentsFile) -> String {
    let mut out = String::new();
    if file.actions.is_empty() {
        out.push_str("No actions are defined; add them under `actions` in the agents file.\n");
        return out;
    }
    for action in &file.actions {
        let agents: Vec<&str> = file
            .agents
            .iter()
            .filter(|agent| agent.actions.contains(&action.id))
            .map(|agent| agent.id.as_str())
            .collect();
        let _ = writeln!(out, "{} ({})", action.id, action.title);
        let _ = writeln!(out, "  {}", action.description);
        if let Some(blueprint) = &action.target_blueprint {
            let _ = writeln!(out, "  target: a {blueprint}");
        }
        let inputs: Vec<&str> = action.inputs.inputs().map(|(name, _)| name).collect();
        if !inputs.is_empty() {
            let _ = writeln!(out, "  inputs: {}", inputs.join(", "));
        }
        match &action.approval {
            ApprovalPolicy::Automatic => {
                let _ = writeln!(out, "  approval: automatic");
            }
            ApprovalPolicy::Required(approvers) => {
                let _ = writeln!(
                    out,
                    "  approval: required from {}; self-approval {}; expires after {}",
                    approval::describe(approvers),
                    if approvers.allow_self_approval {
                        "allowed"
                    } else {
                        "not allowed"
                    },
                    humanize(approvers.expires_after)
                );
            }
        }
        let _ = writeln!(
            out,
            "  executor: {} (timeout {} s)",
            action.executor.kind(),
            action.executor.timeout().as_secs()
        );
        let _ = writeln!(
            out,
            "  proposed by: {}",
            if agents.is_empty() {
                "no agent".to_string()
            } else {
                agents.join(", ")
            }
        );
    }
    out
}

fn humanize(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    if seconds.is_multiple_of(86_400) {
        format!("{} d", seconds / 86_400)
    } else if seconds.is_multiple_of(3_600) {
        format!("{} h", seconds / 3_600)
    } else if seconds.is_multiple_of(60) {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}
