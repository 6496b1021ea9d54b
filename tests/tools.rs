//! The catalog tools as a model calls them through
//! `ToolRegistry::execute`: mistakes come back as error results that say
//! what was wrong and what to do, and every tool describes itself.

use agentdesk::catalog::{Catalog, Scope, demo};
use agentdesk::llm::ToolCall;
use agentdesk::tools::{ToolContext, ToolOutcome, ToolRegistry};
use serde_json::Value;

use crate::helpers::{TestDatabase, on_both_databases_with_demo};

on_both_databases_with_demo!(
    unknown_tool_is_error_result,
    invalid_json_arguments_are_error_result,
    array_arguments_are_error_result,
    missing_required_field_is_error_result,
    unknown_field_is_error_result,
    unknown_blueprint_is_error_result,
    unknown_entity_suggests_matches,
    empty_search_asks_for_criteria,
);

/// Returns a tool context over the demo catalog in `database`.
async fn demo_context(database: &TestDatabase) -> ToolContext {
    let store = database.store().await;
    assert!(demo::is_loaded(&store).await.unwrap());
    ToolContext {
        catalog: Catalog::new(store),
        scope: Scope::All,
        session: None,
    }
}

/// Runs one tool call the way the agent loop does.
async fn execute(context: &ToolContext, name: &str, arguments: &str) -> ToolOutcome {
    let call = ToolCall {
        id: "call-1".to_string(),
        name: name.to_string(),
        arguments: arguments.to_string(),
    };
    ToolRegistry::catalog_tools().execute(context, &call).await
}

/// Checks that an outcome is an error result whose message contains each
/// of `expected`, and returns the message.
fn assert_error(outcome: &ToolOutcome, expected: &[&str]) -> String {
    assert!(
        outcome.is_error,
        "expected an error result, got {}",
        outcome.content
    );
    let message = outcome
        .error
        .clone()
        .expect("an error result carries its message");
    let content: Value = serde_json::from_str(&outcome.content).expect("the content is JSON");
    assert_eq!(
        content["error"],
        message.as_str(),
        "the model sees the same message"
    );
    for part in expected {
        assert!(
            message.to_lowercase().contains(&part.to_lowercase()),
            "{message:?} does not contain {part:?}"
        );
    }
    message
}

async fn unknown_tool_is_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "delete_everything", "{}").await;

    assert_error(
        &outcome,
        &[
            "unknown tool \"delete_everything\"",
            "the available tools are",
            "list_blueprints",
            "search_entities",
            "get_entity",
            "count_entities",
        ],
    );
}

async fn invalid_json_arguments_are_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "search_entities", r#"{"query": "payments"#).await;

    assert_error(
        &outcome,
        &[
            "not valid JSON",
            "send an object matching the tool's schema",
        ],
    );
}

async fn array_arguments_are_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "get_entity", r#"["payments"]"#).await;

    assert_error(
        &outcome,
        &[
            "must be a JSON object",
            "send an object matching the tool's schema",
        ],
    );
}

async fn missing_required_field_is_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "get_entity", r#"{"blueprint": "service"}"#).await;

    assert_error(
        &outcome,
        &[
            "invalid arguments",
            "missing field `entity`",
            "input schema",
        ],
    );
}

async fn unknown_field_is_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(
        &context,
        "count_entities",
        r#"{"blueprint": "service", "where": "x"}"#,
    )
    .await;

    assert_error(
        &outcome,
        &["unknown field `where`", "group_by", "input schema"],
    );
}

async fn unknown_blueprint_is_error_result(database: TestDatabase) {
    let context = demo_context(&database).await;
    for (tool, arguments) in [
        ("search_entities", r#"{"blueprint": "spaceship"}"#),
        ("count_entities", r#"{"blueprint": "spaceship"}"#),
        (
            "get_entity",
            r#"{"entity": "payments", "blueprint": "spaceship"}"#,
        ),
    ] {
        let outcome = execute(&context, tool, arguments).await;
        let message = assert_error(
            &outcome,
            &[
                "unknown blueprint \"spaceship\"",
                "the catalog has",
                "service",
                "_team",
            ],
        );
        assert!(!message.contains("invalid arguments"), "{tool}: {message}");
    }
}

async fn unknown_entity_suggests_matches(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "get_entity", r#"{"entity": "paymnts"}"#).await;

    assert_error(
        &outcome,
        &["no entity is named exactly \"paymnts\"", "service:payments"],
    );
}

async fn empty_search_asks_for_criteria(database: TestDatabase) {
    let context = demo_context(&database).await;
    let outcome = execute(&context, "search_entities", "{}").await;

    assert_error(
        &outcome,
        &["give a query, a blueprint or filters", "list_blueprints"],
    );
}

#[tokio::test]
async fn catalog_tools_are_read_only() {
    let tools = ToolRegistry::catalog_tools();

    assert_eq!(
        tools.names(),
        [
            "list_blueprints",
            "search_entities",
            "get_entity",
            "count_entities"
        ]
    );
    for name in tools.names() {
        let tool = tools.get(name).expect("a listed tool");
        assert!(tool.is_read_only(), "{name} must report is_read_only");
    }
}

#[tokio::test]
async fn input_schemas_are_object_schemas() {
    let tools = ToolRegistry::catalog_tools();

    for spec in tools.specs() {
        let schema = &spec.input_schema;
        assert_eq!(schema["type"], "object", "{}: {schema}", spec.name);
        let properties = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: properties must be an object: {schema}", spec.name));
        assert_eq!(
            schema["additionalProperties"], false,
            "{}: unknown arguments are rejected, so the schema says so",
            spec.name
        );
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().expect("required names are strings");
            assert!(
                properties.contains_key(required),
                "{}: required {required} is not a property",
                spec.name
            );
        }
        assert!(
            !spec.description.is_empty(),
            "{} has a description",
            spec.name
        );
    }
}
