//! The agent loop through `App::answer` with the OpenAI and Anthropic
//! backends pointed at their stand-ins, over the real demo catalog: tool
//! conversations, mistakes the model makes, retries, timeouts and the
//! loop's limits, and what the invocation record keeps. Every test runs on
//! SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use agentdesk::app::{Answer, App, Question};
use agentdesk::clock::system_clock;
use agentdesk::config::Settings;
use agentdesk::store::invocations::{self, Invocation, Status};
use agentdesk_standins::Reply;
use agentdesk_standins::anthropic::{self, AnthropicStandin};
use agentdesk_standins::openai::{self, OpenAiStandin};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::TestDatabase;

#[derive(Debug, Clone, Copy)]
enum Provider {
    OpenAi,
    Anthropic,
}

/// A model stand-in of either provider, read through one interface.
enum Standin {
    OpenAi(OpenAiStandin),
    Anthropic(AnthropicStandin),
}

/// A tool result as the product sent it back to the model.
#[derive(Debug)]
struct SentToolResult {
    content: String,
    /// Anthropic marks error results; OpenAI's wire format has no such flag.
    is_error: Option<bool>,
}

impl Standin {
    async fn start(provider: Provider) -> Self {
        match provider {
            Provider::OpenAi => Self::OpenAi(OpenAiStandin::start().await.unwrap()),
            Provider::Anthropic => Self::Anthropic(AnthropicStandin::start().await.unwrap()),
        }
    }

    fn push(&self, reply: Reply) {
        match self {
            Self::OpenAi(standin) => standin.push(reply),
            Self::Anthropic(standin) => standin.push(reply),
        }
    }

    fn requests(&self) -> Vec<Value> {
        match self {
            Self::OpenAi(standin) => standin.requests(),
            Self::Anthropic(standin) => standin.requests(),
        }
    }

    /// Returns the settings that point the product at this stand-in.
    fn settings(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::OpenAi(standin) => vec![
                ("AGENTDESK_BACKEND", "openai".to_string()),
                ("OPENAI_BASE_URL", standin.base_url()),
                ("OPENAI_MODEL", "gpt-test".to_string()),
            ],
            Self::Anthropic(standin) => vec![
                ("AGENTDESK_BACKEND", "anthropic".to_string()),
                ("ANTHROPIC_BASE_URL", standin.base_url()),
                ("ANTHROPIC_API_KEY", "sk-ant-test".to_string()),
                ("ANTHROPIC_MODEL", "claude-test".to_string()),
            ],
        }
    }

    fn backend_name(&self) -> &'static str {
        match self {
            Self::OpenAi(_) => "openai",
            Self::Anthropic(_) => "anthropic",
        }
    }

    fn rate_limit_body(&self) -> Value {
        match self {
            Self::OpenAi(_) => openai::error_body(
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached.",
            ),
            Self::Anthropic(_) => anthropic::error_body("rate_limit_error", "Rate limited."),
        }
    }

    /// Returns the tool results in a request, in order.
    fn tool_results(&self, request: &Value) -> Vec<SentToolResult> {
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        match self {
            Self::OpenAi(_) => messages
                .iter()
                .filter(|message| message["role"] == "tool")
                .map(|message| SentToolResult {
                    content: message["content"].as_str().unwrap_or_default().to_string(),
                    is_error: None,
                })
                .collect(),
            Self::Anthropic(_) => messages
                .iter()
                .filter_map(|message| message["content"].as_array())
                .flatten()
                .filter(|block| block["type"] == "tool_result")
                .map(|block| SentToolResult {
                    content: block["content"].as_str().unwrap_or_default().to_string(),
                    is_error: block["is_error"].as_bool(),
                })
                .collect(),
        }
    }

    /// Returns `auto` or `none` as the request put it.
    fn tool_choice(&self, request: &Value) -> String {
        let choice = match self {
            Self::OpenAi(_) => &request["tool_choice"],
            Self::Anthropic(_) => &request["tool_choice"]["type"],
        };
        choice.as_str().unwrap_or("missing").to_string()
    }
}

/// One app over a fresh database with the demo catalog, and a stand-in.
/// The database is removed when this value is dropped.
struct Harness {
    app: App,
    standin: Standin,
    _database: TestDatabase,
}

impl Harness {
    async fn start(provider: Provider, database: TestDatabase, extra: &[(&str, &str)]) -> Self {
        let standin = Standin::start(provider).await;

        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("DATABASE_URL".to_string(), database.url().to_string());
        for (name, value) in standin.settings() {
            vars.insert(name.to_string(), value);
        }
        for (name, value) in extra {
            vars.insert(name.to_string(), value.to_string());
        }
        let settings = Settings::from_map(&vars).expect("the test settings are valid");
        let app = App::start(settings, system_clock())
            .await
            .expect("the app starts");
        Self {
            app,
            standin,
            _database: database,
        }
    }

    async fn ask(&self, text: &str) -> Answer {
        self.app
            .answer(Question::from_cli(text, None))
            .await
            .expect("the question is recorded and answered or failed")
    }

    async fn stored(&self, answer: &Answer) -> Invocation {
        invocations::get(&self.app.store, &answer.invocation_id)
            .await
            .expect("the invocation loads")
            .expect("the invocation is stored")
    }
}

fn tool_call(name: &str, arguments: Value) -> (String, String) {
    (name.to_string(), arguments.to_string())
}

fn parse(content: &str) -> Value {
    serde_json::from_str(content).unwrap_or_else(|error| panic!("{error}: {content}"))
}

/// Checks what every completed invocation must keep: the answer, the
/// tokens, and one record per tool call that ran, in order.
fn assert_completed(stored: &Invocation, answer: &Answer, tools: &[&str]) {
    assert_eq!(answer.status, Status::Completed, "{answer:?}");
    assert_eq!(stored.status, Status::Completed);
    assert_eq!(stored.answer.as_deref(), Some(answer.answer.as_str()));
    assert_eq!(stored.error, None);
    assert!(stored.tokens_in > 0, "input tokens are recorded");
    assert!(stored.tokens_out > 0, "output tokens are recorded");
    assert_eq!(stored.tokens_in as u64, answer.tokens_in);
    assert_eq!(stored.tokens_out as u64, answer.tokens_out);
    let names: Vec<&str> = stored
        .tool_calls
        .iter()
        .map(|call| call.name.as_str())
        .collect();
    assert_eq!(names, tools);
    assert_eq!(stored.tool_calls, answer.tool_calls);
    assert!(stored.finished_at.is_some());
}

/// Defines each `async fn NAME(provider: Provider, database: TestDatabase)`
/// as four tests, `NAME::openai::sqlite`, `NAME::openai::postgres`,
/// `NAME::anthropic::sqlite` and `NAME::anthropic::postgres`, each on a
/// fresh database holding the demo catalog.
macro_rules! on_both_providers {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            on_both_providers!(@databases $test, openai, OpenAi);
            on_both_providers!(@databases $test, anthropic, Anthropic);
        }
    )+};
    (@databases $test:ident, $module:ident, $provider:ident) => {
        mod $module {
            use $crate::helpers::TestDatabase;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let database = TestDatabase::sqlite_with_demo();
                super::super::$test(super::super::Provider::$provider, database).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(database) = TestDatabase::postgres_with_demo().await {
                    super::super::$test(super::super::Provider::$provider, database).await;
                }
            }
        }
    };
}

on_both_providers!(
    tool_conversation_answers_from_catalog,
    unknown_tool_gets_error_and_loop_continues,
    invalid_arguments_get_error_result,
    rate_limit_waits_for_retry_after,
    slow_model_fails_with_short_message,
    tool_call_limit_forces_final_answer,
    large_tool_result_is_cut_with_note,
);

async fn tool_conversation_answers_from_catalog(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(provider, database, &[]).await;
    let standin = &harness.standin;
    standin.push(Reply::ToolCalls(vec![tool_call(
        "search_entities",
        json!({ "query": "payments", "blueprint": "service" }),
    )]));
    standin.push(Reply::ToolCalls(vec![tool_call(
        "get_entity",
        json!({ "entity": "service:payments" }),
    )]));
    let final_text = "The Billing team owns service:payments.";
    standin.push(Reply::Text(final_text.to_string()));

    let answer = harness.ask("Who owns the payments service?").await;

    assert_eq!(answer.answer, final_text);
    assert_eq!(answer.backend, standin.backend_name());
    let requests = standin.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(standin.tool_choice(request), "auto");
    }

    let after_search = standin.tool_results(&requests[1]);
    assert_eq!(after_search.len(), 1);
    assert_ne!(after_search[0].is_error, Some(true));
    let search = parse(&after_search[0].content);
    assert_eq!(search["results"][0]["ref"], "service:payments", "{search}");
    assert_eq!(search["results"][0]["exact_match"], true, "{search}");

    let after_get = standin.tool_results(&requests[2]);
    assert_eq!(
        after_get.len(),
        2,
        "the conversation keeps the earlier result"
    );
    let detail = parse(&after_get[1].content);
    assert_eq!(detail["ref"], "service:payments", "{detail}");
    assert_eq!(detail["owners"][0]["ref"], "_team:billing", "{detail}");
    assert_eq!(detail["owners"][0]["found"], true, "{detail}");
    assert!(
        detail["referenced_by"]
            .as_array()
            .is_some_and(|links| !links.is_empty()),
        "deployments and other services point at payments: {detail}"
    );

    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &["search_entities", "get_entity"]);
    assert_eq!(stored.prompt, "Who owns the payments service?");
    assert_eq!(stored.backend, standin.backend_name());
    for call in &stored.tool_calls {
        assert_eq!(call.error, None, "{call:?}");
        assert!(!call.truncated, "{call:?}");
        assert!(call.result_bytes > 0, "{call:?}");
    }
    assert_eq!(
        stored.tool_calls[1].arguments,
        json!({ "entity": "service:payments" }).to_string()
    );
}

async fn unknown_tool_gets_error_and_loop_continues(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(provider, database, &[]).await;
    let standin = &harness.standin;
    standin.push(Reply::ToolCalls(vec![tool_call(
        "deploy_service",
        json!({ "service": "payments" }),
    )]));
    standin.push(Reply::ToolCalls(vec![tool_call(
        "count_entities",
        json!({ "blueprint": "service" }),
    )]));
    standin.push(Reply::Text("There are 16 services.".to_string()));

    let answer = harness.ask("How many services are there?").await;

    assert_eq!(answer.answer, "There are 16 services.");
    let requests = standin.requests();
    assert_eq!(requests.len(), 3, "the loop went on after the error");
    let results = standin.tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    assert_ne!(
        results[0].is_error,
        Some(false),
        "the result is marked as an error"
    );
    let error = parse(&results[0].content);
    let message = error["error"].as_str().expect("an error message");
    assert!(
        message.contains("unknown tool \"deploy_service\""),
        "{message}"
    );
    assert!(
        message.contains("search_entities"),
        "it lists the tools: {message}"
    );

    let count = parse(&standin.tool_results(&requests[2])[1].content);
    assert_eq!(count["total"], 16, "{count}");

    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &["deploy_service", "count_entities"]);
    let recorded_error = stored.tool_calls[0].error.as_deref().unwrap_or_default();
    assert!(recorded_error.contains("unknown tool"), "{recorded_error}");
    assert_eq!(stored.tool_calls[1].error, None);
}

async fn invalid_arguments_get_error_result(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(provider, database, &[]).await;
    let standin = &harness.standin;
    let broken = r#"{"query": "payments"#;
    standin.push(Reply::ToolCalls(vec![(
        "search_entities".to_string(),
        broken.to_string(),
    )]));
    standin.push(Reply::Text("Sorry, I sent broken arguments.".to_string()));

    let answer = harness.ask("Find payments").await;

    assert_eq!(answer.answer, "Sorry, I sent broken arguments.");
    let requests = standin.requests();
    assert_eq!(requests.len(), 2);
    let results = standin.tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    assert_ne!(results[0].is_error, Some(false));
    let message = parse(&results[0].content)["error"]
        .as_str()
        .expect("an error message")
        .to_string();
    // OpenAI passes the broken text through; Anthropic's API only carries
    // objects, so its stand-in sends the text as a JSON string instead.
    let expected = match provider {
        Provider::OpenAi => "not valid JSON",
        Provider::Anthropic => "must be a JSON object",
    };
    assert!(message.contains(expected), "{message}");
    assert!(
        message.contains("send an object matching the tool's schema"),
        "{message}"
    );

    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &["search_entities"]);
    assert!(stored.tool_calls[0].error.is_some());
}

async fn rate_limit_waits_for_retry_after(provider: Provider, database: TestDatabase) {
    // With no base delay, any wait comes from Retry-After.
    let harness = Harness::start(provider, database, &[("AGENTDESK_LLM_RETRY_BASE_MS", "0")]).await;
    let standin = &harness.standin;
    standin.push(Reply::Status {
        status: 429,
        body: standin.rate_limit_body(),
        retry_after: Some("1".to_string()),
    });
    standin.push(Reply::Text("Checkout depends on payments.".to_string()));

    let started = Instant::now();
    let answer = harness.ask("What does checkout depend on?").await;
    let elapsed = started.elapsed();

    assert_eq!(answer.answer, "Checkout depends on payments.");
    assert_eq!(standin.requests().len(), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "the retry waited only {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "the retry waited {elapsed:?}"
    );
    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &[]);
}

async fn slow_model_fails_with_short_message(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(
        provider,
        database,
        &[
            ("AGENTDESK_LLM_TIMEOUT_SECS", "0.3"),
            ("AGENTDESK_LLM_MAX_RETRIES", "0"),
        ],
    )
    .await;
    let standin = &harness.standin;
    standin.push(Reply::Delayed(
        Duration::from_secs(3),
        Box::new(Reply::Text("too late".to_string())),
    ));

    let started = Instant::now();
    let answer = harness.ask("Who owns the payments service?").await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_secs(2),
        "the timeout took {elapsed:?}"
    );
    assert_eq!(answer.status, Status::Failed);
    assert_eq!(
        standin.requests().len(),
        1,
        "no retry with AGENTDESK_LLM_MAX_RETRIES=0"
    );
    assert!(
        answer.answer.contains(&answer.invocation_id),
        "{}",
        answer.answer
    );
    assert!(
        answer.answer.len() < 200,
        "a short message: {}",
        answer.answer
    );
    assert!(
        !answer.answer.contains("timed out after"),
        "no inner error: {}",
        answer.answer
    );
    let error = answer.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("timed out"),
        "the error chain is kept: {error}"
    );

    let stored = harness.stored(&answer).await;
    assert_eq!(stored.status, Status::Failed);
    assert_eq!(stored.answer, None);
    assert_eq!(stored.error.as_deref(), Some(error));
    assert!(stored.tool_calls.is_empty());
    assert!(stored.finished_at.is_some());
}

async fn tool_call_limit_forces_final_answer(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(provider, database, &[("AGENTDESK_MAX_TOOL_CALLS", "2")]).await;
    let standin = &harness.standin;
    standin.push(Reply::ToolCalls(vec![tool_call(
        "search_entities",
        json!({ "query": "payments" }),
    )]));
    standin.push(Reply::ToolCalls(vec![
        tool_call("get_entity", json!({ "entity": "service:payments" })),
        tool_call("count_entities", json!({ "blueprint": "deployment" })),
    ]));
    standin.push(Reply::Text("Billing owns payments.".to_string()));

    let answer = harness.ask("Who owns payments?").await;

    assert_eq!(answer.answer, "Billing owns payments.");
    let requests = standin.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(standin.tool_choice(&requests[0]), "auto");
    assert_eq!(standin.tool_choice(&requests[1]), "auto");
    assert_eq!(
        standin.tool_choice(&requests[2]),
        "none",
        "the last request allows no tools"
    );

    let results = standin.tool_results(&requests[2]);
    assert_eq!(
        results.len(),
        3,
        "every call gets a result, even one over the limit"
    );
    assert_ne!(results[1].is_error, Some(true));
    assert_ne!(results[2].is_error, Some(false));
    let message = parse(&results[2].content)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("limit of 2 tool calls"), "{message}");

    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &["search_entities", "get_entity"]);
}

async fn large_tool_result_is_cut_with_note(provider: Provider, database: TestDatabase) {
    let harness = Harness::start(
        provider,
        database,
        &[("AGENTDESK_TOOL_RESULT_MAX_BYTES", "256")],
    )
    .await;
    let standin = &harness.standin;
    standin.push(Reply::ToolCalls(vec![tool_call(
        "list_blueprints",
        json!({}),
    )]));
    standin.push(Reply::Text("The catalog has 8 blueprints.".to_string()));

    let answer = harness.ask("What is in the catalog?").await;

    assert_eq!(answer.answer, "The catalog has 8 blueprints.");
    let requests = standin.requests();
    let results = standin.tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    let content = &results[0].content;
    assert!(
        content.len() <= 256,
        "{} bytes reached the model",
        content.len()
    );
    assert!(content.contains("[result cut from"), "{content}");
    assert!(
        content.contains("ask for fewer results or a narrower query"),
        "{content}"
    );
    assert!(
        content.starts_with("{\"blueprints\""),
        "the start is kept: {content}"
    );
    assert_ne!(results[0].is_error, Some(true));

    let stored = harness.stored(&answer).await;
    assert_completed(&stored, &answer, &["list_blueprints"]);
    let call = &stored.tool_calls[0];
    assert!(call.truncated);
    assert!(
        call.result_bytes > 256,
        "the full size is recorded: {}",
        call.result_bytes
    );
    assert_eq!(call.error, None);
}
