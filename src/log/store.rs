//! Publish-log queries: append (inside the caller's transaction), list, verify.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{row_hash, ChainBreak, HashedFields, LogEntry, NewEvent, GENESIS_HASH};
use crate::db::schema::publish_log;
use crate::db::{self, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = publish_log)]
pub struct LogRow {
    pub seq: i64,
    pub id: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub statement_id: Option<String>,
    pub account_id: Option<String>,
    pub delivery_id: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl LogRow {
    fn hashed_fields(&self) -> HashedFields<'_> {
        HashedFields {
            seq: self.seq,
            id: &self.id,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            statement_id: self.statement_id.as_deref(),
            account_id: self.account_id.as_deref(),
            delivery_id: self.delivery_id.as_deref(),
            details: &self.details,
            prev_hash: &self.prev_hash,
        }
    }

    pub fn into_entry(self) -> LogEntry {
        LogEntry {
            details: serde_json::from_str(&self.details)
                .unwrap_or(serde_json::Value::String(self.details.clone())),
            seq: self.seq,
            id: self.id,
            at: self.at.and_utc(),
            actor: self.actor,
            action: self.action,
            statement_id: self.statement_id,
            account_id: self.account_id,
            delivery_id: self.delivery_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Append one event. Call it inside the transaction that makes the change it
/// records: both are committed together or not at all. Appends are
/// serialised by the write gate, so the chain stays linear across instances.
pub fn append(conn: &mut DbConnection, event: NewEvent) -> QueryResult<LogRow> {
    let mut rows = append_many(conn, vec![event])?;
    Ok(rows.remove(0))
}

/// Rows per multi-row insert (kept under both back ends' bind-parameter limits).
const INSERT_CHUNK: usize = 500;

/// Append several events in order, chained one to the next: one read of the
/// chain's head and one insert per chunk, however many events (the
/// dispatcher records a whole batch of claims or outcomes this way).
pub fn append_many(conn: &mut DbConnection, events: Vec<NewEvent>) -> QueryResult<Vec<LogRow>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    db::take_write_gate(conn)?;
    let head: Option<(i64, String)> = publish_log::table
        .select((publish_log::seq, publish_log::hash))
        .order(publish_log::seq.desc())
        .first(conn)
        .optional()?;
    let (mut seq, mut prev_hash) = match head {
        Some((seq, hash)) => (seq, hash),
        None => (0, GENESIS_HASH.to_string()),
    };
    let at = db::now();
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let mut row = LogRow {
            seq,
            id: db::new_id(),
            at,
            actor: event.actor,
            action: event.action.to_string(),
            statement_id: event.statement_id,
            account_id: event.account_id,
            delivery_id: event.delivery_id,
            details: serde_json::to_string(&event.details).unwrap_or_else(|_| "{}".into()),
            prev_hash: std::mem::take(&mut prev_hash),
            hash: String::new(),
        };
        row.hash = row_hash(&row.hashed_fields());
        prev_hash = row.hash.clone();
        rows.push(row);
    }
    match conn {
        // One statement per chunk on PostgreSQL, where each is a round trip.
        DbConnection::Postgres(pg) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(publish_log::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        // In-process SQLite: a cached prepared insert per row is as fast.
        DbConnection::Sqlite(_) => {
            for row in &rows {
                diesel::insert_into(publish_log::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
    }
    // Subscribers hear of the events they follow, in the same transaction:
    // the call is queued if and only if the change is committed.
    crate::webhooks::enqueue_for_log(conn, &rows)?;
    Ok(rows)
}

/// Filters for reading the log (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub statement_id: Option<String>,
    pub account_id: Option<String>,
    pub delivery_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Newest first; `before` is the keyset cursor (a `seq`).
pub fn list(
    conn: &mut DbConnection,
    filter: &LogFilter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LogRow>> {
    let mut query = publish_log::table.into_boxed();
    if let Some(action) = &filter.action {
        // `statement.*` selects a whole family of actions.
        match action.strip_suffix('*') {
            Some(prefix) => {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                query = query.filter(publish_log::action.like(format!("{escaped}%")).escape('\\'));
            }
            None => query = query.filter(publish_log::action.eq(action.clone())),
        }
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(publish_log::actor.eq(actor.clone()));
    }
    if let Some(id) = &filter.statement_id {
        query = query.filter(publish_log::statement_id.eq(id.clone()));
    }
    if let Some(id) = &filter.account_id {
        query = query.filter(publish_log::account_id.eq(id.clone()));
    }
    if let Some(id) = &filter.delivery_id {
        query = query.filter(publish_log::delivery_id.eq(id.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(publish_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(publish_log::at.lt(to));
    }
    if let Some(before) = before {
        query = query.filter(publish_log::seq.lt(before));
    }
    query.order(publish_log::seq.desc()).limit(limit).load(conn)
}

/// Walk the whole chain from the first row. `Ok(n)` when all `n` rows verify.
pub fn verify(conn: &mut DbConnection) -> QueryResult<Result<i64, ChainBreak>> {
    const BATCH: i64 = 1_000;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_string();
    loop {
        let rows: Vec<LogRow> = publish_log::table
            .filter(publish_log::seq.ge(expected_seq))
            .order(publish_log::seq.asc())
            .limit(BATCH)
            .load(conn)?;
        if rows.is_empty() {
            return Ok(Ok(expected_seq - 1));
        }
        for row in rows {
            let problem = if row.seq != expected_seq {
                Some(format!(
                    "row {expected_seq} is missing (next row is {})",
                    row.seq
                ))
            } else if row.prev_hash != prev_hash {
                Some("prev_hash does not match the previous row's hash".to_string())
            } else if row_hash(&row.hashed_fields()) != row.hash {
                Some("the row's content does not match its hash (edited)".to_string())
            } else {
                None
            };
            if let Some(reason) = problem {
                return Ok(Err(ChainBreak {
                    seq: expected_seq,
                    reason,
                }));
            }
            prev_hash = row.hash;
            expected_seq += 1;
        }
    }
}
