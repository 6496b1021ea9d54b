//! Line-oriented output for the mrkdwn renderer.
//!
//! mrkdwn has no nesting, so block structure is written as line prefixes:
//! `> ` for each open quote and a list marker (`• `, `1. `) followed by an
//! indent for each open list item. Breaks between blocks are requested and
//! written only when more content follows, so the output never ends in
//! blank lines and never starts with them.

/// Width of the indent that continues a list item on later lines.
const ITEM_INDENT: &str = "    ";

/// The mrkdwn text under construction.
#[derive(Default)]
pub(super) struct LineWriter {
    output: String,
    prefixes: Vec<Prefix>,
    /// Newlines that must separate the next content from what came before.
    pending_newlines: usize,
    /// Newlines at the end of `output` since its last content.
    trailing_newlines: usize,
}

/// The line prefix of one open quote or list item.
struct Prefix {
    /// Written on the first line that has content.
    first: String,
    /// Written on every later line.
    rest: String,
    is_first_written: bool,
}

impl LineWriter {
    /// Asks for at least `newlines` line breaks before the next content:
    /// 1 starts a new line, 2 leaves a blank line.
    pub(super) fn request_break(&mut self, newlines: usize) {
        self.pending_newlines = self.pending_newlines.max(newlines);
    }

    /// Opens a block quote: every line inside starts with `> `.
    pub(super) fn open_quote(&mut self) {
        self.push_prefix("> ".to_string(), "> ".to_string());
    }

    /// Opens a list item: its first line starts with `marker` and its later
    /// lines are indented.
    pub(super) fn open_item(&mut self, marker: String) {
        self.push_prefix(marker, ITEM_INDENT.to_string());
    }

    /// Closes the innermost quote or list item.
    pub(super) fn close_block(&mut self) {
        self.prefixes.pop();
    }

    /// Tells whether the next content starts a fresh line.
    pub(super) fn is_line_start(&self) -> bool {
        self.output.is_empty() || self.trailing_newlines > 0
    }

    /// Writes text that may contain newlines. Each line gets the prefixes of
    /// the blocks that are open.
    pub(super) fn write(&mut self, text: &str) {
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                self.end_line();
            }
            if !line.is_empty() {
                self.write_in_line(line);
            }
        }
    }

    /// Returns the text written so far, without trailing whitespace.
    pub(super) fn finish(mut self) -> String {
        let trimmed_length = self.output.trim_end().len();
        self.output.truncate(trimmed_length);
        self.output
    }

    fn push_prefix(&mut self, first: String, rest: String) {
        self.prefixes.push(Prefix {
            first,
            rest,
            is_first_written: false,
        });
    }

    fn write_in_line(&mut self, text: &str) {
        self.write_pending_newlines();
        if self.is_line_start() {
            self.write_line_prefix();
        }
        self.output.push_str(text);
        self.trailing_newlines = 0;
    }

    fn end_line(&mut self) {
        if self.output.is_empty() {
            return;
        }
        self.write_pending_newlines();
        if self.trailing_newlines > 0 {
            self.write_blank_line_prefix();
        }
        self.output.push('\n');
        self.trailing_newlines += 1;
    }

    fn write_pending_newlines(&mut self) {
        if self.output.is_empty() {
            self.pending_newlines = 0;
            return;
        }

        while self.trailing_newlines < self.pending_newlines {
            if self.trailing_newlines > 0 {
                self.write_blank_line_prefix();
            }
            self.output.push('\n');
            self.trailing_newlines += 1;
        }
        self.pending_newlines = 0;
    }

    fn write_line_prefix(&mut self) {
        for prefix in &mut self.prefixes {
            if prefix.is_first_written {
                self.output.push_str(&prefix.rest);
            } else {
                self.output.push_str(&prefix.first);
                prefix.is_first_written = true;
            }
        }
    }

    /// Writes what a blank line inside the open blocks needs: `>` inside a
    /// quote, so the quote goes on, and nothing inside a plain list item.
    /// Blocks that have no line yet, such as a quote that starts after the
    /// blank line, add nothing.
    fn write_blank_line_prefix(&mut self) {
        let prefix: String = self
            .prefixes
            .iter()
            .take_while(|prefix| prefix.is_first_written)
            .map(|prefix| prefix.rest.as_str())
            .collect();
        self.output.push_str(prefix.trim_end());
    }
}
