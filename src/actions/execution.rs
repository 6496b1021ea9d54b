//! Executing a run that is in progress: build the executor's request from
//! the stored run, run it once, and record how it ended.

use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{error, instrument, warn};

use super::definition::ActionDefinition;
use super::executor::{RunRequest, TargetEntity};
use crate::catalog::EntityRef;
use crate::clock::SharedClock;
use crate::store::Store;
use crate::store::action_runs::{self, ActionRun, RunEnd};

/// Time allowed beyond an executor's own timeout before the run is
/// recorded as failed anyway, so a stuck executor never leaves a run in
/// progress.
const EXECUTION_MARGIN: Duration = Duration::from_secs(15);

/// Longest a run may stay in progress before a sweep fails it as
/// interrupted: the executor's timeout plus the margin.
pub fn stale_after(action: &ActionDefinition) -> Duration {
    action.executor.timeout() + EXECUTION_MARGIN * 2
}

/// Runs an in-progress run once and records its end. Returns the run as
/// recorded; when another process already ended it, the stored run. A run
/// that is no longer in progress when execution starts is not executed.
#[instrument(skip_all, fields(run_id = %run.id, action = %action.id))]
pub async fn execute(
    store: &Store,
    clock: &SharedClock,
    action: &ActionDefinition,
    run: &ActionRun,
) -> Result<ActionRun> {
    // An automatic run waits in progress until its conversation ends, and
    // a sweep may fail it as interrupted meanwhile.
    // NOTE: such a run is then shown as "interrupted, outcome unknown"
    // although it never ran; it happens only when the conversation goes on
    // longer than `stale_after` after the proposal.
    let Some(run) = action_runs::start(store, clock, &run.id).await? else {
        warn!("the run is no longer in progress, so it was not executed");
        return action_runs::get(store, &run.id)
            .await?
            .context("the run disappeared before it ran");
    };
    let run = &run;
    let request = RunRequest {
        run_id: run.id.clone(),
        action_id: action.id.clone(),
        action_title: action.title.clone(),
        inputs: run.inputs.clone(),
        target: run
            .target_ref
            .as_deref()
            .and_then(EntityRef::parse)
            .map(|target| TargetEntity {
                reference: target.to_string(),
                blueprint: target.blueprint.clone(),
                identifier: target.identifier.clone(),
                title: run
                    .target_title
                    .clone()
                    .unwrap_or_else(|| target.identifier.clone()),
            }),
        requester: run.requester.clone(),
        approver: run.decider.clone().filter(|decider| decider != "automatic"),
        invocation_id: run.invocation_id.clone(),
        requested_at: run.created_at,
        approved_at: run.decided_at,
    };

    let limit = action.executor.timeout() + EXECUTION_MARGIN;
    let end =
        match tokio::time::timeout(limit, action.executor.execute(&request, clock.now_millis()))
            .await
        {
            Ok(result) => RunEnd {
                success: result.success,
                summary: result.summary,
                http_status: result.http_status,
                link: result.link,
                detail: result.detail,
            },
            Err(_) => {
                error!("the executor did not return within its timeout and margin");
                RunEnd {
                    success: false,
                    summary: "timed out, outcome unknown".to_string(),
                    http_status: None,
                    link: None,
                    detail: serde_json::json!({ "error": "executor did not return" }),
                }
            }
        };

    match action_runs::finish(store, clock, &run.id, &end).await? {
        Some(finished) => Ok(finished),
        None => action_runs::get(store, &run.id)
            .await?
            .context("the run disappeared while it ran"),
    }
}
