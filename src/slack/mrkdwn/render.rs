//! Markdown events to mrkdwn text.
//!
//! Block elements go through [`LineWriter`], which handles line prefixes and
//! the breaks between blocks. Elements that mrkdwn writes as one piece
//! (a heading, a link, an image, a table cell) collect their inline content
//! in a capture first and are written whole when they end.

use std::ops::Range;

use pulldown_cmark::{Event, LinkType, Tag, TagEnd};
use unicode_segmentation::UnicodeSegmentation;

use super::escape_markdown_text;
use super::lines::LineWriter;
use super::tokens::is_placeholder;

/// Renders Markdown events, each with its byte range in `source`, as
/// mrkdwn.
pub(super) fn render<'a>(
    source: &str,
    events: impl Iterator<Item = (Event<'a>, Range<usize>)>,
) -> String {
    let mut renderer = Renderer {
        source,
        lines: LineWriter::default(),
        captures: Vec::new(),
        lists: Vec::new(),
        table_rows: Vec::new(),
        last_cell_end: 0,
        is_in_code_block: false,
    };
    for (event, range) in events {
        renderer.handle(event, range);
    }
    renderer.lines.finish()
}

struct Renderer<'s> {
    /// The Markdown being rendered, for the table cells the parser drops.
    source: &'s str,
    lines: LineWriter,
    /// Elements whose inline content is being collected, innermost last.
    captures: Vec<Capture>,
    /// The open lists, innermost last: the next number of an ordered list,
    /// `None` for a bullet list.
    lists: Vec<Option<u64>>,
    /// Rows of the open table, each a list of rendered cells.
    table_rows: Vec<Vec<String>>,
    /// Byte offset in `source` where the last table cell ended.
    last_cell_end: usize,
    is_in_code_block: bool,
}

struct Capture {
    kind: CaptureKind,
    text: String,
}

enum CaptureKind {
    Heading,
    Link {
        link_type: LinkType,
        destination: String,
    },
    Image {
        destination: String,
    },
    TableCell,
}

impl Renderer<'_> {
    fn handle(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag, range),
            Event::Text(text) => self.write_text(&text),
            Event::Code(code) => self.write_inline_code(&code),
            Event::Html(html) | Event::InlineHtml(html) => {
                self.write_inline(&escape_markdown_text(&html));
            }
            Event::InlineMath(math) | Event::DisplayMath(math) => {
                self.write_inline(&escape_markdown_text(&math));
            }
            Event::FootnoteReference(label) => {
                self.write_inline(&escape_markdown_text(&format!("[^{label}]")));
            }
            Event::SoftBreak | Event::HardBreak => self.write_line_break(),
            Event::Rule => self.write_rule(),
            Event::TaskListMarker(is_checked) => {
                self.write_inline(if is_checked { "[x] " } else { "[ ] " });
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.lines.request_break(self.block_gap()),
            Tag::Heading { .. } => {
                self.lines.request_break(self.block_gap());
                self.start_capture(CaptureKind::Heading);
            }
            Tag::BlockQuote(_) => {
                self.lines.request_break(self.block_gap());
                self.lines.open_quote();
            }
            Tag::CodeBlock(_) => {
                self.lines.request_break(self.block_gap());
                self.lines.write("```\n");
                self.is_in_code_block = true;
            }
            Tag::List(first_number) => {
                self.lines.request_break(self.block_gap());
                self.lists.push(first_number);
            }
            Tag::Item => self.start_item(),
            Tag::Table(_) => {
                self.lines.request_break(self.block_gap());
                self.table_rows.clear();
            }
            Tag::TableHead | Tag::TableRow => self.table_rows.push(Vec::new()),
            Tag::TableCell => self.start_capture(CaptureKind::TableCell),
            Tag::Emphasis => self.write_marker("_"),
            Tag::Strong if !self.is_in(|kind| matches!(kind, CaptureKind::Heading)) => {
                self.write_marker("*");
            }
            Tag::Strikethrough => self.write_marker("~"),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => self.start_capture(CaptureKind::Link {
                link_type,
                destination: dest_url.to_string(),
            }),
            Tag::Image { dest_url, .. } => self.start_capture(CaptureKind::Image {
                destination: dest_url.to_string(),
            }),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd, range: Range<usize>) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.lines.request_break(1),
            TagEnd::Heading(_) => self.end_heading(),
            TagEnd::BlockQuote(_) | TagEnd::Item => {
                self.lines.close_block();
                self.lines.request_break(1);
            }
            TagEnd::CodeBlock => {
                if !self.lines.is_line_start() {
                    self.lines.write("\n");
                }
                self.lines.write("```");
                self.is_in_code_block = false;
                self.lines.request_break(1);
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.lines.request_break(1);
            }
            TagEnd::Table => self.write_table(),
            TagEnd::TableCell => {
                let cell = self.end_capture().map(|capture| capture.text);
                if let (Some(row), Some(cell)) = (self.table_rows.last_mut(), cell) {
                    row.push(cell.trim().to_string());
                }
                self.last_cell_end = range.end;
            }
            TagEnd::TableHead | TagEnd::TableRow => self.add_overflow_cells(range),
            TagEnd::Emphasis => self.write_marker("_"),
            TagEnd::Strong if !self.is_in(|kind| matches!(kind, CaptureKind::Heading)) => {
                self.write_marker("*");
            }
            TagEnd::Strikethrough => self.write_marker("~"),
            TagEnd::Link | TagEnd::Image => self.end_link(),
            _ => {}
        }
    }

    /// Newlines between two blocks: a blank line at the top level and in
    /// quotes, a single line break inside lists so items stay together.
    fn block_gap(&self) -> usize {
        if self.lists.is_empty() { 2 } else { 1 }
    }

    fn start_item(&mut self) {
        let marker = match self.lists.last_mut() {
            Some(Some(number)) => {
                let marker = format!("{number}. ");
                *number = number.saturating_add(1);
                marker
            }
            _ => "• ".to_string(),
        };

        self.lines.request_break(1);
        self.lines.open_item(marker);
    }

    fn end_heading(&mut self) {
        if let Some(capture) = self.end_capture() {
            let heading = capture.text.trim();
            if !heading.is_empty() {
                self.write_inline(&format!("*{heading}*"));
            }
        }
        self.lines.request_break(1);
    }

    fn end_link(&mut self) {
        let Some(capture) = self.end_capture() else {
            return;
        };
        let is_plain = self.is_in(|kind| matches!(kind, CaptureKind::TableCell));

        let link = match capture.kind {
            CaptureKind::Link {
                link_type,
                destination,
            } => format_link(&destination, &capture.text, link_type, is_plain),
            CaptureKind::Image { destination } => {
                format_link(&destination, &capture.text, LinkType::Inline, is_plain)
            }
            CaptureKind::Heading | CaptureKind::TableCell => capture.text,
        };
        self.write_inline(&link);
    }

    /// Adds the cells of a row that has more cells than the table header.
    /// GitHub-flavoured Markdown drops them and so does the parser, but they
    /// are text the model wrote, so they are taken from the source as typed.
    fn add_overflow_cells(&mut self, row: Range<usize>) {
        let start = self.last_cell_end.max(row.start);
        let overflow = self.source.get(start..row.end).unwrap_or_default();
        let Some(cells) = self.table_rows.last_mut() else {
            return;
        };

        let overflow = overflow.trim().trim_matches('|');
        cells.extend(
            overflow
                .split('|')
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(escape_markdown_text),
        );
    }

    fn write_text(&mut self, text: &str) {
        let escaped = escape_markdown_text(text);
        if self.is_in_code_block {
            self.lines.write(&escaped);
        } else {
            self.write_inline(&escaped);
        }
    }

    /// Writes a code span in backticks. Slack formats nothing inside them,
    /// but it still reads `<...>` tokens there, so the content is escaped.
    /// Inside a table the backticks are left out, because the whole table
    /// already is a code block.
    fn write_inline_code(&mut self, code: &str) {
        let escaped = escape_markdown_text(code);
        if self.is_in(|kind| matches!(kind, CaptureKind::TableCell)) {
            self.write_inline(&escaped);
        } else {
            self.write_inline(&format!("`{escaped}`"));
        }
    }

    fn write_line_break(&mut self) {
        if self.captures.is_empty() {
            self.lines.write("\n");
        } else {
            self.write_inline(" ");
        }
    }

    fn write_rule(&mut self) {
        self.lines.request_break(self.block_gap());
        self.lines.write("───");
        self.lines.request_break(1);
    }

    /// Writes a formatting marker, except inside a table: a table is shown
    /// as a code block, where Slack would print the marker literally.
    fn write_marker(&mut self, marker: &str) {
        if !self.is_in(|kind| matches!(kind, CaptureKind::TableCell)) {
            self.write_inline(marker);
        }
    }

    /// Writes the table as a code block, one row per line, with each column
    /// padded to its widest cell so the columns line up.
    fn write_table(&mut self) {
        let rows = std::mem::take(&mut self.table_rows);
        let column_count = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; column_count];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(display_width(cell));
            }
        }

        self.lines.request_break(self.block_gap());
        self.lines.write("```\n");
        for row in &rows {
            let line = format_table_row(row, &widths);
            self.lines.write(&line);
            self.lines.write("\n");
        }
        self.lines.write("```");
        self.lines.request_break(1);
    }

    fn write_inline(&mut self, text: &str) {
        match self.captures.last_mut() {
            Some(capture) => capture.text.push_str(text),
            None => self.lines.write(text),
        }
    }

    fn start_capture(&mut self, kind: CaptureKind) {
        self.captures.push(Capture {
            kind,
            text: String::new(),
        });
    }

    fn end_capture(&mut self) -> Option<Capture> {
        self.captures.pop()
    }

    fn is_in(&self, is_kind: impl Fn(&CaptureKind) -> bool) -> bool {
        self.captures.iter().any(|capture| is_kind(&capture.kind))
    }
}

/// Formats a link or image as mrkdwn. `label` is already rendered mrkdwn.
///
/// A destination with a scheme becomes `<url|label>`, or `<url>` when the
/// label is empty or repeats the URL. Slack cannot nest `<...>`, so a label
/// that contains a token (an image, a mention) is written before the link
/// instead. A relative destination, and any link inside a table, is written
/// as `label (destination)` text.
fn format_link(destination: &str, label: &str, link_type: LinkType, is_plain: bool) -> String {
    let label = label.trim();
    let shown_destination = escape_markdown_text(destination);

    if link_type == LinkType::Email {
        return if is_plain {
            shown_destination
        } else {
            format!("<mailto:{}|{shown_destination}>", escape_url(destination))
        };
    }
    if destination.is_empty() {
        return label.to_string();
    }

    let is_bare = label.is_empty() || label == shown_destination || link_type == LinkType::Autolink;
    let is_slack_link = has_scheme(destination) && !is_plain;
    match (is_bare, is_slack_link) {
        (true, true) => format!("<{}>", escape_url(destination)),
        (true, false) => shown_destination,
        (false, false) => format!("{label} ({shown_destination})"),
        (false, true) if label.contains('<') || label.chars().any(is_placeholder) => {
            format!("{label} (<{}>)", escape_url(destination))
        }
        (false, true) => format!("<{}|{label}>", escape_url(destination)),
    }
}

/// Tells whether `destination` starts with a URI scheme such as `https:`.
fn has_scheme(destination: &str) -> bool {
    let Some((scheme, _)) = destination.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    starts_with_letter && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Escapes a URL for the inside of `<...>`: `&` as `&amp;` like all text,
/// and the characters that would end the token or its URL part (`<`, `>`,
/// `|` and whitespace) percent-encoded.
fn escape_url(url: &str) -> String {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' | '>' | '|' => escaped.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_whitespace() => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    escaped.push_str(&format!("%{byte:02X}"));
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}

fn format_table_row(cells: &[String], widths: &[usize]) -> String {
    let filled = cells
        .iter()
        .rposition(|cell| !cell.is_empty())
        .map_or(0, |last| last + 1);
    let padded: Vec<String> = cells[..filled]
        .iter()
        .zip(widths)
        .map(|(cell, width)| {
            let padding = width.saturating_sub(display_width(cell));
            format!("{cell}{}", " ".repeat(padding))
        })
        .collect();
    padded.join(" | ").trim_end().to_string()
}

/// Counts the graphemes a person sees in escaped mrkdwn text: each
/// `&amp;`, `&lt;` and `&gt;` shows as one character.
fn display_width(text: &str) -> usize {
    let entity_extra = text.matches("&amp;").count() * 4
        + text.matches("&lt;").count() * 3
        + text.matches("&gt;").count() * 3;
    text.graphemes(true).count().saturating_sub(entity_extra)
}
