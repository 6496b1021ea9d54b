//! Time arguments of the audit commands (`--since`, `--until`).
//!
//! Three forms are accepted: an RFC 3339 timestamp
//! (`2026-12-01T00:00:00Z`), a date (`2026-12-01`, meaning 00:00 UTC that
//! day) and an age before now (`30m`, `24h`, `7d`; also `s` for seconds and
//! `w` for weeks).

use anyhow::{Result, anyhow};
use chrono::{DateTime, NaiveDate};

const FORMS: &str =
    "use RFC 3339 (2026-12-01T00:00:00Z), a date (2026-12-01, 00:00 UTC) or an age (30m, 24h, 7d)";

/// Parses a time argument into milliseconds since the Unix epoch; an age
/// counts back from `now_millis`.
pub fn parse_time(input: &str, now_millis: i64) -> Result<i64> {
    let text = input.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    if let Some(age) = parse_age_millis(text) {
        return Ok(now_millis.saturating_sub(age));
    }
    Err(anyhow!("{input:?} is not a time: {FORMS}"))
}

/// Parses `<digits><unit>` into milliseconds; `None` when `text` has
/// another form or the number overflows.
fn parse_age_millis(text: &str) -> Option<i64> {
    let unit_start = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(unit_start);
    if digits.is_empty() {
        return None;
    }
    let unit_millis: i64 = match unit {
        "s" => 1_000,
        "m" => 60 * 1_000,
        "h" => 60 * 60 * 1_000,
        "d" => 24 * 60 * 60 * 1_000,
        "w" => 7 * 24 * 60 * 60 * 1_000,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(unit_millis)
}

/// Formats milliseconds since the Unix epoch as `2026-12-01 09:30:00` in
/// UTC; times chrono cannot represent are printed as the raw number.
pub fn format_utc(millis: i64) -> String {
    match DateTime::from_timestamp_millis(millis) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => millis.to_string(),
    }
}
