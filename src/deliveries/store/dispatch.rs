//! The dispatcher's queries: claim due deliveries as leases, settle attempts,
//! rescue expired leases, reconcile unknown outcomes, sweep missed ones.
//! Every outcome goes through one function, [`apply`], whatever found it
//! (a publish call, a reconciliation).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use serde_json::json;

use super::{control, event, find, tx, utc, AttemptRow, DeliveryRow, SYSTEM};
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::db::schema::{
    accounts, deliveries, delivery_attempts, replies, responses, statements, variants,
};
use crate::db::{self, DbConnection};
use crate::deliveries::DeliveryStatus;
use crate::log::{self, NewEvent};
use crate::platforms::ReplyTarget;
use crate::statements::store::VariantRow;
use crate::statements::VariantContent;

/// A delivery claimed for one attempt, with what it needs to publish.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: DeliveryRow,
    pub title: String,
    pub language: Option<String>,
    /// The variant: text, later thread parts, images.
    pub content: VariantContent,
    /// A correction: the parts of the post it answers (first and last).
    pub reply_to: Option<ReplyTarget>,
    pub account: AccountRow,
}

/// Mark overdue scheduled deliveries `missed` (never published late by surprise).
pub fn sweep_missed(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<DeliveryRow>> {
    let (set_at, before) = if matches!(conn, DbConnection::Postgres(_)) {
        ("$1", "$2")
    } else {
        ("?", "?")
    };
    let sql = format!(
        "UPDATE deliveries SET status = 'missed', next_attempt_at = NULL, updated_at = {set_at}, \
         last_error = COALESCE(last_error, 'not published within max_lateness_s of the planned time') \
         WHERE status = 'scheduled' AND deadline < {before} RETURNING *"
    );
    let missed: Vec<DeliveryRow> = diesel::sql_query(sql)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(now)
        .load(conn)?;
    let events = missed
        .iter()
        .map(|row| {
            event(SYSTEM, "delivery.missed", row).details(json!({
                "planned_at": utc(row.planned_at),
                "deadline": utc(row.deadline),
                "max_lateness_s": row.max_lateness_s,
                "attempts": row.attempts,
                "last_error": row.last_error,
            }))
        })
        .collect();
    log::store::append_many(conn, events)?;
    Ok(missed)
}

/// Claim up to `limit` due deliveries for `owner` for `lease`: each becomes
/// `publishing` with a new attempt recorded, in one transaction. Paused
/// scopes, inactive accounts, statements with an open revision and overdue
/// deliveries are skipped (they wait, and the sweep marks them missed).
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> QueryResult<Vec<Claim>> {
    tx(conn, |conn| {
        let now = db::now();
        let scope_filter = match control(conn)?.scope.as_deref() {
            // Answers to the public go on during a routine pause, like crisis posts.
            Some("routine") => " AND d.kind IN ('crisis', 'response')",
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
           AND a.status = 'active'{scope_filter} \
           AND (d.kind = 'response' OR (s.status = 'approved' \
             AND NOT EXISTS (SELECT 1 FROM statements r WHERE r.previous_version_id = d.statement_id \
               AND r.status IN ('draft', 'in_review', 'rejected')))) \
           ORDER BY d.next_attempt_at LIMIT {limit}{lock}) \
         RETURNING *"
    )
}

/// Record the start of attempts, before any network call.
fn insert_attempts(conn: &mut DbConnection, rows: &[AttemptRow]) -> QueryResult<()> {
    match conn {
        // One statement per chunk on PostgreSQL, where each is a round trip.
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
    let mut texts: HashMap<(String, String), VariantContent> = HashMap::new();
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
        if row.kind == RESPONSE_KIND {
            let (content, reply_to) = response_content(conn, &row.id)?;
            if !accounts_seen.contains_key(&row.account_id) {
                let account: AccountRow = accounts::table
                    .find(&row.account_id)
                    .select(AccountRow::as_select())
                    .first(conn)?;
                accounts_seen.insert(row.account_id.clone(), account);
            }
            let (title, language) = statements_seen[&row.statement_id].clone();
            claims.push(Claim {
                content,
                reply_to: Some(reply_to),
                account: accounts_seen[&row.account_id].clone(),
                title,
                language,
                delivery: row,
            });
            continue;
        }
        let text_key = (row.statement_id.clone(), row.platform.clone());
        if !texts.contains_key(&text_key) {
            let variant: VariantRow = variants::table
                .find((&row.statement_id, &row.platform))
                .select(VariantRow::as_select())
                .first(conn)?;
            texts.insert(text_key.clone(), variant.content());
        }
        if !accounts_seen.contains_key(&row.account_id) {
            let account: AccountRow = accounts::table
                .find(&row.account_id)
                .select(AccountRow::as_select())
                .first(conn)?;
            accounts_seen.insert(row.account_id.clone(), account);
        }
        let (title, language) = statements_seen[&row.statement_id].clone();
        let reply_to = match &row.reply_to_delivery_id {
            None => None,
            Some(target) => {
                let target: Option<DeliveryRow> = deliveries::table
                    .find(target)
                    .select(DeliveryRow::as_select())
                    .first(conn)
                    .optional()?;
                let parts = target.map(|t| t.parts()).unwrap_or_default();
                match (parts.first(), parts.last()) {
                    (Some(first), Some(last)) => Some(ReplyTarget {
                        root_id: first.id.clone(),
                        parent_id: last.id.clone(),
                        answers_reply: false,
                    }),
                    _ => None,
                }
            }
        };
        claims.push(Claim {
            content: texts[&text_key].clone(),
            reply_to,
            account: accounts_seen[&row.account_id].clone(),
            title,
            language,
            delivery: row,
        });
    }
    Ok(claims)
}

/// Deliveries of this kind answer a reply from the follow-up queue: their
/// text is in `responses`, not in a variant.
pub const RESPONSE_KIND: &str = "response";

/// What a response delivery publishes, and the reply it answers (under the
/// first part of the post that reply was collected from).
fn response_content(
    conn: &mut DbConnection,
    delivery_id: &str,
) -> QueryResult<(VariantContent, ReplyTarget)> {
    let (text, reply_remote_id, source_delivery): (String, String, String) = responses::table
        .inner_join(replies::table)
        .filter(responses::delivery_id.eq(delivery_id))
        .select((responses::text, replies::remote_id, replies::delivery_id))
        .first(conn)?;
    let source: DeliveryRow = deliveries::table
        .find(&source_delivery)
        .select(DeliveryRow::as_select())
        .first(conn)?;
    let root_id = source
        .parts()
        .first()
        .map(|p| p.id.clone())
        .unwrap_or_default();
    Ok((
        VariantContent::text(text),
        ReplyTarget {
            root_id,
            parent_id: reply_remote_id,
            answers_reply: true,
        },
    ))
}

/// The earliest instant after `after` at which a scheduled delivery falls
/// due. Deliveries already due at `after` and not claimed are held (paused,
/// account not active, revision open): they must not make the loop wait less
/// for the others.
pub fn next_due_after(
    conn: &mut DbConnection,
    after: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Scheduled.as_str()))
        .filter(deliveries::next_attempt_at.gt(after))
        .select(diesel::dsl::min(deliveries::next_attempt_at))
        .first(conn)
}

/// Where a delivery goes next, as the dispatcher decided.
#[derive(Debug, Clone)]
pub enum Settle {
    Published {
        remote_id: String,
        remote_url: Option<String>,
        /// When the request to the network started.
        request_started_at: DateTime<Utc>,
        /// Found by a reconciliation rather than answered by the publish call.
        reconciled: bool,
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
    /// The network may have it: check at `reconcile_at`.
    Unknown {
        error: String,
        reconcile_at: DateTime<Utc>,
    },
}

impl Settle {
    /// What the attempt row records: outcome class, HTTP status, error.
    fn attempt_outcome(&self) -> (&'static str, Option<u16>, Option<&str>) {
        match self {
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
            } => (class, *http_status, Some(error)),
            Settle::Unknown { error, .. } => ("unknown", None, Some(error)),
        }
    }
}

/// One settled attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: String,
    pub attempt: i32,
    pub settle: Settle,
}

/// End an attempt row (once: a second end is ignored).
fn end_attempt(
    conn: &mut DbConnection,
    delivery_id: &str,
    number: i32,
    now: NaiveDateTime,
    (outcome, http_status, error): (&str, Option<u16>, Option<&str>),
) -> QueryResult<()> {
    diesel::update(
        delivery_attempts::table
            .find((delivery_id, number))
            .filter(delivery_attempts::ended_at.is_null()),
    )
    .set((
        delivery_attempts::ended_at.eq(Some(now)),
        delivery_attempts::outcome.eq(Some(outcome)),
        delivery_attempts::http_status.eq(http_status.map(i32::from)),
        delivery_attempts::error.eq(error),
    ))
    .execute(conn)?;
    Ok(())
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
            let settle = &outcome.settle;
            end_attempt(
                conn,
                &outcome.delivery_id,
                outcome.attempt,
                now,
                settle.attempt_outcome(),
            )?;
            let Some(row) = find(conn, &outcome.delivery_id)? else {
                continue;
            };
            let current = row.attempts == outcome.attempt
                && matches!(row.status.as_str(), "publishing" | "unknown");
            if !current {
                tracing::info!(delivery = %row.id, attempt = outcome.attempt, "stale outcome ignored");
                continue;
            }
            apply(conn, owner, now, &row, settle, &mut events)?;
            done += 1;
        }
        log::store::append_many(conn, events)?;
        Ok(done)
    })
}

/// The columns one transition writes; `None` leaves a column as it is.
#[derive(AsChangeset)]
#[diesel(table_name = deliveries)]
struct Transition<'a> {
    status: &'a str,
    next_attempt_at: Option<Option<NaiveDateTime>>,
    last_error: Option<Option<&'a str>>,
    retries: Option<i32>,
    reconcile_tries: Option<i32>,
    published_at: Option<Option<NaiveDateTime>>,
    lateness_ms: Option<Option<i64>>,
    remote_id: Option<Option<&'a str>>,
    remote_url: Option<Option<&'a str>>,
    lease_owner: Option<Option<&'a str>>,
    lease_expires_at: Option<Option<NaiveDateTime>>,
    updated_at: NaiveDateTime,
}

impl<'a> Transition<'a> {
    /// To `status`, releasing the lease.
    fn to(status: DeliveryStatus, now: NaiveDateTime) -> Self {
        Self {
            status: status.as_str(),
            next_attempt_at: None,
            last_error: None,
            retries: None,
            reconcile_tries: None,
            published_at: None,
            lateness_ms: None,
            remote_id: None,
            remote_url: None,
            lease_owner: Some(None),
            lease_expires_at: Some(None),
            updated_at: now,
        }
    }
}

/// Move `row` as `settle` says, and queue its log event (and, for a revoked
/// account, the account's). The one place a delivery leaves `publishing` or
/// `unknown`.
fn apply(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    row: &DeliveryRow,
    settle: &Settle,
    events: &mut Vec<NewEvent>,
) -> QueryResult<()> {
    let instant = |t: &DateTime<Utc>| db::truncate_micros(t.naive_utc());
    let (change, action, details) = match settle {
        Settle::Published {
            remote_id,
            remote_url,
            request_started_at,
            reconciled,
        } => {
            let lateness = (*request_started_at - row.planned_at.and_utc()).num_milliseconds();
            let change = Transition {
                next_attempt_at: Some(None),
                last_error: Some(None),
                published_at: Some(Some(now)),
                lateness_ms: Some(Some(lateness)),
                remote_id: Some(Some(remote_id)),
                remote_url: Some(remote_url.as_deref()),
                ..Transition::to(DeliveryStatus::Published, now)
            };
            let details = json!({
                "attempt": row.attempts,
                "remote_id": remote_id,
                "remote_url": remote_url,
                "lateness_ms": lateness,
                "reconciled": reconciled,
                "owner": owner,
            });
            (change, "delivery.published", details)
        }
        Settle::Retry {
            at,
            class,
            error,
            http_status,
            counts,
        } => {
            let at = instant(at);
            let change = Transition {
                next_attempt_at: Some(Some(at)),
                last_error: Some(Some(error)),
                retries: Some(row.retries + i32::from(*counts)),
                reconcile_tries: Some(0),
                ..Transition::to(DeliveryStatus::Scheduled, now)
            };
            let details = json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
                "next_attempt_at": utc(at),
            });
            (change, "delivery.retry", details)
        }
        Settle::Failed {
            class,
            error,
            http_status,
            revoke_account,
        } => {
            if *revoke_account {
                mark_needs_reauth(conn, &row.account_id, error, events)?;
            }
            let change = Transition {
                next_attempt_at: Some(None),
                last_error: Some(Some(error)),
                ..Transition::to(DeliveryStatus::Failed, now)
            };
            let details = json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
                "reconcile_tries": row.reconcile_tries,
            });
            (change, "delivery.failed", details)
        }
        Settle::Missed {
            class,
            error,
            http_status,
        } => {
            let change = Transition {
                next_attempt_at: Some(None),
                last_error: Some(Some(error)),
                ..Transition::to(DeliveryStatus::Missed, now)
            };
            let details = json!({
                "attempt": row.attempts,
                "class": class,
                "http_status": http_status,
                "error": error,
                "deadline": utc(row.deadline),
            });
            (change, "delivery.missed", details)
        }
        Settle::Unknown {
            error,
            reconcile_at,
        } => {
            let at = instant(reconcile_at);
            let change = Transition {
                next_attempt_at: Some(Some(at)),
                last_error: Some(Some(error)),
                ..Transition::to(DeliveryStatus::Unknown, now)
            };
            let details = json!({
                "attempt": row.attempts,
                "error": error,
                "reconcile_at": utc(at),
                "reconcile_tries": row.reconcile_tries,
            });
            (change, "delivery.unknown", details)
        }
    };
    diesel::update(deliveries::table.find(&row.id))
        .set(&change)
        .execute(conn)?;
    events.push(event(SYSTEM, action, row).details(details));
    if row.kind == RESPONSE_KIND && matches!(settle, Settle::Published { .. }) {
        crate::replies::store::response_published(conn, row, now, events)?;
    }
    Ok(())
}

/// The network refused the account's credentials for good: it needs an admin.
fn mark_needs_reauth(
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
        let mut events = Vec::with_capacity(expired.len());
        for row in &expired {
            let error = format!(
                "no outcome from {} before its lease expired; checking the network",
                row.lease_owner.as_deref().unwrap_or("?")
            );
            end_attempt(
                conn,
                &row.id,
                row.attempts,
                now,
                ("lease_expired", None, Some(&error)),
            )?;
            let settle = Settle::Unknown {
                error,
                reconcile_at: now.and_utc(),
            };
            apply(conn, SYSTEM, now, row, &settle, &mut events)?;
        }
        log::store::append_many(conn, events)?;
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
        let mut due: Vec<DeliveryRow> = deliveries::table
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
        // The write gate is held: nobody else can take these rows meanwhile.
        for row in &mut due {
            row.reconcile_tries += 1;
            diesel::update(deliveries::table.find(&row.id))
                .set((
                    deliveries::lease_owner.eq(Some(owner)),
                    deliveries::lease_expires_at.eq(Some(now + lease)),
                    deliveries::reconcile_tries.eq(row.reconcile_tries),
                    deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
        }
        with_content(conn, due)
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

/// Record a reconciliation: found (published), absent (publish again now, or
/// missed past the deadline), or still unknown (check again later, or fail
/// after too many checks).
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
        let settle = match outcome {
            Reconciled::Found {
                remote_id,
                remote_url,
            } => {
                let started: Option<NaiveDateTime> = delivery_attempts::table
                    .find((&row.id, row.attempts))
                    .select(delivery_attempts::started_at)
                    .first(conn)
                    .optional()?;
                Settle::Published {
                    remote_id,
                    remote_url,
                    request_started_at: started.unwrap_or(row.planned_at).and_utc(),
                    reconciled: true,
                }
            }
            Reconciled::Absent if now > row.deadline => Settle::Missed {
                class: "reconciled_absent",
                error: "the network does not have the post, and its publishing window has passed"
                    .into(),
                http_status: None,
            },
            Reconciled::Absent => Settle::Retry {
                at: now.and_utc(),
                class: "reconciled_absent",
                error: "the network does not have the post: publishing again".into(),
                http_status: None,
                counts: false,
            },
            Reconciled::StillUnknown { error, give_up, .. } if give_up => Settle::Failed {
                class: "unknown",
                error: format!(
                    "outcome unknown, check the account before reposting (last check: {error})"
                ),
                http_status: None,
                revoke_account: false,
            },
            Reconciled::StillUnknown {
                error, retry_at, ..
            } => Settle::Unknown {
                error,
                reconcile_at: retry_at,
            },
        };
        let mut events = Vec::new();
        apply(conn, owner, now, &row, &settle, &mut events)?;
        log::store::append_many(conn, events)?;
        find(conn, delivery_id)
    })
}

/// Record the parts of a thread published so far (by the lease holder
/// only), so a retry or a reconciliation goes on from the next part.
pub fn save_progress(
    conn: &mut DbConnection,
    owner: &str,
    delivery_id: &str,
    parts: &[super::RemotePart],
) -> QueryResult<bool> {
    let json = serde_json::to_string(parts).unwrap_or_else(|_| "[]".into());
    let changed = diesel::update(
        deliveries::table
            .find(delivery_id)
            .filter(deliveries::lease_owner.eq(owner)),
    )
    .set((
        deliveries::remote_parts.eq(Some(json)),
        deliveries::updated_at.eq(db::now()),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Counts by status (for `GET /v1/publishing`).
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    deliveries::table
        .group_by(deliveries::status)
        .select((deliveries::status, diesel::dsl::count_star()))
        .load(conn)
}
