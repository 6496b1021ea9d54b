//! Export of invocations as CSV or JSON Lines, streamed oldest first.
//!
//! Both formats carry every stored field of an invocation and the counts
//! of up and down votes on it; JSON Lines also lists each vote. Times are
//! milliseconds since the Unix epoch, as stored, so the output parses back
//! to exactly the stored values.
//!
//! CSV follows RFC 4180: a header row, CRLF line ends, and fields that
//! contain a comma, a quote, a line break or edge whitespace in double
//! quotes with inner quotes doubled. NULL is an empty field and an empty
//! string is `""`, the convention of PostgreSQL's `COPY ... CSV`; readers
//! that ignore quoting see both as empty. Tool calls are one JSON array per
//! cell.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::store::Store;
use crate::store::audit::{AuditRecord, InvocationFilter, for_each_record};
use crate::store::feedback::Vote;
use crate::store::invocations::Invocation;

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "source",
    "agent",
    "team_id",
    "channel_id",
    "thread_ts",
    "message_ts",
    "user_id",
    "prompt",
    "answer",
    "status",
    "error",
    "refusal",
    "backend",
    "model",
    "tokens_in",
    "tokens_out",
    "tool_calls",
    "started_at",
    "finished_at",
    "feedback_up",
    "feedback_down",
];

/// Writes the invocations that match `filter` to `out`, oldest first, and
/// returns how many were written.
///
/// Rows stream from the database into `out` one invocation at a time;
/// `out` is not flushed.
pub async fn export<W: Write>(
    store: &Store,
    filter: &InvocationFilter,
    format: ExportFormat,
    out: &mut W,
) -> Result<u64> {
    if format == ExportFormat::Csv {
        let header: Vec<Cell> = CSV_COLUMNS.iter().map(|name| Cell::Text(name)).collect();
        write_csv_row(out, &header).context("could not write the export")?;
    }

    for_each_record(store, filter, |record| {
        match format {
            ExportFormat::Csv => write_csv_record(out, &record),
            ExportFormat::Jsonl => write_json_line(out, &record),
        }
        .context("could not write the export")
    })
    .await
}

/// One CSV field before encoding.
enum Cell<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Self::Null, Self::Text)
    }
}

fn write_csv_record(out: &mut impl Write, record: &AuditRecord) -> Result<()> {
    let invocation = &record.invocation;
    let tool_calls = serde_json::to_string(&invocation.tool_calls)?;
    let up = i64::try_from(record.count_votes(Vote::Up))?;
    let down = i64::try_from(record.count_votes(Vote::Down))?;

    let cells = [
        Cell::Text(&invocation.id),
        Cell::Text(&invocation.source),
        Cell::Text(&invocation.agent),
        invocation.team_id.as_deref().into(),
        invocation.channel_id.as_deref().into(),
        invocation.thread_ts.as_deref().into(),
        invocation.message_ts.as_deref().into(),
        invocation.user_id.as_deref().into(),
        Cell::Text(&invocation.prompt),
        invocation.answer.as_deref().into(),
        Cell::Text(invocation.status.as_str()),
        invocation.error.as_deref().into(),
        invocation.refusal.as_deref().into(),
        Cell::Text(&invocation.backend),
        Cell::Text(&invocation.model),
        Cell::Integer(invocation.tokens_in),
        Cell::Integer(invocation.tokens_out),
        Cell::Text(&tool_calls),
        Cell::Integer(invocation.started_at),
        invocation.finished_at.map_or(Cell::Null, Cell::Integer),
        Cell::Integer(up),
        Cell::Integer(down),
    ];
    debug_assert_eq!(cells.len(), CSV_COLUMNS.len());
    write_csv_row(out, &cells)?;
    Ok(())
}

fn write_csv_row(out: &mut impl Write, cells: &[Cell]) -> std::io::Result<()> {
    for (index, cell) in cells.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        match cell {
            Cell::Null => {}
            Cell::Integer(value) => write!(out, "{value}")?,
            Cell::Text(text) if needs_quotes(text) => {
                write!(out, "\"{}\"", text.replace('"', "\"\""))?;
            }
            Cell::Text(text) => out.write_all(text.as_bytes())?,
        }
    }
    out.write_all(b"\r\n")
}

/// Quotes a field RFC 4180 requires quoted, an empty string (so it differs
/// from NULL), and a field with edge whitespace (which some readers trim).
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.contains([',', '"', '\r', '\n'])
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
}

/// One line of the JSON Lines export.
#[derive(Serialize)]
struct JsonRecord<'a> {
    #[serde(flatten)]
    invocation: &'a Invocation,
    feedback_up: usize,
    feedback_down: usize,
    feedback: Vec<JsonVote<'a>>,
}

#[derive(Serialize)]
struct JsonVote<'a> {
    user: &'a str,
    vote: Vote,
}

fn write_json_line(out: &mut impl Write, record: &AuditRecord) -> Result<()> {
    let line = JsonRecord {
        invocation: &record.invocation,
        feedback_up: record.count_votes(Vote::Up),
        feedback_down: record.count_votes(Vote::Down),
        feedback: record
            .votes
            .iter()
            .map(|(user, vote)| JsonVote { user, vote: *vote })
            .collect(),
    };
    // serde_json escapes line breaks inside strings, so a record is one line.
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")?;
    Ok(())
}
