//! The input schema of self-service actions. Schemas are read from YAML
//! the way the agents file reads them, and problems name their field and
//! line. Proposals are validated with defaults filled, entity references
//! resolve against the real demo catalog on SQLite and PostgreSQL, and the
//! JSON Schema given to the model is checked.

use std::collections::BTreeSet;
use std::sync::Mutex;

use agentdesk::actions::inputs::{
    EntityLookup, InputError, InputKind, InputProblem, InputSchema, MAX_ARRAY_ITEMS, RawInputs,
};
use agentdesk::catalog::{Catalog, EntityRef, Scope};
use agentdesk::tools::ToolContext;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{
    TestDatabase, import, manual_clock, on_both_databases, on_both_databases_with_demo, shared,
};

on_both_databases_with_demo!(
    demo_entities_resolve_by_name_or_title,
    demo_misses_suggest_similar_entities,
    entity_of_other_blueprint_is_not_found,
    data_scope_hides_entities_from_lookup,
);

on_both_databases!(ambiguous_bare_name_lists_candidates);

/// The part of an action definition this module reads.
#[derive(Deserialize)]
struct ActionDefinition {
    inputs: RawInputs,
}

/// The schema of a deploy action, one input of each type.
const DEPLOY: &str = r#"inputs:
  environment: { type: string, enum: [staging, production], default: staging, description: "Where to deploy." }
  version:     { type: string, pattern: "^v?[0-9]+\\.[0-9]+\\.[0-9]+$", min_length: 1, max_length: 40, required: true }
  replicas:    { type: integer, minimum: 1, maximum: 20 }
  ratio:       { type: number, minimum: 0, maximum: 1.5 }
  notify:      { type: boolean, default: true }
  service:     { type: entity, blueprint: service, required: true, title: Service }
  reviewers:   { type: array, items: { type: entity, blueprint: _user }, min_items: 1, max_items: 5 }
"#;

fn read(yaml: &str) -> RawInputs {
    serde_saphyr::from_str::<ActionDefinition>(yaml)
        .unwrap_or_else(|error| panic!("the YAML should deserialize: {error}\n{yaml}"))
        .inputs
}

fn schema(yaml: &str) -> InputSchema {
    InputSchema::from_raw(&read(yaml)).unwrap_or_else(|problems| {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!("the schema should be valid, got:\n{}", listed.join("\n"))
    })
}

fn problems(yaml: &str) -> Vec<InputProblem> {
    match InputSchema::from_raw(&read(yaml)) {
        Ok(_) => panic!("the schema should be invalid:\n{yaml}"),
        Err(problems) => problems,
    }
}

/// Joins lines into a YAML document, so line numbers are easy to count.
fn yaml(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Resolves entity lookups from a fixed list and records the calls.
#[derive(Default)]
struct FixedLookup {
    entities: Vec<EntityRef>,
    calls: Mutex<Vec<(String, String)>>,
    fail: bool,
}

#[async_trait::async_trait]
impl EntityLookup for FixedLookup {
    async fn find(&self, blueprint: &str, text: &str) -> anyhow::Result<Vec<EntityRef>> {
        self.calls
            .lock()
            .expect("the lock is not poisoned")
            .push((blueprint.to_string(), text.to_string()));
        if self.fail {
            anyhow::bail!("the database is down");
        }
        Ok(self
            .entities
            .iter()
            .filter(|entity| {
                entity.blueprint == blueprint
                    && (entity.identifier == text || entity.to_string() == text)
            })
            .cloned()
            .collect())
    }
}

fn fixed(references: &[&str]) -> FixedLookup {
    FixedLookup {
        entities: references
            .iter()
            .map(|text| EntityRef::parse(text).expect("a blueprint:identifier reference"))
            .collect(),
        ..FixedLookup::default()
    }
}

/// Checks that `errors` has exactly one error per expected input, in
/// order, each containing its fragment.
fn assert_errors(errors: &[InputError], expected: &[(&str, &str)], case: &str) {
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors.len(),
        expected.len(),
        "{case}: expected {expected:?}, got {shown:#?}"
    );
    for (error, (input, fragment)) in errors.iter().zip(expected) {
        assert_eq!(error.input, *input, "{case}: {shown:#?}");
        assert!(
            error.message.contains(fragment),
            "{case}: {:?} does not contain {fragment:?}",
            error.message
        );
    }
}

#[test]
fn schema_keeps_file_order_and_types() {
    let schema = schema(DEPLOY);

    let names: Vec<&str> = schema.inputs().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "environment",
            "version",
            "replicas",
            "ratio",
            "notify",
            "service",
            "reviewers"
        ]
    );
    let environment = schema.input("environment").expect("environment");
    assert!(matches!(&environment.kind, InputKind::String(rules)
        if rules.allowed == Some(vec!["staging".to_string(), "production".to_string()])));
    assert_eq!(environment.default, Some(json!("staging")));
    assert_eq!(environment.description.as_deref(), Some("Where to deploy."));
    let version = schema.input("version").expect("version");
    assert!(version.required);
    assert!(matches!(&version.kind, InputKind::String(rules)
        if rules.pattern.as_ref().map(|pattern| pattern.as_str())
            == Some("^v?[0-9]+\\.[0-9]+\\.[0-9]+$")));
    assert!(matches!(
        schema.input("replicas").expect("replicas").kind,
        InputKind::Integer(_)
    ));
    assert!(matches!(
        schema.input("ratio").expect("ratio").kind,
        InputKind::Number(_)
    ));
    assert_eq!(
        schema.input("service").expect("service").title.as_deref(),
        Some("Service")
    );
    assert_eq!(schema.blueprints(), BTreeSet::from(["_user", "service"]));
}

#[test]
fn empty_inputs_give_empty_schema() {
    for text in ["inputs:\n", "inputs: {}\n"] {
        let schema = schema(text);
        assert!(schema.is_empty(), "{text:?}");
        assert_eq!(schema.inputs().count(), 0);
    }
    assert!(InputSchema::empty().is_empty());
}

#[test]
fn block_style_schema_is_read() {
    let schema = schema(&yaml(&[
        "inputs:",
        "  regions:",
        "    type: array",
        "    items:",
        "      type: string",
        "      enum:",
        "        - eu-west-1",
        "        - us-east-1",
        "    max_items: 2",
    ]));

    let regions = schema.input("regions").expect("regions");
    let InputKind::Array(rules) = &regions.kind else {
        panic!("regions should be an array: {regions:?}");
    };
    assert_eq!(rules.max_items, Some(2));
    assert!(matches!(&rules.items.kind, InputKind::String(items)
        if items.allowed.as_ref().map(Vec::len) == Some(2)));
}

#[test]
fn invalid_schemas_name_field_and_line() {
    // (YAML lines, field, line, a fragment of the message)
    let cases: &[(&[&str], &str, u64, &str)] = &[
        (
            &["inputs:", "  a: { type: text }"],
            "inputs.a.type",
            2,
            "not an input type",
        ),
        (
            &["inputs:", "  a: { required: true }"],
            "inputs.a.type",
            2,
            "missing",
        ),
        (
            &["inputs:", "  a: { type: string, pattern: \"([a-z\" }"],
            "inputs.a.pattern",
            2,
            "not a valid regular expression",
        ),
        (
            &[
                "inputs:",
                "  a:",
                "    type: string",
                "    min_length: 5",
                "    max_length: 2",
            ],
            "inputs.a.max_length",
            5,
            "max_length (2) is less than min_length (5)",
        ),
        (
            &[
                "inputs:",
                "  a: { type: number, minimum: 10, maximum: 2.5 }",
            ],
            "inputs.a.maximum",
            2,
            "less than minimum",
        ),
        (
            &[
                "inputs:",
                "  a: { type: array, items: { type: string }, min_items: 3, max_items: 1 }",
            ],
            "inputs.a.max_items",
            2,
            "less than min_items",
        ),
        (
            &[
                "inputs:",
                "  a:",
                "    type: string",
                "    enum:",
                "      - staging",
                "      - 1.0",
            ],
            "inputs.a.enum",
            6,
            "quote it",
        ),
        (
            &[
                "inputs:",
                "  a: { type: string, pattern: \"[a-z]+\", enum: [staging, Prod] }",
            ],
            "inputs.a.enum",
            2,
            "value \"Prod\" must match [a-z]+",
        ),
        (
            &["inputs:", "  a: { type: string, enum: [] }"],
            "inputs.a.enum",
            2,
            "is empty",
        ),
        (
            &["inputs:", "  a: { type: string, enum: [x, x] }"],
            "inputs.a.enum",
            2,
            "listed twice",
        ),
        (
            &[
                "inputs:",
                "  a: { type: string, enum: [staging, production], default: prod }",
            ],
            "inputs.a.default",
            2,
            "must be one of \"staging\", \"production\"",
        ),
        (
            &[
                "inputs:",
                "  a: { type: integer, maximum: 20, default: 25 }",
            ],
            "inputs.a.default",
            2,
            "must be at most 20 (got 25)",
        ),
        (
            &["inputs:", "  a: { type: number, default: \"3\" }"],
            "inputs.a.default",
            2,
            "must be a number",
        ),
        (
            &[
                "inputs:",
                "  a: { type: array, items: { type: string }, default: [x, 2] }",
            ],
            "inputs.a.default",
            2,
            "item at index 1: must be a string",
        ),
        (
            &["inputs:", "  target:", "    type: entity"],
            "inputs.target.blueprint",
            2,
            "needs the blueprint",
        ),
        (
            &["inputs:", "  a: { type: entity, blueprint: \"service:x\" }"],
            "inputs.a.blueprint",
            2,
            "no colon",
        ),
        (
            &[
                "inputs:",
                "  matrix:",
                "    type: array",
                "    items:",
                "      type: array",
            ],
            "inputs.matrix.items.type",
            5,
            "nested arrays are not allowed",
        ),
        (
            &["inputs:", "  a: { type: array }"],
            "inputs.a.items",
            2,
            "needs items",
        ),
        (
            &["inputs:", "  Version: { type: string }"],
            "inputs.Version",
            2,
            "not a valid input name",
        ),
        (
            &["inputs:", "  1st: { type: string }"],
            "inputs.1st",
            2,
            "not a valid input name",
        ),
        (
            &["inputs:", "  dry-run: { type: boolean }"],
            "inputs.dry-run",
            2,
            "not a valid input name",
        ),
        (
            &["inputs:", "  a: { type: string, minLength: 1 }"],
            "inputs.a.minLength",
            2,
            "did you mean min_length?",
        ),
        (
            &["inputs:", "  a:", "    type: string", "    colour: red"],
            "inputs.a.colour",
            4,
            "unknown key; the keys are",
        ),
        (
            &["inputs:", "  a: { type: number, pattern: \"[0-9]+\" }"],
            "inputs.a.pattern",
            2,
            "applies only to string inputs",
        ),
        (
            &[
                "inputs:",
                "  a: { type: boolean, default: true, required: true }",
            ],
            "inputs.a.required",
            2,
            "remove required or the default",
        ),
        (
            &[
                "inputs:",
                "  a: { type: array, items: { type: string, required: true } }",
            ],
            "inputs.a.items.required",
            2,
            "not allowed inside items",
        ),
        (
            &["inputs:", "  a: string"],
            "inputs.a",
            2,
            "must be a mapping such as { type: string }, found a string",
        ),
        (
            &["inputs:", "  a: { type: integer, minimum: 1.5 }"],
            "inputs.a.minimum",
            2,
            "whole number",
        ),
        (
            &[
                "inputs:",
                "  a: { type: array, items: { type: string }, max_items: 500 }",
            ],
            "inputs.a.max_items",
            2,
            "at most 100 items",
        ),
        (
            &["inputs:", "  a: { type: string, min_length: -1 }"],
            "inputs.a.min_length",
            2,
            "whole number of 0 or more",
        ),
        (
            &["inputs:", "  a: { type: string, required: \"yes\" }"],
            "inputs.a.required",
            2,
            "must be true or false",
        ),
        (
            &["inputs:", "  a: { type: string, description: 3 }"],
            "inputs.a.description",
            2,
            "must be a string",
        ),
    ];

    for (lines, field, line, fragment) in cases {
        let text = yaml(lines);
        let found = problems(&text);
        assert_eq!(
            found.len(),
            1,
            "one problem expected in\n{text}got {found:#?}"
        );
        let problem = &found[0];
        assert_eq!(problem.field, *field, "{text}");
        assert_eq!(problem.line, Some(*line), "{text}{problem:?}");
        assert!(problem.column.is_some(), "{text}{problem:?}");
        assert!(
            problem.message.contains(fragment),
            "{text}{:?} does not contain {fragment:?}",
            problem.message
        );
    }
}

#[test]
fn problem_column_points_at_value() {
    let found = problems(&yaml(&["inputs:", "  a: { type: text }"]));

    assert_eq!(found[0].line, Some(2));
    assert_eq!(found[0].column, Some(14));
    assert_eq!(
        found[0].to_string(),
        "line 2, column 14: inputs.a.type: \"text\" is not an input type; use one of string, \
         number, integer, boolean, entity, array"
    );
}

#[test]
fn every_schema_problem_is_reported() {
    let found = problems(&yaml(&[
        "inputs:",
        "  env: { type: strin }",
        "  Count: { type: integer, minimum: 5, maximum: 1 }",
        "  owner: { type: entity }",
        "  tags: { type: array, items: { type: array } }",
    ]));

    let fields: Vec<&str> = found.iter().map(|problem| problem.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "inputs.env.type",
            "inputs.Count",
            "inputs.Count.maximum",
            "inputs.owner.blueprint",
            "inputs.tags.items.type",
        ]
    );
    let lines: Vec<Option<u64>> = found.iter().map(|problem| problem.line).collect();
    assert_eq!(lines, [Some(2), Some(3), Some(3), Some(4), Some(5)]);
}

#[test]
fn malformed_inputs_fail_to_deserialize() {
    let not_a_mapping = serde_saphyr::from_str::<ActionDefinition>("inputs: [a, b]\n");
    assert!(not_a_mapping.is_err());

    let duplicate = serde_saphyr::from_str::<ActionDefinition>(&yaml(&[
        "inputs:",
        "  a: { type: string }",
        "  a: { type: number }",
    ]));
    let message = duplicate
        .err()
        .expect("a duplicate input name is rejected")
        .to_string();
    assert!(message.contains("duplicate"), "{message}");
}

#[tokio::test]
async fn valid_proposals_are_normalised() {
    let schema = schema(DEPLOY);
    let lookup = fixed(&["service:checkout", "_user:amara-osei", "_user:mei-chen"]);

    // (proposal, the inputs expected after validation)
    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"version": "1.2.3", "service": "checkout"}),
            json!({"environment": "staging", "version": "1.2.3", "notify": true,
                   "service": "service:checkout"}),
        ),
        (
            json!({"version": "v10.0.1", "service": "service:checkout",
                   "environment": "production", "replicas": 20, "ratio": 0.25,
                   "notify": false, "reviewers": ["amara-osei", "_user:mei-chen"]}),
            json!({"environment": "production", "version": "v10.0.1", "replicas": 20,
                   "ratio": 0.25, "notify": false, "service": "service:checkout",
                   "reviewers": ["_user:amara-osei", "_user:mei-chen"]}),
        ),
        (
            json!({"version": "1.0.0", "service": " checkout ", "replicas": "3",
                   "ratio": "1.5", "notify": "FALSE"}),
            json!({"environment": "staging", "version": "1.0.0", "replicas": 3, "ratio": 1.5,
                   "notify": false, "service": "service:checkout"}),
        ),
        (
            json!({"version": "1.0.0", "service": "checkout", "replicas": 4.0,
                   "environment": null, "reviewers": null}),
            json!({"environment": "staging", "version": "1.0.0", "replicas": 4,
                   "notify": true, "service": "service:checkout"}),
        ),
    ];

    for (proposal, expected) in cases {
        let validated = schema
            .validate(&proposal, &lookup)
            .await
            .unwrap_or_else(|errors| panic!("{proposal} should be valid, got {errors:#?}"));
        assert_eq!(Value::Object(validated.0), expected, "{proposal}");
    }
}

#[tokio::test]
async fn invalid_proposals_list_every_error() {
    let schema = schema(DEPLOY);
    let lookup = fixed(&["service:checkout", "_user:amara-osei"]);

    // (proposal, the expected errors in order: input and message fragment)
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({}),
            vec![
                ("version", "is required: give a string matching"),
                (
                    "service",
                    "is required: give a reference to a service entity",
                ),
            ],
        ),
        (
            json!({"version": "latest", "service": "checkout", "colour": "red"}),
            vec![
                ("colour", "the inputs are: environment, version, replicas"),
                (
                    "version",
                    "must match ^v?[0-9]+\\.[0-9]+\\.[0-9]+$ (got \"latest\")",
                ),
            ],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "environment": "prod"}),
            vec![(
                "environment",
                "must be one of \"staging\", \"production\" (got \"prod\")",
            )],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "replicas": 0}),
            vec![("replicas", "must be at least 1 (got 0)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "replicas": 21}),
            vec![("replicas", "must be at most 20 (got 21)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "replicas": 2.5}),
            vec![("replicas", "must be a whole number (got 2.5)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "replicas": "many"}),
            vec![("replicas", "must be a whole number (got \"many\")")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "ratio": 1.6}),
            vec![("ratio", "must be at most 1.5 (got 1.6)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "notify": "yes"}),
            vec![("notify", "must be true or false (got \"yes\")")],
        ),
        (
            json!({"version": 1, "service": "checkout"}),
            vec![("version", "must be a string (got 1); quote it: \"1\"")],
        ),
        (
            json!({"version": "", "service": "checkout"}),
            vec![
                ("version", "must be at least 1 character long (got 0)"),
                ("version", "must match"),
            ],
        ),
        (
            json!({"version": format!("1.2.{}", "3".repeat(40)), "service": "checkout"}),
            vec![("version", "must be at most 40 characters long (got 44)")],
        ),
        (
            json!({"version": "1.2.3", "service": 7}),
            vec![(
                "service",
                "must be a string, a reference to a service entity",
            )],
        ),
        (
            json!({"version": "1.2.3", "service": "  "}),
            vec![("service", "is empty; give a reference to a service entity")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "reviewers": []}),
            vec![("reviewers", "must have at least 1 item (got 0)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout",
                   "reviewers": ["a", "b", "c", "d", "e", "f"]}),
            vec![("reviewers", "must have at most 5 items (got 6)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "reviewers": "amara-osei"}),
            vec![("reviewers", "must be a list (a JSON array)")],
        ),
        (
            json!({"version": "1.2.3", "service": "checkout", "reviewers": ["amara-osei", 3]}),
            vec![("reviewers", "item at index 1: must be a string")],
        ),
        (
            json!({"version": "1.2.3", "service": "cart", "reviewers": ["nobody"]}),
            vec![
                ("service", "no service named \"cart\""),
                ("reviewers", "item at index 0: no _user named \"nobody\""),
            ],
        ),
        (
            json!({"version": "1.2.3", "service": "cart", "reviewers": []}),
            vec![
                ("service", "no service named \"cart\""),
                ("reviewers", "must have at least 1 item (got 0)"),
            ],
        ),
        (
            json!({"version": "1.2.3", "service": "_team:billing"}),
            vec![(
                "service",
                "\"_team:billing\" refers to a _team entity, but this input takes a reference \
                 to a service entity",
            )],
        ),
    ];

    for (proposal, expected) in cases {
        let errors = schema
            .validate(&proposal, &lookup)
            .await
            .err()
            .unwrap_or_else(|| panic!("{proposal} should be invalid"));
        assert_errors(&errors, &expected, &proposal.to_string());
    }
}

#[tokio::test]
async fn input_error_displays_input_and_value() {
    let schema = schema(DEPLOY);
    let proposal = json!({"version": "latest", "service": "checkout"});

    let errors = schema
        .validate(&proposal, &fixed(&["service:checkout"]))
        .await
        .expect_err("latest is not a version");

    assert_eq!(
        errors[0].to_string(),
        "input `version`: must match ^v?[0-9]+\\.[0-9]+\\.[0-9]+$ (got \"latest\")"
    );
}

#[tokio::test]
async fn proposal_must_be_object() {
    let schema = schema(DEPLOY);

    for proposal in [json!([1, 2]), json!("deploy"), Value::Null] {
        let errors = schema
            .validate(&proposal, &fixed(&[]))
            .await
            .expect_err("only an object is valid");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].input, "");
        assert!(
            errors[0]
                .to_string()
                .starts_with("inputs: must be a JSON object"),
            "{}",
            errors[0]
        );
        assert!(errors[0].message.contains("the inputs are: environment"));
    }
}

#[tokio::test]
async fn empty_schema_takes_only_empty_object() {
    let schema = InputSchema::empty();

    let validated = schema
        .validate(&json!({}), &fixed(&[]))
        .await
        .expect("{} is valid");
    assert!(validated.0.is_empty());

    let errors = schema
        .validate(&json!({"force": true}), &fixed(&[]))
        .await
        .expect_err("no input exists");
    assert_errors(
        &errors,
        &[("force", "this action takes no inputs, so send {}")],
        "empty schema",
    );
}

#[tokio::test]
async fn defaults_fill_missing_inputs() {
    let schema = schema(&yaml(&[
        "inputs:",
        "  environment: { type: string, default: staging }",
        "  replicas: { type: integer, default: 2 }",
        "  ratio: { type: number, default: 0.5 }",
        "  notify: { type: boolean, default: false }",
        "  regions: { type: array, items: { type: string }, default: [eu-west-1] }",
        "  owner: { type: entity, blueprint: _team, default: billing }",
        "  note: { type: string }",
    ]));
    let lookup = fixed(&["_team:billing", "_team:platform"]);

    let validated = schema
        .validate(&json!({}), &lookup)
        .await
        .expect("defaults are valid");
    assert_eq!(
        Value::Object(validated.0),
        json!({"environment": "staging", "replicas": 2, "ratio": 0.5, "notify": false,
               "regions": ["eu-west-1"], "owner": "_team:billing"})
    );

    let validated = schema
        .validate(
            &json!({"replicas": 5, "owner": "platform", "note": "hi"}),
            &lookup,
        )
        .await
        .expect("given values are valid");
    assert_eq!(validated.0["replicas"], json!(5));
    assert_eq!(validated.0["owner"], json!("_team:platform"));
    assert_eq!(validated.0["environment"], json!("staging"));
    assert_eq!(validated.0["note"], json!("hi"));
}

#[tokio::test]
async fn local_errors_skip_entity_lookups() {
    let schema = schema(DEPLOY);
    let lookup = fixed(&["service:checkout"]);

    let errors = schema
        .validate(&json!({"version": "x", "service": 3}), &lookup)
        .await
        .expect_err("both inputs are wrong");

    assert_eq!(errors.len(), 2);
    assert!(
        lookup.calls.lock().expect("not poisoned").is_empty(),
        "a value that is not a string is never looked up"
    );
}

#[tokio::test]
async fn failed_lookup_asks_to_retry() {
    let schema = schema(DEPLOY);
    let lookup = FixedLookup {
        fail: true,
        ..FixedLookup::default()
    };

    let errors = schema
        .validate(&json!({"version": "1.0.0", "service": "checkout"}), &lookup)
        .await
        .expect_err("the lookup failed");

    assert_errors(
        &errors,
        &[("service", "the catalog lookup failed; try again")],
        "failing lookup",
    );
    assert!(
        !errors[0].message.contains("database is down"),
        "the cause goes to the log, not to the model"
    );
}

#[tokio::test]
async fn long_arrays_are_rejected_before_lookups() {
    let schema = schema(&yaml(&[
        "inputs:",
        "  users: { type: array, items: { type: entity, blueprint: _user } }",
    ]));
    let lookup = fixed(&[]);
    let names: Vec<String> = (0..=MAX_ARRAY_ITEMS).map(|n| format!("user-{n}")).collect();

    let errors = schema
        .validate(&json!({ "users": names }), &lookup)
        .await
        .expect_err("too many items");

    assert_errors(
        &errors,
        &[("users", "must have at most 100 items (got 101)")],
        "long array",
    );
    assert!(lookup.calls.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn many_bad_items_are_summarised() {
    let schema = schema(&yaml(&[
        "inputs:",
        "  counts: { type: array, items: { type: integer } }",
    ]));
    let items: Vec<&str> = vec!["x"; 15];

    let errors = schema
        .validate(&json!({ "counts": items }), &fixed(&[]))
        .await
        .expect_err("no item is a number");

    assert_eq!(errors.len(), 11);
    assert!(errors[0].message.starts_with("item at index 0: "));
    assert_eq!(
        errors[10].message,
        "5 more items are invalid in the same ways"
    );
}

#[test]
fn json_schema_describes_every_input() {
    let schema = schema(DEPLOY).to_json_schema();

    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["version", "service"]));
    let properties = schema["properties"]
        .as_object()
        .expect("properties is an object");
    assert_eq!(properties.len(), 7);

    assert_eq!(
        properties["environment"],
        json!({"type": "string", "enum": ["staging", "production"], "default": "staging",
               "description": "Where to deploy."})
    );
    assert_eq!(
        properties["version"],
        json!({"type": "string", "pattern": "^(?:^v?[0-9]+\\.[0-9]+\\.[0-9]+$)$",
               "minLength": 1, "maxLength": 40})
    );
    assert_eq!(
        properties["replicas"],
        json!({"type": "integer", "minimum": 1, "maximum": 20})
    );
    assert_eq!(
        properties["ratio"],
        json!({"type": "number", "minimum": 0, "maximum": 1.5})
    );
    assert_eq!(
        properties["notify"],
        json!({"type": "boolean", "default": true})
    );
    assert_eq!(
        properties["service"],
        json!({"type": "string", "title": "Service", "x-agentdesk-blueprint": "service",
               "description": "a reference to a service entity: its identifier or service:identifier"})
    );
    assert_eq!(
        properties["reviewers"],
        json!({"type": "array", "minItems": 1, "maxItems": 5,
               "items": {"type": "string", "x-agentdesk-blueprint": "_user",
                         "description": "a reference to a _user entity: its identifier or _user:identifier"}})
    );
}

#[test]
fn json_schema_of_no_inputs_is_empty_object() {
    assert_eq!(
        InputSchema::empty().to_json_schema(),
        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
    );
}

#[test]
fn json_schema_caps_unbounded_arrays() {
    let schema = schema(&yaml(&[
        "inputs:",
        "  target: { type: entity, blueprint: service, description: The service to restart }",
        "  tags: { type: array, items: { type: string, max_length: 20 } }",
    ]))
    .to_json_schema();

    assert_eq!(schema["properties"]["tags"]["maxItems"], MAX_ARRAY_ITEMS);
    assert_eq!(schema["properties"]["tags"]["items"]["maxLength"], 20);
    assert_eq!(
        schema["properties"]["target"]["description"],
        "The service to restart (a reference to a service entity: its identifier or \
         service:identifier)"
    );
}

async fn demo_entities_resolve_by_name_or_title(database: TestDatabase) {
    let catalog = Catalog::new(database.store().await);
    let schema = schema(DEPLOY);

    for written in [
        "checkout",
        "service:checkout",
        "Checkout Service",
        "checkout service",
    ] {
        let validated = schema
            .validate(&json!({"version": "1.0.0", "service": written}), &catalog)
            .await
            .unwrap_or_else(|errors| panic!("{written:?} should resolve, got {errors:#?}"));
        assert_eq!(validated.0["service"], "service:checkout", "{written:?}");
    }

    let validated = schema
        .validate(
            &json!({"version": "1.0.0", "service": "payments",
                    "reviewers": ["amara-osei", "_user:mei-chen", "Priya Raman"]}),
            &catalog,
        )
        .await
        .expect("every reviewer exists");
    assert_eq!(
        validated.0["reviewers"],
        json!(["_user:amara-osei", "_user:mei-chen", "_user:priya-raman"])
    );
}

async fn demo_misses_suggest_similar_entities(database: TestDatabase) {
    let catalog = Catalog::new(database.store().await);
    let schema = schema(DEPLOY);

    let errors = schema
        .validate(
            &json!({"version": "1.0.0", "service": "chekout",
                    "reviewers": ["billing", "amara"]}),
            &catalog,
        )
        .await
        .expect_err("neither resolves");

    assert_eq!(
        errors[0].to_string(),
        "input `service`: no service named \"chekout\" (did you mean service:checkout?); \
         give the identifier or service:identifier of an existing service entity"
    );
    assert_eq!(
        errors[1].to_string(),
        "input `reviewers`: item at index 0: no _user named \"billing\"; give the identifier \
         or _user:identifier of an existing _user entity"
    );
    assert_eq!(
        errors[2].to_string(),
        "input `reviewers`: item at index 1: no _user named \"amara\" (did you mean \
         _user:amara-osei?); give the identifier or _user:identifier of an existing _user \
         entity"
    );
    assert_eq!(errors.len(), 3);
}

async fn entity_of_other_blueprint_is_not_found(database: TestDatabase) {
    let catalog = Catalog::new(database.store().await);
    let schema = schema(DEPLOY);

    // `production` is an environment entity, not a service.
    let errors = schema
        .validate(
            &json!({"version": "1.0.0", "service": "production"}),
            &catalog,
        )
        .await
        .expect_err("production is no service");

    assert_errors(
        &errors,
        &[("service", "no service named \"production\"")],
        "other blueprint",
    );
}

async fn data_scope_hides_entities_from_lookup(database: TestDatabase) {
    let catalog = Catalog::new(database.store().await);
    let schema = schema(DEPLOY);
    let context = ToolContext {
        catalog,
        scope: Scope::Blueprints(BTreeSet::from(["service".to_string()])),
        session: None,
    };
    let proposal = json!({"version": "1.0.0", "service": "checkout", "reviewers": ["amara-osei"]});

    let errors = schema
        .validate(&proposal, &context)
        .await
        .expect_err("users are outside the scope");

    assert_errors(
        &errors,
        &[(
            "reviewers",
            "item at index 0: no _user named \"amara-osei\"",
        )],
        "scoped lookup",
    );
}

async fn ambiguous_bare_name_lists_candidates(database: TestDatabase) {
    let store = database.store().await;
    let clock = shared(&manual_clock());
    let folder = tempfile::tempdir().expect("a temporary folder");
    let file = folder.path().join("ledger.yaml");
    std::fs::write(
        &file,
        yaml(&[
            "apiVersion: backstage.io/v1alpha1",
            "kind: Component",
            "metadata:",
            "  name: ledger",
            "spec: { type: service, owner: finance, lifecycle: production }",
            "---",
            "apiVersion: backstage.io/v1alpha1",
            "kind: Component",
            "metadata:",
            "  name: ledger",
            "  namespace: finance",
            "spec: { type: service, owner: finance, lifecycle: experimental }",
        ]),
    )
    .expect("write the catalog file");
    import(&store, &clock, &[file]).await;
    let catalog = Catalog::new(store);
    let schema = schema(&yaml(&[
        "inputs:",
        "  component: { type: entity, blueprint: component, required: true }",
    ]));

    let errors = schema
        .validate(&json!({"component": "ledger"}), &catalog)
        .await
        .expect_err("two components are named ledger");
    assert_errors(
        &errors,
        &[(
            "component",
            "\"ledger\" matches 2 component entities: component:finance/ledger, \
             component:ledger; give one of these references",
        )],
        "ambiguous",
    );

    for (written, expected) in [
        ("component:finance/ledger", "component:finance/ledger"),
        ("finance/ledger", "component:finance/ledger"),
        ("component:ledger", "component:ledger"),
    ] {
        let validated = schema
            .validate(&json!({ "component": written }), &catalog)
            .await
            .unwrap_or_else(|errors| panic!("{written:?} should resolve, got {errors:#?}"));
        assert_eq!(validated.0["component"], expected, "{written:?}");
    }
}

#[test]
fn validation_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}

    let schema = schema(DEPLOY);
    let lookup = fixed(&[]);
    let proposal = json!({});
    let validation = schema.validate(&proposal, &lookup);

    // Callers spawn validation on tokio and share schemas between tasks.
    assert_send(&validation);
    assert_send_sync::<InputSchema>();
}
