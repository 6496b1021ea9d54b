//! The OpenAI and Anthropic backends against their local stand-ins: request
//! bodies as sent, responses as parsed, and provider failures as
//! [`LlmError`] variants.

use std::time::{Duration, Instant};

use agentdesk::config::{AnthropicSettings, OpenAiSettings, Secret};
use agentdesk::llm::anthropic::AnthropicBackend;
use agentdesk::llm::openai::OpenAiBackend;
use agentdesk::llm::{
    ChatRequest, ChatResponse, LlmBackend, LlmError, Message, ToolCall, ToolChoice, ToolSpec,
};
use agentdesk_standins::Reply;
use agentdesk_standins::anthropic::{self, AnthropicStandin};
use agentdesk_standins::openai::{self, OpenAiStandin};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
const API_KEY: &str = "sk-test-4f1c9a7e2b";

fn openai_backend(
    standin: &OpenAiStandin,
    api_key: Option<&str>,
    timeout: Duration,
) -> OpenAiBackend {
    let settings = OpenAiSettings {
        api_key: api_key.map(Secret::new),
        base_url: standin.base_url(),
        model: "gpt-test".to_string(),
    };
    OpenAiBackend::new(&settings, timeout).expect("the OpenAI backend builds")
}

fn anthropic_settings(base_url: String, api_key: Option<&str>) -> AnthropicSettings {
    AnthropicSettings {
        api_key: api_key.map(Secret::new),
        base_url,
        model: "claude-test".to_string(),
    }
}

fn anthropic_backend(standin: &AnthropicStandin, timeout: Duration) -> AnthropicBackend {
    let settings = anthropic_settings(standin.base_url(), Some(API_KEY));
    AnthropicBackend::new(&settings, timeout).expect("the Anthropic backend builds")
}

fn lookup_tool() -> ToolSpec {
    ToolSpec {
        name: "get_entity".to_string(),
        description: "Look up a catalog entity by name.".to_string(),
        input_schema: json!({
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
        }),
    }
}

fn question(text: &str, tools: Vec<ToolSpec>) -> ChatRequest {
    ChatRequest {
        system: "You answer questions about the software catalog.".to_string(),
        messages: vec![Message::User {
            text: text.to_string(),
        }],
        tools,
        tool_choice: ToolChoice::Auto,
        max_tokens: 512,
    }
}

/// Builds the conversation after the model called tools: the question, the
/// assistant turn with `tool_calls`, and one result per call (the last one
/// failed).
fn follow_up(text: &str, tool_calls: Vec<ToolCall>) -> ChatRequest {
    let mut request = question("Who owns billing?", vec![lookup_tool()]);
    request.tool_choice = ToolChoice::None;
    let results: Vec<Message> = tool_calls
        .iter()
        .enumerate()
        .map(|(index, call)| Message::ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: format!("result {index}"),
            is_error: index + 1 == tool_calls.len(),
        })
        .collect();
    request.messages.push(Message::Assistant {
        text: text.to_string(),
        tool_calls,
    });
    request.messages.extend(results);
    request
}

fn two_calls() -> Vec<(String, String)> {
    vec![
        (
            "get_entity".to_string(),
            r#"{"name":"billing"}"#.to_string(),
        ),
        ("get_entity".to_string(), r#"{"name": "ledger"#.to_string()),
    ]
}

fn error_reply(status: u16, body: Value, retry_after: Option<&str>) -> Reply {
    Reply::Status {
        status,
        body,
        retry_after: retry_after.map(str::to_string),
    }
}

async fn complete_err(backend: &dyn LlmBackend, request: &ChatRequest) -> LlmError {
    match backend.complete(request).await {
        Ok(response) => panic!("expected an error, got {response:?}"),
        Err(error) => error,
    }
}

async fn complete_ok(backend: &dyn LlmBackend, request: &ChatRequest) -> ChatResponse {
    match backend.complete(request).await {
        Ok(response) => response,
        Err(error) => panic!("expected a response, got {error:?}"),
    }
}

/// Returns a URL on 127.0.0.1 where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("read the bound address");
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn openai_text_answer() {
    let standin = OpenAiStandin::start_with_key(API_KEY).await.unwrap();
    standin.push(Reply::Text("Team Payments owns billing.".to_string()));
    let backend = openai_backend(&standin, Some(API_KEY), TIMEOUT);

    let response = complete_ok(&backend, &question("Who owns billing?", vec![])).await;

    assert_eq!(response.text, "Team Payments owns billing.");
    assert!(response.tool_calls.is_empty());
    assert!(response.usage.input_tokens > 0);
    assert!(response.usage.output_tokens > 0);
    assert_eq!(backend.name(), "openai");
    assert_eq!(backend.model(), "gpt-test");

    let sent = &standin.requests()[0];
    assert_eq!(sent["model"], "gpt-test");
    assert_eq!(sent["max_tokens"], 512);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"][1],
        json!({"role": "user", "content": "Who owns billing?"})
    );
    assert!(sent.get("tools").is_none(), "no tools were offered: {sent}");
    assert!(
        sent.get("tool_choice").is_none(),
        "no tools were offered: {sent}"
    );
}

#[tokio::test]
async fn openai_tool_call_answer() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::TextAndToolCalls(
        "Looking it up.".to_string(),
        two_calls(),
    ));
    let backend = openai_backend(&standin, None, TIMEOUT);

    let response = complete_ok(
        &backend,
        &question("Who owns billing?", vec![lookup_tool()]),
    )
    .await;

    assert_eq!(response.text, "Looking it up.");
    assert_eq!(response.tool_calls.len(), 2);
    assert_eq!(response.tool_calls[0].name, "get_entity");
    assert_eq!(response.tool_calls[0].arguments, r#"{"name":"billing"}"#);
    assert_eq!(response.tool_calls[1].arguments, r#"{"name": "ledger"#);
    assert!(response.tool_calls[0].id.starts_with("call_"));
    assert_ne!(response.tool_calls[0].id, response.tool_calls[1].id);

    let sent = &standin.requests()[0];
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(
        sent["tools"][0],
        json!({
            "type": "function",
            "function": {
                "name": "get_entity",
                "description": "Look up a catalog entity by name.",
                "parameters": lookup_tool().input_schema,
            },
        })
    );
}

#[tokio::test]
async fn openai_follow_up_carries_tool_turns() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::ToolCalls(two_calls()));
    standin.push(Reply::Text("Team Payments.".to_string()));
    let backend = openai_backend(&standin, None, TIMEOUT);

    let first = complete_ok(
        &backend,
        &question("Who owns billing?", vec![lookup_tool()]),
    )
    .await;
    let calls = first.tool_calls.clone();
    let second = complete_ok(&backend, &follow_up("", calls.clone())).await;
    assert_eq!(second.text, "Team Payments.");

    let sent = &standin.requests()[1];
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"]);

    let assistant = &messages[2];
    assert!(
        assistant["content"].is_null(),
        "tool-only turn has null content: {assistant}"
    );
    for (index, call) in calls.iter().enumerate() {
        assert_eq!(
            assistant["tool_calls"][index],
            json!({
                "id": call.id,
                "type": "function",
                "function": { "name": call.name, "arguments": call.arguments },
            })
        );
        assert_eq!(messages[3 + index]["tool_call_id"], call.id.as_str());
        assert_eq!(messages[3 + index]["content"], format!("result {index}"));
    }
    assert_eq!(sent["tool_choice"], "none");
    assert_eq!(sent["tools"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn openai_keeps_text_beside_tool_calls() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::Text("Done.".to_string()));
    let backend = openai_backend(&standin, None, TIMEOUT);
    let calls = vec![ToolCall {
        id: "call_1".to_string(),
        name: "get_entity".to_string(),
        arguments: "{}".to_string(),
    }];

    complete_ok(&backend, &follow_up("Checking.", calls)).await;

    let sent = &standin.requests()[0];
    assert_eq!(sent["messages"][2]["content"], "Checking.");
}

#[tokio::test]
async fn openai_rate_limit_carries_retry_after() {
    let standin = OpenAiStandin::start().await.unwrap();
    let body = openai::error_body(
        "requests",
        Some("rate_limit_exceeded"),
        "Rate limit reached.",
    );
    standin.push(error_reply(429, body, Some("7")));
    let backend = openai_backend(&standin, None, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::RateLimited { retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_5xx_is_server_error() {
    let standin = OpenAiStandin::start().await.unwrap();
    let body = openai::error_body("server_error", None, "The server had an error.");
    standin.push(error_reply(500, body.clone(), None));
    standin.push(error_reply(503, body, Some("1.5")));
    let backend = openai_backend(&standin, None, TIMEOUT);
    let request = question("hi", vec![]);

    match complete_err(&backend, &request).await {
        LlmError::Server {
            status,
            retry_after,
        } => {
            assert_eq!(status, 500);
            assert_eq!(retry_after, None);
        }
        other => panic!("expected Server, got {other:?}"),
    }
    match complete_err(&backend, &request).await {
        LlmError::Server {
            status,
            retry_after,
        } => {
            assert_eq!(status, 503);
            assert_eq!(retry_after, Some(Duration::from_millis(1500)));
        }
        other => panic!("expected Server, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_unscripted_request_is_server_error() {
    let standin = OpenAiStandin::start().await.unwrap();
    let backend = openai_backend(&standin, None, TIMEOUT);

    let error = complete_err(&backend, &question("hi", vec![])).await;

    assert!(
        matches!(error, LlmError::Server { status: 500, .. }),
        "got {error:?}"
    );
}

#[tokio::test]
async fn openai_context_overflow_detected() {
    let standin = OpenAiStandin::start().await.unwrap();
    let message = "This model's maximum context length is 128000 tokens. \
                   However, your messages resulted in 130512 tokens.";
    let body = openai::error_body(
        "invalid_request_error",
        Some("context_length_exceeded"),
        message,
    );
    standin.push(error_reply(400, body, None));
    let backend = openai_backend(&standin, None, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::ContextTooLong(text) => assert_eq!(text, message),
        other => panic!("expected ContextTooLong, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_other_client_error_is_rejected() {
    let standin = OpenAiStandin::start().await.unwrap();
    let body = openai::error_body(
        "invalid_request_error",
        None,
        "Invalid schema for function.",
    );
    standin.push(error_reply(400, body, None));
    let backend = openai_backend(&standin, None, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::Rejected { status, message } => {
            assert_eq!(status, 400);
            assert_eq!(message, "Invalid schema for function.");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_malformed_bodies_are_bad_responses() {
    let standin = OpenAiStandin::start().await.unwrap();
    let huge_text = format!("<html>{}</html>", "x".repeat(20_000));
    let bodies = [
        huge_text.as_str(),
        r#"{"id": "chatcmpl-1", "choices": []}"#,
        r#"{"choices": [{"message": {"content": 42}}]}"#,
        r#"{"choices": [{"message": {"tool_calls": [{"id": "call_1"}]}}]}"#,
    ];
    for body in bodies {
        standin.push(Reply::RawBody(body.to_string()));
    }
    let backend = openai_backend(&standin, None, TIMEOUT);

    for body in bodies {
        match complete_err(&backend, &question("hi", vec![])).await {
            LlmError::BadResponse(description) => {
                assert!(
                    description.len() < 400,
                    "description too long: {description}"
                );
            }
            other => panic!("expected BadResponse for {body:.60}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn openai_null_content_reads_empty() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::RawBody(
        r#"{"choices": [{"message": {"role": "assistant", "content": null}}]}"#.to_string(),
    ));
    let backend = openai_backend(&standin, None, TIMEOUT);

    let response = complete_ok(&backend, &question("hi", vec![])).await;

    assert_eq!(response, ChatResponse::default());
}

#[tokio::test]
async fn openai_slow_reply_times_out() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::Delayed(
        Duration::from_secs(5),
        Box::new(Reply::Text("late".to_string())),
    ));
    let backend = openai_backend(&standin, None, SHORT_TIMEOUT);

    let started = Instant::now();
    let error = complete_err(&backend, &question("hi", vec![])).await;

    assert!(
        matches!(error, LlmError::Timeout(limit) if limit == SHORT_TIMEOUT),
        "got {error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn openai_refused_connection_is_transport() {
    let settings = OpenAiSettings {
        api_key: None,
        base_url: format!("{}/v1/", closed_port_url()),
        model: "gpt-test".to_string(),
    };
    let backend = OpenAiBackend::new(&settings, TIMEOUT).unwrap();

    let error = complete_err(&backend, &question("hi", vec![])).await;

    assert!(matches!(error, LlmError::Transport(_)), "got {error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn openai_errors_never_show_api_key() {
    let standin = OpenAiStandin::start_with_key("sk-the-right-key")
        .await
        .unwrap();
    let backend = openai_backend(&standin, Some(API_KEY), TIMEOUT);

    let wrong_key = complete_err(&backend, &question("hi", vec![])).await;
    assert!(
        matches!(wrong_key, LlmError::Rejected { status: 401, .. }),
        "got {wrong_key:?}"
    );
    assert!(!wrong_key.to_string().contains(API_KEY));

    let open_standin = OpenAiStandin::start().await.unwrap();
    let echo = format!("Incorrect API key provided: {API_KEY}.");
    let body = openai::error_body("invalid_request_error", Some("invalid_api_key"), &echo);
    open_standin.push(error_reply(401, body, None));
    let backend = openai_backend(&open_standin, Some(API_KEY), TIMEOUT);

    let echoed = complete_err(&backend, &question("hi", vec![])).await;
    let display = echoed.to_string();
    assert!(
        display.contains("Incorrect API key provided"),
        "message kept: {display}"
    );
    assert!(!display.contains(API_KEY), "key leaked: {display}");
    assert!(
        !format!("{echoed:?}").contains(API_KEY),
        "key leaked in Debug"
    );
}

#[tokio::test]
async fn anthropic_text_answer() {
    let standin = AnthropicStandin::start_with_key(API_KEY).await.unwrap();
    standin.push(Reply::Text("Team Payments owns billing.".to_string()));
    let backend = anthropic_backend(&standin, TIMEOUT);

    let response = complete_ok(&backend, &question("Who owns billing?", vec![])).await;

    assert_eq!(response.text, "Team Payments owns billing.");
    assert!(response.tool_calls.is_empty());
    assert!(response.usage.input_tokens > 0);
    assert!(response.usage.output_tokens > 0);
    assert_eq!(backend.name(), "anthropic");
    assert_eq!(backend.model(), "claude-test");

    let sent = &standin.requests()[0];
    assert_eq!(sent["model"], "claude-test");
    assert_eq!(sent["max_tokens"], 512);
    assert_eq!(
        sent["system"],
        "You answer questions about the software catalog."
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Who owns billing?"}]}])
    );
    assert!(sent.get("tools").is_none(), "no tools were offered: {sent}");
    assert!(
        sent.get("tool_choice").is_none(),
        "no tools were offered: {sent}"
    );
}

#[tokio::test]
async fn anthropic_tool_use_answer() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.push(Reply::TextAndToolCalls(
        "Looking it up.".to_string(),
        vec![(
            "get_entity".to_string(),
            r#"{"name": "billing"}"#.to_string(),
        )],
    ));
    let backend = anthropic_backend(&standin, TIMEOUT);

    let response = complete_ok(
        &backend,
        &question("Who owns billing?", vec![lookup_tool()]),
    )
    .await;

    assert_eq!(response.text, "Looking it up.");
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!(call.name, "get_entity");
    assert!(call.id.starts_with("toolu_"));
    let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(arguments, json!({"name": "billing"}));

    let sent = &standin.requests()[0];
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        sent["tools"],
        json!([{
            "name": "get_entity",
            "description": "Look up a catalog entity by name.",
            "input_schema": lookup_tool().input_schema,
        }])
    );
}

#[tokio::test]
async fn anthropic_text_blocks_are_joined() {
    let standin = AnthropicStandin::start().await.unwrap();
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [
            {"type": "thinking", "thinking": "hidden", "signature": "sig"},
            {"type": "text", "text": "Team "},
            {"type": "text", "text": "Payments."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 3},
    });
    standin.push(Reply::RawBody(body.to_string()));
    let backend = anthropic_backend(&standin, TIMEOUT);

    let response = complete_ok(&backend, &question("hi", vec![])).await;

    assert_eq!(response.text, "Team Payments.");
    assert_eq!(response.usage.input_tokens, 12);
    assert_eq!(response.usage.output_tokens, 3);
}

#[tokio::test]
async fn anthropic_follow_up_merges_tool_results() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.push(Reply::ToolCalls(two_calls()));
    standin.push(Reply::Text("Team Payments.".to_string()));
    let backend = anthropic_backend(&standin, TIMEOUT);

    let first = complete_ok(
        &backend,
        &question("Who owns billing?", vec![lookup_tool()]),
    )
    .await;
    let calls = first.tool_calls.clone();
    assert_eq!(calls.len(), 2);
    let mut request = follow_up("Checking two entities.", calls.clone());
    request.messages.push(Message::User {
        text: "Answer briefly.".to_string(),
    });
    let second = complete_ok(&backend, &request).await;
    assert_eq!(second.text, "Team Payments.");

    let sent = &standin.requests()[1];
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        messages[1]["content"],
        json!([
            {"type": "text", "text": "Checking two entities."},
            {"type": "tool_use", "id": calls[0].id, "name": "get_entity", "input": {"name": "billing"}},
            {"type": "tool_use", "id": calls[1].id, "name": "get_entity", "input": {}},
        ])
    );
    assert_eq!(
        messages[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": calls[0].id, "content": "result 0", "is_error": false},
            {"type": "tool_result", "tool_use_id": calls[1].id, "content": "result 1", "is_error": true},
            {"type": "text", "text": "Answer briefly."},
        ])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "none"}));
}

#[tokio::test]
async fn anthropic_consecutive_user_texts_merge() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.push(Reply::Text("ok".to_string()));
    let backend = anthropic_backend(&standin, TIMEOUT);
    let mut request = question("First question.", vec![]);
    request.messages.push(Message::User {
        text: "Second question.".to_string(),
    });

    complete_ok(&backend, &request).await;

    let sent = &standin.requests()[0];
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "First question."},
            {"type": "text", "text": "Second question."},
        ]}])
    );
}

#[tokio::test]
async fn anthropic_rate_limit_carries_retry_after() {
    let standin = AnthropicStandin::start().await.unwrap();
    let body = anthropic::error_body(
        "rate_limit_error",
        "Number of requests has exceeded your rate limit.",
    );
    standin.push(error_reply(429, body, Some("12")));
    let backend = anthropic_backend(&standin, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::RateLimited { retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(12)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn anthropic_overload_is_server_error() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.push(error_reply(
        529,
        anthropic::error_body("overloaded_error", "Overloaded"),
        None,
    ));
    standin.push(error_reply(
        500,
        anthropic::error_body("api_error", "Internal server error"),
        None,
    ));
    let backend = anthropic_backend(&standin, TIMEOUT);
    let request = question("hi", vec![]);

    let overloaded = complete_err(&backend, &request).await;
    assert!(
        matches!(overloaded, LlmError::Server { status: 529, .. }),
        "got {overloaded:?}"
    );
    let failed = complete_err(&backend, &request).await;
    assert!(
        matches!(failed, LlmError::Server { status: 500, .. }),
        "got {failed:?}"
    );
}

#[tokio::test]
async fn anthropic_long_prompt_detected() {
    let standin = AnthropicStandin::start().await.unwrap();
    let message = "prompt is too long: 208310 tokens > 200000 maximum";
    standin.push(error_reply(
        400,
        anthropic::error_body("invalid_request_error", message),
        None,
    ));
    let backend = anthropic_backend(&standin, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::ContextTooLong(text) => assert_eq!(text, message),
        other => panic!("expected ContextTooLong, got {other:?}"),
    }
}

#[tokio::test]
async fn anthropic_invalid_request_is_rejected() {
    let standin = AnthropicStandin::start().await.unwrap();
    let message = "tools.0.input_schema: JSON schema is invalid";
    standin.push(error_reply(
        400,
        anthropic::error_body("invalid_request_error", message),
        None,
    ));
    let backend = anthropic_backend(&standin, TIMEOUT);

    match complete_err(&backend, &question("hi", vec![])).await {
        LlmError::Rejected {
            status,
            message: text,
        } => {
            assert_eq!(status, 400);
            assert_eq!(text, message);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn anthropic_malformed_bodies_are_bad_responses() {
    let standin = AnthropicStandin::start().await.unwrap();
    let bodies = [
        "Service Unavailable",
        r#"{"id": "msg_1", "type": "message"}"#,
        r#"{"content": [{"type": "text", "text": 7}]}"#,
        r#"{"content": [{"type": "tool_use", "name": "get_entity", "input": {}}]}"#,
    ];
    for body in bodies {
        standin.push(Reply::RawBody(body.to_string()));
    }
    let backend = anthropic_backend(&standin, TIMEOUT);

    for body in bodies {
        let error = complete_err(&backend, &question("hi", vec![])).await;
        assert!(
            matches!(error, LlmError::BadResponse(_)),
            "body {body}: got {error:?}"
        );
    }
}

#[tokio::test]
async fn anthropic_slow_reply_times_out() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.push(Reply::Delayed(
        Duration::from_secs(5),
        Box::new(Reply::Text("late".to_string())),
    ));
    let backend = anthropic_backend(&standin, SHORT_TIMEOUT);

    let started = Instant::now();
    let error = complete_err(&backend, &question("hi", vec![])).await;

    assert!(
        matches!(error, LlmError::Timeout(limit) if limit == SHORT_TIMEOUT),
        "got {error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn anthropic_missing_key_fails_at_construction() {
    let settings = anthropic_settings("http://127.0.0.1:9".to_string(), None);

    let error = match AnthropicBackend::new(&settings, TIMEOUT) {
        Ok(_) => panic!("a backend without a key was built"),
        Err(error) => error,
    };

    assert!(
        error.to_string().contains("ANTHROPIC_API_KEY"),
        "got: {error}"
    );
}

#[tokio::test]
async fn anthropic_errors_never_show_api_key() {
    let standin = AnthropicStandin::start_with_key("sk-ant-the-right-key")
        .await
        .unwrap();
    let backend = anthropic_backend(&standin, TIMEOUT);

    let error = complete_err(&backend, &question("hi", vec![])).await;

    assert!(
        matches!(error, LlmError::Rejected { status: 401, .. }),
        "got {error:?}"
    );
    assert!(!error.to_string().contains(API_KEY), "key leaked: {error}");

    let right_key = "sk-ant-the-right-key";
    let echo = format!("key {right_key} may not use this model");
    standin.push(error_reply(
        403,
        anthropic::error_body("permission_error", &echo),
        None,
    ));
    let settings = anthropic_settings(standin.base_url(), Some(right_key));
    let backend = AnthropicBackend::new(&settings, TIMEOUT).unwrap();

    let echoed = complete_err(&backend, &question("hi", vec![])).await;
    let display = echoed.to_string();
    assert!(
        matches!(echoed, LlmError::Rejected { status: 403, .. }),
        "got {echoed:?}"
    );
    assert!(
        display.contains("may not use this model"),
        "message kept: {display}"
    );
    assert!(!display.contains(right_key), "key leaked: {display}");
}

#[tokio::test]
async fn standin_responder_answers_after_script() {
    let standin = OpenAiStandin::start().await.unwrap();
    standin.push(Reply::Text("scripted".to_string()));
    standin.set_responder(|request| {
        let question = request["messages"][1]["content"].as_str().unwrap_or("");
        Reply::Text(format!("echo: {question}"))
    });
    let backend = openai_backend(&standin, None, TIMEOUT);

    let first = complete_ok(&backend, &question("one", vec![])).await;
    let second = complete_ok(&backend, &question("two", vec![])).await;

    assert_eq!(first.text, "scripted");
    assert_eq!(second.text, "echo: two");
}

#[tokio::test]
async fn standin_waits_for_requests() {
    let standin = AnthropicStandin::start().await.unwrap();
    standin.set_responder(|_| Reply::Text("ok".to_string()));
    let backend = anthropic_backend(&standin, TIMEOUT);

    let pending = standin
        .wait_for_requests(1, Duration::from_millis(50))
        .await;
    assert!(pending.is_err(), "no request was sent yet");

    let task = tokio::spawn(async move { backend.complete(&question("hi", vec![])).await });
    let requests = standin.wait_for_requests(1, TIMEOUT).await.unwrap();
    assert_eq!(requests[0]["messages"][0]["content"][0]["text"], "hi");
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test]
async fn standins_reject_unanswered_tool_calls() {
    let calls = vec![ToolCall {
        id: "call_1".to_string(),
        name: "get_entity".to_string(),
        arguments: "{}".to_string(),
    }];
    let mut request = follow_up("", calls);
    request.messages.pop();

    let openai_standin = OpenAiStandin::start().await.unwrap();
    openai_standin.push(Reply::Text("unused".to_string()));
    let openai_backend = openai_backend(&openai_standin, None, TIMEOUT);
    let error = complete_err(&openai_backend, &request).await;
    assert!(
        matches!(error, LlmError::Rejected { status: 400, .. }),
        "got {error:?}"
    );

    let anthropic_standin = AnthropicStandin::start().await.unwrap();
    anthropic_standin.push(Reply::Text("unused".to_string()));
    let anthropic_backend = anthropic_backend(&anthropic_standin, TIMEOUT);
    let error = complete_err(&anthropic_backend, &request).await;
    assert!(
        matches!(error, LlmError::Rejected { status: 400, .. }),
        "got {error:?}"
    );
}
