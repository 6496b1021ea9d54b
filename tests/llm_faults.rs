//! Model faults through the whole pipeline: 5xx and unreadable responses
//! are retried a bounded number of times, then the asker gets a short
//! message and the invocation is recorded as failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentdesk::app::{Answer, App, Question};
use agentdesk::clock::system_clock;
use agentdesk::config::Settings;
use agentdesk::store::invocations::{self, Status};
use agentdesk_standins::Reply;
use agentdesk_standins::anthropic::AnthropicStandin;
use agentdesk_standins::openai::OpenAiStandin;
use serde_json::{Value, json};

use crate::helpers::{TestDatabase, on_both_databases_with_demo};

enum Model {
    OpenAi(OpenAiStandin),
    Anthropic(AnthropicStandin),
}

impl Model {
    fn push(&self, reply: Reply) {
        match self {
            Self::OpenAi(model) => model.push(reply),
            Self::Anthropic(model) => model.push(reply),
        }
    }

    fn request_count(&self) -> usize {
        match self {
            Self::OpenAi(model) => model.requests().len(),
            Self::Anthropic(model) => model.requests().len(),
        }
    }

    fn rate_limited(&self, retry_after: &str) -> Reply {
        let body: Value = match self {
            Self::OpenAi(_) => json!({"error": {
                "message": "Rate limit reached for requests",
                "type": "requests",
                "code": "rate_limit_exceeded"
            }}),
            Self::Anthropic(_) => json!({"type": "error", "error": {
                "type": "rate_limit_error",
                "message": "Number of requests has exceeded your rate limit"
            }}),
        };
        Reply::Status {
            status: 429,
            body,
            retry_after: Some(retry_after.to_string()),
        }
    }

    fn server_error(&self) -> Reply {
        let body: Value = match self {
            Self::OpenAi(_) => {
                json!({"error": {"message": "The server had an error", "type": "server_error"}})
            }
            Self::Anthropic(_) => {
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            }
        };
        let status = match self {
            Self::OpenAi(_) => 503,
            Self::Anthropic(_) => 529,
        };
        Reply::Status {
            status,
            body,
            retry_after: None,
        }
    }
}

struct Harness {
    app: App,
    model: Model,
}

async fn harness(database: &TestDatabase, anthropic: bool) -> Harness {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), database.url().into());
    vars.insert("AGENTDESK_LLM_MAX_RETRIES".into(), "2".into());
    vars.insert("AGENTDESK_LLM_RETRY_BASE_MS".into(), "50".into());
    vars.insert("AGENTDESK_LLM_TIMEOUT_SECS".into(), "0.5".into());
    let model = if anthropic {
        let model = AnthropicStandin::start().await.expect("stand-in starts");
        vars.insert("AGENTDESK_BACKEND".into(), "anthropic".into());
        vars.insert("ANTHROPIC_BASE_URL".into(), model.base_url());
        vars.insert("ANTHROPIC_API_KEY".into(), "sk-ant-test".into());
        Model::Anthropic(model)
    } else {
        let model = OpenAiStandin::start().await.expect("stand-in starts");
        vars.insert("AGENTDESK_BACKEND".into(), "openai".into());
        vars.insert("OPENAI_BASE_URL".into(), model.base_url());
        Model::OpenAi(model)
    };
    let settings = Settings::from_map(&vars).expect("valid settings");
    let app = App::start(settings, system_clock())
        .await
        .expect("app starts");
    Harness { app, model }
}

async fn ask(harness: &Harness) -> Answer {
    harness
        .app
        .answer(Question::from_cli("who owns payments?", None))
        .await
        .expect("the invocation is recorded")
}

async fn assert_failed_briefly(harness: &Harness, answer: &Answer, error_part: &str) {
    assert_eq!(answer.status, Status::Failed, "{answer:?}");
    assert!(
        answer.answer.len() < 200,
        "a short message: {}",
        answer.answer
    );
    assert!(answer.answer.contains(&answer.invocation_id));
    let stored = invocations::get(&harness.app.store, &answer.invocation_id)
        .await
        .expect("loads")
        .expect("stored");
    assert_eq!(stored.status, Status::Failed);
    let error = stored.error.unwrap_or_default();
    assert!(error.contains(error_part), "{error}");
}

async fn server_errors_are_retried_then_answered(database: TestDatabase) {
    for anthropic in [false, true] {
        let harness = harness(&database, anthropic).await;
        harness.model.push(harness.model.server_error());
        harness.model.push(harness.model.server_error());
        harness
            .model
            .push(Reply::Text("Billing owns payments.".into()));
        let answer = ask(&harness).await;
        assert_eq!(answer.status, Status::Completed, "{answer:?}");
        assert_eq!(answer.answer, "Billing owns payments.");
        assert_eq!(harness.model.request_count(), 3);
    }
}

async fn persistent_server_errors_fail_after_bounded_retries(database: TestDatabase) {
    for anthropic in [false, true] {
        let harness = harness(&database, anthropic).await;
        for _ in 0..5 {
            harness.model.push(harness.model.server_error());
        }
        let started = Instant::now();
        let answer = ask(&harness).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(harness.model.request_count(), 3, "one try and two retries");
        assert_failed_briefly(&harness, &answer, "HTTP 5").await;
    }
}

async fn garbled_responses_are_retried_then_fail(database: TestDatabase) {
    for anthropic in [false, true] {
        let harness = harness(&database, anthropic).await;
        harness
            .model
            .push(Reply::RawBody("<html>bad gateway".into()));
        harness
            .model
            .push(Reply::Text("Billing owns payments.".into()));
        let answer = ask(&harness).await;
        assert_eq!(answer.status, Status::Completed, "{answer:?}");

        for _ in 0..3 {
            harness.model.push(Reply::RawBody("{\"choices\": 7".into()));
        }
        let answer = ask(&harness).await;
        assert_failed_briefly(&harness, &answer, "").await;
        assert_eq!(harness.model.request_count(), 2 + 3);
    }
}

async fn rate_limit_waits_for_retry_after(database: TestDatabase) {
    for anthropic in [false, true] {
        let harness = harness(&database, anthropic).await;
        harness.model.push(harness.model.rate_limited("1"));
        harness
            .model
            .push(Reply::Text("Billing owns payments.".into()));
        let started = Instant::now();
        let answer = ask(&harness).await;
        assert_eq!(answer.status, Status::Completed, "{answer:?}");
        assert_eq!(answer.answer, "Billing owns payments.");
        assert_eq!(harness.model.request_count(), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "the retry waited for Retry-After: {:?}",
            started.elapsed()
        );
    }
}

async fn slow_model_times_out_after_bounded_retries(database: TestDatabase) {
    for anthropic in [false, true] {
        let harness = harness(&database, anthropic).await;
        for _ in 0..3 {
            harness.model.push(Reply::Delayed(
                Duration::from_secs(3),
                Box::new(Reply::Text("too late".into())),
            ));
        }
        let started = Instant::now();
        let answer = ask(&harness).await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "never a hang: {:?}",
            started.elapsed()
        );
        assert_eq!(harness.model.request_count(), 3, "one try and two retries");
        assert_failed_briefly(&harness, &answer, "timed out").await;
        assert!(!answer.answer.contains("too late"), "{}", answer.answer);
    }
}

on_both_databases_with_demo!(
    rate_limit_waits_for_retry_after,
    slow_model_times_out_after_bounded_retries,
    server_errors_are_retried_then_answered,
    persistent_server_errors_fail_after_bounded_retries,
    garbled_responses_are_retried_then_fail,
);
