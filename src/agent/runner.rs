//! The tool-calling loop: model turn, tool calls, model turn, ... answer.
//!
//! Limits, all from [`LoopSettings`]: at most `max_tool_calls` tool calls
//! per question (after that the model is asked to answer without tools);
//! one wall-clock budget for the whole run, including retries; and each
//! tool result cut to `tool_result_max_bytes` with a note saying so. A tool
//! call the model gets wrong (an unknown tool, bad arguments) goes back to
//! the model as an error result so it can correct itself.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, info_span, instrument};

use super::Agent;
use crate::config::LoopSettings;
use crate::llm::retry::{RetryPolicy, complete_with_retry};
use crate::llm::{ChatRequest, LlmBackend, LlmError, Message, ToolCall, ToolChoice, Usage};
use crate::metrics::Metrics;
use crate::store::invocations::{ToolCallRecord, Turn};
use crate::tools::{ToolContext, ToolOutcome};

/// Longest wait between retries of a model request.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub answer: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
}

/// Why a run produced no answer; carries what happened before the failure
/// so the invocation record keeps it.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct RunFailure {
    pub kind: RunFailureKind,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
}

/// The cause of a failed run.
#[derive(Debug, thiserror::Error)]
pub enum RunFailureKind {
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error("the time budget of {0:?} ran out")]
    TimeBudget(Duration),
    #[error("the model returned an empty answer")]
    EmptyAnswer,
}

/// Runs one question through the model and the agent's tools.
#[instrument(skip_all, fields(agent = %agent.id, backend = backend.name()))]
pub async fn run(
    metrics: &Metrics,
    backend: &dyn LlmBackend,
    agent: &Agent,
    context: &ToolContext,
    settings: &LoopSettings,
    history: &[Turn],
    question: &str,
) -> Result<RunOutput, RunFailure> {
    let deadline = Instant::now() + settings.time_budget;
    let policy = RetryPolicy {
        max_retries: settings.llm_max_retries,
        base_delay: settings.llm_retry_base,
        max_delay: MAX_RETRY_DELAY,
    };

    let mut messages = Vec::with_capacity(history.len() * 2 + 1);
    for turn in history {
        messages.push(Message::User {
            text: turn.question.clone(),
        });
        messages.push(Message::Assistant {
            text: turn.answer.clone(),
            tool_calls: Vec::new(),
        });
    }
    messages.push(Message::User {
        text: question.to_string(),
    });

    let mut state = LoopState::default();
    loop {
        let tools_allowed = state.records.len() < settings.max_tool_calls;
        let request = ChatRequest {
            system: agent.system_prompt.clone(),
            messages: messages.clone(),
            tools: agent.tools.specs(),
            tool_choice: if tools_allowed {
                ToolChoice::Auto
            } else {
                ToolChoice::None
            },
            max_tokens: settings.llm_max_tokens,
        };

        let started = Instant::now();
        let response = complete_with_retry(backend, &request, &policy, deadline).await;
        let outcome = if response.is_ok() { "ok" } else { "error" };
        metrics.llm_request(backend.name(), outcome, started.elapsed());
        let response = match response {
            Ok(response) => response,
            Err(LlmError::Timeout(_)) if Instant::now() >= deadline => {
                return Err(state.fail(RunFailureKind::TimeBudget(settings.time_budget)));
            }
            Err(error) => return Err(state.fail(error.into())),
        };
        state.usage.add(response.usage);
        metrics.llm_tokens(
            backend.name(),
            response.usage.input_tokens,
            response.usage.output_tokens,
        );

        if response.tool_calls.is_empty() || !tools_allowed {
            let answer = response.text.trim().to_string();
            if answer.is_empty() {
                return Err(state.fail(RunFailureKind::EmptyAnswer));
            }
            return Ok(RunOutput {
                answer,
                tool_calls: state.records,
                usage: state.usage,
            });
        }

        messages.push(Message::Assistant {
            text: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
        });
        for call in &response.tool_calls {
            let message = state
                .run_tool(agent, context, settings, call, deadline)
                .await;
            let outcome = match state.records.last() {
                Some(record) if record.error.is_none() => "ok",
                _ => "error",
            };
            // A model can name any tool; unknown names share one label so
            // they cannot grow the metric without bound.
            let tool = if agent.tools.get(&call.name).is_some() {
                call.name.as_str()
            } else {
                "unknown"
            };
            metrics.tool_call(tool, outcome);
            messages.push(message);
        }
        if Instant::now() >= deadline {
            return Err(state.fail(RunFailureKind::TimeBudget(settings.time_budget)));
        }
    }
}

#[derive(Default)]
struct LoopState {
    records: Vec<ToolCallRecord>,
    usage: Usage,
}

impl LoopState {
    fn fail(self, kind: RunFailureKind) -> RunFailure {
        RunFailure {
            kind,
            tool_calls: self.records,
            usage: self.usage,
        }
    }

    /// Runs one tool call within the limits and returns the tool result
    /// message for the model. Every call gets a result, because providers
    /// reject a conversation with an unanswered tool call.
    async fn run_tool(
        &mut self,
        agent: &Agent,
        context: &ToolContext,
        settings: &LoopSettings,
        call: &ToolCall,
        deadline: Instant,
    ) -> Message {
        if self.records.len() >= settings.max_tool_calls {
            return tool_result(
                call,
                error_content(&format!(
                    "the limit of {} tool calls per question is reached; answer with what you \
                     have",
                    settings.max_tool_calls
                )),
                true,
            );
        }

        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let span = info_span!("tool_call", tool = %call.name);
        let outcome = match tokio::time::timeout(remaining, agent.tools.execute(context, call))
            .instrument(span)
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                let message = "the tool did not finish within the time budget".to_string();
                ToolOutcome {
                    content: error_content(&message),
                    is_error: true,
                    error: Some(message),
                }
            }
        };

        let (content, truncated) = cut_to_size(&outcome.content, settings.tool_result_max_bytes);
        self.records.push(ToolCallRecord {
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            result_bytes: outcome.content.len(),
            truncated,
            error: outcome.error.clone(),
        });
        tool_result(call, content, outcome.is_error)
    }
}

fn tool_result(call: &ToolCall, content: String, is_error: bool) -> Message {
    Message::ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content,
        is_error,
    }
}

fn error_content(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Cuts a tool result to at most `max_bytes`, at a character boundary, and
/// appends a note saying how much was cut. Returns whether it cut.
pub fn cut_to_size(content: &str, max_bytes: usize) -> (String, bool) {
    if content.len() <= max_bytes {
        return (content.to_string(), false);
    }
    let note = format!(
        "\n[result cut from {} to about {max_bytes} bytes; ask for fewer results or a narrower \
         query to see the rest]",
        content.len()
    );
    let mut cut = max_bytes.saturating_sub(note.len());
    while cut > 0 && !content.is_char_boundary(cut) {
        cut -= 1;
    }
    (format!("{}{note}", &content[..cut]), true)
}
