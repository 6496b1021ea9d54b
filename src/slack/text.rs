//! Incoming Slack message text to plain text for the model.
//!
//! Slack sends message text with its own markup: mentions, channels, links
//! and specials are `<...>` tokens (`<@U1|alice>`, `<#C1|deploys>`,
//! `<https://x|label>`, `<!here>`), and the characters `&`, `<` and `>` typed
//! by the user arrive as `&amp;`, `&lt;` and `&gt;`. [`decode_incoming`]
//! turns that into the readable text a person sees in the client, and drops
//! the mentions of the bot itself, which only address the question.

/// Decodes Slack message text into plain text for the model.
///
/// Tokens are parsed first and the remaining text is unescaped afterwards,
/// so an escaped `&lt;@U1&gt;` typed by a user stays literal text. Every
/// mention of `bot_user_id` is removed, together with the whitespace around
/// it and a `,` or `:` that follows it at the start of a line. A `<` that
/// no `>` closes on the same line, before another `<`, is literal text.
pub fn decode_incoming(text: &str, bot_user_id: Option<&str>) -> String {
    let mut output = PlainText::default();
    let mut rest = text;

    while let Some(open) = rest.find('<') {
        output.push(&unescape(&rest[..open]));
        let after_open = &rest[open + 1..];

        match token_end(after_open) {
            Some(close) => {
                let token = &after_open[..close];
                if is_bot_mention(token, bot_user_id) {
                    output.remove_mention();
                } else {
                    output.push(&decode_token(token));
                }
                rest = &after_open[close + 1..];
            }
            None => {
                output.push("<");
                rest = after_open;
            }
        }
    }
    output.push(&unescape(rest));

    output.text.trim().to_string()
}

/// Finds the `>` that closes a token started just before `text`. A token
/// never spans lines and never contains another `<`, so a stray `<` in the
/// text does not swallow the tokens that follow it.
fn token_end(text: &str) -> Option<usize> {
    let close = text.find(['>', '<', '\n'])?;
    (text.as_bytes()[close] == b'>').then_some(close)
}

fn is_bot_mention(token: &str, bot_user_id: Option<&str>) -> bool {
    let Some(bot) = bot_user_id else {
        return false;
    };
    let Some(user) = token.strip_prefix('@') else {
        return false;
    };

    let (id, _label) = split_label(user);
    id == bot
}

/// Decodes the inside of one `<...>` token into the text the client shows.
fn decode_token(token: &str) -> String {
    let (target, label) = split_label(token);
    let label = label.map(unescape).filter(|label| !label.is_empty());

    if let Some(user) = target.strip_prefix('@') {
        return format!("@{}", label.unwrap_or_else(|| unescape(user)));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or_else(|| unescape(channel)));
    }
    if let Some(special) = target.strip_prefix('!') {
        return decode_special(special, label);
    }
    decode_link(&unescape(target), label)
}

/// Decodes `<!...>` specials: broadcasts, user groups, dates and others.
fn decode_special(special: &str, label: Option<String>) -> String {
    if matches!(special, "here" | "channel" | "everyone") {
        return format!("@{special}");
    }
    if let Some(group) = special.strip_prefix("subteam^") {
        return label.unwrap_or_else(|| format!("@{}", unescape(group)));
    }
    label.unwrap_or_else(|| unescape(special))
}

/// Decodes a link token. A `mailto:` link shows the bare address, and a
/// label is kept only when it adds something to the address or URL.
fn decode_link(target: &str, label: Option<String>) -> String {
    let address = target.strip_prefix("mailto:").unwrap_or(target);

    match label {
        Some(label) if label != address && label != target => format!("{label} ({address})"),
        _ => address.to_string(),
    }
}

/// Splits a token at its first `|` into the target and the optional label.
fn split_label(token: &str) -> (&str, Option<&str>) {
    match token.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (token, None),
    }
}

/// Replaces `&amp;`, `&lt;` and `&gt;` in one left-to-right pass, so that
/// `&amp;lt;` becomes `&lt;` and not `<`. Other entities are left as typed
/// because Slack escapes only these three.
fn unescape(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;

    while let Some(amp) = rest.find('&') {
        output.push_str(&rest[..amp]);
        let entity = &rest[amp..];

        let (replacement, length) = if entity.starts_with("&amp;") {
            ('&', 5)
        } else if entity.starts_with("&lt;") {
            ('<', 4)
        } else if entity.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        output.push(replacement);
        rest = &entity[length..];
    }
    output.push_str(rest);

    output
}

/// Decoded text under construction, with the tidying that a removed bot
/// mention needs: the gap it leaves becomes at most one space.
#[derive(Default)]
struct PlainText {
    text: String,
    /// True after a bot mention was removed and before any visible text
    /// followed it.
    is_after_mention: bool,
}

impl PlainText {
    fn push(&mut self, piece: &str) {
        if !self.is_after_mention {
            self.text.push_str(piece);
            return;
        }

        let mut piece = piece.trim_start_matches(is_inline_space);
        if self.is_at_line_start() {
            piece = strip_address_punctuation(piece);
        }
        if piece.is_empty() {
            return;
        }

        let needs_space = !self.is_at_line_start()
            && !piece.starts_with(['\n', ',', '.', ':', ';', '!', '?', ')']);
        if needs_space {
            self.text.push(' ');
        }
        self.text.push_str(piece);
        self.is_after_mention = false;
    }

    fn remove_mention(&mut self) {
        let trimmed_length = self.text.trim_end_matches(is_inline_space).len();
        self.text.truncate(trimmed_length);
        self.is_after_mention = true;
    }

    fn is_at_line_start(&self) -> bool {
        self.text.is_empty() || self.text.ends_with('\n')
    }
}

/// Strips the `,` or `:` that addresses the bot in `@bot, question`, but
/// not one that starts other text such as `:)`.
fn strip_address_punctuation(piece: &str) -> &str {
    let Some(rest) = piece.strip_prefix([',', ':']) else {
        return piece;
    };
    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
        rest.trim_start_matches(is_inline_space)
    } else {
        piece
    }
}

fn is_inline_space(c: char) -> bool {
    c.is_whitespace() && c != '\n'
}
