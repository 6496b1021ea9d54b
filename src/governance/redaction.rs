//! Redaction of secrets and e-mail addresses.
//!
//! A [`Redactor`] removes secrets from text that is about to be sent to a
//! model or stored, such as a user's question. Each *rule* recognises one
//! kind of secret by its format: a Slack `xoxb-` token, an AWS `AKIA` key
//! ID, a PEM private key block. The matched text is replaced by a *marker*
//! that names the kind, such as `[redacted: Slack token]`. The text around a
//! secret is kept as written, including labels such as
//! `Authorization: Bearer` or `aws_secret_access_key =` in front of it.
//!
//! Rules are listed from the most to the least specific. When matches of
//! several rules overlap, their union becomes one marker named after the
//! most specific rule, so an Anthropic key (`sk-ant-…`) is never named as an
//! OpenAI key and a GitHub token sent as a bearer token is named as a GitHub
//! token.
//!
//! Only known formats are recognised: a password or a token of an unknown
//! format passes through unchanged.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

/// Redaction settings: the kinds of text a [`Redactor`] replaces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionSettings {
    /// Replace tokens, keys and private keys of known formats. Default true.
    pub secrets: bool,
    /// Replace e-mail addresses. Default false, so that a question that
    /// names a service owner by address keeps the address.
    pub emails: bool,
}

impl Default for RedactionSettings {
    fn default() -> Self {
        Self {
            secrets: true,
            emails: false,
        }
    }
}

/// Replaces secrets (and e-mail addresses when enabled) in text.
///
/// The patterns are compiled once in [`Redactor::new`], and clones share
/// them.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Arc<[Rule]>,
}

/// One kind of secret and how to find it.
#[derive(Debug)]
struct Rule {
    /// The name in the marker, such as `Slack token`.
    kind: &'static str,
    matcher: Matcher,
    /// Rejects a candidate that touches an ASCII letter or digit on either
    /// side, so that a prefix inside a longer word (`task-…` for `sk-`) or a
    /// fixed-length key inside a longer run does not match. The `regex`
    /// crate has no look-around, so this is checked after matching.
    isolated: bool,
    /// Further checks on the secret's text.
    accepts: fn(&str) -> bool,
}

/// The search that a rule runs to find candidates.
#[derive(Debug)]
enum Matcher {
    /// One pattern. Its `secret` group, when it has one, is the part to
    /// replace, and the rest of the match is a label to keep.
    Pattern(Regex),
    /// A block from a `begin` line to the next `end` line. When no `end`
    /// follows, the block is the `begin` line and what `unterminated`
    /// matches right after it.
    Block {
        begin: Regex,
        end: Regex,
        unterminated: Regex,
    },
}

/// A part of the text to replace, with the index of the rule that found it.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    rule: usize,
}

impl Redactor {
    /// Compiles the rules that `settings` enables.
    pub fn new(settings: &RedactionSettings) -> Self {
        let mut rules = Vec::new();
        if settings.secrets {
            rules.extend(secret_rules());
        }
        if settings.emails {
            rules.push(email_rule());
        }
        Self {
            rules: rules.into(),
        }
    }

    /// Returns the text with secrets (and e-mail addresses when enabled)
    /// replaced by a marker naming the kind, such as
    /// `[redacted: Slack token]`. Text without any match is returned
    /// borrowed.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = merge(self.find_spans(text));
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }

        let mut redacted = String::with_capacity(text.len());
        let mut copied_to = 0;
        for span in spans {
            redacted.push_str(&text[copied_to..span.start]);
            redacted.push_str("[redacted: ");
            redacted.push_str(self.rules[span.rule].kind);
            redacted.push(']');
            copied_to = span.end;
        }
        redacted.push_str(&text[copied_to..]);
        Cow::Owned(redacted)
    }

    /// Returns every accepted match of every rule, unordered and possibly
    /// overlapping.
    fn find_spans(&self, text: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let candidates = match &rule.matcher {
                Matcher::Pattern(pattern) => find_secrets(pattern, text),
                Matcher::Block {
                    begin,
                    end,
                    unterminated,
                } => find_blocks(begin, end, unterminated, text),
            };
            for candidate in candidates {
                if rule.isolated && !is_isolated(text, &candidate) {
                    continue;
                }
                if !(rule.accepts)(&text[candidate.clone()]) {
                    continue;
                }
                spans.push(Span {
                    start: candidate.start,
                    end: candidate.end,
                    rule: index,
                });
            }
        }
        spans
    }
}

/// Returns the `secret` group of every match, or the whole match when the
/// pattern has no such group.
fn find_secrets(pattern: &Regex, text: &str) -> Vec<Range<usize>> {
    pattern
        .captures_iter(text)
        .filter_map(|captures| captures.name("secret").or_else(|| captures.get(0)))
        .map(|secret| secret.range())
        .collect()
}

/// Returns every block in text order.
///
/// Once a search for `end` fails, no later one runs, because none could
/// succeed. So many `begin` lines without an `end` cost linear time, where
/// a single lazy pattern (`BEGIN[\s\S]*?END`) would scan the rest of the
/// text again for each of them.
fn find_blocks(begin: &Regex, end: &Regex, unterminated: &Regex, text: &str) -> Vec<Range<usize>> {
    let mut blocks = Vec::new();
    let mut search_from = 0;
    let mut end_missing = false;
    while let Some(opening) = begin.find_at(text, search_from) {
        let closing = if end_missing {
            None
        } else {
            end.find_at(text, opening.end())
        };
        let block_end = match closing {
            Some(closing) => closing.end(),
            None => {
                end_missing = true;
                let tail = unterminated.find(&text[opening.end()..]);
                opening.end() + tail.map_or(0, |tail| tail.end())
            }
        };
        blocks.push(opening.start()..block_end);
        search_from = block_end;
    }
    blocks
}

/// Merges overlapping spans into one each, named after the most specific
/// rule among them (the lowest index), and returns them in text order.
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|span| (span.start, span.end));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => {
                last.end = last.end.max(span.end);
                last.rule = last.rule.min(span.rule);
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// Checks that the characters just before and just after `span` are not
/// ASCII letters or digits. Non-ASCII letters count as a boundary,
/// so a key written between Chinese or Japanese words without spaces is
/// still found.
fn is_isolated(text: &str, span: &Range<usize>) -> bool {
    let before = text[..span.start].chars().next_back();
    let after = text[span.end..].chars().next();
    !before.is_some_and(|c| c.is_ascii_alphanumeric())
        && !after.is_some_and(|c| c.is_ascii_alphanumeric())
}

fn any_text(_secret: &str) -> bool {
    true
}

fn has_digit(secret: &str) -> bool {
    secret.bytes().any(|byte| byte.is_ascii_digit())
}

/// Tells a random token from a word: it has both a digit and a letter.
fn has_digit_and_letter(secret: &str) -> bool {
    has_digit(secret) && secret.bytes().any(|byte| byte.is_ascii_alphabetic())
}

/// Tells a credential after `Authorization: Bearer` from a placeholder
/// such as `YOUR_API_KEY`: it has a digit or 20 characters or more.
fn is_header_token(secret: &str) -> bool {
    has_digit(secret) || secret.len() >= 20
}

/// Compiles one of the fixed patterns below. A failure is a mistake in
/// this file, caught by every test that builds a [`Redactor`].
fn compile(kind: &str, pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|error| panic!("a {kind} pattern does not compile: {error}"))
}

fn rule(kind: &'static str, pattern: &str, isolated: bool, accepts: fn(&str) -> bool) -> Rule {
    Rule {
        kind,
        matcher: Matcher::Pattern(compile(kind, pattern)),
        isolated,
        accepts,
    }
}

/// Builds the PEM private key rule (RFC 7468 labels such as `RSA PRIVATE
/// KEY`, `EC PRIVATE KEY`, `OPENSSH PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`).
///
/// A block can be cut off before its END line, as in a truncated paste.
/// Such a block takes the base64 runs of 16 characters or more on the
/// BEGIN line. It also takes every following line that is only base64 or a
/// `Proc-Type:` or `DEK-Info:` header, with blank lines between them.
// NOTE: in a block without an END line, a one-word line of plain text right
// after the body (such as "Thanks") is taken as part of the key.
fn private_key_rule() -> Rule {
    let kind = "private key";
    let unterminated = concat!(
        r"\A(?:[ \t]+[A-Za-z0-9+/=]{16,})*",
        r"(?m:(?:(?:\r?\n[ \t]*)+",
        r"(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info):[^\r\n]*)[ \t\r]*$)*)",
    );
    Rule {
        kind,
        matcher: Matcher::Block {
            begin: compile(kind, r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"),
            end: compile(kind, r"-----END[A-Z0-9 ]*PRIVATE KEY-----"),
            unterminated: compile(kind, unterminated),
        },
        isolated: false,
        accepts: any_text,
    }
}

/// Builds the secret rules, most specific first.
///
/// The formats they expect:
/// - Slack (token types in Slack's developer docs, and the
///   `tooling.tokens.rotate` reference): bot `xoxb-`, user `xoxp-`,
///   workspace `xoxa-`, refresh `xoxr-` and `xoxe-`, rotating
///   `xoxe.xoxp-`/`xoxe.xoxb-`, app-level `xapp-`, and the browser client's
///   `xoxc-`/`xoxd-` and older `xoxs-`. Real tokens carry a version or
///   numeric IDs, so a token without a digit (`xoxb-your-token`) is taken
///   for a placeholder. Incoming webhooks are
///   `https://hooks.slack.com/services/T…/B…/<secret>`.
/// - Anthropic: `sk-ant-`, a type and version such as `api03-`, then about
///   95 characters of `[A-Za-z0-9_-]`.
/// - OpenAI: legacy keys are `sk-` and 48 letters and digits. Project,
///   service account and admin keys are `sk-proj-`, `sk-svcacct-` and
///   `sk-admin-` and about 150 characters of `[A-Za-z0-9_-]`. Keys of
///   other providers that copy the `sk-` scheme are named as OpenAI keys.
/// - GitHub (token format change of March 2021 on GitHub's changelog):
///   `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 letters and digits, with
///   room to grow to 255 characters, and fine-grained `github_pat_` with
///   82 characters of `[A-Za-z0-9_]`.
/// - AWS: access key IDs are `AKIA` (long-term) or `ASIA` (temporary) and
///   16 upper-case letters and digits. Secret access keys are 40 characters
///   of `[A-Za-z0-9/+]` and look like any base64, so they are only found
///   after a label such as `aws_secret_access_key =` or `"SecretAccessKey":`.
/// - Bearer tokens (RFC 6750): `[A-Za-z0-9_.~+/-]+` then optional `=`.
fn secret_rules() -> Vec<Rule> {
    vec![
        private_key_rule(),
        rule(
            "Slack webhook URL",
            r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}",
            true,
            any_text,
        ),
        rule(
            "Anthropic API key",
            r"sk-ant-[A-Za-z0-9_-]{32,}",
            true,
            any_text,
        ),
        rule(
            "OpenAI API key",
            r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{32,})",
            true,
            has_digit,
        ),
        rule(
            "GitHub token",
            r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}",
            true,
            any_text,
        ),
        rule(
            "Slack token",
            r"(?:xox[abcdeprs]|xoxe\.xox[bp]|xapp)-[A-Za-z0-9%-]{10,}",
            true,
            has_digit,
        ),
        rule(
            "AWS access key ID",
            r"(?:AKIA|ASIA)[A-Z0-9]{16}",
            true,
            any_text,
        ),
        rule(
            "AWS secret access key",
            r#"(?i)(?:(?:aws[_.-]?)?secret[_.-]?access[_.-]?key|aws[_.-]?secret[_.-]?key)["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+]{40})"#,
            true,
            any_text,
        ),
        rule(
            "AWS session token",
            r#"(?i)(?:aws[_.-]?)?session[_.-]?token["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+=]{100,})"#,
            true,
            any_text,
        ),
        // After `Authorization:` the value is a credential unless it is a
        // short placeholder such as `YOUR_API_KEY`. After a bare `bearer`
        // word the value must look like a token, so that "bearer of bad
        // news" stays.
        rule(
            "bearer token",
            r#"(?i)authorization["']?\s*[:=]\s*["']?bearer\s+(?P<secret>[A-Za-z0-9_.~+/-]{8,}=*)"#,
            true,
            is_header_token,
        ),
        rule(
            "bearer token",
            r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9_.~+/-]{20,}=*)",
            true,
            has_digit_and_letter,
        ),
    ]
}

// NOTE: only ASCII addresses are found. An address with a non-ASCII local
// part or an internationalised domain written in Unicode passes through.
fn email_rule() -> Rule {
    rule(
        "e-mail address",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        true,
        any_text,
    )
}
