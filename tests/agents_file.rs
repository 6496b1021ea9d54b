//! The agents file: the shipped example is valid, and invalid files are
//! rejected with the line, the agent and the field.

use std::path::{Path, PathBuf};

use agentdesk::agent::agents_file::{AgentsFile, AgentsFileError};
use agentdesk::tools::ToolRegistry;

use crate::helpers::{describe_output, run_agentdesk};

fn tool_names() -> Vec<&'static str> {
    vec![
        "list_blueprints",
        "search_entities",
        "get_entity",
        "count_entities",
    ]
}

#[test]
fn catalog_tool_names_are_the_known_ones() {
    assert_eq!(ToolRegistry::catalog_tools().names(), tool_names());
}

/// The variables the shipped example's executors read.
const EXAMPLE_ENV: [(&str, &str); 3] = [
    ("AGENTDESK_WEBHOOK_SECRET", "whsec_example_0123456789"),
    ("INCIDENT_API_KEY", "incident-key-0123456789"),
    ("GITHUB_TOKEN", "ghp_example0123456789"),
];

fn example_env(name: &str) -> Option<String> {
    EXAMPLE_ENV
        .iter()
        .find(|(variable, _)| *variable == name)
        .map(|(_, value)| value.to_string())
}

fn parse(text: &str) -> Result<AgentsFile, AgentsFileError> {
    AgentsFile::parse(
        text,
        Path::new("agentdesk.yaml"),
        &tool_names(),
        &example_env,
    )
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("the file should be invalid:\n{text}"),
        Err(error) => error
            .to_string()
            .lines()
            .skip(1)
            .map(|line| line.trim().to_string())
            .collect(),
    }
}

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/agentdesk.yaml")
}

#[test]
fn shipped_example_is_valid() {
    let text = std::fs::read_to_string(example_path()).expect("the example exists");
    let file = parse(&text).expect("the example is valid");
    assert!(file.agents.len() >= 2);
    assert_eq!(file.default_agent, "explorer");
    let incidents = file.agent("incidents").expect("incidents agent");
    assert!(incidents.access.is_some());
    assert_eq!(incidents.actions, ["open-incident", "restart"]);
    let ids: Vec<&str> = file
        .actions
        .iter()
        .map(|action| action.id.as_str())
        .collect();
    assert_eq!(ids, ["deploy", "open-incident", "restart"]);

    // Without the variables its executors read, the example names each.
    let error = AgentsFile::parse(&text, Path::new("agentdesk.yaml"), &tool_names(), &|_| None)
        .expect_err("missing secrets stop the program");
    let message = error.to_string();
    for variable in [
        "AGENTDESK_WEBHOOK_SECRET",
        "INCIDENT_API_KEY",
        "GITHUB_TOKEN",
    ] {
        assert!(message.contains(variable), "{variable} is named: {message}");
    }
    assert!(
        message.contains("action \"deploy\", field executor.secret_env"),
        "{message}"
    );
    assert!(
        incidents
            .data_scope
            .as_ref()
            .is_some_and(|scope| scope.contains("incident"))
    );
}

#[test]
fn missing_explicit_file_is_an_error() {
    let directory = tempfile::TempDir::new().expect("temp dir");
    let missing = directory.path().join("nope.yaml");
    let error = AgentsFile::load(Some(&missing), &tool_names(), &|_| None)
        .expect_err("a missing explicit file fails");
    let message = format!("{error:#}");
    assert!(message.contains("nope.yaml"), "{message}");
    assert!(
        message.contains("AGENTDESK_CONFIG"),
        "the message says what to check: {message}"
    );
}

#[test]
fn built_in_configuration_has_the_default_agent() {
    let built_in = AgentsFile::built_in();
    assert_eq!(built_in.agents.len(), 1);
    assert_eq!(built_in.default_agent, "default");
    assert!(built_in.agents[0].access.is_none());
}

#[test]
fn unknown_field_names_line_and_agent() {
    let lines =
        problems("agents:\n  - id: explorer\n    title: T\n    description: D\n    nick: e\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("agentdesk.yaml:5:5:"), "{}", lines[0]);
    assert!(lines[0].contains("agent \"explorer\""), "{}", lines[0]);
    assert!(lines[0].contains("unknown field `nick`"), "{}", lines[0]);
}

#[test]
fn every_invalid_field_is_reported() {
    let text = "\
default_agent: nobody
channels:
  general: explorer
agents:
  - id: explorer
    title: Explorer
    description: Services
    backend: gemini
    system_prompt: \"\"
    allowed_tools: [\"[\", \"nothing\"]
    access:
      users: [alice]
  - id: explorer
    title: Again
    description: Duplicate
  - title: No id
    description: Missing id
";
    let lines = problems(text);
    let expect = |needle: &str| {
        assert!(
            lines.iter().any(|line| line.contains(needle)),
            "no line contains {needle:?}:\n{lines:#?}"
        );
    };
    expect("agentdesk.yaml:1:16: field default_agent: no agent has the id \"nobody\"");
    expect("field channels: \"general\" is not a Slack channel id");
    expect("agent \"explorer\", field backend: \"gemini\" is not a backend");
    expect("agent \"explorer\", field system_prompt: is empty");
    expect("field allowed_tools: \"[\" is not a valid regular expression");
    expect("field allowed_tools: \"nothing\" matches no tool");
    expect("field access.users: \"alice\" is not a Slack user id");
    expect("agentdesk.yaml:13:9: agent \"explorer\", field id: another agent already uses this id");
    expect("field id: missing");
    assert!(
        lines.iter().all(|line| line.starts_with("agentdesk.yaml:")),
        "every line has a location: {lines:#?}"
    );
}

#[test]
fn long_system_prompt_is_rejected() {
    let prompt = "x".repeat(4_001);
    let text = format!(
        "agents:\n  - id: a\n    title: A\n    description: D\n    system_prompt: {prompt}\n"
    );
    let lines = problems(&text);
    assert!(
        lines[0].contains("field system_prompt: has 4001 characters; the limit is 4000"),
        "{lines:?}"
    );
    assert!(lines[0].starts_with("agentdesk.yaml:5:20:"), "{}", lines[0]);
}

#[test]
fn too_many_starters_and_bad_limits_are_rejected() {
    let text = "\
retention:
  days: 0
agents:
  - id: a
    title: A
    description: D
    requests_per_minute: 0
    conversation_starters: [one, two, three, four, five]
";
    let lines = problems(text);
    assert!(
        lines
            .iter()
            .any(|line| line.contains("retention.days: must be at least 1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("requests_per_minute: must be at least 1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("conversation_starters: has 5 entries")),
        "{lines:?}"
    );
}

#[test]
fn allowed_tools_match_whole_names() {
    let file = parse("agents:\n  - id: a\n    title: A\n    description: D\n    allowed_tools: [\"search_.*\", \"get_entity\"]\n")
        .expect("valid");
    let agent = &file.agents[0];
    assert!(agent.allows_tool("search_entities", true));
    assert!(agent.allows_tool("get_entity", true));
    assert!(
        !agent.allows_tool("get_entity_history", true),
        "patterns match the whole name"
    );
    assert!(!agent.allows_tool("count_entities", true));

    let default = parse("agents:\n  - id: b\n    title: B\n    description: D\n").expect("valid");
    assert!(default.agents[0].allows_tool("count_entities", true));
    assert!(
        !default.agents[0].allows_tool("deploy", false),
        "without allowed_tools only read-only tools"
    );
}

#[test]
fn config_check_command_reports_agents_and_errors() {
    let directory = tempfile::TempDir::new().expect("temp dir");
    let example = example_path();
    let output = run_agentdesk(
        directory.path(),
        &EXAMPLE_ENV,
        &["config", "check", example.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("incidents (Incident Manager)"), "{stdout}");
    assert!(
        stdout.contains("actions it may propose: open-incident, restart"),
        "{stdout}"
    );
    assert!(stdout.contains("deploy (Deploy a service)"), "{stdout}");
    for (_, secret) in EXAMPLE_ENV {
        assert!(!stdout.contains(secret), "no secret is printed: {stdout}");
    }
    assert!(
        stdout.contains("tools: search_entities, get_entity"),
        "the triage agent's tools: {stdout}"
    );

    let broken = directory.path().join("broken.yaml");
    std::fs::write(&broken, "agents:\n  - id: a\n    title: A\n").expect("written");
    let output = run_agentdesk(
        directory.path(),
        &[],
        &["config", "check", broken.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.yaml:2:5: agent \"a\", field description: missing"),
        "{stderr}"
    );
}
