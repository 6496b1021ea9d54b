//! The running application: shared state and the pipeline that turns one
//! question into a recorded, answered invocation.
//!
//! Both front ends use [`App::answer`]: `agentdesk ask` from the terminal and
//! the Slack listener in `serve`. For each question it:
//!
//! 1. routes it to an agent (an explicit agent id, a leading nickname, the
//!    channel's default agent, the best matching description, or the
//!    default agent);
//! 2. removes secrets from it (and e-mail addresses when configured);
//! 3. records the invocation as in progress;
//! 4. for Slack users, refuses it when the user may not use the agent or is
//!    over a limit, recording the invocation as `refused`;
//! 5. runs the agent loop with the thread's earlier turns, and records how
//!    it ended and the tokens it used.
//!
//! A failure reaches the asker as one short message with the invocation id;
//! the log gets the whole error chain. Questions from the terminal skip
//! access checks and limits: whoever runs the binary is an operator.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tracing::{Span, error, info, instrument, warn};

use crate::actions::proposal::{Proposal, ProposalSession};
use crate::agent::access::AccessControl;
use crate::agent::agents_file::AgentsFile;
use crate::agent::router::{Route, RouteReason};
use crate::agent::runner::{self, RunFailureKind};
use crate::agent::{Agent, Agents};
use crate::catalog::{Catalog, demo};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::governance::limits::{self, Limits, RequestKey};
use crate::governance::redaction::Redactor;
use crate::llm::{LlmError, Usage};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::invocations::{
    self, NewInvocation, Outcome, Source, Status, StoragePolicy, ToolCallRecord,
};
use crate::tools::{ToolContext, ToolRegistry};

/// Earlier turns of a Slack thread given to the model with a new question.
const MAX_HISTORY_TURNS: usize = 10;

/// Workspace key used for limits when a question names no Slack team.
const UNKNOWN_WORKSPACE: &str = "workspace";

/// Shared state of a running agentdesk.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub catalog: Catalog,
    pub agents: Agents,
    /// The agents file with its limits, retention and redaction settings.
    pub agents_file: Arc<AgentsFile>,
    pub access: Arc<AccessControl>,
    pub redactor: Arc<Redactor>,
    pub clock: SharedClock,
    /// Stores invocations without prompts, answers or tool arguments (see
    /// [`StoragePolicy::MetadataOnly`]), from `retention.metadata_only` in
    /// the agents file. The model then gets no earlier turns of a Slack
    /// thread, since none are kept.
    pub metadata_only: bool,
    /// Counters for `/metrics`, shared by every clone.
    pub metrics: Arc<Metrics>,
    /// What `serve` reports on its operations endpoints.
    pub status: Arc<ServeStatus>,
}

/// The state of a running `serve`, for `/readyz` and for tests.
#[derive(Debug, Default)]
pub struct ServeStatus {
    /// Where the operations endpoints listen, once bound.
    pub ops_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Why Socket Mode stopped for good (Slack said `link_disabled`).
    pub sockets_stopped: std::sync::Mutex<Option<String>>,
}

/// A question and where it came from.
#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub source: Source,
    /// Agent asked for by id; `None` lets the router choose.
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
    pub agent_title: String,
    /// How the agent was chosen.
    pub route: RouteReason,
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
    /// Why a refused invocation was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Whether this answer's end was recorded; false when the invocation was
    /// marked interrupted first (shutdown), so the asker was already told.
    #[serde(skip)]
    pub recorded: bool,
    /// Ids of the action runs proposed while answering.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proposed_runs: Vec<String>,
    /// The proposals themselves, for the front end to post or run.
    #[serde(skip)]
    pub proposals: Vec<Proposal>,
}

impl App {
    /// Connects to the database, loads the demo catalog into an empty one,
    /// reads the agents file and builds each agent's model backend.
    pub async fn start(settings: Settings, clock: SharedClock) -> Result<Self> {
        let tools = ToolRegistry::catalog_tools();
        let env = |name: &str| settings.env.get(name);
        let agents_file = AgentsFile::load(settings.agents_file.as_deref(), &tools.names(), &env)?;
        let agents = Agents::build(&agents_file, &settings, &tools)?;

        let store =
            Store::connect_with_timeout(&settings.database_url, settings.database_timeout).await?;
        demo::load_if_empty(&store, &clock).await?;
        let catalog = Catalog::new(store.clone());
        warn_about_unknown_blueprints(&catalog, &agents_file).await;
        let metadata_only = agents_file.retention.metadata_only;

        Ok(Self {
            settings: Arc::new(settings),
            catalog,
            store,
            agents,
            redactor: Arc::new(Redactor::new(&agents_file.redaction)),
            agents_file: Arc::new(agents_file),
            access: Arc::new(AccessControl::without_directory()),
            clock,
            metadata_only,
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(ServeStatus::default()),
        })
    }

    /// Records the end of an invocation and counts it for `/metrics`.
    /// Returns false when the invocation was already ended (marked
    /// interrupted at shutdown).
    async fn finish_invocation(
        &self,
        agent: &str,
        invocation_id: &str,
        outcome: &Outcome,
        policy: StoragePolicy,
    ) -> Result<bool> {
        let recorded =
            invocations::finish(&self.store, &self.clock, invocation_id, outcome, policy).await?;
        if recorded {
            self.metrics
                .invocation_finished(agent, outcome.status.as_str());
        }
        Ok(recorded)
    }

    /// Replaces the access control, for example with one that reads Slack
    /// user groups.
    pub fn with_access(mut self, access: AccessControl) -> Self {
        self.access = Arc::new(access);
        self
    }

    /// Picks the agent for a question.
    pub fn route(&self, question: &Question) -> Result<Route> {
        match &question.agent {
            Some(id) => match self.agents.get(id) {
                Some(agent) => Ok(Route {
                    agent,
                    question: question.text.clone(),
                    reason: RouteReason::Requested,
                }),
                None => {
                    let known: Vec<&str> = self
                        .agents
                        .list
                        .iter()
                        .map(|agent| agent.id.as_str())
                        .collect();
                    bail!("unknown agent {id:?}; the agents are: {}", known.join(", "))
                }
            },
            None => Ok(self
                .agents
                .route(&question.text, question.channel_id.as_deref())),
        }
    }

    /// The limits that apply to an agent: the file's, with the agent's own
    /// per-minute limit when it sets one.
    pub fn limits_for(&self, agent: &Agent) -> Limits {
        let mut limits = self.agents_file.limits.clone();
        if let Some(per_minute) = agent.requests_per_minute {
            limits.requests_per_minute_per_agent = Some(per_minute);
        }
        limits
    }

    /// Answers one question and records it as an invocation.
    #[instrument(
        skip_all,
        fields(invocation_id, agent, source = question.source.as_str(), channel = question.channel_id.as_deref(), thread_ts = question.thread_ts.as_deref())
    )]
    pub async fn answer(&self, question: Question) -> Result<Answer> {
        let route = self.route(&question)?;
        let agent = route.agent.clone();
        let invocation_id = question
            .invocation_id
            .clone()
            .unwrap_or_else(invocations::new_id);
        Span::current().record("invocation_id", invocation_id.as_str());
        Span::current().record("agent", agent.id.as_str());

        let text = self.redactor.redact(&route.question).into_owned();
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
                prompt: text.clone(),
                backend: agent.backend.name().to_string(),
                model: agent.backend.model().to_string(),
            },
            policy,
        )
        .await?;

        let mut answer = Answer {
            invocation_id: invocation_id.clone(),
            agent: agent.id.clone(),
            agent_title: agent.title.clone(),
            route: route.reason,
            backend: agent.backend.name().to_string(),
            model: agent.backend.model().to_string(),
            status: Status::InProgress,
            answer: String::new(),
            tool_calls: Vec::new(),
            tokens_in: 0,
            tokens_out: 0,
            error: None,
            refusal: None,
            recorded: false,
            proposed_runs: Vec::new(),
            proposals: Vec::new(),
        };

        let key = RequestKey {
            user: question.user_id.as_deref().unwrap_or_default(),
            agent: &agent.id,
            workspace: question.team_id.as_deref().unwrap_or(UNKNOWN_WORKSPACE),
        };
        let length = text.chars().count();
        let refusal = if length > self.settings.max_question_chars {
            let limit = self.settings.max_question_chars;
            Ok(Some((
                format!(
                    "That question is too long ({length} characters). Please keep it under \
                     {limit} characters, for example by leaving out pasted logs."
                ),
                format!("question too long: {length} characters, limit {limit}"),
            )))
        } else {
            match question.source {
                Source::Slack => self.refusal(&agent, &question, &key).await,
                _ => Ok(None),
            }
        };
        let refusal = match refusal {
            Ok(refusal) => refusal,
            Err(error) => {
                let chain = format!("{error:#}");
                error!(error = %chain, "could not check access or limits");
                let outcome = Outcome {
                    status: Status::Failed,
                    answer: None,
                    error: Some(chain.clone()),
                    refusal: None,
                    usage: Usage::default(),
                    tool_calls: Vec::new(),
                };
                answer.recorded = self
                    .finish_invocation(&agent.id, &invocation_id, &outcome, policy)
                    .await?;
                answer.status = Status::Failed;
                answer.answer = format!(
                    "Sorry, something went wrong while answering. An administrator can look up \
                     invocation {invocation_id}."
                );
                answer.error = Some(chain);
                return Ok(answer);
            }
        };
        if let Some((message, reason)) = refusal {
            info!(reason = %reason, "question refused");
            let outcome = Outcome {
                status: Status::Refused,
                answer: None,
                error: None,
                refusal: Some(reason.clone()),
                usage: Usage::default(),
                tool_calls: Vec::new(),
            };
            answer.recorded = self
                .finish_invocation(&agent.id, &invocation_id, &outcome, policy)
                .await?;
            answer.status = Status::Refused;
            answer.answer = message;
            answer.refusal = Some(reason);
            return Ok(answer);
        }

        if text.trim().is_empty() {
            // A bare mention: say what to ask instead of sending an empty
            // message to a model (some providers reject one).
            let reply = empty_question_reply(&agent);
            let outcome = Outcome {
                status: Status::Completed,
                answer: Some(reply.clone()),
                error: None,
                refusal: None,
                usage: Usage::default(),
                tool_calls: Vec::new(),
            };
            answer.recorded = self
                .finish_invocation(&agent.id, &invocation_id, &outcome, policy)
                .await?;
            answer.status = Status::Completed;
            answer.answer = reply;
            return Ok(answer);
        }

        let session = Arc::new(ProposalSession::new(
            self.store.clone(),
            self.clock.clone(),
            invocation_id.clone(),
            agent.id.clone(),
            question
                .user_id
                .clone()
                .unwrap_or_else(|| "cli".to_string()),
            question.team_id.clone(),
            question.channel_id.clone(),
            question.thread_ts.clone(),
        ));
        let context = ToolContext {
            catalog: self.catalog.clone(),
            scope: agent.scope.clone(),
            session: Some(session.clone()),
        };
        let result = runner::run(
            &self.metrics,
            agent.backend.as_ref(),
            &agent,
            &context,
            &self.settings.agent_loop,
            &history,
            &text,
        )
        .await;

        let (outcome, reply) = match result {
            Ok(output) => {
                info!(
                    tool_calls = output.tool_calls.len(),
                    tokens_in = output.usage.input_tokens,
                    tokens_out = output.usage.output_tokens,
                    "question answered"
                );
                let reply = self.redactor.redact(&output.answer).into_owned();
                let outcome = Outcome {
                    status: Status::Completed,
                    answer: Some(reply.clone()),
                    error: None,
                    refusal: None,
                    usage: output.usage,
                    tool_calls: self.redact_tool_calls(output.tool_calls),
                };
                (outcome, reply)
            }
            Err(failure) => {
                let chain = error_chain(&failure.kind);
                error!(error = %chain, "question failed");
                let reply = failure_message(&failure.kind, &invocation_id);
                let outcome = Outcome {
                    status: Status::Failed,
                    answer: None,
                    error: Some(chain),
                    refusal: None,
                    usage: failure.usage,
                    tool_calls: self.redact_tool_calls(failure.tool_calls),
                };
                (outcome, reply)
            }
        };

        answer.recorded = self
            .finish_invocation(&agent.id, &invocation_id, &outcome, policy)
            .await
            .context("could not record the end of the invocation")?;
        let tokens = outcome.usage.input_tokens + outcome.usage.output_tokens;
        if question.source == Source::Slack
            && tokens > 0
            && let Err(error) = limits::record_tokens(&self.store, &self.clock, &key, tokens).await
        {
            warn!(error = %format!("{error:#}"), "could not count the invocation's tokens");
        }

        answer.proposals = session.take_proposals();
        answer.proposed_runs = answer
            .proposals
            .iter()
            .map(|proposal| proposal.run_id.clone())
            .collect();
        answer.status = outcome.status;
        answer.answer = reply;
        answer.tool_calls = outcome.tool_calls;
        answer.tokens_in = outcome.usage.input_tokens;
        answer.tokens_out = outcome.usage.output_tokens;
        answer.error = outcome.error;
        Ok(answer)
    }

    /// Returns the message and recorded reason when the asker may not use
    /// the agent or is over a limit.
    async fn refusal(
        &self,
        agent: &Agent,
        question: &Question,
        key: &RequestKey<'_>,
    ) -> Result<Option<(String, String)>> {
        let user = question.user_id.as_deref().unwrap_or_default();
        let allowed = self
            .access
            .may_use(agent, user, question.channel_id.as_deref())
            .await
            .context("could not check access to the agent")?;
        if !allowed {
            let message = format!(
                "Sorry, you don't have access to the agent *{}*. Ask your platform team if \
                 you need it.",
                agent.title
            );
            return Ok(Some((
                message,
                "access: the user is not allowed to use the agent".to_string(),
            )));
        }

        let limits = self.limits_for(agent);
        if let Some(exceeded) = limits::admit(&self.store, &self.clock, &limits, key).await? {
            return Ok(Some((
                exceeded.user_message(self.clock.now_millis()),
                format!("limit: {}", exceeded.reason()),
            )));
        }
        Ok(None)
    }

    fn redact_tool_calls(&self, calls: Vec<ToolCallRecord>) -> Vec<ToolCallRecord> {
        calls
            .into_iter()
            .map(|mut call| {
                call.arguments = self.redactor.redact(&call.arguments).into_owned();
                call
            })
            .collect()
    }
}

/// The reply to an empty question: what the agent can be asked.
fn empty_question_reply(agent: &Agent) -> String {
    let mut reply = format!(
        "Ask me a question about the software catalog. *{}*: {}",
        agent.title, agent.description
    );
    if !agent.conversation_starters.is_empty() {
        reply.push_str("\n\nFor example:");
        for starter in &agent.conversation_starters {
            reply.push_str(&format!("\n- {starter}"));
        }
    }
    reply
}

/// Warns when an agent's data scope names a blueprint the catalog lacks:
/// the catalog may be imported later, so it is not an error.
async fn warn_about_unknown_blueprints(catalog: &Catalog, file: &AgentsFile) {
    let Ok(blueprints) = catalog.list_blueprints(&crate::catalog::Scope::All).await else {
        return;
    };
    for agent in &file.agents {
        for blueprint in agent.data_scope.iter().flatten() {
            if !blueprints
                .iter()
                .any(|known| &known.identifier == blueprint)
            {
                warn!(agent = %agent.id, blueprint = %blueprint, "an agent's data scope names a blueprint that is not in the catalog yet");
            }
        }
    }
    for action in &file.actions {
        for blueprint in action_blueprints(action) {
            if !blueprints.iter().any(|known| known.identifier == blueprint) {
                warn!(action = %action.id, blueprint = %blueprint, "an action names a blueprint that is not in the catalog yet; proposing it fails until the blueprint is imported");
            }
        }
    }
}

/// The blueprints an action refers to: its target's and its entity
/// inputs'.
fn action_blueprints(action: &crate::actions::definition::ActionDefinition) -> Vec<String> {
    use crate::actions::inputs::InputKind;
    let mut blueprints: Vec<String> = action.target_blueprint.iter().cloned().collect();
    for (_, spec) in action.inputs.inputs() {
        match &spec.kind {
            InputKind::Entity { blueprint } => blueprints.push(blueprint.clone()),
            InputKind::Array(rules) => {
                if let InputKind::Entity { blueprint } = &rules.items.kind {
                    blueprints.push(blueprint.clone());
                }
            }
            _ => {}
        }
    }
    blueprints
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
