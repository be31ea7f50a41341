//! Taking a statement back: `POST /v1/statements/{id}/retract` deletes every
//! published post of the statement (every version) on every network that
//! allows it, and records per delivery `retracted` or why it could not be;
//! `POST /v1/statements/{id}/correct` publishes an approved correction as a
//! reply to each published post. Both are logged.

use std::time::Duration;

use actix_web::{post, web, HttpResponse};
use diesel::prelude::*;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::dto::Delivery as DeliveryResponse;
use super::store::{self as store, cancel_pending, event, DeliveryRow, Owner, RESPONSE_KIND};
use super::DeliveryStatus;
use crate::accounts::store::AccountRow;
use crate::accounts::AccountStatus;
use crate::app::AppState;
use crate::db::schema::{accounts, deliveries};
use crate::db::{self, DbConnection};
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::http::parse_id;
use crate::log::{self, NewEvent};
use crate::platforms::ConnectorError;

/// Deletions run at once, across accounts.
const PARALLEL_DELETES: usize = 16;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetractRequest {
    /// Why, for the publish log.
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "Wrong batch numbers: correction follows"
    )]
    pub reason: String,
}

/// What happened to one published delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetractOutcome {
    /// Deleted from the network (every part of a thread).
    Retracted,
    /// Retracted by an earlier call.
    AlreadyRetracted,
    /// The network does not let apps delete posts (Instagram, webhooks):
    /// remove it by hand; `error` says where.
    NotPossible,
    /// The deletion failed (network down, rate limit, credentials): retract
    /// again later; `error` says why.
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetractedDelivery {
    pub delivery_id: String,
    pub account_id: String,
    pub platform: String,
    pub outcome: RetractOutcome,
    pub remote_url: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetractResponse {
    pub statement_id: String,
    pub retracted: usize,
    pub not_possible: usize,
    pub failed: usize,
    /// Scheduled deliveries of the statement, cancelled so nothing more goes out.
    pub cancelled: usize,
    pub deliveries: Vec<RetractedDelivery>,
}

/// Delete every published post of a statement (managers).
#[utoipa::path(
    tag = "deliveries",
    request_body = RetractRequest,
    params(("id" = String, Path, description = "Statement id (any version)")),
    responses((status = 200, description = "One outcome per published delivery", body = RetractResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/retract")]
pub async fn retract_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RetractRequest>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let id = parse_id(&path, "statement")?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(ApiError::invalid("reason", "must be 1 to 2000 characters"));
    }
    let (actor, sid, why) = (caller.name.clone(), id.clone(), reason.clone());
    let (targets, cancelled) = state
        .db(move |conn| start_retraction(conn, &actor, &sid, &why))
        .await?;
    let limit = Duration::from_secs(state.publish_timeout_s + 5);
    let results: Vec<(DeliveryRow, Result<(), ConnectorError>)> = stream::iter(targets)
        .map(|(delivery, account)| {
            let state = state.clone();
            async move {
                let outcome = delete_parts(&state, &delivery, account.as_ref(), limit).await;
                (delivery, outcome)
            }
        })
        .buffer_unordered(PARALLEL_DELETES)
        .collect()
        .await;
    let (actor, sid) = (caller.name.clone(), id.clone());
    let response = state
        .db(move |conn| finish_retraction(conn, &actor, &sid, &reason, results, cancelled))
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// The statement's published deliveries (every version), with their
/// accounts; scheduled ones are cancelled first. Already retracted ones
/// come back without an account.
#[allow(clippy::type_complexity)]
fn start_retraction(
    conn: &mut DbConnection,
    actor: &str,
    statement_id: &str,
    reason: &str,
) -> ApiResult<(Vec<(DeliveryRow, Option<AccountRow>)>, usize)> {
    store::tx(conn, |conn| {
        let statement = crate::statements::store::find(conn, statement_id)?
            .ok_or_else(|| ApiError::NotFound(format!("no statement with id '{statement_id}'")))?;
        let lineage = statement.row.lineage_id.clone();
        let versions: Vec<String> = crate::db::schema::statements::table
            .filter(crate::db::schema::statements::lineage_id.eq(&lineage))
            .select(crate::db::schema::statements::id)
            .load(conn)?;
        let mut cancelled = 0;
        for version in &versions {
            cancelled += cancel_pending(
                conn,
                actor,
                Owner::Statement(version),
                &format!("the statement was retracted: {reason}"),
            )?;
        }
        // Published posts, and the parts a thread got out before it failed.
        // Answers to the public (follow-up queue) are not the statement: kept.
        let rows: Vec<DeliveryRow> = deliveries::table
            .filter(deliveries::lineage_id.eq(&lineage))
            .filter(deliveries::kind.ne(RESPONSE_KIND))
            .filter(
                deliveries::status
                    .eq_any([
                        DeliveryStatus::Published.as_str(),
                        DeliveryStatus::Retracted.as_str(),
                    ])
                    .or(deliveries::remote_parts.is_not_null()),
            )
            .order(deliveries::id.asc())
            .select(DeliveryRow::as_select())
            .load(conn)?;
        let mut targets = Vec::with_capacity(rows.len());
        for row in rows {
            let account = if row.status == DeliveryStatus::Retracted.as_str() {
                None
            } else {
                accounts::table
                    .find(&row.account_id)
                    .select(AccountRow::as_select())
                    .first(conn)
                    .optional()?
            };
            targets.push((row, account));
        }
        Ok(targets).map(|t| (t, cancelled))
    })
}

/// Delete every part of one delivery, the last part first.
async fn delete_parts(
    state: &AppState,
    delivery: &DeliveryRow,
    account: Option<&AccountRow>,
    limit: Duration,
) -> Result<(), ConnectorError> {
    let Some(account) = account else {
        return Ok(()); // already retracted
    };
    if account.removed_at.is_some() || account.status == AccountStatus::Disabled.as_str() {
        return Err(ConnectorError::Rejected {
            message: "the account was removed from Herald: delete the post on the network by hand"
                .into(),
            status: None,
        });
    }
    let session = state
        .sessions
        .get(account)
        .map_err(|message| ConnectorError::AuthRevoked {
            message,
            status: None,
        })?;
    let mut result = Ok(());
    for part in delivery.parts().iter().rev() {
        let call = state.connectors.delete(&session, &part.id);
        result = match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::Unknown {
                message: "no answer from the network in time".into(),
            }),
        };
        if result.is_err() {
            break;
        }
    }
    state.sessions.save(&session, None).await;
    result
}

fn finish_retraction(
    conn: &mut DbConnection,
    actor: &str,
    statement_id: &str,
    reason: &str,
    results: Vec<(DeliveryRow, Result<(), ConnectorError>)>,
    cancelled: usize,
) -> ApiResult<RetractResponse> {
    store::tx(conn, |conn| {
        let now = db::now();
        let mut out = Vec::with_capacity(results.len());
        let mut events = Vec::new();
        for (row, result) in results {
            let already = row.status == DeliveryStatus::Retracted.as_str();
            let (outcome, error) = match (&result, already) {
                (_, true) => (RetractOutcome::AlreadyRetracted, None),
                (Ok(()), false) => (RetractOutcome::Retracted, None),
                (Err(ConnectorError::Rejected { message, .. }), false) => {
                    (RetractOutcome::NotPossible, Some(message.clone()))
                }
                (Err(e), false) => (RetractOutcome::Failed, Some(e.to_string())),
            };
            match outcome {
                RetractOutcome::Retracted => {
                    diesel::update(deliveries::table.find(&row.id))
                        .set((
                            deliveries::status.eq(DeliveryStatus::Retracted.as_str()),
                            deliveries::retracted_at.eq(Some(now)),
                            deliveries::retraction_error.eq(None::<String>),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    events.push(event(actor, "delivery.retracted", &row).details(json!({
                        "reason": reason,
                        "remote_id": row.remote_id,
                        "parts": row.parts().len(),
                    })));
                }
                RetractOutcome::NotPossible | RetractOutcome::Failed => {
                    diesel::update(deliveries::table.find(&row.id))
                        .set((
                            deliveries::retraction_error.eq(error.clone()),
                            deliveries::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    events.push(
                        event(actor, "delivery.retraction_failed", &row).details(json!({
                            "reason": reason,
                            "remote_id": row.remote_id,
                            "remote_url": row.remote_url,
                            "outcome": outcome,
                            "error": error,
                        })),
                    );
                }
                RetractOutcome::AlreadyRetracted => {}
            }
            out.push(RetractedDelivery {
                delivery_id: row.id.clone(),
                account_id: row.account_id.clone(),
                platform: row.platform.clone(),
                outcome,
                remote_url: row.remote_url.clone(),
                error,
            });
        }
        let count = |o: RetractOutcome| out.iter().filter(|d| d.outcome == o).count();
        let response = RetractResponse {
            statement_id: statement_id.to_string(),
            retracted: count(RetractOutcome::Retracted) + count(RetractOutcome::AlreadyRetracted),
            not_possible: count(RetractOutcome::NotPossible),
            failed: count(RetractOutcome::Failed),
            cancelled,
            deliveries: out,
        };
        events.push(
            NewEvent::new(actor, "statement.retracted")
                .statement(statement_id)
                .details(json!({
                    "reason": reason,
                    "retracted": response.retracted,
                    "not_possible": response.not_possible,
                    "failed": response.failed,
                    "cancelled": cancelled,
                })),
        );
        log::store::append_many(conn, events)?;
        Ok(response)
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectRequest {
    /// An approved statement holding the correction, with a variant for each
    /// network the original went out on.
    pub correction_id: String,
    /// Longest delay allowed after now, as for scheduling; default the
    /// server's `HERALD_MAX_LATENESS_S`.
    #[schema(minimum = 10, maximum = 604800)]
    pub max_lateness_s: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedCorrection {
    /// The published delivery that gets no correction.
    pub delivery_id: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectResponse {
    pub statement_id: String,
    pub correction_id: String,
    /// The correction's deliveries, one reply per published post, going out now.
    pub deliveries: Vec<DeliveryResponse>,
    pub skipped: Vec<SkippedCorrection>,
}

/// Publish an approved correction as a reply to each published post of a
/// statement (managers).
#[utoipa::path(
    tag = "deliveries",
    request_body = CorrectRequest,
    params(("id" = String, Path, description = "The statement being corrected (any version)")),
    responses((status = 201, description = "Corrections scheduled now", body = CorrectResponse)),
    security(("api_key" = []))
)]
#[post("/statements/{id}/correct")]
pub async fn correct_statement(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<CorrectRequest>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::Manage)?;
    let id = parse_id(&path, "statement")?;
    let correction_id = uuid::Uuid::parse_str(body.correction_id.trim())
        .map(|u| u.to_string())
        .map_err(|_| ApiError::invalid("correction_id", "is not a statement id (a UUID)"))?;
    if correction_id == id {
        return Err(ApiError::invalid(
            "correction_id",
            "a statement cannot correct itself",
        ));
    }
    let max_lateness_s = body
        .max_lateness_s
        .unwrap_or(i64::from(state.max_lateness_s));
    if !(super::MIN_LATENESS_S..=super::MAX_LATENESS_S).contains(&max_lateness_s) {
        return Err(ApiError::invalid(
            "max_lateness_s",
            format!(
                "must be between {} and {}",
                super::MIN_LATENESS_S,
                super::MAX_LATENESS_S
            ),
        ));
    }
    let actor = caller.name.clone();
    let (sid, cid) = (id.clone(), correction_id.clone());
    let response = state
        .db(move |conn| schedule_corrections(conn, &actor, &sid, &cid, max_lateness_s as i32))
        .await?;
    state.waker.wake();
    Ok(HttpResponse::Created().json(response))
}

fn schedule_corrections(
    conn: &mut DbConnection,
    actor: &str,
    statement_id: &str,
    correction_id: &str,
    max_lateness_s: i32,
) -> ApiResult<CorrectResponse> {
    store::tx(conn, |conn| {
        let original = crate::statements::store::find(conn, statement_id)?
            .ok_or_else(|| ApiError::NotFound(format!("no statement with id '{statement_id}'")))?;
        let correction = crate::statements::store::find(conn, correction_id)?.ok_or_else(|| {
            ApiError::invalid(
                "correction_id",
                format!("no statement with id '{correction_id}'"),
            )
        })?;
        if correction.row.lineage_id == original.row.lineage_id {
            return Err(ApiError::invalid(
                "correction_id",
                "the correction must be another statement, not a version of this one",
            ));
        }
        let published: Vec<DeliveryRow> = deliveries::table
            .filter(deliveries::lineage_id.eq(&original.row.lineage_id))
            .filter(deliveries::kind.ne(RESPONSE_KIND))
            .filter(deliveries::status.eq(DeliveryStatus::Published.as_str()))
            .order(deliveries::id.asc())
            .select(DeliveryRow::as_select())
            .load(conn)?;
        if published.is_empty() {
            return Err(ApiError::Conflict(
                "the statement has no published post to correct".into(),
            ));
        }
        let mut account_ids = Vec::new();
        let mut reply_to = Vec::new();
        let mut skipped = Vec::new();
        for d in &published {
            if !correction
                .variants
                .iter()
                .any(|(p, _)| p.as_str() == d.platform)
            {
                skipped.push(SkippedCorrection {
                    delivery_id: d.id.clone(),
                    reason: format!("the correction has no {} variant", d.platform),
                });
            } else if account_ids.contains(&d.account_id) {
                skipped.push(SkippedCorrection {
                    delivery_id: d.id.clone(),
                    reason: "the account already gets a correction (of another post)".into(),
                });
            } else {
                account_ids.push(d.account_id.clone());
                reply_to.push(Some(d.id.clone()));
            }
        }
        if account_ids.is_empty() {
            return Err(ApiError::invalid(
                "correction_id",
                "the correction has no variant for any network the statement went out on",
            ));
        }
        let request = store::ScheduleRequest {
            statement_id: correction_id.to_string(),
            account_ids,
            planned_at: chrono::Utc::now(),
            timezone: None,
            max_lateness_s,
            reply_to,
        };
        let rows = store::schedule(conn, actor, &request)?;
        log::store::append(
            conn,
            NewEvent::new(actor, "statement.corrected")
                .statement(statement_id)
                .details(json!({
                    "correction_id": correction_id,
                    "deliveries": rows.iter().map(|r| &r.id).collect::<Vec<_>>(),
                    "skipped": skipped.len(),
                })),
        )?;
        let deliveries = rows
            .into_iter()
            .map(DeliveryResponse::try_from)
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(CorrectResponse {
            statement_id: statement_id.to_string(),
            correction_id: correction_id.to_string(),
            deliveries,
            skipped,
        })
    })
}
