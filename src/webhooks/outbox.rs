//! The outbox: queueing calls when events happen (inside the transaction
//! that records them), claiming due calls under a lease, and settling each
//! try. Back-end-specific SQL (the claim) stays in this file.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use serde_json::{json, Value};

use super::store::{cancel_pending, AttemptRow, OutboxRow, WebhookRow};
use super::{Next, OutboxStatus, WebhookEvent};
use crate::db::schema::{webhook_attempts, webhook_deliveries, webhooks};
use crate::db::{self, DbConnection};
use crate::log::format_instant;
use crate::log::store::LogRow;

/// Rows per multi-row insert on PostgreSQL (under its bind-parameter limit).
const INSERT_CHUNK: usize = 500;

/// The webhooks not removed (one query).
fn active(conn: &mut DbConnection) -> QueryResult<Vec<WebhookRow>> {
    webhooks::table
        .filter(webhooks::removed_at.is_null())
        .select(WebhookRow::as_select())
        .load(conn)
}

/// Queue `event` for every active webhook subscribed to it, inside the
/// caller's transaction (call it in the transaction that records the event).
/// Each row holds the body to send, `{"id", "event", "created_at", "data"}`,
/// so every try sends the same bytes. Returns how many calls were queued.
pub fn enqueue(conn: &mut DbConnection, event: &str, payload: Value) -> QueryResult<usize> {
    let hooks = active(conn)?;
    let now = db::now();
    let rows = hooks
        .iter()
        .filter(|h| h.subscribes_to(event))
        .map(|h| outbox_row(&h.id, event, &payload, now))
        .collect::<QueryResult<Vec<_>>>()?;
    insert_outbox(conn, &rows)?;
    Ok(rows.len())
}

/// Queue the webhook events that just-appended publish-log rows raise
/// (`delivery.published`, `delivery.failed`, `delivery.missed`,
/// `account.needs_reauth`, `replies.negative_spike`), the payload being the
/// row: `{statement_id, account_id, delivery_id, actor, at, details}`.
///
/// Called by the log append in its transaction, so it is cheap: no query
/// when no row raises an event; otherwise one read of the webhooks for the
/// whole batch, then the inserts of the calls queued, if any (one statement
/// per 500 calls on PostgreSQL, one per call on SQLite).
pub fn enqueue_for_log(conn: &mut DbConnection, rows: &[LogRow]) -> QueryResult<()> {
    let raised: Vec<(WebhookEvent, &LogRow)> = rows
        .iter()
        .filter_map(|row| WebhookEvent::from_log_action(&row.action).map(|e| (e, row)))
        .collect();
    if raised.is_empty() {
        return Ok(());
    }
    let hooks = active(conn)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let now = db::now();
    let mut outbox = Vec::new();
    for (event, row) in raised {
        let event = event.as_str();
        let subscribed: Vec<&WebhookRow> =
            hooks.iter().filter(|h| h.subscribes_to(event)).collect();
        if subscribed.is_empty() {
            continue;
        }
        let payload = json!({
            "statement_id": row.statement_id,
            "account_id": row.account_id,
            "delivery_id": row.delivery_id,
            "actor": row.actor,
            "at": format_instant(row.at),
            "details": serde_json::from_str::<Value>(&row.details)
                .unwrap_or_else(|_| Value::String(row.details.clone())),
        });
        for hook in subscribed {
            outbox.push(outbox_row(&hook.id, event, &payload, now)?);
        }
    }
    insert_outbox(conn, &outbox)
}

fn outbox_row(
    webhook_id: &str,
    event: &str,
    data: &Value,
    now: NaiveDateTime,
) -> QueryResult<OutboxRow> {
    let id = db::new_id();
    let body = json!({
        "id": id,
        "event": event,
        "created_at": format_instant(now),
        "data": data,
    });
    let payload = serde_json::to_string(&body)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    Ok(OutboxRow {
        id,
        webhook_id: webhook_id.to_string(),
        event: event.to_string(),
        payload,
        status: OutboxStatus::Pending.as_str().to_string(),
        attempts: 0,
        next_attempt_at: Some(now),
        lease_until: None,
        last_status: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    })
}

fn insert_outbox(conn: &mut DbConnection, rows: &[OutboxRow]) -> QueryResult<()> {
    match conn {
        // One statement per chunk on PostgreSQL, where each is a round trip.
        DbConnection::Postgres(pg) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(webhook_deliveries::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        // In-process SQLite: a cached prepared insert per row is as fast.
        DbConnection::Sqlite(_) => {
            for row in rows {
                diesel::insert_into(webhook_deliveries::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// A claimed call with where to send it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub row: OutboxRow,
    pub url: String,
    /// Sealed; opened by the sender with the webhook id as context.
    pub sealed_secret: String,
}

/// Claim up to `limit` due pending calls until `lease_until`: one
/// `UPDATE … RETURNING` over a sub-select that, on PostgreSQL, skips rows
/// another instance holds, so several instances share the outbox. A call
/// whose lease ran out (its sender died) is due again. Calls of a removed
/// webhook are cancelled, not returned.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Claim>> {
    let pg = matches!(conn, DbConnection::Postgres(_));
    let rows: Vec<OutboxRow> = if pg {
        diesel::sql_query(claim_sql(pg))
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)?
    } else {
        // SQLite numbers `?` by position: the instant is bound once per use.
        diesel::sql_query(claim_sql(pg))
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(conn)?
    };
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<&str> = rows.iter().map(|r| r.webhook_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let hooks: Vec<WebhookRow> = webhooks::table
        .filter(webhooks::id.eq_any(&ids))
        .select(WebhookRow::as_select())
        .load(conn)?;
    let mut claims = Vec::with_capacity(rows.len());
    let mut orphans = Vec::new();
    for row in rows {
        match hooks
            .iter()
            .find(|h| h.id == row.webhook_id && h.removed_at.is_none())
        {
            Some(hook) => claims.push(Claim {
                url: hook.url.clone(),
                sealed_secret: hook.secret.clone(),
                row,
            }),
            None => orphans.push(row.webhook_id),
        }
    }
    if !orphans.is_empty() {
        cancel_pending(conn, &orphans)?;
    }
    Ok(claims)
}

fn claim_sql(pg: bool) -> String {
    let (lease, now, now_again, limit, lock) = if pg {
        ("$1", "$2", "$2", "$3", " FOR UPDATE SKIP LOCKED")
    } else {
        ("?", "?", "?", "?", "")
    };
    format!(
        "UPDATE webhook_deliveries SET lease_until = {lease} \
         WHERE id IN (SELECT id FROM webhook_deliveries \
           WHERE status = 'pending' AND next_attempt_at <= {now} \
           AND (lease_until IS NULL OR lease_until < {now_again}) \
           ORDER BY next_attempt_at LIMIT {limit}{lock}) \
         RETURNING *"
    )
}

/// Delete up to `limit` settled calls (delivered, failed or cancelled)
/// created before `before`, oldest first, with their tries, in one
/// transaction; returns how many calls went. Pending calls, and calls a
/// sender holds a lease on, are never deleted.
pub fn purge_settled(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    db::write_tx(conn, |conn| {
        let ids: Vec<String> = webhook_deliveries::table
            .filter(webhook_deliveries::status.ne(OutboxStatus::Pending.as_str()))
            .filter(webhook_deliveries::created_at.lt(before))
            .filter(
                webhook_deliveries::lease_until
                    .is_null()
                    .or(webhook_deliveries::lease_until.lt(now)),
            )
            .order(webhook_deliveries::created_at)
            .limit(limit)
            .select(webhook_deliveries::id)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(&ids)))
            .execute(conn)?;
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .execute(conn)
    })
}

/// How one try went, as the sender saw it.
#[derive(Debug, Clone)]
pub struct TryResult {
    /// When the request was sent.
    pub at: NaiveDateTime,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// What went wrong (never a secret).
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Record a try of call `id` and decide what comes next (see
/// [`super::next_step`]), in one transaction: the try gets the next number,
/// the lease is released. A call cancelled meanwhile stays cancelled unless
/// this try delivered it. Returns the call's status after it.
pub fn settle(
    conn: &mut DbConnection,
    id: &str,
    result: &TryResult,
    retry_s: u64,
    give_up_s: u64,
) -> QueryResult<OutboxStatus> {
    db::write_tx(conn, |conn| {
        // Counting the try in the row first locks it (PostgreSQL), so two
        // instances that both tried it (a lease that ran out) number their
        // tries apart.
        let sql = if matches!(conn, DbConnection::Postgres(_)) {
            "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL \
             WHERE id = $1 RETURNING *"
        } else {
            "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL \
             WHERE id = ? RETURNING *"
        };
        let row: OutboxRow = diesel::sql_query(sql)
            .bind::<Text, _>(id)
            .get_result(conn)?;
        let status = row.status()?;
        let now = db::now();
        diesel::insert_into(webhook_attempts::table)
            .values(AttemptRow {
                delivery_id: row.id.clone(),
                number: row.attempts,
                at: result.at,
                status: result.status.map(i32::from),
                error: result.error.clone(),
                duration_ms: result.duration_ms,
            })
            .execute(conn)?;
        let next = super::next_step(
            result.status,
            row.attempts,
            row.created_at,
            now,
            retry_s,
            give_up_s,
        );
        let (new_status, next_attempt_at, delivered_at) = match (status, next) {
            (_, Next::Delivered) => (
                OutboxStatus::Delivered,
                None,
                Some(row.delivered_at.unwrap_or(now)),
            ),
            (OutboxStatus::Pending, Next::Retry(at)) => (OutboxStatus::Pending, Some(at), None),
            (OutboxStatus::Pending, Next::Failed) => (OutboxStatus::Failed, None, None),
            // Cancelled, or already settled by another try: leave it.
            (other, _) => (other, row.next_attempt_at, row.delivered_at),
        };
        diesel::sql_query(if matches!(conn, DbConnection::Postgres(_)) {
            "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, delivered_at = $3, \
             last_status = $4, last_error = $5 WHERE id = $6"
        } else {
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, delivered_at = ?, \
             last_status = ?, last_error = ? WHERE id = ?"
        })
        .bind::<Text, _>(new_status.as_str())
        .bind::<Nullable<Timestamp>, _>(next_attempt_at)
        .bind::<Nullable<Timestamp>, _>(delivered_at)
        .bind::<Nullable<Integer>, _>(result.status.map(i32::from))
        .bind::<Nullable<Text>, _>(result.error.as_deref())
        .bind::<Text, _>(id)
        .execute(conn)?;
        Ok(new_status)
    })
}
