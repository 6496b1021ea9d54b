//! The question sets under `tests/fixtures/questions`, asked through the
//! real binary (`agentdesk ask --json`) with the offline backend, on SQLite
//! and PostgreSQL: over the demo catalog of an empty database, and over the
//! imported Backstage examples. Every failure of a set is collected and
//! reported together.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::helpers::{
    TestDatabase, backstage_fixtures, describe_output, fixture_path, on_both_databases,
    run_agentdesk,
};

on_both_databases!(
    demo_questions_answered,
    demo_reworded_questions_answered,
    backstage_questions_answered,
    backstage_reworded_questions_answered,
);

/// One question and the facts a correct answer must and must not contain.
#[derive(Debug, Deserialize)]
struct Case {
    question: String,
    must_contain: Vec<String>,
    #[serde(default)]
    must_not_contain: Vec<String>,
}

/// Why one question's answer did not pass.
#[derive(Debug, Default)]
struct Failure {
    question: String,
    /// Problems with the command or its JSON, before any fact was checked.
    problems: Vec<String>,
    missing: Vec<String>,
    unexpected: Vec<String>,
    answer: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "question: {}", self.question)?;
        for problem in &self.problems {
            writeln!(f, "  problem: {problem}")?;
        }
        if !self.missing.is_empty() {
            writeln!(f, "  missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            writeln!(f, "  unexpected: {}", self.unexpected.join(", "))?;
        }
        let answer = self.answer.replace('\n', "\n          ");
        writeln!(f, "  answer: {answer}")
    }
}

fn load_cases(set: &str) -> Vec<Case> {
    let path = fixture_path("questions").join(set);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let cases: Vec<Case> = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not a question set: {error}", path.display()));
    assert!(!cases.is_empty(), "{set} holds no questions");
    cases
}

/// Asks one question and returns what is wrong with the answer, if anything.
fn check_case(workdir: &Path, env: &[(&str, &str)], case: &Case) -> Option<Failure> {
    let output = run_agentdesk(workdir, env, &["ask", &case.question, "--json"]);
    let mut failure = Failure {
        question: case.question.clone(),
        ..Failure::default()
    };

    if !output.status.success() {
        failure
            .problems
            .push(format!("the command failed: {}", describe_output(&output)));
    }
    let json: Value = match serde_json::from_slice(&output.stdout) {
        Ok(json) => json,
        Err(error) => {
            failure.problems.push(format!(
                "stdout is not JSON ({error}): {}",
                describe_output(&output)
            ));
            return Some(failure);
        }
    };
    for field in ["invocation_id", "agent", "answer"] {
        if json[field].as_str().is_none_or(str::is_empty) {
            failure
                .problems
                .push(format!("{field} is missing or empty"));
        }
    }
    if json["tool_calls"].as_array().is_none_or(Vec::is_empty) {
        failure
            .problems
            .push("tool_calls is missing or empty".to_string());
    }

    failure.answer = json["answer"].as_str().unwrap_or_default().to_string();
    let answer = failure.answer.to_lowercase();
    failure.missing = case
        .must_contain
        .iter()
        .filter(|fact| !answer.contains(&fact.to_lowercase()))
        .cloned()
        .collect();
    failure.unexpected = case
        .must_not_contain
        .iter()
        .filter(|fact| answer.contains(&fact.to_lowercase()))
        .cloned()
        .collect();

    let passed =
        failure.problems.is_empty() && failure.missing.is_empty() && failure.unexpected.is_empty();
    (!passed).then_some(failure)
}

/// Asks every question of a set, one binary run each, and fails once with
/// the list of all questions whose answers did not pass.
fn assert_question_set(workdir: &Path, env: &[(&str, &str)], set: &str) {
    let cases = load_cases(set);
    let failures: Vec<Failure> = cases
        .iter()
        .filter_map(|case| check_case(workdir, env, case))
        .collect();

    let report: String = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {} questions in {set} failed:\n\n{report}",
        failures.len(),
        cases.len()
    );
}

/// Imports the Backstage examples into the database at `url`.
fn import_backstage(workdir: &Path, url: &str) {
    let fixtures = backstage_fixtures();
    let output = run_agentdesk(
        workdir,
        &[("DATABASE_URL", url)],
        &[
            "catalog",
            "import",
            fixtures.to_str().expect("a UTF-8 fixture path"),
        ],
    );
    assert!(
        output.status.success(),
        "the import failed: {}",
        describe_output(&output)
    );
}

fn offline_env(url: &str) -> [(&str, &str); 2] {
    [("DATABASE_URL", url), ("AGENTDESK_BACKEND", "offline")]
}

/// The database starts empty, so the first question loads the demo catalog.
async fn demo_questions_answered(database: TestDatabase) {
    let workdir = tempfile::tempdir().expect("create a working folder");
    assert_question_set(workdir.path(), &offline_env(database.url()), "demo.json");
}

async fn demo_reworded_questions_answered(database: TestDatabase) {
    let workdir = tempfile::tempdir().expect("create a working folder");
    assert_question_set(
        workdir.path(),
        &offline_env(database.url()),
        "demo-reworded.json",
    );
}

async fn backstage_questions_answered(database: TestDatabase) {
    let workdir = tempfile::tempdir().expect("create a working folder");
    import_backstage(workdir.path(), database.url());
    assert_question_set(
        workdir.path(),
        &offline_env(database.url()),
        "backstage.json",
    );
}

async fn backstage_reworded_questions_answered(database: TestDatabase) {
    let workdir = tempfile::tempdir().expect("create a working folder");
    import_backstage(workdir.path(), database.url());
    assert_question_set(
        workdir.path(),
        &offline_env(database.url()),
        "backstage-reworded.json",
    );
}
