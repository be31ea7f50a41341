//! Delivery routes: schedule an approved statement, read deliveries, cancel
//! and reschedule them.

use actix_web::{get, post, web, HttpRequest, HttpResponse};

use super::dto::{
    AttemptResponse, Delivery, DeliveryDetail, DeliveryPage, ListDeliveries, PreflightCheck,
    RescheduleDelivery, ScheduleDeliveries, ScheduleResponse,
};
use super::plan::{self, WhenRequest};
use super::store::{self, ListFilter, ScheduleRequest};
use super::{MAX_LATENESS_S, MIN_LATENESS_S};
use crate::app::AppState;
use crate::http::auth::{Caller, Capability};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{idempotency, pagination, parse_id, query_instant};

fn delivery_id(raw: &str) -> ApiResult<String> {
    parse_id(raw, "delivery")
}

fn resolve(when: &WhenRequest) -> Result<plan::Planned, Vec<FieldError>> {
    plan::resolve(when, chrono::Utc::now()).map_err(|errors| {
        errors
            .into_iter()
            .map(|(f, m)| FieldError::new(f, m))
            .collect()
    })
}

/// Schedule an approved statement to accounts.
#[utoipa::path(
    tag = "deliveries",
    request_body = ScheduleDeliveries,
    params(
        ("id" = String, Path, description = "Statement id (an approved version)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe scheduling: the same key and body return the first answer"),
    ),
    responses(
        (status = 201, description = "One delivery per account", body = ScheduleResponse),
        (status = 409, description = "The statement is not approved"),
    ),
    security(("api_key" = []))
)]
#[post("/statements/{id}/deliveries")]
pub async fn schedule_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    ApiJson(body): ApiJson<ScheduleDeliveries>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let statement_id = parse_id(&path, "statement")?;
    let mut errors = Vec::new();
    if body.accounts.is_empty() {
        errors.push(FieldError::new("accounts", "name at least one account"));
    }
    if body.accounts.len() > 100 {
        errors.push(FieldError::new(
            "accounts",
            "at most 100 accounts per request",
        ));
    }
    let mut accounts = Vec::with_capacity(body.accounts.len());
    for (i, raw) in body.accounts.iter().enumerate() {
        match uuid::Uuid::parse_str(raw) {
            Ok(id) => {
                let id = id.to_string();
                if accounts.contains(&id) {
                    errors.push(FieldError::new(format!("accounts[{i}]"), "is listed twice"));
                }
                accounts.push(id);
            }
            Err(_) => errors.push(FieldError::new(
                format!("accounts[{i}]"),
                format!("'{raw}' is not an account id"),
            )),
        }
    }
    let max_lateness_s = body
        .max_lateness_s
        .unwrap_or(i64::from(state.max_lateness_s));
    if !(MIN_LATENESS_S..=MAX_LATENESS_S).contains(&max_lateness_s) {
        errors.push(FieldError::new(
            "max_lateness_s",
            format!("must be between {MIN_LATENESS_S} and {MAX_LATENESS_S} seconds"),
        ));
    }
    let planned = resolve(&body.when()).map_err(|e| errors.extend(e)).ok();
    let (Some(planned), true) = (planned, errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let fingerprint = serde_json::json!({
        "statement_id": statement_id, "accounts": accounts, "at": body.at,
        "local_time": body.local_time, "timezone": body.timezone, "now": body.now,
        "max_lateness_s": max_lateness_s,
    });
    let request = ScheduleRequest {
        statement_id,
        account_ids: accounts,
        planned_at: planned.at,
        timezone: planned.timezone.clone(),
        max_lateness_s: max_lateness_s as i32,
        reply_to: Vec::new(),
    };
    let actor = caller.name.clone();
    let response = idempotency::create(&state, &req, &caller, fingerprint, move |conn| {
        let rows = store::schedule(conn, &actor, &request)?;
        let deliveries = rows
            .into_iter()
            .map(Delivery::try_from)
            .collect::<ApiResult<Vec<_>>>()?;
        serde_json::to_value(ScheduleResponse {
            planned_at: planned.at,
            timezone: planned.timezone,
            notice: planned.notice,
            deliveries,
        })
        .map_err(ApiError::internal)
    })
    .await?;
    state.waker.wake();
    Ok(response)
}

/// List deliveries, newest first.
#[utoipa::path(
    tag = "deliveries",
    params(ListDeliveries),
    responses((status = 200, description = "A page of deliveries", body = DeliveryPage)),
    security(("api_key" = []))
)]
#[get("/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> ApiResult<HttpResponse> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::id_cursor(query.cursor.as_deref())?;
    let filter = ListFilter {
        status: query.status,
        account_id: query.account_id.clone(),
        statement_id: query.statement_id.clone(),
        from: query_instant("from", &query.from)?,
        to: query_instant("to", &query.to)?,
    };
    let rows = state
        .db(move |conn| Ok(store::list(conn, &filter, before.as_deref(), limit + 1)?))
        .await?;
    let (rows, next_cursor) = pagination::paginate(rows, limit, |d| d.id.clone());
    let items = rows
        .into_iter()
        .map(Delivery::try_from)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(DeliveryPage { items, next_cursor }))
}

/// One delivery, with its attempts.
#[utoipa::path(
    tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = DeliveryDetail)),
    security(("api_key" = []))
)]
#[get("/deliveries/{id}")]
pub async fn get_delivery(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = delivery_id(&path)?;
    let (row, attempts, checks) = state
        .db(move |conn| {
            let row = store::find(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no delivery with id '{id}'")))?;
            let checks = crate::accounts::lifecycle::checks_of(conn, &id)?;
            Ok((row, store::attempts(conn, &id)?, checks))
        })
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryDetail {
        delivery: Delivery::try_from(row)?,
        attempt_log: attempts.into_iter().map(AttemptResponse::from).collect(),
        preflight: checks
            .into_iter()
            .map(|c| PreflightCheck {
                stage: c.stage,
                checked_at: c.checked_at.and_utc(),
                ok: c.ok,
                error: c.error,
            })
            .collect(),
    }))
}

/// Cancel a scheduled delivery.
#[utoipa::path(
    tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "Cancelled", body = Delivery),
        (status = 409, description = "Already handed to the network, or finished"),
    ),
    security(("api_key" = []))
)]
#[post("/deliveries/{id}/cancel")]
pub async fn cancel_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let id = delivery_id(&path)?;
    let actor = caller.name;
    let row = state
        .db(move |conn| Ok(store::cancel(conn, &actor, &id, None)?))
        .await?;
    Ok(HttpResponse::Ok().json(Delivery::try_from(row)?))
}

/// Give a scheduled, failed or missed delivery a new time.
#[utoipa::path(
    tag = "deliveries",
    request_body = RescheduleDelivery,
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "Scheduled again", body = Delivery),
        (status = 409, description = "Published, cancelled or in flight"),
    ),
    security(("api_key" = []))
)]
#[post("/deliveries/{id}/reschedule")]
pub async fn reschedule_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ApiJson(body): ApiJson<RescheduleDelivery>,
) -> ApiResult<HttpResponse> {
    caller.require(Capability::WriteStatements)?;
    let id = delivery_id(&path)?;
    let planned = resolve(&body.when()).map_err(ApiError::invalid_fields)?;
    let actor = caller.name;
    let row = state
        .db(move |conn| {
            Ok(store::reschedule(
                conn,
                &actor,
                &id,
                planned.at,
                planned.timezone,
            )?)
        })
        .await?;
    state.waker.wake();
    Ok(HttpResponse::Ok().json(Delivery::try_from(row)?))
}
