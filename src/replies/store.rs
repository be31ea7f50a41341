//! Replies, their follow-up, the per-delivery polls, and the figures the
//! API reports. Every change to a reply's follow-up is logged in the same
//! transaction.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use super::FollowUp;
use crate::db::schema::{deliveries, replies, reply_polls, responses, statements};
use crate::db::{self, DbConnection};
use crate::deliveries::store::{DeliveryRow, RESPONSE_KIND};
use crate::deliveries::DeliveryStatus;
use crate::log::{self, NewEvent};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = replies)]
pub struct ReplyRow {
    pub id: String,
    pub delivery_id: String,
    pub statement_id: String,
    pub lineage_id: String,
    pub account_id: String,
    pub platform: String,
    pub remote_id: String,
    pub parent_remote_id: Option<String>,
    pub author: String,
    pub text: String,
    pub url: Option<String>,
    /// When the reply was written, as the network says.
    pub created_at: NaiveDateTime,
    pub collected_at: NaiveDateTime,
    pub language: Option<String>,
    pub sentiment: String,
    pub score: f64,
    pub question: bool,
    pub follow_up: String,
    pub follow_up_reason: Option<String>,
    pub assignee: Option<String>,
    /// The first answer: a response published by Herald, or the moment
    /// someone marked it answered.
    pub first_response_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl ReplyRow {
    pub fn event(&self, actor: &str, action: &'static str) -> NewEvent {
        let mut e = NewEvent::new(actor, action)
            .statement(&self.statement_id)
            .account(&self.account_id);
        e.delivery_id = Some(self.delivery_id.clone());
        e
    }

    /// Seconds from the reply to its first answer.
    pub fn response_time_s(&self) -> Option<i64> {
        self.first_response_at
            .map(|t| (t - self.created_at).num_seconds().max(0))
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ReplyRow>> {
    replies::table
        .find(id)
        .select(ReplyRow::as_select())
        .first(conn)
        .optional()
}

/// Store the replies not stored yet (unique per account and network id).
/// Returns those inserted. Runs inside the caller's write transaction.
pub fn insert_new(conn: &mut DbConnection, rows: Vec<ReplyRow>) -> QueryResult<Vec<ReplyRow>> {
    let mut inserted = Vec::with_capacity(rows.len());
    for row in rows {
        let exists: i64 = replies::table
            .filter(replies::account_id.eq(&row.account_id))
            .filter(replies::remote_id.eq(&row.remote_id))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            diesel::insert_into(replies::table)
                .values(&row)
                .execute(conn)?;
            inserted.push(row);
        }
    }
    Ok(inserted)
}

/// What `GET /v1/replies` filters on.
#[derive(Debug, Clone, Default)]
pub struct ReplyFilter {
    /// Any version of this statement (its lineage).
    pub lineage_id: Option<String>,
    pub delivery_id: Option<String>,
    pub account_id: Option<String>,
    pub platform: Option<String>,
    pub sentiment: Option<String>,
    pub follow_up: Option<String>,
    pub assignee: Option<String>,
    /// On the reply's own time (`created_at`), from inclusive, to exclusive.
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Newest collected first; `before` is an id cursor.
pub fn list(
    conn: &mut DbConnection,
    filter: &ReplyFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ReplyRow>> {
    let mut query = replies::table.into_boxed();
    if let Some(v) = &filter.lineage_id {
        query = query.filter(replies::lineage_id.eq(v.clone()));
    }
    if let Some(v) = &filter.delivery_id {
        query = query.filter(replies::delivery_id.eq(v.clone()));
    }
    if let Some(v) = &filter.account_id {
        query = query.filter(replies::account_id.eq(v.clone()));
    }
    if let Some(v) = &filter.platform {
        query = query.filter(replies::platform.eq(v.clone()));
    }
    if let Some(v) = &filter.sentiment {
        query = query.filter(replies::sentiment.eq(v.clone()));
    }
    if let Some(v) = &filter.follow_up {
        query = query.filter(replies::follow_up.eq(v.clone()));
    }
    if let Some(v) = &filter.assignee {
        query = query.filter(replies::assignee.eq(v.clone()));
    }
    if let Some(v) = filter.from {
        query = query.filter(replies::created_at.ge(v));
    }
    if let Some(v) = filter.to {
        query = query.filter(replies::created_at.lt(v));
    }
    if let Some(before) = before {
        query = query.filter(replies::id.lt(before.to_string()));
    }
    query
        .order(replies::id.desc())
        .limit(limit)
        .select(ReplyRow::as_select())
        .load(conn)
}

/// The lineage of statement `id`, if it exists.
pub fn lineage_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<String>> {
    statements::table
        .find(id)
        .select(statements::lineage_id)
        .first(conn)
        .optional()
}

/// A follow-up change asked through the API.
#[derive(Debug, Clone)]
pub struct FollowUpChange {
    pub follow_up: FollowUp,
    /// `Some("")` is never passed: the route turns a blank into an error.
    pub assignee: Option<String>,
}

/// Apply `change` to the reply and log it. Returns the reply as it is now,
/// and whether anything changed.
pub fn change_follow_up(
    conn: &mut DbConnection,
    actor: &str,
    reply: &ReplyRow,
    change: &FollowUpChange,
) -> QueryResult<(ReplyRow, bool)> {
    let now = db::now();
    let assignee = change.assignee.clone().or_else(|| reply.assignee.clone());
    let first_response_at = match (change.follow_up, reply.first_response_at) {
        // Answered outside Herald: the moment it was marked counts.
        (FollowUp::Answered, None) => Some(now),
        (_, t) => t,
    };
    let unchanged = reply.follow_up == change.follow_up.as_str() && reply.assignee == assignee;
    if unchanged {
        return Ok((reply.clone(), false));
    }
    diesel::update(replies::table.find(&reply.id))
        .set((
            replies::follow_up.eq(change.follow_up.as_str()),
            replies::assignee.eq(&assignee),
            replies::first_response_at.eq(first_response_at),
            replies::updated_at.eq(now),
        ))
        .execute(conn)?;
    log::store::append(
        conn,
        reply
            .event(actor, "reply.follow_up_changed")
            .details(json!({
                "reply_id": reply.id,
                "from": reply.follow_up,
                "to": change.follow_up.as_str(),
                "assignee": assignee,
            })),
    )?;
    let updated = ReplyRow {
        follow_up: change.follow_up.as_str().to_string(),
        assignee,
        first_response_at,
        updated_at: now,
        ..reply.clone()
    };
    if change.follow_up == FollowUp::NeedsResponse && reply.follow_up != updated.follow_up {
        crate::webhooks::enqueue(
            conn,
            "reply.needs_response",
            super::routes::payload(&updated),
        )?;
    }
    Ok((updated, true))
}

/// A response delivery went out: its reply is answered (the first answer
/// sets the response time). Called by the dispatcher's settle, inside its
/// transaction.
pub fn response_published(
    conn: &mut DbConnection,
    delivery: &DeliveryRow,
    now: NaiveDateTime,
    events: &mut Vec<NewEvent>,
) -> QueryResult<()> {
    let reply_id: Option<String> = responses::table
        .find(&delivery.id)
        .select(responses::reply_id)
        .first(conn)
        .optional()?;
    let Some(reply) = reply_id.map(|id| find(conn, &id)).transpose()?.flatten() else {
        return Ok(());
    };
    diesel::update(replies::table.find(&reply.id))
        .set((
            replies::follow_up.eq(FollowUp::Answered.as_str()),
            replies::first_response_at.eq(reply.first_response_at.unwrap_or(now)),
            replies::updated_at.eq(now),
        ))
        .execute(conn)?;
    events.push(
        reply
            .event(crate::deliveries::store::SYSTEM, "reply.answered")
            .details(json!({
                "reply_id": reply.id,
                "from": reply.follow_up,
                "response_delivery_id": delivery.id,
                "response_time_s": (reply.first_response_at.unwrap_or(now) - reply.created_at)
                    .num_seconds()
                    .max(0),
            })),
    );
    Ok(())
}

/// The answers sent (or being sent) to a reply, oldest first.
pub fn responses_of(conn: &mut DbConnection, reply_id: &str) -> QueryResult<Vec<DeliveryRow>> {
    deliveries::table
        .inner_join(responses::table.on(responses::delivery_id.eq(deliveries::id)))
        .filter(responses::reply_id.eq(reply_id))
        .order(deliveries::id.asc())
        .select(DeliveryRow::as_select())
        .load(conn)
}

// ---------------------------------------------------------------- polls

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = reply_polls)]
pub struct PollRow {
    pub delivery_id: String,
    pub account_id: String,
    pub published_at: NaiveDateTime,
    pub cursor: Option<String>,
    pub next_poll_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub polls: i32,
    pub last_polled_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub done_at: Option<NaiveDateTime>,
}

/// Start tracking the published deliveries of `platforms` (published since
/// `since`) that have no poll yet. Answers Herald sent are not tracked.
pub fn start_polls(
    conn: &mut DbConnection,
    platforms: &[&str],
    since: NaiveDateTime,
) -> QueryResult<usize> {
    let fresh: Vec<(String, String, Option<NaiveDateTime>)> = deliveries::table
        .filter(deliveries::status.eq(DeliveryStatus::Published.as_str()))
        .filter(deliveries::kind.ne(RESPONSE_KIND))
        .filter(deliveries::platform.eq_any(platforms))
        .filter(deliveries::published_at.ge(since))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            reply_polls::table.filter(reply_polls::delivery_id.eq(deliveries::id)),
        )))
        .select((
            deliveries::id,
            deliveries::account_id,
            deliveries::published_at,
        ))
        .limit(1000)
        .load(conn)?;
    let rows: Vec<PollRow> = fresh
        .into_iter()
        .filter_map(|(delivery_id, account_id, published_at)| {
            let published_at = published_at?;
            Some(PollRow {
                delivery_id,
                account_id,
                published_at,
                cursor: None,
                next_poll_at: published_at,
                lease_until: None,
                polls: 0,
                last_polled_at: None,
                last_error: None,
                done_at: None,
            })
        })
        .collect();
    for row in &rows {
        diesel::insert_into(reply_polls::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(rows.len())
}

/// Take up to `limit` due polls, each leased until `lease_until` so no
/// other instance polls it meanwhile (a conditional update per row: the one
/// that changes the row owns it).
pub fn claim_polls(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<PollRow>> {
    let due: Vec<PollRow> = reply_polls::table
        .filter(reply_polls::done_at.is_null())
        .filter(reply_polls::next_poll_at.le(now))
        .filter(
            reply_polls::lease_until
                .is_null()
                .or(reply_polls::lease_until.lt(now)),
        )
        .order(reply_polls::next_poll_at.asc())
        .limit(limit)
        .select(PollRow::as_select())
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for mut poll in due {
        let taken = diesel::update(
            reply_polls::table.find(&poll.delivery_id).filter(
                reply_polls::lease_until
                    .is_null()
                    .or(reply_polls::lease_until.lt(now)),
            ),
        )
        .set(reply_polls::lease_until.eq(Some(lease_until)))
        .execute(conn)?;
        if taken == 1 {
            poll.lease_until = Some(lease_until);
            claimed.push(poll);
        }
    }
    Ok(claimed)
}

/// After a poll: the new cursor (if any), the next poll (`None`: tracking
/// is over), and the error when it failed. Releases the lease.
pub fn finish_poll(
    conn: &mut DbConnection,
    delivery_id: &str,
    cursor: Option<&str>,
    next: Option<NaiveDateTime>,
    error: Option<&str>,
    polled: bool,
) -> QueryResult<()> {
    let now = db::now();
    let current: PollRow = reply_polls::table
        .find(delivery_id)
        .select(PollRow::as_select())
        .first(conn)?;
    diesel::update(reply_polls::table.find(delivery_id))
        .set((
            reply_polls::cursor.eq(cursor.map(str::to_string).or(current.cursor)),
            reply_polls::next_poll_at.eq(next.unwrap_or(now)),
            reply_polls::done_at.eq(if next.is_none() { Some(now) } else { None }),
            reply_polls::lease_until.eq(None::<NaiveDateTime>),
            reply_polls::polls.eq(current.polls + i32::from(polled)),
            reply_polls::last_polled_at.eq(if polled {
                Some(now)
            } else {
                current.last_polled_at
            }),
            reply_polls::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn poll_of(conn: &mut DbConnection, delivery_id: &str) -> QueryResult<Option<PollRow>> {
    reply_polls::table
        .find(delivery_id)
        .select(PollRow::as_select())
        .first(conn)
        .optional()
}

/// Remote ids of Herald's own posts among `candidates`, for `account_id`:
/// a delivery's first part, or an answer Herald sent. Those are never
/// stored as replies.
pub fn own_remote_ids(
    conn: &mut DbConnection,
    account_id: &str,
    candidates: &[String],
) -> QueryResult<Vec<String>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<Option<String>> = deliveries::table
        .filter(deliveries::account_id.eq(account_id))
        .filter(deliveries::remote_id.eq_any(candidates))
        .select(deliveries::remote_id)
        .load(conn)?;
    Ok(found.into_iter().flatten().collect())
}

/// The remote ids of every part of the answers sent to replies collected
/// under `delivery_id`, and of corrections posted under it.
pub fn own_ids_under(conn: &mut DbConnection, delivery_id: &str) -> QueryResult<Vec<String>> {
    let answers: Vec<DeliveryRow> = deliveries::table
        .inner_join(responses::table.on(responses::delivery_id.eq(deliveries::id)))
        .inner_join(replies::table.on(replies::id.eq(responses::reply_id)))
        .filter(replies::delivery_id.eq(delivery_id))
        .select(DeliveryRow::as_select())
        .load(conn)?;
    let corrections: Vec<DeliveryRow> = deliveries::table
        .filter(deliveries::reply_to_delivery_id.eq(delivery_id))
        .select(DeliveryRow::as_select())
        .load(conn)?;
    Ok(answers
        .iter()
        .chain(corrections.iter())
        .flat_map(|d| d.parts().into_iter().map(|p| p.id))
        .collect())
}

// ---------------------------------------------------------------- figures

/// The fields the summaries and statistics are computed from.
#[derive(Debug, Clone, Queryable)]
pub struct FigureRow {
    pub platform: String,
    pub sentiment: String,
    pub follow_up: String,
    pub assignee: Option<String>,
    pub lineage_id: String,
    pub created_at: NaiveDateTime,
    pub first_response_at: Option<NaiveDateTime>,
}

fn figure_columns() -> (
    replies::platform,
    replies::sentiment,
    replies::follow_up,
    replies::assignee,
    replies::lineage_id,
    replies::created_at,
    replies::first_response_at,
) {
    (
        replies::platform,
        replies::sentiment,
        replies::follow_up,
        replies::assignee,
        replies::lineage_id,
        replies::created_at,
        replies::first_response_at,
    )
}

/// Every reply to any version of a statement.
pub fn figures_of_lineage(conn: &mut DbConnection, lineage: &str) -> QueryResult<Vec<FigureRow>> {
    replies::table
        .filter(replies::lineage_id.eq(lineage))
        .select(figure_columns())
        .load(conn)
}

/// Every reply written in `[from, to)`.
pub fn figures_between(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<FigureRow>> {
    replies::table
        .filter(replies::created_at.ge(from))
        .filter(replies::created_at.lt(to))
        .select(figure_columns())
        .load(conn)
}

/// Replies to a lineage or an account written since `since`:
/// (negative, total).
pub fn tone_since(
    conn: &mut DbConnection,
    scope: &super::spike::Scope,
    since: NaiveDateTime,
) -> QueryResult<(i64, i64)> {
    let base = || {
        let q = replies::table
            .filter(replies::created_at.ge(since))
            .into_boxed();
        match scope {
            super::spike::Scope::Statement(lineage) => {
                q.filter(replies::lineage_id.eq(lineage.clone()))
            }
            super::spike::Scope::Account(account) => {
                q.filter(replies::account_id.eq(account.clone()))
            }
        }
    };
    let total: i64 = base().count().get_result(conn)?;
    let negative: i64 = base()
        .filter(replies::sentiment.eq("negative"))
        .count()
        .get_result(conn)?;
    Ok((negative, total))
}

/// The instant `seconds` before `t`.
pub fn before(t: NaiveDateTime, seconds: u64) -> NaiveDateTime {
    t - Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000))
}
