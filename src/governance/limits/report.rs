//! A user's usage against every limit, as `/agentdesk usage` shows it.

use super::{LimitKind, utc};

/// A user's usage against every limit, one line per [`LimitKind`] in the
/// order of [`LimitKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// The agent whose per-minute requests the report shows.
    pub agent: String,
    pub lines: Vec<UsageLine>,
}

/// Usage against one limit in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    pub kind: LimitKind,
    /// Admitted requests in the current minute, or tokens recorded today.
    pub used: u64,
    /// The configured limit, or `None` when unlimited.
    pub limit: Option<u64>,
    /// When the current window ends, in milliseconds since the Unix epoch.
    pub resets_at: i64,
}

impl UsageReport {
    /// Returns the line for `kind`, if the report has one.
    pub fn line(&self, kind: LimitKind) -> Option<&UsageLine> {
        self.lines.iter().find(|line| line.kind == kind)
    }

    /// Formats the report as a Markdown bullet list, one line per limit,
    /// such as "- Your requests this minute: 3 of 10, resets at 14:03:00 UTC
    /// (in 42 s)".
    pub fn to_markdown(&self, now_millis: i64) -> String {
        self.lines
            .iter()
            .map(|line| {
                format!(
                    "- {}: {}, resets at {} (in {})\n",
                    self.label(line.kind),
                    amount(line),
                    utc::format_reset_time(line.resets_at, now_millis),
                    utc::format_wait(line.resets_at - now_millis)
                )
            })
            .collect()
    }

    fn label(&self, kind: LimitKind) -> String {
        match kind {
            LimitKind::UserRequestsPerMinute => "Your requests this minute".to_string(),
            LimitKind::AgentRequestsPerMinute => {
                format!("Requests to agent `{}` this minute", self.agent)
            }
            LimitKind::UserDailyTokens => "Your tokens today".to_string(),
            LimitKind::WorkspaceDailyTokens => "Tokens of this workspace today".to_string(),
        }
    }
}

fn amount(line: &UsageLine) -> String {
    match line.limit {
        Some(limit) => format!("{} of {limit}", line.used),
        None => format!("{} (no limit)", line.used),
    }
}
