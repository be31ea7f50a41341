//! Webhook queries: the rows, subscriptions (create, read, remove) and a
//! webhook's calls with their tries. Queueing and sending calls is in
//! `outbox.rs`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use super::{OutboxStatus, WebhookEvent};
use crate::db::schema::{webhook_attempts, webhook_deliveries, webhooks};
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// JSON array of event names.
    pub events: String,
    /// Sealed with the credential key, the webhook id as context.
    pub secret: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub removed_at: Option<NaiveDateTime>,
}

impl WebhookRow {
    /// The subscribed events (a stored name Herald no longer knows is an error).
    pub fn events(&self) -> QueryResult<Vec<WebhookEvent>> {
        let names: Vec<String> = serde_json::from_str(&self.events).map_err(|e| {
            diesel::result::Error::DeserializationError(
                format!("webhook {} has unreadable events: {e}", self.id).into(),
            )
        })?;
        names
            .iter()
            .map(|name| {
                WebhookEvent::parse(name).ok_or_else(|| {
                    diesel::result::Error::DeserializationError(
                        format!("webhook {} has the unknown event '{name}'", self.id).into(),
                    )
                })
            })
            .collect()
    }

    pub(super) fn subscribes_to(&self, event: &str) -> bool {
        serde_json::from_str::<Vec<String>>(&self.events)
            .is_ok_and(|names| names.iter().any(|n| n == event))
    }
}

/// One call to make (or made): the outbox row.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct OutboxRow {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// The exact body sent, built once at enqueue time.
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

impl OutboxRow {
    pub fn status(&self) -> QueryResult<OutboxStatus> {
        OutboxStatus::parse(&self.status).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!(
                    "outbox row {} has the unknown status '{}'",
                    self.id, self.status
                )
                .into(),
            )
        })
    }
}

/// One try of a call.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub delivery_id: String,
    /// From 1.
    pub number: i32,
    /// When the request was sent.
    pub at: NaiveDateTime,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook with id '{0}'")]
    NotFound(String),
    #[error("the webhook '{0}' is already removed")]
    AlreadyRemoved(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Store a new webhook and log `webhook.created` (never its secret). `seal`
/// turns the new id into the sealed secret.
pub fn create(
    conn: &mut DbConnection,
    actor: &str,
    url: &str,
    events: &[WebhookEvent],
    seal: impl FnOnce(&str) -> String,
) -> QueryResult<WebhookRow> {
    db::write_tx(conn, |conn| {
        let id = db::new_id();
        let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
        let row = WebhookRow {
            secret: seal(&id),
            id,
            url: url.to_string(),
            events: json!(names).to_string(),
            created_by: actor.to_string(),
            created_at: db::now(),
            removed_at: None,
        };
        diesel::insert_into(webhooks::table)
            .values(&row)
            .execute(conn)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "webhook.created").details(json!({
                "webhook_id": row.id,
                "url": row.url,
                "events": names,
            })),
        )?;
        Ok(row)
    })
}

/// A webhook by id, removed ones included (their calls stay readable).
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<WebhookRow>> {
    webhooks::table
        .find(id)
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Webhooks not removed, newest first; `before` is the keyset cursor (an id).
pub fn list(
    conn: &mut DbConnection,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<WebhookRow>> {
    let mut query = webhooks::table
        .filter(webhooks::removed_at.is_null())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(webhooks::id.lt(before.to_string()));
    }
    query
        .order(webhooks::id.desc())
        .limit(limit)
        .select(WebhookRow::as_select())
        .load(conn)
}

/// Remove a webhook: no call is made for it any more, its pending calls are
/// cancelled, and `webhook.removed` is logged. Returns the row as it now is
/// and how many calls were cancelled.
pub fn remove(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
) -> Result<(WebhookRow, usize), WebhookError> {
    db::write_tx(conn, |conn| {
        // The write gate first: events are enqueued while it is held (the
        // publish-log append takes it), so none can slip a pending call in
        // for this webhook after its pending calls are cancelled.
        db::take_write_gate(conn)?;
        let mut row = find(conn, id)?.ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        let now = db::now();
        let removed = diesel::update(
            webhooks::table
                .find(id)
                .filter(webhooks::removed_at.is_null()),
        )
        .set(webhooks::removed_at.eq(Some(now)))
        .execute(conn)?;
        if removed == 0 {
            return Err(WebhookError::AlreadyRemoved(id.to_string()));
        }
        row.removed_at = Some(now);
        let cancelled = cancel_pending(conn, &[id.to_string()])?;
        log::store::append(
            conn,
            NewEvent::new(actor, "webhook.removed").details(json!({
                "webhook_id": row.id,
                "url": row.url,
                "events": serde_json::from_str::<Value>(&row.events).unwrap_or(Value::Null),
                "cancelled_calls": cancelled,
            })),
        )?;
        Ok((row, cancelled))
    })
}

/// Cancel the pending calls of these webhooks; returns how many.
pub(super) fn cancel_pending(
    conn: &mut DbConnection,
    webhook_ids: &[String],
) -> QueryResult<usize> {
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq_any(webhook_ids))
            .filter(webhook_deliveries::status.eq(OutboxStatus::Pending.as_str())),
    )
    .set((
        webhook_deliveries::status.eq(OutboxStatus::Cancelled.as_str()),
        webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
}

/// A webhook's calls, newest first, each with its tries (oldest first);
/// `before` is the keyset cursor (a call id).
pub fn deliveries(
    conn: &mut DbConnection,
    webhook_id: &str,
    status: Option<OutboxStatus>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<(OutboxRow, Vec<AttemptRow>)>> {
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(webhook_deliveries::status.eq(status.as_str()));
    }
    if let Some(before) = before {
        query = query.filter(webhook_deliveries::id.lt(before.to_string()));
    }
    let rows: Vec<OutboxRow> = query
        .order(webhook_deliveries::id.desc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let attempts: Vec<AttemptRow> = if ids.is_empty() {
        Vec::new()
    } else {
        webhook_attempts::table
            .filter(webhook_attempts::delivery_id.eq_any(&ids))
            .order((webhook_attempts::delivery_id, webhook_attempts::number))
            .select(AttemptRow::as_select())
            .load(conn)?
    };
    let mut by_call: std::collections::HashMap<String, Vec<AttemptRow>> =
        std::collections::HashMap::new();
    for attempt in attempts {
        by_call
            .entry(attempt.delivery_id.clone())
            .or_default()
            .push(attempt);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let tries = by_call.remove(&row.id).unwrap_or_default();
            (row, tries)
        })
        .collect())
}
