//! Reset times and waits as short text for users, computed from
//! milliseconds since the Unix epoch in UTC.

use super::DAY_MILLIS;

/// Formats `at_millis` as `HH:MM:SS UTC`, with the date in front
/// (`YYYY-MM-DD HH:MM:SS UTC`) when it is more than a day after
/// `now_millis`.
pub(super) fn format_reset_time(at_millis: i64, now_millis: i64) -> String {
    let days = at_millis.div_euclid(DAY_MILLIS);
    let seconds_of_day = at_millis.rem_euclid(DAY_MILLIS) / 1000;
    let time = format!(
        "{:02}:{:02}:{:02} UTC",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    );

    if at_millis.saturating_sub(now_millis) <= DAY_MILLIS {
        return time;
    }
    let (year, month, day) = civil_date(days);
    format!("{year:04}-{month:02}-{day:02} {time}")
}

/// Formats a wait such as `42 s`, `3 min 5 s`, `9 h 57 min` or `2 d 4 h`.
///
/// Seconds round up, so a wait of 400 ms reads `1 s`. A longer wait shows
/// its two largest units and drops the rest, so 9 h 57 min 42 s reads
/// `9 h 57 min`. A negative wait reads `0 s`.
pub(super) fn format_wait(millis: i64) -> String {
    let seconds = (millis.max(0) as u64).div_ceil(1000);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);

    if seconds < 60 {
        format!("{seconds} s")
    } else if seconds < 3600 {
        with_remainder(minutes, "min", seconds % 60, "s")
    } else if seconds < 86_400 {
        with_remainder(hours, "h", minutes % 60, "min")
    } else {
        with_remainder(days, "d", hours % 24, "h")
    }
}

/// Formats `3 min 5 s`, leaving out a zero remainder (`3 min`).
fn with_remainder(value: u64, unit: &str, remainder: u64, remainder_unit: &str) -> String {
    if remainder == 0 {
        format!("{value} {unit}")
    } else {
        format!("{value} {unit} {remainder} {remainder_unit}")
    }
}

/// Converts days since 1970-01-01 to a (year, month, day) date in the
/// proleptic Gregorian calendar.
fn civil_date(days_since_epoch: i64) -> (i64, u32, u32) {
    // Every 400 Gregorian years have the same number of days, so whole
    // cycles are skipped and at most 400 years are walked one by one.
    const DAYS_PER_400_YEARS: i64 = 146_097;
    let mut year = 1970 + 400 * days_since_epoch.div_euclid(DAYS_PER_400_YEARS);
    let mut day_of_year = days_since_epoch.rem_euclid(DAYS_PER_400_YEARS);

    while day_of_year >= days_in_year(year) {
        day_of_year -= days_in_year(year);
        year += 1;
    }

    let mut month = 1;
    while day_of_year >= days_in_month(year, month) {
        day_of_year -= days_in_month(year, month);
        month += 1;
    }
    // The loops leave a day of the month below 31.
    (year, month, day_of_year as u32 + 1)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_year(year: i64) -> i64 {
    if is_leap_year(year) { 366 } else { 365 }
}

fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}
