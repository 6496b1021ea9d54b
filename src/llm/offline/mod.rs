//! The offline backend: deterministic answers with no model and no network.
//!
//! It understands the common question kinds (who owns X, what is X, what a
//! team owns, who is in a team, what X depends on and what depends on it,
//! how many of a kind, which entities of a kind have a property value, the
//! latest of a kind for an entity) and answers them by calling the same
//! catalog tools through the same agent loop as a real model, so every
//! answer is recorded with its tool calls.
//!
//! The backend keeps no state between turns. Each request carries the
//! question and every tool result so far; a plan ([`plan`]) is replayed
//! from the start against those results ([`Replay`]) until it needs a tool
//! result it does not have yet, which becomes the next tool call, or until
//! it can write the answer.
//!
//! When the agent may propose actions, a request that names one ("deploy
//! checkout to staging") is proposed through the action's tool instead
//! ([`act`]).

mod act;
mod format;
mod intent;
mod plan;
mod vocabulary;

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    ChatRequest, ChatResponse, LlmBackend, LlmError, Message, ToolCall, ToolChoice, Usage,
};

/// Model name recorded for offline invocations.
pub const OFFLINE_MODEL: &str = "offline-rules";

/// The offline backend.
#[derive(Debug, Default, Clone)]
pub struct OfflineBackend;

impl OfflineBackend {
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl LlmBackend for OfflineBackend {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn model(&self) -> &str {
        OFFLINE_MODEL
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let conversation = Conversation::read(request);
        let offered: Vec<String> = request.tools.iter().map(|tool| tool.name.clone()).collect();
        let actions = act::offered(&request.tools);
        let exchange_count = conversation.exchanges.len();

        // Planning is CPU work; it runs off the async workers so it never
        // holds up other questions or Slack acks.
        let outcome = tokio::task::spawn_blocking(move || {
            let mut replay = Replay::new(&conversation.exchanges, offered);
            let question = planning_text(&conversation.question);
            match act::answer(&mut replay, &question, &actions) {
                Some(outcome) => outcome,
                None => plan::answer(&mut replay, &question, &conversation.earlier_questions),
            }
        })
        .await
        .map_err(|error| LlmError::BadResponse(format!("the offline planner failed: {error}")))?;

        let text = match outcome {
            Ok(answer) => answer,
            Err(Stop::Pending { name, arguments }) if request.tool_choice == ToolChoice::Auto => {
                let call = ToolCall {
                    id: format!("offline-{}", exchange_count + 1),
                    name,
                    arguments: arguments.to_string(),
                };
                return Ok(ChatResponse {
                    text: String::new(),
                    tool_calls: vec![call],
                    usage: estimate_usage(request, ""),
                });
            }
            Err(Stop::Pending { .. }) => format::out_of_tool_calls(),
            Err(Stop::Unavailable(tool)) => format::tool_unavailable(&tool),
        };

        Ok(ChatResponse {
            usage: estimate_usage(request, &text),
            text,
            tool_calls: Vec::new(),
        })
    }
}

/// Questions longer than this are planned on their start only: the
/// patterns need a sentence, and a pasted log would only slow them down.
const MAX_PLANNED_CHARS: usize = 300;

fn planning_text(question: &str) -> String {
    question.chars().take(MAX_PLANNED_CHARS).collect()
}

/// Rough token counts (four characters a token), so offline invocations
/// record comparable numbers.
fn estimate_usage(request: &ChatRequest, answer: &str) -> Usage {
    let input: usize = request.system.len()
        + request
            .messages
            .iter()
            .map(|message| match message {
                Message::User { text } => text.len(),
                Message::Assistant { text, tool_calls } => {
                    text.len()
                        + tool_calls
                            .iter()
                            .map(|call| call.arguments.len())
                            .sum::<usize>()
                }
                Message::ToolResult { content, .. } => content.len(),
            })
            .sum::<usize>();
    Usage {
        input_tokens: (input / 4) as u64,
        output_tokens: (answer.len() / 4) as u64,
    }
}

/// One finished tool call: what was asked and what came back.
#[derive(Debug, Clone)]
pub(super) struct Exchange {
    pub name: String,
    /// The parsed result, or the error text the tool returned.
    pub result: Result<Value, String>,
}

/// What the backend needs from a request.
struct Conversation {
    question: String,
    /// Earlier questions of the thread, oldest first.
    earlier_questions: Vec<String>,
    /// Tool calls made for the current question, in order.
    exchanges: Vec<Exchange>,
}

impl Conversation {
    fn read(request: &ChatRequest) -> Self {
        let last_user = request
            .messages
            .iter()
            .rposition(|message| matches!(message, Message::User { .. }));
        let question = match last_user.map(|index| &request.messages[index]) {
            Some(Message::User { text }) => text.clone(),
            _ => String::new(),
        };
        let earlier_questions = request.messages[..last_user.unwrap_or(0)]
            .iter()
            .filter_map(|message| match message {
                Message::User { text } => Some(text.clone()),
                _ => None,
            })
            .collect();

        let mut calls: HashMap<String, String> = HashMap::new();
        let mut exchanges = Vec::new();
        for message in &request.messages[last_user.map_or(0, |index| index + 1)..] {
            match message {
                Message::Assistant { tool_calls, .. } => {
                    for call in tool_calls {
                        calls.insert(call.id.clone(), call.name.clone());
                    }
                }
                Message::ToolResult {
                    call_id,
                    name,
                    content,
                    is_error,
                } => {
                    let name = calls.remove(call_id).unwrap_or_else(|| name.clone());
                    exchanges.push(Exchange {
                        name,
                        result: read_result(content, *is_error),
                    });
                }
                Message::User { .. } => {}
            }
        }

        Self {
            question,
            earlier_questions,
            exchanges,
        }
    }
}

/// Parses a tool result; a result cut to size is parsed up to the cut.
fn read_result(content: &str, is_error: bool) -> Result<Value, String> {
    let parsed: Option<Value> = serde_json::from_str(content).ok();
    if is_error {
        let message = parsed
            .as_ref()
            .and_then(|value| value.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| content.to_string());
        return Err(message);
    }
    parsed.ok_or_else(|| "the tool result was cut or is not JSON".to_string())
}

/// Why a plan stopped before its answer.
#[derive(Debug)]
pub(super) enum Stop {
    /// It needs this tool call's result next.
    Pending { name: String, arguments: Value },
    /// It needs a tool the agent does not offer.
    Unavailable(String),
}

/// Replays a plan's tool calls against the results already in the
/// conversation.
pub(super) struct Replay<'a> {
    exchanges: &'a [Exchange],
    cursor: usize,
    offered: Vec<String>,
    /// The catalog's words, read once per question.
    pub vocabulary: Option<vocabulary::Vocabulary>,
}

impl<'a> Replay<'a> {
    fn new(exchanges: &'a [Exchange], offered: Vec<String>) -> Self {
        Self {
            exchanges,
            cursor: 0,
            offered,
            vocabulary: None,
        }
    }

    /// Returns the result of the plan's next tool call when the conversation
    /// has it, else stops the plan so the call can be made.
    pub fn call(&mut self, name: &str, arguments: Value) -> Result<Result<Value, String>, Stop> {
        if !self.offered.iter().any(|offered| offered == name) {
            return Err(Stop::Unavailable(name.to_string()));
        }
        match self.exchanges.get(self.cursor) {
            Some(exchange) => {
                self.cursor += 1;
                if exchange.name == name {
                    Ok(exchange.result.clone())
                } else {
                    // The conversation holds another plan's calls, for
                    // example after the thread switched backends.
                    Ok(Err(format!(
                        "expected a {name} result, found {}",
                        exchange.name
                    )))
                }
            }
            None => Err(Stop::Pending {
                name: name.to_string(),
                arguments,
            }),
        }
    }
}
