//! Splitting mrkdwn into messages that fit Slack's size limits.
//!
//! Slack rejects a message whose `text` is much longer than 4,000
//! characters (`msg_too_long`), so a long reply is posted as several
//! messages in the thread. [`split_message`] cuts the text at the most natural place that
//! fits: a paragraph break, else a line break, else a space, else a grapheme
//! boundary. It never cuts inside a grapheme cluster, a `<...>` token or an
//! `&amp;`, `&lt;` or `&gt;` escape while a cut elsewhere is possible.
//!
//! Code blocks are tracked with a simple rule: every three backticks in a
//! row, counted left to right, open or close a block. A chunk that ends
//! inside a block gets a closing fence, and the next chunk reopens it.
//!
//! NOTE: Slack's own fence parsing is not documented, so text that puts
//! backticks in odd places (four in a row, fences inside inline code) may
//! be read differently by Slack. Inline formatting (`*bold*`, a code span)
//! that spans a cut is not closed and reopened the way code blocks are.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Characters that one message's `text` may contain. Slack documents
/// 40,000 but has returned `msg_too_long` from about 4,000 characters on.
pub const MAX_MESSAGE_TEXT_CHARS: usize = 3_900;

/// Characters in the `text` of one section block; Slack rejects 3,001.
pub const MAX_SECTION_TEXT_CHARS: usize = 3_000;

/// Blocks in one message (modals and the Home tab allow 100).
pub const MAX_BLOCKS_PER_MESSAGE: usize = 50;

/// Smallest limit honoured: room for a reopening and a closing fence
/// (4 characters each) and a little text between them.
const MIN_CHUNK_CHARS: usize = 16;

const OPEN_FENCE: &str = "```\n";
const CLOSE_FENCE: &str = "\n```";
const FENCE_CHARS: usize = 4;

/// Splits mrkdwn text into chunks of at most `max_chars` characters each.
///
/// Characters are counted as Unicode scalar values, as Slack counts them. A
/// `max_chars` below 16 is treated as 16. The whitespace at each cut is
/// dropped, except the indentation that starts the next line, and so is the
/// whitespace around the whole text. Nothing else is lost: joining the
/// chunks without the fences added at the cuts gives back the text. A chunk
/// is never empty or only whitespace, and empty input gives no chunks.
///
/// A grapheme cluster or `<...>` token longer than a whole chunk is the one
/// thing that gets cut, at a grapheme boundary inside it where possible and
/// at a character boundary otherwise.
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(MIN_CHUNK_CHARS);
    let mut layout = Layout::new(text);
    let mut chunks = Vec::new();

    let mut start = layout.skip_separator(0);
    while start < layout.content_end() {
        let end = layout.choose_end(&mut start, max_chars);
        if let Some(chunk) = layout.chunk_text(start, end) {
            chunks.push(chunk);
        }
        start = layout.skip_separator(end);
    }
    chunks
}

/// The text cut into units that a split never enters, with what the split
/// needs to know about them. Unit `k` spans bytes
/// `boundaries[k]..boundaries[k + 1]`, so unit indexes and boundary indexes
/// are used side by side.
struct Layout<'a> {
    text: &'a str,
    /// Byte offsets where a chunk may start or end, ascending, including 0
    /// and the text's length.
    boundaries: Vec<usize>,
    units: Vec<Unit>,
    /// Boundary index after the last unit that is not whitespace.
    content_end: usize,
    /// Number of characters before each byte offset.
    chars_before: Vec<usize>,
    /// Byte offsets that end a grapheme cluster.
    is_grapheme_boundary: Vec<bool>,
    /// Byte offsets strictly inside an escape or a fence, where even a
    /// forced cut must not land.
    is_inside_short_unit: Vec<bool>,
    /// Byte ranges of the runs of three backticks, ascending.
    fences: Vec<Range<usize>>,
}

#[derive(Clone, Copy)]
struct Unit {
    is_space: bool,
    /// For a whitespace unit: newlines in it and in the whitespace units
    /// that follow it without a break.
    run_newlines: usize,
}

impl<'a> Layout<'a> {
    fn new(text: &'a str) -> Self {
        let fences = find_fences(text);
        let tokens = find_tokens(text);
        let escapes = find_escapes(text);

        let mut is_inside_short_unit = vec![false; text.len() + 1];
        for range in fences.iter().chain(&escapes) {
            is_inside_short_unit[range.start + 1..range.end].fill(true);
        }
        let mut is_inside_unit = is_inside_short_unit.clone();
        for range in &tokens {
            is_inside_unit[range.start + 1..range.end].fill(true);
        }

        let mut is_grapheme_boundary = vec![false; text.len() + 1];
        is_grapheme_boundary[0] = true;
        for (start, grapheme) in text.grapheme_indices(true) {
            is_grapheme_boundary[start + grapheme.len()] = true;
        }

        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|&offset| is_grapheme_boundary[offset] && !is_inside_unit[offset])
            .collect();

        let units = describe_units(text, &boundaries);
        let content_end = find_content_end(&units);

        Self {
            text,
            boundaries,
            units,
            content_end,
            chars_before: count_chars_before(text),
            is_grapheme_boundary,
            is_inside_short_unit,
            fences,
        }
    }

    fn content_end(&self) -> usize {
        self.content_end
    }

    /// Moves past the whitespace at boundary `index`, up to and including
    /// its last newline, so that a new chunk keeps the indentation of its
    /// first line.
    fn skip_separator(&self, index: usize) -> usize {
        let mut after_newline = None;
        let mut next = index;
        while next < self.units.len() && self.units[next].is_space {
            if self.text[self.byte_range(next)].contains('\n') {
                after_newline = Some(next + 1);
            }
            next += 1;
        }

        if next == self.units.len() {
            return next;
        }
        after_newline.unwrap_or(next)
    }

    fn skip_spaces(&self, index: usize) -> usize {
        let mut next = index;
        while next < self.units.len() && self.units[next].is_space {
            next += 1;
        }
        next
    }

    /// Chooses where the chunk that starts at boundary `start` ends. When
    /// not even the indentation at `start` fits, it is dropped and `start`
    /// moves past it. When not one unit fits, that unit is cut in two.
    fn choose_end(&mut self, start: &mut usize, max_chars: usize) -> usize {
        if let Some(end) = self.find_end(*start, max_chars) {
            return end;
        }

        if self.units[*start].is_space {
            *start = self.skip_spaces(*start);
            if let Some(end) = self.find_end(*start, max_chars) {
                return end;
            }
        }
        self.cut_unit(*start, max_chars)
    }

    /// Finds the best end among the boundaries that fit: the end of all the
    /// remaining text, else the latest paragraph break, line break, space or
    /// other boundary, in that order of preference.
    fn find_end(&self, start: usize, max_chars: usize) -> Option<usize> {
        let open = self.fence_cost(start);
        let content_end = self.content_end();
        let mut best: Option<(u8, usize)> = None;

        for end in start + 1..=content_end {
            let chars = self.chars_between(start, end);
            if open + chars > max_chars {
                break;
            }
            if self.units[end - 1].is_space || open + chars + self.fence_cost(end) > max_chars {
                continue;
            }
            if end == content_end {
                return Some(end);
            }

            let priority = if self.is_beside_fence(end) {
                0
            } else {
                self.break_priority(end)
            };
            if best.is_none_or(|(best_priority, _)| priority >= best_priority) {
                best = Some((priority, end));
            }
        }
        best.map(|(_, end)| end)
    }

    /// Ranks a cut before unit `index`: 3 for a paragraph break, 2 for a
    /// line break, 1 for other whitespace, 0 for a cut inside a word.
    fn break_priority(&self, index: usize) -> u8 {
        let unit = self.units[index];
        match (unit.is_space, unit.run_newlines) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, 1) => 2,
            (true, _) => 3,
        }
    }

    /// Tells whether a cut at boundary `index` would fall between a fence
    /// and the code it opens or closes, leaving an empty code block behind.
    fn is_beside_fence(&self, index: usize) -> bool {
        let offset = self.boundaries[index];
        if !self.is_in_code(offset) {
            return false;
        }

        let fences_before = self.fences.partition_point(|fence| fence.end <= offset);
        let is_after_opening = fences_before
            .checked_sub(1)
            .is_some_and(|last| self.text[self.fences[last].end..offset].trim().is_empty());
        let is_before_closing = self
            .fences
            .get(fences_before)
            .is_some_and(|next| self.text[offset..next.start].trim().is_empty());
        is_after_opening || is_before_closing
    }

    /// Cuts unit `index`, which does not fit in a chunk on its own, at the
    /// last grapheme boundary inside it that fits, or at the last character
    /// boundary when its first grapheme is already too long. Returns the
    /// boundary index of the cut.
    fn cut_unit(&mut self, index: usize, max_chars: usize) -> usize {
        let range = self.byte_range(index);
        let open = self.fence_cost(index);
        let fits = |offset: usize| {
            let chars = self.chars_before[offset] - self.chars_before[range.start];
            offset > range.start
                && offset < range.end
                && !self.is_inside_short_unit[offset]
                && open + chars + self.fence_cost_at(offset) <= max_chars
        };

        let mut char_ends = self.text[range.clone()]
            .char_indices()
            .map(|(offset, c)| range.start + offset + c.len_utf8());
        let last_grapheme = char_ends
            .clone()
            .rfind(|&offset| self.is_grapheme_boundary[offset] && fits(offset));
        let last_char = char_ends.rfind(|&offset| fits(offset));

        // With at least 16 characters per chunk, the first character (or the
        // first three backticks of a fence) always fits, so a cut exists.
        let cut = last_grapheme.or(last_char).unwrap_or(range.end);
        if cut < range.end {
            self.boundaries.insert(index + 1, cut);
            self.units[index] = describe_unit(&self.text[range.start..cut]);
            self.units
                .insert(index + 1, describe_unit(&self.text[cut..range.end]));
            self.content_end = find_content_end(&self.units);
        }
        index + 1
    }

    /// Builds the chunk from boundary `start` to boundary `end`, with the
    /// fences it needs, or `None` when that text is only whitespace.
    fn chunk_text(&self, start: usize, end: usize) -> Option<String> {
        let core = &self.text[self.boundaries[start]..self.boundaries[end]];
        if core.trim().is_empty() {
            return None;
        }

        let mut chunk = String::new();
        if self.is_in_code(self.boundaries[start]) {
            chunk.push_str(OPEN_FENCE);
        }
        chunk.push_str(core);
        if self.is_in_code(self.boundaries[end]) {
            chunk.push_str(CLOSE_FENCE);
        }
        Some(chunk)
    }

    fn byte_range(&self, index: usize) -> Range<usize> {
        self.boundaries[index]..self.boundaries[index + 1]
    }

    fn chars_between(&self, start: usize, end: usize) -> usize {
        self.chars_before[self.boundaries[end]] - self.chars_before[self.boundaries[start]]
    }

    /// Characters of the fence that a chunk needs at boundary `index`.
    fn fence_cost(&self, index: usize) -> usize {
        self.fence_cost_at(self.boundaries[index])
    }

    fn fence_cost_at(&self, offset: usize) -> usize {
        if self.is_in_code(offset) {
            FENCE_CHARS
        } else {
            0
        }
    }

    /// Tells whether byte `offset` lies inside a code block, that is after
    /// an odd number of fences.
    fn is_in_code(&self, offset: usize) -> bool {
        let fences_before = self.fences.partition_point(|fence| fence.end <= offset);
        fences_before % 2 == 1
    }
}

fn describe_units(text: &str, boundaries: &[usize]) -> Vec<Unit> {
    let mut units: Vec<Unit> = boundaries
        .windows(2)
        .map(|pair| describe_unit(&text[pair[0]..pair[1]]))
        .collect();

    for index in (0..units.len().saturating_sub(1)).rev() {
        if units[index].is_space && units[index + 1].is_space {
            units[index].run_newlines += units[index + 1].run_newlines;
        }
    }
    units
}

fn find_content_end(units: &[Unit]) -> usize {
    units
        .iter()
        .rposition(|unit| !unit.is_space)
        .map_or(0, |last| last + 1)
}

/// Describes one unit on its own. [`describe_units`] then adds the
/// newlines of the whitespace that follows.
fn describe_unit(unit: &str) -> Unit {
    let is_space = unit.chars().all(char::is_whitespace);
    Unit {
        is_space,
        run_newlines: if is_space {
            unit.matches('\n').count()
        } else {
            0
        },
    }
}

fn count_chars_before(text: &str) -> Vec<usize> {
    let mut chars_before = vec![0; text.len() + 1];
    let mut count = 0;
    for (offset, c) in text.char_indices() {
        chars_before[offset] = count;
        count += 1;
        chars_before[offset + c.len_utf8()] = count;
    }
    chars_before
}

/// Finds each run of three backticks, taken left to right within longer
/// runs, as Slack's fence parsing and `str::matches("```")` both do.
fn find_fences(text: &str) -> Vec<Range<usize>> {
    text.match_indices("```")
        .map(|(start, fence)| start..start + fence.len())
        .collect()
}

/// Finds each `<...>` token: a `<`, then text without `<` or a newline, then
/// `>`. A `<` that no such `>` closes is ordinary text.
fn find_tokens(text: &str) -> Vec<Range<usize>> {
    let mut tokens = Vec::new();
    for (start, _) in text.match_indices('<') {
        let rest = &text[start + 1..];
        if let Some(close) = rest.find(['>', '<', '\n'])
            && rest.as_bytes()[close] == b'>'
        {
            tokens.push(start..start + close + 2);
        }
    }
    tokens
}

fn find_escapes(text: &str) -> Vec<Range<usize>> {
    let mut escapes = Vec::new();
    for (start, _) in text.match_indices('&') {
        let rest = &text[start..];
        for escape in ["&amp;", "&lt;", "&gt;"] {
            if rest.starts_with(escape) {
                escapes.push(start..start + escape.len());
            }
        }
    }
    escapes
}
