//! Delivery queries: scheduling, user actions and the pause switch here;
//! the dispatcher's claim, settle, rescue and sweep in `dispatch.rs`. Every
//! transition and its publish-log event are written in one transaction, and
//! every transaction takes the write gate first (one lock order everywhere:
//! gate, then delivery rows).

mod dispatch;

pub use dispatch::{
    claim_due, claim_unknown, count_by_status, next_due_after, rescue_expired_leases,
    save_progress, settle, settle_reconciliation, sweep_missed, Claim, Outcome, Reconciled, Settle,
    RESPONSE_KIND,
};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::DeliveryStatus;
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::db::schema::{
    accounts, deliveries, delivery_attempts, publishing_control, statements, variants,
};
use crate::db::{self, DbConnection};
use crate::log::{self, NewEvent};
use crate::platforms::Platform;
use crate::statements::Status;

/// The actor the dispatcher writes in the publish log.
pub const SYSTEM: &str = "system";

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub statement_id: String,
    pub lineage_id: String,
    pub statement_version: i32,
    pub account_id: String,
    pub platform: String,
    pub kind: String,
    pub planned_at: NaiveDateTime,
    pub timezone: Option<String>,
    pub max_lateness_s: i32,
    pub deadline: NaiveDateTime,
    pub status: String,
    pub attempts: i32,
    pub retries: i32,
    pub reconcile_tries: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub idempotency_key: String,
    pub first_attempt_at: Option<NaiveDateTime>,
    pub published_at: Option<NaiveDateTime>,
    pub lateness_ms: Option<i64>,
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The published parts of a thread, in order: JSON `[{id, url}]`.
    pub remote_parts: Option<String>,
    /// A correction: the delivery whose post this one answers.
    pub reply_to_delivery_id: Option<String>,
    pub retracted_at: Option<NaiveDateTime>,
    /// Why the last retraction could not delete the post.
    pub retraction_error: Option<String>,
}

/// What a new delivery is made of; the rest starts empty.
pub struct NewDelivery {
    pub statement_id: String,
    pub lineage_id: String,
    pub statement_version: i32,
    pub account_id: String,
    pub platform: String,
    /// The statement's kind, or `response` for an answer to a reply.
    pub kind: String,
    pub planned_at: NaiveDateTime,
    pub timezone: Option<String>,
    pub max_lateness_s: i32,
    pub created_by: String,
    pub reply_to_delivery_id: Option<String>,
    /// Its rank among the rows created together (keeps Bluesky keys unique).
    pub nth: usize,
}

impl DeliveryRow {
    /// A `scheduled` delivery due at `planned_at`, with its idempotency key
    /// chosen now: Bluesky takes the key as its record key, which for posts
    /// must be a TID (the clock id random, the instant unique per row).
    pub fn scheduled(new: NewDelivery) -> Self {
        let now = db::now();
        let idempotency_key = if new.platform == Platform::Bluesky.as_str() {
            crate::platforms::connector::tid(
                Utc::now() + Duration::microseconds(new.nth as i64),
                rand::random::<u16>() & 0x3ff,
            )
        } else {
            db::new_id()
        };
        Self {
            id: db::new_id(),
            statement_id: new.statement_id,
            lineage_id: new.lineage_id,
            statement_version: new.statement_version,
            account_id: new.account_id,
            platform: new.platform,
            kind: new.kind,
            planned_at: new.planned_at,
            timezone: new.timezone,
            max_lateness_s: new.max_lateness_s,
            deadline: new.planned_at + Duration::seconds(i64::from(new.max_lateness_s)),
            status: DeliveryStatus::Scheduled.as_str().into(),
            attempts: 0,
            retries: 0,
            reconcile_tries: 0,
            next_attempt_at: Some(new.planned_at),
            lease_owner: None,
            lease_expires_at: None,
            idempotency_key,
            first_attempt_at: None,
            published_at: None,
            lateness_ms: None,
            remote_id: None,
            remote_url: None,
            last_error: None,
            created_by: new.created_by,
            created_at: now,
            updated_at: now,
            remote_parts: None,
            reply_to_delivery_id: new.reply_to_delivery_id,
            retracted_at: None,
            retraction_error: None,
        }
    }
}

/// One published part of a thread.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemotePart {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl DeliveryRow {
    /// Every part on the network, first first: the thread's parts, or the
    /// one post.
    pub fn parts(&self) -> Vec<RemotePart> {
        let parts: Vec<RemotePart> = self
            .remote_parts
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if !parts.is_empty() {
            return parts;
        }
        match &self.remote_id {
            Some(id) if self.published_at.is_some() => vec![RemotePart {
                id: id.clone(),
                url: self.remote_url.clone(),
            }],
            _ => Vec::new(),
        }
    }

    /// The parts published so far by an unfinished thread.
    pub fn progress(&self) -> Vec<RemotePart> {
        self.remote_parts
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    pub fn status(&self) -> QueryResult<DeliveryStatus> {
        DeliveryStatus::parse(&self.status).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("stored delivery status '{}' is unknown", self.status).into(),
            )
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub number: i32,
    pub owner: String,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub outcome: Option<String>,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Field errors: `(field, message)`.
    #[error("invalid request")]
    Invalid(Vec<(String, String)>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Run `f` in a write transaction that holds the write gate from its start.
pub fn tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    db::write_tx(conn, |conn| {
        if matches!(conn, DbConnection::Postgres(_)) {
            db::take_write_gate(conn)?;
        }
        f(conn)
    })
}

pub(crate) fn event(actor: &str, action: &'static str, d: &DeliveryRow) -> NewEvent {
    let mut e = NewEvent::new(actor, action)
        .statement(&d.statement_id)
        .account(&d.account_id);
    e.delivery_id = Some(d.id.clone());
    e
}

fn utc(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

// ---------------------------------------------------------------- scheduling

/// What to schedule: one delivery per account.
pub struct ScheduleRequest {
    pub statement_id: String,
    pub account_ids: Vec<String>,
    pub planned_at: DateTime<Utc>,
    pub timezone: Option<String>,
    pub max_lateness_s: i32,
    /// Corrections: per account (same order as `account_ids`), the
    /// delivery whose post the new one answers. Empty for a plain schedule.
    pub reply_to: Vec<Option<String>>,
}

pub fn schedule(
    conn: &mut DbConnection,
    actor: &str,
    req: &ScheduleRequest,
) -> Result<Vec<DeliveryRow>, DeliveryError> {
    tx(conn, |conn| {
        db::lock_row(conn, db::LockableTable::Statements, &req.statement_id)?;
        let statement: (String, i32, String, String) = statements::table
            .find(&req.statement_id)
            .select((
                statements::lineage_id,
                statements::version,
                statements::kind,
                statements::status,
            ))
            .first(conn)
            .optional()?
            .ok_or_else(|| DeliveryError::NotFound(format!("statement '{}'", req.statement_id)))?;
        let (lineage_id, version, kind, status) = statement;
        if kind == RESPONSE_KIND {
            return Err(DeliveryError::Conflict(
                "a response template is not published on its own: use it to answer a reply \
                 (POST /v1/replies/{id}/respond with template_id)"
                    .into(),
            ));
        }
        if status != Status::Approved.as_str() {
            return Err(DeliveryError::Conflict(format!(
                "the statement is {status}: only an approved statement can be scheduled"
            )));
        }
        let platforms: Vec<String> = variants::table
            .filter(variants::statement_id.eq(&req.statement_id))
            .select(variants::platform)
            .load(conn)?;
        let mut errors = Vec::new();
        let mut targets = Vec::new();
        for (i, account_id) in req.account_ids.iter().enumerate() {
            let field = format!("accounts[{i}]");
            let account: Option<AccountRow> = accounts::table
                .find(account_id)
                .filter(accounts::removed_at.is_null())
                .select(AccountRow::as_select())
                .first(conn)
                .optional()?;
            let Some(account) = account else {
                errors.push((field, format!("no account with id '{account_id}'")));
                continue;
            };
            if account.status != AccountStatus::Active.as_str() {
                errors.push((
                    field,
                    format!(
                        "account '{}' is {}{}: reconnect it first",
                        account.name,
                        account.status,
                        account
                            .status_reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                ));
                continue;
            }
            if !platforms.contains(&account.platform) {
                errors.push((
                    field,
                    format!(
                        "the statement has no {} variant for account '{}'",
                        account.platform, account.name
                    ),
                ));
                continue;
            }
            match Platform::parse(&account.platform) {
                Some(p) if crate::platforms::Connectors::supports(p) => targets.push(account),
                _ => errors.push((
                    field,
                    format!("Herald cannot publish to {} yet", account.platform),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(DeliveryError::Invalid(errors));
        }
        let planned_at = db::truncate_micros(req.planned_at.naive_utc());
        let mut rows = Vec::with_capacity(targets.len());
        let reply_to = |account_id: &str| {
            req.account_ids
                .iter()
                .position(|a| a == account_id)
                .and_then(|i| req.reply_to.get(i).cloned().flatten())
        };
        for (n, account) in targets.into_iter().enumerate() {
            let row = DeliveryRow::scheduled(NewDelivery {
                statement_id: req.statement_id.clone(),
                lineage_id: lineage_id.clone(),
                statement_version: version,
                account_id: account.id.clone(),
                platform: account.platform.clone(),
                kind: kind.clone(),
                planned_at,
                timezone: req.timezone.clone(),
                max_lateness_s: req.max_lateness_s,
                created_by: actor.into(),
                reply_to_delivery_id: reply_to(&account.id),
                nth: n,
            });
            diesel::insert_into(deliveries::table)
                .values(&row)
                .execute(conn)?;
            log::store::append(
                conn,
                event(actor, "delivery.scheduled", &row).details(json!({
                    "statement_version": version,
                    "platform": row.platform,
                    "account": account.name,
                    "planned_at": utc(planned_at),
                    "timezone": row.timezone,
                    "max_lateness_s": row.max_lateness_s,
                    "reply_to_delivery_id": row.reply_to_delivery_id,
                })),
            )?;
            rows.push(row);
        }
        Ok(rows)
    })
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<DeliveryRow>> {
    deliveries::table
        .find(id)
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()
}

pub fn attempts(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<AttemptRow>> {
    delivery_attempts::table
        .filter(delivery_attempts::delivery_id.eq(id))
        .order(delivery_attempts::number.asc())
        .select(AttemptRow::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<DeliveryStatus>,
    pub account_id: Option<String>,
    pub statement_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Newest first (by id); `from`/`to` bound the planned instant.
pub fn list(
    conn: &mut DbConnection,
    filter: &ListFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut query = deliveries::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(deliveries::status.eq(status.as_str()));
    }
    if let Some(account) = &filter.account_id {
        query = query.filter(deliveries::account_id.eq(account.clone()));
    }
    if let Some(statement) = &filter.statement_id {
        query = query.filter(deliveries::statement_id.eq(statement.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(deliveries::planned_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(deliveries::planned_at.lt(to));
    }
    if let Some(before) = before {
        query = query.filter(deliveries::id.lt(before.to_string()));
    }
    query
        .order(deliveries::id.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

fn get_locked(conn: &mut DbConnection, id: &str) -> Result<DeliveryRow, DeliveryError> {
    db::lock_row(conn, db::LockableTable::Deliveries, id)?;
    find(conn, id)?.ok_or_else(|| DeliveryError::NotFound(format!("delivery with id '{id}'")))
}

pub fn cancel(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
    reason: Option<&str>,
) -> Result<DeliveryRow, DeliveryError> {
    tx(conn, |conn| {
        let row = get_locked(conn, id)?;
        let status = row.status()?;
        if !status.cancellable() {
            return Err(DeliveryError::Conflict(match status {
                DeliveryStatus::Publishing | DeliveryStatus::Unknown => {
                    "the delivery has already been handed to the network; it can no longer be cancelled".into()
                }
                other => format!("the delivery is {}: only a scheduled delivery can be cancelled", other.as_str()),
            }));
        }
        set_cancelled(conn, actor, &row, reason.unwrap_or("cancelled by a user"))?;
        Ok(find(conn, id)?.unwrap_or(row))
    })
}

fn set_cancelled(
    conn: &mut DbConnection,
    actor: &str,
    row: &DeliveryRow,
    reason: &str,
) -> QueryResult<()> {
    diesel::update(deliveries::table.find(&row.id))
        .set((
            deliveries::status.eq(DeliveryStatus::Cancelled.as_str()),
            deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
            deliveries::last_error.eq(Some(reason)),
            deliveries::updated_at.eq(db::now()),
        ))
        .execute(conn)?;
    log::store::append(
        conn,
        event(actor, "delivery.cancelled", row).details(json!({
            "reason": reason,
            "status_before": row.status,
        })),
    )?;
    Ok(())
}

pub fn reschedule(
    conn: &mut DbConnection,
    actor: &str,
    id: &str,
    planned_at: DateTime<Utc>,
    timezone: Option<String>,
) -> Result<DeliveryRow, DeliveryError> {
    tx(conn, |conn| {
        let row = get_locked(conn, id)?;
        let status = row.status()?;
        if !status.reschedulable() {
            return Err(DeliveryError::Conflict(format!(
                "the delivery is {}: only a scheduled, failed or missed delivery can be rescheduled",
                status.as_str()
            )));
        }
        let planned = db::truncate_micros(planned_at.naive_utc());
        let deadline = planned + Duration::seconds(i64::from(row.max_lateness_s));
        diesel::update(deliveries::table.find(id))
            .set((
                deliveries::status.eq(DeliveryStatus::Scheduled.as_str()),
                deliveries::planned_at.eq(planned),
                deliveries::deadline.eq(deadline),
                deliveries::timezone.eq(&timezone),
                deliveries::next_attempt_at.eq(Some(planned)),
                deliveries::retries.eq(0),
                deliveries::reconcile_tries.eq(0),
                deliveries::last_error.eq(None::<String>),
                deliveries::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        log::store::append(
            conn,
            event(actor, "delivery.rescheduled", &row).details(json!({
                "status_before": row.status,
                "planned_at_before": utc(row.planned_at),
                "planned_at": utc(planned),
                "timezone": timezone,
            })),
        )?;
        Ok(find(conn, id)?.unwrap_or(row))
    })
}

/// A new version of a statement lineage was approved: pending deliveries of
/// the version it replaces move to it (or are cancelled when it has no
/// variant for their network). Runs inside the approval's transaction.
pub fn follow_new_version(
    conn: &mut DbConnection,
    actor: &str,
    old_id: &str,
    new_id: &str,
    new_version: i32,
) -> QueryResult<usize> {
    let pending: Vec<DeliveryRow> = deliveries::table
        .filter(deliveries::statement_id.eq(old_id))
        .filter(deliveries::kind.ne(dispatch::RESPONSE_KIND))
        .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
        .select(DeliveryRow::as_select())
        .load(conn)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let platforms: Vec<String> = variants::table
        .filter(variants::statement_id.eq(new_id))
        .select(variants::platform)
        .load(conn)?;
    for row in &pending {
        if !platforms.contains(&row.platform) {
            set_cancelled(
                conn,
                actor,
                row,
                &format!(
                    "version {new_version} of the statement has no {} variant",
                    row.platform
                ),
            )?;
            continue;
        }
        diesel::update(deliveries::table.find(&row.id))
            .set((
                deliveries::statement_id.eq(new_id),
                deliveries::statement_version.eq(new_version),
                deliveries::updated_at.eq(db::now()),
            ))
            .execute(conn)?;
        let mut e = NewEvent::new(actor, "delivery.moved")
            .statement(new_id)
            .account(&row.account_id)
            .details(json!({
                "from_statement_id": old_id,
                "from_version": row.statement_version,
                "to_version": new_version,
            }));
        e.delivery_id = Some(row.id.clone());
        log::store::append(conn, e)?;
    }
    Ok(pending.len())
}

/// What a group of pending deliveries belongs to.
pub enum Owner<'a> {
    Statement(&'a str),
    Account(&'a str),
}

/// Cancel the `scheduled` deliveries of a retired statement or a removed
/// account, with `reason`. Runs inside the retirement's or the removal's
/// transaction.
pub fn cancel_pending(
    conn: &mut DbConnection,
    actor: &str,
    owner: Owner<'_>,
    reason: &str,
) -> QueryResult<usize> {
    let mut query = deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
        .into_boxed();
    query = match owner {
        // Answers to the public outlive the statement they were collected under.
        Owner::Statement(id) => query
            .filter(deliveries::statement_id.eq(id.to_string()))
            .filter(deliveries::kind.ne(dispatch::RESPONSE_KIND)),
        Owner::Account(id) => query.filter(deliveries::account_id.eq(id.to_string())),
    };
    let pending: Vec<DeliveryRow> = query.select(DeliveryRow::as_select()).load(conn)?;
    for row in &pending {
        set_cancelled(conn, actor, row, reason)?;
    }
    Ok(pending.len())
}

// ---------------------------------------------------------------- pause

/// The pause switch: `None` when publishing runs.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = publishing_control)]
pub struct ControlRow {
    pub scope: Option<String>,
    pub reason: Option<String>,
    pub changed_by: Option<String>,
    pub changed_at: Option<NaiveDateTime>,
}

pub fn control(conn: &mut DbConnection) -> QueryResult<ControlRow> {
    publishing_control::table
        .find(1)
        .select(ControlRow::as_select())
        .first(conn)
}

/// Set the pause scope (`all`, `routine`) or clear it (`None`). Returns the
/// control as it was before, and the deliveries already handed to a network.
pub fn set_pause(
    conn: &mut DbConnection,
    actor: &str,
    scope: Option<&str>,
    reason: Option<&str>,
) -> QueryResult<(ControlRow, Vec<DeliveryRow>)> {
    tx(conn, |conn| {
        let before = control(conn)?;
        diesel::update(publishing_control::table.find(1))
            .set((
                publishing_control::scope.eq(scope),
                publishing_control::reason.eq(reason),
                publishing_control::changed_by.eq(Some(actor)),
                publishing_control::changed_at.eq(Some(db::now())),
            ))
            .execute(conn)?;
        let in_flight: Vec<DeliveryRow> = deliveries::table
            .filter(deliveries::status.eq_any([
                DeliveryStatus::Publishing.as_str(),
                DeliveryStatus::Unknown.as_str(),
            ]))
            .order(deliveries::id.asc())
            .select(DeliveryRow::as_select())
            .load(conn)?;
        let (action, details) = match scope {
            Some(scope) => (
                "publishing.paused",
                json!({
                    "scope": scope,
                    "reason": reason,
                    "scope_before": before.scope,
                    "in_flight": in_flight.iter().map(|d| &d.id).collect::<Vec<_>>(),
                }),
            ),
            None => (
                "publishing.resumed",
                json!({"scope_before": before.scope, "reason_before": before.reason}),
            ),
        };
        log::store::append(conn, NewEvent::new(actor, action).details(details))?;
        Ok((before, in_flight))
    })
}
