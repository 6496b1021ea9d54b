//! Invocation queries for administrators: filtered listing, newest first,
//! and a streamed walk over invocations with their votes, oldest first, for
//! export.
//!
//! The walk reads rows from one query as they arrive, so exporting a large
//! table keeps at most one invocation in memory.

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use super::Store;
use super::feedback::Vote;
use super::invocations::{COLUMNS, Invocation, Status, decode};

/// Conditions that select invocations to list or export. A field left
/// `None` matches every invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationFilter {
    /// Agent id, exact.
    pub agent: Option<String>,
    /// Slack user id of the asker, exact.
    pub user: Option<String>,
    pub status: Option<Status>,
    /// Keeps invocations that started at or after this time (milliseconds
    /// since the Unix epoch).
    pub since: Option<i64>,
    /// Keeps invocations that started before this time (milliseconds since
    /// the Unix epoch).
    pub until: Option<i64>,
    /// At most this many invocations: the newest for [`list`], the oldest
    /// for [`for_each_record`].
    pub limit: Option<usize>,
}

/// An invocation with the votes cast on it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub invocation: Invocation,
    /// `(user_id, vote)`, ordered by user id.
    pub votes: Vec<(String, Vote)>,
}

impl AuditRecord {
    /// Counts the votes equal to `vote`.
    pub fn count_votes(&self, vote: Vote) -> usize {
        self.votes.iter().filter(|(_, cast)| *cast == vote).count()
    }
}

/// Lists the invocations that match `filter`, newest first.
pub async fn list(store: &Store, filter: &InvocationFilter) -> Result<Vec<Invocation>> {
    let mut parameters = Vec::new();
    let conditions = where_clause(filter, &mut parameters);
    let limit = limit_clause(filter, &mut parameters);
    let sql = format!(
        "SELECT {COLUMNS} FROM invocations{conditions} ORDER BY started_at DESC, id DESC{limit}"
    );

    let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), parameters)
        .fetch_all(store.pool())
        .await
        .context("could not list invocations")?;
    rows.iter().map(decode).collect()
}

/// Calls `visit` with each invocation that matches `filter` and its votes,
/// oldest first, and returns how many it visited.
///
/// Rows are streamed from the database; an error from `visit` stops the
/// walk and is returned.
pub async fn for_each_record<F>(
    store: &Store,
    filter: &InvocationFilter,
    mut visit: F,
) -> Result<u64>
where
    F: FnMut(AuditRecord) -> Result<()>,
{
    let mut parameters = Vec::new();
    let conditions = where_clause(filter, &mut parameters);
    let limit = limit_clause(filter, &mut parameters);
    let outer_columns = qualified_columns("i");
    // One row per vote (or one with NULL votes when there is none), so an
    // invocation's rows arrive together and in order.
    let sql = format!(
        "SELECT {outer_columns}, f.user_id AS feedback_user, f.vote AS feedback_vote \
         FROM (SELECT {COLUMNS} FROM invocations{conditions} \
         ORDER BY started_at, id{limit}) i \
         LEFT JOIN feedback f ON f.invocation_id = i.id \
         ORDER BY i.started_at, i.id, f.user_id"
    );

    let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), parameters);
    let mut rows = query.fetch(store.pool());
    let mut pending: Option<AuditRecord> = None;
    let mut visited = 0;
    while let Some(row) = rows
        .try_next()
        .await
        .context("could not read invocations")?
    {
        let id: String = row.try_get("id")?;
        let is_next_invocation = pending
            .as_ref()
            .is_none_or(|record| record.invocation.id != id);
        if is_next_invocation {
            if let Some(record) = pending.take() {
                visit(record)?;
                visited += 1;
            }
            pending = Some(AuditRecord {
                invocation: decode(&row)?,
                votes: Vec::new(),
            });
        }

        let user: Option<String> = row.try_get("feedback_user")?;
        let vote: Option<i64> = row.try_get("feedback_vote")?;
        if let (Some(record), Some(user), Some(vote)) = (pending.as_mut(), user, vote) {
            record.votes.push((user, Vote::from_i64(vote)?));
        }
    }

    if let Some(record) = pending {
        visit(record)?;
        visited += 1;
    }
    Ok(visited)
}

/// A value bound to a numbered parameter.
enum Parameter {
    Integer(i64),
    Text(String),
}

/// Builds ` WHERE ...` for `filter` (empty when it matches everything) and
/// appends the values its parameters take.
fn where_clause(filter: &InvocationFilter, parameters: &mut Vec<Parameter>) -> String {
    let mut conditions = Vec::new();
    let mut add = |condition: &str, value: Parameter| {
        parameters.push(value);
        conditions.push(format!("{condition} ${}", parameters.len()));
    };

    if let Some(agent) = &filter.agent {
        add("agent =", Parameter::Text(agent.clone()));
    }
    if let Some(user) = &filter.user {
        add("user_id =", Parameter::Text(user.clone()));
    }
    if let Some(status) = filter.status {
        add("status =", Parameter::Text(status.as_str().to_string()));
    }
    if let Some(since) = filter.since {
        add("started_at >=", Parameter::Integer(since));
    }
    if let Some(until) = filter.until {
        add("started_at <", Parameter::Integer(until));
    }

    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Builds ` LIMIT $n` when the filter has a limit.
fn limit_clause(filter: &InvocationFilter, parameters: &mut Vec<Parameter>) -> String {
    match filter.limit {
        Some(limit) => {
            parameters.push(Parameter::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            format!(" LIMIT ${}", parameters.len())
        }
        None => String::new(),
    }
}

fn bind_all(
    mut query: Query<'_, sqlx::Any, AnyArguments>,
    parameters: Vec<Parameter>,
) -> Query<'_, sqlx::Any, AnyArguments> {
    for parameter in parameters {
        query = match parameter {
            Parameter::Integer(value) => query.bind(value),
            Parameter::Text(value) => query.bind(value),
        };
    }
    query
}

/// Returns [`COLUMNS`] with each name prefixed by `alias.`.
fn qualified_columns(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|column| format!("{alias}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
