//! The readable table `agentdesk invocations list` prints.

use std::io::Write;

use unicode_segmentation::UnicodeSegmentation;

use super::time::format_utc;
use crate::store::invocations::Invocation;

/// Graphemes of the prompt shown per row; the rest becomes `…`.
const PROMPT_PREVIEW: usize = 60;

const HEADER: [&str; 9] = [
    "STARTED (UTC)",
    "ID",
    "AGENT",
    "USER",
    "STATUS",
    "DURATION",
    "TOKENS",
    "TOOLS",
    "PROMPT",
];

/// Writes one row per invocation under a header, columns padded to align.
pub fn write_table(out: &mut impl Write, invocations: &[Invocation]) -> std::io::Result<()> {
    let rows: Vec<[String; 9]> = invocations.iter().map(row).collect();

    let mut widths = HEADER.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    write_line(out, &HEADER.map(str::to_string), &widths)?;
    for row in &rows {
        write_line(out, row, &widths)?;
    }
    Ok(())
}

fn row(invocation: &Invocation) -> [String; 9] {
    let duration = match invocation.finished_at {
        Some(finished) => format!("{:.1}s", (finished - invocation.started_at) as f64 / 1000.0),
        None => "-".to_string(),
    };
    [
        format_utc(invocation.started_at),
        invocation.id.clone(),
        invocation.agent.clone(),
        invocation
            .user_id
            .clone()
            .unwrap_or_else(|| "-".to_string()),
        invocation.status.to_string(),
        duration,
        format!("{}/{}", invocation.tokens_in, invocation.tokens_out),
        invocation.tool_calls.len().to_string(),
        preview(&invocation.prompt),
    ]
}

/// Returns the prompt on one line, cut to [`PROMPT_PREVIEW`] graphemes.
fn preview(prompt: &str) -> String {
    let one_line = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut graphemes = one_line.graphemes(true);
    let mut shown: String = graphemes.by_ref().take(PROMPT_PREVIEW).collect();
    if graphemes.next().is_some() {
        shown.push('…');
    }
    shown
}

/// Writes cells padded to `widths`, the last one unpadded.
fn write_line(
    out: &mut impl Write,
    cells: &[String; 9],
    widths: &[usize; 9],
) -> std::io::Result<()> {
    let last = cells.len() - 1;
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if index == last {
            writeln!(out, "{cell}")?;
        } else {
            let padding = width - cell.chars().count();
            write!(out, "{cell}{:padding$}  ", "")?;
        }
    }
    Ok(())
}
