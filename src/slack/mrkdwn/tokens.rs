//! Slack tokens kept intact through the Markdown parser.
//!
//! A Markdown parser would read `<@U1>` as raw HTML, `<https://x|a b>` as
//! text and `<!subteam^S1|@oncall>` as an email autolink. Before parsing,
//! each Slack token is swapped for one placeholder character from the
//! supplementary private use planes (U+F0000 to U+10FFFD), a character that
//! does not occur anywhere in the input. After rendering, each placeholder
//! is swapped back: a pass-through token as it was, a broadcast token
//! (`<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^...>`) escaped, so it
//! shows as text and notifies no one.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use super::escape_mrkdwn;

/// A Slack token: a user or channel mention, an http, https or mailto
/// link, a date or a broadcast, each with an optional `|label`.
static SLACK_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"<(?:@[A-Z][A-Z0-9]*|#[A-Z][A-Z0-9]*|(?:https?://|mailto:)[^\s<>|]+",
        r"|!date\^[^\s<>|]+|!here|!channel|!everyone|!subteam\^[^\s<>|]*)",
        r"(?:\|[^<>\n]*)?>",
    ))
    .expect("the token pattern is a valid regex literal")
});

/// Markdown with its Slack tokens replaced by placeholder characters.
pub(super) struct ProtectedText {
    text: String,
    /// Output text for each placeholder.
    tokens: HashMap<char, String>,
}

impl ProtectedText {
    /// Replaces every Slack token in `markdown` with a placeholder.
    ///
    /// When the input already uses all 131,068 placeholder candidates, the
    /// remaining tokens stay in the text and the renderer escapes them,
    /// which loses the link but no text.
    pub(super) fn new(markdown: &str) -> Self {
        let in_input: HashSet<char> = markdown.chars().filter(|c| is_placeholder(*c)).collect();
        let mut free = placeholder_candidates().filter(|c| !in_input.contains(c));

        let mut tokens = HashMap::new();
        let text = SLACK_TOKEN.replace_all(markdown, |found: &regex::Captures| {
            let token = &found[0];
            match free.next() {
                Some(placeholder) => {
                    tokens.insert(placeholder, output_for_token(token));
                    placeholder.to_string()
                }
                None => token.to_string(),
            }
        });

        Self {
            text: text.into_owned(),
            tokens,
        }
    }

    /// Markdown to hand to the parser.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Puts the original tokens back in place of their placeholders.
    pub(super) fn restore(&self, rendered: &str) -> String {
        if self.tokens.is_empty() {
            return rendered.to_string();
        }

        let mut restored = String::with_capacity(rendered.len());
        for c in rendered.chars() {
            match self.tokens.get(&c) {
                Some(token) => restored.push_str(token),
                None => restored.push(c),
            }
        }
        restored
    }
}

/// Returns a pass-through token unchanged and a broadcast token escaped.
fn output_for_token(token: &str) -> String {
    let is_broadcast = token.starts_with("<!") && !token.starts_with("<!date^");
    if is_broadcast {
        escape_mrkdwn(token)
    } else {
        token.to_string()
    }
}

/// Tells whether `c` lies in the planes that placeholders are taken from.
/// Input characters there are rare, and the renderer treats them like
/// tokens when it decides how to write a link label.
pub(super) fn is_placeholder(c: char) -> bool {
    matches!(c, '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

fn placeholder_candidates() -> impl Iterator<Item = char> {
    ('\u{F0000}'..='\u{FFFFD}').chain('\u{100000}'..='\u{10FFFD}')
}
