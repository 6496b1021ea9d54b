//! The `agentdesk invocations` commands, for administrators: `list` prints
//! recorded invocations, newest first, as a table or JSON, and `export`
//! streams them, oldest first, as CSV or JSON Lines.
//!
//! - [`time`]: the forms `--since` and `--until` accept.
//! - [`export`]: the CSV and JSON Lines encodings.
//! - [`table`]: the table `list` prints.

pub mod export;
pub mod table;
pub mod time;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::clock::SharedClock;
use crate::store::Store;
use crate::store::audit::{self, InvocationFilter};
use crate::store::invocations::Status;
use export::ExportFormat;

/// Invocations `list` prints when `--limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// The `invocations` subcommands.
#[derive(Debug, Subcommand)]
pub enum InvocationsCommand {
    /// List recorded invocations, newest first.
    List(ListArgs),
    /// Write recorded invocations, oldest first, as CSV or JSON Lines.
    Export(ExportArgs),
}

/// Options of `invocations list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only invocations of this agent id.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only invocations asked by this Slack user id (U...).
    #[arg(long)]
    pub user: Option<String>,
    /// Only invocations with this status.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<Status>,
    #[command(flatten)]
    pub range: TimeRange,
    /// Maximum number of invocations to print.
    #[arg(long, default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `invocations export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    #[command(flatten)]
    pub range: TimeRange,
    /// File to write (replaced if it exists); standard output by default.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The start time range both commands accept.
#[derive(Debug, Args)]
pub struct TimeRange {
    /// Only invocations that started at or after this time: RFC 3339
    /// (2026-12-01T00:00:00Z), a date (2026-12-01, 00:00 UTC) or an age
    /// (30m, 24h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only invocations that started before this time, in the same forms
    /// as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl TimeRange {
    /// Parses both bounds into milliseconds since the Unix epoch.
    fn parse(&self, now_millis: i64) -> Result<(Option<i64>, Option<i64>)> {
        let parse = |flag: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| time::parse_time(text, now_millis))
                .transpose()
                .with_context(|| format!("invalid {flag}"))
        };
        Ok((
            parse("--since", &self.since)?,
            parse("--until", &self.until)?,
        ))
    }
}

/// Runs an `invocations` subcommand against the database at `database_url`.
///
/// Arguments are checked before connecting, so a typo creates no database.
pub async fn run(
    database_url: &str,
    clock: &SharedClock,
    command: InvocationsCommand,
) -> Result<()> {
    let now = clock.now_millis();
    match command {
        InvocationsCommand::List(args) => {
            let (since, until) = args.range.parse(now)?;
            let filter = InvocationFilter {
                agent: args.agent,
                user: args.user,
                status: args.status,
                since,
                until,
                limit: Some(args.limit),
            };
            let store = Store::connect(database_url).await?;
            let result = print_list(&store, &filter, args.json).await;
            store.close().await;
            result
        }
        InvocationsCommand::Export(args) => {
            let (since, until) = args.range.parse(now)?;
            let filter = InvocationFilter {
                since,
                until,
                ..InvocationFilter::default()
            };
            let store = Store::connect(database_url).await?;
            let result = write_export(&store, &filter, args.format, args.output.as_ref()).await;
            store.close().await;
            result
        }
    }
}

async fn print_list(store: &Store, filter: &InvocationFilter, json: bool) -> Result<()> {
    let invocations = audit::list(store, filter).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &invocations)?;
        writeln!(out)?;
    } else if invocations.is_empty() {
        writeln!(out, "No invocations match.")?;
    } else {
        table::write_table(&mut out, &invocations)?;
    }
    out.flush()?;
    Ok(())
}

async fn write_export(
    store: &Store,
    filter: &InvocationFilter,
    format: ExportFormat,
    output: Option<&PathBuf>,
) -> Result<()> {
    match output {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let written = export::export(store, filter, format, &mut out).await?;
            out.flush()
                .with_context(|| format!("could not write {}", path.display()))?;
            println!("Exported {written} invocation(s) to {}.", path.display());
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            let result = match export::export(store, filter, format, &mut out).await {
                Ok(_) => out.flush().context("could not write the export"),
                Err(error) => Err(error),
            };
            // A reader that stops early, such as `head`, closes the pipe;
            // that ends the export without being an error.
            if let Err(error) = result
                && !is_broken_pipe(&error)
            {
                return Err(error);
            }
        }
    }
    Ok(())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn parse_status(value: &str) -> Result<Status, String> {
    Status::parse(value).map_err(|error| error.to_string())
}
