//! The running application: shared state and the pipeline that turns one
//! question into a recorded, answered invocation.
//!
//! Both front ends use [`App::answer`]: `agentdesk ask` from the terminal and
//! the Slack listener in `serve`. It loads the thread's earlier turns,
//! records the invocation as in progress, runs the agent loop, and records
//! how it ended. A failure reaches the asker as one short message with the
//! invocation id; the log gets the whole error chain.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tracing::{Span, error, info, instrument};

use crate::agent::runner::{self, RunFailureKind};
use crate::agent::{Agent, default_agent};
use crate::catalog::{Catalog, demo};
use crate::clock::SharedClock;
use crate::config::{BackendKind, Settings};
use crate::llm::anthropic::AnthropicBackend;
use crate::llm::offline::OfflineBackend;
use crate::llm::openai::OpenAiBackend;
use crate::llm::{LlmBackend, LlmError};
use crate::store::Store;
use crate::store::invocations::{
    self, NewInvocation, Outcome, Source, Status, StoragePolicy, ToolCallRecord,
};
use crate::tools::ToolContext;

/// Earlier turns of a Slack thread given to the model with a new question.
const MAX_HISTORY_TURNS: usize = 10;

/// Shared state of a running agentdesk.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub catalog: Catalog,
    pub backend: Arc<dyn LlmBackend>,
    pub agents: Vec<Arc<Agent>>,
    pub clock: SharedClock,
    /// Stores invocations without prompts, answers or tool arguments (see
    /// [`StoragePolicy::MetadataOnly`]); false unless set after start. The
    /// model then gets no earlier turns of a Slack thread, since none are
    /// kept.
    pub metadata_only: bool,
}

/// A question and where it came from.
#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub source: Source,
    /// Agent asked for by id; `None` for the default agent.
    pub agent: Option<String>,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    /// The Slack thread the answer goes to; its earlier turns are history.
    pub thread_ts: Option<String>,
    pub message_ts: Option<String>,
    pub user_id: Option<String>,
    /// Id to record the invocation under; a new one when `None`.
    pub invocation_id: Option<String>,
}

impl Question {
    /// A question typed in the terminal.
    pub fn from_cli(text: impl Into<String>, agent: Option<String>) -> Self {
        Self {
            text: text.into(),
            source: Source::Cli,
            agent,
            team_id: None,
            channel_id: None,
            thread_ts: None,
            message_ts: None,
            user_id: None,
            invocation_id: None,
        }
    }
}

/// What the asker gets back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    pub invocation_id: String,
    pub agent: String,
    pub backend: String,
    pub model: String,
    pub status: Status,
    /// The answer, or a short message saying why there is none.
    pub answer: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The error chain of a failed invocation (never shown in Slack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl App {
    /// Connects to the database, loads the demo catalog into an empty one,
    /// and builds the configured model backend.
    pub async fn start(settings: Settings, clock: SharedClock) -> Result<Self> {
        let store = Store::connect(&settings.database_url).await?;
        demo::load_if_empty(&store, &clock).await?;
        let backend = build_backend(&settings)?;

        Ok(Self {
            settings: Arc::new(settings),
            catalog: Catalog::new(store.clone()),
            store,
            backend,
            agents: vec![default_agent()],
            clock,
            metadata_only: false,
        })
    }

    /// Finds an agent by id; `None` means the default agent.
    pub fn agent(&self, id: Option<&str>) -> Result<Arc<Agent>> {
        let id = id.unwrap_or(crate::agent::DEFAULT_AGENT_ID);
        match self.agents.iter().find(|agent| agent.id == id) {
            Some(agent) => Ok(agent.clone()),
            None => {
                let known: Vec<&str> = self.agents.iter().map(|agent| agent.id.as_str()).collect();
                bail!("unknown agent {id:?}; the agents are: {}", known.join(", "))
            }
        }
    }

    /// Answers one question and records it as an invocation.
    #[instrument(
        skip_all,
        fields(invocation_id, agent, source = question.source.as_str(), channel = question.channel_id.as_deref(), thread_ts = question.thread_ts.as_deref())
    )]
    pub async fn answer(&self, question: Question) -> Result<Answer> {
        let agent = self.agent(question.agent.as_deref())?;
        let invocation_id = question
            .invocation_id
            .clone()
            .unwrap_or_else(invocations::new_id);
        Span::current().record("invocation_id", invocation_id.as_str());
        Span::current().record("agent", agent.id.as_str());

        let started_at = self.clock.now_millis();
        let history = match (&question.channel_id, &question.thread_ts) {
            (Some(channel), Some(thread)) => {
                invocations::thread_turns(
                    &self.store,
                    channel,
                    thread,
                    started_at,
                    MAX_HISTORY_TURNS,
                )
                .await?
            }
            _ => Vec::new(),
        };

        let policy = StoragePolicy::from_metadata_only(self.metadata_only);
        invocations::start(
            &self.store,
            &self.clock,
            &NewInvocation {
                id: invocation_id.clone(),
                source: question.source,
                agent: agent.id.clone(),
                team_id: question.team_id.clone(),
                channel_id: question.channel_id.clone(),
                thread_ts: question.thread_ts.clone(),
                message_ts: question.message_ts.clone(),
                user_id: question.user_id.clone(),
                prompt: question.text.clone(),
                backend: self.backend.name().to_string(),
                model: self.backend.model().to_string(),
            },
            policy,
        )
        .await?;

        let context = ToolContext {
            catalog: self.catalog.clone(),
            scope: agent.scope.clone(),
        };
        let result = runner::run(
            self.backend.as_ref(),
            &agent,
            &context,
            &self.settings.agent_loop,
            &history,
            &question.text,
        )
        .await;

        let (outcome, text) = match result {
            Ok(output) => {
                info!(
                    tool_calls = output.tool_calls.len(),
                    tokens_in = output.usage.input_tokens,
                    tokens_out = output.usage.output_tokens,
                    "question answered"
                );
                let outcome = Outcome {
                    status: Status::Completed,
                    answer: Some(output.answer.clone()),
                    error: None,
                    refusal: None,
                    usage: output.usage,
                    tool_calls: output.tool_calls,
                };
                (outcome, output.answer)
            }
            Err(failure) => {
                let chain = error_chain(&failure.kind);
                error!(error = %chain, "question failed");
                let text = failure_message(&failure.kind, &invocation_id);
                let outcome = Outcome {
                    status: Status::Failed,
                    answer: None,
                    error: Some(chain),
                    refusal: None,
                    usage: failure.usage,
                    tool_calls: failure.tool_calls,
                };
                (outcome, text)
            }
        };

        invocations::finish(&self.store, &self.clock, &invocation_id, &outcome, policy)
            .await
            .context("could not record the end of the invocation")?;

        Ok(Answer {
            invocation_id,
            agent: agent.id.clone(),
            backend: self.backend.name().to_string(),
            model: self.backend.model().to_string(),
            status: outcome.status,
            answer: text,
            tool_calls: outcome.tool_calls,
            tokens_in: outcome.usage.input_tokens,
            tokens_out: outcome.usage.output_tokens,
            error: outcome.error,
        })
    }
}

/// Joins an error and its sources with `: `, as `{:#}` does for anyhow.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// The short message an asker sees when no answer could be produced.
pub fn failure_message(kind: &RunFailureKind, invocation_id: &str) -> String {
    match kind {
        RunFailureKind::Model(
            LlmError::RateLimited { .. }
            | LlmError::Server { .. }
            | LlmError::Timeout(_)
            | LlmError::Transport(_),
        ) => format!(
            "The language model is not answering right now, so I could not answer. Please try \
             again in a minute. (invocation {invocation_id})"
        ),
        RunFailureKind::TimeBudget(_) => format!(
            "I ran out of time while looking this up. Try a narrower question. (invocation \
             {invocation_id})"
        ),
        _ => format!(
            "Sorry, something went wrong while answering. An administrator can look up \
             invocation {invocation_id}."
        ),
    }
}

/// Builds the backend `AGENTDESK_BACKEND` selects.
pub fn build_backend(settings: &Settings) -> Result<Arc<dyn LlmBackend>> {
    let timeout = settings.agent_loop.llm_timeout;
    Ok(match settings.backend {
        BackendKind::Offline => Arc::new(OfflineBackend::new()),
        BackendKind::OpenAi => Arc::new(OpenAiBackend::new(&settings.openai, timeout)?),
        BackendKind::Anthropic => Arc::new(AnthropicBackend::new(&settings.anthropic, timeout)?),
    })
}
