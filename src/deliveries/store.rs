//! Delivery queries: scheduling and user actions, and the dispatcher's claim,
//! settle, rescue and sweep. Every transition and its publish-log event are
//! written in one transaction, and every transaction takes the write gate
//! first (one lock order everywhere: gate, then delivery rows).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
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
}

impl DeliveryRow {
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

fn event(actor: &str, action: &'static str, d: &DeliveryRow) -> NewEvent {
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
        let now = db::now();
        let planned_at = db::truncate_micros(req.planned_at.naive_utc());
        let deadline = planned_at + Duration::seconds(i64::from(req.max_lateness_s));
        let mut rows = Vec::with_capacity(targets.len());
        for (n, account) in targets.into_iter().enumerate() {
            let id = db::new_id();
            // Bluesky takes the key as its record key, which for posts must
            // be a TID: the clock id is random, the instant unique per row.
            let idempotency_key = if account.platform == Platform::Bluesky.as_str() {
                crate::platforms::connector::tid(
                    Utc::now() + Duration::microseconds(n as i64),
                    rand::random::<u16>() & 0x3ff,
                )
            } else {
                db::new_id()
            };
            let row = DeliveryRow {
                id,
                statement_id: req.statement_id.clone(),
                lineage_id: lineage_id.clone(),
                statement_version: version,
                account_id: account.id.clone(),
                platform: account.platform.clone(),
                kind: kind.clone(),
                planned_at,
                timezone: req.timezone.clone(),
                max_lateness_s: req.max_lateness_s,
                deadline,
                status: DeliveryStatus::Scheduled.as_str().into(),
                attempts: 0,
                retries: 0,
                reconcile_tries: 0,
                next_attempt_at: Some(planned_at),
                lease_owner: None,
                lease_expires_at: None,
                idempotency_key,
                first_attempt_at: None,
                published_at: None,
                lateness_ms: None,
                remote_id: None,
                remote_url: None,
                last_error: None,
                created_by: actor.into(),
                created_at: now,
                updated_at: now,
            };
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

/// A statement was retired: its pending deliveries are cancelled. Runs
/// inside the retirement's transaction.
pub fn cancel_for_retired(
    conn: &mut DbConnection,
    actor: &str,
    statement_id: &str,
) -> QueryResult<usize> {
    let pending: Vec<DeliveryRow> = deliveries::table
        .filter(deliveries::statement_id.eq(statement_id))
        .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
        .select(DeliveryRow::as_select())
        .load(conn)?;
    for row in &pending {
        set_cancelled(conn, actor, row, "the statement was retired")?;
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

// ---------------------------------------------------------------- dispatcher

/// A delivery claimed for one attempt, with what it needs to publish.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: DeliveryRow,
    pub title: String,
    pub language: Option<String>,
    pub text: String,
    pub account: AccountRow,
}

fn placeholders(conn: &DbConnection) -> impl Fn(usize) -> String {
    let pg = matches!(conn, DbConnection::Postgres(_));
    move |n| if pg { format!("${n}") } else { "?".to_string() }
}

/// Mark overdue scheduled deliveries `missed` (never published late by surprise).
pub fn sweep_missed(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<DeliveryRow>> {
    let p = placeholders(conn);
    let sql = format!(
        "UPDATE deliveries SET status = 'missed', next_attempt_at = NULL, updated_at = {0}, \
         last_error = COALESCE(last_error, 'not published within max_lateness_s of the planned time') \
         WHERE status = 'scheduled' AND deadline < {1} RETURNING *",
        p(1),
        p(2)
    );
    let missed: Vec<DeliveryRow> = diesel::sql_query(sql)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .load(conn)?;
    for row in &missed {
        log::store::append(
            conn,
            event(SYSTEM, "delivery.missed", row).details(json!({
                "planned_at": utc(row.planned_at),
                "deadline": utc(row.deadline),
                "max_lateness_s": row.max_lateness_s,
                "attempts": row.attempts,
                "last_error": row.last_error,
            })),
        )?;
    }
    Ok(missed)
}

/// Claim up to `limit` due deliveries for `owner` until `lease_until`: each
/// becomes `publishing` with a new attempt recorded, in one transaction.
/// Paused scopes, inactive accounts, and statements with an open revision are
/// skipped (they wait, and are missed if they wait too long).
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Claim>> {
    tx(conn, |conn| {
        let now = db::now();
        // Overdue deliveries are never claimed; the sweep marks them missed.
        let control = control(conn)?;
        let scope_filter = match control.scope.as_deref() {
            Some("routine") => " AND d.kind = 'crisis'",
            Some(_) => return Ok(Vec::new()),
            None => "",
        };
        let pg = matches!(conn, DbConnection::Postgres(_));
        let sql = claim_sql(pg, scope_filter);
        let lease_until = now + lease;
        let mut claimed: Vec<DeliveryRow> = if pg {
            diesel::sql_query(sql)
                .bind::<Text, _>(owner)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(conn)?
        } else {
            // SQLite numbers `?` by position: the instant is bound once per use.
            diesel::sql_query(sql)
                .bind::<Text, _>(owner)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load(conn)?
        };
        claimed.sort_by(|a, b| a.planned_at.cmp(&b.planned_at).then(a.id.cmp(&b.id)));
        let mut events = Vec::with_capacity(claimed.len());
        let mut attempts = Vec::with_capacity(claimed.len());
        for row in &claimed {
            attempts.push(AttemptRow {
                delivery_id: row.id.clone(),
                number: row.attempts,
                owner: owner.into(),
                started_at: now,
                ended_at: None,
                outcome: None,
                http_status: None,
                error: None,
            });
            events.push(event(SYSTEM, "delivery.claimed", row).details(json!({
                "attempt": row.attempts,
                "owner": owner,
                "lease_expires_at": utc(lease_until),
                "idempotency_key": row.idempotency_key,
            })));
        }
        insert_attempts(conn, &attempts)?;
        log::store::append_many(conn, events)?;
        with_content(conn, claimed)
    })
}

/// Record the start of attempts, before any network call.
fn insert_attempts(conn: &mut DbConnection, rows: &[AttemptRow]) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => {
            for chunk in rows.chunks(500) {
                diesel::insert_into(delivery_attempts::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        DbConnection::Sqlite(_) => {
            for row in rows {
                diesel::insert_into(delivery_attempts::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Attach what each claimed delivery publishes: the statement's title and
/// language, the variant's text, the account. A batch usually shares them,
/// so each is read once per batch.
fn with_content(conn: &mut DbConnection, rows: Vec<DeliveryRow>) -> QueryResult<Vec<Claim>> {
    use std::collections::HashMap;
    let mut statements_seen: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut texts: HashMap<(String, String), String> = HashMap::new();
    let mut accounts_seen: HashMap<String, AccountRow> = HashMap::new();
    let mut claims = Vec::with_capacity(rows.len());
    for row in rows {
        if !statements_seen.contains_key(&row.statement_id) {
            let found: (String, Option<String>) = statements::table
                .find(&row.statement_id)
                .select((statements::title, statements::language))
                .first(conn)?;
            statements_seen.insert(row.statement_id.clone(), found);
        }
        let text_key = (row.statement_id.clone(), row.platform.clone());
        if !texts.contains_key(&text_key) {
            let text: String = variants::table
                .find((&row.statement_id, &row.platform))
                .select(variants::text)
                .first(conn)?;
            texts.insert(text_key.clone(), text);
        }
        if !accounts_seen.contains_key(&row.account_id) {
            let account: AccountRow = accounts::table
                .find(&row.account_id)
                .select(AccountRow::as_select())
                .first(conn)?;
            accounts_seen.insert(row.account_id.clone(), account);
        }
        let (title, language) = statements_seen[&row.statement_id].clone();
        claims.push(Claim {
            text: texts[&text_key].clone(),
            account: accounts_seen[&row.account_id].clone(),
            title,
            language,
            delivery: row,
        });
    }
    Ok(claims)
}

/// The claim: one `UPDATE … RETURNING` over a sub-select of due rows, which
/// on PostgreSQL skips rows another instance has locked.
fn claim_sql(pg: bool, scope_filter: &str) -> String {
    let (owner, lease, now, limit, lock) = if pg {
        ("$1", "$2", "$3", "$4", " FOR UPDATE OF d SKIP LOCKED")
    } else {
        ("?", "?", "?", "?", "")
    };
    format!(
        "UPDATE deliveries SET status = 'publishing', lease_owner = {owner}, lease_expires_at = {lease}, \
         attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, {now}), \
         next_attempt_at = NULL, updated_at = {now} \
         WHERE id IN (SELECT d.id FROM deliveries d \
           JOIN accounts a ON a.id = d.account_id \
           JOIN statements s ON s.id = d.statement_id \
           WHERE d.status = 'scheduled' AND d.next_attempt_at <= {now} AND d.deadline >= {now} \
           AND a.status = 'active' AND s.status = 'approved'{scope_filter} \
           AND NOT EXISTS (SELECT 1 FROM statements r WHERE r.previous_version_id = d.statement_id \
             AND r.status IN ('draft', 'in_review', 'rejected')) \
           ORDER BY d.next_attempt_at LIMIT {limit}{lock}) \
         RETURNING *"
    )
}

/// The earliest instant a scheduled delivery is due, if any.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
        .select(diesel::dsl::min(deliveries::next_attempt_at))
        .first(conn)
}

/// How one attempt ended, as the dispatcher decided.
#[derive(Debug, Clone)]
pub enum Settle {
    Published {
        remote_id: String,
        remote_url: Option<String>,
        /// When the request to the network started.
        request_started_at: DateTime<Utc>,
    },
    /// Back to `scheduled` at `at`.
    Retry {
        at: DateTime<Utc>,
        class: &'static str,
        error: String,
        http_status: Option<u16>,
        /// Counts toward the retry cap (rate limits do not).
        counts: bool,
    },
    /// Permanent failure. `revoke_account` sets the account to `needs_reauth`.
    Failed {
        class: &'static str,
        error: String,
        http_status: Option<u16>,
        revoke_account: bool,
    },
    /// Could not go out within its window.
    Missed {
        class: &'static str,
        error: String,
        http_status: Option<u16>,
    },
    /// The network may have it: reconcile at `reconcile_at`.
    Unknown {
        error: String,
        reconcile_at: DateTime<Utc>,
    },
}

/// One settled attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: String,
    pub attempt: i32,
    pub settle: Settle,
}

/// Record outcomes of attempts in one transaction. An outcome whose attempt
/// is no longer current (its lease was rescued and the delivery moved on) is
/// written to the attempt only. Returns how many deliveries changed state.
pub fn settle(conn: &mut DbConnection, owner: &str, outcomes: &[Outcome]) -> QueryResult<usize> {
    tx(conn, |conn| {
        let now = db::now();
        let mut done = 0;
        let mut events = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let (attempt_outcome, http_status, error) = match &outcome.settle {
                Settle::Published { .. } => ("published", None, None),
                Settle::Retry {
                    class,
                    error,
                    http_status,
                    ..
                }
                | Settle::Failed {
                    class,
                    error,
                    http_status,
                    ..
                }
                | Settle::Missed {
                    class,
                    error,
                    http_status,
                } => (*class, *http_status, Some(error.clone())),
                Settle::Unknown { error, .. } => ("unknown", None, Some(error.clone())),
            };
            diesel::update(
                delivery_attempts::table
                    .find((&outcome.delivery_id, outcome.attempt))
                    .filter(delivery_attempts::ended_at.is_null()),
            )
            .set((
                delivery_attempts::ended_at.eq(Some(now)),
                delivery_attempts::outcome.eq(Some(attempt_outcome)),
                delivery_attempts::http_status.eq(http_status.map(i32::from)),
                delivery_attempts::error.eq(&error),
            ))
            .execute(conn)?;
            let Some(row) = find(conn, &outcome.delivery_id)? else {
                continue;
            };
            let current = row.attempts == outcome.attempt
                && matches!(row.status.as_str(), "publishing" | "unknown");
            if !current {
                tracing::info!(delivery = %row.id, attempt = outcome.attempt, "stale outcome ignored");
                continue;
            }
            apply(conn, owner, now, &row, &outcome.settle, &mut events)?;
            done += 1;
        }
        log::store::append_many(conn, events)?;
        Ok(done)
    })
}

fn apply(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    row: &DeliveryRow,
    settle: &Settle,
    events: &mut Vec<NewEvent>,
) -> QueryResult<()> {
    let target = deliveries::table.find(&row.id);
    let clear_lease = (
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
        deliveries::updated_at.eq(now),
    );
    match settle {
        Settle::Published {
            remote_id,
            remote_url,
            request_started_at,
        } => {
            let lateness = (*request_started_at - row.planned_at.and_utc()).num_milliseconds();
            diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Published.as_str()),
                    deliveries::published_at.eq(Some(now)),
                    deliveries::lateness_ms.eq(Some(lateness)),
                    deliveries::remote_id.eq(Some(remote_id)),
                    deliveries::remote_url.eq(remote_url),
                    deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(None::<String>),
                    clear_lease,
                ))
                .execute(conn)?;
            events.push(event(SYSTEM, "delivery.published", row).details(json!({
                "attempt": row.attempts,
                "remote_id": remote_id,
                "remote_url": remote_url,
                "lateness_ms": lateness,
                "owner": owner,
            })));
        }
        Settle::Retry {
            at,
            class,
            error,
            http_status,
            counts,
        } => {
            let at = db::truncate_micros(at.naive_utc());
            diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Scheduled.as_str()),
                    deliveries::next_attempt_at.eq(Some(at)),
                    deliveries::retries.eq(row.retries + i32::from(*counts)),
                    deliveries::last_error.eq(Some(error)),
                    clear_lease,
                ))
                .execute(conn)?;
            events.push(event(SYSTEM, "delivery.retry", row).details(json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
                "next_attempt_at": utc(at),
            })));
        }
        Settle::Failed {
            class,
            error,
            http_status,
            revoke_account,
        } => {
            diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                    deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(Some(error)),
                    clear_lease,
                ))
                .execute(conn)?;
            events.push(event(SYSTEM, "delivery.failed", row).details(json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
            })));
            if *revoke_account {
                mark_needs_reauth(conn, &row.account_id, error, events)?;
            }
        }
        Settle::Missed {
            class,
            error,
            http_status,
        } => {
            diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Missed.as_str()),
                    deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(Some(error)),
                    clear_lease,
                ))
                .execute(conn)?;
            events.push(event(SYSTEM, "delivery.missed", row).details(json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
                "deadline": utc(row.deadline),
            })));
        }
        Settle::Unknown {
            error,
            reconcile_at,
        } => {
            let at = db::truncate_micros(reconcile_at.naive_utc());
            diesel::update(target)
                .set((
                    deliveries::status.eq(DeliveryStatus::Unknown.as_str()),
                    deliveries::next_attempt_at.eq(Some(at)),
                    deliveries::last_error.eq(Some(error)),
                    clear_lease,
                ))
                .execute(conn)?;
            events.push(event(SYSTEM, "delivery.unknown", row).details(json!({
                "attempt": row.attempts,
                "error": error,
                "reconcile_at": utc(at),
            })));
        }
    }
    Ok(())
}

/// The network refused the account's credentials for good.
pub fn mark_needs_reauth(
    conn: &mut DbConnection,
    account_id: &str,
    reason: &str,
    events: &mut Vec<NewEvent>,
) -> QueryResult<()> {
    let changed = diesel::update(
        accounts::table
            .find(account_id)
            .filter(accounts::status.eq(AccountStatus::Active.as_str())),
    )
    .set((
        accounts::status.eq(AccountStatus::NeedsReauth.as_str()),
        accounts::status_reason.eq(Some(reason)),
        accounts::updated_at.eq(db::now()),
    ))
    .execute(conn)?;
    if changed > 0 {
        events.push(
            NewEvent::new(SYSTEM, "account.needs_reauth")
                .account(account_id)
                .details(json!({"reason": reason})),
        );
    }
    Ok(())
}

/// Leases that expired while `publishing` (the owner crashed or stalled): the
/// outcome is unknown, so the delivery is reconciled before any retry.
pub fn rescue_expired_leases(conn: &mut DbConnection) -> QueryResult<Vec<DeliveryRow>> {
    tx(conn, |conn| {
        let now = db::now();
        let expired: Vec<DeliveryRow> = deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Publishing.as_str()))
            .filter(deliveries::lease_expires_at.lt(now))
            .select(DeliveryRow::as_select())
            .load(conn)?;
        for row in &expired {
            diesel::update(
                delivery_attempts::table
                    .find((&row.id, row.attempts))
                    .filter(delivery_attempts::ended_at.is_null()),
            )
            .set((
                delivery_attempts::ended_at.eq(Some(now)),
                delivery_attempts::outcome.eq(Some("lease_expired")),
                delivery_attempts::error.eq(Some(format!(
                    "no outcome from {} before its lease expired",
                    row.lease_owner.as_deref().unwrap_or("?")
                ))),
            ))
            .execute(conn)?;
            diesel::update(deliveries::table.find(&row.id))
                .set((
                    deliveries::status.eq(DeliveryStatus::Unknown.as_str()),
                    deliveries::next_attempt_at.eq(Some(now)),
                    deliveries::lease_owner.eq(None::<String>),
                    deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                    deliveries::last_error.eq(Some(
                        "the dispatcher holding it stopped answering; checking the network",
                    )),
                    deliveries::updated_at.eq(now),
                ))
                .execute(conn)?;
            log::store::append(
                conn,
                event(SYSTEM, "delivery.unknown", row).details(json!({
                    "attempt": row.attempts,
                    "error": "lease expired",
                    "owner": row.lease_owner,
                })),
            )?;
        }
        Ok(expired)
    })
}

/// Claim up to `limit` `unknown` deliveries due for a reconciliation check.
pub fn claim_unknown(
    conn: &mut DbConnection,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Claim>> {
    tx(conn, |conn| {
        let now = db::now();
        let due: Vec<DeliveryRow> = deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Unknown.as_str()))
            .filter(deliveries::next_attempt_at.le(now))
            .filter(
                deliveries::lease_expires_at
                    .is_null()
                    .or(deliveries::lease_expires_at.lt(now)),
            )
            .order(deliveries::next_attempt_at.asc())
            .limit(limit)
            .select(DeliveryRow::as_select())
            .load(conn)?;
        let mut taken_rows = Vec::with_capacity(due.len());
        for mut row in due {
            let taken = diesel::update(
                deliveries::table
                    .find(&row.id)
                    .filter(deliveries::status.eq(DeliveryStatus::Unknown.as_str())),
            )
            .set((
                deliveries::lease_owner.eq(Some(owner)),
                deliveries::lease_expires_at.eq(Some(now + lease)),
                deliveries::reconcile_tries.eq(row.reconcile_tries + 1),
                deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
            if taken == 0 {
                continue;
            }
            row.reconcile_tries += 1;
            taken_rows.push(row);
        }
        with_content(conn, taken_rows)
    })
}

/// Record a reconciliation: found (published), absent (retry now, or missed
/// past the deadline), or still unknown (check again later, or fail after
/// too many tries).
pub fn settle_reconciliation(
    conn: &mut DbConnection,
    owner: &str,
    delivery_id: &str,
    outcome: Reconciled,
) -> QueryResult<Option<DeliveryRow>> {
    tx(conn, |conn| {
        let now = db::now();
        let Some(row) = find(conn, delivery_id)? else {
            return Ok(None);
        };
        if row.status != DeliveryStatus::Unknown.as_str()
            || row.lease_owner.as_deref() != Some(owner)
        {
            return Ok(None);
        }
        let target = deliveries::table.find(&row.id);
        match outcome {
            Reconciled::Found {
                remote_id,
                remote_url,
            } => {
                let started: Option<NaiveDateTime> = delivery_attempts::table
                    .find((&row.id, row.attempts))
                    .select(delivery_attempts::started_at)
                    .first(conn)
                    .optional()?;
                let lateness = started
                    .map(|s| (s - row.planned_at).num_milliseconds())
                    .unwrap_or(0);
                diesel::update(target)
                    .set((
                        deliveries::status.eq(DeliveryStatus::Published.as_str()),
                        deliveries::published_at.eq(Some(now)),
                        deliveries::lateness_ms.eq(Some(lateness)),
                        deliveries::remote_id.eq(Some(&remote_id)),
                        deliveries::remote_url.eq(&remote_url),
                        deliveries::last_error.eq(None::<String>),
                        deliveries::lease_owner.eq(None::<String>),
                        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                        deliveries::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                log::store::append(
                    conn,
                    event(SYSTEM, "delivery.published", &row).details(json!({
                        "attempt": row.attempts,
                        "remote_id": remote_id,
                        "remote_url": remote_url,
                        "lateness_ms": lateness,
                        "reconciled": true,
                        "owner": owner,
                    })),
                )?;
            }
            Reconciled::Absent => {
                if now > row.deadline {
                    diesel::update(target)
                        .set((
                            deliveries::status.eq(DeliveryStatus::Missed.as_str()),
                            deliveries::last_error.eq(Some(
                                "the network does not have the post, and its publishing window has passed",
                            )),
                            deliveries::lease_owner.eq(None::<String>),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    log::store::append(
                        conn,
                        event(SYSTEM, "delivery.missed", &row).details(json!({
                            "attempt": row.attempts,
                            "reconciled": "absent",
                            "deadline": utc(row.deadline),
                        })),
                    )?;
                } else {
                    diesel::update(target)
                        .set((
                            deliveries::status.eq(DeliveryStatus::Scheduled.as_str()),
                            deliveries::next_attempt_at.eq(Some(now)),
                            deliveries::reconcile_tries.eq(0),
                            deliveries::lease_owner.eq(None::<String>),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    log::store::append(
                        conn,
                        event(SYSTEM, "delivery.retry", &row).details(json!({
                            "attempt": row.attempts,
                            "class": "reconciled_absent",
                            "error": "the network does not have the post: publishing again",
                            "next_attempt_at": utc(now),
                        })),
                    )?;
                }
            }
            Reconciled::StillUnknown {
                error,
                retry_at,
                give_up,
            } => {
                if give_up {
                    let reason = format!(
                        "outcome unknown, check the account before reposting (last check: {error})"
                    );
                    diesel::update(target)
                        .set((
                            deliveries::status.eq(DeliveryStatus::Failed.as_str()),
                            deliveries::last_error.eq(Some(&reason)),
                            deliveries::lease_owner.eq(None::<String>),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    log::store::append(
                        conn,
                        event(SYSTEM, "delivery.failed", &row).details(json!({
                            "attempt": row.attempts,
                            "class": "unknown",
                            "error": reason,
                            "reconcile_tries": row.reconcile_tries,
                        })),
                    )?;
                } else {
                    diesel::update(target)
                        .set((
                            deliveries::next_attempt_at
                                .eq(Some(db::truncate_micros(retry_at.naive_utc()))),
                            deliveries::last_error.eq(Some(&error)),
                            deliveries::lease_owner.eq(None::<String>),
                            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
        }
        find(conn, delivery_id)
    })
}

/// What a reconciliation found.
#[derive(Debug, Clone)]
pub enum Reconciled {
    Found {
        remote_id: String,
        remote_url: Option<String>,
    },
    Absent,
    StillUnknown {
        error: String,
        retry_at: DateTime<Utc>,
        give_up: bool,
    },
}

/// Save credentials a connector changed (a refreshed session), sealed.
pub fn save_credentials(
    conn: &mut DbConnection,
    account_id: &str,
    sealed: &str,
) -> QueryResult<NaiveDateTime> {
    let now = db::now();
    diesel::update(accounts::table.find(account_id))
        .set((
            accounts::credentials.eq(Some(sealed)),
            accounts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(now)
}

/// Counts by status (for `GET /v1/publishing`).
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    deliveries::table
        .group_by(deliveries::status)
        .select((deliveries::status, diesel::dsl::count_star()))
        .load(conn)
}
