//! How the offline backend writes answers: short Markdown naming every
//! entity it used by title and reference.

use serde_json::Value;

/// Writes `**Title** (`blueprint:identifier`)` for an entity, or just the
/// reference when the title adds nothing.
pub(super) fn label(reference: &str, title: Option<&str>) -> String {
    let identifier = reference
        .split_once(':')
        .map_or(reference, |(_, identifier)| identifier);
    match title.map(str::trim).filter(|title| !title.is_empty()) {
        Some(title) if title != identifier => format!("**{title}** (`{reference}`)"),
        _ => format!("**{identifier}** (`{reference}`)"),
    }
}

/// Labels an entity from a `get_entity` or search result.
pub(super) fn label_of(entity: &Value) -> String {
    let reference = entity.get("ref").and_then(Value::as_str).unwrap_or("?");
    label(reference, entity.get("title").and_then(Value::as_str))
}

/// Labels the far end of a relation, saying when it is not in the catalog.
pub(super) fn linked(link: &Value) -> String {
    let reference = link.get("ref").and_then(Value::as_str).unwrap_or("?");
    let found = link.get("found").and_then(Value::as_bool).unwrap_or(true);
    if found {
        label(reference, link.get("title").and_then(Value::as_str))
    } else {
        format!("`{reference}`, which is not in the catalog")
    }
}

/// Quotes words from the question, cut to 60 characters so a long question
/// is never echoed back whole.
pub(super) fn quoted(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= 60 {
        format!("“{text}”")
    } else {
        let cut: String = text.chars().take(57).collect();
        format!("“{}…”", cut.trim_end())
    }
}

/// Joins items as "a, b and c".
pub(super) fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Writes a property value for a sentence.
pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Null => "not set".to_string(),
        other => other.to_string(),
    }
}

/// The answer when the question was not understood.
pub(super) fn help() -> String {
    "I could not work out what you are asking, and the built-in offline backend only \
understands a few kinds of question, such as:\n\
- who owns payments?\n\
- what is checkout?\n\
- what does the billing team own? / who is in the billing team?\n\
- what does checkout depend on? / what depends on payments?\n\
- how many services are there?\n\
- which services are in production? / which services have open critical vulnerabilities?\n\
- when was the last successful deployment of checkout?\n\n\
For free-form questions, configure a language model: set `AGENTDESK_BACKEND=openai` \
with `OPENAI_API_KEY` (or `OPENAI_BASE_URL` for a local server such as Ollama), or \
`AGENTDESK_BACKEND=anthropic` with `ANTHROPIC_API_KEY`."
        .to_string()
}

/// The answer when the tool-call limit stopped the plan.
pub(super) fn out_of_tool_calls() -> String {
    "I reached the limit of tool calls for one question before I could finish looking this \
up. Try a narrower question, or raise `AGENTDESK_MAX_TOOL_CALLS`."
        .to_string()
}

/// The answer when the agent does not offer a tool the plan needs.
pub(super) fn tool_unavailable(tool: &str) -> String {
    format!(
        "I cannot answer this here: it needs the `{tool}` tool, which this agent is not \
allowed to use."
    )
}
