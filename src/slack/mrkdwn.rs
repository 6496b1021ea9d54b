//! Model Markdown to Slack mrkdwn.
//!
//! Models write CommonMark, while the `text` of a Slack message is mrkdwn:
//! `*bold*`, `_italic_`, `~strike~`, `<url|label>` links, no headings, lists
//! or tables, and no escaping except `&amp;`, `&lt;` and `&gt;`.
//! [`markdown_to_mrkdwn`] parses the Markdown with pulldown-cmark and writes
//! the nearest mrkdwn for each element.
//!
//! Model output and catalog text are untrusted, so the conversion also
//! neutralises broadcasts that would notify a whole channel: tokens such as
//! `<!here>` come out escaped and a bare `@here` gets a zero-width space.
//! Slack tokens that already sit in the input (user and channel mentions,
//! links, dates) pass through unchanged.

mod lines;
mod render;
mod tokens;

use std::sync::LazyLock;

use pulldown_cmark::{Options, Parser, TextMergeWithOffset};
use regex::Regex;

/// Converts Markdown into Slack mrkdwn.
///
/// No visible text is dropped: elements that mrkdwn lacks become their
/// nearest form (headings turn bold, tables become code blocks, raw HTML is
/// shown as text). Link titles and the language word of fenced code are
/// not visible text and are dropped.
pub fn markdown_to_mrkdwn(markdown: &str) -> String {
    let protected = tokens::ProtectedText::new(markdown);

    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    let events = Parser::new_ext(protected.text(), options).into_offset_iter();
    let rendered = render::render(protected.text(), TextMergeWithOffset::new(events));

    protected.restore(&rendered)
}

/// Escapes plain untrusted text for use inside mrkdwn.
///
/// `&` is escaped first, then `<` and `>`, as Slack expects. Broadcast
/// tokens therefore lose their angle brackets and show as text, and a bare
/// `@here`, `@channel` or `@everyone` gets a zero-width space after the `@`
/// so that it cannot notify even when the message is posted with
/// `link_names`.
///
/// NOTE: that the zero-width space stops Slack's `link_names` parsing is
/// the common practice for chat bots, not something checked against Slack.
pub fn escape_mrkdwn(text: &str) -> String {
    neutralise_broadcasts(&escape_specials(text))
}

/// Replaces `&`, `<` and `>` with the entities Slack decodes.
fn escape_specials(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Inserts a zero-width space after the `@` of each bare broadcast word.
///
/// A word counts as a broadcast only at a word start (so `ops@channel.io`
/// stays as it is) and only when no word character follows it.
fn neutralise_broadcasts(text: &str) -> String {
    static BROADCAST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(^|[^\w])@(here|channel|everyone)\b")
            .expect("the broadcast pattern is a valid regex literal")
    });

    BROADCAST.replace_all(text, "$1@\u{200B}$2").into_owned()
}

/// Escapes text from the Markdown for mrkdwn output. On top of
/// [`escape_mrkdwn`], a zero-width space goes into every run of three
/// backticks, because Slack would read such a run as a code fence and the
/// block structure of the output would break.
///
/// NOTE: mrkdwn has no way to escape `*`, `_`, `~` or a single backtick, so
/// such characters in the text (`2 * 3 * 4`, `a_b_c`) are left as they are
/// and Slack may still format them where they sit at word edges.
fn escape_markdown_text(text: &str) -> String {
    break_fences(&escape_mrkdwn(text))
}

fn break_fences(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut backticks_in_row = 0;

    for c in text.chars() {
        if c == '`' {
            backticks_in_row += 1;
            if backticks_in_row == 3 {
                output.push('\u{200B}');
                backticks_in_row = 1;
            }
        } else {
            backticks_in_row = 0;
        }
        output.push(c);
    }
    output
}
